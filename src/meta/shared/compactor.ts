import type { LmdbStore } from '../../store/lmdb-store.js'
import { decodeOpRecord, opRecordHeader } from '../../codec/op-record.js'
import { decodeSnapshotState, verifySnapshot } from '../../codec/snapshot-record.js'
import { fail } from '../../errors.js'
import { HybridClock } from '../hlc.js'
import { Member, type PublishedFrontier } from '../merge/member.js'
import { OpLog } from './op-log.js'
import { fetchSnapshot, idsCounter, snapshotRefusal, writeSnapshot } from './snapshots.js'

export interface CompactorContext {
  store: LmdbStore
  log: OpLog
  metaKey: Buffer
  secretKey: Buffer
  memberId: string
  clock: HybridClock
  state: { member: Member }
  compactMargin: number // ms
  print: (line: string) => void
  emitDirty: () => void // local edits become ops first
  adopted: () => void // a new merge tree: the local tree is made to match it
}

// Compaction and snapshots (docs/consistency.md, "Compaction"): folds every
// op at or below the stability horizon into a snapshot written in parts, and
// adopts peers' snapshots. Neither holds the event loop for long: the state
// is frozen at once (copies of the tree's outer maps) and encoded, or
// fetched and decoded, a part at a time.
export class Compactor {
  private readonly frontiers = new Map<string, PublishedFrontier>() // full members' published frontiers, with their own heads then
  private readonly excluded = new Set<string>()
  private readonly snapshotListeners: Array<(snapshot: Buffer) => void> = []
  private busy = false
  private closed = false
  compactions = 0
  lastCompaction: number | null = null // ms since the epoch of the last successful compaction
  compactionError: string | null = null // why the last attempt failed (cleared by a success)

  constructor (private readonly c: CompactorContext) {}

  // Every op stamped at or below this is held here, and this member will
  // stamp nothing that low again.
  frontier (): bigint {
    return this.c.state.member.frontier(this.c.log.allHeads().map(h => h.member).filter(m => !this.excluded.has(m)), this.frontiers)
  }

  // A revoked member no longer holds the horizon back (its ops that arrive
  // late, stamped below it, are ignored).
  exclude (member: string): void {
    this.excluded.add(member)
  }

  // `head`: the last seq of its own log the member reported with it.
  noteFrontier (member: string, frontier: bigint, head: number): void {
    if (frontier > (this.frontiers.get(member)?.frontier ?? 0n)) this.frontiers.set(member, { frontier, head })
  }

  onSnapshot (fn: (snapshot: Buffer) => void): void {
    this.snapshotListeners.push(fn)
  }

  close (): void {
    this.closed = true
  }

  // Folds every op at or below the stability horizon into a snapshot and
  // drops those records. The horizon is the lowest frontier published by
  // every member that ever wrote (and ours), less a margin for clock skew; a
  // writer that has not published one holds it back entirely. Returns the
  // records folded; a failure is kept in compactionError (and logged).
  async compact (): Promise<number> {
    if (this.busy || this.closed) return 0
    this.busy = true
    try {
      const n = await this.compactNow()
      this.compactionError = null
      return n
    } catch (e) {
      this.compactionError = (e as Error).message
      this.c.print(`namespace: compaction failed: ${this.compactionError}`)
      return 0
    } finally {
      this.busy = false
    }
  }

