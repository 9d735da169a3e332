// Fresh allocations of 128 KiB and more are slow here, so block buffers are
// recycled. Buffers come back zeroed-or-not: callers fill what they use.
// They live in SharedArrayBuffers, so a crypto worker reads a block in place
// (never hand one to LMDB: lmdb-js does not take shared memory).
export class BufferPool {
  private readonly free: Buffer[] = []

  constructor (readonly size: number, private readonly keep = 16) {}

  acquire (): Buffer {
    return this.free.pop() ?? Buffer.from(new SharedArrayBuffer(this.size))
  }

  release (b: Buffer): void {
    if (b.length === this.size && this.free.length < this.keep) this.free.push(b)
  }
}
