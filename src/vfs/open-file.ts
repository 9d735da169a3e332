import type { ChunkPipeline, SealedChunk } from '../chunks/chunk-pipeline.js'
import type { ChunkStore } from '../chunks/chunk-store.js'
import type { BlockReader } from '../chunks/block-reader.js'
import type { Namespace } from '../meta/namespace.js'
import type { BufferPool } from './buffer-pool.js'
import type { InodeAttrs } from '../codec/inode-record.js'
import { fail, DisktroError, wrapStorageError } from '../errors.js'

const MAX_INFLIGHT = 4 // sealed blocks awaiting commit per file: bounds memory
const INLINE_RECORD_BYTES = 128 * 1024

interface Inflight {
  buf: Buffer
  len: number
  done: Promise<void>
}

export interface OpenFileDeps {
  ns: Namespace
  chunks: ChunkStore
  pipeline: ChunkPipeline
  reader: BlockReader
  pool: BufferPool
  chunkSize: number
}

// The write-back state of one regular file while any handle has it open.
// Writes land in block-sized buffers; a block is sealed (hashed, compressed,
// encrypted, stored) in the background as soon as it is full, and the rest on
// flush/fsync. Reads see buffered data first, so the file always reads back
// what was written. Errors from background sealing surface on the next
// write, flush or fsync, as write-back errors do on any filesystem.
export class OpenFile {
  handles = 0
  size: number
  mtime: number
  ctime = 0 // last change while open: an explicitly set (older) mtime must not pull it back
  private committedSize: number
  private readonly dirty = new Map<number, Buffer>()
  // A new block past the end of the file is not zeroed up front: bytes from
  // here on are not yet initialized (zeroed on demand, see settle()).
  private readonly zeroedTo = new Map<number, number>()
  private readonly loading = new Map<number, Promise<Buffer>>()
  private readonly inflight = new Map<number, Inflight>()
  private pendingAttrs = false
  private held: Partial<InodeAttrs> | null = null
  private aheadFrom = -2 // the block the last read-ahead started at
  private aheadWindow = 1
  private aheadTo = -1 // the last block read-ahead has asked for
  private warmedTo = -1 // the last block warmed
  private error: DisktroError | null = null

  constructor (readonly ino: number, size: number, mtime: number, private readonly d: OpenFileDeps) {
    this.size = size
    this.committedSize = size
    this.mtime = mtime
  }

  get isDirty (): boolean {
    return this.dirty.size > 0 || this.inflight.size > 0 || this.pendingAttrs || this.held !== null
  }

  // Attribute changes (mode, owner, times) held for the next commit of this
  // file's data, or null.
  get heldAttrs (): Partial<InodeAttrs> | null {
    return this.held
  }

  // An attribute change made while the file holds data not yet committed
  // rides in that data's commit instead of a transaction of its own: a file
  // written, then chmod/chown/touch'ed and closed (tar x, cp -p, rsync) costs
  // one transaction, not four. A crash before the flush loses the change
  // with the data it came with; close and fsync commit both. False (nothing
  // held) when there is no such data: commit the change now.
  hold (attrs: Partial<InodeAttrs>): boolean {
    if (this.dirty.size === 0 && this.inflight.size === 0) return false
    this.held = { ...this.held, ...attrs }
    if (attrs.mtime !== undefined) this.mtime = attrs.mtime
    if (attrs.ctime !== undefined) this.ctime = Math.max(this.ctime, attrs.ctime)
    return true
  }

  // The write done at once, when nothing it touches has to be read first
  // and the file is not held back by blocks in flight; null (nothing done)
  // otherwise: then call write(). A small file written from its start
  // (tar x, cp) never waits, so this saves its promise chain.
  writeNow (data: Buffer, offset: number, time: number): number | null {
    this.throwPending()
    if (this.inflight.size > MAX_INFLIGHT) return null
    const cs = this.d.chunkSize
    for (let done = 0; done < data.length;) {
      const [index, inner, n] = this.spanAt(offset + done, data.length - done)
      done += n
      if (this.dirty.has(index)) continue
      if (this.loading.has(index)) return null
      if (!(inner === 0 && n === cs) && index * cs < this.size) return null // its current bytes must be read
    }
    let done = 0
    while (done < data.length) {
      const [index, inner, n] = this.spanAt(offset + done, data.length - done)
      let buf = this.dirty.get(index)
      if (!buf) {
        buf = this.d.pool.acquire()
        if (!(inner === 0 && n === cs)) this.zeroedTo.set(index, 0)
        this.dirty.set(index, buf)
      }
      this.place(index, buf, data, done, inner, n)
      done += n
    }
    this.wrote(time)
    return done
  }

