import type { LmdbStore } from '../store/lmdb-store.js'
import type { ChunkPipeline } from '../chunks/chunk-pipeline.js'
import { chunkRecordShapeError } from '../codec/chunk-record.js'
import { aeadSum } from '../codec/chunk-sum.js'
import { wrapStorageError } from '../errors.js'
import type { PutResult, PeerStats } from './peer-link.js'

// Answers peers' chunk requests from the local store. A full member checks a
// received record authenticates under the data key before keeping it (the
// AEAD tag, as opening would, without decrypting), which is then its
// checksum for the scrubber too (codec/chunk-sum.ts, 03); a storage-only member
// holds no such key, checks the record's shape (version, flags, a length no
// record of this volume's chunkSize exceeds: codec/chunk-record.ts) and keeps
// a SHA-256 of it; a full member checks the shape first too. Either way the ack
// goes out only after the record is committed and flushed to disk.
export class ChunkService {
  readonly traffic = { received: 0, served: 0 } // record bytes, this run (dashboard throughput)

  // `chunkSize`: the volume's; no record of it is longer than that plus the
  // record's overhead, so a longer one is refused (issue 28, item 8).
  constructor (private readonly store: LmdbStore, private readonly pipeline: ChunkPipeline | null, private readonly chunkSize: number) {}

  // Verifies the record (on a crypto worker) and commits it in the store's
  // next write batch; the promise resolves once the commit is on disk.
  // Chunks arriving together share that commit and its fsync.
  put (id: Buffer, record: Buffer, from?: string): Promise<PutResult> {
    if (id.length !== 32) return Promise.resolve({ ok: false, reason: 'bad chunk id' })
    const bytes = record.length
    const misshapen = chunkRecordShapeError(record, this.chunkSize)
    if (misshapen !== null) return Promise.resolve({ ok: false, reason: `chunk refused: ${misshapen}` })
    // A storage-only member stores what it cannot authenticate (and sums it).
    if (!this.pipeline) return this.store.putReplica(id, record, from).then(() => this.durable(bytes), refused)
    // The record, a view of the received message, is donated to a crypto
    // worker for its check and comes back in the same memory: neither the
    // caller nor anything else may touch that message after this call (the
    // id, a view of it too, is copied first).
    const key = Buffer.from(id)
    return this.pipeline.verifyAsync(key, record, true).then(
      checked => this.store.putReplica(key, checked, from, aeadSum()).then(() => this.durable(bytes), refused),
      () => ({ ok: false, reason: 'chunk failed verification' }))
  }

  private async durable (bytes: number): Promise<PutResult> {
    try {
      await this.store.flushed()
      this.traffic.received += bytes
      return { ok: true }
    } catch (e) {
      return refused(e)
    }
  }

  async get (id: Buffer): Promise<Buffer | null> {
    if (id.length !== 32) return null
    await this.store.prefetchChunks([id])
    const record = this.store.chunkCopy(id) ?? null
    if (record) this.traffic.served += record.length
    return record
  }

  has (ids: Buffer[]): boolean[] {
    return ids.map(id => id.length === 32 && this.store.hasChunk(id))
  }

  stats (): PeerStats {
    return storeStats(this.store)
  }
}

// A full disk refuses with a reason; placement moves on to another member.
function refused (e: unknown): PutResult {
  return { ok: false, reason: wrapStorageError(e, 'cannot store chunk').message }
}

// Live chunk count and bytes from LMDB's own page accounting: no scan, and
// unlike the file size it shrinks when chunks are deleted.
export function storeStats (store: LmdbStore): PeerStats {
  return store.chunkStats()
}
