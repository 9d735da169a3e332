import type { CreateBehindBinding, WriteBehindBinding } from './native.js'
import { toErrno } from './errno.js'
import type { Owner } from '../vfs/vfs.js'

// Applies a queued write with the mtime the addon showed for it; answers the
// bytes written or a negative errno.
export type QueuedWrite = (path: string, fh: number, buf: Buffer, offset: number, time: number, cb: (bytesOrErrno: number) => void) => void

// Applies a queued write at once when it can: the bytes written or a
// negative errno, or null when it has to wait (then QueuedWrite applies it).
export type QueuedWriteNow = (path: string, fh: number, buf: Buffer, offset: number, time: number) => number | null

// Applies a queued attribute change; answers 0 or a negative errno.
export type AttrChangeApplier = (kind: number, path: string, a: number, b: number, atime: number, mtime: number, ctime: number) => number

// Applies a create the addon answered with this handle, inode number and
// time; answers 0 or a negative errno.
export type CreateApplier = (path: string, fh: number, mode: number, ino: number, time: number, owner: Owner) => number

// Write-behind. With the patched addon, a FUSE write is copied into a
// bounded queue on the FUSE thread and answered at once, so `dd` or `cp` no
// longer waits for a round trip through the event loop per 128 KiB; every
// other operation waits until the queue is empty (scripts/build-fuse.cjs (d)).
// Here the queued writes are applied through the ordinary write op, one at a
// time per file handle and in arrival order, so overlapping writes land as
// they were issued. A failed write is reported by the addon on the next
// write, flush or fsync of its handle.
//
// With `attrs`, the addon also queues a chmod, chown or utimens whose outcome
// its attribute cache can show (scripts/build-fuse.cjs (h)): it answers the
// caller at once, and here the change is applied after every queued write
// before it, with the change time the caller was shown.
export class WriteBehind {
  private readonly chains = new Map<number, Promise<void>>()
  private attrSeq = 0

  constructor (
    private readonly binding: WriteBehindBinding,
    private readonly write: QueuedWrite,
    private readonly attrs: AttrChangeApplier | null = null,
    private readonly writeNow: QueuedWriteNow | null = null,
    // Every queued create, attribute change and release, not writes: the
    // event loop is in a burst of small files (fuse/hot-loop.ts). Counting
    // writes made it spin through a 1 GiB dd, beside the crypto workers (a
    // compressible write went from 0.92x to 0.65x of gocryptfs).
    private readonly onItem: () => void = () => {}
  ) {}

  start (): void {
    const attrs = this.attrs
    this.binding.fuse_native_write_behind(
      (item, path, fh, buf, offset, time) => this.apply(item, path, fh, buf, offset, time),
      attrs ? (item, path, kind, a, b, atime, mtime, ctime) => this.applyAttrs(item, () => attrs(kind, path, a, b, atime, mtime, ctime)) : undefined
    )
  }

  // Creates answered by the addon (scripts/build-fuse.cjs (i)) are applied
  // in queue order like attribute changes; writes to the new handle wait for
  // the create.
  startCreates (binding: CreateBehindBinding, apply: CreateApplier): void {
    binding.fuse_native_cb_enable((item, path, fh, mode, ino, time, uid, gid) => this.applyAttrs(item, () => apply(path, fh, mode, ino, time, { uid, gid }), fh))
  }

  // After every write queued before it (the chains of all handles). With
  // `fh`, later writes to that handle wait for it.
  private applyAttrs (item: unknown, apply: () => number, fh?: number): void {
    this.onItem()
    const run = (): void => {
      let result: number
      try {
        result = apply()
      } catch (e) {
        result = toErrno(e)
      }
      this.binding.fuse_native_signal_wb(item, result)
    }
    const before = [...this.chains.values()]
    if (before.length === 0) {
      run()
      return
    }
    const key = fh ?? -(++this.attrSeq) // handles are positive
    const p = Promise.allSettled(before).then(run)
    this.chains.set(key, p)
    void p.then(() => { if (this.chains.get(key) === p) this.chains.delete(key) })
  }

  // Writes the addon holds or is applying: zero once every acknowledged write reached the VFS.
  get outstanding (): number {
    return this.binding.fuse_native_wb_outstanding()
  }

  // Writes queued since the mount, and the largest (the kernel's request size).
  stats (): { writes: number, largest: number } {
    const [writes, largest] = this.binding.fuse_native_wb_stats()
    return { writes, largest }
  }

  async drained (timeoutMs: number): Promise<boolean> {
    const until = Date.now() + timeoutMs
    while (this.outstanding > 0) {
      if (Date.now() > until) return false
      await new Promise(resolve => setTimeout(resolve, 5))
    }
    return true
  }

  private apply (item: unknown, path: string, fh: number, buf: Buffer, offset: number, time: number): void {
    // Nothing of this handle pending: the write may be done at once, and
    // then nothing after it waits (tar x: its chown, chmod and utimens).
    if (this.writeNow && !this.chains.has(fh)) {
      let result: number | null
      try {
        result = this.writeNow(path, fh, buf, offset, time)
      } catch (e) {
        result = toErrno(e)
      }
      if (result !== null) {
        this.binding.fuse_native_signal_wb(item, result, buf.buffer as ArrayBuffer)
        return
      }
    }
    const prev = this.chains.get(fh) ?? Promise.resolve()
    const next = prev.then(() => new Promise<void>(resolve => {
      let answered = false
      const answer = (result: number): void => {
        if (answered) return
        answered = true
        this.binding.fuse_native_signal_wb(item, result, buf.buffer as ArrayBuffer)
        resolve()
      }
      try {
        this.write(path, fh, buf, offset, time, answer)
      } catch (e) {
        answer(toErrno(e)) // queuedWrites answers errors itself; this is a last resort
      }
    }))
    this.chains.set(fh, next)
    void next.then(() => { if (this.chains.get(fh) === next) this.chains.delete(fh) })
  }
}
