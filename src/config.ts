import { readFile } from 'node:fs/promises'
import { parse as parseYaml } from 'yaml'
import { fail } from './errors.js'
import { DEFAULT_META_CACHE_ENTRIES } from './meta/cache-bound.js'

export interface Config {
  chunkSize: number
  replicaCount: number
  heartbeatInterval: number // ms
  port: number // the web dashboard's; the next free one when taken, 0 for any
  webHost: string // the dashboard listens here only: loopback unless you mean otherwise
  maxStoreBytes: number // LMDB map size: the most this node stores
  bootstrap: HostPort[] | null // DHT bootstrap nodes; null: hyperdht's public defaults; []: no network
  gcGrace: number // ms a chunk stays unreferenced before every member's copy is deleted
  repairAfter: number // ms a peer may be offline before its copies stop counting and are re-made elsewhere
  compactEvery: number // ms between namespace log compaction attempts; 0: never
  compactMargin: number // ms the compaction horizon stays behind the slowest member's frontier (clock skew allowance)
  cacheSize: number | null // bytes of chunks to keep here at most (beyond what placement and pins require); null: everything
  scrubRate: number // bytes/s the background scrubber may read at most; 0: off
  scrubInterval: number // ms between the end of one scrub pass and the next
  quotaPerMember: number | null // bytes this node holds for any one placing member at most; null: half of maxStoreBytes
  holdLease: number // ms of full-member presence after which a copy held for others, never renewed by a full member, is collected
  metaCacheEntries: number // entries each in-memory cache of the namespace keeps at most (decoded inodes, lookups, block refs, merged view) (#26)
}

// The quota in force: configured, or half the store (a member that places
// everything still leaves the other half to the rest; set it to
// maxStoreBytes for a volume with a single writer that should fill it).
export function quotaOf (c: Config): number {
  return c.quotaPerMember ?? Math.floor(c.maxStoreBytes / 2)
}

export interface HostPort {
  host: string
  port: number
}

export const DEFAULT_CONFIG: Config = {
  chunkSize: 1024 * 1024,
  replicaCount: 3,
  heartbeatInterval: 5000,
  port: 8080,
  webHost: '127.0.0.1',
  maxStoreBytes: 1024 * 1024 * 1024 * 1024,
  bootstrap: null,
  gcGrace: 10 * 60 * 1000,
  repairAfter: 10 * 60 * 1000,
  compactEvery: 5 * 60 * 1000,
  compactMargin: 60 * 1000,
  cacheSize: null,
  scrubRate: 16 * 1024 * 1024,
  scrubInterval: 60 * 60 * 1000,
  quotaPerMember: null,
  holdLease: 14 * 24 * 3600 * 1000,
  metaCacheEntries: DEFAULT_META_CACHE_ENTRIES
}

const MIN_CHUNK = 64 * 1024
const MAX_CHUNK = 16 * 1024 * 1024

// Reads a JSON or YAML config (the seed product's config.yaml fields). Sizes
// may be numbers or strings like "1MiB"; intervals numbers of ms or "5s".
export async function loadConfig (path?: string): Promise<Config> {
  if (!path) return { ...DEFAULT_CONFIG }
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (e) {
    throw fail('BAD_CONFIG', `cannot read config ${path}: ${(e as Error).message}`)
  }
  let raw: unknown
  try {
    raw = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text)
  } catch (e) {
    throw fail('BAD_CONFIG', `config ${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`)
  }
  return validateConfig(raw ?? {}, path)
}

