import { MoveTree, type FrozenMoves, type MoveTreeState } from './move-tree.js'
import { compareTs, conflictName, opKey, ROOT_ID, type Attrs, type NodeKind, type Op, type Ts } from './op.js'
import { ViewCache } from './view-cache.js'
import { DEFAULT_META_CACHE_ENTRIES } from '../cache-bound.js'

export interface Version { id: string, content: string, ts: Ts, base: string | null }

// One name in the materialized view: a node, or a losing version of a file
// shown beside it as a conflict copy (id `<node>@<version>`).
export interface ViewEntry {
  id: string
  node: string
  version: string | null
  parent: string
  name: string
  kind: NodeKind
  content: string
  attrs: Attrs
}

// Everything a MergeTree holds, for a namespace snapshot (the state at a
// compaction horizon plus what came after it).
export interface MergeTreeState {
  moves: MoveTreeState
  kinds: Array<[string, NodeKind]>
  attrs: Array<[string, Array<[keyof Attrs, { value: number, ts: Ts }]>]>
  versions: Array<[string, Version[]]>
  superseded: string[]
  dismissed: string[]
  removed: string[]
  seen: Array<[string, bigint]>
  horizon: bigint
}

export interface SnapshotEntry { path: string, id: string, kind: NodeKind, content: string, attrs: Attrs }
export type TreeSnapshot = SnapshotEntry[]

interface Listing { entries: ViewEntry[], byId: Map<string, ViewEntry>, byNode: Map<string, ViewEntry[]> }

// The state of a MergeTree at one moment: compaction encodes it while the
// live tree moves on (see MergeTree.freeze).
export interface FrozenTree {
  moves: FrozenMoves
  kinds: Map<string, NodeKind>
  attrs: Map<string, ReadonlyMap<keyof Attrs, { value: number, ts: Ts }>>
  versions: Map<string, ReadonlyMap<string, Version>>
  superseded: Set<string>
  dismissed: Set<string>
  removed: Set<string>
  seen: Map<string, bigint>
  horizon: bigint
}

interface Candidate { id: string, node: string, version: string | null, name: string, rank: Ts, conflicted: boolean }

// The merged namespace: a pure function of the set of ops applied, in any
// order, with duplicates. Only creates and moves depend on order (MoveTree
// replays them by timestamp); writes, removes and attribute changes are kept
// as sets, and the view that users see is derived from all of it:
// - a file's heads are its versions that no write used as a base; the
//   newest head by (hlc, member) is the file's content, the others are
//   conflict copies; a version a remove named is hidden, nothing else is;
// - a removed directory stays while anything inside it is visible;
// - equal names in one directory: the earlier placement keeps the name.
export class MergeTree {
  private moves = new MoveTree()
  private kinds = new Map<string, NodeKind>()
  // Inner maps are replaced, never changed in place, so `freeze` can copy
  // the outer maps only.
  private attrs = new Map<string, ReadonlyMap<keyof Attrs, { value: number, ts: Ts }>>()
  private versions = new Map<string, ReadonlyMap<string, Version>>()
  private superseded = new Set<string>()
  private dismissed = new Set<string>()
  private removed = new Set<string>()
  private seen = new Map<string, bigint>()
  private horizon = -1n
  // Derived, kept as ops apply: the nodes placed in each directory, the node
  // of each version that is not the node's first, and each directory's
  // listing, computed when asked and dropped when something in it changes.
  private readonly children = new Map<string, Set<string>>()
  private readonly versionNode = new Map<string, string>()
  // Both bounded by metaCacheEntries, counted in view entries (the least
  // recently used go first; meta/cache-bound.ts for the default):
  // what the view derives is a cache, never the only copy of anything.
  private readonly attrView = new ViewCache<Attrs>(() => this.metaCacheEntries) // attrsOf, computed once per change (shared: never change one)
  private readonly listings = new ViewCache<Listing>(() => this.metaCacheEntries) // weighed by entries, an empty one by 1
  metaCacheEntries = DEFAULT_META_CACHE_ENTRIES
  // A changed directory's listing as it was before its first change since
  // the last takeStale: what the materializer diffs the new one against.
  // null: the listing before was not at hand (never listed, or evicted), so
  // none computed later may stand for it.
  private readonly stale = new Map<string, Listing | null>()
  // What changed since the last `takeChanges`: directories whose listing may
  // differ, nodes whose entries (content, attributes, conflict copies) may.
  private changedDirs = new Set<string>()
  private changedNodes = new Set<string>()

  constructor () {
    this.watchMoves()
  }

