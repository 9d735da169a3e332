import t from 'tap'
import { randomBytes } from 'node:crypto'
import { writeFile, readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { open as openLmdb } from 'lmdb'
import { requireFuse, sh, disktro, tempDir, run } from '../helpers/disktro.js'
import { startBootstrap, makeCluster, mountNode, serveNode, storedChunkIds, statusJson, until } from '../helpers/cluster.js'
import { Volume } from '../../src/volume/volume.js'
import { PASSWORD } from '../helpers/disktro.js'

// Three real processes on loopback: a writer with a mount, a full member and
// a storage-only member serving headless.
t.test('every chunk reaches three machines; offline peers, catch-up and healing', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  const [a, b, c] = await makeCluster(t, bootstrap, ['full', 'full', 'storage'])
  const ma = await mountNode(t, a)
  let sb = await serveNode(t, b)
  await serveNode(t, c)

  await until('writer sees both peers online', async () => {
    const s = await statusJson(a)
    return s.peers.filter((p: any) => p.online).length === 2
  }, 60_000)

  // 50 MiB through the mount, kept locally to compare.
  const local = await tempDir(t)
  const data = randomBytes(50 * 1024 * 1024)
  await writeFile(join(local, 'big'), data)
  await sh(`cp ${join(local, 'big')} ${ma.path('big')}`)
  const writerChunks = storedChunkIds(a.dataDir)
  t.equal(writerChunks.size, 50, '50 chunks of 1 MiB on the writer')

  const started = Date.now()
  for (const n of [b, c]) {
    await until(`${n.name} holds every chunk`, () => {
      const have = storedChunkIds(n.dataDir)
      return [...writerChunks].every(id => have.has(id))
    }, 120_000)
  }
  t.pass(`every chunk on 3 machines after ${Date.now() - started} ms (asked each node's own store)`)
  const s = await statusJson(a)
  t.equal(s.replication.chunks, 50)
  t.equal(s.replication.atTarget, 50, 'status: all at target')
  t.equal(s.replication.underReplicated, 0)
  t.equal(s.replication.pendingBytes, 0)
  const st = await disktro(['status', '--data-dir', a.dataDir, '--config', a.config])
  t.equal(st.code, 0, 'status exits 0 when every chunk is at target')
  t.match(st.stdout, /safe: every chunk on 3 machines/)
  const files = JSON.parse((await disktro(['status', '--json', '--files', '--data-dir', a.dataDir, '--config', a.config])).stdout)
  t.match(files.files, [{ path: '/big', size: 50 * 1024 * 1024, chunks: 50, atTarget: 50, lost: 0 }], 'status --files: per-file replication')
  for (const p of s.peers) {
    t.ok(p.online, `peer ${p.id.slice(0, 8)} online`)
    t.type(p.rttMs, 'number')
    t.ok(p.chunks >= 50, 'peer holds the chunks')
  }

  // The storage-only member holds ciphertext only and no key that reads it.
  const marker = data.subarray(1000, 1032).toString('hex')
  const grep = await run('grep', ['-r', '-a', '-c', '-F', marker, c.dataDir])
  t.not(grep.code, 0, 'no plaintext on the storage-only member')
  const cv = await Volume.open(c.dataDir, PASSWORD, { maxStoreBytes: 1 << 30, readOnly: true })
  t.equal(cv.access, null, 'storage-only member has no data or metadata key')
  t.equal(cv.master, null, 'and no master key')
  t.equal(cv.file.role, 'storage')
  await cv.close()
  const mnt = await tempDir(t)
  const refused = await disktro(['mount', mnt, '--data-dir', c.dataDir, '--config', c.config], { timeoutMs: 30_000 })
  t.not(refused.code, 0, 'a storage-only member cannot mount')
  t.match(refused.stderr, /storage-only/)

  // Kill -9 a peer: shown offline within about three heartbeat intervals.
  await sb.stop('SIGKILL')
  const killedAt = Date.now()
  await until('b shown offline', async () => {
    const s2 = await statusJson(a)
    return s2.peers.some((p: any) => !p.online)
  }, 15_000, 100)
  t.ok(Date.now() - killedAt < 5000, `offline after ${Date.now() - killedAt} ms (heartbeat 500 ms)`)
  const down = await disktro(['status', '--data-dir', a.dataDir, '--config', a.config])
  t.equal(down.code, 0, 'chunks already on b still count: status stays 0')

  // New data while b is down is under target, then catches up when b returns.
  const more = randomBytes(5 * 1024 * 1024)
  await writeFile(join(local, 'more'), more)
  await sh(`cp ${join(local, 'more')} ${ma.path('more')}`)
  await until('writer reports the new chunks under target', async () => (await statusJson(a)).replication.underReplicated > 0, 15_000, 100)
  const behind = await disktro(['status', '--data-dir', a.dataDir, '--config', a.config])
  t.equal(behind.code, 1, 'status exits 1 while chunks are below target')
  sb = await serveNode(t, b)
  const all = storedChunkIds(a.dataDir)
  await until('b caught up', () => {
    const have = storedChunkIds(b.dataDir)
    return [...all].every(id => have.has(id))
  }, 60_000)
  t.pass('restarted peer caught up')

  // Corrupt a chunk on the writer: reads still return the right bytes and the
  // local copy is healed from a peer.
  await ma.stop()
  const victim = [...writerChunks][7]
  const env = openLmdb({ path: join(a.dataDir, 'store'), maxDbs: 12 })
  const chunks = env.openDB({ name: 'chunks', encoding: 'binary', keyEncoding: 'binary', compression: false })
  const id = Buffer.from(victim, 'hex')
  const bad = Buffer.from(chunks.getBinary(id)!)
  bad[bad.length - 100] ^= 0xff
  await chunks.put(id, bad)
  await env.close()
  const ma2 = await mountNode(t, a)
  await until('writer reconnected', async () => (await statusJson(a)).peers.filter((p: any) => p.online).length === 2, 60_000)
  const back = await readFile(ma2.path('big'))
  t.ok(back.equals(data), 'the file reads back byte-identical despite the corrupt local chunk')
  // The line is logged once the healed copy is committed, in the background.
  // The scrubber, which resumes its pass at start-up, may reach the chunk
  // before the read does and repair it first: either way a peer's copy.
  const healedLine = /healed chunk|scrub: repaired chunk/
  await until('the writer to log the healing', () => healedLine.test(ma2.stderr), 10_000, 50)
  t.match(ma2.stderr, healedLine)
  const env2 = openLmdb({ path: join(a.dataDir, 'store'), maxDbs: 12, readOnly: true })
  const healed = env2.openDB({ name: 'chunks', encoding: 'binary', keyEncoding: 'binary', compression: false }).getBinary(id)!
  t.notOk(Buffer.from(healed).equals(bad), 'the local copy was replaced')
  await env2.close()
  void readdir
})
