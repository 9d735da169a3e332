import { MoveTree, type MoveTreeState } from './move-tree.js'
import { compareTs, conflictName, opKey, ROOT_ID, type Attrs, type NodeKind, type Op, type Ts } from './op.js'

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
  private readonly kinds = new Map<string, NodeKind>()
  private readonly attrs = new Map<string, Map<keyof Attrs, { value: number, ts: Ts }>>()
  private readonly versions = new Map<string, Map<string, Version>>()
  private readonly superseded = new Set<string>()
  private readonly dismissed = new Set<string>()
  private readonly removed = new Set<string>()
  private readonly seen = new Map<string, bigint>()
  private horizon = -1n
  private view: Map<string, ViewEntry> | undefined
  private dirs: Map<string, ViewEntry[]> | undefined

  // Returns false if the op was already applied (or is below the horizon).
  apply (op: Op): boolean {
    const key = opKey(op)
    if (op.hlc <= this.horizon || this.seen.has(key)) return false
    this.seen.set(key, op.hlc)
    this.view = undefined
    this.dirs = undefined
    const ts = { hlc: op.hlc, member: op.member }
    switch (op.type) {
      case 'create':
        if (!this.kinds.has(op.id)) this.kinds.set(op.id, op.kind)
        this.setAttrs(op.id, op.attrs, ts)
        if (op.kind !== 'dir') this.addVersion(op.id, { id: op.id, content: op.content, ts, base: null })
        this.moves.apply(op)
        return true
      case 'move':
        this.moves.apply(op)
        return true
      case 'remove':
        this.removed.add(op.id)
        for (const v of op.versions) this.dismissed.add(v)
        return true
      case 'write':
        if (op.attrs) this.setAttrs(op.id, op.attrs, ts)
        this.addVersion(op.id, { id: op.version, content: op.content, ts, base: op.base })
        if (op.base !== null) {
          this.superseded.add(op.base)
          this.versions.get(op.id)?.delete(op.base)
        }
        return true
      case 'setattr':
        this.setAttrs(op.id, op.attrs, ts)
        return true
    }
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
    const t = new MergeTree()
    t.moves = MoveTree.fromState(s.moves)
    for (const [id, k] of s.kinds) t.kinds.set(id, k)
    for (const [id, list] of s.attrs) t.attrs.set(id, new Map(list))
    for (const [id, list] of s.versions) t.versions.set(id, new Map(list.map(v => [v.id, v])))
    for (const v of s.superseded) t.superseded.add(v)
    for (const v of s.dismissed) t.dismissed.add(v)
    for (const v of s.removed) t.removed.add(v)
    for (const [k, h] of s.seen) t.seen.set(k, h)
    t.horizon = s.horizon
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

  entry (id: string): ViewEntry | undefined {
    return this.build().get(id)
  }

  listDir (id: string): ViewEntry[] {
    this.build()
    return this.dirs!.get(id) ?? []
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

  private build (): Map<string, ViewEntry> {
    if (this.view) return this.view
    const children = new Map<string, string[]>()
    for (const [id, p] of this.moves.entries()) {
      if (!this.kinds.has(id)) continue
      let list = children.get(p.parent)
      if (!list) children.set(p.parent, list = [])
      list.push(id)
    }
    const view = new Map<string, ViewEntry>()
    const dirs = new Map<string, ViewEntry[]>()
    // Depth first: a directory's entries are settled before it is decided
    // whether a removed directory stays (it does if it shows anything).
    const visit = (dir: string): boolean => {
      const cands: Candidate[] = []
      for (const id of children.get(dir) ?? []) {
        const p = this.moves.get(id)!
        const kind = this.kinds.get(id)!
        if (kind === 'dir') {
          const shows = visit(id)
          if (shows || !this.removed.has(id)) cands.push({ id, node: id, version: null, name: p.name, rank: p.by, conflicted: false })
          continue
        }
        const heads = [...this.versions.get(id)?.values() ?? []].filter(v => !this.superseded.has(v.id))
        heads.sort((a, b) => compareTs(b.ts, a.ts))
        heads.forEach((v, i) => {
          if (this.dismissed.has(v.id)) return
          if (i === 0) cands.push({ id, node: id, version: v.id, name: p.name, rank: p.by, conflicted: false })
          else cands.push({ id: `${id}@${v.id}`, node: id, version: v.id, name: conflictName(p.name, v.ts.member, v.ts.hlc), rank: v.ts, conflicted: true })
        })
      }
      if (cands.length === 0) return false
      cands.sort((a, b) => compareTs(a.rank, b.rank) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      const taken = new Set<string>()
      const entries: ViewEntry[] = []
      for (const c of cands) {
        let name = c.name
        if (taken.has(name) && !c.conflicted) name = conflictName(c.name, c.rank.member, c.rank.hlc)
        for (let n = 2; taken.has(name); n++) name = `${c.name}~${n}`
        taken.add(name)
        const kind = this.kinds.get(c.node)!
        const content = c.version === null ? '' : this.versions.get(c.node)!.get(c.version)!.content
        const e: ViewEntry = { id: c.id, node: c.node, version: c.version, parent: dir, name, kind, content, attrs: this.attrsOf(c.node) }
        entries.push(e)
        view.set(e.id, e)
      }
      entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
      dirs.set(dir, entries)
      return true
    }
    visit(ROOT_ID)
    this.view = view
    this.dirs = dirs
    return view
  }

  private addVersion (file: string, v: Version): void {
    if (this.superseded.has(v.id)) return
    let m = this.versions.get(file)
    if (!m) this.versions.set(file, m = new Map())
    m.set(v.id, v)
  }

  private setAttrs (id: string, attrs: Attrs, ts: Ts): void {
    let m = this.attrs.get(id)
    if (!m) this.attrs.set(id, m = new Map())
    for (const [k, value] of Object.entries(attrs) as Array<[keyof Attrs, number]>) {
      const cur = m.get(k)
      if (!cur || compareTs(ts, cur.ts) > 0) m.set(k, { value, ts })
    }
  }

  private attrsOf (id: string): Attrs {
    const out: Attrs = {}
    const m = this.attrs.get(id)
    if (m) for (const k of [...m.keys()].sort()) out[k] = m.get(k)!.value
    return out
  }
}
