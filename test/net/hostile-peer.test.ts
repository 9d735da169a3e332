import t from 'tap'
import { randomKey } from '../../src/crypto/volume-keys.js'
import { capabilityProof, topicFor } from '../../src/net/capability.js'
import { WIRE_VERSION } from '../../src/codec/wire.js'
import type { PeerNetwork } from '../../src/net/peer-network.js'
import { Harness, HEARTBEAT_MS, type RawConnection, waitFor } from './helpers.js'

// A HELLO as the raw peer would honestly send it, proved under `key`.
function hello (c: RawConnection, key: Buffer): void {
  const side = c.stream.isInitiator ? 'initiator' : 'responder'
  c.send({ type: 'HELLO', version: WIRE_VERSION, role: 'full', proof: capabilityProof(key, side, c.stream.handshakeHash) })
}

async function honestPair (h: Harness, key: Buffer): Promise<[PeerNetwork, PeerNetwork]> {
  const a = await h.network(key)
  const b = await h.network(key)
  for (const n of [a, b]) {
    n.on('peer', conn => conn.onRequest(async () => ({ type: 'STATS_REPLY', chunks: 1, bytes: 2, role: 'full' })))
  }
  await waitFor(() => a.connections().length === 1 && b.connections().length === 1, 30_000, 'the honest pair to connect')
  return [a, b]
}

t.test('a node with the wrong key on the topic gets nothing but HELLO and is dropped', { timeout: 60_000 }, async t => {
  const h = await Harness.create(t)
  const key = randomKey()
  const [a, b] = await honestPair(h, key)
  const wrongKey = randomKey()
  const intruder = h.raw(topicFor(key), c => {
    hello(c, wrongKey)
    c.send({ type: 'REQUEST', id: 1, body: { type: 'STATS' } })
    c.send({ type: 'PING', time: 1 })
  })
  const started = Date.now()
  await waitFor(() => intruder.connections.filter(c => c.closed).length >= 2, 20_000, 'both honest nodes to drop the intruder')
  t.comment(`intruder dropped by both honest nodes within ${Date.now() - started} ms of joining`)
  // Give any stray reply time to arrive before checking that none did.
  await new Promise(resolve => setTimeout(resolve, 2 * HEARTBEAT_MS))
  const received = intruder.connections.flatMap(c => c.received.map(m => m.type))
  // Our HELLO may or may not beat the close to the wire; nothing else may.
  t.ok(received.every(type => type === 'HELLO'), `nothing but HELLO reaches the intruder (${received.length} frames)`)
  for (const n of [a, b]) {
    t.notOk(n.peers().some(p => p.id === intruder.id), 'never listed as a peer')
    t.equal(n.connections().length, 1, 'honest link intact')
  }
  t.same(await a.connections()[0].request({ type: 'STATS' }), { type: 'STATS_REPLY', chunks: 1, bytes: 2, role: 'full' })
  t.ok(h.logs.some(l => /wrong capability proof/.test(l)), 'the rejection is logged')
})

t.test('a malformed frame after a valid handshake closes only that connection', { timeout: 60_000 }, async t => {
  const h = await Harness.create(t)
  const key = randomKey()
  const [a, b] = await honestPair(h, key)
  const closed: string[] = []
  a.on('peer-closed', id => closed.push(id))
  const insider = h.raw(topicFor(key), c => hello(c, key))
  await waitFor(() => a.connections().some(c => c.id === insider.id), 20_000, 'a to accept the insider')
  const toA = insider.connections.find(c => c.remoteId === a.id && !c.closed)!
  // A REQUEST whose GET_CHUNK id is 31 bytes instead of 32.
  const bad = Buffer.from([0, 0, 0, 0, WIRE_VERSION, 4, 9, 0, 0, 0, 3, ...Buffer.alloc(31)])
  bad.writeUInt32LE(bad.length - 4)
  toA.sendBytes(bad)
  await waitFor(() => closed.includes(insider.id), 5000, 'a to drop the insider')
  t.ok(h.logs.some(l => /bad frame: message truncated/.test(l)), 'logged with the reason')
  t.ok(a.connections().some(c => c.id === b.id), 'a keeps b')
  t.same(await a.connections().find(c => c.id === b.id)!.request({ type: 'STATS' }), { type: 'STATS_REPLY', chunks: 1, bytes: 2, role: 'full' })
  t.notOk(toA.received.some(m => m.type === 'REPLY'), 'the bad request got no reply')
})

t.test('an authenticated peer that falls silent is closed after three heartbeats', { timeout: 60_000 }, async t => {
  const h = await Harness.create(t)
  const key = randomKey()
  const a = await h.network(key)
  const opened = new Map<string, number>()
  const closedAfter: number[] = []
  a.on('peer', c => opened.set(c.id, Date.now()))
  a.on('peer-closed', id => closedAfter.push(Date.now() - (opened.get(id) ?? 0)))
  // Proves the key, then never says another word (no PONGs).
  const mute = h.raw(topicFor(key), c => hello(c, key))
  await waitFor(() => opened.has(mute.id), 30_000, 'a to accept the silent peer')
  await waitFor(() => closedAfter.length > 0, 10 * HEARTBEAT_MS, 'a to drop the silent peer')
  t.comment(`silent peer dropped ${closedAfter[0]} ms after it authenticated`)
  // Closed at the tick after three silent intervals (4 x 200 ms nominally);
  // timers fire late on a loaded machine (1,001 ms seen in a full run), so
  // the upper bound leaves two intervals of slack. Never before three.
  t.ok(closedAfter[0] >= 2.5 * HEARTBEAT_MS && closedAfter[0] <= 7 * HEARTBEAT_MS, 'after 3 to 4 intervals (late timers aside)')
  t.match(a.peers().find(p => p.id === mute.id), { online: false })
  t.ok(mute.connections[0].received.some(m => m.type === 'PING'), 'it was pinged')
})

t.test('a connection that never sends HELLO is closed after ~3 s', { timeout: 60_000 }, async t => {
  const h = await Harness.create(t)
  const key = randomKey()
  const a = await h.network(key)
  const lurker = h.raw(topicFor(key), () => {}) // connects, then says nothing
  await waitFor(() => lurker.connections.length > 0, 30_000, 'the lurker to connect')
  const took = await waitFor(() => lurker.connections[0].closed, 5000, 'a to drop the lurker')
  t.comment(`lurker dropped ${took} ms after connecting`)
  t.ok(h.logs.some(l => /no HELLO within 3000 ms/.test(l)), 'logged')
  t.same(lurker.connections[0].received.map(m => m.type).filter(x => x !== 'HELLO'), [], 'it got nothing but our HELLO')
  t.same(a.peers(), [])
})
