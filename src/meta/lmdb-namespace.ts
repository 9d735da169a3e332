import { seal, open } from '../crypto/aead.js'
import { keyedHash } from '../crypto/keyed-hash.js'
import type { VolumeKeys } from '../crypto/volume-keys.js'
import { encodeInode, decodeInode, type InodeAttrs } from '../codec/inode-record.js'
import { encodeDirent, decodeDirent } from '../codec/dirent-record.js'
import { encodeBlockRef, decodeBlockRef, type BlockRef } from '../codec/block-record.js'
import type { Change, StampedChange } from '../codec/change-record.js'
import { u64Key, readU64Key, pairKey, inodeAd } from '../codec/keys.js'
import { fail } from '../errors.js'
import type { LmdbStore } from '../store/lmdb-store.js'
import { HybridClock } from './hlc.js'
import { walkCounts } from './count-walk.js'
import { encodeCounts, decodeCounts, zeroCounts, type NamespaceCounts } from '../codec/counters-record.js'
import { encodeRefs, refsCount, refsLength } from '../codec/refs-record.js'
import { ROOT_INO, type Namespace, type DirEntry, type ChunkToEnsure } from './namespace.js'

const S_IFMT = 0o170000
const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const COUNTERS_KEY = Buffer.from('counters')
const CACHE_LIMIT = 200_000
const SMALL_RECORD_BYTES = 128 * 1024
const HLC_LEASE = 1000n << 16n // 1 s of the clock's wall-time part (meta/hlc.ts)
const INO_LEASE = 4096

// The namespace over LMDB. Names, attributes and block maps are sealed under
// the metadata key; directory entries are keyed by a keyed hash of the name,
// so the store reveals neither names nor sizes. Decoded inodes and lookups
// are cached: this process is the only writer of its store.
export class LmdbNamespace implements Namespace {
  private readonly attrCache = new Map<number, InodeAttrs>()
  private readonly lookupCache = new Map<string, number>()
  private readonly blockCache = new Map<string, BlockRef>() // ino/index -> block ref (a sequential read asks once per 128 KiB)
  private nextIno: number
  readonly clock: HybridClock
  private readonly listeners: Array<(c: StampedChange) => void> = []
  // Runs inside each local commit's transaction, before the change applies:
  // the shared namespace turns the change into ops of this member's log, so
  // a change and its log entry commit or fail together.
  journal: ((c: StampedChange) => void) | null = null

  constructor (private readonly store: LmdbStore, private readonly keys: VolumeKeys, readonly nodeId: string) {
    const next = store.sysGet('nextIno')
    this.nextIno = next ? next.readDoubleLE(0) : ROOT_INO + 1
    const hlc = store.sysGet('hlc')
    this.clock = new HybridClock(hlc ? hlc.readBigUInt64BE(0) : 0n)
    this.counts = this.storedCounts()
  }

  // Creates the root directory of a new volume.
  initRoot (uid: number, gid: number): void {
    if (this.getAttrs(ROOT_INO)) return
    const now = Date.now()
    this.store.txn(() => {
      // A store without a single inode is new: its counters start at zero.
      if (this.counts === null && this.store.inodes.getKeysCount({ limit: 1 }) === 0) { this.counts = zeroCounts(); this.countsDirty = true }
      this.putInode(ROOT_INO, { mode: S_IFDIR | 0o755, uid, gid, nlink: 2, rdev: 0, size: 0, blocks: 0, atime: now, mtime: now, ctime: now })
      this.storeCounts()
    })
  }

  // --- counters (codec/counters-record.ts) ---
  //
  // Files, directories and bytes move with each change, in its transaction:
  // `status` reads them instead of walking the tree (JuiceFS keeps used space
  // and inode counts the same way). null: this store has none yet (written
  // before counters existed); nothing is counted until ensureCounters().
  private counts: NamespaceCounts | null
  private countsDirty = false

