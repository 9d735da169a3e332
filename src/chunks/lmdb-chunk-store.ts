import type { LmdbStore } from '../store/lmdb-store.js'
import { wrapStorageError } from '../errors.js'
import type { ChunkStore } from './chunk-store.js'

// The uses remembered: a window of the most recent, a few MiB at most; a
// chunk not in it counts as unused (the oldest).
const USE_LIMIT = 65_536

export class LmdbChunkStore implements ChunkStore {
  // When each recently used chunk was last read or stored, this run (the
  // first 8 bytes of its id, as hex -> ms): the least recently used go first
  // when a bounded cache must shrink.
  private readonly uses = new Map<string, number>()

  constructor (private readonly store: LmdbStore) {}

  noteUse (id: Buffer): void {
    this.used(id)
  }

  lastUse (id: Buffer): number | undefined {
    return this.uses.get(id.toString('hex', 0, 8))
  }

  private used (id: Buffer): void {
    const key = id.toString('hex', 0, 8)
    this.uses.delete(key)
    this.uses.set(key, Date.now())
    if (this.uses.size > USE_LIMIT) {
      // A Map iterates in insertion order: the first key is the oldest use.
      for (const oldest of this.uses.keys()) { this.uses.delete(oldest); break }
    }
  }

  has (id: Buffer, small = false): boolean {
    return small ? this.store.hasSmallChunk(id) : this.store.hasChunk(id)
  }

  // Page faults happen on lmdb's prefetch thread, not the event loop; the
  // copy made by getBinary is then a memory read.
  async get (id: Buffer): Promise<Buffer | undefined> {
    await this.store.prefetchChunks([id])
    this.used(id)
    return this.store.chunkCopy(id)
  }

  // lmdb-js touches the records' pages on its prefetch thread: the disk
  // reads of a sequential read overlap with decrypting the blocks before.
  warm (ids: Buffer[]): void {
    this.store.prefetchChunks(ids).catch(() => {})
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
