import t from 'tap'
import { randomBytes, createHash } from 'node:crypto'
import { writeFile, readFile } from 'node:fs/promises'
import { requireFuse } from '../helpers/disktro.js'
import { startBootstrap, makeCluster, mountNode, serveNode, storedChunkIds, statusJson, until } from '../helpers/cluster.js'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

// A member with cacheSize keeps only part of the volume: its own chunks are
// handed off until replicaCount copies exist elsewhere, then evicted; reads
// fetch them back from peers.
t.test('a bounded cache evicts what is safe elsewhere and reads it back', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  const nodes = await makeCluster(t, bootstrap, ['full', 'storage', 'storage', 'storage'], { cacheSize: '4MiB' })
  const [a, ...others] = nodes
  const ma = await mountNode(t, a)
  for (const n of others) await serveNode(t, n)
  await until('A sees its three peers', async () => (await statusJson(a)).peers.filter((p: any) => p.online).length === 3, 60_000)

  const data = randomBytes(16 * 1024 * 1024)
  await writeFile(ma.path('big.bin'), data)
  const ids = [...storedChunkIds(a.dataDir)]
  t.equal(ids.length, 16)
  const s = await until('A\'s store is under its cache size', async () => {
    const st = await statusJson(a)
    return st.store.bytes <= 4 * 1024 * 1024 && st.cache.evictedChunks > 0 ? st : false
  }, 60_000)
  t.pass(`A holds ${s.store.chunks} chunks (${s.store.bytes} bytes) after evicting ${s.cache.evictedChunks}`)
  const stores = others.map(n => storedChunkIds(n.dataDir))
  const evicted = ids.filter(id => !storedChunkIds(a.dataDir).has(id))
  t.ok(evicted.length >= 12, `${evicted.length} chunks evicted from A`)
  t.ok(evicted.every(id => stores.filter(st => st.has(id)).length >= 3), 'every evicted chunk is on three other machines')
  t.equal(s.replication.atTarget, 16, 'status: every chunk still at target')
  t.equal(sha(await readFile(ma.path('big.bin'))), sha(data), 'the file reads back through the mount, fetched on demand')
})
