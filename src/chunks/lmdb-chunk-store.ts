import type { LmdbStore } from '../store/lmdb-store.js'
import { wrapStorageError } from '../errors.js'
import type { ChunkStore } from './chunk-store.js'

export class LmdbChunkStore implements ChunkStore {
  constructor (private readonly store: LmdbStore) {}

  has (id: Buffer): boolean {
    return this.store.hasChunk(id)
  }

  // Page faults happen on lmdb's prefetch thread, not the event loop; the
  // copy made by getBinary is then a memory read.
  async get (id: Buffer): Promise<Buffer | undefined> {
    await this.store.chunks.prefetch([id])
    return this.store.chunks.getBinary(id)
  }

  checkRoom (bytes: number): void {
    this.store.checkRoom(bytes)
  }

  async put (id: Buffer, record: Buffer): Promise<void> {
    try {
      await this.store.putChunk(id, record)
    } catch (e) {
      throw wrapStorageError(e, 'cannot store chunk')
    }
  }
}
