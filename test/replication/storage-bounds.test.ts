import t from 'tap'
import { randomBytes } from 'node:crypto'
import { writeFile, readFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { requireFuse, disktro, sleep } from '../helpers/disktro.js'
import { startBootstrap, makeCluster, mountNode, serveNode, storedChunkIds, statusJson, until, nodeConfig } from '../helpers/cluster.js'
import { waitFor, type RawConnection } from '../net/helpers.js'
import { ScriptedMember } from '../helpers/scripted-member.js'
import { decodeInvite } from '../../src/volume/invite.js'
import type { ReplyBody, RequestBody } from '../../src/codec/wire.js'

// What members hold for others is bounded and collected, and a peer's word
// about its copies counts only once proven (issue #28, item 8 and the
// holder-knowledge part of item 1): real daemons over loopback and a
// scripted peer holding a storage-only join code, speaking the real wire
// protocol. It answers every challenge with made-up proofs and every HAS
// with "yes", as a liar would.

// With the identity and certificate of a storage-only join code: a member
// in good standing, as far as anyone can check.
class Liar extends ScriptedMember {
  private readonly answered = new WeakMap<RawConnection, number>()
  private readonly timer: NodeJS.Timeout

  constructor (bootstrap: string, swarmKey: Buffer, member: { seed?: Buffer, cert?: Buffer }) {
    super(bootstrap, swarmKey, 'storage', member)
    // Lies in answer to every request.
    this.timer = setInterval(() => {
      for (const c of this.open()) {
        const from = this.answered.get(c) ?? 0
        for (let i = from; i < c.received.length; i++) {
          const m = c.received[i]
          if (m.type === 'REQUEST' && m.body.type !== 'MEMBERS_OFFER') c.send({ type: 'REPLY', id: m.id, body: this.lie(m.body) })
        }
        this.answered.set(c, c.received.length)
      }
    }, 200)
  }

  private lie (body: RequestBody): ReplyBody {
    switch (body.type) {
      case 'PROVE': return { type: 'PROOFS', proofs: body.ids.map(() => randomBytes(32)) }
      case 'HAS': return { type: 'HAS_REPLY', have: body.ids.map(() => true) }
      case 'STATS': return { type: 'STATS_REPLY', chunks: 1000, bytes: 1e9, role: 'storage' }
      case 'HOLDING': return { type: 'DROP_ACK', dropped: 0 }
      default: return { type: 'ERROR', message: 'no' }
    }
  }

  override async destroy (): Promise<void> {
    clearInterval(this.timer)
    await super.destroy()
  }
}

t.test('a storage-only identity places nothing; its claims of copies it does not hold never count', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  // Two machines for a target of three: every chunk is one copy short, so a
  // believed claim would be what made it "safe".
  const [a, s] = await makeCluster(t, bootstrap, ['full', 'storage'])
  const ma = await mountNode(t, a)
  await serveNode(t, s)
  await until('writer sees the storage member', async () => (await statusJson(a)).peers.filter((p: any) => p.online).length === 1, 60_000)
  for (let i = 0; i < 6; i++) await writeFile(ma.path(`f${i}`), randomBytes(200_000))
  const ids = [...storedChunkIds(a.dataDir)]
  t.equal(ids.length, 6)
  await until('s holds every chunk', () => { const have = storedChunkIds(s.dataDir); return ids.every(id => have.has(id)) }, 60_000)
  const before = await until('the writer counts two copies of each', async () => { const st = await statusJson(a); return st.replication.unsettled === 0 && st.replication.underReplicated === 6 ? st : false }, 30_000)
  t.equal(before.replication.atTarget, 0, 'nothing at target with two machines of three')

  const inv = decodeInvite((await disktro(['invite', '--storage-only', '--data-dir', a.dataDir])).stdout.trim())
  const swarmKey = inv.key
  const liar = new Liar(bootstrap, swarmKey, { seed: inv.seed, cert: inv.memberCert })
  t.teardown(() => liar.destroy())
  await waitFor(() => liar.open().length >= 2, 60_000, 'the liar to reach both members')

  // Junk under random ids, and genuine-looking sizes: refused by everyone.
  const junk = Array.from({ length: 4 }, () => ({ id: randomBytes(32), record: randomBytes(100_000) }))
  for (const conn of liar.open()) {
    for (const j of junk) {
      const ack = await liar.request(conn, { type: 'PUT_CHUNK', id: j.id, record: j.record })
      t.ok(ack.type === 'PUT_ACK' && !ack.ok && /only a proven full member/.test(ack.reason ?? ''), `junk refused: ${ack.type === 'PUT_ACK' ? ack.reason : ack.type}`)
    }
  }
  for (const n of [a, s]) {
    const have = storedChunkIds(n.dataDir)
    t.notOk(junk.some(j => have.has(j.id.toString('hex'))), `${n.name} stored none of the junk`)
  }

  // It claims to hold every chunk (HOLDING), and says yes to every HAS.
  const held = ids.map(id => Buffer.from(id, 'hex'))
  for (const conn of liar.open()) await liar.request(conn, { type: 'HOLDING', held, dropped: [] })
  const claimedAt = Date.now()
  let refuted = false
  while (Date.now() - claimedAt < 15_000) {
    const st = await statusJson(a)
    t.equal(st.replication.atTarget, 0, 'the claims never make a chunk count at target')
    if (st.replication.atTarget !== 0) break
    if (st.audit.claims.refuted >= 6) refuted = true
    await sleep(1000)
  }
  const st = await statusJson(a)
  t.ok(refuted, `the writer challenged the claims and refuted them (${JSON.stringify(st.audit.claims)})`)
  t.equal(st.replication.unproven, 0, 'status: no copy counted without a proof')
  t.equal(st.replication.underReplicated, 6, 'status: every chunk still one copy short')
  const text = (await disktro(['status', '--data-dir', a.dataDir, '--config', a.config])).stdout
  t.match(text, /claims\s+\d+ copies peers say they hold wait for a proof/, 'the text status shows the claims')
  t.notMatch(text.split('\n')[0], /^safe/, 'the headline does not say safe')
  await liar.destroy()
})