  private async compactNow (): Promise<number> {
    const { log } = this.c
    let horizon = this.frontier()
    for (const h of log.allHeads()) {
      if (h.member === this.c.memberId || this.excluded.has(h.member)) continue
      const f = this.frontiers.get(h.member)?.frontier
      if (f === undefined) return 0
      if (f < horizon) horizon = f
    }
    horizon -= BigInt(this.c.compactMargin) << 16n
    const member = this.c.state.member
    if (horizon <= member.tree.compactedTo || horizon <= 0n) return 0
    this.c.emitDirty()
    const base: Array<{ member: string, seq: number }> = []
    for (const h of log.allHeads()) {
      const seq = this.foldableUpTo(h.member, h.seq, horizon)
      if (seq > 0) base.push({ member: h.member, seq })
    }
    if (base.length === 0) return 0
    const started = performance.now()
    member.tree.compact(horizon)
    const covered = member.covered()
    const frozen = member.tree.freeze()
    const { record, parts } = await writeSnapshot(frozen, { creator: this.c.memberId, horizon, covered, base }, this.c.metaKey, this.c.secretKey)
    // Closed, or another state adopted meanwhile: this one is stale.
    if (this.closed || this.c.state.member !== member) return 0
    const folded = this.c.store.txn(() => log.fold(record, parts, base, covered.map(c => ({ member: c.member, seq: Math.min(c.seq, log.headOf(c.member)) }))))
    log.sweep()
    this.compactions++
    this.lastCompaction = Date.now()
    for (const fn of this.snapshotListeners) fn(record)
    const bytes = parts.reduce((n, p) => n + p.length, record.length)
    this.c.print(`namespace: compacted ${folded} log records into a snapshot of ${parts.length} part(s), ${(bytes / 1048576).toFixed(1)} MiB, in ${Math.round(performance.now() - started)} ms (horizon ${new Date(HybridClock.millis(horizon)).toISOString()})`)
    return folded
  }

  // The last seq of `member`'s log held here whose op is stamped at or below
  // the horizon: a member stamps its ops in increasing order, so a binary
  // search over the records kept opens a few of them, not all.
  private foldableUpTo (member: string, head: number, horizon: bigint): number {
    let lo = this.c.log.floorOf(member) // folded already: at or below any horizon since
    let hi = head
    if (hi <= lo) return 0
    while (lo < hi) {
      const mid = lo + Math.ceil((hi - lo) / 2)
      const v = this.c.store.oplog.getBinary(OpLog.key(member, mid))
      let hlc: bigint | null = null
      if (v) try { hlc = decodeOpRecord(v, this.c.metaKey, false).hlc } catch { hlc = null }
      if (hlc !== null && hlc <= horizon) lo = mid
      else hi = mid - 1
    }
    return lo > this.c.log.floorOf(member) ? lo : 0
  }

  // A snapshot from a peer whose records we lack: adopt its state, then
  // re-apply every record we hold on top (duplicates are ignored). Throws
  // CORRUPT_RECORD for one that fails verification, EPERM for one whose
  // claims we do not believe (snapshotRefusal).
  async adopt (record: Buffer, fetch: (index: number) => Promise<Buffer | null>): Promise<boolean> {
    const { log } = this.c
    verifySnapshot(record)
    const { header, state } = decodeSnapshotState(record, this.c.metaKey)
    if (!header.covered.some(c => c.seq > log.headOf(c.member))) return false
    const refusal = snapshotRefusal(header, log, this.c.memberId, Math.max(this.c.state.member.lastSeq, log.headOf(this.c.memberId)))
    if (refusal !== null) throw fail('EPERM', `namespace snapshot refused: ${refusal}`)
    if (this.busy || this.closed) return false
    this.busy = true
    try {
      const { tree, parts } = await fetchSnapshot(header, state, fetch, this.c.metaKey)
      if (tree === null || this.closed) return false
      if (!header.covered.some(c => c.seq > log.headOf(c.member))) return false
      // From here on synchronous: no record arrives between the re-apply and the swap.
      const m = new Member(this.c.memberId, this.c.clock)
      m.adopt(tree, header.covered)
      const own = this.ownProgress()
      m.restore(Math.max(own.seq, this.c.state.member.lastSeq), own.counter)
      for (const r of log.all()) {
        try { m.receive(decodeOpRecord(r, this.c.metaKey, false)) } catch { /* damaged: skipped, as at start-up */ }
      }
      this.c.state.member = m
      this.c.store.txn(() => log.fold(record, parts, header.covered, header.covered))
      log.sweep()
      this.c.print(`namespace: adopted a snapshot from ${header.creator.slice(0, 12)} covering ${header.covered.reduce((n, c) => n + c.seq, 0)} changes`)
      this.c.adopted()
      return true
    } finally {
      this.busy = false
    }
  }

  // This member's last seq and id counter, from its records and snapshot.
  private ownProgress (): { seq: number, counter: number } {
    const self = this.c.memberId
    const counter = idsCounter(this.c.state.member.tree, self)
    let seq = this.c.log.headOf(self)
    for (const r of this.c.log.all()) {
      const h = opRecordHeader(r)
      if (h.member === self) seq = Math.max(seq, h.seq)
    }
    return { seq, counter }
  }
}