  // `time`: the write's mtime (when the caller showed one already).
  async write (data: Buffer, offset: number, time = Date.now()): Promise<number> {
    this.throwPending()
    let done = 0
    while (done < data.length) {
      const [index, inner, n] = this.spanAt(offset + done, data.length - done)
      const buf = await this.blockForWrite(index, inner === 0 && n === this.d.chunkSize)
      this.place(index, buf, data, done, inner, n)
      done += n
    }
    this.wrote(time)
    await this.backpressure()
    return done
  }

  // n bytes of data from `from` into block `index` (its buffer) at `inner`,
  // zeroing any gap before them that holds no bytes yet; the file grows to
  // cover them, and a block filled to its end is sealed.
  private place (index: number, buf: Buffer, data: Buffer, from: number, inner: number, n: number): void {
    const z = this.zeroedTo.get(index)
    if (z !== undefined) {
      if (inner > z) buf.fill(0, z, inner)
      if (inner + n > z) this.zeroedTo.set(index, inner + n)
    }
    data.copy(buf, inner, from, from + n)
    const end = index * this.d.chunkSize + inner + n
    if (end > this.size) this.size = end
    if (inner + n === this.d.chunkSize) this.seal(index)
  }

  // The block at byte `pos`, where in it, and how many of `left` bytes it takes.
  private spanAt (pos: number, left: number): [number, number, number] {
    const cs = this.d.chunkSize
    const index = Math.floor(pos / cs)
    const inner = pos - index * cs
    return [index, inner, Math.min(cs - inner, left)]
  }

  // How many of the file's bytes block `index` holds (less at the end, 0 past it).
  private bytesIn (index: number): number {
    const cs = this.d.chunkSize
    return Math.max(0, Math.min(cs, this.size - index * cs))
  }

  // The times a write leaves, to be committed.
  private wrote (time: number): void {
    this.mtime = time
    this.ctime = Math.max(this.ctime, time)
    this.pendingAttrs = true
  }

  async read (target: Buffer, length: number, offset: number): Promise<number> {
    const cs = this.d.chunkSize
    const end = Math.min(offset + length, this.size)
    if (offset < end) this.readAhead(Math.floor(offset / cs))
    let pos = offset
    while (pos < end) {
      const index = Math.floor(pos / cs)
      const inner = pos - index * cs
      const n = Math.min(cs - inner, end - pos)
      const src = await this.blockForRead(index)
      const at = pos - offset
      if (src) {
        const avail = Math.max(0, Math.min(n, src.length - inner))
        if (avail > 0) src.copy(target, at, inner, inner + avail)
        if (avail < n) target.fill(0, at + avail, at + n)
      } else {
        target.fill(0, at, at + n)
      }
      pos += n
    }
    return Math.max(0, end - offset)
  }

  async truncate (size: number): Promise<void> {
    await this.flush()
    this.d.ns.commit({ op: 'truncate', ino: this.ino, size, mtime: Date.now() })
    this.size = size
    this.committedSize = size
    this.mtime = this.ctime = Date.now()
  }

  // Seals every buffered block and commits size and times.
  async flush (): Promise<void> {
    for (const index of [...this.dirty.keys()]) this.seal(index)
    while (this.inflight.size > 0) {
      await Promise.allSettled([...this.inflight.values()].map(f => f.done))
    }
    this.throwPending()
    this.commitAttrs()
  }

  // The flush done here and now, when nothing is in flight and at most one
  // block waits, small enough to seal on this thread (a small file at
  // close, or any file flushed a second time): true when done, false when
  // nothing was done (then call flush()). A failed commit throws and keeps
  // the block to try again.
  flushNow (): boolean {
    if (this.inflight.size > 0 || this.loading.size > 0 || this.dirty.size > 1) return false
    this.throwPending()
    for (const [index, buf] of this.dirty) {
      const len = this.bytesIn(index)
      const plain = this.settle(index, buf, len).subarray(0, len)
      const hole = len === 0 || isZero(plain)
      const sealed = hole ? null : this.d.pipeline.sealNow(plain)
      if (!hole && sealed === null) return false
      this.commitSealed(index, sealed, len)
      this.zeroedTo.delete(index)
      this.dirty.delete(index)
      this.d.pool.release(buf)
    }
    this.commitAttrs()
    return true
  }

