import type { LmdbStore } from '../../store/lmdb-store.js'
import { verifyOpRecord, type OpRecordHeader } from '../../codec/op-record.js'

const KEY_BYTES = 32 + 8

export interface LogHead { member: string, seq: number }

// Every member's namespace log as this node holds it: signed, sealed op
// records keyed by (member, seq) in the `oplog` database. Storage-only
// members keep and relay the records without being able to open them. `heads`
// is the gapless prefix held of each member's log: what a peer is told we
// have. Records past a gap are kept too (ops commute; the gap is filled later).
export class OpLog {
  private readonly heads = new Map<string, number>()
  private readonly above = new Map<string, Set<number>>()
  // Per member: records up to this seq were folded into the snapshot and are
  // not kept; a peer whose head is below it is sent the snapshot.
  private readonly floor = new Map<string, number>()
  private readonly known = new Set<string>()
  private unswept = true // records at or below the floor may still be stored
  private sweeping = false

  constructor (private readonly store: LmdbStore) {
    const f = store.sysGet('nsfloor')
    if (f) for (const [m, seq] of Object.entries(JSON.parse(f.toString('utf8')) as Record<string, number>)) { this.floor.set(m, seq); this.heads.set(m, seq) }
    for (const key of store.oplog.getKeys({})) {
      const k = key as Buffer
      this.note(k.subarray(0, 32).toString('hex'), Number(k.readBigUInt64BE(32)))
    }
  }

  static key (member: string, seq: number): Buffer {
    const k = Buffer.allocUnsafe(KEY_BYTES)
    k.write(member, 0, 'hex')
    k.writeBigUInt64BE(BigInt(seq), 32)
    return k
  }

  has (member: string, seq: number): boolean {
    if (seq <= (this.heads.get(member) ?? 0) || seq <= (this.floor.get(member) ?? 0)) return true
    return this.above.get(member)?.has(seq) ?? false
  }

  // Stores a record this node wrote or verified; call inside a transaction.
  // Returns false for a record already held.
  put (h: OpRecordHeader, record: Buffer): boolean {
    if (this.has(h.member, h.seq)) return false
    this.store.oplog.putSync(OpLog.key(h.member, h.seq), record)
    this.note(h.member, h.seq)
    return true
  }

  // Verifies the signature and stores; returns the header, or null for a
  // duplicate. Throws CORRUPT_RECORD for a record that does not verify.
  accept (record: Buffer): OpRecordHeader | null {
    const h = verifyOpRecord(record)
    return this.put(h, Buffer.from(record)) ? h : null
  }

  // The snapshot this node keeps (its own or one it adopted), if any: the
  // header record (docs/format.md, "Snapshots"; a version 1 snapshot is all
  // in it), and the parts a version 2 header names.
  get snapshot (): Buffer | null {
    return this.store.sysGet('nssnap') ?? null
  }

  snapshotPart (index: number): Buffer | null {
    return this.store.sysGet(partKey(index)) ?? null
  }

  // After a compaction or adopting a snapshot: records up to `upTo[m]` are
  // in the snapshot's state; they count as held, are no longer read or
  // served, and are deleted a slice at a time afterwards (sweep). Call in a
  // transaction. Returns how many records this folded.
  fold (snapshot: Buffer, parts: Buffer[], upTo: Array<{ member: string, seq: number }>, covered: Array<{ member: string, seq: number }>): number {
    let folded = 0
    for (const { member, seq } of upTo) {
      const f = this.floor.get(member) ?? 0
      if (seq <= f) continue
      folded += Math.min(seq, Math.max(this.heads.get(member) ?? 0, f)) - f
      this.floor.set(member, seq)
      const a = this.above.get(member)
      if (a) for (const s of [...a]) if (s <= seq) { a.delete(s); folded++ }
    }
    for (const { member, seq } of covered) {
      if (seq > (this.heads.get(member) ?? 0)) this.heads.set(member, seq)
      let h = this.heads.get(member) ?? 0
      const a = this.above.get(member)
      while (a?.delete(h + 1)) h++
      if (h > 0) this.heads.set(member, h)
    }
    for (const [m, f] of this.floor) if ((this.heads.get(m) ?? 0) < f) this.heads.set(m, f)
    this.store.sysPut('nsfloor', Buffer.from(JSON.stringify(Object.fromEntries(this.floor)), 'utf8'))
    const before = this.store.sysGet('nsparts')?.readUInt32BE(0) ?? 0
    for (let i = parts.length; i < before; i++) this.store.sys.removeSync(Buffer.from(partKey(i)))
    parts.forEach((p, i) => this.store.sysPut(partKey(i), p))
    const n = Buffer.allocUnsafe(4)
    n.writeUInt32BE(parts.length)
    this.store.sysPut('nsparts', n)
    this.store.sysPut('nssnap', snapshot)
    this.unswept = true
    return folded
  }

