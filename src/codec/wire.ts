import { fail } from '../errors.js'
import { CHUNK_ID_BYTES } from './block-record.js'
import type { Role, NsHead, RequestBody, NsRecords, ReplyBody, ReplyTypeOf, Hello, Message } from './wire-messages.js'

// Every message peers exchange, in one place (docs/format.md). A frame on the
// wire is [u32 LE length][version u8][type u8][fields]; the length counts
// everything after itself. Integers are little-endian. Decoding checks every
// length and bound and rejects trailing bytes, because the bytes come from
// another machine: a frame that does not decode exactly is hostile or broken,
// and the connection that sent it is dropped.
export const WIRE_VERSION = 1
export const FRAME_HEADER_BYTES = 4
export const MAX_FRAME_BYTES = 32 * 1024 * 1024
export const PROOF_BYTES = 32
export const ROLE_SIG_BYTES = 64
export const MAX_HAS_IDS = 4096
export const MAX_TEXT_BYTES = 1024
export const MAX_NS_HEADS = 4096
export const MAX_NS_RECORDS = 4096
export const MEMBER_ID_BYTES = 32
export const NONCE_BYTES = 32
export const PROOF_HASH_BYTES = 32
// The answer hashes each record (up to a chunk each): a peer may ask for
// 16 at a time, what the challenger sends (holder-proofs.ts).
export const MAX_PROVE_IDS = 16
// Room for the frame, request and length headers around a chunk record.
export const MAX_RECORD_BYTES = MAX_FRAME_BYTES - 64
const SNAPSHOT_ID_BYTES = 16
export { CHUNK_ID_BYTES }

export type { Role, PutChunk, GetChunk, Has, Stats, NsHead, NsSync, NsPush, DropChunks, TrimChunks, NsSnapshot, NsPart, Holding, Prove, MembersOffer, RequestBody, PutAck, ChunkReply, HasReply, StatsReply, ErrorReply, NsRecords, NsAck, DropAck, Proofs, Members, ReplyBody, ReplyTypeOf, ReplyFor, Hello, Ping, Pong, Request, Reply, Message } from './wire-messages.js'

export const REPLY_TYPE: { [K in RequestBody['type']]: ReplyTypeOf[K]['type'] } = {
  PUT_CHUNK: 'PUT_ACK', GET_CHUNK: 'CHUNK', HAS: 'HAS_REPLY', STATS: 'STATS_REPLY', NS_SYNC: 'NS_RECORDS', NS_PUSH: 'NS_ACK', DROP_CHUNKS: 'DROP_ACK', TRIM_CHUNKS: 'DROP_ACK', NS_SNAPSHOT: 'NS_ACK', NS_PART: 'CHUNK', HOLDING: 'DROP_ACK', PROVE: 'PROOFS', MEMBERS_OFFER: 'MEMBERS'
}

// Type bytes are part of the format: never renumber, only add.
const FRAME = { HELLO: 1, PING: 2, PONG: 3, REQUEST: 4, REPLY: 5 } as const
const BODY = {
  PUT_CHUNK: 1, PUT_ACK: 2, GET_CHUNK: 3, CHUNK: 4, HAS: 5, HAS_REPLY: 6, STATS: 7, STATS_REPLY: 8, ERROR: 9,
  NS_SYNC: 10, NS_RECORDS: 11, NS_PUSH: 12, NS_ACK: 13, DROP_CHUNKS: 14, DROP_ACK: 15, TRIM_CHUNKS: 16, NS_SNAPSHOT: 17, NS_PART: 18,
  HOLDING: 19, PROVE: 20, PROOFS: 21, MEMBERS_OFFER: 22, MEMBERS: 23
} as const
// A member certificate's size is fixed (codec/member-record.ts); the wire
// checks only bounds, the member set checks the rest.
export const MAX_MEMBER_CERT_BYTES = 1024
const ROLE = { full: 1, storage: 2 } as const

const utf8 = new TextDecoder('utf-8', { fatal: true })

// ---- encoding -------------------------------------------------------------

// Returns the whole frame, length prefix included, ready to write.
export function encodeMessage (m: Message): Buffer {
  return writeFrame(prepareMessage(m))
}

