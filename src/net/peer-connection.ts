import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import type HyperDHT from 'hyperdht'
import { fail, isDisktroError } from '../errors.js'
import {
  decodeMessage, prepareMessage, writeFrame, MAX_FRAME_BYTES, PROOF_BYTES, ROLE_SIG_BYTES, REPLY_TYPE, WIRE_VERSION,
  type Message, type PreparedFrame, type PutChunk, type ReplyBody, type ReplyFor, type RequestBody, type Role
} from '../codec/wire.js'
import { FrameReader } from '../codec/wire-frame.js'
import { capabilityProof, verifyProof, roleProof, verifyRoleProof } from './capability.js'
import { BulkWindow } from './bulk-window.js'
export type { Role }

export const HELLO_TIMEOUT_MS = 3000
export const SILENT_INTERVALS = 3
export const MAX_OUTSTANDING = 32
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000
// Frames waiting for the socket beyond this mean the peer has stopped reading
// what it asked for: drop it rather than buffer without bound.
export const MAX_QUEUED_FRAMES = 1024
// Bulk data (chunk records) waits behind control frames and within a
// BulkWindow (bulk-window.ts). Request slots a bulk push may take: the rest stay free for control
// requests (HAS, GET_CHUNK, sync), so a full push window never makes them wait.
export const MAX_BULK_OUTSTANDING = MAX_OUTSTANDING - 8
// Until the peer has proved the key, the only frame it may send is a HELLO.
const HELLO_FRAME_BYTES = 4 + PROOF_BYTES + ROLE_SIG_BYTES
// secret-stream seals each write as one message (at most 16 MiB), and the
// receiver sees nothing of a message until all of it is in: pieces stay small
// so that a big frame cannot look like silence to the heartbeat. A frame of
// up to one piece (a 1 MiB chunk's, with its headers) goes out as one write,
// so the receiver gets it whole and uses it without copying.
const WRITE_PIECE = 1024 * 1024 + 64 * 1024

export type RequestHandler = (msg: RequestBody) => Promise<ReplyBody>

export interface PeerConnectionOptions {
  swarmKey: Buffer
  role: Role
  // The full-member role key (capability.ts): the secret half signs our
  // HELLO when we are full; the public half checks a peer's claim to be.
  // null public key: a storage-only member from an old join code, which
  // cannot check the claim and takes it on trust.
  roleKey?: { publicKey: Buffer | null, secretKey: Buffer | null }
  heartbeatInterval: number
  log: (line: string) => void
  // The certified member set (volume/member-set.ts): when given, a peer that
  // proved the swarm key must also present a certificate for the identity
  // it authenticated with (its Noise static key) and the role it claimed,
  // before anything but HELLO is answered.
  members?: MemberGate
}

// What a connection needs of the member set. `admit` checks the peer's
// certificate (and takes the records it sent); null admits it, a string
// says why not.
export interface MemberGate {
  offer: () => { cert: Buffer, records: Buffer[] }
  admit: (id: string, role: Role, cert: Buffer, records: Buffer[]) => string | null
  held: () => Buffer[]
  learn: (records: Buffer[]) => void
}

// How long a peer that proved the key has to present its certificate.
export const CERT_TIMEOUT_MS = 10_000
const CERT_FRAME_BYTES = 2 * 1024 * 1024

// A PUT_CHUNK whose record is read only when its frame reaches the stream
// (see putChunk): called synchronously, its result copied into the frame at
// once and not kept; undefined when there is no longer a record to send.
export type RecordReader = () => Buffer | undefined