  // Deletes up to `limit` records at or below the floor in one transaction;
  // whether any are left.
  sweepSome (limit = 2000): boolean {
    if (!this.unswept) return false
    let n = 0
    this.store.txn(() => {
      for (const [member, f] of this.floor) {
        for (const key of this.store.oplog.getKeys({ start: OpLog.key(member, 1), end: OpLog.key(member, f + 1), limit: limit - n })) {
          this.store.oplog.removeSync(key as Buffer)
          n++
        }
        if (n >= limit) return
      }
    })
    if (n < limit) this.unswept = false
    return this.unswept
  }

  // The records folded away are deleted in slices between other work.
  sweep (): void {
    if (this.sweeping || !this.unswept) return
    this.sweeping = true
    const step = (): void => {
      let more = false
      try { more = this.sweepSome() } catch { more = false }
      if (more) setImmediate(step)
      else this.sweeping = false
    }
    setImmediate(step)
  }

  // The certified member set (volume/member-set.ts), once the volume attaches it.
  signers: { checking: boolean, isActiveFull: (id: string) => boolean } | null = null

  // Whether a snapshot may name `id` as its creator: a full member in good
  // standing. Without a member set that can check (a log alone in a test, a
  // storage-only member from a join code without the role key): a member
  // whose records we hold, or one the caller vouched for (noteMember).
  mayMakeSnapshot (id: string): boolean {
    if (this.signers?.checking === true) return this.signers.isActiveFull(id)
    return this.heads.has(id) || this.above.has(id) || this.floor.has(id) || this.known.has(id)
  }

  noteMember (id: string): void {
    this.known.add(id)
  }

  // True when folding up to `base` would drop records we keep.
  wouldFold (base: Array<{ member: string, seq: number }>): boolean {
    return base.some(b => b.seq > (this.floor.get(b.member) ?? 0))
  }

  // True when a peer with these heads lacks records we no longer keep.
  needsSnapshot (peer: Map<string, number>): boolean {
    for (const [m, f] of this.floor) if ((peer.get(m) ?? 0) < f) return true
    return false
  }

  floorOf (member: string): number {
    return this.floor.get(member) ?? 0
  }

  headOf (member: string): number {
    return this.heads.get(member) ?? 0
  }

  allHeads (): LogHead[] {
    return [...this.heads].map(([member, seq]) => ({ member, seq }))
  }

  // Records kept (not folded into the snapshot).
  get size (): number {
    let n = 0
    for (const [m, s] of this.heads) n += s - (this.floor.get(m) ?? 0)
    for (const a of this.above.values()) n += a.size
    return n
  }

  get folded (): number {
    let n = 0
    for (const f of this.floor.values()) n += f
    return n
  }

  // Records the peer with these heads lacks, up to `budget` bytes (at least one).
  missingFor (peer: Map<string, number>, budget: number): { records: Buffer[], more: boolean } {
    const records: Buffer[] = []
    let bytes = 0
    const members = new Set([...this.heads.keys(), ...this.above.keys()])
    for (const member of members) {
      const from = Math.max(peer.get(member) ?? 0, this.floor.get(member) ?? 0) + 1
      for (const { value } of this.store.oplog.getRange({ start: OpLog.key(member, from), end: OpLog.key(member, Number.MAX_SAFE_INTEGER) })) {
        const v = value as Buffer
        if (records.length > 0 && (bytes + v.length > budget || records.length >= 4096)) return { records, more: true }
        records.push(Buffer.from(v))
        bytes += v.length
      }
    }
    return { records, more: false }
  }

  // How many of our records a peer with these heads lacks (status: "behind by N").
  behind (peer: Map<string, number>): number {
    let n = 0
    for (const [member, seq] of this.heads) n += Math.max(0, seq - (peer.get(member) ?? 0))
    return n
  }

  // Every record kept (above the floor), in key order: replayed into the merge at start-up.
  * all (): Generator<Buffer> {
    const members = [...new Set([...this.heads.keys(), ...this.above.keys()])].sort()
    for (const member of members) {
      const from = (this.floor.get(member) ?? 0) + 1
      for (const { value } of this.store.oplog.getRange({ start: OpLog.key(member, from), end: OpLog.key(member, Number.MAX_SAFE_INTEGER) })) yield value as Buffer
    }
  }

  private note (member: string, seq: number): void {
    const head = this.heads.get(member) ?? 0
    if (seq <= head) return
    if (seq === head + 1) {
      let h = seq
      const above = this.above.get(member)
      while (above?.delete(h + 1)) h++
      this.heads.set(member, h)
      return
    }
    let a = this.above.get(member)
    if (!a) this.above.set(member, a = new Set())
    a.add(seq)
  }
}

function partKey (index: number): string {
  return `nspart:${index}`
}
