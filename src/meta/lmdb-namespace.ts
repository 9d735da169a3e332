import type { VolumeKeys } from '../crypto/volume-keys.js'
import type { InodeAttrs } from '../codec/inode-record.js'
import type { BlockRef } from '../codec/block-record.js'
import type { Change, StampedChange } from '../codec/change-record.js'
import type { NamespaceCounts } from '../codec/counters-record.js'
import type { LmdbStore } from '../store/lmdb-store.js'
import { HybridClock } from './hlc.js'
import { NamespaceCounters } from './namespace-counters.js'
import { SealedTree } from './sealed-tree.js'
import { ChunkRefs } from './chunk-refs.js'
import { TreeEditor } from './tree-editor.js'
import { ROOT_INO, type Namespace, type DirEntry, type ChunkToEnsure } from './namespace.js'

export { isDir } from './tree-editor.js'

const S_IFDIR = 0o040000
const SMALL_RECORD_BYTES = 128 * 1024
const HLC_LEASE = 1000n << 16n // 1 s of the clock's wall-time part (meta/hlc.ts)
const INO_LEASE = 4096

// The namespace over LMDB: sealed records (sealed-tree.ts) changed by
// stamped changes, one transaction each (tree-editor.ts), with reference
// counts (chunk-refs.ts) and counters (namespace-counters.ts) moving in the
// same transaction.
export class LmdbNamespace implements Namespace {
  private nextIno: number
  readonly clock: HybridClock
  private readonly listeners: Array<(c: StampedChange) => void> = []
  // Runs inside each local commit's transaction, before the change applies:
  // the shared namespace turns the change into ops of this member's log, so
  // a change and its log entry commit or fail together.
  journal: ((c: StampedChange) => void) | null = null
  private readonly counter: NamespaceCounters
  private readonly tree: SealedTree
  private readonly editor: TreeEditor

  // `cacheEntries`: the bound of each cache of decoded records (SealedTree).
  constructor (private readonly store: LmdbStore, private readonly keys: VolumeKeys, readonly nodeId: string, cacheEntries?: number) {
    const next = store.sysGet('nextIno')
    this.nextIno = next ? next.readDoubleLE(0) : ROOT_INO + 1
    const hlc = store.sysGet('hlc')
    this.clock = new HybridClock(hlc ? hlc.readBigUInt64BE(0) : 0n)
    this.counter = new NamespaceCounters(store)
    this.tree = new SealedTree(store, keys, this.counter, ino => this.inodeChanged(ino), cacheEntries)
    this.editor = new TreeEditor(this.tree, new ChunkRefs(store, this.counter), ino => {
      if (ino >= this.nextIno) this.nextIno = ino + 1
      this.leaseIno(ino)
    })
  }

  // Creates the root directory of a new volume.
  initRoot (uid: number, gid: number): void {
    if (this.getAttrs(ROOT_INO)) return
    const now = Date.now()
    this.store.txn(() => {
      this.counter.startIfNew()
      this.tree.putInode(ROOT_INO, { mode: S_IFDIR | 0o755, uid, gid, nlink: 2, rdev: 0, size: 0, blocks: 0, atime: now, mtime: now, ctime: now })
      this.counter.storeCounts()
    })
  }

  // --- counters (namespace-counters.ts) ---

  counters (): NamespaceCounts | null {
    return this.counter.counters()
  }

  // A volume from before the counters: counts it once, walking every inode
  // and block record (seconds at 10^5 files; at start-up, before the daemon
  // serves anything), and records in each refs record the bytes its chunk
  // counts for. Returns whether it walked.
  ensureCounters (): boolean {
    if (this.counter.counts !== null) return false
    this.recount()
    return true
  }

  // Counts again from the records (after recovery changed reference counts,
  // or fsck --repair).
  recount (): void {
    this.store.txn(() => { this.counter.recount(this.keys.meta) })
  }

  // --- reads (sealed-tree.ts) ---

  getAttrs (ino: number): InodeAttrs | undefined {
    return this.tree.getAttrs(ino)
  }

  lookup (parent: number, name: string): number | undefined {
    return this.tree.lookup(parent, name)
  }

  readdir (dir: number): DirEntry[] {
    return this.tree.readdir(dir)
  }

  isEmptyDir (dir: number): boolean {
    return this.tree.isEmptyDir(dir)
  }

  getBlock (ino: number, index: number): BlockRef | undefined {
    return this.tree.getBlock(ino, index)
  }

  blockIndexes (ino: number, from = 0): number[] {
    return this.tree.blockIndexes(ino, from)
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
    this.tree.dropCaches()
    this.hlcBound = null
    this.inoBound = null
    this.counter.reload()
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
        this.editor.apply(stamped)
        this.leaseHlc(stamped.hlc)
        this.putHeldForCommit()
        this.counter.storeCounts()
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
      putInode: (ino, attrs) => this.tree.putInode(ino, attrs),
      placeDirent: (parent, name, ino) => this.tree.putDirent(parent, name, ino),
      removeDirent: (parent, name) => this.tree.deleteDirent(parent, name),
      replaceBlocks: (ino, blocks) => this.editor.replaceBlocks(ino, blocks),
      purge: ino => this.editor.purge(ino)
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
        this.counter.storeCounts()
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

  setChunkSize (n: number): void { this.editor.setChunkSize(n) }
}

// Low-level writes for materializing the merged view (no journal, no times).
export interface TreeWriter {
  putInode: (ino: number, attrs: InodeAttrs) => void
  placeDirent: (parent: number, name: string, ino: number) => void
  removeDirent: (parent: number, name: string) => void
  replaceBlocks: (ino: number, blocks: Array<{ index: number, id: Buffer, length: number }>) => number
  purge: (ino: number) => void
}
