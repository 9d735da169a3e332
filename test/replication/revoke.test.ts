import t from 'tap'
import { disktro, sleep } from '../helpers/disktro.js'
import { startBootstrap, makeCluster, serveNode, statusJson, until } from '../helpers/cluster.js'

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
