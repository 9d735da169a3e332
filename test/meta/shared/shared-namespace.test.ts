import t from 'tap'
import { randomBytes, createHash } from 'node:crypto'
import { writeFile, readFile, readdir, mkdir, readlink, stat, symlink, rename, unlink, chmod, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import { requireFuse, disktro, sleep, run, Mount } from '../../helpers/disktro.js'
import { startBootstrap, makeCluster, mountNode, serveNode, storedChunkIds, statusJson, until, nodeConfig, type ClusterNode } from '../../helpers/cluster.js'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

async function tryRead (p: string): Promise<Buffer | null> {
  try { return await readFile(p) } catch { return null }
}

async function names (dir: string): Promise<string[]> {
  try { return (await readdir(dir)).sort() } catch { return [] }
}

function percentile (xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil(p / 100 * s.length) - 1)]
}

// Three real mounts on loopback through a local bootstrap: one tree, edits
// from any member seen on the others, offline edits merged with conflict
// copies, and a fresh member that reads everything from its peers.
t.test('three mounts share one tree', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  const nodes = await makeCluster(t, bootstrap, ['full', 'full', 'full'])
  const [a, b, c] = nodes
  const ma = await mountNode(t, a)
  let mb = await mountNode(t, b)
  const mc = await mountNode(t, c)
  await until('every member sees the other two', async () => {
    for (const n of nodes) if ((await statusJson(n)).peers.filter((p: any) => p.online).length < 2) return false
    return true
  }, 60_000)

  // A tree written on A appears on B and C, contents byte for byte.
  const big = randomBytes(3 * 1024 * 1024 + 123)
  await mkdir(ma.path('docs/deep'), { recursive: true })
  await writeFile(ma.path('docs/deep/big.bin'), big)
  await writeFile(ma.path('docs/note.txt'), 'hello from A\n')
  await symlink('note.txt', ma.path('docs/link'))
  for (const m of [mb, mc]) {
    await until('B and C read A\'s files', async () => {
      const got = await tryRead(m.path('docs/deep/big.bin'))
      return got !== null && sha(got) === sha(big) && (await tryRead(m.path('docs/note.txt')))?.toString() === 'hello from A\n'
    }, 30_000)
    t.equal(await readlink(m.path('docs/link')), 'note.txt', 'symlink target arrives')
  }
  t.pass('a tree written on A reads back identical on B and C (chunks fetched on demand)')

  // Edits on B: rename, overwrite, delete; A and C follow.
  await rename(mb.path('docs/note.txt'), mb.path('docs/renamed.txt'))
  await writeFile(mb.path('docs/renamed.txt'), 'edited on B\n')
  await unlink(mb.path('docs/link'))
  for (const m of [ma, mc]) {
    await until('A and C see B\'s edits', async () => {
      const ls = await names(m.path('docs'))
      return ls.join(',') === 'deep,renamed.txt' && (await tryRead(m.path('docs/renamed.txt')))?.toString() === 'edited on B\n'
    }, 30_000)
  }
  t.pass('rename, overwrite and unlink on B reach A and C')

  // Mode and times travel too (chmod, utimens on one member). Directory
  // mtimes stay per member (each moves with the entries made there).
  await chmod(ma.path('docs/deep/big.bin'), 0o600)
  await chmod(ma.path('docs/deep'), 0o700)
  const when = new Date('2001-02-03T04:05:06Z')
  await utimes(ma.path('docs/deep/big.bin'), when, when)
  for (const m of [mb, mc]) {
    await until('chmod and utimens reach the others', async () => {
      const f = await stat(m.path('docs/deep/big.bin'))
      const d = await stat(m.path('docs/deep'))
      return (f.mode & 0o777) === 0o600 && f.mtimeMs === when.getTime() && (d.mode & 0o777) === 0o700
    }, 30_000)
  }
  t.pass('chmod and utimens on A reach B and C')

  // Convergence: a small file written on one member, polled on the other two.
  const times: number[] = []
  const mounts = [ma, mb, mc]
  for (let i = 0; i < 15; i++) {
    const w = mounts[i % 3]
    const others = mounts.filter(m => m !== w)
    const body = `round ${i}\n`
    const t0 = Date.now()
    await writeFile(w.path(`conv-${i}.txt`), body)
    await Promise.all(others.map(async m => {
      await until(`conv-${i} everywhere`, async () => (await tryRead(m.path(`conv-${i}.txt`)))?.toString() === body, 30_000, 20)
      times.push(Date.now() - t0)
    }))
  }
  const p50 = percentile(times, 50)
  const p99 = percentile(times, 99)
  t.comment(`convergence over loopback, ${times.length} samples: p50 ${p50} ms, p99 ${p99} ms`)
  t.ok(p99 < 5000, `p99 convergence ${p99} ms under 5 s`)

  // B goes offline (no network at all) and edits the file A edits too.
  await mb.stop()
  await mkdir(join(b.dataDir, '..', 'offline'))
  const offline = await nodeConfig(join(b.dataDir, '..', 'offline'), bootstrap, { bootstrap: [] })
  mb = await Mount.start(t, { dataDir: b.dataDir, mountpoint: join(b.dataDir, '..', 'mnt'), config: offline })
  await writeFile(mb.path('docs/renamed.txt'), 'offline edit on B\n')
  await writeFile(mb.path('made-offline.txt'), 'B was offline\n')
  await sleep(300)
  await writeFile(ma.path('docs/renamed.txt'), 'concurrent edit on A\n')
  await sleep(500)
  await mb.stop()
  mb = await mountNode(t, b)
  const expectConflict = async (m: Mount): Promise<boolean> => {
    const ls = await names(m.path('docs'))
    const copies = ls.filter(n => /^renamed\.conflict-[0-9a-f]{8}-\d+\.txt$/.test(n))
    if (copies.length !== 1 || !ls.includes('renamed.txt')) return false
    const main = (await tryRead(m.path('docs/renamed.txt')))?.toString()
    const copy = (await tryRead(m.path('docs', copies[0])))?.toString()
    const both = [main, copy].sort().join('|')
    return both === 'concurrent edit on A\n|offline edit on B\n' && (await tryRead(m.path('made-offline.txt')))?.toString() === 'B was offline\n'
  }
  for (const m of [ma, mb, mc]) await until('both versions of the concurrent edit on every member', () => expectConflict(m), 40_000)
  const views = await Promise.all([ma, mb, mc].map(async m => (await names(m.path('docs'))).join(',')))
  t.equal(new Set(views).size, 1, `every member shows the same docs/: ${views[0]}`)
  t.pass('an offline member\'s edits merge on reconnect; the concurrent edit is kept as a conflict copy')

  const s = await statusJson(a)
  t.type(s.namespace, 'object', 'status has a namespace section')
  t.ok(s.namespace.conflicts >= 1, 'status counts the conflict copy')
  t.ok(s.namespace.peers.length >= 1, 'status lists namespace sync per peer')

  // A fresh member joins and reads everything from its peers.
  const inv = await disktro(['invite', '--data-dir', a.dataDir])
  await mkdir(join(a.dataDir, '..', '..', 'n3'))
  const d: ClusterNode = { name: 'n3', dataDir: join(a.dataDir, '..', '..', 'n3', 'data'), config: await nodeConfig(join(a.dataDir, '..', '..', 'n3'), bootstrap) }
  t.equal((await disktro(['join', inv.stdout.trim(), '--data-dir', d.dataDir])).code, 0, 'fresh member joins')
  const md = await mountNode(t, d)
  await until('the fresh member shows the whole tree', async () => {
    const got = await tryRead(md.path('docs/deep/big.bin'))
    return got !== null && sha(got) === sha(big) && await expectConflict(md)
  }, 60_000)
  for (let i = 0; i < 15; i++) t.equal((await readFile(md.path(`conv-${i}.txt`))).toString(), `round ${i}\n`)
  t.equal((await stat(md.path('docs/deep/big.bin'))).size, big.length, 'sizes come across')
  t.pass('a fresh member reads every file from its peers')
  // Its status counts the chunks others wrote by asking who holds them.
  const sd = await until('the fresh member knows where every chunk is', async () => {
    const st = await statusJson(d)
    return st.replication.chunks > 0 && st.replication.lost === 0 && st.replication.underReplicated === 0 ? st : false
  }, 40_000)
  t.equal(sd.replication.atTarget, sd.replication.chunks, 'every chunk at target as the fresh member sees it')
  t.equal((await disktro(['status', '--data-dir', d.dataDir, '--config', d.config])).code, 0, 'its status exits 0')
})

