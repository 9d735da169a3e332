import t from 'tap'
import { randomBytes } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { open as openLmdb } from 'lmdb'
import { requireFuse, sh, disktro, tempDir, Mount } from '../helpers/disktro.js'
import { openNode } from '../helpers/node.js'
import { startBootstrap, makeCluster, mountNode, serveNode, storedChunkIds, statusJson, until, type ClusterNode, type Daemon } from '../helpers/cluster.js'

// "Is my data safe?" answered from shared, checked knowledge on every member
// (issue #27): real daemons over loopback, a writer with a mount, a full
// member and a storage-only member serving headless.

async function exitCode (n: ClusterNode): Promise<{ code: number | null, stdout: string }> {
  const r = await disktro(['status', '--data-dir', n.dataDir, '--config', n.config])
  return { code: r.code, stdout: r.stdout }
}

t.test('every member reports every chunk at target; a wiped member and one that lost half its copies are noticed and repaired', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  const [a, b, c] = await makeCluster(t, bootstrap, ['full', 'full', 'storage'])
  const ma = await mountNode(t, a)
  await serveNode(t, b)
  let sc: Daemon = await serveNode(t, c)
  await until('writer sees both peers online', async () => (await statusJson(a)).peers.filter((p: any) => p.online).length === 2, 60_000)

  // 40 files of 256 KiB: one chunk each.
  const local = await tempDir(t)
  for (let i = 0; i < 40; i++) await sh(`head -c 262144 /dev/urandom > ${join(local, `f${i}`)}`)
  await sh(`cp ${local}/f* ${ma.path('')}`)
  const written = storedChunkIds(a.dataDir)
  t.equal(written.size, 40, '40 chunks on the writer')

  for (const n of [b, c]) {
    await until(`${n.name} holds every chunk`, () => { const have = storedChunkIds(n.dataDir); return [...written].every(id => have.has(id)) }, 120_000)
  }
  const landed = Date.now()
  // Every member, not only the writer, counts three copies of every chunk.
  // The time counted is when the status that said so was asked for.
  const headlines: string[] = []
  const safeOn = async (n: ClusterNode): Promise<number> => {
    return await until(`${n.name} says safe`, async () => {
      const asked = Date.now()
      const r = await exitCode(n)
      headlines.push(`${n.name} +${asked - landed} ms: ${r.stdout.split('\n')[0]}`)
      return r.code === 0 ? Math.max(1, asked - landed) : false
    }, 30_000, 100)
  }
  const times = await Promise.all([a, b, c].map(safeOn))
  t.comment(headlines.join('\n'))
  t.ok(times.every(ms => ms < 10_000), `safe on every member within 10 s of the last copy landing: ${times.join(', ')} ms`)
  for (const n of [a, b, c]) {
    const s = await statusJson(n)
    t.equal(s.health.exitCode, 0, `${n.name}: health safe`)
    t.equal(s.replication.atTarget, s.replication.chunks, `${n.name}: ${s.replication.atTarget} of ${s.replication.chunks} at target`)
    t.ok(s.replication.chunks >= 40, `${n.name} tracks the chunks (${s.replication.chunks})`)
  }
  const sText = await exitCode(c)
  t.match(sText.stdout, /safe: every chunk on 3 machines/, 'the storage-only member says so too')

  // C's store is deleted behind its back: the others stop counting its
  // copies and repair restores the target.
  await sc.stop()
  await rm(join(c.dataDir, 'store'), { recursive: true, force: true })
  const wipedAt = Date.now()
  sc = await serveNode(t, c)
  await until('the writer notices the wiped member', () => /holds no chunks|failed \d+ of \d+ holding checks/.test(ma.stderr), 120_000, 250)
  t.pass(`wiped member noticed after ${Date.now() - wipedAt} ms`)
  await until('c holds every chunk again', () => { const have = storedChunkIds(c.dataDir); return [...written].every(id => have.has(id)) }, 120_000)
  t.pass(`repair restored c's copies ${Date.now() - wipedAt} ms after the wipe`)
  for (const n of [a, b, c]) await until(`${n.name} safe again`, async () => (await exitCode(n)).code === 0, 60_000, 500)
  t.pass('every member safe again')

  // C loses half its copies while stopped for a moment (its records deleted
  // in its store): the others notice by challenge and repair.
  await sc.stop()
  const victims = [...written].slice(0, 20)
  const env = openLmdb({ path: join(c.dataDir, 'store'), maxDbs: 24 })
  const chunks = env.openDB({ name: 'chunks', encoding: 'binary', keyEncoding: 'binary', compression: false })
  const sums = env.openDB({ name: 'sums', encoding: 'binary', keyEncoding: 'binary', compression: false })
  await env.transaction(() => { for (const v of victims) { chunks.removeSync(Buffer.from(v, 'hex')); sums.removeSync(Buffer.from(v, 'hex')) } })
  await env.close()
  t.equal(victims.filter(v => storedChunkIds(c.dataDir).has(v)).length, 0, 'half of c\'s copies are gone')
  const droppedAt = Date.now()
  const logFrom = ma.stderr.length
  sc = await serveNode(t, c)
  await until('the writer notices the lost copies', () => /failed \d+ of \d+ holding checks/.test(ma.stderr.slice(logFrom)), 120_000, 250)
  t.pass(`lost copies noticed after ${Date.now() - droppedAt} ms`)
  await until('c holds every chunk again', () => { const have = storedChunkIds(c.dataDir); return [...written].every(id => have.has(id)) }, 120_000)
  t.pass(`repaired ${Date.now() - droppedAt} ms after the loss`)
  for (const n of [a, b]) await until(`${n.name} safe again`, async () => (await exitCode(n)).code === 0, 60_000, 500)
  t.pass('writer and full member safe again')
})

