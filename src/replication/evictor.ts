import type { LmdbStore } from '../store/lmdb-store.js'
import type { PinPolicy } from './replicator.js'
import { storeStats } from './chunk-service.js'
import { Periodic } from './periodic.js'

const EVERY_MS = 5000
const LOW_WATER = 0.9 // shrink to this fraction of cacheSize, so eviction does not run on every write

export interface EvictorOptions {
  store: LmdbStore
  cacheSize: number
  selfId: string
  replicaCount: number
  lastUse: (hex: string) => number | undefined
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

  private async pass (): Promise<void> {
    const { bytes } = storeStats(this.o.store)
    if (bytes <= this.o.cacheSize) return
    let toFree = bytes - this.o.cacheSize * LOW_WATER
    const pins = this.o.pins()
    const candidates: Array<{ id: Buffer, last: number }> = []
    for (const key of this.o.store.chunks.getKeys({})) {
      const id = Buffer.from(key as Buffer)
      if (this.o.store.foreign.doesExist(id)) continue
      if (pins?.pinnedTo(id).includes(this.o.selfId)) continue
      candidates.push({ id, last: this.o.lastUse(id.toString('hex')) ?? 0 })
    }
    candidates.sort((a, b) => a.last - b.last)
    for (const { id } of candidates) {
      if (toFree <= 0 || this.job.closed) break
      const hex = id.toString('hex')
      if (this.elsewhere(id) < this.o.replicaCount) {
        this.handingOff.add(hex)
        const ok = await this.o.handoff(id).catch(() => false)
        if (!ok) { this.handingOff.delete(hex); continue }
      }
      // Checked again right before the delete: holders may have changed.
      if (this.elsewhere(id) < this.o.replicaCount) { this.handingOff.delete(hex); continue }
      const size = this.o.store.chunks.getBinaryFast(id)?.length ?? 0
      this.o.store.txn(() => this.o.store.removeChunkSync(id))
      this.handingOff.delete(hex)
      this.evictedChunks++
      this.evictedBytes += size
      toFree -= size
    }
  }

  private elsewhere (id: Buffer): number {
    return this.o.holdersOf(id).filter(h => h !== this.o.selfId).length
  }
}
