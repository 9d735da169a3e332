import sodium from '../crypto/sodium.js'
import { seal, open } from '../crypto/aead.js'
import { fail } from '../errors.js'
import type { Attrs, NodeKind, Op } from '../meta/merge/op.js'

// One entry of a member's namespace log, as stored and as sent to peers
// (docs/format.md, "Op records"):
//
//   [version u8][member 32][seq u64 BE][signature 64][sealed op]
//
// The op is sealed under the metadata key with the 41-byte header as
// associated data, so a record cannot be moved to another member or position.
// The signature (Ed25519, by the member's node key, whose public half is the
// member id) covers the header and the sealed bytes: a storage-only member,
// which cannot open the op, can still check who wrote it before it stores and
// relays it, and a full member cannot forge another member's entries.
export const OP_RECORD_VERSION = 1
export const OP_HEADER_BYTES = 1 + 32 + 8
export const OP_SIG_BYTES = 64
export const MAX_OP_RECORD_BYTES = 8 * 1024 * 1024
const MAX_ID = 200
const MAX_NAME_BYTES = 255
const MAX_CONTENT = MAX_OP_RECORD_BYTES - 4096

export interface OpRecordHeader { member: string, seq: number }

export function signingKeyOfSeed (seed: Buffer): { publicKey: Buffer, secretKey: Buffer } {
  const publicKey = Buffer.alloc(sodium.crypto_sign_PUBLICKEYBYTES)
  const secretKey = sodium.sodium_malloc(sodium.crypto_sign_SECRETKEYBYTES) as unknown as Buffer
  sodium.crypto_sign_seed_keypair(publicKey, secretKey, seed)
  return { publicKey, secretKey }
}

function header (member: string, seq: number): Buffer {
  const h = Buffer.allocUnsafe(OP_HEADER_BYTES)
  h[0] = OP_RECORD_VERSION
  if (!/^[0-9a-f]{64}$/.test(member)) throw fail('EINVAL', 'member id must be 32 bytes of hex')
  h.write(member, 1, 'hex')
  h.writeBigUInt64BE(BigInt(seq), 33)
  return h
}

export function encodeOpRecord (op: Op, metaKey: Buffer, secretKey: Buffer): Buffer {
  const h = header(op.member, op.seq)
  const json = JSON.stringify(op, (_k, v) => typeof v === 'bigint' ? v.toString() : v)
  const sealed = seal(metaKey, Buffer.from(json, 'utf8'), h)
  const out = Buffer.allocUnsafe(OP_HEADER_BYTES + OP_SIG_BYTES + sealed.length)
  h.copy(out, 0)
  sealed.copy(out, OP_HEADER_BYTES + OP_SIG_BYTES)
  sodium.crypto_sign_detached(out.subarray(OP_HEADER_BYTES, OP_HEADER_BYTES + OP_SIG_BYTES), signed(out), secretKey)
  if (out.length > MAX_OP_RECORD_BYTES) throw fail('EFBIG', 'namespace record too large')
  return out
}

function signed (record: Buffer): Buffer {
  return Buffer.concat([record.subarray(0, OP_HEADER_BYTES), record.subarray(OP_HEADER_BYTES + OP_SIG_BYTES)])
}

// Checks the shape and the signature; needs no volume key (storage-only members).
export function verifyOpRecord (record: Buffer): OpRecordHeader {
  if (record.length < OP_HEADER_BYTES + OP_SIG_BYTES + 40 || record.length > MAX_OP_RECORD_BYTES) throw fail('CORRUPT_RECORD', 'namespace record has a bad length')
  if (record[0] !== OP_RECORD_VERSION) throw fail('UNSUPPORTED_VERSION', `namespace record version ${record[0]}`)
  const memberKey = record.subarray(1, 33)
  const seq = record.readBigUInt64BE(33)
  if (seq < 1n || seq > BigInt(Number.MAX_SAFE_INTEGER)) throw fail('CORRUPT_RECORD', 'namespace record has a bad sequence number')
  const sig = record.subarray(OP_HEADER_BYTES, OP_HEADER_BYTES + OP_SIG_BYTES)
  if (!sodium.crypto_sign_verify_detached(sig, signed(record), memberKey)) throw fail('CORRUPT_RECORD', 'namespace record has a bad signature')
  return { member: memberKey.toString('hex'), seq: Number(seq) }
}

