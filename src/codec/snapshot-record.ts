import { createHash, randomBytes } from 'node:crypto'
import sodium from '../crypto/sodium.js'
import { seal, open } from '../crypto/aead.js'
import { fail } from '../errors.js'
import { compressSync, uncompressSync } from './lz4.js'

// A namespace snapshot (docs/format.md, "Snapshots"): the merged state at a
// compaction horizon, so members can drop the log records folded into it and
// a newcomer can start from it.
//
//   [version u8][creator 32][horizon u64]
//   [n u16] n x (member 32, seq u64, hlc u64)     covered: the state holds each member's ops up to seq
//   [m u16] m x (member 32, seq u64)              base: records up to seq are folded in (hlc <= horizon)
//   [signature 64][sealed(meta, AD = all bytes before the signature): state JSON]
//
// The header is in the clear so a storage-only member, which cannot open the
// state, can still tell which records the snapshot replaces.
//
// Version 2 (written since) holds the state in parts, so a snapshot has no
// size limit: the header record carries, after the base list, the
// snapshot's id (16 random bytes) and the SHA-256 of each part record; its
// sealed body is the small rest of the state (the undo log and duplicate
// filter above the horizon). A part record is
//
//   [version u8 = 1][snapshot id 16][index u32 BE][sealed(meta, AD = the first 21 bytes): LZ4 block of JSON (no bigints)]
//
// The header's signature covers the part hashes, so parts need none, and a
// storage-only member checks them without the key. Version 1 snapshots (the
// whole state in the header record, at most 24 MiB) are still read.
export const SNAPSHOT_VERSION = 2
export const SNAPSHOT_V1 = 1
export const MAX_SNAPSHOT_BYTES = 24 * 1024 * 1024
export const PART_VERSION = 1
export const SNAPSHOT_ID_BYTES = 16
export const MAX_PARTS = 1 << 20
const PART_HEAD = 1 + SNAPSHOT_ID_BYTES + 4
const SIG = 64

export interface Covered { member: string, seq: number, hlc: bigint }
export interface Base { member: string, seq: number }
export interface SnapshotHeader { creator: string, horizon: bigint, covered: Covered[], base: Base[] }
// A version 2 header: the parts it names.
export interface PartedHeader extends SnapshotHeader { version: number, id: Buffer | null, parts: Buffer[] }

// A version 2 snapshot: `small` is sealed into the header, `parts` are part
// records made by encodeSnapshotPart under `id`.
export function encodeSnapshotHeader (h: SnapshotHeader, id: Buffer, parts: Buffer[], small: unknown, metaKey: Buffer, secretKey: Buffer): Buffer {
  if (id.length !== SNAPSHOT_ID_BYTES) throw fail('EINVAL', 'snapshot id must be 16 bytes')
  if (parts.length > MAX_PARTS) throw fail('EFBIG', 'namespace snapshot has too many parts')
  const out: Buffer[] = [Buffer.from([SNAPSHOT_VERSION]), ...headFields(h), id, u32(parts.length)]
  for (const p of parts) out.push(sha256(p))
  const head = Buffer.concat(out)
  const sealed = seal(metaKey, Buffer.from(toJson(small), 'utf8'), head)
  const sig = Buffer.alloc(SIG)
  sodium.crypto_sign_detached(sig, Buffer.concat([head, sealed]), secretKey)
  const rec = Buffer.concat([head, sig, sealed])
  if (rec.length > MAX_SNAPSHOT_BYTES) throw fail('EFBIG', 'namespace snapshot header too large')
  return rec
}

export function newSnapshotId (): Buffer {
  return randomBytes(SNAPSHOT_ID_BYTES)
}

// One slice of the state (a JSON value), compressed and sealed.
export function encodeSnapshotPart (id: Buffer, index: number, value: unknown, metaKey: Buffer): Buffer {
  const head = Buffer.allocUnsafe(PART_HEAD)
  head[0] = PART_VERSION
  id.copy(head, 1)
  head.writeUInt32BE(index, 1 + SNAPSHOT_ID_BYTES)
  // (Plain JSON: a part holds no bigints, and a replacer costs a call per value.)
  const plain = Buffer.from(compressSync(Buffer.from(JSON.stringify(value), 'utf8')))
  return Buffer.concat([head, seal(metaKey, plain, head)])
}

