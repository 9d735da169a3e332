import type { LmdbStore } from '../store/lmdb-store.js'
import { decodeForeign, leaseLegacySync, leaseqKey, presenceClock, renewLeaseSync, setPresenceClockSync, unforeignSync } from '../store/foreign-holdings.js'

const BATCH = 2000 // expired leases handled per transaction
const WARMUP_MAX_MS = 10 * 60 * 1000 // a full member's first minutes after it connects do not count

export interface LeaseReport {
  leaseMs: number
  clockMs: number // the full-member clock: ms during which a full member was connected (past its warm-up)
  queued: number // copies held for others with a lease
  expiredChunks: number // collected this run: no full member renewed them within leaseMs of its presence
  expiredBytes: number
}

export interface HoldingLeasesOptions {
  store: LmdbStore
  leaseMs: number
  // Since when a proven full member has been connected without a break
  // (the earliest such connection now open); null when none is.
  fullSince: () => number | null
  settled: () => boolean // a full member's tree is up to date (a storage-only member: always)
  log: (line: string) => void
}

// Leases on copies held for others: how a member that cannot read the tree
// (a storage-only member) learns that nobody needs a copy any more, on
// evidence, not on a peer's word alone (docs/security.md, "Storage for
// others"). A copy placed here is leased; a full member renews the lease by
// placing, challenging (PROVE), asking about (HAS) or reading (GET_CHUNK) it,
// which every full member that counts the copy does within a day (the
// holder audit's in-order pass). A copy whose lease ran out is collected.
//
// Time here is the full-member clock, not the wall clock: it runs only
// while a proven full member is connected, and not during the first
// minutes after one connects (its audit's time to renew). So a volume whose
// full members are all away for a month keeps every copy: the copies may
// exist nowhere else, and nobody who could renew them had the chance.
// Garbage the full members know of is dropped sooner, by DROP_CHUNKS
// (garbage-collector.ts); the lease is the backstop for what they do not
// know of (a placement never referenced, a holding they forgot).
//
// The queue `leaseq` is ordered by lease, so a pass reads only the expired
// ones: no walk of all copies.
export class HoldingLeases {
  private timer: NodeJS.Timeout | null = null
  private lastTick = Date.now()
  private clock: number
  private legacyDone = false
  private expiredChunks = 0
  private expiredBytes = 0
  private closed = false
  private readonly tickMs: number
  private readonly warmupMs: number

  constructor (private readonly o: HoldingLeasesOptions) {
    this.clock = presenceClock(o.store)
    this.tickMs = Math.max(200, Math.min(10_000, o.leaseMs / 20))
    this.warmupMs = Math.min(WARMUP_MAX_MS, o.leaseMs / 4)
  }

  start (): void {
    this.lastTick = Date.now()
    // Copies from before leases get theirs at once, in slices: a one-time
    // cost of an upgrade, paid at start rather than in a quiet moment later.
    void this.leaseLegacy().catch(e => this.o.log(`holding leases: ${(e as Error).message}`))
    this.timer = setInterval(() => { void this.tick().catch(e => this.o.log(`holding leases: ${(e as Error).message}`)) }, this.tickMs)
    this.timer.unref()
  }

  close (): void {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }

  report (): LeaseReport {
    return { leaseMs: this.o.leaseMs, clockMs: this.clock, queued: (this.o.store.leaseq.getStats() as { entryCount: number }).entryCount, expiredChunks: this.expiredChunks, expiredBytes: this.expiredBytes }
  }

  // A proven full member placed, challenged, asked about or read these: their
  // leases start again (a write only for leases older than an eighth of the term).
  renew (ids: Buffer[]): void {
    if (this.closed || ids.length === 0) return
    const fresh = this.clock - this.o.leaseMs / 8
    const due = ids.filter(id => { const e = decodeForeign(this.o.store.foreign.getBinary(id)); return e !== null && (e.lease === null || e.lease < fresh) })
    if (due.length === 0) return
    this.o.store.txn(() => { for (const id of due) renewLeaseSync(this.o.store, id, this.clock, fresh) })
  }

  // Exposed for tests: one step of the clock and one expiry pass now.
  async tick (): Promise<void> {
    if (this.closed) return
    const now = Date.now()
    const step = Math.min(now - this.lastTick, 2 * this.tickMs) // a suspended machine does not jump the clock
    this.lastTick = now
    const since = this.o.fullSince()
    const warm = since !== null && now - since >= this.warmupMs
    if (warm && step > 0) {
      this.clock += step
      this.o.store.txn(() => setPresenceClockSync(this.o.store, this.clock))
    }
    if (!this.legacyDone) await this.leaseLegacy()
    if (warm && this.o.settled()) this.expire()
  }

  // Copies held for others from before leases get one now, a slice per turn.
  private async leaseLegacy (): Promise<void> {
    this.legacyDone = true
    const s = this.o.store
    const entries = (db: typeof s.leaseq): number => (db.getStats() as { entryCount: number }).entryCount
    if (entries(s.leaseq) >= entries(s.foreign)) return
    let from: Buffer | undefined
    while (!this.closed) {
      const slice: Buffer[] = []
      let seen = 0
      for (const { key, value } of s.foreign.getRange({ start: from, limit: BATCH + 1 })) {
        if (from && (key as Buffer).equals(from)) continue
        from = Buffer.from(key as Buffer)
        if (decodeForeign(value as Buffer)?.lease === null) slice.push(from)
        if (++seen === BATCH) break
      }
      if (slice.length > 0) s.txn(() => { for (const id of slice) leaseLegacySync(s, id, this.clock) })
      if (seen < BATCH) return
      await new Promise(resolve => setImmediate(resolve))
    }
  }

  // Collects copies whose lease ran out, oldest first, a batch per pass.
  private expire (): void {
    const s = this.o.store
    const end = leaseqKey(this.clock - this.o.leaseMs, Buffer.alloc(32))
    const keys: Buffer[] = []
    for (const key of s.leaseq.getKeys({ end, limit: BATCH })) keys.push(Buffer.from(key as Buffer))
    if (keys.length === 0) return
    let chunks = 0
    let bytes = 0
    s.txn(() => {
      for (const k of keys) {
        const id = k.subarray(8)
        const e = decodeForeign(s.foreign.getBinary(id))
        if (e === null || e.lease === null || Math.floor(e.lease) !== Number(k.readBigUInt64BE(0))) { s.leaseq.removeSync(k); continue }
        // Our own tree references it (a full member): ours to keep.
        if (s.refs.doesExist(id)) { renewLeaseSync(s, id, this.clock); continue }
        const size = s.chunks.getBinaryFast(id)?.length
        if (size !== undefined) { s.removeChunkSync(id); chunks++; bytes += size }
        unforeignSync(s, id)
        s.clearHoldersSync(id)
        s.unmarkGarbageSync(id)
      }
    })
    this.expiredChunks += chunks
    this.expiredBytes += bytes
    if (chunks > 0) this.o.log(`holding leases: collected ${chunks} cop${chunks === 1 ? 'y' : 'ies'} held for others (${bytes} bytes) that no full member renewed in ${Math.round(this.o.leaseMs / 1000)} s of its presence`)
  }
}
