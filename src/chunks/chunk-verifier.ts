import type { ChunkPipeline } from './chunk-pipeline.js'
import { decodeChunkRecord } from '../codec/chunk-record.js'
import { chunkSumAsync, aeadSum, isAeadSum, isChunkSum, sumMatches } from '../codec/chunk-sum.js'

// good: the record is what was stored (checksum match);
// adopt: no checksum yet (stored before checksums existed) and the record is
//   acceptable: it opens under the data key, or, on a storage-only member
//   that cannot open it, has the right shape (trust on first use);
// bad: checksum mismatch, or it fails to open.
export type Verdict = { state: 'good' } | { state: 'adopt', sum: Buffer } | { state: 'bad', why: string }

// Decides whether a stored chunk record is intact. Every member keeps a
// checksum of each record it stores; a full member can also open a record
// under the data key, which is the real test (bound to the chunk id).
export class ChunkVerifier {
  constructor (private readonly pipeline: ChunkPipeline | null) {}

  get full (): boolean {
    return this.pipeline !== null
  }

  async check (id: Buffer, record: Buffer, stored: Buffer | undefined): Promise<Verdict> {
    if (isChunkSum(stored, this.full)) {
      if (isAeadSum(stored)) return this.authenticates(id, record) ? { state: 'good' } : { state: 'bad', why: 'failed authentication' }
      return await sumMatches(record, stored) ? { state: 'good' } : { state: 'bad', why: 'checksum mismatch' }
    }
    const why = await this.openFails(id, record)
    if (why !== null) return { state: 'bad', why }
    return { state: 'adopt', sum: this.pipeline ? aeadSum() : await chunkSumAsync(record) }
  }

  // The AEAD sum's check: the record's tag under the data key (no decryption).
  private authenticates (id: Buffer, record: Buffer): boolean {
    try {
      this.pipeline!.verify(id, record)
      return true
    } catch {
      return false
    }
  }

  // A copy offered by a peer to replace a bad or missing one. A full member
  // takes any record that opens (another member may have sealed the same
  // block with another nonce); a storage-only member only the exact bytes it
  // stored, since it cannot tell a good record from a forged one.
  async accepts (id: Buffer, record: Buffer, stored: Buffer | undefined): Promise<boolean> {
    if (this.pipeline) return await this.openFails(id, record) === null
    if (isChunkSum(stored, false)) return await sumMatches(record, stored)
    return await this.openFails(id, record) === null
  }

  // Null when the record passes what this member can check.
  private async openFails (id: Buffer, record: Buffer): Promise<string | null> {
    try {
      decodeChunkRecord(record)
      if (record.length < 2 + 24 + 16) return 'record too short'
      if (this.pipeline) await this.pipeline.open(id, record)
      return null
    } catch (e) {
      return (e as Error).message
    }
  }
}
