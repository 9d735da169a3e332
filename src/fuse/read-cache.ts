import type { ReadCacheBinding } from './native.js'

export interface ReadCacheDeps {
  blockSize: number
  // Reads through the VFS into `buf`: the bytes read (fewer at the end of the file).
  read (fh: number, buf: Buffer, length: number, offset: number): Promise<number>
  // Writes acknowledged by write-behind and not yet applied.
  outstanding (): number
}

// Cache memory at most, and blocks filled ahead of the reader.
const CACHE_BYTES = 32 * 1024 * 1024
const MAX_ENTRIES = 64
const FILLS_AT_ONCE = 3

interface Reader {
  next: number // the next block to fill
  last: number // the furthest block read
  eof: boolean // a fill reached the end of the file
}

// The read cache of the patched addon (scripts/build-fuse.cjs (e)): whole
// plaintext blocks, filled from here ahead of a sequential reader, serve
// FUSE reads on the FUSE threads. The kernel asks 128 KiB at a time, so
// without it a 1 MiB block costs 8 round trips through the event loop.
//
// Stale data is ruled out by the addon's generation counter: a fill reads
// the generation first and commits under it, and the addon refuses the
// commit if any write, truncate or release (or invalidate(), for changes that
// do not come through FUSE) bumped it meanwhile. A fill starts only while no
// write acknowledged by write-behind is still to be applied: such a write
// bumped the generation already, and the VFS would not show it yet.
export class ReadCache {
  private readonly buffers: Buffer[]
  private readonly readers = new Map<number, Reader>()
  private readonly ahead: number
  private running = 0
  private readonly waiting: number[] = [] // handles with fills to start

  private constructor (private readonly binding: ReadCacheBinding, private readonly d: ReadCacheDeps, buffers: Buffer[]) {
    this.buffers = buffers
    this.ahead = Math.max(1, Math.floor(buffers.length / 2) - 1)
  }

  // Null when the addon's cache was enabled already (one mount per process).
  static start (binding: ReadCacheBinding, d: ReadCacheDeps): ReadCache | null {
    const entries = Math.max(4, Math.min(MAX_ENTRIES, Math.floor(CACHE_BYTES / d.blockSize)))
    let cache: ReadCache | null = null
    const buffers = binding.fuse_native_rc_enable(d.blockSize, entries, (fh, offset) => cache?.onRead(fh, offset))
    if (!buffers) return null
    cache = new ReadCache(binding, d, buffers)
    return cache
  }

  // A read at `offset` on `fh` (answered by the VFS, or by the addon: its
  // hint). Sequential readers get blocks filled ahead of them.
  onRead (fh: number, offset: number): void {
    const block = Math.floor(offset / this.d.blockSize)
    let r = this.readers.get(fh)
    if (!r || block < r.last - 1 || block > r.next + this.ahead) {
      r = { next: block, last: block, eof: false } // a new reader, or a jump
      this.readers.set(fh, r)
    }
    r.last = Math.max(r.last, block)
    this.pump(fh)
  }

  // The handle was released.
  forget (fh: number): void {
    this.readers.delete(fh)
  }

  // The tree changed other than through FUSE (a peer's change, the web API).
  invalidate (): void {
    this.binding.fuse_native_rc_invalidate()
  }

  // [reads the addon answered from the cache, reads it passed on]
  stats (): { hits: number, misses: number } {
    const [hits, misses] = this.binding.fuse_native_rc_stats()
    return { hits, misses }
  }

  private pump (fh: number): void {
    const r = this.readers.get(fh)
    if (!r) return
    while (!r.eof && r.next <= r.last + this.ahead) {
      if (this.running >= FILLS_AT_ONCE) {
        if (!this.waiting.includes(fh)) this.waiting.push(fh)
        return
      }
      void this.fill(fh, r, r.next++)
    }
  }

  private async fill (fh: number, r: Reader, block: number): Promise<void> {
    const gen = this.binding.fuse_native_rc_gen()
    if (this.d.outstanding() > 0) return
    const index = this.binding.fuse_native_rc_acquire(fh, block)
    if (index < 0) return
    this.running++
    let n = -1
    try {
      n = await this.d.read(fh, this.buffers[index], this.d.blockSize, block * this.d.blockSize)
      if (n < this.d.blockSize) r.eof = true
    } catch {
      // The read that needs this block reports the error itself.
    } finally {
      this.binding.fuse_native_rc_commit(index, n, gen)
      this.running--
      this.pump(fh)
      while (this.running < FILLS_AT_ONCE && this.waiting.length > 0) this.pump(this.waiting.shift()!)
    }
  }
}
