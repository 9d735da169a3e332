import type { Database } from 'lmdb'
import { fail } from '../errors.js'

const PAGE_SLACK = 2 * 4096 // an overflow value's page header and rounding

// The store's room under its limit (maxStoreBytes). lmdb-js grows the map
// whenever it fills, so mapSize alone limits nothing. This is the limit for
// data: the pages in use (every database, the free list's own pages, the two
// meta pages) plus puts still queued must leave room for a new value. Pages
// freed by deletes are reused, so deleting makes room.
export class StoreRoom {
  private queued = 0 // bytes of limited puts not yet committed

  // `dbs`: every database of the environment (counted by usedBytes).
  constructor (private readonly dbs: ReadonlyArray<Database<Buffer, Buffer>>, private readonly limit?: number) {}

  // Runs `put` with room for `bytes` held until it settles.
  async limited (bytes: number, put: () => Promise<unknown>): Promise<void> {
    this.reserve(bytes)
    let committed = false
    try {
      await put()
      committed = true
    } finally {
      this.release(bytes, committed)
    }
  }

  // Room for `bytes` is held (queued) from the check until the put settles,
  // across every await: puts arriving together must not all pass the check
  // before any is counted.
  reserve (bytes: number): void {
    this.fits(bytes)
    this.queued += bytes
  }

  // A committed put counts as used from now on: a recount taken while it was
  // queued did not see it, and it must not drop out of the count until the
  // next one (a recount after its commit sees it and starts afresh).
  release (bytes: number, committed: boolean): void {
    this.queued -= bytes
    if (committed) this.usedSince += bytes
  }

  // For a record the caller commits in its next synchronous transaction:
  // throws ENOSPC when it would not fit, else counts it as used.
  checkRoom (bytes: number): void {
    this.fits(bytes)
    this.usedSince += bytes
  }

  private fits (bytes: number): void {
    if (this.limit === undefined) return
    const used = this.usedBytesCached() + this.queued
    if (used + bytes + PAGE_SLACK > this.limit) {
      this.usedAt = 0 // recount exactly before refusing
      const exact = this.usedBytesCached() + this.queued
      if (exact + bytes + PAGE_SLACK > this.limit) throw fail('ENOSPC', `storage full (${exact} of maxStoreBytes ${this.limit} bytes in use)`)
    }
  }

  // Counting pages reads the stats of every database (~45 us): recount at
  // most every 100 ms and add what was stored since.
  private usedAt = 0
  private usedBase = 0
  private usedSince = 0
  private usedBytesCached (): number {
    const now = Date.now()
    if (now - this.usedAt > 100) {
      this.usedBase = this.usedBytes()
      this.usedSince = 0
      this.usedAt = now
    }
    return this.usedBase + this.usedSince
  }

  // Bytes the limit (maxStoreBytes) still allows; Infinity without one.
  roomLeft (): number {
    return this.limit === undefined ? Infinity : this.limit - this.usedBytesCached() - this.queued
  }

  // Bytes in use (pages, and limited puts not yet committed) and what the
  // limit still allows, from one count: statfs's columns must add up.
  space (): { used: number, left: number } {
    const used = this.usedBytes() + this.queued
    return { used, left: this.limit === undefined ? Infinity : Math.max(0, this.limit - used) }
  }

  usedBytes (): number {
    type Stat = { pageSize: number, treeBranchPageCount: number, treeLeafPageCount: number, overflowPages: number, root: Stat, free: Stat }
    const pages = (s: Stat): number => s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages
    let n = 2
    let stat: Stat | undefined
    for (const db of this.dbs) {
      stat = db.getStats() as Stat
      n += pages(stat)
    }
    if (stat) n += pages(stat.root) + pages(stat.free)
    return n * (stat?.pageSize ?? 4096)
  }
}
