import sodium from '../crypto/sodium.js'
import { seal, open } from '../crypto/aead.js'
import { fail } from '../errors.js'

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
export const SNAPSHOT_VERSION = 1
export const MAX_SNAPSHOT_BYTES = 24 * 1024 * 1024
const SIG = 64

export interface Covered { member: string, seq: number, hlc: bigint }
export interface Base { member: string, seq: number }
export interface SnapshotHeader { creator: string, horizon: bigint, covered: Covered[], base: Base[] }

export function encodeSnapshot (h: SnapshotHeader, state: unknown, metaKey: Buffer, secretKey: Buffer): Buffer {
  const parts: Buffer[] = [Buffer.from([SNAPSHOT_VERSION]), hex32(h.creator), u64(h.horizon), u16(h.covered.length)]
  for (const c of h.covered) parts.push(hex32(c.member), u64(BigInt(c.seq)), u64(c.hlc))
  parts.push(u16(h.base.length))
  for (const b of h.base) parts.push(hex32(b.member), u64(BigInt(b.seq)))
  const head = Buffer.concat(parts)
  const json = JSON.stringify(state, (_k, v) => typeof v === 'bigint' ? { $big: v.toString() } : v)
  const sealed = seal(metaKey, Buffer.from(json, 'utf8'), head)
  const sig = Buffer.alloc(SIG)
  sodium.crypto_sign_detached(sig, Buffer.concat([head, sealed]), secretKey)
  const out = Buffer.concat([head, sig, sealed])
  if (out.length > MAX_SNAPSHOT_BYTES) throw fail('EFBIG', 'namespace snapshot too large')
  return out
}

// Checks the layout and the creator's signature (no volume key needed).
export function verifySnapshot (b: Buffer): SnapshotHeader & { headLength: number } {
  const bad = (what: string): never => { throw fail('CORRUPT_RECORD', `namespace snapshot: ${what}`) }
  if (b.length > MAX_SNAPSHOT_BYTES || b.length < 1 + 32 + 8 + 4 + SIG + 40) bad('bad length')
  if (b[0] !== SNAPSHOT_VERSION) throw fail('UNSUPPORTED_VERSION', `namespace snapshot version ${b[0]}`)
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
  need(SIG + 40)
  const head = b.subarray(0, o)
  const sig = b.subarray(o, o + SIG)
  const sealed = b.subarray(o + SIG)
  if (!sodium.crypto_sign_verify_detached(sig, Buffer.concat([head, sealed]), b.subarray(1, 33))) bad('bad signature')
  return { creator, horizon, covered, base, headLength: o }
}

export function decodeSnapshotState (b: Buffer, metaKey: Buffer): { header: SnapshotHeader, state: unknown } {
  const h = verifySnapshot(b)
  let plain: Buffer
  try {
    plain = open(metaKey, b.subarray(h.headLength + SIG), b.subarray(0, h.headLength))
  } catch (e) {
    throw fail('CORRUPT_RECORD', 'namespace snapshot does not open under the volume key', e)
  }
  let state: unknown
  try {
    state = JSON.parse(plain.toString('utf8'), (_k, v) => v !== null && typeof v === 'object' && typeof v.$big === 'string' && /^[0-9]{1,20}$/.test(v.$big) ? BigInt(v.$big) : v)
  } catch (e) {
    throw fail('CORRUPT_RECORD', 'namespace snapshot is not JSON', e)
  }
  return { header: { creator: h.creator, horizon: h.horizon, covered: h.covered, base: h.base }, state }
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
