import type { LmdbStore } from '../../store/lmdb-store.js'
import type { VolumeKeys } from '../../crypto/volume-keys.js'
import type { InodeAttrs } from '../../codec/inode-record.js'
import type { StampedChange } from '../../codec/change-record.js'
import { decodeOpRecord, encodeOpRecord, opRecordHeader, signingKeyOfSeed, verifyOpRecord } from '../../codec/op-record.js'
import { fail } from '../../errors.js'
import { ROOT_INO } from '../namespace.js'
import { HybridClock } from '../hlc.js'
import type { LmdbNamespace } from '../lmdb-namespace.js'
import { Member } from '../merge/member.js'
import { ROOT_ID, type Attrs, type Op } from '../merge/op.js'
import { OpLog } from './op-log.js'
import { EntryMap } from './entry-map.js'
import { encodeManifest } from './manifest.js'
import { Materializer } from './materializer.js'
import { kindOf, opAttrs, S_IFLNK, S_IFMT, S_IFREG } from './modes.js'
import { Compactor } from './compactor.js'
import { idsCounter, readSnapshot } from './snapshots.js'

const EMIT_DELAY_MS = 150
// While the filesystem answers a burst of operations (deferEmitWhile), the
// timer's emission waits for the burst to end, but not past this since the
// oldest change waiting. Making a file's ops costs the event loop about
// 85 us here (the Ed25519 signature, the merge tree, the manifest, AEAD,
// LMDB puts), which a burst of creates waits for: tar x of 10,000 files
// took 6.9-7.0 s with the emission going ahead after 5 s (and the scrubber
// running), 5.9-6.1 s with both waiting until the extraction ended (main
// thread 6.5 against 5.6 s of CPU). Peers see a long burst's new files up
// to this much later.
const EMIT_DEFER_MAX_MS = 15_000
// A timer's emission makes at most this many files' ops per transaction,
// and the event loop answers operations between two.
const EMIT_SLICE = 512
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
}

export interface ReceiveResult { accepted: Buffer[], rejected: number, reason?: string }