// A message checked and laid out but not yet copied into one buffer: its
// parts still reference the caller's buffers (a chunk record is not copied
// until writeFrame). `length` is the whole frame's, prefix included.
export interface PreparedFrame { readonly length: number, readonly parts: Buffer[] }

// Validates like encodeMessage and throws the same errors.
export function prepareMessage (m: Message): PreparedFrame {
  const fields = encodeFields(m)
  const bodyLength = 2 + fields.reduce((n, f) => n + f.length, 0)
  if (bodyLength > MAX_FRAME_BYTES) throw fail('EINVAL', `message of ${bodyLength} bytes exceeds the frame limit`)
  const head = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 2)
  head.writeUInt32LE(bodyLength, 0)
  head[4] = WIRE_VERSION
  head[5] = FRAME[m.type]
  return { length: FRAME_HEADER_BYTES + bodyLength, parts: [head, ...fields] }
}

export function writeFrame (f: PreparedFrame, alloc: (length: number) => Buffer = Buffer.allocUnsafe): Buffer {
  const out = alloc(f.length)
  if (out.length !== f.length) throw fail('EINVAL', 'frame buffer has the wrong length')
  let o = 0
  for (const p of f.parts) o += p.copy(out, o)
  return out
}

function encodeFields (m: Message): Buffer[] {
  switch (m.type) {
    case 'HELLO':
      checkLength(m.proof, PROOF_BYTES, 'proof')
      if (!Number.isInteger(m.version) || m.version < 0 || m.version > 255) throw fail('EINVAL', 'bad wire version')
      if (m.roleProof) checkLength(m.roleProof, ROLE_SIG_BYTES, 'role proof')
      return [Buffer.from([m.version, roleByte(m.role)]), m.proof, ...(m.roleProof ? [m.roleProof] : [])]
    case 'PING':
    case 'PONG':
      if (!Number.isFinite(m.time)) throw fail('EINVAL', 'heartbeat time must be finite')
      return [f64(m.time)]
    case 'REQUEST':
      return [u32(m.id), ...encodeRequest(m.body)]
    case 'REPLY':
      return [u32(m.id), ...encodeReply(m.body)]
  }
}

function encodeRequest (b: RequestBody): Buffer[] {
  switch (b.type) {
    case 'PUT_CHUNK':
      checkLength(b.id, CHUNK_ID_BYTES, 'chunk id')
      if (b.record.length > MAX_RECORD_BYTES) throw fail('EINVAL', 'chunk record too large for one frame')
      return [Buffer.from([BODY.PUT_CHUNK]), b.id, u32(b.record.length), b.record]
    case 'GET_CHUNK':
      checkLength(b.id, CHUNK_ID_BYTES, 'chunk id')
      return [Buffer.from([BODY.GET_CHUNK]), b.id]
    case 'HAS':
      if (b.ids.length > MAX_HAS_IDS) throw fail('EINVAL', `HAS carries at most ${MAX_HAS_IDS} ids`)
      for (const id of b.ids) checkLength(id, CHUNK_ID_BYTES, 'chunk id')
      return [Buffer.from([BODY.HAS]), u16(b.ids.length), ...b.ids]
    case 'STATS':
      return [Buffer.from([BODY.STATS])]
    case 'NS_SYNC': {
      if (b.heads.length > MAX_NS_HEADS) throw fail('EINVAL', `NS_SYNC carries at most ${MAX_NS_HEADS} heads`)
      const f = Buffer.allocUnsafe(8)
      f.writeBigUInt64LE(b.frontier)
      const out = [Buffer.from([BODY.NS_SYNC]), f, u16(b.heads.length)]
      for (const h of b.heads) { checkLength(h.member, MEMBER_ID_BYTES, 'member id'); out.push(h.member, u64(h.seq)) }
      return out
    }
    case 'NS_PUSH':
      return [Buffer.from([BODY.NS_PUSH]), ...records(b.records)]
    case 'NS_SNAPSHOT':
      if (b.snapshot.length > MAX_RECORD_BYTES) throw fail('EINVAL', 'snapshot too large for one frame')
      return [Buffer.from([BODY.NS_SNAPSHOT]), u32(b.snapshot.length), b.snapshot]
    case 'NS_PART':
      checkLength(b.snapshot, SNAPSHOT_ID_BYTES, 'snapshot id')
      return [Buffer.from([BODY.NS_PART]), b.snapshot, u32(b.index)]
    case 'DROP_CHUNKS':
    case 'TRIM_CHUNKS':
      if (b.ids.length > MAX_HAS_IDS) throw fail('EINVAL', `${b.type} carries at most ${MAX_HAS_IDS} ids`)
      for (const id of b.ids) checkLength(id, CHUNK_ID_BYTES, 'chunk id')
      return [Buffer.from([BODY[b.type]]), u16(b.ids.length), ...b.ids]
    case 'HOLDING':
      if (b.held.length + b.dropped.length > MAX_HAS_IDS) throw fail('EINVAL', `HOLDING carries at most ${MAX_HAS_IDS} ids`)
      for (const id of [...b.held, ...b.dropped]) checkLength(id, CHUNK_ID_BYTES, 'chunk id')
      return [Buffer.from([BODY.HOLDING]), u16(b.held.length), ...b.held, u16(b.dropped.length), ...b.dropped]
    case 'PROVE':
      checkLength(b.nonce, NONCE_BYTES, 'nonce')
      if (b.ids.length > MAX_PROVE_IDS) throw fail('EINVAL', `PROVE carries at most ${MAX_PROVE_IDS} ids`)
      for (const id of b.ids) checkLength(id, CHUNK_ID_BYTES, 'chunk id')
      return [Buffer.from([BODY.PROVE]), b.nonce, u16(b.ids.length), ...b.ids]
    case 'MEMBERS_OFFER':
      if (b.cert.length > MAX_MEMBER_CERT_BYTES) throw fail('EINVAL', 'member certificate too large')
      for (const r of b.records) if (r.length > MAX_MEMBER_CERT_BYTES) throw fail('EINVAL', 'member record too large')
      return [Buffer.from([BODY.MEMBERS_OFFER]), u16(b.cert.length), b.cert, ...records(b.records)]
  }
}

