import type { LmdbStore } from '../../store/lmdb-store.js'
import type { VolumeKeys } from '../../crypto/volume-keys.js'
import { decodeOpRecord, signingKeyOfSeed, verifyOpRecord } from '../../codec/op-record.js'
import { fail } from '../../errors.js'
import { ROOT_INO } from '../namespace.js'
import type { LmdbNamespace } from '../lmdb-namespace.js'
import { Member } from '../merge/member.js'
import type { Op } from '../merge/op.js'
import { OpLog } from './op-log.js'
import { EntryMap } from './entry-map.js'
import { Materializer } from './materializer.js'
import { Compactor } from './compactor.js'
import { Journal } from './journal.js'
import { idsCounter, readSnapshot } from './snapshots.js'

const RECONCILE_DELAY_MS = 20

export interface SharedNamespaceOptions {
  store: LmdbStore
  ns: LmdbNamespace
  keys: VolumeKeys
  seed: Buffer // the node seed: its Ed25519 key signs this member's log
  memberId: string
  chunkSize: number
  log: (line: string) => void
  compactEvery?: number // ms between compaction attempts (default 5 min; 0: never)
  compactMargin?: number // ms the horizon stays behind the slowest frontier (clock skew allowance)
  metaCacheEntries?: number // bound of the merge tree's derived caches (default meta/cache-bound.ts)
}

export interface ReceiveResult { accepted: Buffer[], rejected: number, reason?: string }

// The bridge between this node's local tree (LmdbNamespace, which the VFS
// uses) and the volume's shared namespace (docs/consistency.md). It owns the
// log, the merge state and the entry map, and wires the parts that work on
// them (each its own file, none importing this one):
// - Journal: every local change becomes ops of this member's signed log;
// - receive (here): ops from other members are verified, stored and merged
//   (src/meta/merge); Materializer then makes the local tree show what
//   changed, so the tree in LMDB is a materialized view of all logs;
// - Compactor: snapshots, made and adopted (snapshots.ts for their parts).
export class SharedNamespace {
  readonly log: OpLog
  // Swapped whole when the log is replayed or a snapshot adopted.
  private readonly state: { member: Member, map: EntryMap }
  private readonly materializer: Materializer
  private readonly secretKey: Buffer
  private readonly journal: Journal
  private reconcileTimer: NodeJS.Timeout | null = null
  private closed = false
  private compactTimer: NodeJS.Timeout | null = null
  private readonly compactor: Compactor

  constructor (private readonly o: SharedNamespaceOptions) {
    this.secretKey = signingKeyOfSeed(o.seed).secretKey
    this.log = new OpLog(o.store)
    const map = new EntryMap(o.store)
    this.state = { member: new Member(o.memberId, o.ns.clock), map }
    this.state.member = this.replay()
    this.boundCaches()
    this.journal = new Journal({ store: o.store, ns: o.ns, keys: o.keys, memberId: o.memberId, log: o.log }, this.state, this.log, this.secretKey)
    this.materializer = new Materializer({ store: o.store, ns: o.ns, state: this.state, memberId: o.memberId, chunkSize: o.chunkSize, log: o.log })
    this.compactor = new Compactor({
      store: o.store,
      log: this.log,
      metaKey: o.keys.meta,
      secretKey: this.secretKey,
      memberId: o.memberId,
      clock: o.ns.clock,
      state: this.state,
      compactMargin: o.compactMargin ?? 60_000,
      print: o.log,
      emitDirty: () => this.journal.emitDirty(),
      adopted: () => {
        this.boundCaches()
        this.materializer.markAll()
        this.o.store.txn(() => Materializer.notePending(this.o.store))
        this.scheduleReconcile()
      }
    })
    this.log.noteMember(o.memberId)
    o.ns.journal = c => this.journal.journal(c)
    o.ns.onCommit(() => this.journal.flushPending())
    o.ns.onAbort(() => this.resync())
  }

