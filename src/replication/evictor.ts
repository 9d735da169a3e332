import type { LmdbStore } from '../store/lmdb-store.js'
import type { PinPolicy } from './replicator.js'
import { storeStats } from './chunk-service.js'
import { Periodic } from './periodic.js'

const EVERY_MS = 5000
const LOW_WATER = 0.9 // shrink to this fraction of cacheSize, so eviction does not run on every write
const WINDOW = 1024 // chunk ids looked at per step
const WINDOWS_PER_PASS = 16

export interface EvictorOptions {
  store: LmdbStore
  cacheSize: number
  selfId: string
  replicaCount: number
  lastUse: (id: Buffer) => number | undefined
  holdersOf: (id: Buffer) => string[] // holders whose copies count (live)
  handoff: (id: Buffer) => Promise<boolean> // place one more copy elsewhere
  pins: () => PinPolicy | null
  log: (line: string) => void
}

export interface EvictionReport { cacheSize: number, evictedChunks: number, evictedBytes: number }

// Keeps this member's chunk store under `cacheSize`: evicts the least
// recently used chunks that are safely at target elsewhere. Never a copy held
// for another member (placement put it here), never a chunk of a file pinned
// to this member. A chunk this member wrote is first handed off: one more
// copy is placed elsewhere, so replicaCount copies remain without ours.
// Reads of an evicted chunk fetch it back from peers on demand.
export class Evictor {
  readonly handingOff = new Set<string>() // the trimmer leaves these alone
  evictedChunks = 0
  evictedBytes = 0

  private readonly job: Periodic
  private cursor: Buffer | null = null // where the next window starts

  constructor (private readonly o: EvictorOptions) {
    this.job = new Periodic('cache eviction', EVERY_MS, async () => await this.pass(), o.log)
  }

  start (): void {
    this.job.start()
  }

  close (): void {
    this.job.close()
  }

  report (): EvictionReport {
    return { cacheSize: this.o.cacheSize, evictedChunks: this.evictedChunks, evictedBytes: this.evictedBytes }
  }

  run (): Promise<void> {
    return this.job.run()
  }

  // Looks at one window of the store at a time, from where the last window
  // ended (wrapping around), and evicts the least recently used of it: the
  // work of a pass follows the bytes to free, not the size of the store
  // (chunks not read or written this run count as the oldest). Windows are
  // read between other work, never the whole store in one go.
  private async pass (): Promise<void> {
    const { bytes } = storeStats(this.o.store)
    if (bytes <= this.o.cacheSize) return
    let toFree = bytes - this.o.cacheSize * LOW_WATER
    // At most WINDOWS_PER_PASS windows and the whole store once: a store
    // with nothing it may evict (all held for others, or pinned) costs a
    // bounded amount every pass, not a walk of everything.
    let scanned = 0
    const total = (this.o.store.chunks.getStats() as { entryCount: number }).entryCount
    for (let w = 0; w < WINDOWS_PER_PASS && toFree > 0 && scanned < total && !this.job.closed; w++) {
      const window = this.window()
      scanned += window.seen
      for (const { id } of window.candidates) {
        if (toFree <= 0 || this.job.closed) break
        toFree -= await this.evict(id)
      }
      await new Promise(resolve => setImmediate(resolve))
    }
  }

  // Up to WINDOW chunk ids after the cursor, those that may go, oldest use
  // first.
  private window (): { seen: number, candidates: Array<{ id: Buffer, last: number }> } {
    const pins = this.o.pins()
    const candidates: Array<{ id: Buffer, last: number }> = []
    let seen = 0
    const keys = [...this.o.store.chunks.getKeys({ start: this.cursor ?? undefined, limit: WINDOW + 2 })]
    if (this.cursor && keys.length > 0 && Buffer.compare(keys[0] as Buffer, this.cursor) === 0) keys.shift()
    if (keys.length === 0 && this.cursor) { this.cursor = null; return this.window() }
    const more = keys.length > WINDOW
    for (const key of keys.slice(0, WINDOW)) {
      const id = Buffer.from(key as Buffer)
      this.cursor = id
      seen++
      if (this.o.store.foreign.doesExist(id)) continue
      if (pins?.pinnedTo(id).includes(this.o.selfId)) continue
      candidates.push({ id, last: this.o.lastUse(id) ?? 0 })
    }
    if (!more) this.cursor = null // the end: wrap around next time
    candidates.sort((a, b) => a.last - b.last)
    return { seen, candidates }
  }

  // Bytes freed: 0 when the chunk must stay (not enough copies elsewhere).
  private async evict (id: Buffer): Promise<number> {
    const hex = id.toString('hex')
    if (this.elsewhere(id) < this.o.replicaCount) {
      this.handingOff.add(hex)
      const ok = await this.o.handoff(id).catch(() => false)
      if (!ok) { this.handingOff.delete(hex); return 0 }
    }
    // Checked again right before the delete: holders may have changed.
    if (this.elsewhere(id) < this.o.replicaCount) { this.handingOff.delete(hex); return 0 }
    const size = this.o.store.chunkSize(id) ?? 0
    if (size === 0) { this.handingOff.delete(hex); return 0 }
    this.o.store.txn(() => this.o.store.removeChunkSync(id))
    this.handingOff.delete(hex)
    this.evictedChunks++
    this.evictedBytes += size
    return size
  }

  private elsewhere (id: Buffer): number {
    return this.o.holdersOf(id).filter(h => h !== this.o.selfId).length
  }
}