function records (list: Buffer[]): Buffer[] {
  if (list.length > MAX_NS_RECORDS) throw fail('EINVAL', `at most ${MAX_NS_RECORDS} records per message`)
  const out = [u16(list.length)]
  for (const r of list) out.push(u32(r.length), r)
  return out
}

function encodeReply (b: ReplyBody): Buffer[] {
  switch (b.type) {
    case 'PUT_ACK':
      return [Buffer.from([BODY.PUT_ACK, b.ok ? 1 : 0]), ...optionalText(b.reason)]
    case 'CHUNK':
      if (b.record === null) return [Buffer.from([BODY.CHUNK, 0])]
      if (b.record.length > MAX_RECORD_BYTES) throw fail('EINVAL', 'chunk record too large for one frame')
      return [Buffer.from([BODY.CHUNK, 1]), u32(b.record.length), b.record]
    case 'HAS_REPLY': {
      if (b.have.length > MAX_HAS_IDS) throw fail('EINVAL', `HAS_REPLY carries at most ${MAX_HAS_IDS} bits`)
      const bitmap = Buffer.alloc(Math.ceil(b.have.length / 8))
      b.have.forEach((h, i) => { if (h) bitmap[i >> 3] |= 1 << (i & 7) })
      return [Buffer.from([BODY.HAS_REPLY]), u16(b.have.length), bitmap]
    }
    case 'STATS_REPLY':
      return [Buffer.from([BODY.STATS_REPLY]), u64(b.chunks), u64(b.bytes), Buffer.from([roleByte(b.role)])]
    case 'ERROR':
      return [Buffer.from([BODY.ERROR]), text(b.message)]
    case 'NS_RECORDS':
      if (b.snapshot && b.snapshot.length > MAX_RECORD_BYTES) throw fail('EINVAL', 'snapshot too large for one frame')
      return [Buffer.from([BODY.NS_RECORDS, b.more ? 1 : 0, b.snapshot ? 1 : 0]), ...(b.snapshot ? [u32(b.snapshot.length), b.snapshot] : []), ...records(b.records)]
    case 'NS_ACK':
      return [Buffer.from([BODY.NS_ACK]), u32(b.accepted)]
    case 'DROP_ACK':
      return [Buffer.from([BODY.DROP_ACK]), u32(b.dropped)]
    case 'PROOFS': {
      if (b.proofs.length > MAX_PROVE_IDS) throw fail('EINVAL', `PROOFS carries at most ${MAX_PROVE_IDS} proofs`)
      const bitmap = Buffer.alloc(Math.ceil(b.proofs.length / 8))
      const present: Buffer[] = []
      b.proofs.forEach((p, i) => { if (p) { checkLength(p, PROOF_HASH_BYTES, 'proof'); bitmap[i >> 3] |= 1 << (i & 7); present.push(p) } })
      return [Buffer.from([BODY.PROOFS]), u16(b.proofs.length), bitmap, ...present]
    }
    case 'MEMBERS':
      for (const r of b.records) if (r.length > MAX_MEMBER_CERT_BYTES) throw fail('EINVAL', 'member record too large')
      return [Buffer.from([BODY.MEMBERS]), ...records(b.records)]
  }
}

