import { createHash } from 'node:crypto'
import { fail } from '../errors.js'
import type { Role } from './volume-file.js'
import type { ChunkIdHash } from '../crypto/chunk-id.js'
import { MEMBER_RECORD_BYTES } from '../codec/member-record.js'

const PREFIX = 'disktro1-'
const VERSION = 4
const V3_BYTES = 87
const V4_BYTES = V3_BYTES + 32 + MEMBER_RECORD_BYTES
const ID_HASHES: ChunkIdHash[] = ['hmac-sha256', 'blake3'] // byte 54 of a version 2 code

// A join code carries the volume id, chunk size, role, the key that role
// gets (the master key for a full member, only the swarm key for a
// storage-only one) and, from version 2, the function naming the volume's
// chunks (version 1 codes are of HMAC-SHA256 volumes) and, from version 3,
// the public key that proves a peer a full member (crypto/volume-keys.ts
// roleKeyOf), and from version 4 the new member's node identity (a seed the
// inviter made) with its member certificate (codec/member-record.ts): the
// code admits that one identity, so a code, once its member is revoked,
// admits nobody (docs/security.md). It is a secret. A 4-byte checksum
// catches typos.
export interface Invite {
  volumeId: string
  role: Role
  chunkSize: number
  key: Buffer
  chunkIdHash: ChunkIdHash
  fullRoleKey?: Buffer // 32 bytes, version 3
  seed?: Buffer // 32 bytes, version 4: the new member's node seed
  memberCert?: Buffer // version 4: its certificate
}

export function encodeInvite (i: Invite): string {
  const body = Buffer.alloc(V4_BYTES)
  body[0] = VERSION
  body[1] = i.role === 'full' ? 0 : 1
  Buffer.from(i.volumeId, 'hex').copy(body, 2)
  body.writeUInt32LE(i.chunkSize, 18)
  i.key.copy(body, 22)
  body[54] = ID_HASHES.indexOf(i.chunkIdHash)
  if (i.fullRoleKey?.length !== 32) throw fail('EINVAL', 'an invite carries the full-member role key')
  i.fullRoleKey.copy(body, 55)
  if (i.seed?.length !== 32 || i.memberCert?.length !== MEMBER_RECORD_BYTES) throw fail('EINVAL', 'an invite carries the new member\'s identity and certificate')
  i.seed.copy(body, V3_BYTES)
  i.memberCert.copy(body, V3_BYTES + 32)
  return PREFIX + Buffer.concat([body, checksum(body)]).toString('base64url')
}

export function decodeInvite (code: string): Invite {
  const text = code.trim()
  if (!text.startsWith(PREFIX)) throw fail('EINVAL', 'not a disktro join code')
  const raw = Buffer.from(text.slice(PREFIX.length), 'base64url')
  const length = raw[0] === 1 ? 54 : raw[0] === 2 ? 55 : raw[0] === 3 ? V3_BYTES : V4_BYTES
  if (raw.length !== length + 4) throw fail('EINVAL', 'join code has the wrong length (copied incompletely?)')
  const body = raw.subarray(0, length)
  if (!checksum(body).equals(raw.subarray(length))) throw fail('EINVAL', 'join code checksum does not match (typo?)')
  if (body[0] < 1 || body[0] > VERSION) throw fail('UNSUPPORTED_VERSION', `join code version ${body[0]}`)
  if (body[1] > 1) throw fail('EINVAL', 'join code names an unknown role')
  const chunkIdHash = body[0] === 1 ? 'hmac-sha256' : ID_HASHES[body[54]]
  if (chunkIdHash === undefined) throw fail('UNSUPPORTED_VERSION', `join code names chunk-id function ${body[54]}, unknown to this disktro`)
  return {
    role: body[1] === 0 ? 'full' : 'storage',
    volumeId: body.subarray(2, 18).toString('hex'),
    chunkSize: body.readUInt32LE(18),
    key: Buffer.from(body.subarray(22, 54)),
    chunkIdHash,
    ...(body[0] >= 3 ? { fullRoleKey: Buffer.from(body.subarray(55, 87)) } : {}),
    ...(body[0] >= 4 ? { seed: Buffer.from(body.subarray(V3_BYTES, V3_BYTES + 32)), memberCert: Buffer.from(body.subarray(V3_BYTES + 32, V4_BYTES)) } : {})
  }
}

function checksum (b: Buffer): Buffer {
  return createHash('sha256').update(b).digest().subarray(0, 4)
}