// The bridge between this node's local tree (LmdbNamespace, which the VFS
// uses) and the volume's shared namespace (docs/consistency.md):
// - every local change is journaled, in its own transaction, as ops of this
//   member's signed log; file contents become write ops (a manifest of the
//   block map) at close granularity, a moment after the last change; a
//   regular file created here is journaled then too, as one create op that
//   carries its content (unless a link, rename or unlink of it comes first);
// - ops from other members are verified, stored, merged (src/meta/merge),
//   and the local tree is then made to match the merged view, in one
//   transaction, so the tree in LMDB is a materialized view of all logs.
export class SharedNamespace {
  readonly log: OpLog
  // Swapped whole when the log is replayed or a snapshot adopted.
  private readonly state: { member: Member, map: EntryMap }
  private readonly materializer: Materializer
  private readonly secretKey: Buffer
  private readonly unbornNames = new Map<number, string>() // unborn ino -> its name (lost in a crash: found again in its directory)
  private pending: Buffer[] = []
  private readonly listeners: Array<(records: Buffer[]) => void> = []
  private emitTimer: NodeJS.Timeout | null = null
  private backlogSince = 0 // performance.now() when the oldest change not yet emitted was; 0: none
  private busy: (() => boolean) | null = null
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
      emitDirty: () => this.emitDirty(),
      adopted: () => {
        this.materializer.markAll()
        this.o.store.txn(() => Materializer.notePending(this.o.store))
        this.scheduleReconcile()
      }
    })
    this.log.noteMember(o.memberId)
    o.ns.journal = c => this.journal(c)
    o.ns.onCommit(() => this.flushPending())
    o.ns.onAbort(() => this.resync())
  }

  // Binds an existing local tree that has no log yet (a volume from before
  // the shared namespace), writes out content left unsent by a crash, and
  // brings the local tree in line with the merged logs.
  start (): void {
    if (this.log.headOf(this.o.memberId) === 0 && this.map.entriesOf(ROOT_INO).length === 0 && this.o.ns.readdir(ROOT_INO).length > 0) this.genesis()
    this.emitDirty()
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
    this.listeners.push(fn)
  }

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

  private journal (c: StampedChange): void {
    const ns = this.o.ns
    switch (c.op) {
      case 'mknode': {
        const parent = this.entryOfDir(c.parent)
        if (parent === undefined) return this.skip(c)
        if ((c.attrs.mode & S_IFMT) === S_IFREG) {
          // `tar x`, `cp`, `git`: the create op waits for the content, so a
          // new file costs one signed op, not two, and nothing if removed first.
          this.map.markUnborn(c.ino, c.parent)
          this.unbornNames.set(c.ino, c.name)
          this.scheduleEmit()
          return
        }
        const kind = kindOf(c.attrs.mode)
        const content = kind === 'symlink' ? c.attrs.target ?? '' : ''
        const op = this.member.create(parent, c.name, kind, content, opAttrs(c.attrs))
        this.append(op)
        this.map.bind(op.id, c.ino, kind === 'dir' ? '' : op.id)
        return
      }
      case 'link': {
        // The shared tree has no hard links: another member sees a copy.
        this.bear(c.ino)
        const parent = this.entryOfDir(c.parent)
        const a = ns.getAttrs(c.ino)
        if (parent === undefined || !a) return this.skip(c)
        const op = this.member.create(parent, c.name, 'file', this.manifestOf(c.ino, a), opAttrs(a))
        this.append(op)
        this.map.bind(op.id, c.ino, op.id)
        return
      }
      case 'unlink': {
        const ino = ns.lookup(c.parent, c.name)
        if (ino === undefined) return
        if (this.map.unborn.has(ino)) return this.forgetUnborn(ino)
        const entry = this.entryAt(c.parent, c.name, ino)
        if (entry === undefined) return this.skip(c)
        this.removeEntry(entry, ino)
        return
      }
      case 'rename': {
        const ino = ns.lookup(c.parent, c.name)
        if (ino === undefined) return
        const replaced = ns.lookup(c.newParent, c.newName)
        if (replaced === ino) return
        if (replaced !== undefined && this.map.unborn.has(replaced)) this.forgetUnborn(replaced)
        if (this.map.unborn.has(ino)) {
          // Not in the shared tree yet: it will be created where it ends up.
          if (this.entryOfDir(c.newParent) === undefined) { this.forgetUnborn(ino); return this.skip(c) }
          if (replaced !== undefined) {
            const r = this.entryAt(c.newParent, c.newName, replaced)
            if (r !== undefined) this.removeEntry(r, replaced)
          }
          this.map.markUnborn(ino, c.newParent)
          this.unbornNames.set(ino, c.newName)
          return
        }
        const entry = this.entryAt(c.parent, c.name, ino)
        const newParent = this.entryOfDir(c.newParent)
        if (entry === undefined || newParent === undefined) return this.skip(c)
        if (replaced !== undefined) {
          const r = this.entryAt(c.newParent, c.newName, replaced)
          if (r !== undefined) this.removeEntry(r, replaced)
        }
        const at = entry.indexOf('@')
        if (at < 0) {
          this.append(this.member.move(entry, newParent, c.newName))
          return
        }
        // A conflict copy renamed: it becomes a file of its own.
        const a = ns.getAttrs(ino)
        if (!a) return this.skip(c)
        const op = this.member.create(newParent, c.newName, 'file', this.manifestOf(ino, a), opAttrs(a))
        this.append(op)
        this.removeEntry(entry, ino)
        this.map.bind(op.id, ino, op.id)
        return
      }
      case 'setattr': {
        // Size, mode, owner and times all go out with the next write or
        // setattr op of the file, a moment later: `tar x` does chown, chmod
        // and utimens on every file, which then costs one op, not three.
        const a = c.attrs
        if (c.ino === ROOT_INO) return
        if (a.size !== undefined || a.mode !== undefined || a.uid !== undefined || a.gid !== undefined || a.mtime !== undefined) this.markDirty(c.ino)
        return
      }
      case 'blocks':
      case 'truncate':
        this.markDirty(c.ino)
    }
  }

  private removeEntry (entry: string, ino: number): void {
    const at = entry.indexOf('@')
    const node = at < 0 ? entry : entry.slice(0, at)
    const b = this.map.get(entry)
    const versions = b && b.version !== '' ? [b.version] : []
    this.append(this.member.removeNode(node, versions))
    this.map.unbind(entry)
    if (this.map.entriesOf(ino).length === 0) this.map.clean(ino)
  }

  private markDirty (ino: number): void {
    if (this.map.entriesOf(ino).length === 0) return
    this.map.markDirty(ino)
    this.scheduleEmit()
  }

  // The emission of files' ops waits while `busy` says the filesystem is
  // answering a burst of operations (fuse/hot-loop.ts), up to
  // EMIT_DEFER_MAX_MS. Reconciles, compactions and close still emit
  // everything at once.
  deferEmitWhile (busy: (() => boolean) | null): void {
    this.busy = busy
  }

  // The longest a waiting change waits for a burst to end (tests shorten it).
  emitDeferMaxMs = EMIT_DEFER_MAX_MS

  private scheduleEmit (delay = EMIT_DELAY_MS): void {
    if (!this.emitTimer && !this.closed) {
      if (this.backlogSince === 0) this.backlogSince = performance.now()
      this.emitTimer = setTimeout(() => { this.emitTimer = null; this.emitOnTimer() }, delay)
    }
  }

  private emitOnTimer (): void {
    if (this.closed) return
    if (this.busy?.() === true && performance.now() - this.backlogSince < this.emitDeferMaxMs) return this.scheduleEmit()
    let more = false
    try {
      more = this.emitSome(EMIT_SLICE)
    } catch (e) {
      this.o.log(`namespace: cannot record file contents: ${(e as Error).message}`)
    }
    if (more) this.scheduleEmit(0)
  }

  // Emits the ops of at most `limit` files in one transaction; whether any
  // are left. (bear and emitChanges delete the file they are given from the
  // map they are iterating, which Map and Set iterators allow.)
  private emitSome (limit: number): boolean {
    if (this.map.dirty.size > 0 || this.map.unborn.size > 0) {
      this.o.store.txn(() => {
        let n = 0
        for (const ino of this.map.unborn.keys()) {
          if (n++ >= limit) break
          this.bear(ino)
        }
        for (const ino of this.map.dirty) {
          if (n++ >= limit) break
          this.emitChanges(ino)
        }
      })
      this.flushPending()
    }
    const more = this.map.dirty.size > 0 || this.map.unborn.size > 0
    if (!more) this.backlogSince = 0
    return more
  }

  // A file created here gets its create op, with its content and
  // attributes as they are now. Inside the caller's transaction.
  private bear (ino: number): void {
    const parent = this.map.unborn.get(ino)
    if (parent === undefined) return
    const ns = this.o.ns
    const name = this.unbornNames.get(ino) ?? ns.readdir(parent).find(d => d.ino === ino)?.name
    this.forgetUnborn(ino)
    const a = ns.getAttrs(ino)
    if (name === undefined || !a || ns.lookup(parent, name) !== ino) return // gone before it was ever shared
    const dir = this.entryOfDir(parent)
    if (dir === undefined) return this.o.log('namespace: a local create is not known to the shared tree; other members will not see it')
    const op = this.member.create(dir, name, 'file', this.manifestOf(ino, a), opAttrs(a))
    this.append(op)
    this.map.bind(op.id, ino, op.id)
    this.map.clean(ino)
  }

  private forgetUnborn (ino: number): void {
    this.map.born(ino)
    this.unbornNames.delete(ino)
  }

  // Files created here become create ops, and file contents changed since
  // their last write op become write ops, now.
  private emitDirty (): void {
    this.emitSome(Infinity)
  }

  // A write or setattr op for each of a local inode's shared entries whose
  // content or attributes differ from the merged view. Inside a transaction.
  private emitChanges (ino: number): void {
    const a = this.o.ns.getAttrs(ino)
    const entries = this.map.entriesOf(ino)
    this.map.clean(ino)
    if (!a || entries.length === 0) return
    const kind = kindOf(a.mode)
    const content = kind === 'dir' ? '' : this.manifestOf(ino, a)
    const done = new Set<string>()
    for (const entry of entries) {
      const at = entry.indexOf('@')
      const node = at < 0 ? entry : entry.slice(0, at)
      const changed = this.changedAttrs(node, a)
      const base = this.map.get(entry)?.version ?? null
      const current = kind === 'dir' ? undefined : this.member.tree.winner(node)
      if (kind === 'dir' || (current && current.id === base && current.content === content)) {
        if (changed && !done.has(node)) this.append(this.member.setattr(node, changed))
        done.add(node)
        continue
      }
      const op = this.member.write(node, content, base === '' ? null : base, changed ?? { mtime: a.mtime })
      this.append(op)
      done.add(node)
      this.map.bind(entry, ino, op.version)
    }
  }

  // The attributes of a local inode that differ from the merged ones.
  private changedAttrs (node: string, a: InodeAttrs): Attrs | null {
    const t = this.member.tree.nodeAttrs(node)
    const out: Attrs = {}
    if (t.mode !== a.mode) out.mode = a.mode
    if (t.uid !== a.uid) out.uid = a.uid
    if (t.gid !== a.gid) out.gid = a.gid
    if (t.mtime !== a.mtime) out.mtime = a.mtime
    return Object.keys(out).length > 0 ? out : null
  }

  private append (op: Op): void {
    const record = encodeOpRecord(op, this.o.keys.meta, this.secretKey)
    this.log.put(opRecordHeader(record), record)
    this.pending.push(record)
  }

  private flushPending (): void {
    if (this.pending.length === 0) return
    const out = this.pending
    this.pending = []
    for (const fn of this.listeners) fn(out)
  }

  private skip (c: StampedChange): void {
    this.o.log(`namespace: a local ${c.op} is not known to the shared tree; other members will not see it`)
  }

  private entryOfDir (ino: number): string | undefined {
    if (ino === ROOT_INO) return ROOT_ID
    return this.map.entriesOf(ino)[0]
  }

  private nodesOf (ino: number): string[] {
    return [...new Set(this.map.entriesOf(ino).map(e => e.split('@')[0]))]
  }

  // The entry shown at (parent, name): the inode's only entry, or for a
  // local hard link, the one the merged view places there.
  private entryAt (parent: number, name: string, ino: number): string | undefined {
    const entries = this.map.entriesOf(ino)
    if (entries.length <= 1) return entries[0]
    const dir = this.entryOfDir(parent)
    const e = dir === undefined ? undefined : this.member.tree.listDir(dir).find(x => x.name === name)
    return e && entries.includes(e.id) ? e.id : entries[0]
  }

  private manifestOf (ino: number, a: InodeAttrs): string {
    if ((a.mode & S_IFMT) === S_IFLNK) return a.target ?? ''
    const blocks = []
    for (const index of this.o.ns.blockIndexes(ino)) {
      const b = this.o.ns.getBlock(ino, index)
      if (b) blocks.push({ index, id: b.id, length: b.length })
    }
    return encodeManifest({ size: a.size, blocks })
  }

  // --- merged view -> local tree ---

  private scheduleReconcile (delay = RECONCILE_DELAY_MS): void {
    if (this.reconcileTimer || this.closed) return
    this.reconcileTimer = setTimeout(() => {
      this.reconcileTimer = null
      let more = false
      try {
        // Local edits not yet in a write op go out first, so they merge
        // instead of being overwritten.
        this.emitDirty()
        more = this.materializer.slice()
      } catch (e) { this.o.log(`namespace: cannot apply changes from peers: ${(e as Error).message}`) }
      if (more) this.scheduleReconcile(0)
    }, delay)
  }

  // Makes the local tree show the merged view now: what changed since the
  // last pass (all of it after markAll).
  reconcile (): void {
    this.emitDirty()
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
      // Its members are members we know (isKnownMember).
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
    this.pending = []
    this.map = new EntryMap(this.o.store)
    for (const ino of [...this.unbornNames.keys()]) if (!this.map.unborn.has(ino)) this.unbornNames.delete(ino)
    this.member = this.replay()
  }

  private genesis (): void {
    const ns = this.o.ns
    this.o.store.txn(() => {
      const walk = (dirIno: number, dir: string): void => {
        for (const d of ns.readdir(dirIno)) {
          const a = ns.getAttrs(d.ino)
          if (!a) continue
          const existing = this.map.entriesOf(d.ino)[0]
          const kind = kindOf(a.mode)
          const op = this.member.create(dir, d.name, kind, kind === 'dir' ? '' : this.manifestOf(d.ino, a), opAttrs(a))
          this.append(op)
          this.map.bind(op.id, d.ino, kind === 'dir' ? '' : op.id)
          this.forgetUnborn(d.ino)
          if (kind === 'dir' && existing === undefined) walk(d.ino, op.id)
        }
      }
      walk(ROOT_INO, ROOT_ID)
    })
    this.o.log(`namespace: recorded the existing tree as ${this.log.headOf(this.o.memberId)} entries of this member's log`)
    this.flushPending()
  }

  close (): void {
    this.closed = true
    if (this.compactTimer) clearInterval(this.compactTimer)
    this.compactor.close()
    if (this.emitTimer) clearTimeout(this.emitTimer)
    if (this.reconcileTimer) clearTimeout(this.reconcileTimer)
    this.emitTimer = this.reconcileTimer = null
    try { this.emitDirty() } catch (e) { this.o.log(`namespace: ${(e as Error).message}`) }
  }
}