function checkLength (b: Buffer, n: number, what: string): void {
  if (!Buffer.isBuffer(b) || b.length !== n) throw fail('EINVAL', `${what} must be ${n} bytes`)
}

function roleByte (r: Role): number {
  const v = ROLE[r]
  if (v === undefined) throw fail('EINVAL', `unknown role ${String(r)}`)
  return v
}

function u16 (n: number): Buffer { const b = Buffer.allocUnsafe(2); b.writeUInt16LE(n); return b }
function u32 (n: number): Buffer { const b = Buffer.allocUnsafe(4); b.writeUInt32LE(n >>> 0); return b }
function f64 (n: number): Buffer { const b = Buffer.allocUnsafe(8); b.writeDoubleLE(n); return b }
function u64 (n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw fail('EINVAL', `${n} is not a u64 this side can represent`)
  const b = Buffer.allocUnsafe(8); b.writeBigUInt64LE(BigInt(n)); return b
}

// Text is cut to MAX_TEXT_BYTES on a character boundary: error messages come
// from anywhere and must never make a reply unsendable.
function text (s: string): Buffer {
  let b = Buffer.from(s, 'utf8')
  if (b.length > MAX_TEXT_BYTES) {
    let end = MAX_TEXT_BYTES
    while (end > 0 && (b[end] & 0xc0) === 0x80) end--
    b = b.subarray(0, end)
  }
  return Buffer.concat([u16(b.length), b])
}

function optionalText (s: string | undefined): Buffer[] {
  return s === undefined ? [Buffer.from([0])] : [Buffer.from([1]), text(s)]
}

// ---- decoding -------------------------------------------------------------

// Decodes one frame as returned by FrameReader (without the length prefix).
// Throws BAD_MESSAGE or UNSUPPORTED_VERSION; decoded buffers are views of `frame`.
export function decodeMessage (frame: Buffer): Message {
  const r = new Reader(frame)
  const version = r.u8()
  if (version !== WIRE_VERSION) throw fail('UNSUPPORTED_VERSION', `wire version ${version}`)
  const type = r.u8()
  let m: Message
  switch (type) {
    case FRAME.HELLO: {
      const hello: Hello = { type: 'HELLO', version: r.u8(), role: decodeRole(r.u8()), proof: r.bytes(PROOF_BYTES) }
      if (r.left() > 0) hello.roleProof = r.bytes(ROLE_SIG_BYTES)
      m = hello
      break
    }
    case FRAME.PING: m = { type: 'PING', time: r.time() }; break
    case FRAME.PONG: m = { type: 'PONG', time: r.time() }; break
    case FRAME.REQUEST: m = { type: 'REQUEST', id: r.u32(), body: decodeRequest(r) }; break
    case FRAME.REPLY: m = { type: 'REPLY', id: r.u32(), body: decodeReply(r) }; break
    default: throw fail('BAD_MESSAGE', `unknown frame type ${type}`)
  }
  r.end()
  return m
}