  counters (): NamespaceCounts | null {
    return this.counts === null ? null : { ...this.counts }
  }

  // A volume from before the counters: counts it once, walking every inode
  // and block record (seconds at 10^5 files; at start-up, before the daemon
  // serves anything), and records in each refs record the bytes its chunk
  // counts for. Returns whether it walked.
  ensureCounters (): boolean {
    if (this.counts !== null) return false
    this.recount()
    return true
  }

  // Counts again from the records (after recovery changed reference counts,
  // or fsck --repair).
  recount (): void {
    this.store.txn(() => {
      const walk = walkCounts(this.store, this.keys.meta)
      for (const [hex, c] of walk.chunks) {
        const id = Buffer.from(hex, 'hex')
        const raw = this.store.refs.getBinary(id)
        if (!raw || refsCount(raw) !== c.refs || refsLength(raw) !== c.length) this.store.refs.putSync(id, encodeRefs(c.refs, c.length))
      }
      this.counts = walk.counts
      this.countsDirty = true
      this.storeCounts()
    })
  }

  private storedCounts (): NamespaceCounts | null {
    const raw = this.store.sys.getBinary(COUNTERS_KEY)
    if (!raw) return null
    try {
      return decodeCounts(raw)
    } catch {
      return null // counted again at the next open
    }
  }

  // Inside the transaction of the change that moved them.
  private storeCounts (): void {
    if (!this.countsDirty || this.counts === null) return
    this.store.sys.putSync(COUNTERS_KEY, encodeCounts(this.counts))
    this.countsDirty = false
  }

  private countInode (a: InodeAttrs, sign: 1 | -1): void {
    const c = this.counts
    if (c === null) return
    const t = a.mode & S_IFMT
    if (t === S_IFDIR) c.directories += sign
    else if (t === S_IFREG) { c.files += sign; c.logicalBytes += sign * a.size } else return
    this.countsDirty = true
  }

  private countBytes (field: 'referencedBytes' | 'uniqueBytes', delta: number): void {
    if (this.counts === null || delta === 0) return
    this.counts[field] += delta
    this.countsDirty = true
  }

  // --- reads ---

  getAttrs (ino: number): InodeAttrs | undefined {
    const cached = this.attrCache.get(ino)
    if (cached) return cached
    const key = u64Key(ino)
    const raw = this.store.inodes.getBinary(key)
    if (!raw) return undefined
    const attrs = decodeInode(this.openMeta(raw, inodeAd(key), `inode ${ino}`))
    this.remember(this.attrCache, ino, attrs)
    return attrs
  }

  lookup (parent: number, name: string): number | undefined {
    const ck = parent + '/' + name
    const cached = this.lookupCache.get(ck)
    if (cached !== undefined) return cached
    const key = this.direntKey(parent, name)
    const raw = this.store.dirents.getBinary(key)
    if (!raw) return undefined
    const d = decodeDirent(this.openMeta(raw, key, `directory entry in ${parent}`))
    this.remember(this.lookupCache, ck, d.ino)
    return d.ino
  }

  readdir (dir: number): DirEntry[] {
    const out: DirEntry[] = []
    for (const { key, value } of this.store.dirents.getRange({ start: u64Key(dir), end: u64Key(dir + 1) })) {
      const d = decodeDirent(this.openMeta(value as Buffer, key as Buffer, `directory entry in ${dir}`))
      out.push({ name: d.name, ino: d.ino })
    }
    return out
  }

  isEmptyDir (dir: number): boolean {
    for (const _ of this.store.dirents.getKeys({ start: u64Key(dir), end: u64Key(dir + 1), limit: 1 })) return false
    return true
  }

  getBlock (ino: number, index: number): BlockRef | undefined {
    const ck = ino + '/' + index
    const cached = this.blockCache.get(ck)
    if (cached) return cached
    const key = pairKey(ino, index)
    const raw = this.store.blocks.getBinary(key)
    if (!raw) return undefined
    const ref = decodeBlockRef(this.openMeta(raw, key, `block ${index} of inode ${ino}`))
    this.remember(this.blockCache, ck, ref)
    return ref
  }

