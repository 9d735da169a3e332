import type { InodeAttrs } from '../../codec/inode-record.js'
import type { LmdbStore } from '../../store/lmdb-store.js'
import { ROOT_INO } from '../namespace.js'
import type { LmdbNamespace, TreeWriter } from '../lmdb-namespace.js'
import type { Member } from '../merge/member.js'
import type { ViewEntry } from '../merge/merge-tree.js'
import { ROOT_ID } from '../merge/op.js'
import type { EntryMap } from './entry-map.js'
import { decodeManifest } from './manifest.js'
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, sanitizeMode } from './modes.js'

// One transaction of materialization stops after this much work (a single
// directory is never split, so a huge directory can take longer).
const SLICE_MS = 25
// While a pass is under way this is kept in `sys` as 1: a start-up that finds
// it (or finds none, a volume from before) runs a full pass.
const PENDING_KEY = 'nsrecon'

// What the materializer reads and writes; `state` is swapped when the
// shared namespace replays or adopts a snapshot.
export interface MaterializerContext {
  store: LmdbStore
  ns: LmdbNamespace
  state: { member: Member, map: EntryMap }
  memberId: string
  chunkSize: number
  log: (line: string) => void
}

// Makes the local tree (LmdbNamespace) show the merged view, directory by
// directory: only the directories whose listing changed since the last pass
// (MergeTree.takeChanges) are compared with the local ones, and only the
// entries of changed nodes (or newly placed ones) have their inode, content
// and attributes looked at. So applying k received records costs about the
// k nodes and the directories they sit in, not the tree. A full pass (start-up
// after a crash, an adopted snapshot) is the same walk from the root, every
// directory queued, cut into transactions of about SLICE_MS.
export class Materializer {
  private readonly queue = new Set<string>() // view directories to compare
  private readonly nodes = new Set<string>() // nodes whose entries to refresh
  private full = false // a full pass: every directory met is queued, every entry refreshed
  private readonly conflictsIn = new Map<string, number>() // view directory -> conflict copies it shows
  private conflictTotal = 0
  writes = 0 // tree writes made (inodes, entries, block maps, purges): for tests and profiles

  constructor (private readonly c: MaterializerContext) {}

  // Takes the merge tree's changes into the work queue.
  collect (): void {
    const { dirs, nodes } = this.c.state.member.tree.takeChanges()
    for (const d of dirs) this.queue.add(d)
    for (const n of nodes) this.nodes.add(n)
  }

  // Everything is compared again, from the root (start-up, a new merge tree).
  markAll (): void {
    this.c.state.member.tree.takeChanges()
    this.c.state.member.tree.forgetStale()
    this.full = true
    this.queue.clear()
    this.nodes.clear()
    this.queue.add(ROOT_ID)
    this.conflictsIn.clear()
    this.conflictTotal = 0
  }

  // Whether a pass was left unfinished (by a crash) or never made.
  static wasInterrupted (store: LmdbStore): boolean {
    const v = store.sysGet(PENDING_KEY)
    return v === undefined || v[0] !== 0
  }

  // Call inside the transaction that stores records whose ops are merged.
  static notePending (store: LmdbStore): void {
    store.sysPut(PENDING_KEY, Buffer.from([1]))
  }

  get pending (): boolean {
    return this.queue.size > 0
  }

  get conflicts (): number {
    return this.conflictTotal
  }

  // One transaction's worth of the queue; whether anything is left.
  slice (budgetMs = SLICE_MS): boolean {
    this.collect()
    if (this.queue.size === 0) return false
    const started = performance.now()
    this.c.ns.materialize(w => {
      const gone: number[] = []
      for (const dir of this.queue) {
        this.queue.delete(dir)
        this.materializeDir(dir, w, gone)
        if (performance.now() - started > budgetMs) break
      }
      this.purge(gone, w)
      if (this.queue.size === 0) {
        // What is left names nodes no processed directory shows.
        this.nodes.clear()
        this.full = false
        this.c.store.sysPut(PENDING_KEY, Buffer.from([0]))
      }
    })
    return this.queue.size > 0
  }

  // All of it now (tests, close, start-up), still a transaction per
  // SLICE_MS: the pages a transaction dirties stay in LMDB's malloc'd
  // reuse list for good, so one transaction over a whole tree would keep
  // the tree's size in memory (#26).
  drain (): void {
    while (this.slice());
  }