t.test('a full member over its quota is refused, and its data lands elsewhere', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  const [a, small, big] = await makeCluster(t, bootstrap, ['full', 'storage', 'storage'], { replicaCount: 2 })
  await nodeConfig(join(small.config, '..'), bootstrap, { replicaCount: 2, quotaPerMember: '3MiB' })
  const ma = await mountNode(t, a)
  await serveNode(t, small)
  await serveNode(t, big)
  await until('A sees both peers', async () => (await statusJson(a)).peers.filter((p: any) => p.online).length === 2, 60_000)
  const CHUNKS = 16
  const data = randomBytes(CHUNKS * 1024 * 1024)
  await writeFile(ma.path('data.bin'), data)
  const s = await until('every chunk on two machines', async () => { const st = await statusJson(a); return st.replication.atTarget === CHUNKS ? st : false }, 90_000)
  const held = storedChunkIds(small.dataDir).size
  t.ok(held <= 2, `the member with a 3 MiB quota holds ${held} chunks of 1 MiB`)
  t.equal(storedChunkIds(big.dataDir).size, CHUNKS - held, 'the other member took the rest')
  const smallId = (await statusJson(small)).node.id
  const peer = s.peers.find((p: any) => p.id === smallId)
  t.ok(peer, 'status lists the small member')
  // The refusal as the writer logged it (status keeps only the last
  // refusal, which a dropped connection on a loaded machine can replace).
  t.match(ma.stderr, /refused chunk \w+: quota for member \w+ full \(\d+ of quotaPerMember 3145728 bytes held for it\)/, 'the writer was told why: the quota')
  const ss = await statusJson(small)
  const mine = ss.storage.members.find((m: any) => m.member === s.node.id)
  t.ok(mine && mine.chunks === held && mine.bytes <= 3 * 1024 * 1024, `the small member's status shows what it holds for the writer: ${JSON.stringify(ss.storage.members)}`)
  t.equal(ss.storage.quotaPerMember, 3 * 1024 * 1024)
  const text = (await disktro(['status', '--data-dir', small.dataDir, '--config', small.config])).stdout
  t.match(text, /held for 1 member\(s\), quota 3\.0 MiB each/, 'the text status shows it too')
  t.ok((await readFile(ma.path('data.bin'))).equals(data), 'the file reads back')
})

t.test('copies nobody renews are collected on a storage-only member; with every full member away, nothing is', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  // No DROP for an hour (gcGrace): only the lease can collect here.
  const [a, s] = await makeCluster(t, bootstrap, ['full', 'storage'], { gcGrace: '1h', holdLease: '40s', replicaCount: 2 })
  let ma = await mountNode(t, a)
  await serveNode(t, s)
  await until('writer sees the storage member', async () => (await statusJson(a)).peers.filter((p: any) => p.online).length === 1, 60_000)
  const keep = randomBytes(4 * 1024 * 1024)
  await writeFile(ma.path('keep.bin'), keep)
  const keepIds = storedChunkIds(a.dataDir)
  await writeFile(ma.path('doomed.bin'), randomBytes(4 * 1024 * 1024))
  const doomed = [...storedChunkIds(a.dataDir)].filter(id => !keepIds.has(id))
  t.equal(doomed.length, 4)
  await until('s holds every chunk', () => { const have = storedChunkIds(s.dataDir); return [...keepIds, ...doomed].every(id => have.has(id)) }, 60_000)

  // Every full member away for longer than the lease: the clock stands.
  await ma.stop()
  await sleep(50_000)
  const away = storedChunkIds(s.dataDir)
  t.ok([...keepIds, ...doomed].every(id => away.has(id)), 'after 50 s without a full member (lease 40 s), every copy is kept')
  const clock = (await statusJson(s)).storage.leases.clockMs

  ma = await mountNode(t, a)
  await unlink(ma.path('doomed.bin'))
  const deleted = Date.now()
  await until('s collected the deleted file\'s chunks', () => { const have = storedChunkIds(s.dataDir); return doomed.every(id => !have.has(id)) }, 120_000, 1000)
  t.pass(`collected ${Math.round((Date.now() - deleted) / 1000)} s after the delete (warm-up 10 s + lease 40 s; the full-member clock stood at ${Math.round(clock / 1000)} s while it was away)`)
  const have = storedChunkIds(s.dataDir)
  t.ok([...keepIds].every(id => have.has(id)), 'the chunks still in the tree stay: the writer\'s proofs renew them')
  const ss = await statusJson(s)
  t.equal(ss.storage.leases.expiredChunks, 4, 'status counts the collected copies')
  const st = await until('the writer settles', async () => { const x = await statusJson(a); return x.replication.unsettled === 0 ? x : false }, 30_000)
  t.equal(st.replication.atTarget, 4, 'the kept file is at target')
  t.ok((await readFile(ma.path('keep.bin'))).equals(keep), 'and reads back')
})