function decodeRequest (r: Reader): RequestBody {
  const type = r.u8()
  switch (type) {
    case BODY.PUT_CHUNK: {
      const id = r.bytes(CHUNK_ID_BYTES)
      return { type: 'PUT_CHUNK', id, record: r.bytes(r.u32()) }
    }
    case BODY.GET_CHUNK: return { type: 'GET_CHUNK', id: r.bytes(CHUNK_ID_BYTES) }
    case BODY.HAS: {
      const n = r.u16()
      if (n > MAX_HAS_IDS) throw fail('BAD_MESSAGE', `HAS with ${n} ids`)
      const ids: Buffer[] = []
      for (let i = 0; i < n; i++) ids.push(r.bytes(CHUNK_ID_BYTES))
      return { type: 'HAS', ids }
    }
    case BODY.STATS: return { type: 'STATS' }
    case BODY.NS_SYNC: {
      const frontier = r.u64big()
      const n = r.u16()
      if (n > MAX_NS_HEADS) throw fail('BAD_MESSAGE', `NS_SYNC with ${n} heads`)
      const heads: NsHead[] = []
      for (let i = 0; i < n; i++) heads.push({ member: r.bytes(MEMBER_ID_BYTES), seq: r.u64() })
      return { type: 'NS_SYNC', frontier, heads }
    }
    case BODY.NS_PUSH: return { type: 'NS_PUSH', records: readRecords(r) }
    case BODY.NS_SNAPSHOT: return { type: 'NS_SNAPSHOT', snapshot: r.bytes(r.u32()) }
    case BODY.NS_PART: return { type: 'NS_PART', snapshot: r.bytes(SNAPSHOT_ID_BYTES), index: r.u32() }
    case BODY.DROP_CHUNKS:
    case BODY.TRIM_CHUNKS: {
      const n = r.u16()
      if (n > MAX_HAS_IDS) throw fail('BAD_MESSAGE', `chunk list with ${n} ids`)
      const ids: Buffer[] = []
      for (let i = 0; i < n; i++) ids.push(r.bytes(CHUNK_ID_BYTES))
      return { type: type === BODY.DROP_CHUNKS ? 'DROP_CHUNKS' : 'TRIM_CHUNKS', ids }
    }
    case BODY.HOLDING: {
      const held = readIds(r, MAX_HAS_IDS)
      const dropped = readIds(r, MAX_HAS_IDS - held.length)
      return { type: 'HOLDING', held, dropped }
    }
    case BODY.PROVE: {
      const nonce = r.bytes(NONCE_BYTES)
      return { type: 'PROVE', nonce, ids: readIds(r, MAX_PROVE_IDS) }
    }
    case BODY.MEMBERS_OFFER: {
      const n = r.u16()
      if (n > MAX_MEMBER_CERT_BYTES) throw fail('BAD_MESSAGE', `member certificate of ${n} bytes`)
      const cert = r.bytes(n)
      return { type: 'MEMBERS_OFFER', cert, records: readMemberRecords(r) }
    }
    default: throw fail('BAD_MESSAGE', `body type ${type} is not a request`)
  }
}

function decodeReply (r: Reader): ReplyBody {
  const type = r.u8()
  switch (type) {
    case BODY.PUT_ACK: {
      const ok = r.bool()
      return r.bool() ? { type: 'PUT_ACK', ok, reason: r.text() } : { type: 'PUT_ACK', ok }
    }
    case BODY.CHUNK: return { type: 'CHUNK', record: r.bool() ? r.bytes(r.u32()) : null }
    case BODY.HAS_REPLY: {
      const n = r.u16()
      if (n > MAX_HAS_IDS) throw fail('BAD_MESSAGE', `HAS_REPLY with ${n} bits`)
      const bitmap = r.bytes(Math.ceil(n / 8))
      // Spare bits of the last byte must be zero, so each answer has one encoding.
      if (n % 8 !== 0 && (bitmap[bitmap.length - 1] >> (n % 8)) !== 0) throw fail('BAD_MESSAGE', 'HAS_REPLY padding bits set')
      const have: boolean[] = []
      for (let i = 0; i < n; i++) have.push((bitmap[i >> 3] & (1 << (i & 7))) !== 0)
      return { type: 'HAS_REPLY', have }
    }
    case BODY.STATS_REPLY: return { type: 'STATS_REPLY', chunks: r.u64(), bytes: r.u64(), role: decodeRole(r.u8()) }
    case BODY.ERROR: return { type: 'ERROR', message: r.text() }
    case BODY.NS_RECORDS: {
      const more = r.bool()
      const snapshot = r.bool() ? r.bytes(r.u32()) : undefined
      const out: NsRecords = { type: 'NS_RECORDS', records: readRecords(r), more }
      if (snapshot) out.snapshot = snapshot
      return out
    }
    case BODY.NS_ACK: return { type: 'NS_ACK', accepted: r.u32() }
    case BODY.DROP_ACK: return { type: 'DROP_ACK', dropped: r.u32() }
    case BODY.PROOFS: {
      const n = r.u16()
      if (n > MAX_PROVE_IDS) throw fail('BAD_MESSAGE', `PROOFS with ${n} proofs`)
      const bitmap = r.bytes(Math.ceil(n / 8))
      if (n % 8 !== 0 && (bitmap[bitmap.length - 1] >> (n % 8)) !== 0) throw fail('BAD_MESSAGE', 'PROOFS padding bits set')
      const proofs: Array<Buffer | null> = []
      for (let i = 0; i < n; i++) proofs.push((bitmap[i >> 3] & (1 << (i & 7))) !== 0 ? r.bytes(PROOF_HASH_BYTES) : null)
      return { type: 'PROOFS', proofs }
    }
    case BODY.MEMBERS: return { type: 'MEMBERS', records: readMemberRecords(r) }
    default: throw fail('BAD_MESSAGE', `body type ${type} is not a reply`)
  }
}