export function validateConfig (raw: unknown, where = 'config'): Config {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw fail('BAD_CONFIG', `${where}: expected a mapping of settings`)
  const r = raw as Record<string, unknown>
  const c: Config = { ...DEFAULT_CONFIG }
  if (r.chunkSize !== undefined) c.chunkSize = size(r.chunkSize, 'chunkSize', where)
  if (r.replicaCount !== undefined) c.replicaCount = int(r.replicaCount, 'replicaCount', where, 1, 64)
  if (r.heartbeatInterval !== undefined) c.heartbeatInterval = duration(r.heartbeatInterval, 'heartbeatInterval', where)
  if (r.port !== undefined) c.port = int(r.port, 'port', where, 0, 65535)
  if (r.webHost !== undefined) {
    if (typeof r.webHost !== 'string' || !/^[0-9A-Za-z.:-]+$/.test(r.webHost)) throw fail('BAD_CONFIG', `${where}: webHost must be an address such as 127.0.0.1`)
    c.webHost = r.webHost
  }
  if (r.compactEvery !== undefined) c.compactEvery = r.compactEvery === 0 ? 0 : duration(r.compactEvery, 'compactEvery', where)
  if (r.compactMargin !== undefined) c.compactMargin = r.compactMargin === 0 ? 0 : duration(r.compactMargin, 'compactMargin', where)
  if (r.cacheSize !== undefined && r.cacheSize !== null) c.cacheSize = size(r.cacheSize, 'cacheSize', where)
  if (r.repairAfter !== undefined) c.repairAfter = duration(r.repairAfter, 'repairAfter', where)
  if (r.gcGrace !== undefined) c.gcGrace = duration(r.gcGrace, 'gcGrace', where)
  if (r.maxStoreBytes !== undefined) c.maxStoreBytes = size(r.maxStoreBytes, 'maxStoreBytes', where)
  if (r.bootstrap !== undefined) {
    const list = Array.isArray(r.bootstrap) ? r.bootstrap : [r.bootstrap]
    c.bootstrap = list.map(v => parseHostPort(String(v), `${where}: bootstrap`))
  }
  if (r.scrubRate !== undefined) c.scrubRate = r.scrubRate === 0 || r.scrubRate === '0' ? 0 : size(r.scrubRate, 'scrubRate', where)
  if (r.quotaPerMember !== undefined && r.quotaPerMember !== null) c.quotaPerMember = size(r.quotaPerMember, 'quotaPerMember', where)
  if (r.holdLease !== undefined) c.holdLease = duration(r.holdLease, 'holdLease', where)
  if (r.scrubInterval !== undefined) c.scrubInterval = duration(r.scrubInterval, 'scrubInterval', where)
  if (r.metaCacheEntries !== undefined) c.metaCacheEntries = int(r.metaCacheEntries, 'metaCacheEntries', where, 1, 100_000_000)
  if (c.chunkSize < MIN_CHUNK || c.chunkSize > MAX_CHUNK || (c.chunkSize & (c.chunkSize - 1)) !== 0) {
    throw fail('BAD_CONFIG', `${where}: chunkSize must be a power of two between 64KiB and 16MiB`)
  }
  return c
}

function int (v: unknown, key: string, where: string, min: number, max: number): number {
  const n = typeof v === 'string' ? Number(v) : v
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) throw fail('BAD_CONFIG', `${where}: ${key} must be an integer from ${min} to ${max}`)
  return n
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1000, kib: 1024, m: 1024 ** 2, mb: 1e6, mib: 1024 ** 2, g: 1024 ** 3, gb: 1e9, gib: 1024 ** 3, t: 1024 ** 4, tib: 1024 ** 4 }

function size (v: unknown, key: string, where: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) return v
  const m = typeof v === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(v) : null
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined
  if (!m || unit === undefined) throw fail('BAD_CONFIG', `${where}: ${key} must be a size such as 1048576 or "1MiB"`)
  return Math.round(Number(m[1]) * unit)
}

function duration (v: unknown, key: string, where: string): number {
  if (typeof v === 'number' && v > 0) return v
  const m = typeof v === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(v) : null
  if (!m) throw fail('BAD_CONFIG', `${where}: ${key} must be milliseconds or a duration such as "5s"`)
  const mult = m[2] === 's' ? 1000 : m[2] === 'm' ? 60000 : m[2] === 'h' ? 3600000 : 1
  return Number(m[1]) * mult
}

export function parseHostPort (v: string, where = 'bootstrap'): HostPort {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(v.trim())
  const port = m ? Number(m[2]) : NaN
  if (!m || port < 1 || port > 65535) throw fail('BAD_CONFIG', `${where}: expected host:port, got "${v}"`)
  return { host: m[1], port }
}
