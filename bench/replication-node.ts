// One side of the replication benchmark, run as its own process by
// bench/replication.ts. Phase 1 measures a raw Hyperswarm stream to the other
// process; phase 2 opens the real disktro node in the same process and
// measures replication of the sender's chunks to the receiver.
import { createRequire } from 'node:module'
import { createHash, randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { Session } from 'node:inspector/promises'
import { mkdir, writeFile, readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DisktroNode } from '../src/node.js'
import { DEFAULT_CONFIG, parseHostPort, type Config } from '../src/config.js'
import { widenSocketBuffers } from '../src/net/socket-buffers.js'

const require = createRequire(import.meta.url)
const Hyperswarm = require('hyperswarm')
const HyperDHT = require('hyperdht')
const MiB = 1024 * 1024

const { values } = parseArgs({ options: { 'data-dir': { type: 'string' }, bootstrap: { type: 'string' }, role: { type: 'string' }, size: { type: 'string' }, password: { type: 'string' } } })
const dataDir = values['data-dir']!
const bootstrap = parseHostPort(values.bootstrap!)
const sender = values.role === 'sender'
const size = Number(values.size) * MiB
const password = values.password!
const say = (o: unknown): void => { process.stdout.write(JSON.stringify(o) + '\n') }

const config: Config = { ...DEFAULT_CONFIG, replicaCount: 2, heartbeatInterval: 1000, port: 0, bootstrap: [bootstrap] }
const open = (offline: boolean): Promise<DisktroNode> => DisktroNode.open({ dataDir, offline, config, password: async () => password, newPassword: async () => password, log: () => {} })

async function fill (): Promise<void> {
  const node = await open(true)
  const fh = node.vfs.create('/payload', 0o644)
  const block = Buffer.allocUnsafe(MiB)
  for (let off = 0; off < size; off += MiB) {
    randomBytes(MiB).copy(block)
    await node.vfs.write(fh, block, MiB, off)
  }
  await node.vfs.release(fh)
  await node.close()
}

// `widened`: with the socket buffers disktro's own connections use
// (net/socket-buffers.ts); without, the stream as Hyperswarm ships it.
async function rawStream (widened: boolean): Promise<void> {
  const dht = new HyperDHT({ bootstrap: [bootstrap], host: '127.0.0.1' })
  const swarm = new Hyperswarm({ dht })
  const topic = createHash('sha256').update('disktro-raw-bench').update(widened ? 'widened' : 'stock').digest()
  const done = new Promise<void>(resolve => {
    swarm.on('connection', (conn: any) => {
      conn.on('error', () => {})
      if (widened) widenSocketBuffers(conn)
      if (sender) {
        const chunk = randomBytes(MiB)
        let sent = 0
        const pump = (): void => {
          while (sent < size) {
            sent += MiB
            if (!conn.write(chunk)) { conn.once('drain', pump); return }
          }
          conn.end()
        }
        pump()
        conn.on('close', () => resolve())
      } else {
        let got = 0; let t0 = 0n
        conn.on('data', (d: Buffer) => {
          if (got === 0) t0 = process.hrtime.bigint()
          got += d.length
          if (got >= size) {
            const seconds = Number(process.hrtime.bigint() - t0) / 1e9
            say({ raw: { bytes: got, seconds, widened } })
            conn.end()
            resolve()
          }
        })
      }
    })
  })
  const discovery = swarm.join(topic, { client: true, server: true })
  // Two processes that join at once can miss each other's first announce,
  // and Hyperswarm alone looks again only every ~10 minutes (disktro's own
  // network looks again too: net/peer-network.ts). Without this the phase
  // hung in about 1 run of 4.
  let connected = false
  swarm.once('connection', () => { connected = true })
  const again = setInterval(() => { if (!connected && swarm.connecting === 0) discovery.refresh().catch(() => {}) }, 2000)
  await done
  clearInterval(again)
  await swarm.destroy().catch(() => {})
}

async function replicate (): Promise<void> {
  const node = await open(false)
  if (!sender) {
    await new Promise<void>(resolve => process.stdin.once('data', () => resolve()))
    await node.close()
    return
  }
  const swarm = node.swarm!
  while (swarm.network.connections().length === 0) await new Promise(resolve => setTimeout(resolve, 20))
  const t0 = process.hrtime.bigint()
  swarm.replicator.rescan()
  // summary() walks every chunk; polling it every 20 ms would cost the
  // sender a tenth of its CPU. Acknowledged bytes are a free counter: every
  // record is at least its MiB of payload, so the last chunk's ack is the
  // earliest moment summary() can report them all at target.
  for (;;) {
    if (swarm.replicator.sentBytes >= size) {
      const s = swarm.replicator.summary()
      if (s.chunks > 0 && s.atTarget === s.chunks) break
    }
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  say({ replication: { bytes: size, seconds } })
  await node.close()
}

// DISKTRO_BENCH_PROFILE=dir: a CPU profile of the replication phase only
// (not the fill or the raw stream), one file per role.
async function profiled (fn: () => Promise<void>): Promise<void> {
  const dir = process.env.DISKTRO_BENCH_PROFILE
  if (!dir) return await fn()
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.start')
  try {
    await fn()
  } finally {
    const { profile } = await session.post('Profiler.stop')
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, `replication-${values.role!}.cpuprofile`), JSON.stringify(profile))
    session.disconnect()
  }
}

// CPU time (user + system, every thread of this process) per phase: on a
// shared machine a steadier figure than the rates, and it shows where the
// cost of replication over the raw stream goes.
async function timed (phase: string, fn: () => Promise<void>): Promise<void> {
  const c0 = process.cpuUsage()
  const t0 = await threadTicks()
  await fn()
  const c = process.cpuUsage(c0)
  const t1 = await threadTicks()
  const threads: Record<string, number> = {}
  for (const [tid, { name, ticks }] of t1) {
    const d = (ticks - (t0.get(tid)?.ticks ?? 0)) / 100
    const key = process.env.DISKTRO_BENCH_THREADS === 'tid' ? `${name}:${tid}` : name
    if (d > 0) threads[key] = Math.round(((threads[key] ?? 0) + d) * 100) / 100
  }
  say({ cpu: { phase, role: values.role!, seconds: (c.user + c.system) / 1e6, threads } })
}

// CPU ticks (1/100 s) per thread, by /proc (Linux); empty elsewhere.
async function threadTicks (): Promise<Map<string, { name: string, ticks: number }>> {
  const out = new Map<string, { name: string, ticks: number }>()
  const tids = await readdir('/proc/self/task').catch(() => [] as string[])
  for (const tid of tids) {
    try {
      const stat = await readFile(`/proc/self/task/${tid}/stat`, 'utf8')
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      out.set(tid, { name: tid === String(process.pid) ? 'main' : name, ticks: Number(f[11]) + Number(f[12]) })
    } catch {}
  }
  return out
}

if (sender) await fill()
say({ ready: true })
await timed('raw', () => rawStream(false))
await timed('raw-widened', () => rawStream(true))
await timed('replication', () => profiled(replicate))
process.exit(0)
