// Swarm test harness: a local hyperdht testnet on loopback, PeerNetworks and
// hand-driven "raw" peers on it, all torn down in reverse order of creation
// whether the test passed or not.
import { createRequire } from 'node:module'
import HyperDHT from 'hyperdht'
import Hyperswarm from 'hyperswarm'
import type createTestnetFn from 'hyperdht/testnet'
import { PeerNetwork, type PeerNetworkOptions } from '../../src/net/peer-network.js'
import { randomKey } from '../../src/crypto/volume-keys.js'
import { FrameReader } from '../../src/codec/wire-frame.js'
import { decodeMessage, encodeMessage, WIRE_VERSION, type Message } from '../../src/codec/wire.js'
import { capabilityProof, roleProof } from '../../src/net/capability.js'

const require = createRequire(import.meta.url)
const createTestnet: typeof createTestnetFn = require('hyperdht/testnet')

export const HEARTBEAT_MS = 200

interface Tap { teardown (fn: () => unknown): void, comment (...args: unknown[]): void }

export async function waitFor (cond: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const start = Date.now()
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  return Date.now() - start
}

export class Harness {
  readonly logs: string[] = []
  private readonly closers: Array<() => Promise<unknown>> = []
  private constructor (readonly bootstrap: Array<{ host: string, port: number }>) {}

  static async create (t: Tap): Promise<Harness> {
    const testnet = await createTestnet(3, { host: '127.0.0.1' })
    const h = new Harness(testnet.bootstrap)
    h.closers.push(() => testnet.destroy())
    t.teardown(async () => {
      for (const close of h.closers.reverse()) await close().catch(e => t.comment(`teardown: ${String(e)}`))
    })
    return h
  }

  async network (swarmKey: Buffer, opts: Partial<PeerNetworkOptions> = {}): Promise<PeerNetwork> {
    const n = new PeerNetwork({
      swarmKey,
      keySeed: randomKey(),
      role: 'full',
      bootstrap: this.bootstrap,
      heartbeatInterval: HEARTBEAT_MS,
      log: line => this.logs.push(line),
      ...opts
    })
    this.closers.push(() => n.close())
    await n.start()
    return n
  }

  // A peer driven by hand: its own Hyperswarm on the topic, speaking whatever
  // the test makes it speak, recording every frame it receives.
  raw (topic: Buffer, onconnection: (peer: RawConnection) => void, seed?: Buffer): { id: string, connections: RawConnection[] } {
    const keyPair = HyperDHT.keyPair(seed)
    const swarm = new Hyperswarm({ keyPair, dht: new HyperDHT({ bootstrap: this.bootstrap, host: '127.0.0.1', keyPair }) })
    this.closers.push(() => swarm.destroy())
    const connections: RawConnection[] = []
    swarm.on('connection', stream => {
      const c = new RawConnection(stream)
      connections.push(c)
      onconnection(c)
    })
    swarm.join(topic, { client: true, server: true })
    return { id: keyPair.publicKey.toString('hex'), connections }
  }
}

export class RawConnection {
  readonly received: Message[] = []
  readonly remoteId: string
  closed = false
  onmessage: ((m: Message) => void) | null = null
  private readonly reader = new FrameReader()

  constructor (readonly stream: HyperDHT.SecretStream) {
    this.remoteId = stream.remotePublicKey.toString('hex')
    stream.on('error', () => {})
    stream.on('close', () => { this.closed = true })
    stream.on('data', (d: Buffer) => {
      this.reader.push(d)
      for (let f = this.reader.next(); f !== null; f = this.reader.next()) {
        const m = decodeMessage(f)
        this.received.push(m)
        this.onmessage?.(m)
      }
    })
  }

  send (m: Message): void { this.stream.write(encodeMessage(m)) }
  sendBytes (b: Buffer): void { this.stream.write(b) }
}

// The handshake a member speaks (net/peer-connection.ts): HELLO with the
// capability proof (and the role proof for a full member), then its member
// certificate (MEMBERS_OFFER; empty: none), and it answers the other side's
// offer. Frames are ordered, so the offer can follow the HELLO at once.
export const OFFER_ID = 0x7fffffff
export function memberHandshake (c: RawConnection, o: { swarmKey: Buffer, role: 'full' | 'storage', cert?: Buffer, roleSecret?: Buffer }): void {
  const side = c.stream.isInitiator ? 'initiator' : 'responder'
  c.send({ type: 'HELLO', version: WIRE_VERSION, role: o.role, proof: capabilityProof(o.swarmKey, side, c.stream.handshakeHash), ...(o.roleSecret ? { roleProof: roleProof(o.roleSecret, side, c.stream.handshakeHash) } : {}) })
  c.send({ type: 'REQUEST', id: OFFER_ID, body: { type: 'MEMBERS_OFFER', cert: o.cert ?? Buffer.alloc(0), records: [] } })
  const previous = c.onmessage
  c.onmessage = m => {
    if (m.type === 'REQUEST' && m.body.type === 'MEMBERS_OFFER') c.send({ type: 'REPLY', id: m.id, body: { type: 'MEMBERS', records: [] } })
    previous?.(m)
  }
}
