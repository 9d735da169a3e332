import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { disktro, sleep, requireFuse } from '../helpers/disktro.js'
import { startBootstrap, makeCluster, serveNode, mountNode, statusJson, until } from '../helpers/cluster.js'

// A revoked member is disconnected at once and refused from then on, also
// after a restart of the revoking node; it gets nothing.
t.test('revoke: a member is cut off and stays cut off', async t => {
  const bootstrap = await startBootstrap(t)
  const [a, b] = await makeCluster(t, bootstrap, ['full', 'full'])
  let da = await serveNode(t, a)
  await serveNode(t, b)
  await until('a and b connected', async () => (await statusJson(a)).peers.some((p: any) => p.online), 60_000)
  const bid = (await statusJson(b)).node.id as string

  const r = await disktro(['revoke', bid, '--data-dir', a.dataDir])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /disconnected now/)
  await until('b offline on a', async () => !(await statusJson(a)).peers.some((p: any) => p.online), 10_000, 100)
  await until('a offline on b', async () => !(await statusJson(b)).peers.some((p: any) => p.online), 10_000, 100)
  await sleep(3000) // both keep rediscovering: no reconnection may happen
  t.notOk((await statusJson(a)).peers.some((p: any) => p.online), 'still no connection after rediscovery')

  await da.stop()
  da = await serveNode(t, a)
  await sleep(3000)
  t.notOk((await statusJson(a)).peers.some((p: any) => p.online), 'revocation survives a restart')
  t.ok(da.running)
  const bad = await disktro(['revoke', 'nothex', '--data-dir', a.dataDir])
  t.not(bad.code, 0, 'a malformed id is refused')
})

// Its changes are refused from then on, also when a member that has not
// revoked it relays them (issue #28, item 6, in part).
t.test('revoke: records the revoked member signs afterwards are refused, even relayed', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  const [a, b, c] = await makeCluster(t, bootstrap, ['full', 'full', 'full'])
  await serveNode(t, a)
  const mb = await mountNode(t, b)
  await serveNode(t, c)
  await until('all three connected', async () => (await statusJson(a)).peers.filter((p: any) => p.online).length === 2, 60_000)
  await writeFile(mb.path('before.txt'), 'written before the revoke\n')
  await until('a has the file written before the revoke', async () => (await statusJson(a)).volume.files === 1, 30_000)
  const bid = (await statusJson(b)).node.id as string
  const r = await disktro(['revoke', bid, '--data-dir', a.dataDir])
  t.equal(r.code, 0, r.stderr)
  await writeFile(mb.path('after.txt'), 'written after the revoke\n')
  await until('c, which did not revoke b, has the new file', async () => (await statusJson(c)).volume.files === 2, 30_000)
  await sleep(5000) // c relays it to a, and a's anti-entropy asks c every 3 s
  const sa = await statusJson(a)
  t.equal(sa.volume.files, 1, 'a refuses the revoked member\'s later change, relayed by c')
  const cid = (await statusJson(c)).node.id as string
  t.ok(sa.peers.some((p: any) => p.id === cid && p.online), 'and keeps c, which relayed it in good faith')
})
