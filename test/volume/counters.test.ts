// The volume's totals are counters kept in each change's transaction
// (meta/lmdb-namespace.ts): after any workload, local or from a peer, they
// equal a walk of the tree, and status reads them in constant time.
import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { Mount, requireFuse, tempDir, sh, disktro, PASSWORD } from '../helpers/disktro.js'
import { startBootstrap, makeCluster, mountNode, statusJson, until } from '../helpers/cluster.js'
import { Volume } from '../../src/volume/volume.js'
import { volumeStats } from '../../src/volume/stats.js'
import { walkCounts } from '../../src/meta/count-walk.js'
import { encodeCounts } from '../../src/codec/counters-record.js'
import { ROOT_INO } from '../../src/meta/namespace.js'
import { renderStatus } from '../../src/cli/status-render.js'

const envTimeout = Number(process.env.TAP_TIMEOUT ?? '30')
if (envTimeout !== 0 && envTimeout < 300) t.setTimeout(300_000)

// Opens a stopped member's data dir and compares its counters with a walk.
async function countersMatchWalk (t: Test, dataDir: string, what: string): Promise<void> {
  const v = await Volume.open(dataDir, PASSWORD, { maxStoreBytes: 1 << 30, readOnly: true })
  try {
    const counted = v.full.ns.counters()
    const walked = walkCounts(v.store, v.full.keys.meta).counts
    t.same(counted, walked, `${what}: the counters equal a walk of the tree`)
    t.ok(walked.files > 0, `${what}: ${walked.files} files, ${walked.directories} directories, ${walked.logicalBytes} B logical, ${walked.referencedBytes} B referenced, ${walked.uniqueBytes} B unique`)
  } finally {
    await v.close()
  }
  const f = await disktro(['fsck', '--json', '--data-dir', dataDir])
  const report = JSON.parse(f.stdout)
  t.same(report.problems, [], `${what}: fsck finds nothing, counters included`)
  t.same(report.notes.filter((n: any) => n.kind === 'counters-absent'), [], `${what}: the counters are stored`)
}

// Creates, overwrites, truncates (a chunk two files share, too), hard
// links, unlinks, renames over, rm -rf.
const WORKLOAD = `
  mkdir -p a/b/c d
  for i in $(seq 1 40); do head -c $((i * 997)) /dev/urandom > a/f$i; done
  head -c 300000 /dev/urandom > big && cp big a/b/big-copy && cp big d/third
  truncate -s 1000 a/b/big-copy
  truncate -s 200000 a/f3
  head -c 5000 /dev/urandom > a/f4
  printf more >> a/f5
  ln a/f6 d/h6 && ln a/f7 d/h7 && rm a/f6 d/h7
  mv a/f8 a/f9 && mv d/third a/f10
  for i in $(seq 1 20); do head -c 2000 /dev/urandom > a/b/c/g$i; done
  rm -rf a/b
  mkdir e && mv a/f11 e/ && rmdir e 2>/dev/null || true
  sync
`

t.test('after a mixed workload through a mount, the counters equal a walk', async t => {
  if (!await requireFuse(t)) return
  const m = await Mount.start(t)
  await sh(`cd ${m.dir} && ${WORKLOAD}`)
  const live = JSON.parse((await disktro(['status', '--json', '--data-dir', m.dataDir])).stdout)
  t.match(live.eventLoop, { longestStallMs: Number, stallsOver50ms: Number, sinceSec: Number, lastMinute: { longestStallMs: Number, stallsOver50ms: Number }, busy: { longestStallMs: Number, stallsOver50ms: Number } }, 'status --json shows the event loop\'s stalls')
  t.match(renderStatus(live, false), /^event loop  longest stall \d+ ms, \d+ over 50 ms in \d+ s \(busy: \d+ ms, \d+\); last minute: \d+ ms, \d+ over 50 ms$/m, 'disktro status shows them in one line')
  t.equal((await m.stop()).code, 0, 'clean unmount')
  await countersMatchWalk(t, m.dataDir, 'mounted member')
  const v = await Volume.open(m.dataDir, PASSWORD, { maxStoreBytes: 1 << 30, readOnly: true })
  const { files, directories, logicalBytes, referencedBytes, uniqueBytes } = volumeStats(v)
  t.match(live.volume, { files, directories, logicalBytes, referencedBytes, uniqueBytes }, 'status of the running daemon showed the same totals')
  await v.close()
})

t.test('after kill -9 and the recovery at the next start, the counters still equal a walk', async t => {
  if (!await requireFuse(t)) return
  let m = await Mount.start(t)
  await sh(`cd ${m.dir} && ${WORKLOAD}`)
  await m.kill9()
  // a recovery that fixes reference counts counts the totals again: make one needed
  const v = await Volume.open(m.dataDir, PASSWORD, { maxStoreBytes: 1 << 30, readOnly: true })
  const [first] = [...v.store.refs.getRange({ limit: 1 })]
  const wrong = Buffer.from(first.value as Buffer)
  wrong.writeUInt32LE(wrong.readUInt32LE(0) + 2)
  v.store.txn(() => v.store.refs.putSync(first.key as Buffer, wrong))
  await v.close()
  m = await Mount.start(t, { dataDir: m.dataDir, mountpoint: m.dir })
  t.match(m.stdout + m.stderr, /recovered after unclean shutdown: [1-9]\d* reference counts fixed/)
  await sh(`cd ${m.dir} && head -c 3000 /dev/urandom > after-crash && rm -rf d`)
  t.equal((await m.stop()).code, 0)
  await countersMatchWalk(t, m.dataDir, 'after kill -9')
})