  // Binds an existing local tree that has no log yet (a volume from before
  // the shared namespace), writes out content left unsent by a crash, and
  // brings the local tree in line with the merged logs.
  start (): void {
    if (this.log.headOf(this.o.memberId) === 0 && this.map.entriesOf(ROOT_INO).length === 0 && this.o.ns.readdir(ROOT_INO).length > 0) this.journal.genesis()
    this.journal.emitDirty()
    // The local tree is materialized in the transactions that change it; a
    // pass left unfinished (a crash between storing peer records and
    // applying them) or never made (a volume from before) is made now, in
    // full, before anything is served.
    if (Materializer.wasInterrupted(this.o.store)) {
      this.materializer.markAll()
      this.reconcile()
    }
    const every = this.o.compactEvery ?? 5 * 60_000
    if (every > 0) {
      this.compactTimer = setInterval(() => { this.compact().catch(() => {}) }, every)
      this.compactTimer.unref()
    }
  }

  // --- compaction (docs/consistency.md, "Compaction"; compactor.ts) ---

  frontier (): bigint {
    return this.compactor.frontier()
  }

  exclude (member: string): void {
    this.revoked.add(member)
    this.compactor.exclude(member)
  }

  noteFrontier (member: string, frontier: bigint, head: number): void {
    this.compactor.noteFrontier(member, frontier, head)
  }

  async compact (): Promise<number> {
    return await this.compactor.compact()
  }

  // A snapshot header from a peer, and how to fetch its parts from it.
  async adoptSnapshot (record: Buffer, fetch: (index: number) => Promise<Buffer | null> = async () => null): Promise<boolean> {
    return await this.compactor.adopt(record, fetch)
  }

  get compactions (): number {
    return this.compactor.compactions
  }

  get compactionError (): string | null {
    return this.compactor.compactionError
  }

  get lastCompaction (): number | null {
    return this.compactor.lastCompaction
  }

  onRecords (fn: (records: Buffer[]) => void): void {
    this.journal.onRecords(fn)
  }

  // The emission of files' ops waits while `busy` says the filesystem is
  // answering a burst of operations (fuse/hot-loop.ts), up to
  // emitDeferMaxMs. Reconciles, compactions and close still emit
  // everything at once.
  deferEmitWhile (busy: (() => boolean) | null): void {
    this.journal.deferEmitWhile(busy)
  }

  // The longest a waiting change waits for a burst to end (tests shorten it).
  get emitDeferMaxMs (): number { return this.journal.emitDeferMaxMs }
  set emitDeferMaxMs (ms: number) { this.journal.emitDeferMaxMs = ms }

  onSnapshot (fn: (snapshot: Buffer) => void): void {
    this.compactor.onSnapshot(fn)
  }

  private get member (): Member { return this.state.member }
  private set member (m: Member) { this.state.member = m }
  private get map (): EntryMap { return this.state.map }
  private set map (m: EntryMap) { this.state.map = m }

  // Conflict copies the local tree shows (kept as directories are materialized).
  get conflictsSeen (): number {
    return this.materializer.conflicts
  }

  // Tree writes made materializing the merged view (tests: they cost what changed).
  get materializeWrites (): number {
    return this.materializer.writes
  }

  // No local edit waits to become an op and no peer op waits to be applied.
  get settled (): boolean {
    return this.map.dirty.size === 0 && this.map.unborn.size === 0 && this.reconcileTimer === null && !this.materializer.pending
  }

  get memberId (): string {
    return this.o.memberId
  }

  get tree (): Member['tree'] {
    return this.member.tree
  }

  // --- records from peers ---

  // Members revoked here (`disktro revoke`): their records are refused
  // from then on, quietly (a peer that has not revoked them yet relays them
  // in good faith).
  private readonly revoked = new Set<string>()
  quarantined = 0