// A storage-only member keeps and relays the sealed logs: a member catches
// up from it while the only writer is offline, and it learns no names.
t.test('catch up from a storage-only member while the writer is offline', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  const [a, s, b] = await makeCluster(t, bootstrap, ['full', 'storage', 'full'])
  const ma = await mountNode(t, a)
  const ss = await serveNode(t, s)
  const body = randomBytes(1024 * 1024 + 17)
  await mkdir(ma.path('quarterly-reports'))
  await writeFile(ma.path('quarterly-reports/unguessable-filename.bin'), body)
  await until('the storage member holds A\'s whole log and the chunks', async () => {
    const [sa, st] = await Promise.all([statusJson(a), statusJson(s)])
    const held = storedChunkIds(s.dataDir)
    const mine = [...storedChunkIds(a.dataDir)]
    return sa.namespace.records > 0 && st.namespace.records === sa.namespace.records && mine.length === 2 && mine.every(id => held.has(id))
  }, 30_000)
  await ma.stop()
  const mb = await mountNode(t, b)
  await until('B shows A\'s file, read through the storage member', async () => {
    const got = await tryRead(mb.path('quarterly-reports/unguessable-filename.bin'))
    return got !== null && sha(got) === sha(body)
  }, 40_000)
  t.pass('B caught up from the storage-only member alone')
  const grep = await run('grep', ['-r', '-a', '-l', '-e', 'unguessable-filename', '-e', 'quarterly-reports', s.dataDir])
  t.equal(grep.stdout, '', 'no name in the storage member\'s data dir')
  t.equal(grep.code, 1, 'grep found nothing')
  await ss.stop()
})
