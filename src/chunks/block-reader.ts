import type { ChunkStore, RemoteChunks } from './chunk-store.js'
import type { ChunkPipeline } from './chunk-pipeline.js'
import { fail, isDisktroError } from '../errors.js'

const MISSING = ' is not in the local store'

// Reads plaintext blocks by chunk id through a small LRU of decrypted
// blocks: the kernel reads 128 KiB at a time, so one 1 MiB chunk serves many
// reads. Content-addressed, so entries never go stale. Concurrent misses for
// one id share a single fetch.
export class BlockReader {
  private readonly cache = new Map<string, Buffer>()
  private readonly pending = new Map<string, Promise<Buffer>>()
  private readonly retired: Buffer[] = []

  remote: RemoteChunks | null = null
  // Whether the last block fetched was not stored here and came from a peer:
  // read-ahead then looks further, so network round trips overlap.
  lastFromPeer = false
  log: (line: string) => void = () => {}

  constructor (private readonly chunks: ChunkStore, private readonly pipeline: ChunkPipeline, private readonly capacity = 48) {}

  read (id: Buffer): Promise<Buffer> {
    const key = id.toString('hex')
    const hit = this.cache.get(key)
    if (hit) {
      this.cache.delete(key)
      this.cache.set(key, hit)
      return Promise.resolve(hit)
    }
    let p = this.pending.get(key)
    if (!p) {
      p = this.fetch(id, key).finally(() => this.pending.delete(key))
      this.pending.set(key, p)
    }
    return p
  }

  // A chunk missing or corrupt here is fetched from a peer, verified, and
  // stored back over the bad copy.
  private async heal (id: Buffer, key: string, why: string): Promise<Buffer> {
    let plain: Buffer | null = null
    const got = await this.remote!.fetch(id, async record => {
      try { plain = await this.pipeline.open(id, record); return true } catch { return false }
    })
    if (!got || !plain) throw fail('CORRUPT_CHUNK', `${why}; no peer has a good copy`)
    // Stored in the background: the reader has its bytes now, and a
    // sequential read of a remote file does not wait on a local commit per block.
    const from = got.from
    this.lastFromPeer = why.endsWith(MISSING)
    this.chunks.put(id, got.record).then(() => {
      // A chunk another member wrote is fetched on demand: not worth a line.
      if (!why.endsWith(MISSING)) this.log(`healed chunk ${key.slice(0, 16)} (${why}) with a copy from peer ${from.slice(0, 12)}`)
    }, e => this.log(`cannot keep chunk ${key.slice(0, 16)} fetched from peer ${from.slice(0, 12)}: ${(e as Error).message}`))
    return plain
  }

  // An evicted block's memory goes back to the crypto workers for the next
  // read, but only after the current macrotask: every reader copies out of a
  // block right after its await (OpenFile.read, blockForWrite), so readers
  // that were handed this block in the same turn (a cache hit resolved just
  // before the eviction) have finished with it by then. A reader must never
  // keep a block across another await.
  private retire (plain: Buffer): void {
    this.retired.push(plain)
    if (this.retired.length === 1) {
      setImmediate(() => {
        for (const b of this.retired.splice(0)) this.pipeline.recyclePlain(b)
      })
    }
  }

  // Warms the cache for a block about to be read; errors surface on the real read.
  prefetch (id: Buffer): void {
    this.read(id).catch(() => {})
  }

  private async fetch (id: Buffer, key: string): Promise<Buffer> {
    let plain: Buffer
    try {
      const stored = await this.pipeline.openStored(id, this.chunks)
      if (!stored) throw fail('CORRUPT_CHUNK', `chunk ${key.slice(0, 16)}${MISSING}`)
      plain = stored
      this.lastFromPeer = false
    } catch (e) {
      if (!isDisktroError(e, 'CORRUPT_CHUNK') || !this.remote) throw e
      plain = await this.heal(id, key, e.message)
    }
    this.cache.set(key, plain)
    if (this.cache.size > this.capacity) {
      const oldest = this.cache.keys().next().value as string
      this.retire(this.cache.get(oldest)!)
      this.cache.delete(oldest)
    }
    return plain
  }
}
