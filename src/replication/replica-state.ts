import { performance } from 'node:perf_hooks'
import type { LmdbStore } from '../store/lmdb-store.js'

const COUNTS_KEY = Buffer.from('replica:counts')
const FORMAT = 1
const COUNTS_FORMAT = 3 // with the time they were written and the unproven count
const SLICE = 400 // chunks recounted per transaction at most; the event loop runs between two
const BUDGET_MS = 12 // and no longer than this
const EMPTY = Buffer.alloc(0)
const LOCAL = 1
const UNPROVEN = 2

// The replication counters: what `status` says about the chunks this node
// tracks (a full member: every chunk its tree references; a storage-only
// member: every chunk it holds). Exact once `unsettled` is 0.
export interface ReplicaCounts {
  target: number
  tracked: number
  atTarget: number
  below: number // under target, lost ones included
  onlyHere: number // below target with this node's copy the only one known
  lost: number // no copy anywhere that we know of
  pendingBytes: number // bytes still to copy to reach the target, of the chunks held here
  unproven: number // tracked chunks with a holder that has never proven its copy (acknowledged or reported only)
  savedAt: number | null // ms when these counts were last written to disk
}

interface Entry { copies: number, local: boolean, size: number, unproven: boolean }

// Per-chunk replication state kept as changes happen, never by walking
// every chunk: whatever changes a chunk's references, its local copy or its
// holders marks it dirty in the same transaction (`rdirty`, LmdbStore
// markDirty); this recounts dirty chunks in slices, moving each between the
// counters' classes (`rstate` remembers where it is counted) and keeping
// `needs`, the chunks below target, which the replicator and the holder audit work
// from. Idle, it costs nothing.
export class ReplicaState {
  private counts: ReplicaCounts
  private timer: NodeJS.Timeout | null = null
  private running = false
  private closed = false
  private rebuildFrom: Buffer | null = null // a recount of every tracked chunk in progress (first run, new target)
  readonly surplus = new Set<string>() // chunks of ours with more than target copies (the trimmer's work)
  private readonly needListeners: Array<(ids: Buffer[]) => void> = []
  settledTotal = 0

  // readOnly: a reader beside the data dir (status without a daemon) shows
  // the counts saved on disk and changes nothing.
  constructor (private readonly store: LmdbStore, private readonly target: number, private readonly storageOnly: boolean, private readonly log: (line: string) => void = () => {}, private readonly readOnly = false) {
    const saved = store.sysGet(COUNTS_KEY.toString())
    const c = saved ? parseCounts(saved) : null
    if (c && c.target === target) {
      this.counts = c
    } else {
      this.counts = zero(target)
      this.rebuildFrom = Buffer.alloc(0)
    }
    if (!readOnly) store.onDirty(() => this.schedule())
  }

  private started = false
  start (): void {
    if (this.started) return
    this.started = true
    if (this.rebuildFrom !== null) this.log(`replication: counting every ${this.storageOnly ? 'held' : 'referenced'} chunk once (target ${this.target} copies)`)
    this.schedule()
  }

  close (): void {
    this.closed = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
  }

  // Chunks recounted below target: the replicator looks at them (no sweep).
  onNeeds (fn: (ids: Buffer[]) => void): void {
    this.needListeners.push(fn)
  }

  // This node's copy of tracked chunks appeared (true) or went (false).
  onLocalChange (fn: (ids: Buffer[], local: boolean) => void): void {
    this.localListeners.push(fn)
  }

  // Chunks newly tracked and below target: peers may hold them.
  onTracked (fn: (ids: Buffer[]) => void): void {
    this.trackedListeners.push(fn)
  }

  private readonly localListeners: Array<(ids: Buffer[], local: boolean) => void> = []
  private readonly trackedListeners: Array<(ids: Buffer[]) => void> = []
  private gained: Buffer[] = []
  private lost: Buffer[] = []
  private fresh: Buffer[] = []

  summary (): ReplicaCounts & { unsettled: number, counting: boolean } {
    return { ...this.counts, unsettled: entries(this.store, 'rdirty'), counting: this.rebuildFrom !== null }
  }

