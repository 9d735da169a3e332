import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { encodeInvite, decodeInvite, type Invite } from '../../src/volume/invite.js'
import { MEMBER_RECORD_BYTES } from '../../src/codec/member-record.js'

function invite (over: Partial<Invite> = {}): Invite {
  return { volumeId: randomBytes(16).toString('hex'), role: 'full', chunkSize: 1 << 20, key: randomBytes(32), chunkIdHash: 'blake3', fullRoleKey: randomBytes(32), seed: randomBytes(32), memberCert: randomBytes(MEMBER_RECORD_BYTES), ...over }
}

// A code as the first disktro wrote them: version 1, no chunk-id byte.
function versionOne (i: Invite): string {
  const body = Buffer.alloc(54)
  body[0] = 1
  body[1] = i.role === 'full' ? 0 : 1
  Buffer.from(i.volumeId, 'hex').copy(body, 2)
  body.writeUInt32LE(i.chunkSize, 18)
  i.key.copy(body, 22)
  return 'disktro1-' + Buffer.concat([body, createHash('sha256').update(body).digest().subarray(0, 4)]).toString('base64url')
}

t.test('a join code carries the volume, role, chunk size, key and chunk-id function', async t => {
  for (const over of [{}, { chunkIdHash: 'hmac-sha256' as const }, { role: 'storage' as const, chunkSize: 4 << 20 }]) {
    const i = invite(over)
    t.same(decodeInvite(encodeInvite(i)), i)
  }
})

t.test('a version 1 code still joins, as a volume naming chunks by HMAC-SHA256', async t => {
  const i = invite({ chunkIdHash: 'hmac-sha256' })
  const { fullRoleKey, seed, memberCert, ...old } = i
  t.same(decodeInvite(versionOne(i)), old, 'without the role key, which version 3 added')
  void fullRoleKey; void seed; void memberCert
})

t.test('a version 3 code still decodes, without an identity or certificate (version 4)', async t => {
  const i = invite({ role: 'storage' })
  const v4 = Buffer.from(encodeInvite(i).slice('disktro1-'.length), 'base64url')
  const body = Buffer.from(v4.subarray(0, 87))
  body[0] = 3
  const code = 'disktro1-' + Buffer.concat([body, createHash('sha256').update(body).digest().subarray(0, 4)]).toString('base64url')
  const { seed, memberCert, ...old } = i
  t.same(decodeInvite(code), old)
  void seed; void memberCert
})

t.test('a storage-only code carries the public half of the full-member role key, never the master key', async t => {
  const i = invite({ role: 'storage' })
  const back = decodeInvite(encodeInvite(i))
  t.same(back.fullRoleKey, i.fullRoleKey)
})

t.test('damaged codes fail in one line', async t => {
  const code = encodeInvite(invite())
  t.throws(() => decodeInvite(code.slice(0, -3)), { code: 'EINVAL', message: /wrong length/ })
  const typo = code.slice(0, 20) + (code[20] === 'A' ? 'B' : 'A') + code.slice(21)
  t.throws(() => decodeInvite(typo), { code: 'EINVAL', message: /checksum/ })
  t.throws(() => decodeInvite('hello'), { code: 'EINVAL' })
  const raw = Buffer.from(code.slice('disktro1-'.length), 'base64url')
  const body = raw.subarray(0, raw.length - 4)
  body[54] = 9 // a chunk-id function this disktro does not know
  const unknown = 'disktro1-' + Buffer.concat([body, createHash('sha256').update(body).digest().subarray(0, 4)]).toString('base64url')
  t.throws(() => decodeInvite(unknown), { code: 'UNSUPPORTED_VERSION', message: /chunk-id function 9/ })
})
