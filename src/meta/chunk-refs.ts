import type { LmdbStore } from '../store/lmdb-store.js'
import { encodeRefs, refsCount, refsLength } from '../codec/refs-record.js'
import type { NamespaceCounters } from './namespace-counters.js'

// The reference count of each chunk the block maps name (`refs`), and what
// happens to a chunk at its first reference and after its last. Inside the
// transaction of the change that moves them.
export class ChunkRefs {
  constructor (private readonly store: LmdbStore, private readonly counters: NamespaceCounters) {}

  // `length`: the new reference's. The chunk counts in uniqueBytes from its
  // first reference to its last, at the longest of them.
  incref (id: Buffer, length: number): void {
    const raw = this.store.refs.getBinary(id)
    const n = raw ? refsCount(raw) : 0
    // A read where there is nothing to remove (every new chunk): a remove is a write instruction.
    if (n === 0) {
      if (this.store.garbage.doesExist(id)) this.store.unmarkGarbageSync(id)
      this.store.markDirty(id) // newly referenced: its replication is counted (replication/replica-state.ts)
    }
    const kept = n === 0 || !raw ? 0 : refsLength(raw) ?? 0
    if (length > kept) this.counters.countBytes('uniqueBytes', length - kept)
    this.store.refs.putSync(id, encodeRefs(n + 1, Math.max(length, kept)))
  }

  decref (id: Buffer): void {
    const raw = this.store.refs.getBinary(id)
    const n = raw ? refsCount(raw) : 0
    if (n <= 1) {
      if (raw) this.counters.countBytes('uniqueBytes', -(refsLength(raw) ?? 0))
      this.store.refs.removeSync(id)
      // Copies elsewhere (replicas we placed, or this one when we hold it for
      // other members) are collected after a grace period by the garbage
      // collector (replication/garbage-collector.ts); it needs the holders.
      const foreign = this.store.foreign.doesExist(id)
      if (foreign || this.store.holders.doesExist(id)) {
        this.store.markGarbageSync(id, Date.now())
      }
      if (!foreign) this.store.removeChunkSync(id)
      else this.store.markDirty(id)
    } else {
      this.store.refs.putSync(id, encodeRefs(n - 1, refsLength(raw!) ?? 0))
    }
  }

  collectIfUnreferenced (id: Buffer): void {
    if (!this.store.refs.doesExist(id) && !this.store.foreign.doesExist(id)) this.store.removeChunkSync(id)
  }
}