  receive (records: Buffer[]): ReceiveResult {
    const accepted: Buffer[] = []
    const ops: Op[] = []
    let rejected = 0
    let reason: string | undefined
    this.o.store.txn(() => {
      for (const r of records) {
        try {
          const h = verifyOpRecord(r)
          if (this.log.has(h.member, h.seq)) continue
          if (this.revoked.has(h.member)) { this.quarantined++; continue }
          if (h.member === this.o.memberId) throw fail('CORRUPT_RECORD', 'a record of our own log that we never wrote')
          const op = decodeOpRecord(r, this.o.keys.meta, false)
          const copy = Buffer.from(r)
          this.log.put(h, copy)
          accepted.push(copy)
          ops.push(op)
        } catch (e) {
          rejected++
          reason = (e as Error).message
        }
      }
      if (ops.length > 0) Materializer.notePending(this.o.store)
    })
    for (const op of ops) this.member.receive(op)
    if (ops.length > 0) {
      this.materializer.collect()
      this.scheduleReconcile()
    }
    return { accepted, rejected, reason }
  }

  // --- local changes -> ops ---

  // --- merged view -> local tree ---

  private scheduleReconcile (delay = RECONCILE_DELAY_MS): void {
    if (this.reconcileTimer || this.closed) return
    this.reconcileTimer = setTimeout(() => {
      this.reconcileTimer = null
      let more = false
      try {
        // Local edits not yet in a write op go out first, so they merge
        // instead of being overwritten.
        this.journal.emitDirty()
        more = this.materializer.slice()
      } catch (e) { this.o.log(`namespace: cannot apply changes from peers: ${(e as Error).message}`) }
      if (more) this.scheduleReconcile(0)
    }, delay)
  }

  // Makes the local tree show the merged view now: what changed since the
  // last pass (all of it after markAll).
  reconcile (): void {
    this.journal.emitDirty()
    this.materializer.drain()
  }

  // --- start-up ---

  private replay (): Member {
    const m = new Member(this.o.memberId, this.o.ns.clock)
    const self = this.o.memberId
    let seq = 0
    let counter = 0
    const counterOf = (id: string): number => id.startsWith(self + ':') ? Number(id.slice(self.length + 1)) || 0 : 0
    const snap = this.log.snapshot
    if (snap) {
      const { header, tree } = readSnapshot(snap, i => this.log.snapshotPart(i), this.o.keys.meta)
      m.adopt(tree, header.covered)
      counter = idsCounter(tree, self)
      seq = header.covered.find(c => c.member === self)?.seq ?? 0
      // Its members are members we know (mayMakeSnapshot without a member set).
      for (const c of header.covered) this.log.noteMember(c.member)
      this.log.noteMember(header.creator)
    }
    for (const record of this.log.all()) {
      let op: Op
      try {
        op = decodeOpRecord(record, this.o.keys.meta, false)
      } catch (e) {
        this.o.log(`namespace: skipping a damaged log record: ${(e as Error).message}`)
        continue
      }
      m.receive(op)
      if (op.member === self) {
        seq = Math.max(seq, op.seq)
        if (op.type === 'create') counter = Math.max(counter, counterOf(op.id))
        if (op.type === 'write') counter = Math.max(counter, counterOf(op.version))
      }
    }
    m.restore(seq, counter)
    // The local tree was materialized from these ops already (or start()
    // finds the pass unfinished and makes a full one).
    m.tree.takeChanges()
    m.tree.forgetStale()
    return m
  }

  // After a failed local transaction: memory may hold ops the disk does not.
  private resync (): void {
    this.map = new EntryMap(this.o.store)
    this.journal.reset()
    this.member = this.replay()
    this.boundCaches()
  }

  // Each merge tree (replayed, adopted) keeps its derived caches within the configured bound.
  private boundCaches (): void {
    if (this.o.metaCacheEntries !== undefined) this.member.tree.metaCacheEntries = this.o.metaCacheEntries
  }

  close (): void {
    this.closed = true
    if (this.compactTimer) clearInterval(this.compactTimer)
    this.compactor.close()
    this.journal.close()
    if (this.reconcileTimer) clearTimeout(this.reconcileTimer)
    this.reconcileTimer = null
    try { this.journal.emitDirty() } catch (e) { this.o.log(`namespace: ${(e as Error).message}`) }
  }
}
