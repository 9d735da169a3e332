import type { Database } from 'lmdb'

type Db = Database<Buffer, Buffer>

// Small chunk records packed together (docs/format.md "Packs").
//
// A record of a 1-4 KiB block is 1-4 KiB plus 41 bytes. Stored under its own
// random key, LMDB puts one of more than ~2 KiB on overflow pages of its own
// (a 2.5 KiB record in a 4 KiB page, a 4.1 KiB one in 8 KiB), and the ones
// that stay inline fill leaf pages to ~70% at best (random keys split pages
// in the middle). Measured: 1.48 bytes of chunk table per byte of 1-4 KiB
// files. Packed, the records sit end to end in pack records of ~16 pages,
// written once and whole, and `chunks` keeps a 17-byte pointer per record.
//
// How a record gets there: it is stored inline as before (the write path is
// unchanged: a record is in `chunks` in the commit that stores it) and staged
// in `packq`; the packer, driven by those puts, moves staged records into a
// pack in one transaction once a pack's worth waits. A deleted packed record
// leaves a hole: its pack's live bytes go down, and a pack less than half live
// is queued for compaction, which puts its live records back inline (staged
// again) and deletes the pack. Every step is one LMDB transaction: a kill -9
// finds each record either inline or in a pack, never neither.

export const PACKED = 0xf0 // first byte of a pointer (with its length, 17, no record can be one: LmdbStore refuses such bytes)
export const POINTER_BYTES = 17 // f0 · pack seq (u64 BE) · offset (u32 LE) · length (u32 LE)
export const PACKABLE_MAX = 16 * 1024 // larger records keep their own overflow pages (waste under 12%)
const PACK_VERSION = 1
const ENTRY_HEAD = 36 // id (32) · length (u32 LE)
const OVERFLOW_HEADER = 16 // LMDB's page header before an overflow value
const PACK_PAGES = 16
const STAGE = 0x73 // 's' · stage seq (u64 BE) · id (32) -> empty: an inline record to pack
const DUE = 0x63 // 'c' · pack seq (u64 BE) -> empty: a pack to compact
const SCAN = 256 // staged entries looked at per pack at most
const FILL_TRIES = 8 // records too big for the room left, skipped (kept for the next pack) before the pack is closed

export interface Pointer { pack: number, offset: number, length: number }

export function isPointer (value: Buffer): boolean {
  return value.length === POINTER_BYTES && value[0] === PACKED
}

export function readPointer (value: Buffer): Pointer {
  return { pack: value.readUInt32BE(1) * 2 ** 32 + value.readUInt32BE(5), offset: value.readUInt32LE(9), length: value.readUInt32LE(13) }
}

export function pointer (p: Pointer): Buffer {
  const b = Buffer.allocUnsafe(POINTER_BYTES)
  b[0] = PACKED
  b.writeUInt32BE(Math.floor(p.pack / 2 ** 32), 1)
  b.writeUInt32BE(p.pack >>> 0, 5)
  b.writeUInt32LE(p.offset, 9)
  b.writeUInt32LE(p.length, 13)
  return b
}

export function packKey (seq: number): Buffer {
  const b = Buffer.allocUnsafe(8)
  b.writeUInt32BE(Math.floor(seq / 2 ** 32), 0)
  b.writeUInt32BE(seq >>> 0, 4)
  return b
}

function seqOf (b: Buffer, at: number): number {
  return b.readUInt32BE(at) * 2 ** 32 + b.readUInt32BE(at + 4)
}

// The record a pointer names, as a view of `pack` (itself a read buffer);
// undefined when the pointer does not fit the pack (a damaged store: the
// record counts as missing, and the scrubber fetches it again).
export function recordIn (pack: Buffer, p: Pointer): Buffer | undefined {
  if (pack[0] !== PACK_VERSION || p.offset < 1 + ENTRY_HEAD || p.offset + p.length > pack.length) return undefined
  return pack.subarray(p.offset, p.offset + p.length)
}