// Checks that `part` is part `index` of the snapshot `h` names (no key needed).
export function verifySnapshotPart (h: PartedHeader, index: number, part: Buffer): void {
  if (h.id === null || index >= h.parts.length) throw fail('CORRUPT_RECORD', 'namespace snapshot: no such part')
  if (part.length < PART_HEAD + 40 || part[0] !== PART_VERSION) throw fail('CORRUPT_RECORD', 'namespace snapshot part is malformed')
  if (!sha256(part).equals(h.parts[index])) throw fail('CORRUPT_RECORD', `namespace snapshot part ${index} does not match its header`)
}

export function decodeSnapshotPart (h: PartedHeader, index: number, part: Buffer, metaKey: Buffer): unknown {
  verifySnapshotPart(h, index, part)
  let plain: Buffer
  try {
    plain = uncompressSync(open(metaKey, part.subarray(PART_HEAD), part.subarray(0, PART_HEAD)))
  } catch (e) {
    throw fail('CORRUPT_RECORD', 'namespace snapshot part does not open under the volume key', e)
  }
  try {
    return JSON.parse(plain.toString('utf8'))
  } catch (e) {
    throw fail('CORRUPT_RECORD', 'namespace snapshot part is not JSON', e)
  }
}

// A version 1 snapshot (the whole state in one record): what volumes made
// before version 2 hold; kept for the tests that pin reading them.
export function encodeSnapshot (h: SnapshotHeader, state: unknown, metaKey: Buffer, secretKey: Buffer): Buffer {
  const head = Buffer.concat([Buffer.from([SNAPSHOT_V1]), ...headFields(h)])
  const sealed = seal(metaKey, Buffer.from(toJson(state), 'utf8'), head)
  const sig = Buffer.alloc(SIG)
  sodium.crypto_sign_detached(sig, Buffer.concat([head, sealed]), secretKey)
  const out = Buffer.concat([head, sig, sealed])
  if (out.length > MAX_SNAPSHOT_BYTES) throw fail('EFBIG', 'namespace snapshot too large')
  return out
}

// Checks the layout and the creator's signature (no volume key needed).
export function verifySnapshot (b: Buffer): PartedHeader & { headLength: number } {
  const bad = (what: string): never => { throw fail('CORRUPT_RECORD', `namespace snapshot: ${what}`) }
  if (b.length > MAX_SNAPSHOT_BYTES || b.length < 1 + 32 + 8 + 4 + SIG + 40) bad('bad length')
  if (b[0] !== SNAPSHOT_VERSION && b[0] !== SNAPSHOT_V1) throw fail('UNSUPPORTED_VERSION', `namespace snapshot version ${b[0]}`)
  let o = 1
  const need = (n: number): void => { if (o + n > b.length) bad('truncated') }
  const creator = b.subarray(o, o + 32).toString('hex'); o += 32
  const horizon = b.readBigUInt64BE(o); o += 8
  need(2); const n = b.readUInt16BE(o); o += 2
  const covered: Covered[] = []
  for (let i = 0; i < n; i++) {
    need(48)
    covered.push({ member: b.subarray(o, o + 32).toString('hex'), seq: safe(b.readBigUInt64BE(o + 32), bad), hlc: b.readBigUInt64BE(o + 40) })
    o += 48
  }
  need(2); const m = b.readUInt16BE(o); o += 2
  const base: Base[] = []
  for (let i = 0; i < m; i++) {
    need(40)
    base.push({ member: b.subarray(o, o + 32).toString('hex'), seq: safe(b.readBigUInt64BE(o + 32), bad) })
    o += 40
  }
  let id: Buffer | null = null
  const parts: Buffer[] = []
  if (b[0] === SNAPSHOT_VERSION) {
    need(SNAPSHOT_ID_BYTES + 4)
    id = b.subarray(o, o + SNAPSHOT_ID_BYTES); o += SNAPSHOT_ID_BYTES
    const p = b.readUInt32BE(o); o += 4
    if (p > MAX_PARTS) bad('too many parts')
    need(p * 32)
    for (let i = 0; i < p; i++) { parts.push(b.subarray(o, o + 32)); o += 32 }
  }
  need(SIG + 40)
  const head = b.subarray(0, o)
  const sig = b.subarray(o, o + SIG)
  const sealed = b.subarray(o + SIG)
  if (!sodium.crypto_sign_verify_detached(sig, Buffer.concat([head, sealed]), b.subarray(1, 33))) bad('bad signature')
  return { version: b[0], creator, horizon, covered, base, id, parts, headLength: o }
}