t.test('four members, replicaCount 3: each chunk on three of them, and every member says safe', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  const nodes = await makeCluster(t, bootstrap, ['full', 'full', 'storage', 'storage'])
  const [a] = nodes
  const ma = await mountNode(t, a)
  for (const n of nodes.slice(1)) await serveNode(t, n)
  await until('writer sees three peers online', async () => (await statusJson(a)).peers.filter((p: any) => p.online).length === 3, 60_000)
  const local = await tempDir(t)
  for (let i = 0; i < 30; i++) await sh(`head -c 200000 /dev/urandom > ${join(local, `g${i}`)}`)
  await sh(`cp ${local}/g* ${ma.path('')}`)
  const written = storedChunkIds(a.dataDir)
  t.equal(written.size, 30)
  await until('every chunk on three machines', () => {
    const stores = nodes.map(n => storedChunkIds(n.dataDir))
    return [...written].every(id => stores.filter(s => s.has(id)).length >= 3)
  }, 120_000)
  const landed = Date.now()
  const times = await Promise.all(nodes.map(async n => await until(`${n.name} says safe`, async () => {
    const asked = Date.now()
    return (await exitCode(n)).code === 0 ? Math.max(1, asked - landed) : false
  }, 30_000, 100)))
  t.ok(times.every(ms => ms < 10_000), `safe on all four members within 10 s of the last copy landing: ${times.join(', ')} ms`)
  for (const n of nodes) {
    const s = await statusJson(n)
    t.equal(s.replication.atTarget, s.replication.chunks, `${n.name}: ${s.replication.atTarget} of ${s.replication.chunks} tracked chunks at target`)
  }
})

t.test('status without evidence: no daemon, an empty volume, one machine', async t => {
  if (!await requireFuse(t)) return
  const dir = await tempDir(t)
  const dataDir = join(dir, 'data')
  const init = await disktro(['init', '--data-dir', dataDir])
  t.equal(init.code, 0)
  const none = await disktro(['status', '--data-dir', dataDir])
  t.equal(none.code, 2, 'no daemon and nothing counted: exit 2')
  t.match(none.stdout, /^unknown: no daemon running/, none.stdout.split('\n')[0])
  t.notMatch(none.stdout, /safe/)

  const config = join(dir, 'config.json')
  await sh(`echo '{"bootstrap":[]}' > ${config}`)
  const m = await Mount.start(t, { dataDir, mountpoint: join(dir, 'mnt'), config })
  await until('empty volume reported', async () => (await disktro(['status', '--data-dir', dataDir, '--config', config])).code === 0, 20_000)
  const empty = await disktro(['status', '--data-dir', dataDir, '--config', config])
  t.match(empty.stdout, /^empty volume: nothing to replicate yet/, 'an empty volume says so')

  await sh(`head -c 100000 /dev/urandom > ${m.path('one')}`)
  const alone = await until('one machine reported', async () => {
    const r = await disktro(['status', '--data-dir', dataDir, '--config', config])
    return r.code === 1 ? r : false
  }, 20_000)
  t.match(alone.stdout, /this volume has 1 machine known and replicaCount is 3: add 2 with `disktro invite`/, alone.stdout.split('\n')[0])
  await m.stop()
  const after = await disktro(['status', '--data-dir', dataDir, '--config', config])
  t.equal(after.code, 2, 'daemon stopped: unknown, exit 2')
  t.match(after.stdout, /^unknown: no daemon running; last known \d+ s ago: 1 of 1 chunks below 3 copies/, after.stdout.split('\n')[0])
  void randomBytes
})

t.test('status --files lists every file of 50,000, streamed from the data dir, without a daemon', async t => {
  const dataDir = await tempDir(t)
  const node = await openNode(t, { dataDir })
  for (let d = 0; d < 50; d++) {
    node.vfs.mkdir(`/d${d}`, 0o755)
    for (let i = 0; i < 1000; i++) await node.vfs.release(node.vfs.create(`/d${d}/f${i}`, 0o644))
  }
  await node.close()
  const started = Date.now()
  const r = await disktro(['status', '--files', '--json', '--data-dir', dataDir], { timeoutMs: 300_000 })
  const report = JSON.parse(r.stdout)
  t.equal(report.files.length, 50_000, `50,000 files listed in ${Date.now() - started} ms`)
  t.equal(new Set(report.files.map((f: any) => f.path)).size, 50_000, 'each once')
  t.equal(r.code, 2, 'no daemon: exit 2')
  const limited = await disktro(['status', '--files', '--limit', '10', '--data-dir', dataDir])
  t.equal(limited.stdout.split('\nfiles\n')[1].trim().split('\n').length, 10, '--limit 10 lists 10')
})
