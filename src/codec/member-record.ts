import sodium from '../crypto/sodium.js'
import { fail } from '../errors.js'

// The volume's certified member set (docs/security.md, "Certified members";
// docs/format.md, "Member records"): a certificate says "this node identity
// is a member with this role", a revocation says "no longer, and of its log
// only records up to `upTo` count". Both are
//
//   [version u8][kind u8][role u8][volume id 16][subject 32][issuer 32]
//   [issued u64 BE ms][upTo u64 BE][role signature 64][issuer signature 64]
//
// The role signature is by the full-role key pair (crypto/volume-keys.ts
// roleKeyOf): only holders of the master key can make it, and every member,
// storage-only ones included, holds the public half to check it. The issuer
// signature is by the node key of the full member that made the record, so
// every record names, unforgeably, who made it. Records are self-contained:
// checking one needs no other record, so they can arrive in any order.
export const MEMBER_RECORD_VERSION = 1
export const MEMBER_RECORD_BYTES = 1 + 1 + 1 + 16 + 32 + 32 + 8 + 8 + 64 + 64
const BODY_BYTES = MEMBER_RECORD_BYTES - 128
const DOMAIN = Buffer.from('disktro-member-v1')
const KIND = { cert: 1, revoke: 2 } as const
const ROLE = { full: 1, storage: 2 } as const
// Revocations carry `upTo` as a record seq: bounded as every seq is (snapshots.ts MAX_CLAIMED_SEQ).
const MAX_UPTO = 2 ** 40

export type MemberRole = 'full' | 'storage'

export interface MemberCert { kind: 'cert', role: MemberRole, volumeId: string, subject: string, issuer: string, issuedAt: number }
export interface MemberRevocation { kind: 'revoke', volumeId: string, subject: string, issuer: string, issuedAt: number, upTo: number }
export type MemberRecord = MemberCert | MemberRevocation

// The keys that make a record: the full-role secret key and the issuing
// member's node key pair.
export interface Issuer { roleSecretKey: Buffer, nodeSecretKey: Buffer, nodeId: string }

export function encodeMemberRecord (r: MemberRecord, by: Issuer): Buffer {
  if (r.issuer !== by.nodeId) throw fail('EINVAL', 'a member record names the member that signs it')
  const out = Buffer.alloc(MEMBER_RECORD_BYTES)
  out[0] = MEMBER_RECORD_VERSION
  out[1] = KIND[r.kind]
  out[2] = r.kind === 'cert' ? ROLE[r.role] : 0
  hex(r.volumeId, 16, 'volume id').copy(out, 3)
  hex(r.subject, 32, 'subject').copy(out, 19)
  hex(r.issuer, 32, 'issuer').copy(out, 51)
  out.writeBigUInt64BE(BigInt(r.issuedAt), 83)
  const upTo = r.kind === 'revoke' ? r.upTo : 0
  if (!Number.isSafeInteger(upTo) || upTo < 0 || upTo > MAX_UPTO) throw fail('EINVAL', 'bad revocation seq')
  out.writeBigUInt64BE(BigInt(upTo), 91)
  const msg = Buffer.concat([DOMAIN, out.subarray(0, BODY_BYTES)])
  sodium.crypto_sign_detached(out.subarray(BODY_BYTES, BODY_BYTES + 64), msg, by.roleSecretKey)
  sodium.crypto_sign_detached(out.subarray(BODY_BYTES + 64), msg, by.nodeSecretKey)
  return out
}

// Checks shape and both signatures; `rolePublicKey` is the volume's full-role
// public key, `volumeId` the volume's id. Throws CORRUPT_RECORD.
export function verifyMemberRecord (b: Buffer, rolePublicKey: Buffer, volumeId: string): MemberRecord {
  const r = decodeMemberRecord(b)
  if (r.volumeId !== volumeId) throw fail('CORRUPT_RECORD', 'member record of another volume')
  const msg = Buffer.concat([DOMAIN, b.subarray(0, BODY_BYTES)])
  if (!sodium.crypto_sign_verify_detached(b.subarray(BODY_BYTES, BODY_BYTES + 64), msg, rolePublicKey)) throw fail('CORRUPT_RECORD', 'member record is not signed by the full-member role key')
  if (!sodium.crypto_sign_verify_detached(b.subarray(BODY_BYTES + 64), msg, b.subarray(51, 83))) throw fail('CORRUPT_RECORD', 'member record is not signed by its issuer')
  return r
}

// Shape only, no signatures (a record read back from our own store).
export function decodeMemberRecord (b: Buffer): MemberRecord {
  if (b.length !== MEMBER_RECORD_BYTES) throw fail('CORRUPT_RECORD', 'member record has a bad length')
  if (b[0] !== MEMBER_RECORD_VERSION) throw fail('UNSUPPORTED_VERSION', `member record version ${b[0]}`)
  const issuedAt = b.readBigUInt64BE(83)
  const upTo = b.readBigUInt64BE(91)
  if (issuedAt > BigInt(Number.MAX_SAFE_INTEGER) || upTo > BigInt(MAX_UPTO)) throw fail('CORRUPT_RECORD', 'member record has a number out of range')
  const common = { volumeId: b.subarray(3, 19).toString('hex'), subject: b.subarray(19, 51).toString('hex'), issuer: b.subarray(51, 83).toString('hex'), issuedAt: Number(issuedAt) }
  if (b[1] === KIND.cert) {
    const role = b[2] === ROLE.full ? 'full' : b[2] === ROLE.storage ? 'storage' : null
    if (role === null || upTo !== 0n) throw fail('CORRUPT_RECORD', 'member certificate is malformed')
    return { kind: 'cert', role, ...common }
  }
  if (b[1] === KIND.revoke) {
    if (b[2] !== 0) throw fail('CORRUPT_RECORD', 'member revocation is malformed')
    return { kind: 'revoke', ...common, upTo: Number(upTo) }
  }
  throw fail('CORRUPT_RECORD', `member record of unknown kind ${b[1]}`)
}

function hex (s: string, n: number, what: string): Buffer {
  if (typeof s !== 'string' || !new RegExp(`^[0-9a-f]{${n * 2}}$`).test(s)) throw fail('EINVAL', `${what} must be ${n} bytes of hex`)
  return Buffer.from(s, 'hex')
}