  blockIndexes (ino: number, from = 0): number[] {
    const out: number[] = []
    for (const key of this.store.blocks.getKeys({ start: pairKey(ino, from), end: u64Key(ino + 1) })) {
      out.push(readU64Key(key as Buffer, 8))
    }
    return out
  }

  // Called after each committed change (replication learns of new chunks here).
  onCommit (fn: (c: StampedChange) => void): void {
    this.listeners.push(fn)
  }

  // Called after every change to the tree: a local commit, or a merge of
  // other members' changes (materialize).
  onTreeChange (fn: () => void): void {
    this.treeListeners.push(fn)
  }

  private readonly treeListeners: Array<() => void> = []

  // Called for every inode whose attributes a change set or removed, as it
  // happens (inside the transaction: the caches already show it).
  onInodeChange (fn: (ino: number) => void): void {
    this.inodeListeners.push(fn)
  }

  private readonly inodeListeners: Array<(ino: number) => void> = []

  private inodeChanged (ino: number): void {
    for (const fn of this.inodeListeners) fn(ino)
  }

  // Called after a change whose effect is not told inode by inode: a rename
  // (a directory's whole subtree moves), a merge of other members' changes,
  // a failed commit (the caches are dropped).
  onWideChange (fn: () => void): void {
    this.wideListeners.push(fn)
  }

  private readonly wideListeners: Array<() => void> = []

  // Called after a commit failed: listeners drop state the store does not hold.
  onAbort (fn: () => void): void {
    this.abortListeners.push(fn)
  }

  private readonly abortListeners: Array<() => void> = []

  // After a failed transaction: nothing cached may hold what the store does not.
  private dropCaches (): void {
    this.attrCache.clear()
    this.lookupCache.clear()
    this.blockCache.clear()
    this.hlcBound = null
    this.inoBound = null
    this.counts = this.storedCounts()
    this.countsDirty = false
  }

  // `sys` entries written in the next commit's transaction (close behind's
  // marks, fuse/close-behind.ts): they become durable no later than any
  // later change to the tree.
  putWithNextCommit (key: Buffer, value: Buffer): void {
    this.withNextCommit.push([key, value])
  }

  private readonly withNextCommit: Array<[Buffer, Buffer]> = []

  // Inside a commit's transaction: the entries held for it.
  private putHeldForCommit (): void {
    for (const [k, v] of this.withNextCommit) this.store.sys.putSync(k, v)
  }

  // Inode numbers up to `ino` are taken (one the redo log's replay gives a file).
  reserveIno (ino: number): void {
    if (this.nextIno <= ino) this.nextIno = ino + 1
  }

  allocIno (): number {
    return this.nextIno++
  }

  // --- writes ---

  commit (change: Change, ensure: ChunkToEnsure[] = []): void {
    const stamped: StampedChange = { ...change, hlc: this.clock.tick(), node: this.nodeId }
    // Caches are write-through; on a failed transaction they are dropped so
    // they cannot hold state the store does not.
    try {
      this.store.txn(() => {
        for (const c of ensure) {
          // A big record was put through the write thread already: the cursor check copies nothing.
          const have = c.record.length <= SMALL_RECORD_BYTES ? this.store.hasSmallChunk(c.id) : this.store.hasChunk(c.id)
          if (!have) this.store.putChunkSync(c.id, c.record, c.sum)
        }
        // The shared namespace's log is the record of changes kept and sent
        // to peers; the `log` database, only ever written, no longer grows.
        this.journal?.(stamped)
        this.apply(stamped)
        this.leaseHlc(stamped.hlc)
        this.putHeldForCommit()
        this.storeCounts()
      })
      this.withNextCommit.length = 0
    } catch (e) {
      this.dropCaches()
      for (const fn of this.abortListeners) fn()
      for (const fn of this.wideListeners) fn()
      throw e
    }
    if (change.op === 'rename') for (const fn of this.wideListeners) fn()
    for (const fn of this.listeners) fn(stamped)
    for (const fn of this.treeListeners) fn()
  }

