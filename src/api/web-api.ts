import type { IncomingMessage, ServerResponse } from 'node:http'
import { S_IFMT, S_IFREG, S_IFDIR, S_IFLNK, type Vfs } from '../vfs/vfs.js'
import { DisktroError, fail, isDisktroError, type ErrorCode } from '../errors.js'
import type { WebBackend, PinControl } from './web-backend.js'
import { Transfers, upload, download } from './file-transfer.js'
import { LiveFeed } from './live-feed.js'
import type { ApiReply, DirListing, EntryType, FileEntry, FileInfo } from './web-types.js'

const MAX_LISTING = 5000
const MAX_CHUNK_MAP = 4096
const MAX_JSON_BODY = 64 * 1024
const UPLOAD_PREFIX = '.disktro-upload-'

const STATUS_OF: Partial<Record<ErrorCode, number>> = {
  ENOENT: 404, EEXIST: 409, ENOTEMPTY: 409, EBUSY: 409, ENOTDIR: 400, EISDIR: 400, EINVAL: 400,
  ENAMETOOLONG: 400, EPERM: 403, EACCES: 403, ENOSPC: 507, EFBIG: 413
}

type Handler = (req: IncomingMessage, res: ServerResponse, q: URLSearchParams) => Promise<unknown>

// The /api/ routes. Every answer is JSON { success, message, data } except a
// download (the file's bytes) and /api/events (server-sent events).
export class WebApi {
  readonly transfers = new Transfers()
  readonly feed: LiveFeed
  private readonly routes: Record<string, Handler>

  // `ticket`: a single-use ticket for one download of a path (web-guard.ts).
  constructor (private readonly b: WebBackend, log: (line: string) => void, ticket: (path: string) => { ticket: string, expiresIn: number }) {
    this.feed = new LiveFeed(b, this.transfers, log)
    this.routes = {
      'GET /api/info': async () => b.info(),
      'GET /api/status': async () => await b.status(),
      'GET /api/peers': async () => await b.peers(),
      'GET /api/files': async (_req, _res, q) => this.list(path(q)),
      'GET /api/file': async (_req, _res, q) => this.fileInfo(path(q)),
      'DELETE /api/files': async (_req, _res, q) => this.remove(path(q), q.get('recursive') === '1'),
      'POST /api/mkdir': async (_req, _res, q) => { this.vfs().mkdir(path(q), 0o755); return { path: path(q) } },
      'POST /api/upload': async (req, _res, q) => await this.upload(req, q),
      'GET /api/download': async (_req, res, q) => { await download(this.vfs(), path(q), res, this.transfers) },
      'POST /api/ticket': async req => await this.ticket(req, ticket),
      'GET /api/pins': async () => this.pins().list(),
      'POST /api/pin': async req => await this.pinChange(req, true),
      'POST /api/unpin': async req => await this.pinChange(req, false),
      'GET /api/events': async (_req, res) => { this.feed.add(res) }
    }
  }

  async handle (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const route = this.routes[`${req.method} ${url.pathname}`]
    if (!route) {
      const known = Object.keys(this.routes).some(k => k.endsWith(' ' + url.pathname))
      return reply(res, known ? 405 : 404, { success: false, message: known ? `${req.method} not allowed on ${url.pathname}` : `no API ${url.pathname}`, data: null })
    }
    let data: unknown
    try {
      data = await route(req, res, url.searchParams)
    } catch (e) {
      if (res.headersSent) { res.destroy(); return }
      const code = isDisktroError(e) ? e.code : 'EIO'
      const message = e instanceof DisktroError ? e.message : `internal error: ${(e as Error).message}`
      if (req.readableEnded === false) req.resume() // drain an upload body we refused
      return reply(res, STATUS_OF[code as ErrorCode] ?? 500, { success: false, message, data: { code } })
    }
    if (res.headersSent || res.destroyed) return // a download or the event stream answered itself
    reply(res, 200, { success: true, message: 'ok', data: data ?? null })
  }

  close (): void {
    this.feed.close()
  }

  private vfs (): Vfs {
    if (!this.b.vfs) throw fail('EPERM', 'this node is a storage-only member: it holds no key that reads names or data, so it has no files to show (use a full member\'s dashboard)')
    return this.b.vfs
  }

  private pins (): PinControl {
    if (!this.b.pins) throw fail('EPERM', 'this node is a storage-only member: it has no files to pin')
    return this.b.pins
  }

  private list (dir: string): DirListing {
    const vfs = this.vfs()
    const names = vfs.readdir(dir).filter(n => n !== '.' && n !== '..' && !n.startsWith(UPLOAD_PREFIX))
    const entries: FileEntry[] = []
    for (const name of names.slice(0, MAX_LISTING)) {
      const p = dir === '/' ? `/${name}` : `${dir}/${name}`
      try {
        entries.push(this.entry(vfs, p, name))
      } catch (e) {
        if (!isDisktroError(e, 'ENOENT')) throw e // removed while listing
      }
    }
    return { path: dir, entries, truncated: names.length > MAX_LISTING }
  }

