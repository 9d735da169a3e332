import t from 'tap'
import { randomKey } from '../../src/crypto/volume-keys.js'
import type { PeerConnection } from '../../src/net/peer-connection.js'
import { Harness, HEARTBEAT_MS, waitFor } from './helpers.js'

t.test('two nodes with the same key connect, authenticate, talk and watch each other', { timeout: 60_000 }, async t => {
  const h = await Harness.create(t)
  const key = randomKey()
  const big = Buffer.alloc(20 * 1024 * 1024, 0x5a)
  const a = await h.network(key, { role: 'full' })
  const b = await h.network(key, { role: 'storage' })
  const closedOnA: string[] = []
  a.on('peer-closed', id => closedOnA.push(id))
  const serve = (conn: PeerConnection): void => conn.onRequest(async m => {
    if (m.type === 'STATS') return { type: 'STATS_REPLY', chunks: 7, bytes: 2 ** 40 + 3, role: 'storage' }
    if (m.type === 'GET_CHUNK') return { type: 'CHUNK', record: m.id[0] === 1 ? Buffer.from('record') : m.id[0] === 3 ? big : null }
    if (m.type === 'PUT_CHUNK') return { type: 'PUT_ACK', ok: m.record.equals(big) }
    throw new Error('not here')
  })
  b.on('peer', serve)
  for (const c of b.connections()) serve(c)

  const took = await waitFor(() => a.connections().length === 1 && b.connections().length === 1, 30_000, 'the two nodes to connect')
  t.comment(`connected and authenticated in ${took} ms`)
  const toB = a.connections()[0]
  t.equal(toB.id, b.id, 'a sees b by its noise key')
  t.equal(toB.role, 'storage', 'role from HELLO')
  t.equal(b.connections()[0].role, 'full')
  t.match(toB.address, /^127\.0\.0\.1:\d+$/)

  t.same(await toB.request({ type: 'STATS' }), { type: 'STATS_REPLY', chunks: 7, bytes: 2 ** 40 + 3, role: 'storage' })
  const got = await toB.request({ type: 'GET_CHUNK', id: Buffer.alloc(32, 1) })
  t.same(got.record, Buffer.from('record'))
  t.equal((await toB.request({ type: 'GET_CHUNK', id: Buffer.alloc(32, 2) })).record, null)
  await t.rejects(toB.request({ type: 'HAS', ids: [] }), { code: 'PEER_ERROR', message: /not here/ }, 'a throwing handler answers ERROR')
  await t.rejects(toB.request({ type: 'GET_CHUNK', id: Buffer.alloc(31) }), { code: 'EINVAL' }, 'bad request refused before sending')
  // Frames larger than one secret-stream message, several at once: exercises
  // the piecewise writes and waiting for 'drain' on both sides.
  const bigStart = Date.now()
  const bigReplies = await Promise.all([
    toB.request({ type: 'PUT_CHUNK', id: Buffer.alloc(32, 3), record: big }),
    toB.request({ type: 'PUT_CHUNK', id: Buffer.alloc(32, 3), record: big }),
    toB.request({ type: 'GET_CHUNK', id: Buffer.alloc(32, 3) })
  ])
  t.same(bigReplies[0], { type: 'PUT_ACK', ok: true })
  t.same(bigReplies[1], { type: 'PUT_ACK', ok: true })
  t.ok(bigReplies[2].record?.equals(big), '20 MiB record back intact')
  t.comment(`3 x 20 MiB moved in ${Date.now() - bigStart} ms`)
  // A PUT_CHUNK whose record is read when it reaches the stream: the reader
  // runs once, after every frame queued before it; a view of a larger buffer
  // goes out as exactly the view; a reader with nothing fails the request
  // without sending it, and the connection carries on.
  const order: string[] = []
  const padded = Buffer.alloc(big.length + 4096, 0x5a)
  const lazy = await Promise.all([
    toB.request({ type: 'GET_CHUNK', id: Buffer.alloc(32, 3) }).then(r => { order.push('get'); return r }),
    toB.putChunk(Buffer.alloc(32, 3), () => { order.push('read'); return padded.subarray(0, big.length) }),
    toB.putChunk(Buffer.alloc(32, 3), () => { order.push('read-nothing'); return undefined }).catch((e: Error & { code?: string }) => e.code),
    toB.putChunk(Buffer.alloc(32, 3), () => { throw new Error('reader broke') }).catch((e: Error & { code?: string }) => e.code)
  ])
  t.same(lazy[1], { type: 'PUT_ACK', ok: true }, 'lazily read record arrives intact')
  t.equal(lazy[2], 'ENOENT', 'a reader with nothing fails the request')
  t.equal(lazy[3], 'EINVAL', 'a throwing reader fails the request')
  t.same(order.filter(o => o !== 'get'), ['read', 'read-nothing'], 'each reader runs once, in order')
  const many = await Promise.all(Array.from({ length: 40 }, () => toB.request({ type: 'STATS' })))
  t.equal(many.length, 40, 'more requests than slots queue for a slot')

  await waitFor(() => toB.rttMs !== null && b.connections()[0].rttMs !== null, 5 * HEARTBEAT_MS, 'heartbeat round trips')
  t.ok(toB.rttMs! >= 0 && toB.rttMs! < HEARTBEAT_MS, `rtt ${toB.rttMs?.toFixed(2)} ms`)
  t.ok(Date.now() - toB.lastSeen < 2 * HEARTBEAT_MS, 'lastSeen is fresh')
  const info = a.peers().find(p => p.id === b.id)
  t.match(info, { id: b.id, role: 'storage', online: true })

  const stopped = Date.now()
  await b.close()
  await b.close() // idempotent
  const offlineAfter = await waitFor(() => closedOnA.includes(b.id), 3 * HEARTBEAT_MS + 600, 'a to report b offline')
  t.comment(`b reported offline ${offlineAfter} ms after close (${Date.now() - stopped} ms incl. close)`)
  t.equal(a.connections().length, 0)
  t.match(a.peers().find(p => p.id === b.id), { online: false, role: 'storage' }, 'b stays listed, offline')
  await t.rejects(toB.request({ type: 'STATS' }), { code: 'PEER_CLOSED' })
})