  // Copies of one chunk as counted now (its holders, and this node's copy).
  copiesOf (id: Buffer): number {
    const raw = this.store.holders.getBinary(id)
    return (raw ? raw.length >> 5 : 0) + (this.store.hasChunk(id) ? 1 : 0)
  }

  get needsCount (): number {
    return entries(this.store, 'needs')
  }

  // Settles every dirty chunk now (tests, and before an answer should be
  // exact), for at most `maxMs`.
  async settle (maxMs = Infinity): Promise<void> {
    const until = Date.now() + maxMs
    while (!this.closed && Date.now() < until && (this.rebuildFrom !== null || entries(this.store, 'rdirty') > 0)) {
      if (!this.running) this.step() // else the background run is at it
      await new Promise(resolve => setTimeout(resolve, 1))
    }
  }

  private schedule (): void {
    if (this.timer || this.closed || this.readOnly || !this.started) return
    this.timer = setTimeout(() => { this.timer = null; this.run() }, 20)
    this.timer.unref()
  }

  private run (): void {
    if (this.running || this.closed) return
    this.running = true
    try {
      const more = this.step()
      if (more) setImmediate(() => { this.running = false; this.run() })
      else this.running = false
    } catch (e) {
      this.running = false
      this.log(`replication: cannot count chunks: ${(e as Error).message}`)
    }
  }

  // One slice; whether work is left.
  private step (): boolean {
    if (this.rebuildFrom !== null) {
      this.rebuildSlice()
      return true
    }
    const ids: Buffer[] = []
    for (const key of this.store.rdirty.getKeys({ limit: SLICE })) ids.push(Buffer.from(key as Buffer))
    if (ids.length === 0) return false
    const needed: Buffer[] = []
    const until = performance.now() + BUDGET_MS
    let done = 0
    this.store.txn(() => {
      for (const id of ids) {
        if (this.settleOne(id)) needed.push(id)
        this.store.rdirty.removeSync(id)
        done++
        if (performance.now() > until) break
      }
      this.store.sysPut(COUNTS_KEY.toString(), encodeCounts(this.counts))
    })
    this.settledTotal += done
    const { gained, lost, fresh } = this
    this.gained = []; this.lost = []; this.fresh = []
    if (gained.length > 0) for (const fn of this.localListeners) fn(gained, true)
    if (lost.length > 0) for (const fn of this.localListeners) fn(lost, false)
    if (fresh.length > 0) for (const fn of this.trackedListeners) fn(fresh)
    if (needed.length > 0) for (const fn of this.needListeners) fn(needed)
    return ids.length === SLICE || done < ids.length
  }

  // A first count (or one for a new target) marks every tracked chunk dirty,
  // a slice at a time, after clearing what was counted before.
  private rebuildSlice (): void {
    const from = this.rebuildFrom!
    if (from.length === 0) {
      this.store.rstate.clearSync()
      this.store.needs.clearSync()
      this.counts = zero(this.target)
      this.store.txn(() => this.store.sysPut(COUNTS_KEY.toString(), encodeCounts(this.counts)))
    }
    const db = this.storageOnly ? this.store.chunks : this.store.refs
    const ids: Buffer[] = []
    for (const key of db.getKeys({ start: from.length === 0 ? undefined : from, limit: SLICE + 1 })) {
      const k = key as Buffer
      if (from.length > 0 && k.equals(from)) continue
      ids.push(Buffer.from(k))
      if (ids.length === SLICE) break
    }
    this.store.txn(() => { for (const id of ids) this.store.rdirty.putSync(id, EMPTY) })
    if (ids.length < SLICE) {
      this.rebuildFrom = null
      this.log('replication: every chunk counted')
    } else {
      this.rebuildFrom = ids[ids.length - 1]
    }
  }

