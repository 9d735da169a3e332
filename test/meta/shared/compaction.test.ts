import t from 'tap'
import { writeFile, readFile, readdir, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { requireFuse, disktro, type Mount } from '../../helpers/disktro.js'
import { startBootstrap, makeCluster, mountNode, serveNode, statusJson, until, nodeConfig, type ClusterNode } from '../../helpers/cluster.js'

async function tryRead (p: string): Promise<string | null> {
  try { return (await readFile(p)).toString() } catch { return null }
}

// Two writers and a storage-only member with fast compaction: logs are
// folded into snapshots at the stability horizon, the storage member drops
// the folded records too, a fresh member starts from a snapshot, and a writer
// restarted from its snapshot keeps its tree and keeps writing.
t.test('namespace logs are compacted into snapshots', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  const [a, b, s] = await makeCluster(t, bootstrap, ['full', 'full', 'storage'], { compactEvery: '1s', compactMargin: 0, replicaCount: 2 })
  let ma = await mountNode(t, a)
  const mb = await mountNode(t, b)
  await serveNode(t, s)
  await until('A sees B and the storage member', async () => (await statusJson(a)).peers.filter((p: any) => p.online).length === 2, 60_000)

  await mkdir(ma.path('d'))
  for (let i = 0; i < 30; i++) await writeFile(ma.path(`d/a${i}.txt`), `A ${i}\n`)
  for (let i = 0; i < 10; i++) await writeFile(mb.path(`b${i}.txt`), `B ${i}\n`)
  for (let round = 0; round < 5; round++) await writeFile(ma.path('d/a0.txt'), `A 0 round ${round}\n`)
  await until('B sees A\'s last write', async () => await tryRead(mb.path('d/a0.txt')) === 'A 0 round 4\n', 30_000)

  // At least 41 changes (a new file is one create op carrying its content);
  // most of them are below the horizon once every member has published its
  // frontier. The last state seen goes into a failure's message.
  let lastA: unknown = null
  let lastS: unknown = null
  const sa = await until('A compacts its log', async () => {
    const s = await statusJson(a)
    lastA = s.namespace
    return s.namespace.compactions > 0 && s.namespace.folded >= 30 ? s : false
  }, 30_000).catch((e: Error) => { throw new Error(`${e.message}; A's namespace: ${JSON.stringify(lastA)}`) })
  t.pass(`A: ${sa.namespace.folded} changes folded into a snapshot, ${sa.namespace.records} kept as records`)
  const ss = await until('the storage member drops the folded records too', async () => {
    const st = await statusJson(s)
    lastS = st.namespace
    return st.namespace.folded >= 30 ? st : false
  }, 30_000).catch((e: Error) => { throw new Error(`${e.message}; storage member's namespace: ${JSON.stringify(lastS)}`) })
  t.pass(`storage member: ${ss.namespace.folded} records folded, ${ss.namespace.records} kept`)

  // A fresh member joins after compaction: it starts from a snapshot.
  const inv = await disktro(['invite', '--data-dir', a.dataDir])
  const base = join(a.dataDir, '..', '..', 'n3')
  await mkdir(base)
  const c: ClusterNode = { name: 'n3', dataDir: join(base, 'data'), config: await nodeConfig(base, bootstrap, { compactEvery: '1s', compactMargin: 0, replicaCount: 2 }) }
  t.equal((await disktro(['join', inv.stdout.trim(), '--data-dir', c.dataDir])).code, 0)
  const mc = await mountNode(t, c)
  await until('the fresh member shows the whole tree', async () => {
    try {
      return (await readdir(mc.path('d'))).length === 30 && (await readdir(mc.path())).length === 11 && await tryRead(mc.path('d/a0.txt')) === 'A 0 round 4\n'
    } catch { return false }
  }, 60_000)
  t.match(mc.stderr, /adopted a snapshot/, 'it adopted a snapshot')
  for (let i = 1; i < 30; i++) t.equal(await tryRead(mc.path(`d/a${i}.txt`)), `A ${i}\n`)
  for (let i = 0; i < 10; i++) t.equal(await tryRead(mc.path(`b${i}.txt`)), `B ${i}\n`)

  // A restarts from its snapshot and keeps writing.
  await ma.stop()
  ma = await mountNode(t, a)
  t.equal((await readdir(ma.path('d'))).length, 30, 'after a restart A shows its tree from the snapshot')
  t.equal(await tryRead(ma.path('b3.txt')), 'B 3\n')
  await writeFile(ma.path('after-restart.txt'), 'still writing\n')
  for (const m of [mb, mc]) await until('the write after the restart arrives', async () => await tryRead(m.path('after-restart.txt')) === 'still writing\n', 30_000)
  t.pass('writes after a restart from a snapshot reach the others')
})