  // Writes the tree directly, in one transaction: the shared namespace makes
  // the local tree match the merged view of every member's log. Not journaled.
  materialize<T> (fn: (w: TreeWriter) => T): T {
    const w: TreeWriter = {
      putInode: (ino, attrs) => this.putInode(ino, attrs),
      placeDirent: (parent, name, ino) => this.putDirent(parent, name, ino),
      removeDirent: (parent, name) => this.deleteDirent(parent, name),
      replaceBlocks: (ino, blocks) => this.replaceBlocks(ino, blocks),
      purge: ino => {
        const a = this.getAttrs(ino)
        if (a) this.truncateBlocks(ino, 0, a.blocks)
        this.removeInode(ino, a)
      }
    }
    let out: T
    try {
      out = this.store.txn(() => {
        const out = fn(w)
        const next = Buffer.allocUnsafe(8)
        next.writeDoubleLE(this.nextIno)
        this.store.sys.putSync(Buffer.from('nextIno'), next)
        this.inoBound = this.nextIno
        this.putHeldForCommit()
        this.storeCounts()
        return out
      })
      this.withNextCommit.length = 0
    } catch (e) {
      this.dropCaches()
      for (const fn of this.wideListeners) fn()
      throw e
    }
    for (const fn of this.wideListeners) fn()
    for (const fn of this.treeListeners) fn()
    return out
  }

  // Sets a file's whole block map; returns the number of stored blocks.
  private replaceBlocks (ino: number, blocks: Array<{ index: number, id: Buffer, length: number }>): number {
    const old = new Map<number, BlockRef>()
    for (const index of this.blockIndexes(ino)) {
      const b = this.getBlock(ino, index)
      if (b) old.set(index, b)
    }
    for (const b of blocks) {
      this.incref(b.id, b.length)
      this.putBlockRef(ino, b.index, { id: b.id, length: b.length }, old.get(b.index))
    }
    const keep = new Set(blocks.map(b => b.index))
    for (const [index, b] of old) {
      if (!keep.has(index)) this.removeBlockRef(ino, index, b)
      this.decref(b.id)
    }
    return blocks.length
  }

  // `hlc` and `nextIno` in `sys` are bounds written ahead (a lease): every
  // stamp issued, every inode number used is below the stored value, which is
  // rewritten only when a commit passes it. Most transactions then leave the
  // `sys` database alone, a page fewer to write per commit (tar x of 10,000
  // files, alternating, 4 each: median 6.33 against 6.47 s, within this
  // machine's noise; the event loop's CPU 469-648 against 578-626 ticks).
  // After a restart the clock starts at most
  // HLC_LEASE ahead of the last stamp, and inode numbers skip at most
  // INO_LEASE. Read and written inside the caller's transaction, so an
  // aborted one leaves the stored bound as it was.
  //
  // The stored bounds are kept here too (this process is the only writer of
  // its store): a commit reads neither from LMDB. A failed transaction forgets
  // them (dropCaches), and the next commit reads them again.
  private hlcBound: bigint | null = null
  private inoBound: number | null = null

  private leaseHlc (stamp: bigint): void {
    if (this.hlcBound === null) {
      const stored = this.store.sysGet('hlc')
      this.hlcBound = stored ? stored.readBigUInt64BE(0) : -1n
    }
    if (this.hlcBound >= stamp) return
    const b = Buffer.allocUnsafe(8)
    b.writeBigUInt64BE(stamp + HLC_LEASE)
    this.store.sys.putSync(Buffer.from('hlc'), b)
    this.hlcBound = stamp + HLC_LEASE
  }