export interface PackDbs {
  chunks: Db // chunk id -> inline record, or a pointer into a pack
  packs: Db // pack seq (u64 BE) -> `01` · n × (chunk id (32) · length (u32 LE) · record)
  packlive: Db // pack seq -> live bytes (u32 LE) · all bytes (u32 LE) of its entries
  packq: Db // staged records and packs due for compaction (keys above)
}

// The packer: packs staged records and compacts packs, a transaction per
// step, each step on its own event-loop turn. Work comes from the puts and
// deletes that make it (kick()), never from a walk of the store.
export class ChunkPacker {
  private nextPack = 1
  private nextStage = 1
  private staged = 0 // bytes staged since the last pack (an estimate; a pass recounts)
  private due = true // packs may wait for compaction (unknown at start)
  private scheduled = false
  private running = false
  private closed = false
  readonly packLimit: number // bytes of a pack value that fill PACK_PAGES pages

  // `txn`: runs a synchronous write transaction (LmdbStore.txn).
  constructor (private readonly db: PackDbs, private readonly txn: <T>(fn: () => T) => T, pageSize: number) {
    this.packLimit = PACK_PAGES * pageSize - OVERFLOW_HEADER
    for (const k of db.packs.getKeys({ reverse: true, limit: 1 })) this.nextPack = seqOf(k as Buffer, 0) + 1
    const end = Buffer.from([STAGE + 1])
    const start = Buffer.from([STAGE])
    for (const k of db.packq.getKeys({ start: end, end: start, reverse: true, limit: 1 })) this.nextStage = seqOf(k as Buffer, 1) + 1
    this.staged = this.packLimit // unknown: the first pass looks
  }

  // Inside the transaction (or write batch) that stores an inline record.
  stageKey (id: Buffer, bytes: number): Buffer | null {
    if (bytes > PACKABLE_MAX) return null
    const k = Buffer.allocUnsafe(41)
    k[0] = STAGE
    k.writeUInt32BE(Math.floor(this.nextStage / 2 ** 32), 1)
    k.writeUInt32BE(this.nextStage >>> 0, 5)
    id.copy(k, 9)
    this.nextStage++
    this.staged += bytes + ENTRY_HEAD
    return k
  }

  // A packed record is gone or replaced (inside the caller's transaction):
  // its pack loses the bytes, and is queued for compaction when under half live.
  releaseSync (old: Buffer): void {
    const p = readPointer(old)
    const key = packKey(p.pack)
    const live = this.db.packlive.getBinary(key)
    if (live === undefined) return
    const left = Math.max(0, live.readUInt32LE(0) - p.length - ENTRY_HEAD)
    const all = live.readUInt32LE(4)
    const v = Buffer.allocUnsafe(8)
    v.writeUInt32LE(left, 0)
    v.writeUInt32LE(all, 4)
    this.db.packlive.putSync(key, v)
    if (left * 2 < all) {
      this.db.packq.putSync(Buffer.concat([Buffer.from([DUE]), key]), Buffer.alloc(0))
      this.due = true
    }
  }

  // Work may be waiting: runs it soon, a step per event-loop turn.
  kick (): void {
    if (this.closed || this.scheduled || this.running) return
    if (!this.due && this.staged < this.packLimit) return
    this.scheduled = true
    setImmediate(() => { this.scheduled = false; this.run() })
  }

  private run (): void {
    if (this.closed) return
    this.running = true
    let more = false
    try {
      more = this.step()
    } catch {
      // A failed step changed nothing (its transaction aborted); the next
      // put or delete tries again.
      more = false
    } finally {
      this.running = false
    }
    if (more) this.kick()
  }

  // One pack made or one compacted; whether more work may wait.
  step (): boolean {
    if (this.due) {
      if (this.compactOne()) return true
      this.due = false
    }
    if (this.staged >= this.packLimit) return this.packOne()
    return false
  }

