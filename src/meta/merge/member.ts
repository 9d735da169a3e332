import { HybridClock } from '../hlc.js'
import { fail } from '../../errors.js'
import { MergeTree } from './merge-tree.js'
import type { Attrs, CreateOp, MoveOp, NodeKind, Op, OpStamp, RemoveOp, SetattrOp, WriteOp } from './op.js'

// A frontier another member published, and the head of its own log it
// reported with it.
export interface PublishedFrontier { frontier: bigint, head: number }

// One writer of the volume: stamps its ops, applies them to its own replica at
// once, and applies ops received from the others. It also tracks, per member,
// the gapless prefix of that member's log it holds, which gives its
// stability frontier (see `frontier`).
export class Member {
  tree = new MergeTree()
  private counter = 0
  private seq = 0
  private readonly prefix = new Map<string, { seq: number, hlc: bigint, pending: Map<number, bigint> }>()

  constructor (readonly id: string, readonly clock: HybridClock = new HybridClock()) {
    if (!/^[0-9a-f]{8,}$/.test(id)) throw fail('EINVAL', `member id must be hex: ${id}`)
  }

  receive (op: Op): void {
    this.clock.observe(op.hlc)
    this.tree.apply(op)
    this.track(op)
  }

  create (parent: string, name: string, kind: NodeKind, content = '', attrs: Attrs = {}): CreateOp {
    if (kind === 'dir' && content !== '') throw fail('EINVAL', 'a directory has no content')
    return this.local({ ...this.stamp(), type: 'create', id: this.newId(), parent, name, kind, attrs, content })
  }

  move (id: string, parent: string, name: string): MoveOp {
    return this.local({ ...this.stamp(), type: 'move', id, parent, name })
  }

  // Removes a view entry: a file (its current version), a conflict copy
  // (that version only), or an empty directory.
  remove (entryId: string): RemoveOp {
    const e = this.tree.entry(entryId)
    if (!e) throw fail('ENOENT', entryId)
    if (e.kind === 'dir' && this.tree.listDir(e.id).length > 0) throw fail('ENOTEMPTY', entryId)
    return this.local({ ...this.stamp(), type: 'remove', id: e.node, versions: e.version === null ? [] : [e.version] })
  }

  // A new version of a file's content, based on the version this member sees
  // (by default its newest head; the live namespace passes the version the
  // local file was showing when it was edited).
  write (id: string, content: string, base: string | null | undefined = undefined, attrs?: Attrs): WriteOp {
    const b = base !== undefined ? base : (this.tree.winner(id)?.id ?? null)
    const op: WriteOp = { ...this.stamp(), type: 'write', id, version: this.newId(), content, base: b }
    if (attrs) op.attrs = attrs
    return this.local(op)
  }

  // A remove built by a caller that knows which node and versions it deletes
  // (the live namespace, which must not rebuild the view on every unlink).
  removeNode (node: string, versions: string[]): RemoveOp {
    return this.local({ ...this.stamp(), type: 'remove', id: node, versions })
  }

  // Takes over a snapshot's state: the ops it folded in count as held, each
  // member's up to `covered` (seq, and the stamp every op of it at or below
  // which is in the state).
  adopt (tree: MergeTree, covered: Array<{ member: string, seq: number, hlc: bigint }>): void {
    this.tree = tree
    for (const c of covered) {
      if (c.member === this.id) { if (c.seq > this.seq) this.seq = c.seq; continue }
      const p = this.prefix.get(c.member)
      if (!p) this.prefix.set(c.member, { seq: c.seq, hlc: c.hlc, pending: new Map() })
      else if (c.seq > p.seq) { p.seq = c.seq; p.hlc = c.hlc; for (const k of [...p.pending.keys()]) if (k <= c.seq) p.pending.delete(k) }
    }
    this.clock.observe(tree.compactedTo)
  }

  // Per member, the gapless prefix of its log this member holds, and the stamp
  // of its last op (for itself: its clock): what a snapshot covers.
  covered (): Array<{ member: string, seq: number, hlc: bigint }> {
    const out = [{ member: this.id, seq: this.seq, hlc: this.clock.current }]
    for (const [member, p] of this.prefix) if (p.seq > 0) out.push({ member, seq: p.seq, hlc: p.hlc })
    return out
  }

  // After a restart: the own log's last sequence number and id counter.
  restore (seq: number, counter: number): void {
    if (seq > this.seq) this.seq = seq
    if (counter > this.counter) this.counter = counter
  }

  get lastSeq (): number {
    return this.seq
  }

  setattr (id: string, attrs: Attrs): SetattrOp {
    return this.local({ ...this.stamp(), type: 'setattr', id, attrs })
  }

  // Every op stamped at or below the frontier is here, and this member will
  // stamp nothing that low again. Members publish their frontier; the
  // minimum over all members is the compaction horizon. Of another member,
  // every op up to the last one of the gapless prefix held is here; and with
  // `published`, the frontier it last published, together with its own log's
  // head then, every op up to that frontier once that head is held: it
  // stamped nothing after at or below it. Without the second, a member that
  // stopped writing held every frontier at its last op.
  frontier (members: string[], published?: ReadonlyMap<string, PublishedFrontier>): bigint {
    let min = this.clock.current
    for (const m of members) {
      if (m === this.id) continue
      const p = this.prefix.get(m)
      let h = p?.hlc ?? 0n
      const f = published?.get(m)
      if (f !== undefined && f.frontier > h && (p?.seq ?? 0) >= f.head) h = f.frontier
      if (h < min) min = h
    }
    return min
  }

  private track (op: Op): void {
    if (op.member === this.id) return
    let p = this.prefix.get(op.member)
    if (!p) this.prefix.set(op.member, p = { seq: 0, hlc: 0n, pending: new Map() })
    if (op.seq <= p.seq) return
    p.pending.set(op.seq, op.hlc)
    for (let h = p.pending.get(p.seq + 1); h !== undefined; h = p.pending.get(p.seq + 1)) {
      p.pending.delete(++p.seq)
      p.hlc = h
    }
  }

  private stamp (): OpStamp {
    // Sequence numbers are u64 on disk and on the wire and exact integers
    // here: past 2^53-1, ++ would repeat a number (snapshots that claim that
    // much are refused, meta/shared/snapshots.ts).
    if (this.seq >= Number.MAX_SAFE_INTEGER) throw fail('ERANGE', 'this member\'s log is out of sequence numbers')
    return { hlc: this.clock.tick(), member: this.id, seq: ++this.seq }
  }

  private newId (): string {
    return `${this.id}:${++this.counter}`
  }

  private local<T extends Op> (op: T): T {
    this.tree.apply(op)
    return op
  }
}