// The header and its sealed body: a version 1 snapshot's whole state, a
// version 2 snapshot's small rest of it.
export function decodeSnapshotState (b: Buffer, metaKey: Buffer): { header: PartedHeader, state: unknown } {
  const h = verifySnapshot(b)
  let plain: Buffer
  try {
    plain = open(metaKey, b.subarray(h.headLength + SIG), b.subarray(0, h.headLength))
  } catch (e) {
    throw fail('CORRUPT_RECORD', 'namespace snapshot does not open under the volume key', e)
  }
  const state = fromJson(plain)
  return { header: { version: h.version, creator: h.creator, horizon: h.horizon, covered: h.covered, base: h.base, id: h.id, parts: h.parts }, state }
}

function headFields (h: SnapshotHeader): Buffer[] {
  const out: Buffer[] = [hex32(h.creator), u64(h.horizon), u16(h.covered.length)]
  for (const c of h.covered) out.push(hex32(c.member), u64(BigInt(c.seq)), u64(c.hlc))
  out.push(u16(h.base.length))
  for (const b of h.base) out.push(hex32(b.member), u64(BigInt(b.seq)))
  return out
}

function toJson (v: unknown): string {
  return JSON.stringify(v, (_k, x) => typeof x === 'bigint' ? { $big: x.toString() } : x)
}

function fromJson (plain: Buffer): unknown {
  try {
    return JSON.parse(plain.toString('utf8'), (_k, v) => v !== null && typeof v === 'object' && typeof v.$big === 'string' && /^-?[0-9]{1,20}$/.test(v.$big) ? BigInt(v.$big) : v)
  } catch (e) {
    throw fail('CORRUPT_RECORD', 'namespace snapshot is not JSON', e)
  }
}

function sha256 (b: Buffer): Buffer {
  return createHash('sha256').update(b).digest()
}

function safe (v: bigint, bad: (what: string) => never): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) bad('sequence number out of range')
  return Number(v)
}

function hex32 (h: string): Buffer {
  if (!/^[0-9a-f]{64}$/.test(h)) throw fail('EINVAL', 'member id must be 32 bytes of hex')
  return Buffer.from(h, 'hex')
}

function u64 (v: bigint): Buffer { const b = Buffer.allocUnsafe(8); b.writeBigUInt64BE(v); return b }
function u16 (n: number): Buffer { const b = Buffer.allocUnsafe(2); b.writeUInt16BE(n); return b }
function u32 (n: number): Buffer { const b = Buffer.allocUnsafe(4); b.writeUInt32BE(n); return b }

// A version 2 header's snapshot id, read without checking the signature
// (to answer a part request); null for a version 1 snapshot or a bad record.
export function snapshotIdOf (b: Buffer): Buffer | null {
  if (b[0] !== SNAPSHOT_VERSION || b.length < 1 + 32 + 8 + 2) return null
  let o = 1 + 32 + 8
  o += 2 + b.readUInt16BE(o) * 48
  if (o + 2 > b.length) return null
  o += 2 + b.readUInt16BE(o) * 40
  return o + SNAPSHOT_ID_BYTES <= b.length ? b.subarray(o, o + SNAPSHOT_ID_BYTES) : null
}
