import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { S_IFMT, S_IFREG, S_IFDIR, type Vfs } from '../vfs/vfs.js'
import { fail, isDisktroError } from '../errors.js'
import type { Transfer } from './web-types.js'

const O_RDONLY = 0
const READ_PIECE = 1024 * 1024 // one default chunk per read: whole blocks from the block reader
const KEEP_FINISHED_MS = 10_000

// Uploads and downloads in flight, for the page's progress bars.
export class Transfers {
  private readonly all = new Map<number, Transfer>()
  private next = 1
  private bytes = 0 // through this API, cumulative

  start (kind: Transfer['kind'], path: string, total: number | null): Transfer {
    const t: Transfer = { id: this.next++, kind, path, bytes: 0, total, started: Date.now(), done: false, error: null }
    this.all.set(t.id, t)
    return t
  }

  progress (t: Transfer, n: number): void {
    t.bytes += n
    this.bytes += n
  }

  finish (t: Transfer, error: string | null = null): void {
    t.done = true
    t.error = error
    setTimeout(() => this.all.delete(t.id), KEEP_FINISHED_MS).unref()
  }

  list (): Transfer[] {
    return [...this.all.values()]
  }

  get total (): number {
    return this.bytes
  }

  get active (): number {
    return this.list().filter(t => !t.done).length
  }
}

// Streams a request body into the file at `path`: written under a temporary
// name through create/write/release (the request is read as fast as the
// file takes it, so memory stays at a few blocks whatever the size), then
// renamed into place. A failed or aborted upload leaves nothing behind.
export async function upload (vfs: Vfs, path: string, req: IncomingMessage, overwrite: boolean, transfers: Transfers): Promise<{ path: string, size: number }> {
  const { dir, name } = split(path)
  if (name === '') throw fail('EINVAL', 'upload needs a file name')
  const parent = vfs.getattr(dir)
  if ((parent.mode & S_IFMT) !== S_IFDIR) throw fail('ENOTDIR', `${dir}: not a directory`)
  refuseExisting(vfs, path, overwrite)
  const length = req.headers['content-length'] === undefined ? null : Number(req.headers['content-length'])
  const tmp = `${dir === '/' ? '' : dir}/.disktro-upload-${randomBytes(6).toString('hex')}`
  const t = transfers.start('upload', path, length)
  const fh = vfs.create(tmp, 0o644)
  let released = false
  try {
    let offset = 0
    for await (const piece of req as AsyncIterable<Buffer>) {
      await vfs.write(fh, piece, piece.length, offset)
      offset += piece.length
      transfers.progress(t, piece.length)
    }
    if (!req.complete) throw fail('EIO', `upload of ${path} was cut off after ${offset} bytes`)
    if (length !== null && offset !== length) throw fail('EIO', `upload ended after ${offset} of ${length} bytes`)
    released = true
    await vfs.release(fh)
    refuseExisting(vfs, path, overwrite) // someone may have created it meanwhile
    vfs.rename(tmp, path)
    transfers.finish(t)
    return { path, size: offset }
  } catch (e) {
    transfers.finish(t, (e as Error).message)
    if (!released) await Promise.resolve().then(() => vfs.release(fh)).catch(() => {})
    try { vfs.unlink(tmp) } catch {}
    if (!isDisktroError(e)) throw fail('EIO', `upload of ${path} failed: ${(e as Error).message}`, e)
    throw e
  }
}

// Streams a file to the response, a block at a time, waiting for the client
// to take each one.
export async function download (vfs: Vfs, path: string, res: ServerResponse, transfers: Transfers): Promise<void> {
  const st = vfs.getattr(path)
  if ((st.mode & S_IFMT) !== S_IFREG) throw fail((st.mode & S_IFMT) === S_IFDIR ? 'EISDIR' : 'EINVAL', `${path}: not a regular file`)
  const fh = vfs.open(path, O_RDONLY)
  const t = transfers.start('download', path, st.size)
  let error: string | null = null
  try {
    const { name } = split(path)
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': String(st.size),
      'Content-Disposition': `attachment; filename="${name.replace(/[^\x20-\x7e]|["\\]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(name)}`
    })
    let offset = 0
    while (offset < st.size && !res.destroyed) {
      const want = Math.min(READ_PIECE, st.size - offset)
      const buf = Buffer.allocUnsafe(want) // the response holds it until sent: a fresh one each time
      const n = await vfs.read(fh, buf, want, offset)
      if (n === 0) break
      offset += n
      transfers.progress(t, n)
      if (!res.write(n === want ? buf : buf.subarray(0, n))) {
        await Promise.race([once(res, 'drain'), once(res, 'close')])
      }
    }
    if (offset < st.size) {
      // Shorter than the Content-Length promised: the client must see a failure.
      error = res.destroyed ? 'client went away' : 'file shrank while downloading'
      res.destroy()
    } else {
      res.end()
    }
  } catch (e) {
    error = (e as Error).message
    res.destroy()
  } finally {
    transfers.finish(t, error)
    await Promise.resolve().then(() => vfs.release(fh)).catch(() => {})
  }
}

function refuseExisting (vfs: Vfs, path: string, overwrite: boolean): void {
  let mode: number
  try {
    mode = vfs.getattr(path).mode
  } catch (e) {
    if (isDisktroError(e, 'ENOENT')) return
    throw e
  }
  if ((mode & S_IFMT) === S_IFDIR) throw fail('EISDIR', `${path} is a folder`)
  if (!overwrite) throw fail('EEXIST', `${path} exists (upload again with overwrite=1 to replace it)`)
}

export function split (path: string): { dir: string, name: string } {
  const i = path.lastIndexOf('/')
  return { dir: i <= 0 ? '/' : path.slice(0, i), name: path.slice(i + 1) }
}