t.test('changes applied from a peer are counted too', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  const [a, b] = await makeCluster(t, bootstrap, ['full', 'full'], { replicaCount: 2 })
  const ma = await mountNode(t, a)
  const mb = await mountNode(t, b)
  await until('A and B see each other', async () => (await statusJson(a)).peers.some((p: any) => p.online), 60_000)
  await sh(`cd ${ma.dir} && ${WORKLOAD}`)
  await sh(`cd ${mb.dir} && mkdir -p fromb && head -c 7000 /dev/urandom > fromb/x && head -c 100 /dev/urandom > a/f12`)
  const sameOnBoth = async (): Promise<boolean> => {
    const [sa, sb] = [await statusJson(a), await statusJson(b)]
    return sa.volume.files === sb.volume.files && sa.volume.logicalBytes === sb.volume.logicalBytes &&
      sa.volume.directories === sb.volume.directories && (await sh(`cd ${mb.dir} && ls a | wc -l`)).trim() === (await sh(`cd ${ma.dir} && ls a | wc -l`)).trim()
  }
  await until('B shows what A wrote and A what B wrote', sameOnBoth, 90_000, 1000)
  t.equal((await mb.stop()).code, 0)
  t.equal((await ma.stop()).code, 0)
  await countersMatchWalk(t, b.dataDir, 'member B (A\'s changes applied as a peer\'s)')
  await countersMatchWalk(t, a.dataDir, 'member A')
})

// 100,000 files in 100 directories, written through the namespace directly
// (a mount would take minutes): status reads counters, not the tree.
t.test('status of a 100,000-file volume in constant time; an older volume is counted once at start', async t => {
  const dataDir = join(await tempDir(t), 'data')
  await Volume.create(dataDir, PASSWORD, 1 << 20)
  let v = await Volume.open(dataDir, PASSWORD, { maxStoreBytes: 4 << 30 })
  const ns = v.full.ns
  ns.initRoot(0, 0)
  const now = Date.now()
  const file = { mode: 0o100644, uid: 0, gid: 0, nlink: 1, rdev: 0, blocks: 1, atime: now, mtime: now, ctime: now }
  const DIRS = 100; const PER_DIR = 1000
  let logical = 0
  for (let d = 0; d < DIRS; d++) {
    ns.materialize(w => {
      const dir = ns.allocIno()
      w.putInode(dir, { ...file, mode: 0o040755, nlink: 2, size: 0, blocks: 0 })
      w.placeDirent(ROOT_INO, `d${d}`, dir)
      for (let i = 0; i < PER_DIR; i++) {
        const ino = ns.allocIno()
        const size = 1024 + ((d * PER_DIR + i) * 37) % 3072
        logical += size
        w.putInode(ino, { ...file, size })
        w.placeDirent(dir, `f${i}`, ino)
        w.replaceBlocks(ino, [{ index: 0, id: randomBytes(32), length: size }])
      }
    })
  }
  const t0 = performance.now()
  const stats = volumeStats(v)
  const ms = performance.now() - t0
  t.match(stats, { files: DIRS * PER_DIR, directories: DIRS + 1, logicalBytes: logical, referencedBytes: logical, uniqueBytes: logical })
  t.ok(ms < 500, `volume totals of ${DIRS * PER_DIR} files in ${ms.toFixed(2)} ms`)
  const w0 = performance.now()
  const walked = walkCounts(v.store, v.full.keys.meta).counts
  const walkMs = performance.now() - w0
  t.same(walked, ns.counters(), `a walk agrees (and takes ${walkMs.toFixed(0)} ms)`)
  t.comment(`totals: counters ${ms.toFixed(2)} ms, walk ${walkMs.toFixed(0)} ms at ${DIRS * PER_DIR} files`)

  // A volume from before the counters: its first start counts it.
  v.store.txn(() => v.store.sys.removeSync(Buffer.from('counters')))
  await v.close()
  v = await Volume.open(dataDir, PASSWORD, { maxStoreBytes: 4 << 30 })
  t.equal(v.full.ns.counters(), null, 'no counters stored')
  const logs: string[] = []
  await v.recoverIfUnclean(line => logs.push(line))
  t.same(v.full.ns.counters(), walked, 'counted at start')
  t.match(logs.join('\n'), /volume totals counted in \d+ ms/)
  await v.close()
})

t.test('fsck finds wrong counters; --repair sets them from the walk', async t => {
  if (!await requireFuse(t)) return
  const m = await Mount.start(t)
  const dataDir = m.dataDir
  await sh(`cd ${m.dir} && mkdir x && head -c 5000 /dev/urandom > x/y && echo z > z`)
  await m.stop()
  const v = await Volume.open(dataDir, PASSWORD, { maxStoreBytes: 1 << 30, readOnly: true })
  const right = v.full.ns.counters()!
  v.store.txn(() => v.store.sys.putSync(Buffer.from('counters'), encodeCounts({ ...right, files: right.files + 3 })))
  await v.close()
  const r = await disktro(['fsck', '--data-dir', dataDir])
  t.equal(r.code, 1, r.stdout)
  t.match(r.stdout, /^volume totals \(status\) that disagree with the tree: 1 \(--repair: fixed\)$/m)
  const fixed = await disktro(['fsck', '--repair', '--data-dir', dataDir])
  t.match(fixed.stdout, /^volume totals .*: 1: fixed$/m)
  await countersMatchWalk(t, dataDir, 'after --repair')
})