  private leaseIno (ino: number): void {
    if (this.inoBound === null) {
      const stored = this.store.sysGet('nextIno')
      this.inoBound = stored ? stored.readDoubleLE(0) : -1
    }
    if (this.inoBound > ino) return
    const b = Buffer.allocUnsafe(8)
    const bound = Math.max(this.nextIno, ino + 1) + INO_LEASE
    b.writeDoubleLE(bound)
    this.store.sys.putSync(Buffer.from('nextIno'), b)
    this.inoBound = bound
  }

  // Deterministic: the same change on the same tree gives the same tree.
  private apply (c: StampedChange): void {
    const ms = HybridClock.millis(c.hlc)
    switch (c.op) {
      case 'mknode': {
        this.putInode(c.ino, c.attrs)
        this.putDirent(c.parent, c.name, c.ino)
        if (c.ino >= this.nextIno) this.nextIno = c.ino + 1
        this.leaseIno(c.ino)
        // The new node's change time: what the FUSE layer showed for a create it answered (fuse/write-behind.ts).
        this.touchDir(c.parent, c.attrs.ctime, isDir(c.attrs.mode) ? 1 : 0)
        return
      }
      case 'link': {
        const a = this.mustAttrs(c.ino)
        this.putDirent(c.parent, c.name, c.ino)
        this.putInode(c.ino, { ...a, nlink: a.nlink + 1, ctime: c.ctime })
        this.touchDir(c.parent, ms, 0)
        return
      }
      case 'unlink': {
        const ino = this.lookup(c.parent, c.name)
        if (ino === undefined) return
        this.deleteDirent(c.parent, c.name)
        const dir = this.dropLink(ino, c.ctime)
        this.touchDir(c.parent, ms, dir ? -1 : 0)
        return
      }
      case 'rename': {
        const ino = this.lookup(c.parent, c.name)
        if (ino === undefined) return
        const dir = isDir(this.mustAttrs(ino).mode)
        const replaced = this.lookup(c.newParent, c.newName)
        if (replaced === ino) return
        this.deleteDirent(c.parent, c.name)
        let delta = dir ? 1 : 0
        if (replaced !== undefined) {
          if (this.dropLink(replaced, c.ctime)) delta -= 1
        }
        this.putDirent(c.newParent, c.newName, ino)
        const a = this.mustAttrs(ino)
        this.putInode(ino, { ...a, ctime: c.ctime })
        if (c.parent === c.newParent) {
          this.touchDir(c.parent, ms, delta - (dir ? 1 : 0))
        } else {
          this.touchDir(c.parent, ms, dir ? -1 : 0)
          this.touchDir(c.newParent, ms, delta)
        }
        return
      }
      case 'setattr': {
        const a = this.getAttrs(c.ino)
        if (!a) return
        this.putInode(c.ino, { ...a, ...c.attrs })
        return
      }
      case 'blocks': {
        const a = this.getAttrs(c.ino)
        if (!a) {
          // The file went away while its data was being sealed: release the
          // chunks that only this change would have referenced.
          for (const [, hex] of c.blocks) if (hex) this.collectIfUnreferenced(Buffer.from(hex, 'hex'))
          return
        }
        let blocks = a.blocks
        for (const [index, hex, length] of c.blocks) {
          const old = this.getBlock(c.ino, index)
          if (hex) {
            const id = Buffer.from(hex, 'hex')
            this.incref(id, length)
            this.putBlockRef(c.ino, index, { id, length }, old)
            if (!old) blocks++
          } else if (old) {
            this.removeBlockRef(c.ino, index, old)
            blocks--
          }
          if (old) this.decref(old.id)
        }
        // ctime never moves back: a block committed after an explicit (older) mtime keeps the later change time
        this.putInode(c.ino, { ...a, ...c.attrs, size: c.size, blocks, mtime: c.mtime, ctime: Math.max(a.ctime, c.mtime, c.attrs?.ctime ?? 0) })
        return
      }
      case 'truncate': {
        const a = this.getAttrs(c.ino)
        if (!a) return
        const blocks = this.truncateBlocks(c.ino, c.size, a.blocks)
        this.putInode(c.ino, { ...a, size: c.size, blocks, mtime: c.mtime, ctime: c.mtime })
        return
      }
    }
  }