// Verifies, opens and validates a record from anywhere (a peer or the disk).
// `checkSignature` false: the caller verified it already (or stored it so).
export function decodeOpRecord (record: Buffer, metaKey: Buffer, checkSignature = true): Op {
  const h = checkSignature ? verifyOpRecord(record) : opRecordHeader(record)
  if (!checkSignature && (record.length < OP_HEADER_BYTES + OP_SIG_BYTES + 40 || record[0] !== OP_RECORD_VERSION)) throw fail('CORRUPT_RECORD', 'namespace record is malformed')
  let plain: Buffer
  try {
    plain = open(metaKey, record.subarray(OP_HEADER_BYTES + OP_SIG_BYTES), record.subarray(0, OP_HEADER_BYTES))
  } catch (e) {
    throw fail('CORRUPT_RECORD', 'namespace record does not open under the volume key', e)
  }
  let o: unknown
  try { o = JSON.parse(plain.toString('utf8')) } catch (e) { throw fail('CORRUPT_RECORD', 'namespace record is not JSON', e) }
  const op = validateOp(o)
  if (op.member !== h.member || op.seq !== h.seq) throw fail('CORRUPT_RECORD', 'namespace record header and body disagree')
  return op
}

export function opRecordHeader (record: Buffer): OpRecordHeader {
  return { member: record.subarray(1, 33).toString('hex'), seq: Number(record.readBigUInt64BE(33)) }
}

const KINDS: NodeKind[] = ['file', 'dir', 'symlink']

function validateOp (o: unknown): Op {
  const bad = (what: string): never => { throw fail('CORRUPT_RECORD', `namespace record: bad ${what}`) }
  if (typeof o !== 'object' || o === null) return bad('record')
  const r = o as Record<string, unknown>
  if (typeof r.hlc !== 'string' || !/^[0-9]{1,20}$/.test(r.hlc)) return bad('clock')
  const hlc = BigInt(r.hlc)
  if (hlc >= 1n << 64n) return bad('clock')
  if (typeof r.member !== 'string' || !/^[0-9a-f]{64}$/.test(r.member)) return bad('member')
  if (typeof r.seq !== 'number' || !Number.isSafeInteger(r.seq) || r.seq < 1) return bad('sequence')
  const stamp = { hlc, member: r.member, seq: r.seq }
  const id = (v: unknown): string => typeof v === 'string' && v.length > 0 && v.length <= MAX_ID ? v : bad('id')
  const name = (v: unknown): string => {
    if (typeof v !== 'string' || v === '' || v === '.' || v === '..' || v.includes('/') || v.includes('\0') || Buffer.byteLength(v) > MAX_NAME_BYTES) return bad('name')
    return v
  }
  const content = (v: unknown): string => typeof v === 'string' && v.length <= MAX_CONTENT ? v : bad('content')
  const attrs = (v: unknown): Attrs => {
    if (typeof v !== 'object' || v === null) return bad('attributes')
    const out: Attrs = {}
    for (const [k, x] of Object.entries(v)) {
      if (k !== 'mode' && k !== 'uid' && k !== 'gid' && k !== 'mtime') return bad('attribute name')
      if (typeof x !== 'number' || !Number.isFinite(x) || x < 0 || x > 2 ** 53) return bad('attribute value')
      out[k] = x
    }
    return out
  }
  switch (r.type) {
    case 'create': {
      if (!KINDS.includes(r.kind as NodeKind)) return bad('kind')
      return { ...stamp, type: 'create', id: id(r.id), parent: id(r.parent), name: name(r.name), kind: r.kind as NodeKind, attrs: attrs(r.attrs), content: content(r.content) }
    }
    case 'move':
      return { ...stamp, type: 'move', id: id(r.id), parent: id(r.parent), name: name(r.name) }
    case 'remove': {
      if (!Array.isArray(r.versions) || r.versions.length > 1024) return bad('versions')
      return { ...stamp, type: 'remove', id: id(r.id), versions: r.versions.map(id) }
    }
    case 'write': {
      const w: Op = { ...stamp, type: 'write', id: id(r.id), version: id(r.version), content: content(r.content), base: r.base === null ? null : id(r.base) }
      if (r.attrs !== undefined) w.attrs = attrs(r.attrs)
      return w
    }
    case 'setattr':
      return { ...stamp, type: 'setattr', id: id(r.id), attrs: attrs(r.attrs) }
    default:
      return bad('type')
  }
}
