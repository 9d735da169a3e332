import t from 'tap'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { requireFuse } from '../helpers/disktro.js'
import { startBootstrap, makeCluster, mountNode, serveNode, storedChunkIds, statusJson, until, nodeConfig } from '../helpers/cluster.js'

// A member whose store is full refuses chunks with a reason; placement moves
// on to the next member, and status names the refusing peer.
t.test('a full peer refuses, placement moves on, status shows it', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  const [a, small, big] = await makeCluster(t, bootstrap, ['full', 'storage', 'storage'], { replicaCount: 2 })
  await nodeConfig(join(small.config, '..'), bootstrap, { replicaCount: 2, maxStoreBytes: '4MiB' })
  const ma = await mountNode(t, a)
  await serveNode(t, small)
  await serveNode(t, big)
  await until('A sees both peers', async () => (await statusJson(a)).peers.filter((p: any) => p.online).length === 2, 60_000)

  // 32 chunks: rendezvous hashing ranks the small member first for about half
  // of them, and it refuses only once more than 3 came its way (with 16
  // chunks, one run in a hundred gave it 3 or fewer, and nothing to refuse).
  const CHUNKS = 32
  await writeFile(ma.path('data.bin'), randomBytes(CHUNKS * 1024 * 1024))
  const s = await until('every chunk on two machines', async () => { const st = await statusJson(a); return st.replication.atTarget === CHUNKS ? st : false }, 60_000)
  const held = storedChunkIds(small.dataDir).size
  t.ok(held < 4, `the small member holds only ${held} chunks`)
  t.equal(storedChunkIds(big.dataDir).size, CHUNKS - held, 'the other member took the rest')
  const smallId = (await statusJson(small)).node.id
  const peer = s.peers.find((p: any) => p.id === smallId)
  t.ok(peer?.refusing, 'status marks the small member as refusing')
  t.match(peer.refusing, /space|full|room/i, `with the reason: ${peer?.refusing}`)
})
