import { fail } from '../../errors.js'
import { MergeTree, type FrozenTree, type Version } from './merge-tree.js'
import type { LogEntry, Placement } from './move-tree.js'
import type { Attrs, NodeKind, Ts } from './op.js'

// A MergeTree's state as a stream of small JSON items, so a snapshot of any
// size is written and read in parts (codec/snapshot-record.ts, version 2):
//
//   ['n', id, kind | 0, placement | 0, attrs, versions]   one node
//       placement [parent, name, hlc, member]; attrs [[key, value, hlc, member], ...];
//       versions [[id, content, hlc, member, base | null], ...]; stamps as decimal strings
//   ['s' | 'd' | 'r', [id, ...]]                          superseded, dismissed, removed ids
//
// and the small rest (the undo log and the duplicate filter above the
// horizon, both short after a compaction) as one value in the header.
export type StateItem = unknown[]
export interface SmallState { log: LogEntry[], moveHorizon: bigint, seen: Array<[string, bigint]>, horizon: bigint }

const SET_BATCH = 1000
const KINDS: NodeKind[] = ['file', 'dir', 'symlink']
const ATTR_KEYS: Array<keyof Attrs> = ['mode', 'uid', 'gid', 'mtime']

export function smallStateOf (f: FrozenTree): SmallState {
  return { log: f.moves.log, moveHorizon: f.moves.horizon, seen: [...f.seen], horizon: f.horizon }
}

export function * stateItems (f: FrozenTree): Generator<StateItem> {
  // Every node once: those with a kind, then placed or attributed ones without.
  const ids = function * (): Generator<string> {
    yield * f.kinds.keys()
    for (const id of f.moves.place.keys()) if (!f.kinds.has(id)) yield id
    for (const id of f.attrs.keys()) if (!f.kinds.has(id) && !f.moves.place.has(id)) yield id
    for (const id of f.versions.keys()) if (!f.kinds.has(id) && !f.moves.place.has(id) && !f.attrs.has(id)) yield id
  }
  for (const id of ids()) {
    const p = f.moves.place.get(id)
    const attrs = [...f.attrs.get(id) ?? []].map(([k, a]) => [k, a.value, a.ts.hlc.toString(), a.ts.member])
    const versions = [...f.versions.get(id)?.values() ?? []].map(v => [v.id, v.content, v.ts.hlc.toString(), v.ts.member, v.base])
    yield ['n', id, f.kinds.get(id) ?? 0, p ? [p.parent, p.name, p.by.hlc.toString(), p.by.member] : 0, attrs, versions]
  }
  for (const [tag, set] of [['s', f.superseded], ['d', f.dismissed], ['r', f.removed]] as const) {
    let batch: string[] = []
    for (const id of set) {
      batch.push(id)
      if (batch.length >= SET_BATCH) { yield [tag, batch]; batch = [] }
    }
    if (batch.length > 0) yield [tag, batch]
  }
}

// Builds a MergeTree from the items of a snapshot's parts, in any number of
// calls to `add`; every field is checked (a part is only as good as the
// member that sealed it).
export class TreeBuilder {
  private readonly f: FrozenTree = {
    moves: { log: [], place: new Map<string, Placement>(), horizon: -1n },
    kinds: new Map(),
    attrs: new Map(),
    versions: new Map(),
    superseded: new Set(),
    dismissed: new Set(),
    removed: new Set(),
    seen: new Map(),
    horizon: -1n
  }

  add (items: unknown): void {
    if (!Array.isArray(items)) bad('part')
    for (const item of items as unknown[]) this.addItem(item)
  }

  finish (small: unknown): MergeTree {
    const s = small as SmallState
    if (typeof s !== 'object' || s === null || !Array.isArray(s.log) || !Array.isArray(s.seen) || typeof s.horizon !== 'bigint' || typeof s.moveHorizon !== 'bigint') bad('state')
    this.f.moves.log = s.log
    this.f.moves.horizon = s.moveHorizon
    for (const [k, h] of s.seen) this.f.seen.set(str(k), typeof h === 'bigint' ? h : bad('seen'))
    this.f.horizon = s.horizon
    return MergeTree.fromFrozen(this.f)
  }

  private addItem (item: unknown): void {
    if (!Array.isArray(item)) bad('item')
    const [tag] = item as unknown[]
    if (tag === 's' || tag === 'd' || tag === 'r') {
      const set = tag === 's' ? this.f.superseded : tag === 'd' ? this.f.dismissed : this.f.removed
      const ids = item[1] as unknown
      if (!Array.isArray(ids)) bad('id list')
      for (const id of ids as unknown[]) set.add(str(id))
      return
    }
    if (tag !== 'n' || item.length !== 6) bad('item')
    const [, rawId, kind, place, attrs, versions] = item as [unknown, unknown, unknown, unknown, unknown, unknown]
    const id = str(rawId)
    if (kind !== 0) {
      if (!KINDS.includes(kind as NodeKind)) bad('kind')
      this.f.kinds.set(id, kind as NodeKind)
    }
    if (place !== 0) {
      if (!Array.isArray(place) || place.length !== 4) bad('placement')
      const [parent, name, hlc, member] = place as unknown[]
      this.f.moves.place.set(id, { parent: str(parent), name: str(name), by: ts(hlc, member) })
    }
    if (!Array.isArray(attrs) || !Array.isArray(versions)) bad('node')
    if ((attrs as unknown[]).length > 0 || this.f.kinds.has(id)) {
      const m = new Map<keyof Attrs, { value: number, ts: Ts }>()
      for (const a of attrs as unknown[]) {
        if (!Array.isArray(a) || a.length !== 4 || !ATTR_KEYS.includes(a[0] as keyof Attrs) || typeof a[1] !== 'number') bad('attribute')
        m.set(a[0] as keyof Attrs, { value: a[1] as number, ts: ts(a[2], a[3]) })
      }
      this.f.attrs.set(id, m)
    }
    if ((versions as unknown[]).length > 0) {
      const m = new Map<string, Version>()
      for (const v of versions as unknown[]) {
        if (!Array.isArray(v) || v.length !== 5 || typeof v[1] !== 'string') bad('version')
        const base = v[4] === null ? null : str(v[4])
        m.set(str(v[0]), { id: str(v[0]), content: v[1] as string, ts: ts(v[2], v[3]), base })
      }
      this.f.versions.set(id, m)
    }
  }
}

function bad (what: string): never {
  throw fail('CORRUPT_RECORD', `namespace snapshot: bad ${what}`)
}

function str (v: unknown): string {
  return typeof v === 'string' ? v : bad('id')
}

function ts (hlc: unknown, member: unknown): Ts {
  if (typeof hlc !== 'string' || !/^[0-9]{1,20}$/.test(hlc)) bad('stamp')
  return { hlc: BigInt(hlc as string), member: str(member) }
}