  // Returns false if the op was already applied (or is below the horizon).
  apply (op: Op): boolean {
    const key = opKey(op)
    if (op.hlc <= this.horizon || this.seen.has(key)) return false
    this.seen.set(key, op.hlc)
    const ts = { hlc: op.hlc, member: op.member }
    switch (op.type) {
      case 'create':
        if (!this.kinds.has(op.id)) this.kinds.set(op.id, op.kind)
        this.setAttrs(op.id, op.attrs, ts)
        if (op.kind !== 'dir') this.addVersion(op.id, { id: op.id, content: op.content, ts, base: null })
        this.moves.apply(op)
        break
      case 'move':
        this.moves.apply(op)
        break
      case 'remove':
        this.removed.add(op.id)
        for (const v of op.versions) {
          this.dismissed.add(v)
          this.touchVersion(v)
        }
        break
      case 'write':
        if (op.attrs) this.setAttrs(op.id, op.attrs, ts)
        this.addVersion(op.id, { id: op.version, content: op.content, ts, base: op.base })
        if (op.base !== null) {
          this.superseded.add(op.base)
          this.touchVersion(op.base)
          const m = this.versions.get(op.id)
          if (m?.has(op.base)) {
            const next = new Map(m)
            next.delete(op.base)
            this.versions.set(op.id, next)
          }
        }
        break
      case 'setattr':
        this.setAttrs(op.id, op.attrs, ts)
        break
    }
    this.touchNode(op.id)
    return true
  }

  // The entries a directory listed before it changed (see `stale`), if they
  // were ever listed; forgotten by the call.
  takeStale (dir: string): ViewEntry[] | undefined {
    const l = this.stale.get(dir)
    this.stale.delete(dir)
    return l?.entries ?? undefined
  }

  forgetStale (): void {
    this.stale.clear()
  }

  // The directories and nodes whose view may have changed since the last
  // call (MergeTree's own ops and received ones alike).
  takeChanges (): { dirs: Set<string>, nodes: Set<string> } {
    const out = { dirs: this.changedDirs, nodes: this.changedNodes }
    this.changedDirs = new Set()
    this.changedNodes = new Set()
    return out
  }

  toState (): MergeTreeState {
    return {
      moves: this.moves.toState(),
      kinds: [...this.kinds],
      attrs: [...this.attrs].map(([id, m]) => [id, [...m]]),
      versions: [...this.versions].map(([id, m]) => [id, [...m.values()]]),
      superseded: [...this.superseded],
      dismissed: [...this.dismissed],
      removed: [...this.removed],
      seen: [...this.seen],
      horizon: this.horizon
    }
  }

  static fromState (s: MergeTreeState): MergeTree {
    return MergeTree.fromFrozen({
      moves: MoveTree.fromState(s.moves).freeze(),
      kinds: new Map(s.kinds),
      attrs: new Map(s.attrs.map(([id, list]) => [id, new Map(list)])),
      versions: new Map(s.versions.map(([id, list]) => [id, new Map(list.map(v => [v.id, v]))])),
      superseded: new Set(s.superseded),
      dismissed: new Set(s.dismissed),
      removed: new Set(s.removed),
      seen: new Map(s.seen),
      horizon: s.horizon
    })
  }

  // The whole state as it is now, in constant-ish time (copies of the outer
  // maps; the values are never changed in place): compaction encodes it in
  // slices while ops keep applying to the live tree.
  freeze (): FrozenTree {
    return {
      moves: this.moves.freeze(),
      kinds: new Map(this.kinds),
      attrs: new Map(this.attrs),
      versions: new Map(this.versions),
      superseded: new Set(this.superseded),
      dismissed: new Set(this.dismissed),
      removed: new Set(this.removed),
      seen: new Map(this.seen),
      horizon: this.horizon
    }
  }

  // Takes the maps of `f` over (do not use them afterwards).
  static fromFrozen (f: FrozenTree): MergeTree {
    const t = new MergeTree()
    t.moves = MoveTree.fromFrozen(f.moves)
    t.watchMoves()
    t.kinds = f.kinds
    t.attrs = f.attrs
    t.versions = f.versions
    t.superseded = f.superseded
    t.dismissed = f.dismissed
    t.removed = f.removed
    t.seen = f.seen
    t.horizon = f.horizon
    for (const [id, p] of t.moves.entries()) t.childrenOf(p.parent, true).add(id)
    for (const [node, m] of f.versions) for (const v of m.keys()) if (v !== node) t.versionNode.set(v, node)
    return t
  }

  // A node's attributes as merged (last writer wins per attribute).
  nodeAttrs (id: string): Attrs {
    return this.attrsOf(id)
  }