  private entry (vfs: Vfs, p: string, name: string): FileEntry {
    const st = vfs.getattr(p)
    const type = typeOf(st.mode)
    return {
      name, path: p, type, size: type === 'dir' ? 0 : st.size, mtime: st.mtime, mode: st.mode & 0o7777,
      replication: type === 'file' ? this.b.replicationOf(st.ino) : null,
      pins: this.b.pins?.of(st.ino) ?? []
    }
  }

  private fileInfo (p: string): FileInfo {
    const vfs = this.vfs()
    const e = this.entry(vfs, p, p === '/' ? '' : p.slice(p.lastIndexOf('/') + 1))
    const ino = vfs.resolve(p)
    return { ...e, copies: e.type === 'file' ? this.b.copiesOf(ino, MAX_CHUNK_MAP) : [], chunkSize: this.b.info().chunkSize }
  }

  private remove (p: string, recursive: boolean): { path: string, removed: number } {
    const vfs = this.vfs()
    if (p === '/') throw fail('EBUSY', 'the root folder cannot be deleted')
    let removed = 0
    const rm = (q: string): void => {
      if ((vfs.getattr(q).mode & S_IFMT) !== S_IFDIR) { vfs.unlink(q); removed++; return }
      if (recursive) for (const n of vfs.readdir(q)) if (n !== '.' && n !== '..') rm(`${q}/${n}`)
      vfs.rmdir(q)
      removed++
    }
    rm(p)
    return { path: p, removed }
  }

  // With pin=<peer>: "upload to that peer", checked before a byte is read.
  private async upload (req: IncomingMessage, q: URLSearchParams): Promise<{ path: string, size: number, pinned: string | null }> {
    const vfs = this.vfs()
    const peer = q.get('pin')?.toLowerCase() || null
    if (peer !== null) {
      if (!/^[0-9a-f]{64}$/.test(peer)) throw fail('EINVAL', 'pin must be a node id (64 hex digits)')
      this.pins().check(peer)
    }
    const r = await upload(vfs, path(q), req, q.get('overwrite') === '1', this.transfers)
    if (peer !== null) this.pins().pin(vfs.resolve(r.path), peer)
    return { ...r, pinned: peer }
  }

  // A download's ticket: the browser fetches a download by itself, without
  // the page's Authorization header.
  private async ticket (req: IncomingMessage, issue: (path: string) => { ticket: string, expiresIn: number }): Promise<{ path: string, ticket: string, expiresIn: number }> {
    const body = await jsonBody(req)
    const p = clean(typeof body.path === 'string' ? body.path : '')
    const st = this.vfs().getattr(p)
    if ((st.mode & S_IFMT) !== S_IFREG) throw fail('EISDIR', `${p} is not a file`)
    return { path: p, ...issue(p) }
  }

  private async pinChange (req: IncomingMessage, on: boolean): Promise<{ path: string, peer: string, changed: boolean }> {
    const pins = this.pins()
    const body = await jsonBody(req)
    const p = clean(typeof body.path === 'string' ? body.path : '')
    const peer = typeof body.peer === 'string' ? body.peer.toLowerCase() : ''
    if (!/^[0-9a-f]{64}$/.test(peer)) throw fail('EINVAL', 'peer must be a node id (64 hex digits)')
    const ino = this.vfs().resolve(p)
    const changed = on ? pins.pin(ino, peer) : pins.unpin(ino, peer)
    if (!on && !changed) throw fail('ENOENT', `${p} is not pinned to ${peer.slice(0, 16)}`)
    return { path: p, peer, changed }
  }
}

function reply (res: ServerResponse, status: number, body: ApiReply<unknown>): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' })
  res.end(text)
}

function typeOf (mode: number): EntryType {
  switch (mode & S_IFMT) {
    case S_IFREG: return 'file'
    case S_IFDIR: return 'dir'
    case S_IFLNK: return 'symlink'
    default: return 'other'
  }
}

function path (q: URLSearchParams): string {
  return clean(q.get('path') ?? '/')
}

// An absolute path in the volume, without empty, '.' or '..' parts.
export function clean (p: string): string {
  if (!p.startsWith('/')) throw fail('EINVAL', `path must start with /: ${p}`)
  if (p.includes('\0')) throw fail('EINVAL', 'path contains NUL')
  const parts = p.split('/').filter(x => x !== '')
  if (parts.some(x => x === '.' || x === '..')) throw fail('EINVAL', `path may not contain . or ..: ${p}`)
  return '/' + parts.join('/')
}

async function jsonBody (req: IncomingMessage): Promise<Record<string, unknown>> {
  const pieces: Buffer[] = []
  let n = 0
  for await (const piece of req as AsyncIterable<Buffer>) {
    n += piece.length
    if (n > MAX_JSON_BODY) throw fail('EINVAL', 'request body too large')
    pieces.push(piece)
  }
  try {
    const v = JSON.parse(Buffer.concat(pieces).toString('utf8'))
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v
  } catch {}
  throw fail('EINVAL', 'expected a JSON object body')
}
