import t from 'tap'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { LmdbStore } from '../../src/store/lmdb-store.js'
import { HoldingLeases } from '../../src/replication/holding-leases.js'
import { heldFor, presenceClock } from '../../src/store/foreign-holdings.js'
import { tempDir } from '../helpers/disktro.js'

// Leases on copies held for others (issue #28, item 8), on a real LMDB
// store: the input is whether a full member is connected (the network's
// part); the component under test, its clock, queue and collection, is real.
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

t.test('a copy no full member renews is collected after the lease, counted on the full-member clock only', async t => {
  const store = LmdbStore.open(join(await tempDir(t), 'store'))
  t.teardown(() => store.close())
  const placer = randomBytes(32).toString('hex')
  const ids = Array.from({ length: 6 }, () => randomBytes(32))
  for (const id of ids) await store.putReplica(id, randomBytes(1000), placer)
  t.same(heldFor(store, placer), { bytes: 6000, chunks: 6 }, 'the placer\'s account: 6 copies, 6000 bytes')

  let fullSince: number | null = null
  const leases = new HoldingLeases({ store, leaseMs: 400, fullSince: () => fullSince, settled: () => true, log: () => {} })
  t.teardown(() => leases.close())

  // No full member: the clock stands still, nothing expires however long.
  for (let i = 0; i < 8; i++) { await sleep(100); await leases.tick() }
  t.equal(presenceClock(store), 0, 'no full member connected: the full-member clock does not run')
  t.equal(ids.filter(id => store.hasChunk(id)).length, 6, 'every copy kept while no full member could renew it')

  // A full member connects: its warm-up (lease/4) does not count, then the
  // clock runs. It renews the first three (as its audit would).
  fullSince = Date.now()
  const renewer = setInterval(() => leases.renew(ids.slice(0, 3)), 50)
  t.teardown(() => clearInterval(renewer))
  const until = Date.now() + 5000
  while (Date.now() < until && ids.slice(3).some(id => store.hasChunk(id))) { await sleep(100); await leases.tick() }
  clearInterval(renewer)
  t.ok(presenceClock(store) >= 400, `the clock ran while a full member was connected (${presenceClock(store)} ms)`)
  t.same(ids.map(id => store.hasChunk(id)), [true, true, true, false, false, false], 'the renewed copies stay, the others are collected')
  t.same(heldFor(store, placer), { bytes: 3000, chunks: 3 }, 'the placer\'s account follows')
  t.equal(leases.report().expiredChunks, 3)
  t.equal(leases.report().queued, 3, 'only the live leases are queued')

  // A chunk our own tree references is never collected by a lease.
  store.txn(() => store.refs.putSync(ids[0], Buffer.from([1, 0, 0, 0])))
  const end = Date.now() + 3000
  while (Date.now() < end && ids.slice(1, 3).some(id => store.hasChunk(id))) { await sleep(100); await leases.tick() }
  t.same(ids.slice(0, 3).map(id => store.hasChunk(id)), [true, false, false], 'a referenced chunk stays when its lease runs out')
})

t.test('a placing member over its quota is refused with a reason; a drop makes room', async t => {
  const store = LmdbStore.open(join(await tempDir(t), 'store'))
  t.teardown(() => store.close())
  store.quotaPerMember = 2500
  const a = randomBytes(32).toString('hex')
  const b = randomBytes(32).toString('hex')
  const ids = Array.from({ length: 3 }, () => randomBytes(32))
  await store.putReplica(ids[0], randomBytes(1000), a)
  await store.putReplica(ids[1], randomBytes(1000), a)
  await t.rejects(store.putReplica(ids[2], randomBytes(1000), a), { code: 'ENOSPC', message: /quota for member .* full/ }, 'the third is over the quota')
  t.notOk(store.hasChunk(ids[2]), 'and not stored')
  await store.putReplica(ids[2], randomBytes(1000), b)
  t.same(heldFor(store, b), { bytes: 1000, chunks: 1 }, 'another member\'s quota is its own')
  const { unforeignSync } = await import('../../src/store/foreign-holdings.js')
  store.txn(() => { store.removeChunkSync(ids[0]); unforeignSync(store, ids[0]) })
  t.same(heldFor(store, a), { bytes: 1000, chunks: 1 }, 'a drop takes it off the account')
  await store.putReplica(randomBytes(32), randomBytes(1000), a)
  t.same(heldFor(store, a), { bytes: 2000, chunks: 2 }, 'and makes room')
})