function readIds (r: Reader, max: number): Buffer[] {
  const n = r.u16()
  if (n > max) throw fail('BAD_MESSAGE', `chunk list with ${n} ids`)
  const ids: Buffer[] = []
  for (let i = 0; i < n; i++) ids.push(r.bytes(CHUNK_ID_BYTES))
  return ids
}

// Op records are checked (signature, sealing) by the namespace layer; here
// only their count and lengths.
function readRecords (r: Reader): Buffer[] {
  const n = r.u16()
  if (n > MAX_NS_RECORDS) throw fail('BAD_MESSAGE', `${n} namespace records in one message`)
  const out: Buffer[] = []
  for (let i = 0; i < n; i++) out.push(r.bytes(r.u32()))
  return out
}

function readMemberRecords (r: Reader): Buffer[] {
  const out = readRecords(r)
  for (const m of out) if (m.length > MAX_MEMBER_CERT_BYTES) throw fail('BAD_MESSAGE', `member record of ${m.length} bytes`)
  return out
}

function decodeRole (v: number): Role {
  if (v === ROLE.full) return 'full'
  if (v === ROLE.storage) return 'storage'
  throw fail('BAD_MESSAGE', `unknown role ${v}`)
}

class Reader {
  private o = 0
  constructor (private readonly b: Buffer) {}

  private need (n: number): void {
    if (this.o + n > this.b.length) throw fail('BAD_MESSAGE', 'message truncated')
  }

  left (): number { return this.b.length - this.o }
  u8 (): number { this.need(1); return this.b[this.o++] }
  u16 (): number { this.need(2); const v = this.b.readUInt16LE(this.o); this.o += 2; return v }
  u32 (): number { this.need(4); const v = this.b.readUInt32LE(this.o); this.o += 4; return v }
  u64 (): number {
    this.need(8)
    const v = this.b.readBigUInt64LE(this.o); this.o += 8
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw fail('BAD_MESSAGE', 'u64 beyond 2^53')
    return Number(v)
  }

  u64big (): bigint {
    this.need(8)
    const v = this.b.readBigUInt64LE(this.o); this.o += 8
    return v
  }

  time (): number {
    this.need(8)
    const v = this.b.readDoubleLE(this.o); this.o += 8
    if (!Number.isFinite(v)) throw fail('BAD_MESSAGE', 'heartbeat time is not finite')
    return v
  }

  bool (): boolean {
    const v = this.u8()
    if (v > 1) throw fail('BAD_MESSAGE', `boolean byte ${v}`)
    return v === 1
  }

  bytes (n: number): Buffer {
    this.need(n)
    const v = this.b.subarray(this.o, this.o + n); this.o += n
    return v
  }

  text (): string {
    const n = this.u16()
    if (n > MAX_TEXT_BYTES) throw fail('BAD_MESSAGE', `text of ${n} bytes`)
    try {
      return utf8.decode(this.bytes(n))
    } catch (e) {
      if (e instanceof TypeError) throw fail('BAD_MESSAGE', 'text is not valid UTF-8', e)
      throw e
    }
  }

  end (): void {
    if (this.o !== this.b.length) throw fail('BAD_MESSAGE', `${this.b.length - this.o} trailing bytes`)
  }
}