  // Drops one name of an inode; purges it when no name is left. Returns
  // whether it was a directory.
  private dropLink (ino: number, ctime: number): boolean {
    const a = this.mustAttrs(ino)
    const dir = isDir(a.mode)
    const nlink = dir ? 0 : a.nlink - 1
    if (nlink > 0) {
      this.putInode(ino, { ...a, nlink, ctime })
    } else {
      this.truncateBlocks(ino, 0, a.blocks)
      this.removeInode(ino, a)
    }
    return dir
  }

  private removeInode (ino: number, a: InodeAttrs | undefined): void {
    this.store.inodes.removeSync(u64Key(ino))
    if (a) this.countInode(a, -1)
    this.attrCache.delete(ino)
    this.inodeChanged(ino)
  }

  // Drops the block map entries past `size` and shortens a partial last block
  // so bytes cut off never come back when the file grows again.
  private truncateBlocks (ino: number, size: number, blocks: number): number {
    const cs = this.chunkSizeOf()
    const keep = Math.ceil(size / cs)
    for (const index of this.blockIndexes(ino, keep)) {
      const old = this.getBlock(ino, index)
      this.removeBlockRef(ino, index, old)
      if (old) { this.decref(old.id); blocks-- }
    }
    if (size % cs !== 0) {
      const index = keep - 1
      const last = this.getBlock(ino, index)
      const within = size - index * cs
      if (last && last.length > within) {
        this.putBlockRef(ino, index, { id: last.id, length: within }, last)
      }
    }
    return Math.max(0, blocks)
  }

  private chunkSize = 0
  setChunkSize (n: number): void { this.chunkSize = n }
  private chunkSizeOf (): number {
    if (!this.chunkSize) throw fail('EINVAL', 'chunk size not set')
    return this.chunkSize
  }

  // `length`: the new reference's. The chunk counts in uniqueBytes from its
  // first reference to its last, at the longest of them.
  private incref (id: Buffer, length: number): void {
    const raw = this.store.refs.getBinary(id)
    const n = raw ? refsCount(raw) : 0
    // A read where there is nothing to remove (every new chunk): a remove is a write instruction.
    if (n === 0) {
      if (this.store.garbage.doesExist(id)) this.store.unmarkGarbageSync(id)
      this.store.markDirty(id) // newly referenced: its replication is counted (replication/replica-state.ts)
    }
    const kept = n === 0 || !raw ? 0 : refsLength(raw) ?? 0
    if (length > kept) this.countBytes('uniqueBytes', length - kept)
    this.store.refs.putSync(id, encodeRefs(n + 1, Math.max(length, kept)))
  }

  private decref (id: Buffer): void {
    const raw = this.store.refs.getBinary(id)
    const n = raw ? refsCount(raw) : 0
    if (n <= 1) {
      if (raw) this.countBytes('uniqueBytes', -(refsLength(raw) ?? 0))
      this.store.refs.removeSync(id)
      // Copies elsewhere (replicas we placed, or this one when we hold it for
      // other members) are collected after a grace period by the garbage
      // collector (replication/garbage-collector.ts); it needs the holders.
      const foreign = this.store.foreign.doesExist(id)
      if (foreign || this.store.holders.doesExist(id)) {
        this.store.markGarbageSync(id, Date.now())
      }
      if (!foreign) this.store.removeChunkSync(id)
      else this.store.markDirty(id)
    } else {
      this.store.refs.putSync(id, encodeRefs(n - 1, refsLength(raw!) ?? 0))
    }
  }

