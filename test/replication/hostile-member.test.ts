import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { open as openLmdb } from 'lmdb'
import { requireFuse, sh, disktro, tempDir, sleep } from '../helpers/disktro.js'
import { startBootstrap, makeCluster, mountNode, serveNode, storedChunkIds, statusJson, until } from '../helpers/cluster.js'
import { waitFor } from '../net/helpers.js'
import { ScriptedMember as Attacker } from '../helpers/scripted-member.js'
import { decodeInvite } from '../../src/volume/invite.js'
import { randomBytes } from 'node:crypto'
import { encodeOpRecord, signingKeyOfSeed } from '../../src/codec/op-record.js'

// A member you cannot fully trust (issue #28, items 1 and 2): a scripted
// peer holding only a storage-only join code, speaking the real wire
// protocol to real daemons over loopback, tries to make members drop the
// volume's chunks. Nothing is dropped, every file reads back, and status
// stays truthful.

t.test('a storage-only code holder cannot make any member drop the volume\'s chunks', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  const [a, b, c] = await makeCluster(t, bootstrap, ['full', 'full', 'storage'])
  const ma = await mountNode(t, a)
  await serveNode(t, b)
  await serveNode(t, c)
  await until('writer sees both peers online', async () => (await statusJson(a)).peers.filter((p: any) => p.online).length === 2, 60_000)
  const local = await tempDir(t)
  for (let i = 0; i < 8; i++) await sh(`head -c 200000 /dev/urandom > ${join(local, `f${i}`)}`)
  await sh(`cp ${local}/f* ${ma.path('')}`)
  const ids = [...storedChunkIds(a.dataDir)]
  t.equal(ids.length, 8)
  for (const n of [b, c]) await until(`${n.name} holds every chunk`, () => { const have = storedChunkIds(n.dataDir); return ids.every(id => have.has(id)) }, 120_000)
  await until('safe on the writer', async () => (await disktro(['status', '--data-dir', a.dataDir, '--config', a.config])).code === 0, 30_000)

  // The genuine records, as any member could fetch them.
  const env = openLmdb({ path: join(a.dataDir, 'store'), maxDbs: 24, readOnly: true })
  const chunks = env.openDB({ name: 'chunks', encoding: 'binary', keyEncoding: 'binary', compression: false })
  const records = ids.map(id => ({ id: Buffer.from(id, 'hex'), record: Buffer.from(chunks.getBinary(Buffer.from(id, 'hex'))!) }))
  await env.close()

  const code = (await disktro(['invite', '--storage-only', '--data-dir', a.dataDir])).stdout.trim()
  const inv = decodeInvite(code)
  const swarmKey = inv.key

  // Claiming the full role without its key: refused at the handshake.
  const liar = new Attacker(bootstrap, swarmKey, 'full')
  t.teardown(() => liar.destroy())
  await waitFor(() => liar.conns.filter(x => x.closed).length >= 3, 60_000, 'every member to drop the false full member')
  t.equal(liar.open().length, 0, 'a storage-only key cannot pass as a full member')
  await liar.destroy()

  // As what it is, a storage-only member: it stores genuine records with
  // every member, then asks them to trim and drop them.
  const evil = new Attacker(bootstrap, swarmKey, 'storage', { seed: inv.seed, cert: inv.memberCert })
  t.teardown(() => evil.destroy())
  await waitFor(() => evil.open().length >= 3, 60_000, 'the hostile storage-only member to reach all three members')
  let dropped = 0
  for (const conn of evil.open()) {
    for (const r of records) {
      const ack = await evil.request(conn, { type: 'PUT_CHUNK', id: r.id, record: r.record })
      t.ok(ack.type === 'PUT_ACK' && !ack.ok && /only a proven full member places/.test(ack.reason ?? ''), 'a placement by a storage-only member is refused')
    }
    const ids32 = records.map(r => r.id)
    for (const type of ['TRIM_CHUNKS', 'DROP_CHUNKS'] as const) {
      const reply = await evil.request(conn, { type, ids: ids32 })
      if (reply.type === 'DROP_ACK') dropped += reply.dropped
    }
  }
  t.equal(dropped, 0, 'no member dropped anything a storage-only member asked it to')
  for (const n of [a, b, c]) {
    const have = storedChunkIds(n.dataDir)
    t.ok(ids.every(id => have.has(id)), `${n.name} still holds every chunk`)
  }
  for (let i = 0; i < 8; i++) {
    const back = await readFile(ma.path(`f${i}`))
    t.ok(back.equals(await readFile(join(local, `f${i}`))), `f${i} reads back`)
  }
  // A remount reads from the store, not from caches.
  await ma.stop()
  const ma2 = await mountNode(t, a)
  for (let i = 0; i < 8; i++) t.ok((await readFile(ma2.path(`f${i}`))).equals(await readFile(join(local, `f${i}`))), `f${i} reads back after a remount`)
  const st = await until('status settles', async () => { const s = await statusJson(a); return s.replication.unsettled === 0 ? s : false }, 30_000)
  t.equal(st.replication.lost, 0, 'nothing lost')
  t.equal(st.replication.atTarget, 8, 'every chunk at target: the writer still replicates its own chunks')
})

