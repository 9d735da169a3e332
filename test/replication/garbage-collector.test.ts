import t from 'tap'
import { randomBytes } from 'node:crypto'
import { writeFile, unlink, readFile } from 'node:fs/promises'
import { requireFuse } from '../helpers/disktro.js'
import { startBootstrap, makeCluster, mountNode, serveNode, storedChunkIds, statusJson, until } from '../helpers/cluster.js'

// Three real processes: a deleted file's chunks leave every member's store
// after the grace period; a file still in the tree keeps all of its copies.
t.test('a deleted file is collected on every member', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  const nodes = await makeCluster(t, bootstrap, ['full', 'full', 'storage'], { gcGrace: '2s' })
  const [a, b, s] = nodes
  const ma = await mountNode(t, a)
  await serveNode(t, b)
  await serveNode(t, s)
  await until('A sees both peers', async () => (await statusJson(a)).peers.filter((p: any) => p.online).length === 2, 60_000)

  const keep = randomBytes(3 * 1024 * 1024)
  await writeFile(ma.path('keep.bin'), keep)
  const keepIds = storedChunkIds(a.dataDir)
  await writeFile(ma.path('doomed.bin'), randomBytes(12 * 1024 * 1024))
  const doomed = [...storedChunkIds(a.dataDir)].filter(id => !keepIds.has(id))
  t.equal(doomed.length, 12, '12 chunks of the file to delete')
  for (const n of nodes) {
    await until(`${n.name} holds every chunk`, () => {
      const have = storedChunkIds(n.dataDir)
      return doomed.every(id => have.has(id)) && [...keepIds].every(id => have.has(id))
    }, 60_000)
  }
  const before = nodes.map(n => storedChunkIds(n.dataDir).size)

  const deleted = Date.now()
  await unlink(ma.path('doomed.bin'))
  for (const n of nodes) {
    await until(`${n.name} dropped the deleted file's chunks`, () => {
      const have = storedChunkIds(n.dataDir)
      return doomed.every(id => !have.has(id))
    }, 60_000)
  }
  t.pass(`every member's store dropped 12 chunks ${Date.now() - deleted} ms after the delete (grace 2 s)`)
  nodes.forEach((n, i) => {
    const have = storedChunkIds(n.dataDir)
    t.ok([...keepIds].every(id => have.has(id)), `${n.name} keeps every chunk of the file still in the tree`)
    t.equal(have.size, before[i] - 12, `${n.name}: store shrank by exactly the 12 chunks`)
  })
  t.same(await readFile(ma.path('keep.bin')), keep, 'the kept file reads back')
  const st = await statusJson(a)
  t.equal(st.gc.pending, 0, 'status: nothing left to collect')
  const sb = await statusJson(b)
  t.ok(st.gc.collectedChunks + sb.gc.collectedChunks >= 12, `status counts collected chunks (A ${st.gc.collectedChunks}, B ${sb.gc.collectedChunks})`)
  t.equal(st.replication.lost, 0)
})