interface Pending {
  id: number
  type: RequestBody['type']
  timeoutMs: number
  bulk: boolean // a PUT_CHUNK push (bulk window, bulk slots)
  inFlight: number // bytes of this push on the wire, awaiting its answer
  sentAt: number // when it went on the wire (performance.now())
  hasIds: number // ids in a HAS: its reply must carry as many bits
  body: RequestBody | null // until encoded: nothing here outlives its frame
  read: { chunkId: Buffer, record: RecordReader } | null
  resolve: (reply: ReplyBody) => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

// A frame, or the means to make it when it is its turn (null: nothing to send).
// push: the PUT_CHUNK request it carries, counted against the bulk window.
interface Queued { frame: PreparedFrame | (() => PreparedFrame | null), written?: () => void, push?: Pending }

// One peer over one Noise stream. The connection starts unauthenticated: it
// sends its HELLO, accepts nothing but the peer's HELLO, and closes if that
// does not arrive or does not prove the swarm key. Only then is it 'open':
// heartbeats start and requests flow. Events: 'open', 'rejected' (wrong
// proof), 'close' (wasOpen: boolean).
export class PeerConnection extends EventEmitter {
  readonly id: string
  readonly address: string
  rttMs: number | null = null
  lastSeen = 0

  private state: 'hello' | 'cert' | 'open' | 'closed' = 'hello'
  private remoteRole: Role = 'full'
  private readonly reader = new FrameReader(HELLO_FRAME_BYTES)
  private lastHeard = Date.now()
  private helloTimer: NodeJS.Timeout | null
  private heartbeat: NodeJS.Timeout | null = null
  private handler: RequestHandler | null = null
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private readonly waiting: Pending[] = []
  private serving = 0
  private readonly control: Queued[] = [] // written first
  private readonly bulk: Queued[] = [] // chunk records, when no control frame waits
  private bulkInFlight = 0
  private bulkPending = 0
  private readonly window = new BulkWindow()
  private heardRaw = false // payload bytes came in since the last tick
  private pumping = false
  private drained: (() => void) | null = null

  constructor (private readonly stream: HyperDHT.SecretStream, private readonly opts: PeerConnectionOptions) {
    super()
    this.id = stream.remotePublicKey.toString('hex')
    const raw = stream.rawStream
    this.address = raw?.remoteHost ? `${raw.remoteHost}:${raw.remotePort ?? 0}` : 'unknown'
    stream.on('data', (d: Buffer) => this.ondata(d))
    // Any payload byte the transport received is life, also the first part
    // of a big message not yet whole (secret-stream hands on whole messages
    // only, and a 1 MiB one takes seconds on a slow link). Transport acks
    // are not: a peer that only acknowledges has stopped answering.
    stream.rawStream?.on?.('data', () => { this.heardRaw = true })
    stream.on('drain', () => this.ondrain())
    stream.on('error', (e: Error) => this.log(`stream error: ${e.message}`))
    stream.on('close', () => this.close('stream closed'))
    this.helloTimer = setTimeout(() => this.close('no HELLO within ' + HELLO_TIMEOUT_MS + ' ms'), HELLO_TIMEOUT_MS)
    this.helloTimer.unref()
    const side = stream.isInitiator ? 'initiator' : 'responder'
    const secret = opts.role === 'full' ? opts.roleKey?.secretKey ?? null : null
    this.send({ type: 'HELLO', version: WIRE_VERSION, role: opts.role, proof: capabilityProof(opts.swarmKey, side, stream.handshakeHash), ...(secret ? { roleProof: roleProof(secret, side, stream.handshakeHash) } : {}) })
  }

  get role (): Role { return this.remoteRole }
  get isOpen (): boolean { return this.state === 'open' }
  // A method, not a narrowed field read: callbacks run inside loops can close us.
  private get closed (): boolean { return this.state === 'closed' }