  private materializeDir (dir: string, w: TreeWriter, gone: number[]): void {
    const { ns } = this.c
    const { member, map } = this.c.state
    const tree = member.tree
    const before = tree.takeStale(dir)
    const dirIno = dir === ROOT_ID ? ROOT_INO : map.get(dir)?.ino
    // Not bound yet: the directory above binds it and queues it again.
    if (dirIno === undefined) return
    const dirAttrs = ns.getAttrs(dirIno)
    if (!dirAttrs || (dirAttrs.mode & S_IFMT) !== S_IFDIR) return
    const wants = tree.listDir(dir)
    // The names that may differ locally, and the inode each shows there.
    // With the listing from before the change, they are the names whose
    // entry changed (the local directory showed that listing); without it
    // (the first change after a start, a full pass) every local name.
    let local: Map<string, number | undefined>
    let changed: ((e: ViewEntry) => boolean) | null = null
    if (before !== undefined && !this.full) {
      const was = new Map<string, string>()
      for (const e of before) was.set(e.name, e.id)
      const now = new Map<string, string>()
      for (const e of wants) now.set(e.name, e.id)
      local = new Map()
      for (const [name, id] of was) if (now.get(name) !== id) local.set(name, ns.lookup(dirIno, name))
      for (const [name, id] of now) if (was.get(name) !== id) local.set(name, ns.lookup(dirIno, name))
      changed = e => was.get(e.name) !== e.id
    } else {
      local = new Map()
      for (const d of ns.readdir(dirIno)) local.set(d.name, d.ino)
    }
    // Where each wanted entry that needs a look goes: its bound inode, or a new one.
    const touched: Array<{ e: ViewEntry, ino: number, fresh: boolean, placed: boolean }> = []
    const wantAt = new Map<string, number>()
    for (const e of wants) {
      const bound = map.get(e.id)
      let ino = bound?.ino
      const look = this.full || ino === undefined || this.nodes.has(e.node) || bound?.version !== (e.version ?? '') ||
        (changed === null ? local.get(e.name) !== ino : changed(e))
      if (!look) { if (ino !== undefined) wantAt.set(e.name, ino); continue }
      let fresh = false
      if (ino === undefined || !this.kindFits(ino, e)) { ino = ns.allocIno(); fresh = true }
      wantAt.set(e.name, ino)
      touched.push({ e, ino, fresh, placed: false })
    }
    for (const [name, ino] of local) {
      if (ino === undefined || wantAt.get(name) === ino) continue
      // Never drop what the shared tree does not know (a change it skipped).
      if (map.entriesOf(ino).length === 0) continue
      w.removeDirent(dirIno, name)
      this.writes++
      gone.push(ino)
    }
    const now = Date.now()
    for (const t of touched) {
      const { e, ino, fresh } = t
      const bound = map.get(e.id)
      const placed = (local.has(e.name) ? local.get(e.name) : ns.lookup(dirIno, e.name)) === ino
      this.refresh(e, ino, dirIno, placed, w, now)
      if (e.kind === 'dir' && (fresh || this.full || bound === undefined)) this.queue.add(e.id)
    }
    let subdirs = 0
    let conflicts = 0
    for (const e of wants) {
      if (e.kind === 'dir') subdirs++
      if (e.version !== null && e.id !== e.node) conflicts++
      this.nodes.delete(e.node)
    }
    if (dirAttrs.nlink !== 2 + subdirs) { w.putInode(dirIno, { ...dirAttrs, nlink: 2 + subdirs }); this.writes++ }
    this.conflictTotal += conflicts - (this.conflictsIn.get(dir) ?? 0)
    if (conflicts > 0) this.conflictsIn.set(dir, conflicts)
    else this.conflictsIn.delete(dir)
  }

