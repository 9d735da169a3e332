import t from 'tap'
import {
  decodeMessage, encodeMessage, MAX_FRAME_BYTES, MAX_HAS_IDS, WIRE_VERSION, type Message
} from '../../src/codec/wire.js'
import { FrameReader } from '../../src/codec/wire-frame.js'
import { capabilityProof, topicFor, verifyProof } from '../../src/net/capability.js'

const id = (n: number): Buffer => Buffer.alloc(32, n)

// Decodes a whole encoded frame the way a connection does.
function roundTrip (m: Message): Message {
  const r = new FrameReader()
  r.push(encodeMessage(m))
  const f = r.next()
  if (f === null) throw new Error('no frame')
  t.equal(r.next(), null)
  return decodeMessage(f)
}

const samples: Message[] = [
  { type: 'HELLO', version: WIRE_VERSION, role: 'storage', proof: id(7) },
  { type: 'PING', time: 12345.678 },
  { type: 'PONG', time: 0 },
  { type: 'REQUEST', id: 1, body: { type: 'PUT_CHUNK', id: id(1), record: Buffer.from('sealed record') } },
  { type: 'REQUEST', id: 2, body: { type: 'GET_CHUNK', id: id(2) } },
  { type: 'REQUEST', id: 3, body: { type: 'HAS', ids: [id(3), id(4), id(5)] } },
  { type: 'REQUEST', id: 0xffffffff, body: { type: 'STATS' } },
  { type: 'REPLY', id: 1, body: { type: 'PUT_ACK', ok: true } },
  { type: 'REPLY', id: 1, body: { type: 'PUT_ACK', ok: false, reason: 'disk full ✗' } },
  { type: 'REPLY', id: 2, body: { type: 'CHUNK', record: Buffer.from('r') } },
  { type: 'REPLY', id: 2, body: { type: 'CHUNK', record: null } },
  { type: 'REPLY', id: 3, body: { type: 'HAS_REPLY', have: [true, false, true, true, false, false, false, false, true] } },
  { type: 'REPLY', id: 4, body: { type: 'STATS_REPLY', chunks: 12, bytes: Number.MAX_SAFE_INTEGER, role: 'full' } },
  { type: 'REPLY', id: 5, body: { type: 'ERROR', message: 'nope' } }
]

t.test('every message round-trips', async t => {
  for (const m of samples) t.same(roundTrip(m), m, `${m.type} ${'body' in m ? m.body.type : ''}`)
  const big = Array.from({ length: MAX_HAS_IDS }, (_, i) => id(i & 0xff))
  t.equal((roundTrip({ type: 'REQUEST', id: 9, body: { type: 'HAS', ids: big } }) as { body: { ids: Buffer[] } }).body.ids.length, MAX_HAS_IDS)
})

t.test('pinned bytes', async t => {
  // A format change must bump WIRE_VERSION and keep these decoding, or these fail.
  t.equal(encodeMessage({ type: 'PING', time: 1 }).toString('hex'), '0a0000000102000000000000f03f')
  t.equal(encodeMessage({ type: 'REQUEST', id: 258, body: { type: 'GET_CHUNK', id: id(0xab) } }).toString('hex'),
    '27000000' + '0104' + '02010000' + '03' + 'ab'.repeat(32))
  t.equal(encodeMessage({ type: 'REPLY', id: 1, body: { type: 'HAS_REPLY', have: [true, false, true] } }).toString('hex'),
    '0a000000' + '0105' + '01000000' + '06' + '0300' + '05')
  t.equal(encodeMessage({ type: 'HELLO', version: 1, role: 'full', proof: id(0) }).toString('hex'),
    '24000000' + '0101' + '0101' + '00'.repeat(32))
})