  // Size, times and held attribute changes not yet committed with a block.
  private commitAttrs (): void {
    if (this.pendingAttrs || this.held !== null || this.size !== this.committedSize) {
      const cur = this.d.ns.getAttrs(this.ino)
      const ctime = Math.max(this.ctime, cur?.ctime ?? 0)
      // The last block's commit usually wrote these already (a small file
      // written and closed): no second transaction for the same values.
      if (!cur || this.held !== null || cur.size !== this.size || cur.mtime !== this.mtime || cur.ctime !== ctime) {
        this.d.ns.commit({ op: 'setattr', ino: this.ino, attrs: { ...this.held, size: this.size, mtime: this.mtime, ctime } })
      }
      this.committedSize = this.size
      this.pendingAttrs = false
      this.held = null
    }
  }

  private throwPending (): void {
    if (this.error) {
      const e = this.error
      this.error = null
      throw e
    }
  }

  private async backpressure (): Promise<void> {
    while (this.inflight.size > MAX_INFLIGHT) {
      await Promise.race([...this.inflight.values()].map(f => f.done))
    }
  }

  private async blockForWrite (index: number, whole: boolean): Promise<Buffer> {
    const have = this.dirty.get(index)
    if (have) return have
    const loading = this.loading.get(index)
    if (loading) return await loading
    const p = (async () => {
      const buf = this.d.pool.acquire()
      if (whole) return buf
      const current = index * this.d.chunkSize < this.size ? await this.blockForRead(index) : null
      if (current) {
        const n = Math.min(current.length, buf.length)
        current.copy(buf, 0, 0, n)
        this.zeroedTo.set(index, n) // the rest is zeroed when something reads or seals it
      } else {
        this.zeroedTo.set(index, 0)
      }
      return buf
    })()
    this.loading.set(index, p)
    try {
      const buf = await p
      this.dirty.set(index, buf)
      return buf
    } finally {
      this.loading.delete(index)
    }
  }

  // The current bytes of a block (possibly shorter than a block), or null for a hole.
  private async blockForRead (index: number): Promise<Buffer | null> {
    const valid = this.bytesIn(index)
    const dirty = this.dirty.get(index)
    if (dirty) return this.settle(index, dirty, valid).subarray(0, valid)
    const fl = this.inflight.get(index)
    if (fl) return fl.buf.subarray(0, Math.min(fl.len, valid))
    const ref = this.d.ns.getBlock(this.ino, index)
    if (!ref) return null
    const plain = await this.d.reader.read(ref.id)
    return plain.subarray(0, Math.min(ref.length, valid, plain.length))
  }

  // Sequential reads prefetch blocks ahead (decrypted on the crypto worker
  // while the kernel is still asking for earlier ones): the window doubles
  // up to READ_AHEAD blocks while reads stay within what was already asked
  // for, or a few blocks past it (the kernel's own read-ahead sends several
  // requests at once, blocks apart and not in order), and falls back to one
  // block on a jump. At least REMOTE_READ_AHEAD when blocks come from a peer, so network
  // round trips overlap. As far again beyond the window, records are only
  // warmed (read from disk on lmdb's prefetch thread), so the worker finds
  // them in memory.
  private readAhead (index: number): void {
    const sequential = this.aheadTo >= 0 && index >= this.aheadFrom - 2 && index <= this.aheadTo + 1 + AHEAD_GAP
    if (sequential && index <= this.aheadFrom) return // same block, or a straggler of an earlier one
    this.aheadWindow = sequential ? Math.min(READ_AHEAD, this.aheadWindow * 2) : 1
    if (!sequential) this.aheadTo = this.warmedTo = index - 1
    this.aheadFrom = index
    const window = this.d.reader.lastFromPeer ? Math.max(this.aheadWindow, REMOTE_READ_AHEAD) : this.aheadWindow
    const end = index + window
    const warmEnd = window >= READ_AHEAD ? end + window : end
    const warm: Buffer[] = []
    for (let i = this.aheadTo + 1; i < warmEnd; i++) {
      if (i * this.d.chunkSize >= this.size || this.dirty.has(i) || this.inflight.has(i)) break
      if (i >= end && i <= this.warmedTo) continue
      const ref = this.d.ns.getBlock(this.ino, i)
      if (i < end) {
        this.aheadTo = i
        if (ref) this.d.reader.prefetch(ref.id)
      } else {
        this.warmedTo = i
        if (ref) warm.push(ref.id)
      }
    }
    if (warm.length > 0) this.d.chunks.warm(warm)
  }

