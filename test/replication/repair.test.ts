import t from 'tap'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { requireFuse } from '../helpers/disktro.js'
import { startBootstrap, makeCluster, mountNode, serveNode, storedChunkIds, statusJson, until, spawnDisktro } from '../helpers/cluster.js'
import { sleep } from '../helpers/disktro.js'

// Four real processes, replicaCount 3: a replica holder killed and kept down
// stops counting after `repairAfter`, and its chunks are copied to the
// member that had none, until every chunk is on three live machines. When it
// returns, the surplus copies are trimmed back to three.
t.test('chunks of a peer that stays down are re-replicated', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  const nodes = await makeCluster(t, bootstrap, ['full', 'storage', 'storage', 'storage'], { repairAfter: '2s' })
  const [a, ...replicas] = nodes
  const ma = await mountNode(t, a)
  const daemons = await Promise.all(replicas.map(n => serveNode(t, n)))
  await until('A sees all three peers', async () => (await statusJson(a)).peers.filter((p: any) => p.online).length === 3, 60_000)

  await writeFile(ma.path('data.bin'), randomBytes(16 * 1024 * 1024))
  const ids = [...storedChunkIds(a.dataDir)]
  t.equal(ids.length, 16)
  await until('every chunk at target', async () => (await statusJson(a)).replication.atTarget === 16, 60_000)
  // Kill the replica holding the most of them; keep it down.
  const held = replicas.map(n => { const s = storedChunkIds(n.dataDir); return ids.filter(id => s.has(id)).length })
  const victim = held.indexOf(Math.max(...held))
  t.ok(held[victim] > 0, `${replicas[victim].name} holds ${held[victim]} chunks`)
  daemons[victim].child.kill('SIGKILL')
  await daemons[victim].exited
  const killed = Date.now()
  // `status --watch` follows the repair live.
  const watch = spawnDisktro(t, ['status', '--watch', '--data-dir', a.dataDir, '--config', a.config])
  const alive = [a, ...replicas.filter((_, i) => i !== victim)]
  await until('every chunk on three live machines, by their own stores', () => {
    const stores = alive.map(n => storedChunkIds(n.dataDir))
    return ids.every(id => stores.filter(s => s.has(id)).length >= 3)
  }, 60_000)
  t.pass(`all 16 chunks back on 3 live machines ${Date.now() - killed} ms after the kill (repairAfter 2 s, heartbeat 0.5 s)`)
  const s = await until('status agrees', async () => { const st = await statusJson(a); return st.replication.atTarget === 16 ? st : false }, 30_000)
  t.equal(s.replication.underReplicated, 0)
  t.equal(s.peers.filter((p: any) => !p.online).length, 1, 'the dead peer shows offline')
  await sleep(1500)
  await watch.stop('SIGINT')
  const frames = watch.stdout.split('\x1b[2J\x1b[H').filter(f => f.trim() !== '')
  t.comment(`status --watch: ${frames.map(f => f.split('\n')[0]).join(' | ')}`)
  t.ok(frames.length >= 3, `status --watch refreshed ${frames.length} times`)
  t.match(frames[frames.length - 1], /^safe: every chunk on 3 machines/, 'the last frame says safe')

  // It comes back with its old copies: the surplus is trimmed to three.
  const copies = (): number[] => {
    const stores = nodes.map(n => storedChunkIds(n.dataDir))
    return ids.map(id => stores.filter(st => st.has(id)).length)
  }
  await serveNode(t, replicas[victim])
  const back = Date.now()
  t.ok(copies().some(n => n > 3), `after the return some chunks have more than 3 copies (${copies().join(',')})`)
  await until('every chunk on exactly three machines again', () => copies().every(n => n === 3), 60_000)
  t.pass(`surplus trimmed ${Date.now() - back} ms after the peer returned`)
  const final = await statusJson(a)
  t.equal(final.replication.atTarget, 16, 'still every chunk at target')
})
