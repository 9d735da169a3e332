import { compareTs, ROOT_ID, type PlacementOp, type Ts } from './op.js'

export interface Placement { parent: string, name: string, by: Ts }

export interface LogEntry { op: PlacementOp, old: Placement | undefined, applied: boolean }

// The state at one moment, sharing the (never changed) entries with the live tree.
export interface FrozenMoves { log: LogEntry[], place: Map<string, Placement>, horizon: bigint }

export interface MoveTreeState { log: LogEntry[], place: Array<[string, Placement]>, horizon: bigint }

// The tree of placements (Kleppmann et al. 2021, "A highly-available move
// operation for replicated trees"). Creates and moves are kept sorted by
// (hlc, member). One that arrives out of order undoes the later ones, applies
// itself and redoes them, so the result depends only on the set of ops. A
// move that would make a node its own ancestor is skipped, and since the
// check runs in the same order everywhere, it is skipped everywhere.
//
// Entries at or below the compaction horizon are dropped: by the stability
// rule (docs/consistency.md) nothing can ever sort before them again.
export class MoveTree {
  private log: LogEntry[] = []
  private place = new Map<string, Placement>()
  private horizon = -1n
  // Told of every node whose placement an apply changed (net of undo and
  // redo), with the placement before: MergeTree keeps its indexes from it.
  onPlace: ((id: string, old: Placement | undefined, now: Placement | undefined) => void) | null = null

  get (id: string): Placement | undefined {
    return this.place.get(id)
  }

  entries (): IterableIterator<[string, Placement]> {
    return this.place.entries()
  }

  get logLength (): number {
    return this.log.length
  }

  // Moves still in the undo log that were skipped because they would form a
  // cycle (for reporting; compaction forgets them).
  skipped (): PlacementOp[] {
    return this.log.filter(e => !e.applied).map(e => e.op)
  }

  // Returns false for an op at or below the horizon (a duplicate by the rule).
  apply (op: PlacementOp): boolean {
    if (op.hlc <= this.horizon) return false
    let i = this.log.length
    while (i > 0 && compareTs(this.log[i - 1].op, op) > 0) i--
    const later = this.log.splice(i)
    const before = new Map<string, Placement | undefined>([[op.id, this.place.get(op.id)]])
    for (const e of later) if (!before.has(e.op.id)) before.set(e.op.id, this.place.get(e.op.id))
    for (let j = later.length - 1; j >= 0; j--) this.undo(later[j])
    this.log.push(this.doOp(op))
    for (const e of later) this.log.push(this.doOp(e.op))
    if (this.onPlace) {
      for (const [id, old] of before) {
        const now = this.place.get(id)
        if (!samePlacement(now, old)) this.onPlace(id, old, now)
      }
    }
    return true
  }

  // The whole state, for a snapshot (merge/state-codec.ts encodes it).
  toState (): MoveTreeState {
    return { log: this.log.map(e => ({ ...e })), place: [...this.place], horizon: this.horizon }
  }

  static fromState (s: MoveTreeState): MoveTree {
    const t = new MoveTree()
    for (const e of s.log) t.log.push({ ...e })
    for (const [id, p] of s.place) t.place.set(id, p)
    t.horizon = s.horizon
    return t
  }

  freeze (): FrozenMoves {
    return { log: [...this.log], place: new Map(this.place), horizon: this.horizon }
  }

  // Takes the arrays and maps of `f` over.
  static fromFrozen (f: FrozenMoves): MoveTree {
    const t = new MoveTree()
    t.log = f.log
    t.place = f.place
    t.horizon = f.horizon
    return t
  }

  compact (horizon: bigint): void {
    let n = 0
    while (n < this.log.length && this.log[n].op.hlc <= horizon) n++
    this.log.splice(0, n)
    if (horizon > this.horizon) this.horizon = horizon
  }

  private doOp (op: PlacementOp): LogEntry {
    const old = this.place.get(op.id)
    if (op.id === ROOT_ID || this.isAncestor(op.id, op.parent)) return { op, old, applied: false }
    this.place.set(op.id, { parent: op.parent, name: op.name, by: { hlc: op.hlc, member: op.member } })
    return { op, old, applied: true }
  }

  private undo (e: LogEntry): void {
    if (!e.applied) return
    if (e.old) this.place.set(e.op.id, e.old)
    else this.place.delete(e.op.id)
  }

  // True if `a` is `b` or one of b's ancestors.
  private isAncestor (a: string, b: string): boolean {
    let cur: string | undefined = b
    while (cur !== undefined) {
      if (cur === a) return true
      cur = this.place.get(cur)?.parent
    }
    return false
  }
}

function samePlacement (a: Placement | undefined, b: Placement | undefined): boolean {
  if (a === b) return true
  if (a === undefined || b === undefined) return false
  return a.parent === b.parent && a.name === b.name && a.by.hlc === b.by.hlc && a.by.member === b.by.member
}
