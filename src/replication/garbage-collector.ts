import type { LmdbStore } from '../store/lmdb-store.js'
import type { Holders } from './holders.js'
import { Periodic } from './periodic.js'
import { gcqKey, garbageQueuedAt } from '../store/lmdb-store.js'
import { unforeignSync } from '../store/foreign-holdings.js'

const BATCH = 4096 // the DROP_CHUNKS message limit
const GIVE_UP_MS = 7 * 24 * 3600 * 1000 // a holder gone this long keeps its copy

export interface DropLink {
  id: string
  drop: (ids: Buffer[]) => Promise<number>
}

export interface GcReport {
  graceMs: number
  pending: number // chunks no longer referenced, waiting for the grace period or for holders to come back
  collectedChunks: number // this run of the daemon, here and acknowledged by peers
  collectedBytes: number // here
  lastRun: number | null
}

export interface GarbageCollectorOptions {
  store: LmdbStore
  holders: Holders
  graceMs: number
  links: () => DropLink[]
  settled: () => boolean // the local tree is up to date with what peers sent
  log: (line: string) => void
}

// Deletes chunks that no version of the namespace references any more, here
// and on every member holding a copy. A chunk enters `garbage` when its last
// reference in the merged tree goes (ChunkRefs.decref, meta/chunk-refs.ts); after `graceMs`
// without a new reference, every connected member is told to drop it
// (DROP_CHUNKS); a full member refuses for chunks its own tree references, a
// storage-only member, which has no tree, drops. Holders that were offline
// are told when they come back. A chunk written but not yet referenced never
// enters `garbage`, so writes in flight are never collected.
export class GarbageCollector {
  private lastRun: number | null = null
  private collectedChunks = 0
  private collectedBytes = 0

  private readonly job: Periodic

  constructor (private readonly o: GarbageCollectorOptions) {
    this.job = new Periodic('garbage collection', Math.max(500, Math.min(o.graceMs / 4, 10_000)), async () => await this.pass(), o.log)
  }

  start (): void {
    this.job.start()
  }

  close (): void {
    this.job.close()
  }

  report (): GcReport {
    const pending = (this.o.store.garbage.getStats() as { entryCount: number }).entryCount
    return { graceMs: this.o.graceMs, pending, collectedChunks: this.collectedChunks, collectedBytes: this.collectedBytes, lastRun: this.lastRun }
  }

  run (): Promise<void> {
    return this.job.run()
  }

  // Volumes from before the queue (`gcq`) get it once, from `garbage`, a
  // slice per event-loop turn.
  private queued = false
  private async queueOld (): Promise<void> {
    this.queued = true
    const s = this.o.store
    const entries = (db: typeof s.gcq): number => (db.getStats() as { entryCount: number }).entryCount
    if (entries(s.gcq) >= entries(s.garbage)) return
    let from: Buffer | undefined
    for (;;) {
      const slice: Array<{ key: Buffer, value: Buffer }> = []
      for (const { key, value } of s.garbage.getRange({ start: from, limit: 2001 })) {
        if (from && (key as Buffer).equals(from)) continue
        slice.push({ key: Buffer.from(key as Buffer), value: value as Buffer })
        if (slice.length === 2000) break
      }
      if (slice.length === 0) return
      s.txn(() => { for (const { key, value } of slice) s.gcq.putSync(gcqKey(garbageQueuedAt(value), key), Buffer.alloc(0)) })
      from = slice[slice.length - 1].key
      await new Promise(resolve => setImmediate(resolve))
    }
  }

  // Reads only what is due, oldest first, from the queue by time.
  private async pass (): Promise<void> {
    if (!this.o.settled()) return
    if (!this.queued) await this.queueOld()
    const now = Date.now()
    const due: Array<{ id: Buffer, since: number }> = []
    const stale: Buffer[] = []
    for (const key of this.o.store.gcq.getKeys({ end: gcqKey(now - this.o.graceMs + 1, Buffer.alloc(32)), limit: BATCH })) {
      const k = Buffer.from(key as Buffer)
      const id = k.subarray(8)
      const v = this.o.store.garbage.getBinary(id)
      if (v === undefined || Math.floor(garbageQueuedAt(v)) !== Number(k.readBigUInt64BE(0))) { stale.push(k); continue }
      due.push({ id, since: v.readDoubleLE(0) })
    }
    if (stale.length > 0) this.o.store.txn(() => { for (const k of stale) this.o.store.gcq.removeSync(k) })
    this.lastRun = now
    if (due.length === 0) return
    const ids = due.map(d => d.id)
    const told = new Set<string>()
    for (const link of this.o.links()) {
      const n = await link.drop(ids).catch(() => null)
      if (n === null) continue
      told.add(link.id)
      this.collectedChunks += n
    }
    this.o.store.txn(() => {
      for (const { id, since } of due) {
        if (this.o.store.refs.doesExist(id)) { this.o.store.unmarkGarbageSync(id); continue }
        const size = this.o.store.chunkSize(id)
        if (size !== undefined) {
          this.o.store.removeChunkSync(id)
          this.collectedChunks++
          this.collectedBytes += size
        }
        unforeignSync(this.o.store, id)
        for (const h of this.o.holders.get(id)) if (told.has(h)) this.o.holders.removeSync(id, h)
        if (this.o.holders.count(id) === 0 || now - since > GIVE_UP_MS) {
          this.o.store.clearHoldersSync(id)
          this.o.store.unmarkGarbageSync(id)
        } else {
          // Holders not told yet (offline): asked again at the back of the queue.
          this.o.store.markGarbageSync(id, since, now - this.o.graceMs)
        }
      }
    })
  }

  // A full member asks us to drop chunks it no longer references. Chunks our
  // own tree references stay (we may have written the same content).
  answerDrop (ids: Buffer[]): number {
    let dropped = 0
    this.o.store.txn(() => {
      for (const id of ids) {
        if (this.o.store.refs.doesExist(id)) continue
        if (this.o.store.hasChunk(id)) {
          this.o.store.removeChunkSync(id)
          dropped++
        }
        unforeignSync(this.o.store, id)
        this.o.store.clearHoldersSync(id)
        this.o.store.unmarkGarbageSync(id)
      }
    })
    return dropped
  }
}