  private collectIfUnreferenced (id: Buffer): void {
    if (!this.store.refs.doesExist(id) && !this.store.foreign.doesExist(id)) this.store.removeChunkSync(id)
  }

  private touchDir (dir: number, ms: number, nlinkDelta: number): void {
    const a = this.getAttrs(dir)
    if (!a) return
    this.putInode(dir, { ...a, nlink: a.nlink + nlinkDelta, mtime: ms, ctime: ms })
  }

  private mustAttrs (ino: number): InodeAttrs {
    const a = this.getAttrs(ino)
    if (!a) throw fail('ENOENT', `inode ${ino} is missing`)
    return a
  }

  private putInode (ino: number, attrs: InodeAttrs): void {
    if (this.counts !== null) {
      const old = this.getAttrs(ino)
      if (old) this.countInode(old, -1)
      this.countInode(attrs, 1)
    }
    const key = u64Key(ino)
    this.store.inodes.putSync(key, this.sealMeta(encodeInode(attrs), inodeAd(key)))
    this.remember(this.attrCache, ino, attrs)
    this.inodeChanged(ino)
  }

  // `old`: the ref it replaces, if any.
  private putBlockRef (ino: number, index: number, ref: BlockRef, old: BlockRef | undefined): void {
    this.countBytes('referencedBytes', ref.length - (old?.length ?? 0))
    const key = pairKey(ino, index)
    this.store.blocks.putSync(key, this.sealMeta(encodeBlockRef(ref), key))
    this.remember(this.blockCache, ino + '/' + index, ref)
  }

  private removeBlockRef (ino: number, index: number, old: BlockRef | undefined): void {
    if (old) this.countBytes('referencedBytes', -old.length)
    this.store.blocks.removeSync(pairKey(ino, index))
    this.blockCache.delete(ino + '/' + index)
  }

  private putDirent (parent: number, name: string, ino: number): void {
    const key = this.direntKey(parent, name)
    this.store.dirents.putSync(key, this.sealMeta(encodeDirent({ name, ino }), key))
    this.remember(this.lookupCache, parent + '/' + name, ino)
  }

  private deleteDirent (parent: number, name: string): void {
    this.store.dirents.removeSync(this.direntKey(parent, name))
    this.lookupCache.delete(parent + '/' + name)
  }

  // The last key made is kept: a create looks its name up, then puts it
  // (one keyed hash instead of two). Keys are never written to.
  private lastDirent: { parent: number, name: string, key: Buffer } | null = null

  private direntKey (parent: number, name: string): Buffer {
    const last = this.lastDirent
    if (last !== null && last.parent === parent && last.name === name) return last.key
    const p = u64Key(parent)
    const h = keyedHash(this.keys.name, p, Buffer.from(name, 'utf8'))
    const key = Buffer.concat([p, h.subarray(0, 16)])
    this.lastDirent = { parent, name, key }
    return key
  }

  private sealMeta (plain: Buffer, ad: Buffer): Buffer {
    return seal(this.keys.meta, plain, ad)
  }

  private openMeta (sealed: Buffer, ad: Buffer, what: string): Buffer {
    try {
      return open(this.keys.meta, sealed, ad)
    } catch (e) {
      throw fail('EIO', `corrupt metadata: ${what}`, e)
    }
  }

  private remember<K, V> (m: Map<K, V>, k: K, v: V): void {
    if (m.size >= CACHE_LIMIT) m.clear()
    m.set(k, v)
  }
}

// Low-level writes for materializing the merged view (no journal, no times).
export interface TreeWriter {
  putInode: (ino: number, attrs: InodeAttrs) => void
  placeDirent: (parent: number, name: string, ino: number) => void
  removeDirent: (parent: number, name: string) => void
  replaceBlocks: (ino: number, blocks: Array<{ index: number, id: Buffer, length: number }>) => number
  purge: (ino: number) => void
}

export function isDir (mode: number): boolean {
  return (mode & S_IFMT) === S_IFDIR
}