// Two mounted writers with fast compaction, after B wrote one file and A has it.
async function twoWriters (t: Parameters<typeof requireFuse>[0] & Parameters<typeof mountNode>[0]): Promise<{ a: ClusterNode, b: ClusterNode, ma: Mount, mb: Mount } | null> {
  if (!await requireFuse(t)) return null
  const bootstrap = await startBootstrap(t)
  const [a, b] = await makeCluster(t, bootstrap, ['full', 'full'], { compactEvery: '1s', compactMargin: 0, replicaCount: 2 })
  const ma = await mountNode(t, a)
  const mb = await mountNode(t, b)
  await until('A and B see each other', async () => (await statusJson(a)).peers.filter((p: any) => p.online).length === 1, 60_000)
  await writeFile(mb.path('from-b.txt'), 'B wrote this\n')
  await until('A has B\'s file', async () => await tryRead(ma.path('from-b.txt')) === 'B wrote this\n', 30_000)
  return { a, b, ma, mb }
}

// A writer that is revoked no longer holds compaction back.
t.test('a revoked writer does not hold the horizon back', async t => {
  const w = await twoWriters(t)
  if (!w) return
  const { a, b, ma, mb } = w
  const bid = (await statusJson(b)).node.id as string
  await mb.stop()
  for (let i = 0; i < 20; i++) await writeFile(ma.path(`a${i}.txt`), `A ${i}\n`)
  const before = (await statusJson(a)).namespace
  t.equal(before.folded < 20 ? 'held back' : 'compacted', 'held back', `with B gone but not revoked, A folds little (${before.folded} records)`)
  t.equal((await disktro(['revoke', bid, '--data-dir', a.dataDir])).code, 0)
  const after = await until('A compacts once B is revoked', async () => {
    const s = (await statusJson(a)).namespace
    return s.folded >= 20 ? s : false
  }, 30_000)
  t.pass(`after the revoke A folded ${after.folded} records`)
  t.equal(await tryRead(ma.path('from-b.txt')), 'B wrote this\n', 'B\'s file stays')
})

// A writer that stays online but stops writing does not hold the horizon at
// its last op: the frontier it publishes (with the head of its own log) lets
// the others fold what was written after it.
t.test('an online writer that stopped writing does not hold the horizon back', async t => {
  const w = await twoWriters(t)
  if (!w) return
  const { a, ma, mb } = w
  for (let i = 0; i < 20; i++) await writeFile(ma.path(`a${i}.txt`), `A ${i}\n`)
  await until('B has A\'s files', async () => await tryRead(mb.path('a19.txt')) === 'A 19\n', 30_000)
  let last: unknown = null
  const s = await until('A folds the records written after B\'s last one', async () => {
    const ns = (await statusJson(a)).namespace
    last = ns
    return ns.folded >= 21 ? ns : false
  }, 30_000).catch((e: Error) => { throw new Error(`${e.message}; A's namespace: ${JSON.stringify(last)}`) })
  t.pass(`A folded ${s.folded} records, kept ${s.records}`)
  t.equal(await tryRead(mb.path('a7.txt')), 'A 7\n', 'B still reads A\'s files')
  await writeFile(mb.path('b-again.txt'), 'B writes again\n')
  await until('B\'s new write reaches A after the compaction', async () => await tryRead(ma.path('b-again.txt')) === 'B writes again\n', 30_000)
})