  // Inside a transaction: moves one chunk to the class it belongs in now.
  // Whether it newly needs copies.
  private settleOne (id: Buffer): boolean {
    const old = decodeEntry(this.store.rstate.getBinary(id))
    const local = this.store.hasChunk(id)
    const tracked = this.storageOnly ? local : this.store.refs.doesExist(id)
    if (old) this.count(old, -1)
    if ((old?.local ?? false) !== (tracked && local)) (tracked && local ? this.gained : this.lost).push(id)
    if (!tracked) {
      if (old) this.store.rstate.removeSync(id)
      if (this.store.needs.doesExist(id)) this.store.needs.removeSync(id)
      this.surplus.delete(id.toString('hex'))
      return false
    }
    const raw = this.store.holders.getBinary(id)
    const copies = (raw ? raw.length >> 5 : 0) + (local ? 1 : 0)
    const size = local ? (this.store.chunkSize(id) ?? 0) : (old?.size ?? 0)
    let unproven = false
    for (let o = 0; raw && o + 32 <= raw.length && !unproven; o += 32) {
      unproven = (this.store.held.getBinary(Buffer.concat([raw.subarray(o, o + 32), id]))?.readDoubleLE(0) ?? 0) === 0
    }
    const e: Entry = { copies, local, size, unproven }
    this.count(e, 1)
    this.store.rstate.putSync(id, encodeEntry(e))
    const hex = id.toString('hex')
    if (copies > this.target && local && !this.store.foreign.doesExist(id)) {
      if (this.surplus.size < 4096) this.surplus.add(hex)
    } else {
      this.surplus.delete(hex)
    }
    if (copies < this.target) {
      if (!old) this.fresh.push(id)
      const was = this.store.needs.doesExist(id)
      if (!was) this.store.needs.putSync(id, EMPTY)
      return true // a change below target is worth another look, new or not
    }
    if (this.store.needs.doesExist(id)) this.store.needs.removeSync(id)
    return false
  }

  private count (e: Entry, sign: 1 | -1): void {
    const c = this.counts
    c.tracked += sign
    if (e.unproven) c.unproven += sign
    if (e.copies >= this.target) { c.atTarget += sign; return }
    c.below += sign
    if (e.copies === 0) c.lost += sign
    if (e.local && e.copies === 1 && this.target > 1) c.onlyHere += sign
    if (e.local) c.pendingBytes += sign * e.size * (this.target - e.copies)
  }
}

function entries (store: LmdbStore, db: 'rdirty' | 'needs'): number {
  return (store[db].getStats() as { entryCount: number }).entryCount
}

function zero (target: number): ReplicaCounts {
  return { target, tracked: 0, atTarget: 0, below: 0, onlyHere: 0, lost: 0, pendingBytes: 0, unproven: 0, savedAt: null }
}

function encodeCounts (c: ReplicaCounts): Buffer {
  c.savedAt = Date.now()
  const b = Buffer.allocUnsafe(1 + 9 * 8)
  b[0] = COUNTS_FORMAT
  let o = 1
  for (const v of [c.target, c.tracked, c.atTarget, c.below, c.onlyHere, c.lost, c.pendingBytes, c.savedAt, c.unproven]) { b.writeDoubleLE(v, o); o += 8 }
  return b
}

function parseCounts (b: Buffer): ReplicaCounts | null {
  if (b.length !== 1 + 9 * 8 || b[0] !== COUNTS_FORMAT) return null
  const v = Array.from({ length: 9 }, (_, i) => b.readDoubleLE(1 + i * 8))
  return { target: v[0], tracked: v[1], atTarget: v[2], below: v[3], onlyHere: v[4], lost: v[5], pendingBytes: v[6], savedAt: v[7], unproven: v[8] }
}

function encodeEntry (e: Entry): Buffer {
  const b = Buffer.allocUnsafe(8)
  b[0] = FORMAT
  b[1] = Math.min(e.copies, 255)
  b[2] = (e.local ? LOCAL : 0) | (e.unproven ? UNPROVEN : 0)
  b[3] = 0
  b.writeUInt32LE(e.size >>> 0, 4)
  return b
}

function decodeEntry (b: Buffer | undefined): Entry | null {
  if (!b || b.length !== 8 || b[0] !== FORMAT) return null
  return { copies: b[1], local: (b[2] & LOCAL) !== 0, size: b.readUInt32LE(4), unproven: (b[2] & UNPROVEN) !== 0 }
}
