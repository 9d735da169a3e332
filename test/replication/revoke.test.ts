import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { disktro, sleep, requireFuse } from '../helpers/disktro.js'
import { join } from 'node:path'
import { open as openLmdb } from 'lmdb'
import { startBootstrap, makeCluster, serveNode, mountNode, statusJson, until } from '../helpers/cluster.js'
import { ScriptedMember } from '../helpers/scripted-member.js'
import { waitFor } from '../net/helpers.js'
import { decodeInvite } from '../../src/volume/invite.js'

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
  t.match(r.stdout, /signed revocation/)
  await until('b offline on a', async () => !(await statusJson(a)).peers.some((p: any) => p.online), 10_000, 100)
  await until('a offline on b', async () => !(await statusJson(b)).peers.some((p: any) => p.online), 10_000, 100)
  await sleep(3000) // both keep rediscovering: no reconnection may happen
  t.notOk((await statusJson(a)).peers.some((p: any) => p.online), 'still no connection after rediscovery')

  await da.stop()
  da = await serveNode(t, a)
  await sleep(3000)
  t.notOk((await statusJson(a)).peers.some((p: any) => p.online), 'revocation survives a restart')
  const members = (await statusJson(a)).members
  t.ok(members.some((m: any) => m.id === bid && m.state === 'revoked' && m.role === 'full'), 'status lists b as a revoked full member')
  t.ok(members.some((m: any) => m.self && m.state === 'active'), 'and itself active')
  t.ok(da.running)
  const bad = await disktro(['revoke', 'nothex', '--data-dir', a.dataDir])
  t.not(bad.code, 0, 'a malformed id is refused')
})

// Its changes are refused from then on by every member, also by one that
// never ran revoke, and also when a certified member relays them (issue #28).
t.test('revoke: records the revoked member signs afterwards are refused on a member that never ran revoke', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  const [a, b, c] = await makeCluster(t, bootstrap, ['full', 'full', 'full'])
  await serveNode(t, a)
  const mb = await mountNode(t, b)
  await serveNode(t, c)
  await until('all three connected', async () => (await statusJson(a)).peers.filter((p: any) => p.online).length === 2, 60_000)
  await writeFile(mb.path('before.txt'), 'written before the revoke\n')
  await until('c has the file written before the revoke', async () => (await statusJson(c)).volume.files === 1, 30_000)
  const bid = (await statusJson(b)).node.id as string
  const r = await disktro(['revoke', bid, '--data-dir', a.dataDir])
  t.equal(r.code, 0, r.stderr)
  await until('c applied the revocation', async () => (await statusJson(c)).members.some((m: any) => m.id === bid && m.state === 'revoked'), 15_000)
  await until('b is cut off from c too', async () => !(await statusJson(c)).peers.some((p: any) => p.id === bid && p.online), 15_000)
  await writeFile(mb.path('after.txt'), 'written after the revoke\n')
  await until('b logged it', async () => (await statusJson(b)).volume.files === 2, 15_000)

  // A certified member (a storage-only code of a) carries b's later records to c.
  const inv = decodeInvite((await disktro(['invite', '--storage-only', '--data-dir', a.dataDir])).stdout.trim())
  const env = openLmdb({ path: join(b.dataDir, 'store'), maxDbs: 24, readOnly: true })
  const oplog = env.openDB({ name: 'oplog', encoding: 'binary', keyEncoding: 'binary', compression: false })
  const upTo = (await statusJson(c)).members.find((m: any) => m.id === bid).upTo as number
  const later: Buffer[] = []
  for (const { value } of oplog.getRange({ start: Buffer.concat([Buffer.from(bid, 'hex'), u64(upTo + 1)]), end: Buffer.concat([Buffer.from(bid, 'hex'), u64(2 ** 40)]) })) later.push(Buffer.from(value as Buffer))
  await env.close()
  t.ok(later.length >= 1, `b signed ${later.length} record(s) after the revocation (upTo ${upTo})`)
  const relayer = new ScriptedMember(bootstrap, inv.key, 'storage', { seed: inv.seed, cert: inv.memberCert })
  t.teardown(() => relayer.destroy())
  const cid = (await statusJson(c)).node.id as string
  await waitFor(() => relayer.open().some(x => x.remoteId === cid), 60_000, 'the relayer to reach c')
  const conn = relayer.open().find(x => x.remoteId === cid)!
  t.same(await relayer.request(conn, { type: 'NS_PUSH', records: later }), { type: 'NS_ACK', accepted: 0 }, 'c takes none of them')
  await sleep(4000)
  const sc = await statusJson(c)
  t.equal(sc.volume.files, 1, 'c, which never ran revoke, does not show the revoked member\'s later file')
  t.ok(sc.namespace.quarantined >= later.length, 'it set them aside')
  t.notOk(conn.closed, 'and keeps the peer that relayed them')
})

function u64 (n: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(n))
  return b
}
