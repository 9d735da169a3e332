import type { LmdbStore } from '../store/lmdb-store.js'
import { wrapStorageError } from '../errors.js'
import type { ChunkStore } from './chunk-store.js'

const USE_LIMIT = 1_000_000

export class LmdbChunkStore implements ChunkStore {
  // When each chunk was last read or stored, this run (hex id -> ms): the
  // least recently used go first when a bounded cache must shrink.
  readonly lastUse = new Map<string, number>()

  constructor (private readonly store: LmdbStore) {}

  noteUse (id: Buffer): void {
    this.used(id)
  }

  private used (id: Buffer): void {
    if (this.lastUse.size >= USE_LIMIT) this.lastUse.clear()
    const hex = id.toString('hex')
    this.lastUse.delete(hex)
    this.lastUse.set(hex, Date.now())
  }

  has (id: Buffer, small = false): boolean {
    return small ? this.store.hasSmallChunk(id) : this.store.hasChunk(id)
  }

  // Page faults happen on lmdb's prefetch thread, not the event loop; the
  // copy made by getBinary is then a memory read.
  async get (id: Buffer): Promise<Buffer | undefined> {
    await this.store.chunks.prefetch([id])
    this.used(id)
    return this.store.chunks.getBinary(id)
  }

  // lmdb-js touches the records' pages on its prefetch thread: the disk
  // reads of a sequential read overlap with decrypting the blocks before.
  warm (ids: Buffer[]): void {
    this.store.chunks.prefetch(ids).catch(() => {})
  }

  checkRoom (bytes: number): void {
    this.store.checkRoom(bytes)
  }

  async put (id: Buffer, record: Buffer, sum?: Buffer): Promise<void> {
    try {
      await this.store.putChunk(id, record, sum)
      this.used(id)
    } catch (e) {
      throw wrapStorageError(e, 'cannot store chunk')
    }
  }
}
