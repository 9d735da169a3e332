import t from 'tap'
import { randomBytes } from 'node:crypto'
import { encodeOpRecord, decodeOpRecord, verifyOpRecord, signingKeyOfSeed, OP_HEADER_BYTES } from '../../src/codec/op-record.js'
import { encodeMessage, decodeMessage } from '../../src/codec/wire.js'
import { FrameReader } from '../../src/codec/wire-frame.js'
import type { Op } from '../../src/meta/merge/op.js'

const seed = randomBytes(32)
const key = signingKeyOfSeed(seed)
const member = key.publicKey.toString('hex')
const meta = randomBytes(32)
const create: Op = { type: 'create', hlc: 123456789n << 16n, member, seq: 1, id: `${member}:1`, parent: 'root', name: 'notes.txt', kind: 'file', attrs: { mode: 0o100644, mtime: 1700000000000 }, content: '' }

t.test('an op record round-trips, signed and sealed', async t => {
  const r = encodeOpRecord(create, meta, key.secretKey)
  t.equal(r[0], 1, 'version byte')
  t.same(verifyOpRecord(r), { member, seq: 1 }, 'signature checks without the volume key')
  t.same(decodeOpRecord(r, meta), create)
  t.notOk(r.includes(Buffer.from('notes.txt')), 'the name is not in the record')
  const write: Op = { type: 'write', hlc: 5n, member, seq: 2, id: `${member}:1`, version: `${member}:2`, content: '{"s":1,"b":[]}', base: `${member}:1` }
  t.same(decodeOpRecord(encodeOpRecord(write, meta, key.secretKey), meta), write)
})

t.test('forged, tampered, replayed and malformed records are rejected', async t => {
  const r = encodeOpRecord(create, meta, key.secretKey)
  const flipped = Buffer.from(r); flipped[flipped.length - 5] ^= 1
  t.throws(() => verifyOpRecord(flipped), { code: 'CORRUPT_RECORD' }, 'a flipped byte breaks the signature')
  const moved = Buffer.from(r); moved.writeBigUInt64BE(7n, 33)
  t.throws(() => verifyOpRecord(moved), { code: 'CORRUPT_RECORD' }, 'a record replayed at another position fails')
  // Another member signs a record that claims to be ours.
  const other = signingKeyOfSeed(randomBytes(32))
  const forged = encodeOpRecord(create, meta, other.secretKey)
  t.throws(() => verifyOpRecord(forged), { code: 'CORRUPT_RECORD' }, 'a record signed by another key fails')
  // Signed correctly but sealed under a key that is not the volume's.
  t.throws(() => decodeOpRecord(encodeOpRecord(create, randomBytes(32), key.secretKey), meta), { code: 'CORRUPT_RECORD' })
  // Well signed and sealed, but the op inside is hostile.
  for (const bad of [
    { ...create, name: '../etc' },
    { ...create, name: '' },
    { ...create, kind: 'socket' },
    { ...create, attrs: { mode: -1 } },
    { ...create, attrs: { evil: 1 } }
  ]) {
    t.throws(() => decodeOpRecord(encodeOpRecord({ ...bad, seq: 1 } as Op, meta, key.secretKey), meta), { code: 'CORRUPT_RECORD' }, `rejects a hostile op (${String((bad as { name?: string }).name)}, ${String(bad.kind)})`)
  }
  t.throws(() => verifyOpRecord(r.subarray(0, OP_HEADER_BYTES + 10)), { code: 'CORRUPT_RECORD' }, 'truncated')
  const v2 = Buffer.from(r); v2[0] = 2
  t.throws(() => verifyOpRecord(v2), { code: 'UNSUPPORTED_VERSION' })
})

t.test('namespace sync messages on the wire', async t => {
  const r = encodeOpRecord(create, meta, key.secretKey)
  const reader = new FrameReader()
  for (const m of [
    { type: 'REQUEST', id: 1, body: { type: 'NS_SYNC', frontier: 123456789n << 16n, heads: [{ member: key.publicKey, seq: 42 }] } },
    { type: 'REQUEST', id: 2, body: { type: 'NS_PUSH', records: [r, r] } },
    { type: 'REPLY', id: 1, body: { type: 'NS_RECORDS', records: [r], more: true } },
    { type: 'REPLY', id: 3, body: { type: 'NS_RECORDS', records: [], more: false, snapshot: Buffer.from('sealed snapshot') } },
    { type: 'REPLY', id: 2, body: { type: 'NS_ACK', accepted: 2 } },
    { type: 'REQUEST', id: 4, body: { type: 'NS_PART', snapshot: Buffer.alloc(16, 7), index: 12 } },
    { type: 'REPLY', id: 4, body: { type: 'CHUNK', record: Buffer.from('sealed part') } }
  ] as const) {
    reader.push(encodeMessage(m as never))
    t.same(decodeMessage(reader.next()!), m)
  }
  const trailing = encodeMessage({ type: 'REPLY', id: 2, body: { type: 'NS_ACK', accepted: 2 } })
  t.throws(() => decodeMessage(Buffer.concat([trailing.subarray(4), Buffer.from([0])])), { code: 'BAD_MESSAGE' }, 'trailing bytes')
})
