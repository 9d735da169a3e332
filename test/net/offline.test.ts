import t from 'tap'
import { PeerNetwork } from '../../src/net/peer-network.js'
import { randomKey } from '../../src/crypto/volume-keys.js'

t.test('with no reachable bootstrap, start() resolves and the node runs alone', { timeout: 30_000 }, async t => {
  const logs: string[] = []
  // Port 9 (discard) on loopback: nothing answers there.
  const n = new PeerNetwork({ swarmKey: randomKey(), keySeed: randomKey(), role: 'full', bootstrap: [{ host: '127.0.0.1', port: 9 }], heartbeatInterval: 200, log: l => logs.push(l) })
  t.teardown(() => n.close())
  let started = Date.now()
  await n.start()
  t.ok(Date.now() - started < 500, `start() took ${Date.now() - started} ms`)
  await new Promise(resolve => setTimeout(resolve, 3000)) // a few rediscovery rounds
  t.same(n.connections(), [])
  t.same(n.peers(), [])
  t.match(logs[0], /DHT on 127\.0\.0\.1/, 'loopback bootstrap binds loopback')
  started = Date.now()
  await n.close()
  await n.close()
  t.comment(`close() took ${Date.now() - started} ms`)
  t.ok(Date.now() - started < 500, 'close() does not wait for a DHT nobody answered from')
  await new Promise(resolve => setTimeout(resolve, 100))
  t.notOk(logs.some(l => /did not close in time|NODE_DESTROYED/.test(l)), `nor warns about it: ${logs.join(' | ')}`)
})

t.test('bad options fail fast', async t => {
  const base = { swarmKey: randomKey(), keySeed: randomKey(), role: 'full' as const, heartbeatInterval: 200, log: () => {} }
  t.throws(() => new PeerNetwork({ ...base, swarmKey: Buffer.alloc(16) }), { code: 'EINVAL' })
  t.throws(() => new PeerNetwork({ ...base, keySeed: Buffer.alloc(31) }), { code: 'EINVAL' })
  t.throws(() => new PeerNetwork({ ...base, heartbeatInterval: 0 }), { code: 'EINVAL' })
  const a = new PeerNetwork({ ...base })
  t.equal(a.id, new PeerNetwork({ ...base, swarmKey: randomKey() }).id, 'the id follows from the seed alone')
  t.equal(a.id.length, 64)
  await a.close() // never started
})

t.test('offline, a lookup error that repeats is logged once', { timeout: 60_000 }, async t => {
  const logs: string[] = []
  const n = new PeerNetwork({ swarmKey: randomKey(), keySeed: randomKey(), role: 'full', bootstrap: [{ host: '127.0.0.1', port: 9 }], heartbeatInterval: 200, log: l => logs.push(l) })
  t.teardown(() => n.close())
  await n.start()
  // hyperdht gives up on a lookup after about 10 s: wait for three failures.
  const deadline = Date.now() + 45_000
  while (n.discoveryRepeats < 2 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 250))
  const failures = logs.filter(l => /discovery:/.test(l))
  t.ok(n.discoveryRepeats >= 2, `the lookups failed again and again (${n.discoveryRepeats + failures.length} times)`)
  t.equal(failures.length, 1, `one line in the log: ${failures.join(' | ')}`)
  t.match(failures[0], /logged once while it repeats/)
})