  // Resolves with the matching reply; rejects with PEER_ERROR when the peer
  // answered ERROR, PEER_TIMEOUT, or PEER_CLOSED. The timeout includes time
  // spent waiting for one of the MAX_OUTSTANDING request slots.
  request<R extends RequestBody> (body: R, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<ReplyFor<R>> {
    return this.enqueue(body.type, body.type === 'HAS' ? body.ids.length : 0, body, null, timeoutMs) as Promise<ReplyFor<R>>
  }

  // PUT_CHUNK with the record read by `record` when the frame is written,
  // not now: a queued request holds no copy of it, and the caller's buffer
  // can be LMDB's reused read buffer. If `record` gives nothing, the request
  // fails (ENOENT) without being sent.
  putChunk (chunkId: Buffer, record: RecordReader, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<ReplyFor<PutChunk>> {
    return this.enqueue('PUT_CHUNK', 0, null, { chunkId, record }, timeoutMs) as Promise<ReplyFor<PutChunk>>
  }

  private enqueue (type: RequestBody['type'], hasIds: number, body: RequestBody | null, read: Pending['read'], timeoutMs: number): Promise<ReplyBody> {
    if (this.state !== 'open') return Promise.reject(fail('PEER_CLOSED', `peer ${this.short} is not connected`))
    return new Promise<ReplyBody>((resolve, reject) => {
      const p: Pending = { id: 0, type, timeoutMs, bulk: read !== null, inFlight: 0, sentAt: 0, hasIds, body, read, resolve, reject, timer: setTimeout(() => this.expire(p, timeoutMs), timeoutMs) }
      if (this.hasSlot(p)) this.dispatch(p)
      else this.waiting.push(p)
    })
  }

  // One handler per connection; a handler that throws answers ERROR.
  onRequest (handler: RequestHandler): void {
    this.handler = handler
  }

  close (reason = 'closed locally'): void {
    if (this.state === 'closed') return
    const wasOpen = this.state === 'open'
    this.state = 'closed'
    this.log(`closed: ${reason}`)
    if (this.helloTimer) clearTimeout(this.helloTimer)
    if (this.heartbeat) clearInterval(this.heartbeat)
    const err = fail('PEER_CLOSED', `peer ${this.short} closed: ${reason}`)
    for (const p of [...this.pending.values(), ...this.waiting]) {
      clearTimeout(p.timer)
      p.reject(err)
    }
    this.pending.clear()
    this.waiting.length = 0
    for (const q of [...this.control.splice(0), ...this.bulk.splice(0)]) q.written?.()
    this.drained?.()
    this.stream.destroy()
    this.emit('close', wasOpen)
  }

  // ---- incoming -----------------------------------------------------------

  private ondata (data: Buffer): void {
    if (this.state === 'closed') return
    if (data.length > 0) this.lastHeard = Date.now()
    try {
      this.reader.push(data)
      let frame: Buffer | null
      while (!this.closed && (frame = this.reader.next()) !== null) this.onmessage(decodeMessage(frame))
    } catch (e) {
      // Nothing a peer sends may throw past here: it costs that peer its connection.
      this.close(`bad frame: ${e instanceof Error ? e.message : String(e)}`)
    }
  }

  private onmessage (m: Message): void {
    if (this.state === 'hello') return this.onhello(m)
    if (this.state === 'cert') return this.oncert(m)
    this.lastSeen = Date.now()
    switch (m.type) {
      case 'HELLO': throw fail('BAD_MESSAGE', 'second HELLO')
      case 'PING': this.send({ type: 'PONG', time: m.time }); break
      case 'PONG': {
        const rtt = performance.now() - m.time
        if (rtt >= 0) this.rttMs = rtt
        break
      }
      case 'REQUEST': this.serve(m.id, m.body); break
      case 'REPLY': this.settle(m.id, m.body); break
    }
  }

  private onhello (m: Message): void {
    if (m.type !== 'HELLO') throw fail('BAD_MESSAGE', `${m.type} before HELLO`)
    if (m.version !== WIRE_VERSION) return this.close(`peer speaks wire version ${m.version}`)
    const side = this.stream.isInitiator ? 'responder' : 'initiator'
    if (!verifyProof(this.opts.swarmKey, side, this.stream.handshakeHash, m.proof)) {
      this.emit('rejected')
      return this.close('wrong capability proof (another key)')
    }
    if (m.role === 'full') {
      const pub = this.opts.roleKey?.publicKey ?? null
      if (pub !== null && !verifyRoleProof(pub, side, this.stream.handshakeHash, m.roleProof)) {
        this.emit('rejected')
        return this.close('claims to be a full member without proving it')
      }
    }
    this.remoteRole = m.role
    // Until its certificate is checked, a peer sends member records at most.
    this.reader.maxFrame = this.opts.members ? CERT_FRAME_BYTES : MAX_FRAME_BYTES
    if (this.helloTimer) clearTimeout(this.helloTimer)
    this.helloTimer = null
    const gate = this.opts.members
    if (gate === undefined) return this.opened()
    this.state = 'cert'
    this.helloTimer = setTimeout(() => this.close(`no member certificate within ${CERT_TIMEOUT_MS} ms`), CERT_TIMEOUT_MS)
    this.helloTimer.unref()
    const offer = gate.offer()
    const p: Pending = {
      id: 0,
      type: 'MEMBERS_OFFER',
      timeoutMs: CERT_TIMEOUT_MS,
      bulk: false,
      inFlight: 0,
      sentAt: 0,
      hasIds: 0,
      body: { type: 'MEMBERS_OFFER', cert: offer.cert, records: offer.records },
      read: null,
      resolve: reply => { if (reply.type === 'MEMBERS') gate.learn(reply.records) },
      reject: () => {},
      timer: setTimeout(() => this.expire(p, CERT_TIMEOUT_MS), CERT_TIMEOUT_MS)
    }
    p.timer.unref()
    this.dispatch(p)
  }

  // The peer's first request after HELLO must be its MEMBERS_OFFER: an
  // uncertified or revoked identity is closed here, having got nothing.
  private oncert (m: Message): void {
    if (m.type === 'REPLY') return this.settle(m.id, m.body)
    if (m.type !== 'REQUEST' || m.body.type !== 'MEMBERS_OFFER') throw fail('BAD_MESSAGE', `${m.type === 'REQUEST' ? m.body.type : m.type} before a member certificate`)
    const gate = this.opts.members!
    const refusal = gate.admit(this.id, this.remoteRole, m.body.cert, m.body.records)
    // A revocation among the records it sent may have closed us meanwhile.
    if (this.closed) return
    if (refusal !== null) return this.close(`not a member in good standing: ${refusal}`)
    this.send({ type: 'REPLY', id: m.id, body: { type: 'MEMBERS', records: gate.held() } })
    if (this.helloTimer) clearTimeout(this.helloTimer)
    this.helloTimer = null
    this.opened()
  }

  private opened (): void {
    this.state = 'open'
    this.reader.maxFrame = MAX_FRAME_BYTES
    this.lastSeen = this.lastHeard = Date.now()
    this.heartbeat = setInterval(() => this.tick(), this.opts.heartbeatInterval)
    this.heartbeat.unref()
    this.emit('open')
  }

  private tick (): void {
    if (this.heardRaw) {
      this.heardRaw = false
      this.lastHeard = Date.now()
    }
    const silentFor = Date.now() - this.lastHeard
    if (silentFor > SILENT_INTERVALS * this.opts.heartbeatInterval) return this.close(`silent for ${silentFor} ms`)
    this.send({ type: 'PING', time: performance.now() })
  }

  // Not async, and the handler gets the body only for its synchronous part:
  // nothing here holds a request (a 1 MiB chunk record, a view of the
  // received message) while its answer is awaited, so the message's buffer
  // dies young instead of being promoted and left to a full GC.
  private serve (id: number, body: RequestBody): void {
    // The peer holds at most MAX_OUTSTANDING requests open; more can only come
    // from a late answer to one it gave up on, or from a peer that ignores the
    // limit. Either way answer at once instead of queueing work.
    if (this.serving >= MAX_OUTSTANDING) return this.send({ type: 'REPLY', id, body: { type: 'ERROR', message: 'busy' } })
    this.serving++
    let answer: Promise<ReplyBody>
    try {
      if (this.handler === null) throw new Error('no request handler')
      answer = this.handler(body)
    } catch (e) {
      answer = Promise.reject(e)
    }
    void this.reply(id, body.type, answer)
  }

  private async reply (id: number, type: RequestBody['type'], answer: Promise<ReplyBody>): Promise<void> {
    let frame: PreparedFrame
    try {
      const reply = await answer
      if (reply.type !== REPLY_TYPE[type] && reply.type !== 'ERROR') throw new Error(`handler answered ${type} with ${reply.type}`)
      frame = prepareMessage({ type: 'REPLY', id, body: reply })
    } catch (e) {
      frame = prepareMessage({ type: 'REPLY', id, body: { type: 'ERROR', message: e instanceof Error ? e.message : String(e) } })
    }
    // The slot stays taken until the reply is on the socket, so a peer that
    // does not read cannot make replies pile up here. A chunk's record is
    // bulk: control frames go ahead of it.
    const bulk = frame.length > 64 * 1024
    await new Promise<void>(resolve => this.write(frame, resolve, bulk))
    this.serving--
  }

  private settle (id: number, reply: ReplyBody): void {
    const p = this.pending.get(id)
    if (p === undefined) return // a late answer to a request that timed out
    if (p.inFlight > 0 && reply.type !== 'ERROR') this.window.acked(p.inFlight, performance.now() - p.sentAt)
    this.forget(p)
    clearTimeout(p.timer)
    this.dispatchWaiting()
    if (reply.type === 'ERROR') return p.reject(fail('PEER_ERROR', `peer ${this.short}: ${reply.message}`))
    const expected = REPLY_TYPE[p.type]
    const wrong = reply.type !== expected
      ? `${p.type} answered with ${reply.type}`
      : reply.type === 'HAS_REPLY' && reply.have.length !== p.hasIds
        ? `HAS of ${p.hasIds} answered with ${reply.have.length} bits`
        : null
    if (wrong !== null) {
      p.reject(fail('BAD_MESSAGE', wrong))
      throw fail('BAD_MESSAGE', wrong)
    }
    p.resolve(reply)
  }

  // ---- outgoing -----------------------------------------------------------

  private dispatch (p: Pending): void {
    while (this.pending.has(this.nextId) || this.nextId === 0) this.nextId = (this.nextId + 1) >>> 0
    p.id = this.nextId
    this.nextId = (this.nextId + 1) >>> 0
    if (p.read !== null) {
      this.pending.set(p.id, p)
      this.bulkPending++
      return this.write(() => this.prepareLazy(p), undefined, p)
    }
    let frame: PreparedFrame
    try {
      frame = prepareMessage({ type: 'REQUEST', id: p.id, body: p.body as RequestBody })
    } catch (e) {
      clearTimeout(p.timer)
      p.reject(isDisktroError(e) ? e : fail('EINVAL', String(e), e))
      return this.dispatchWaiting()
    }
    p.body = null
    this.pending.set(p.id, p)
    this.write(frame)
  }

  // A lazy PUT_CHUNK's turn on the stream: read its record now. A request
  // that timed out while queued is not sent at all.
  private prepareLazy (p: Pending): PreparedFrame | null {
    if (this.pending.get(p.id) !== p || p.read === null) return null
    const { chunkId, record: read } = p.read
    p.read = null
    try {
      const record = read()
      if (record === undefined) throw fail('ENOENT', `chunk ${chunkId.toString('hex').slice(0, 12)} is no longer stored`)
      return prepareMessage({ type: 'REQUEST', id: p.id, body: { type: 'PUT_CHUNK', id: chunkId, record } })
    } catch (e) {
      this.forget(p)
      clearTimeout(p.timer)
      p.reject(isDisktroError(e) ? e : fail('EINVAL', String(e), e))
      this.dispatchWaiting()
      return null
    }
  }

  // A bulk push takes one of MAX_BULK_OUTSTANDING slots; other requests may
  // use any, so they never queue behind a full push window.
  private hasSlot (p: Pending): boolean {
    return this.pending.size < MAX_OUTSTANDING && (!p.bulk || this.bulkPending < MAX_BULK_OUTSTANDING)
  }

  private dispatchWaiting (): void {
    for (let i = 0; this.state === 'open' && this.pending.size < MAX_OUTSTANDING && i < this.waiting.length;) {
      if (!this.hasSlot(this.waiting[i])) { i++; continue }
      this.dispatch(this.waiting.splice(i, 1)[0])
    }
  }

  // A request leaves `pending`: its bulk bytes leave the window, which may
  // let the next push out.
  private forget (p: Pending): void {
    if (this.pending.get(p.id) !== p) return
    this.pending.delete(p.id)
    if (p.bulk) {
      this.bulkPending--
      this.bulkInFlight -= p.inFlight
      p.inFlight = 0
      if (!this.pumping && this.bulk.length > 0) void this.pump()
    }
  }

  private expire (p: Pending, timeoutMs: number): void {
    this.forget(p)
    const i = this.waiting.indexOf(p)
    if (i >= 0) this.waiting.splice(i, 1)
    p.reject(fail('PEER_TIMEOUT', `peer ${this.short} did not answer ${p.type} within ${timeoutMs} ms`))
    this.dispatchWaiting()
  }

  private send (m: Message): void {
    this.write(prepareMessage(m))
  }

  // Frames go out in order; once the stream says it is full, everything
  // waits for 'drain' instead of piling into the stream's own buffer. A
  // queued frame still references the buffers it was prepared from (a chunk
  // record): they are copied out only when the frame reaches the stream.
  // bulk: a chunk's record (true, or the PUT_CHUNK it is), which goes out
  // only when no control frame waits and (a push) the bulk window has room.
  private write (frame: Queued['frame'], written?: () => void, bulk: boolean | Pending = false): void {
    if (this.state === 'closed') return written?.()
    if (this.control.length + this.bulk.length >= MAX_QUEUED_FRAMES) return this.close('peer is not reading (send queue full)')
    const q: Queued = { frame, written, ...(typeof bulk === 'object' ? { push: bulk } : {}) }
    if (bulk === false) this.control.push(q)
    else this.bulk.push(q)
    if (!this.pumping) void this.pump()
  }

  private next (): Queued[] | null {
    if (this.control.length > 0) return this.control
    const head = this.bulk[0]
    if (head === undefined) return null
    return head.push === undefined || this.bulkInFlight < this.window.size() ? this.bulk : null
  }

  private async pump (): Promise<void> {
    this.pumping = true
    let queue: Queued[] | null
    while (!this.closed && (queue = this.next()) !== null) {
      const { frame: queued, written, push } = queue[0]
      const prepared = typeof queued === 'function' ? queued() : queued
      if (prepared === null) {
        queue.shift()
        written?.()
        continue
      }
      if (push !== undefined && this.pending.get(push.id) === push) {
        // In the window from now until answered; its timeout counts from
        // the wire, not from the wait for the window.
        push.inFlight = prepared.length
        push.sentAt = performance.now()
        this.bulkInFlight += prepared.length
        clearTimeout(push.timer)
        push.timer = setTimeout(() => this.expire(push, push.timeoutMs), push.timeoutMs)
      }
      // secret-stream's alloc() hands out a buffer it encrypts in place when
      // it is the next thing written: the frame is copied once, here.
      const whole = prepared.length <= WRITE_PIECE && typeof this.stream.alloc === 'function'
      const frame = writeFrame(prepared, whole ? n => this.stream.alloc!(n) : Buffer.allocUnsafe)
      for (let o = 0; o < frame.length && !this.closed; o += WRITE_PIECE) {
        if (!this.stream.write(o === 0 && frame.length <= WRITE_PIECE ? frame : frame.subarray(o, o + WRITE_PIECE))) {
          await new Promise<void>(resolve => { this.drained = resolve })
        }
      }
      queue.shift()
      written?.()
    }
    this.pumping = false
  }

  private ondrain (): void {
    const d = this.drained
    this.drained = null
    d?.()
  }

  private get short (): string { return this.id.slice(0, 8) }

  private log (line: string): void {
    this.opts.log(`net: peer ${this.short} (${this.address}): ${line}`)
  }
}
