// A scripted peer that speaks the real wire protocol to real daemons: with
// a join code's identity and certificate it is a member like any other (and
// does whatever the test makes it do); with a fresh key pair it has no
// certificate.
import HyperDHT from 'hyperdht'
import Hyperswarm from 'hyperswarm'
import { RawConnection, memberHandshake, waitFor } from '../net/helpers.js'
import { topicFor } from '../../src/net/capability.js'
import type { ReplyBody, RequestBody } from '../../src/codec/wire.js'

export class ScriptedMember {
  readonly conns: RawConnection[] = []
  readonly id: string
  private nextId = 1
  readonly swarm: Hyperswarm

  constructor (bootstrap: string, swarmKey: Buffer, role: 'full' | 'storage', o: { seed?: Buffer, cert?: Buffer } = {}) {
    const [host, port] = bootstrap.split(':')
    const keyPair = HyperDHT.keyPair(o.seed)
    this.id = keyPair.publicKey.toString('hex')
    this.swarm = new Hyperswarm({ keyPair, dht: new HyperDHT({ bootstrap: [{ host, port: Number(port) }], host: '127.0.0.1', keyPair }) })
    this.swarm.on('connection', stream => {
      const c = new RawConnection(stream)
      this.conns.push(c)
      // It answers heartbeats, so only a refusal closes it.
      c.onmessage = m => { if (m.type === 'PING') c.send({ type: 'PONG', time: m.time }) }
      memberHandshake(c, { swarmKey, role, cert: o.cert })
    })
    this.swarm.join(topicFor(swarmKey), { client: true, server: true })
    // Heartbeats of its own, as any peer sends them: a test may talk to one
    // member at a time for a while.
    this.pinger = setInterval(() => { for (const c of this.open()) c.send({ type: 'PING', time: 0 }) }, 250)
  }

  private readonly pinger: NodeJS.Timeout

  // Connections the member on the other side opened for it: it answered our
  // certificate (a refused peer gets HELLO at most, then the close).
  open (): RawConnection[] {
    return this.conns.filter(c => !c.closed && c.received.some(m => m.type === 'REPLY' && m.body.type === 'MEMBERS'))
  }

  // Connections that got anything past HELLO and the member's own offer.
  gotMore (): RawConnection[] {
    return this.conns.filter(c => c.received.some(m => m.type !== 'HELLO' && !(m.type === 'REQUEST' && m.body.type === 'MEMBERS_OFFER')))
  }

  async request (c: RawConnection, body: RequestBody): Promise<ReplyBody> {
    const id = this.nextId++
    c.send({ type: 'REQUEST', id, body })
    await waitFor(() => c.closed || c.received.some(m => m.type === 'REPLY' && m.id === id), 30_000, `reply to ${body.type}`)
    const r = c.received.find(m => m.type === 'REPLY' && m.id === id)
    if (!r || r.type !== 'REPLY') throw new Error(`no reply to ${body.type} (connection closed)`)
    return r.body
  }

  async destroy (): Promise<void> {
    clearInterval(this.pinger)
    await this.swarm.destroy()
  }
}