  get compactedTo (): bigint {
    return this.horizon
  }

  applyAll (ops: Iterable<Op>): void {
    for (const op of ops) this.apply(op)
  }

  // Causal stability: every member has received every op stamped at or below
  // `horizon` and will stamp nothing that low again (docs/consistency.md), so
  // the undo log up to it and the duplicate filter for it can go.
  compact (horizon: bigint): void {
    if (horizon <= this.horizon) return
    this.horizon = horizon
    this.moves.compact(horizon)
    for (const [k, hlc] of this.seen) if (hlc <= horizon) this.seen.delete(k)
  }

  get undoLogLength (): number {
    return this.moves.logLength
  }

  skippedMoves (): Op[] {
    return this.moves.skipped()
  }

  // --- the view ---

  // A visible entry: its directory lists it and every directory above it is visible.
  entry (id: string): ViewEntry | undefined {
    const at = id.indexOf('@')
    const p = this.moves.get(at < 0 ? id : id.slice(0, at))
    if (!p) return undefined
    const e = this.listing(p.parent).byId.get(id)
    return e && this.reachable(p.parent) ? e : undefined
  }

  // The entries of a visible directory, sorted by name ([] for anything else).
  listDir (id: string): ViewEntry[] {
    return this.reachable(id) ? this.listing(id).entries : []
  }

  // The visible entries of one node: the file and its conflict copies.
  entriesOfNode (node: string): ViewEntry[] {
    const p = this.moves.get(node)
    if (!p || !this.reachable(p.parent)) return []
    return this.listing(p.parent).byNode.get(node) ?? []
  }

  // Directories whose listing is visible: ROOT and every directory a visible directory lists.
  reachable (dir: string): boolean {
    for (let d = dir, depth = 0; depth < 100_000; depth++) {
      if (d === ROOT_ID) return true
      const p = this.moves.get(d)
      if (!p || this.kinds.get(d) !== 'dir' || !this.listing(p.parent).byId.has(d)) return false
      d = p.parent
    }
    return false
  }

  resolve (path: string): ViewEntry | undefined {
    let dir = ROOT_ID
    let found: ViewEntry | undefined
    for (const part of path.split('/').filter(p => p !== '')) {
      found = this.listDir(dir).find(e => e.name === part)
      if (!found) return undefined
      dir = found.id
    }
    return found
  }

  // The version a writer sees as the file's content: its newest head.
  winner (file: string): Version | undefined {
    let best: Version | undefined
    for (const v of this.versions.get(file)?.values() ?? []) {
      if (this.superseded.has(v.id)) continue
      if (!best || compareTs(v.ts, best.ts) > 0) best = v
    }
    return best
  }

  // Who last set an attribute (remote attributes are trusted less).
  attrAuthor (id: string, key: keyof Attrs): string | undefined {
    return this.attrs.get(id)?.get(key)?.ts.member
  }

  snapshot (): TreeSnapshot {
    const out: TreeSnapshot = []
    const walk = (dir: string, prefix: string): void => {
      for (const e of this.listDir(dir)) {
        const path = prefix + '/' + e.name
        out.push({ path, id: e.id, kind: e.kind, content: e.content, attrs: e.attrs })
        if (e.kind === 'dir') walk(e.id, path)
      }
    }
    walk(ROOT_ID, '')
    return out
  }