  // Packs staged records into one pack when a full pack's worth waits.
  // Returns whether it made one.
  packOne (): boolean {
    return this.txn(() => {
      const { chunks, packs, packlive, packq } = this.db
      const pack = Buffer.allocUnsafe(this.packLimit)
      pack[0] = PACK_VERSION
      const take: Array<{ key: Buffer, id: Buffer, at: number, length: number }> = []
      const drop: Buffer[] = []
      let at = 1
      let seen = 0
      let misses = 0 // records that did not fit the room left
      for (const k of packq.getKeys({ start: Buffer.from([STAGE]), end: Buffer.from([STAGE + 1]) })) {
        if (seen++ >= SCAN || misses >= FILL_TRIES) break
        const key = Buffer.from(k as Buffer)
        const id = key.subarray(9, 41)
        const v = chunks.getBinaryFast(id)
        const length = v === undefined ? 0 : v.length // lmdb-js's buffer: `length` is the value's
        if (v === undefined || (length === POINTER_BYTES && v[0] === PACKED) || length > PACKABLE_MAX) { drop.push(key); continue }
        if (at + ENTRY_HEAD + length > this.packLimit) { misses++; continue } // the next pack's
        id.copy(pack, at)
        pack.writeUInt32LE(length, at + 32)
        pack.set(v.subarray(0, length), at + ENTRY_HEAD) // copied before the next read reuses the buffer
        take.push({ key, id, at: at + ENTRY_HEAD, length })
        at += ENTRY_HEAD + length
      }
      for (const key of drop) packq.removeSync(key)
      // Less than a full pack waits: it stays inline until more comes.
      const full = misses > 0 || seen > SCAN
      if (!full) { this.staged = at - 1; return false }
      const seq = this.nextPack
      const bytes = at
      packs.putSync(packKey(seq), pack.subarray(0, bytes))
      const live = Buffer.allocUnsafe(8)
      live.writeUInt32LE(bytes - 1, 0)
      live.writeUInt32LE(bytes - 1, 4)
      packlive.putSync(packKey(seq), live)
      // Deleted first: LMDB merges a leaf page left under a quarter full by a
      // delete, not by a smaller value put over a large one.
      for (const t of take) {
        chunks.removeSync(t.id)
        chunks.putSync(t.id, pointer({ pack: seq, offset: t.at, length: t.length }))
        packq.removeSync(t.key)
      }
      this.nextPack = seq + 1
      this.staged = Math.max(0, this.staged - (bytes - 1))
      return true
    })
  }

  // Compacts the first pack due: its live records go back inline, staged to
  // be packed again, and the pack goes. Returns whether there was one.
  compactOne (): boolean {
    return this.txn(() => {
      const { chunks, packs, packlive, packq } = this.db
      let dueKey: Buffer | undefined
      for (const k of packq.getKeys({ start: Buffer.from([DUE]), end: Buffer.from([DUE + 1]), limit: 1 })) dueKey = Buffer.from(k as Buffer)
      if (dueKey === undefined) return false
      packq.removeSync(dueKey)
      const seq = seqOf(dueKey, 1)
      const key = packKey(seq)
      const pack = packs.getBinary(key) // a copy: the loop below reads other records
      if (pack !== undefined && pack[0] === PACK_VERSION) {
        for (let at = 1; at + ENTRY_HEAD <= pack.length;) {
          const id = pack.subarray(at, at + 32)
          const len = pack.readUInt32LE(at + 32)
          const cur = chunks.getBinary(id)
          if (cur !== undefined && isPointer(cur)) {
            const p = readPointer(cur)
            if (p.pack === seq && p.offset === at + ENTRY_HEAD) {
              const record = pack.subarray(at + ENTRY_HEAD, at + ENTRY_HEAD + len)
              chunks.putSync(id, record)
              const stage = this.stageKey(id, len)
              if (stage) packq.putSync(stage, Buffer.alloc(0))
            }
          }
          at += ENTRY_HEAD + len
        }
      }
      packs.removeSync(key)
      packlive.removeSync(key)
      return true
    })
  }

  close (): void {
    this.closed = true
  }
}