t.test('malformed frames are rejected', async t => {
  const frame = (hex: string): Buffer => Buffer.from(hex, 'hex')
  const good = encodeMessage(samples[4]).subarray(4) // GET_CHUNK
  t.same(decodeMessage(good), samples[4])
  t.throws(() => decodeMessage(good.subarray(0, good.length - 1)), { code: 'BAD_MESSAGE', message: /truncated/ }, 'truncated')
  t.throws(() => decodeMessage(Buffer.concat([good, Buffer.from([0])])), { code: 'BAD_MESSAGE', message: /trailing/ }, 'trailing byte')
  t.throws(() => decodeMessage(frame('0209')), { code: 'UNSUPPORTED_VERSION' }, 'unknown version')
  t.throws(() => decodeMessage(frame('0109')), { code: 'BAD_MESSAGE', message: /unknown frame type/ }, 'unknown type')
  t.throws(() => decodeMessage(frame('010401000000ee')), { code: 'BAD_MESSAGE', message: /not a request/ }, 'unknown body type')
  t.throws(() => decodeMessage(frame('01040100000002' + '00'.repeat(2))), { code: 'BAD_MESSAGE' }, 'reply body in a REQUEST')
  t.throws(() => decodeMessage(frame('01040100000003' + '00'.repeat(31))), { code: 'BAD_MESSAGE', message: /truncated/ }, 'id of 31 bytes')
  t.throws(() => decodeMessage(frame('01040100000003' + '00'.repeat(33))), { code: 'BAD_MESSAGE', message: /trailing/ }, 'id of 33 bytes')
  t.throws(() => decodeMessage(frame('01040100000005' + '0110')), { code: 'BAD_MESSAGE', message: /HAS with 4097/ }, 'too many ids')
  t.throws(() => decodeMessage(frame('01040100000001' + '00'.repeat(32) + 'ffffffff')), { code: 'BAD_MESSAGE', message: /truncated/ }, 'record length beyond frame')
  t.throws(() => decodeMessage(frame('0101' + '0103' + '00'.repeat(32))), { code: 'BAD_MESSAGE', message: /role/ }, 'unknown role')
  t.throws(() => decodeMessage(frame('0101' + '0101' + '00'.repeat(31))), { code: 'BAD_MESSAGE' }, 'short proof')
  t.throws(() => decodeMessage(frame('0105010000000202')), { code: 'BAD_MESSAGE', message: /boolean/ }, 'boolean byte 2')
  t.throws(() => decodeMessage(frame('010501000000060300' + '09')), { code: 'BAD_MESSAGE', message: /padding/ }, 'bitmap padding set')
  t.throws(() => decodeMessage(frame('01050100000009' + '0200' + 'c3ff')), { code: 'BAD_MESSAGE', message: /UTF-8/ }, 'bad UTF-8')
  t.throws(() => decodeMessage(frame('0105010000000800000000000020000000000000000001')), { code: 'BAD_MESSAGE', message: /2\^53/ }, 'u64 too big')
  t.throws(() => decodeMessage(frame('0102' + '000000000000f07f')), { code: 'BAD_MESSAGE', message: /finite/ }, 'infinite time')
  t.throws(() => decodeMessage(Buffer.alloc(0)), { code: 'BAD_MESSAGE' }, 'empty')
})

t.test('encoding refuses what it could not decode', async t => {
  t.throws(() => encodeMessage({ type: 'REQUEST', id: 1, body: { type: 'GET_CHUNK', id: Buffer.alloc(31) } }), { code: 'EINVAL' })
  t.throws(() => encodeMessage({ type: 'REQUEST', id: 1, body: { type: 'HAS', ids: Array.from({ length: MAX_HAS_IDS + 1 }, () => id(0)) } }), { code: 'EINVAL' })
  t.throws(() => encodeMessage({ type: 'REPLY', id: 1, body: { type: 'STATS_REPLY', chunks: -1, bytes: 0, role: 'full' } }), { code: 'EINVAL' })
  const long = encodeMessage({ type: 'REPLY', id: 1, body: { type: 'ERROR', message: 'é'.repeat(2000) } })
  const m = decodeMessage(long.subarray(4)) as { body: { message: string } }
  t.equal(m.body.message, 'é'.repeat(512), 'long text cut on a character boundary')
})

t.test('FrameReader', async t => {
  const frames = samples.map(encodeMessage)
  const stream = Buffer.concat(frames)
  const r = new FrameReader()
  const out: Message[] = []
  for (let i = 0; i < stream.length; i += 3) { // arrives in awkward pieces
    r.push(stream.subarray(i, i + 3))
    for (let f = r.next(); f !== null; f = r.next()) out.push(decodeMessage(f))
  }
  t.same(out, samples, 'reassembled across arbitrary splits')

  const oversize = Buffer.alloc(4); oversize.writeUInt32LE(MAX_FRAME_BYTES + 1)
  const big = new FrameReader()
  big.push(oversize)
  t.throws(() => big.next(), { code: 'BAD_MESSAGE', message: /exceeds/ }, 'oversize rejected from the header alone')
  const small = new FrameReader(36)
  small.push(encodeMessage(samples[3]))
  t.throws(() => small.next(), { code: 'BAD_MESSAGE', message: /exceeds the limit of 36/ }, 'pre-auth limit')
  const tiny = new FrameReader()
  tiny.push(Buffer.from('0100000001', 'hex'))
  t.throws(() => tiny.next(), { code: 'BAD_MESSAGE', message: /too short/ })
})

t.test('capability', async t => {
  const k1 = Buffer.alloc(32, 1); const k2 = Buffer.alloc(32, 2); const hh = Buffer.alloc(64, 9)
  t.equal(topicFor(k1).length, 32)
  t.same(topicFor(k1), topicFor(Buffer.alloc(32, 1)), 'deterministic')
  t.notSame(topicFor(k1), topicFor(k2))
  const proof = capabilityProof(k1, 'initiator', hh)
  t.ok(verifyProof(k1, 'initiator', hh, proof))
  t.notOk(verifyProof(k1, 'responder', hh, proof), 'cannot be reflected')
  t.notOk(verifyProof(k2, 'initiator', hh, proof), 'other key')
  t.notOk(verifyProof(k1, 'initiator', Buffer.alloc(64, 8), proof), 'other session')
  t.notOk(verifyProof(k1, 'initiator', hh, proof.subarray(1)), 'short proof')
  t.notSame(proof, topicFor(k1))
})