  // One directory's entries, whether or not the directory itself is
  // visible. A removed subdirectory is listed if it shows anything, which
  // its own listing decides (so a change inside a removed directory reaches
  // the listings above it: see touchDir).
  private listing (dir: string): Listing {
    const cached = this.listings.get(dir)
    if (cached) return cached
    const cands: Candidate[] = []
    for (const id of this.children.get(dir) ?? []) {
      const kind = this.kinds.get(id)
      if (kind === undefined) continue
      const p = this.moves.get(id)!
      if (kind === 'dir') {
        if (!this.removed.has(id) || this.listing(id).entries.length > 0) cands.push({ id, node: id, version: null, name: p.name, rank: p.by, conflicted: false })
        continue
      }
      const vs = this.versions.get(id)
      if (vs === undefined) continue
      if (vs.size === 1) {
        // Most files: one version, no conflict to sort out.
        const v = vs.values().next().value as Version
        if (!this.superseded.has(v.id) && !this.dismissed.has(v.id)) cands.push({ id, node: id, version: v.id, name: p.name, rank: p.by, conflicted: false })
        continue
      }
      const heads = [...vs.values()].filter(v => !this.superseded.has(v.id))
      heads.sort((a, b) => compareTs(b.ts, a.ts))
      heads.forEach((v, i) => {
        if (this.dismissed.has(v.id)) return
        if (i === 0) cands.push({ id, node: id, version: v.id, name: p.name, rank: p.by, conflicted: false })
        else cands.push({ id: `${id}@${v.id}`, node: id, version: v.id, name: conflictName(p.name, v.ts.member, v.ts.hlc), rank: v.ts, conflicted: true })
      })
    }
    // Equal names are settled in placement order; without any, order does not matter.
    const seenNames = new Set<string>()
    let clash = false
    for (const c of cands) {
      if (seenNames.has(c.name)) { clash = true; break }
      seenNames.add(c.name)
    }
    if (clash) cands.sort((a, b) => compareTs(a.rank, b.rank) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    const taken = new Set<string>()
    const entries: ViewEntry[] = []
    const byId = new Map<string, ViewEntry>()
    const byNode = new Map<string, ViewEntry[]>()
    for (const c of cands) {
      let name = c.name
      if (clash) {
        if (taken.has(name) && !c.conflicted) name = conflictName(c.name, c.rank.member, c.rank.hlc)
        for (let n = 2; taken.has(name); n++) name = `${c.name}~${n}`
        taken.add(name)
      }
      const kind = this.kinds.get(c.node)!
      const content = c.version === null ? '' : this.versions.get(c.node)!.get(c.version)!.content
      const e: ViewEntry = { id: c.id, node: c.node, version: c.version, parent: dir, name, kind, content, attrs: this.attrsOf(c.node) }
      entries.push(e)
      byId.set(e.id, e)
      const list = byNode.get(c.node)
      if (list === undefined) byNode.set(c.node, [e])
      else list.push(e)
    }
    entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
    const l = { entries, byId, byNode }
    this.listings.set(dir, l, Math.max(1, entries.length))
    return l
  }

  private watchMoves (): void {
    this.moves.onPlace = (id, old, now) => {
      if (old) {
        const set = this.children.get(old.parent)
        set?.delete(id)
        if (set?.size === 0) this.children.delete(old.parent)
        this.touchDir(old.parent)
      }
      if (now) {
        this.childrenOf(now.parent, true).add(id)
        this.touchDir(now.parent)
      }
      this.changedNodes.add(id)
    }
  }

  private childrenOf (dir: string, make: boolean): Set<string> {
    let set = this.children.get(dir)
    if (!set && make) this.children.set(dir, set = new Set())
    return set ?? new Set()
  }

  private touchNode (id: string): void {
    this.changedNodes.add(id)
    const p = this.moves.get(id)
    if (p) this.touchDir(p.parent)
  }

  private touchVersion (v: string): void {
    const node = this.versionNode.get(v) ?? v
    if (this.kinds.has(node)) this.touchNode(node)
  }

  // A directory's listing changed; if it is a removed directory, whether it
  // shows at all may have too, which its parent's listing depends on.
  private touchDir (dir: string): void {
    for (let d: string | undefined = dir, depth = 0; d !== undefined && depth < 100_000; depth++) {
      // Without the listing from before (evicted, or never made) the
      // materializer compares the whole directory: slower, always correct.
      const old = this.listings.delete(d)
      if (!this.stale.has(d)) this.stale.set(d, old ?? null)
      this.changedDirs.add(d)
      if (!this.removed.has(d)) return
      d = this.moves.get(d)?.parent
    }
  }

  private addVersion (file: string, v: Version): void {
    if (this.superseded.has(v.id)) return
    const m = new Map(this.versions.get(file))
    m.set(v.id, v)
    this.versions.set(file, m)
    if (v.id !== file) this.versionNode.set(v.id, file)
  }

  private setAttrs (id: string, attrs: Attrs, ts: Ts): void {
    const old = this.attrs.get(id)
    let m: Map<keyof Attrs, { value: number, ts: Ts }> | undefined
    for (const [k, value] of Object.entries(attrs) as Array<[keyof Attrs, number]>) {
      const cur = (m ?? old)?.get(k)
      if (cur && compareTs(ts, cur.ts) <= 0) continue
      if (!m) m = new Map(old)
      m.set(k, { value, ts })
    }
    if (m) { this.attrs.set(id, m); this.attrView.delete(id) } else if (!old) this.attrs.set(id, new Map())
  }

  private attrsOf (id: string): Attrs {
    const cached = this.attrView.get(id)
    if (cached !== undefined) return cached
    const out: Attrs = {}
    const m = this.attrs.get(id)
    if (m) for (const k of [...m.keys()].sort()) out[k] = m.get(k)!.value
    this.attrView.set(id, out)
    return out
  }
}