// The certified member set (issue #28): with only a storage-only code, a
// fresh identity gets nothing but HELLO; the code's own identity is a member,
// but the records it relays from a key that is no member are refused and set
// aside by full and storage-only members alike, and it stays connected for
// it; once revoked (on one member), every member refuses it, and the code
// admits nobody. The member set survives a restart.
t.test('uncertified signers are refused everywhere, the relayer is not cut off; a revoked code admits nobody', async t => {
  const started = Date.now()
  const phase = (what: string): void => { t.comment(`${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`) }
  const bootstrap = await startBootstrap(t)
  const [a, b, s] = await makeCluster(t, bootstrap, ['full', 'full', 'storage'])
  phase('cluster made')
  await serveNode(t, a)
  await serveNode(t, b)
  let ds = await serveNode(t, s)
  await until('a sees b and s online', async () => (await statusJson(a)).peers.filter((p: any) => p.online).length === 2, 60_000)
  const code = (await disktro(['invite', '--storage-only', '--data-dir', a.dataDir])).stdout.trim()
  const inv = decodeInvite(code)

  // A fresh identity with the code's swarm key: no certificate.
  const stranger = new Attacker(bootstrap, inv.key, 'storage')
  t.teardown(() => stranger.destroy())
  await waitFor(() => stranger.conns.filter(c => c.closed).length >= 3, 60_000, 'every member to close the uncertified identity')
  t.equal(stranger.open().length, 0, 'an identity without a certificate is never let in')
  t.equal(stranger.gotMore().length, 0, 'and gets nothing but HELLO (and the member\'s own certificate offer)')
  await stranger.destroy()

  phase('stranger refused')
  // The code's identity: certified by a at `invite`, and let in by all three.
  const evil = new Attacker(bootstrap, inv.key, 'storage', { seed: inv.seed, cert: inv.memberCert })
  t.teardown(() => evil.destroy())
  await waitFor(() => new Set(evil.open().map(c => c.remoteId)).size === 3, 60_000, 'the certified code holder to reach all three members')
  await until('b learned its certificate', async () => (await statusJson(b)).members.some((m: any) => m.id === evil.id && m.state === 'active'), 30_000)

  phase('certified peer in')
  // It relays a record signed by a key that is no member.
  const forger = signingKeyOfSeed(randomBytes(32))
  const fid = forger.publicKey.toString('hex')
  const forged = encodeOpRecord({ type: 'create', hlc: BigInt(Date.now()) << 16n, member: fid, seq: 1, id: `${fid}:1`, parent: 'root', name: 'planted', kind: 'symlink', attrs: {}, content: '/etc/shadow' }, randomBytes(32), forger.secretKey)
  for (const conn of evil.open()) {
    const r = await evil.request(conn, { type: 'NS_PUSH', records: [forged] })
    t.same(r, { type: 'NS_ACK', accepted: 0 }, 'refused')
  }
  for (const n of [a, b, s]) {
    const st = await until(`${n.name} counts it in quarantine`, async () => { const x = await statusJson(n); return x.namespace.quarantined >= 1 ? x : false }, 15_000)
    t.notOk(st.namespace.peers.some((p: any) => p.id === fid), `${n.name}: never a log it syncs`)
  }
  await sleep(4000) // anti-entropy rounds pass: nobody is cut off for relaying it
  t.equal(new Set(evil.open().map(c => c.remoteId)).size, 3, 'the relayer stays connected to all three')
  t.equal((await statusJson(a)).peers.filter((p: any) => p.online).length, 3, 'a keeps b, s and the relayer')

  phase('forgeries refused')
  // Revoked on a alone: b and s apply the signed revocation too.
  const r = await disktro(['revoke', evil.id.slice(0, 12), '--data-dir', a.dataDir])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /signed revocation/)
  await waitFor(() => evil.open().length === 0, 15_000, 'every member to close the revoked identity')
  for (const n of [b, s]) t.ok((await statusJson(n)).members.some((m: any) => m.id === evil.id && m.state === 'revoked'), `${n.name}, which never ran revoke, lists it revoked`)
  await evil.destroy()

  phase('revoked everywhere')
  // The code again, with its identity or with a fresh one: nobody gets in.
  const again = new Attacker(bootstrap, inv.key, 'storage', { seed: inv.seed, cert: inv.memberCert })
  t.teardown(() => again.destroy())
  const fresh = new Attacker(bootstrap, inv.key, 'storage', { cert: inv.memberCert })
  t.teardown(() => fresh.destroy())
  await sleep(8000)
  // (The two scripted peers may well connect to each other: only the members count.)
  const ids = new Set(await Promise.all([a, b, s].map(async n => (await statusJson(n)).node.id as string)))
  t.equal(again.open().filter(c => ids.has(c.remoteId)).length, 0, 'the revoked identity cannot connect')
  t.equal(fresh.open().filter(c => ids.has(c.remoteId)).length, 0, 'a fresh identity presenting the code\'s certificate cannot either')
  await again.destroy()

  phase('code admits nobody')
  // A restart of the storage-only member: its member set is on disk.
  await ds.stop()
  ds = await serveNode(t, s)
  await until('s reconnects to a and b', async () => (await statusJson(s)).peers.filter((p: any) => p.online).length === 2, 60_000)
  const ms = (await statusJson(s)).members
  t.ok(ms.some((m: any) => m.id === evil.id && m.state === 'revoked'), 'after a restart s still lists the revocation')
  t.equal(ms.filter((m: any) => m.state === 'active').length, 3, 'and a, b and itself active')
  const render = await disktro(['status', '--data-dir', s.dataDir, '--config', s.config])
  t.match(render.stdout, /members[\s\S]*REVOKED/, 'status lists members and their state')
  t.ok(ds.running)
})