  // Zeroes what was never written of a dirty block up to `upTo` (the bytes
  // about to be read or sealed): a small file's last block is never zeroed to
  // its 1 MiB end.
  private settle (index: number, buf: Buffer, upTo: number): Buffer {
    const z = this.zeroedTo.get(index)
    if (z !== undefined && z < upTo) {
      buf.fill(0, z, upTo)
      if (upTo >= buf.length) this.zeroedTo.delete(index)
      else this.zeroedTo.set(index, upTo)
    }
    return buf
  }

  private seal (index: number): void {
    const buf = this.dirty.get(index)
    if (!buf) return
    const len = this.bytesIn(index)
    this.settle(index, buf, len) // in flight, the block is read only up to len
    this.zeroedTo.delete(index)
    this.dirty.delete(index)
    const previous = this.inflight.get(index)
    const entry: Inflight = { buf, len, done: Promise.resolve() }
    entry.done = this.commitBlock(index, buf, len, previous).catch((e: unknown) => {
      this.error = e instanceof DisktroError ? e : wrapStorageError(e, `cannot store block ${index} of inode ${this.ino}`)
    }).finally(() => {
      if (this.inflight.get(index) === entry) this.inflight.delete(index)
      this.d.pool.release(buf)
    })
    this.inflight.set(index, entry)
  }

  private async commitBlock (index: number, buf: Buffer, len: number, previous: Inflight | undefined): Promise<void> {
    const plain = buf.subarray(0, len)
    const hole = len === 0 || isZero(plain)
    const sealed = hole ? null : await this.d.pipeline.seal(plain)
    // Big records go to LMDB's write thread first so the event loop never
    // copies them inside a transaction; small ones ride in the commit
    // (commitSealed), which saves a round trip through the write thread.
    if (sealed && sealed.record.length > INLINE_RECORD_BYTES && !this.d.chunks.has(sealed.id, false)) {
      await this.d.chunks.put(sealed.id, sealed.record, sealed.sum)
    }
    // Commits of one block apply in the order the block was sealed.
    if (previous) await previous.done
    this.commitSealed(index, sealed, len)
  }

  // Commits block `index` (len bytes) as `sealed` (null: a hole), with the
  // attribute changes held for it.
  private commitSealed (index: number, sealed: SealedChunk | null, len: number): void {
    if (sealed && sealed.record.length <= INLINE_RECORD_BYTES && !this.d.chunks.has(sealed.id, true)) this.d.chunks.checkRoom(sealed.record.length)
    const end = index * this.d.chunkSize + len
    const size = Math.max(this.committedSize, end)
    const attrs = this.held
    this.held = null
    try {
      this.d.ns.commit({
        op: 'blocks',
        ino: this.ino,
        size,
        mtime: this.mtime,
        blocks: [[index, sealed ? sealed.id.toString('hex') : null, len]],
        ...(attrs ? { attrs } : {})
      }, sealed ? [sealed] : [])
    } catch (e) {
      if (attrs) this.held = { ...attrs, ...(this.held ?? {}) }
      throw e
    }
    this.committedSize = size
    if (sealed) this.d.pipeline.recycle(sealed.record)
  }
}

const READ_AHEAD = 8
const REMOTE_READ_AHEAD = 4
const AHEAD_GAP = 4 // blocks a read may skip and still count as sequential (the kernel's read-ahead is 4 MiB: fuse/read-ahead.ts)
const ZERO = Buffer.alloc(64 * 1024)
function isZero (b: Buffer): boolean {
  for (let o = 0; o < b.length; o += ZERO.length) {
    const n = Math.min(ZERO.length, b.length - o)
    if (b.compare(ZERO, 0, n, o, o + n) !== 0) return false
  }
  return true
}

export function assertRegular (isRegular: boolean, path: string): void {
  if (!isRegular) throw fail('EISDIR', `${path} is not a regular file`)
}
