import type { LmdbStore } from '../../store/lmdb-store.js'
import type { VolumeKeys } from '../../crypto/volume-keys.js'
import type { InodeAttrs } from '../../codec/inode-record.js'
import type { StampedChange } from '../../codec/change-record.js'
import { encodeOpRecord, opRecordHeader } from '../../codec/op-record.js'
import { ROOT_INO } from '../namespace.js'
import type { LmdbNamespace } from '../lmdb-namespace.js'
import type { Member } from '../merge/member.js'
import { ROOT_ID, type Attrs, type Op } from '../merge/op.js'
import type { OpLog } from './op-log.js'
import type { EntryMap } from './entry-map.js'
import { encodeManifest } from './manifest.js'
import { kindOf, opAttrs, S_IFLNK, S_IFMT, S_IFREG } from './modes.js'

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

export interface JournalContext {
  store: LmdbStore
  ns: LmdbNamespace
  keys: VolumeKeys
  memberId: string
  log: (line: string) => void
}

// Local changes -> ops of this member's signed log (docs/consistency.md,
// "How the live system maps onto the model"): every local change is
// journaled in its own transaction; file contents become write ops (a
// manifest of the block map) at close granularity, a moment after the last
// change; a regular file created here is journaled then too, as one create
// op that carries its content (unless a link, rename or unlink of it comes
// first). New records go to the listeners once their transaction commits.
export class Journal {
  private readonly unbornNames = new Map<number, string>() // unborn ino -> its name (lost in a crash: found again in its directory)
  private pending: Buffer[] = []
  private readonly listeners: Array<(records: Buffer[]) => void> = []
  private emitTimer: NodeJS.Timeout | null = null
  private backlogSince = 0 // performance.now() when the oldest change not yet emitted was; 0: none
  private busy: (() => boolean) | null = null
  private closed = false

  constructor (private readonly o: JournalContext, private readonly state: { member: Member, map: EntryMap }, private readonly log: OpLog, private readonly secretKey: Buffer) {}

  private get member (): Member { return this.state.member }
  private get map (): EntryMap { return this.state.map }

  onRecords (fn: (records: Buffer[]) => void): void {
    this.listeners.push(fn)
  }

  // After a failed local transaction: what memory holds that the disk does not goes.
  reset (): void {
    this.pending = []
    for (const ino of [...this.unbornNames.keys()]) if (!this.map.unborn.has(ino)) this.unbornNames.delete(ino)
  }

  close (): void {
    this.closed = true
    if (this.emitTimer) clearTimeout(this.emitTimer)
    this.emitTimer = null
  }

  journal (c: StampedChange): void {
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
  // In transactions of EMIT_SLICE files each: LMDB keeps the pages a
  // transaction dirtied in malloc'd memory for reuse, never giving them
  // back, so the largest transaction sets the daemon's resident size (one
  // of 100,000 files' ops left some 300 MB behind; #26).
  emitDirty (): void {
    while (this.emitSome(EMIT_SLICE));
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

  flushPending (): void {
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

  // Binds an existing local tree that has no log yet (a volume from before
  // the shared namespace): every entry becomes a create.
  genesis (): void {
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
}