  // One wanted entry: its inode, its name in the directory, its content and attributes.
  private refresh (e: ViewEntry, ino: number, dirIno: number, placed: boolean, w: TreeWriter, now: number): void {
    const { ns } = this.c
    const { member, map } = this.c.state
    let a = ns.getAttrs(ino)
    if (!a) {
      const mtime = e.attrs.mtime ?? now
      a = { mode: this.modeOf(e), uid: e.attrs.uid ?? 0, gid: e.attrs.gid ?? 0, nlink: e.kind === 'dir' ? 2 : 1, rdev: 0, size: 0, blocks: 0, atime: mtime, mtime, ctime: now }
      w.putInode(ino, a)
      this.writes++
    }
    if (!placed) { w.placeDirent(dirIno, e.name, ino); this.writes++ }
    const bound = map.get(e.id)
    const version = e.version ?? ''
    const dirty = map.dirty.has(ino)
    let next: InodeAttrs = a
    if (e.kind !== 'dir' && bound?.version !== version && !dirty) {
      if (e.kind === 'symlink') {
        next = { ...next, target: e.content, size: Buffer.byteLength(e.content) }
      } else {
        let m
        try { m = decodeManifest(e.content, this.c.chunkSize) } catch (err) { this.c.log(`namespace: ${(err as Error).message}`); m = { size: 0, blocks: [] } }
        const blocks = w.replaceBlocks(ino, m.blocks)
        this.writes++
        next = { ...next, size: m.size, blocks, ctime: now }
      }
    }
    if (bound?.ino !== ino || bound.version !== version) map.bind(e.id, ino, version)
    if (!dirty) {
      if (e.attrs.mode !== undefined) {
        const mode = this.modeOf(e)
        if (mode !== next.mode) next = { ...next, mode, ctime: now }
      }
      if (e.attrs.uid !== undefined && next.uid !== e.attrs.uid) next = { ...next, uid: e.attrs.uid }
      if (e.attrs.gid !== undefined && next.gid !== e.attrs.gid) next = { ...next, gid: e.attrs.gid }
      if (e.kind !== 'dir' && e.attrs.mtime !== undefined && next.mtime !== e.attrs.mtime) next = { ...next, mtime: e.attrs.mtime }
    }
    if (e.kind !== 'dir') {
      // A local hard link: one inode bound to several entries of the view.
      let links = 0
      for (const x of map.entriesOf(ino)) if (x === e.id || member.tree.entry(x) !== undefined) links++
      if (next.nlink !== Math.max(1, links)) next = { ...next, nlink: Math.max(1, links) }
    }
    if (next !== a) { w.putInode(ino, next); this.writes++ }
  }

  // Inodes whose entry went from a directory: purged unless the view still
  // shows them somewhere (moved: the directory they went to places them).
  // A purged directory takes its local entries with it.
  private purge (gone: number[], w: TreeWriter): void {
    const { ns } = this.c
    const { member, map } = this.c.state
    const done = new Set<number>()
    while (gone.length > 0) {
      const ino = gone.pop()!
      if (done.has(ino) || ino === ROOT_INO) continue
      done.add(ino)
      const entries = map.entriesOf(ino)
      if (entries.length === 0 || entries.some(x => member.tree.entry(x) !== undefined)) continue
      const a = ns.getAttrs(ino)
      if (a && (a.mode & S_IFMT) === S_IFDIR) {
        for (const d of ns.readdir(ino)) {
          w.removeDirent(ino, d.name)
          gone.push(d.ino)
        }
        for (const x of entries) {
          this.conflictTotal -= this.conflictsIn.get(x) ?? 0
          this.conflictsIn.delete(x)
        }
      }
      w.purge(ino)
      this.writes++
      for (const x of entries) map.unbind(x)
      map.clean(ino)
    }
  }

  // An inode bound earlier that now holds another kind (a directory where a
  // file is wanted, or the reverse) is not reused.
  private kindFits (ino: number, e: ViewEntry): boolean {
    const a = this.c.ns.getAttrs(ino)
    if (!a) return true
    return ((a.mode & S_IFMT) === S_IFDIR) === (e.kind === 'dir')
  }

  // The file type comes from the node's kind, never from the mode a peer
  // sent (sanitizeMode, docs/security.md).
  private modeOf (e: ViewEntry): number {
    const type = e.kind === 'dir' ? S_IFDIR : e.kind === 'symlink' ? S_IFLNK : S_IFREG
    const m = e.attrs.mode
    if (m === undefined) return type | (e.kind === 'dir' ? 0o755 : e.kind === 'symlink' ? 0o777 : 0o644)
    return type | sanitizeMode(m, e.kind, this.c.state.member.tree.attrAuthor(e.node, 'mode') === this.c.memberId)
  }
}
