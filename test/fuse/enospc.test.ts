// A full store: writers get ENOSPC, the daemon lives on, nothing written
// before is harmed, deleting makes room again, and the volume stays consistent.
import t from 'tap'
import { readFile, writeFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Mount, tempDir, sh, run, disktro, requireFuse } from '../helpers/disktro.js'

// Real mounts and node start-ups: allow for a loaded machine, past tap's 30 s default.
const envTimeout = Number(process.env.TAP_TIMEOUT ?? '30')
if (envTimeout !== 0 && envTimeout < 180) t.setTimeout(180_000)

const MiB = 1024 * 1024
const LIMIT = 64 * MiB
const RECORD_OVERHEAD = 2 + 24 + 16
const FRESH = 100 // MiB into the 128 MiB source

t.test('a full store answers ENOSPC and recovers room on delete', async t => {
  if (!await requireFuse(t)) return
  const base = await tempDir(t)
  const dataDir = join(base, 'data')
  const mnt = join(base, 'mnt')
  const config = join(base, 'config.yaml')
  await writeFile(config, 'maxStoreBytes: 64MiB\nreplicaCount: 1\n')
  const src = join(base, 'random')
  await sh(`head -c ${2 * LIMIT} /dev/urandom > '${src}'`)

  let m = await Mount.start(t, { dataDir, mountpoint: mnt, config })
  const before = [randomBytes(5 * MiB + 17), randomBytes(4000), randomBytes(12 * MiB)]
  for (const [i, data] of before.entries()) await writeFile(m.path(`before-${i}`), data)

  // twice the limit, incompressible: must stop with ENOSPC
  const big = await run('dd', [`if=${src}`, `of=${m.path('big')}`, 'bs=1M', 'conv=fsync', 'status=none'], { timeoutMs: 60_000 })
  t.not(big.code, 0, 'a write past maxStoreBytes fails')
  t.match(big.stderr, /No space left on device/, `with ENOSPC: ${big.stderr.trim()}`)
  t.ok(m.running, 'the daemon keeps running')
  t.match(m.stderr, /storage full/, 'and says why in its log')
  t.equal(await sh(`ls '${mnt}' | sort | tr '\\n' ' '`), 'before-0 before-1 before-2 big ', 'and keeps serving')

  // still full: another sizeable write fails as well
  // (from the far end of the source, which big never reached: nothing to dedupe against)
  const more = await run('dd', [`if=${src}`, `of=${m.path('more')}`, 'bs=1M', `skip=${FRESH}`, 'count=16', 'conv=fsync', 'status=none'], { timeoutMs: 30_000 })
  t.not(more.code, 0, 'while full, a 16 MiB write fails too')
  t.match(more.stderr, /No space left on device/, 'with ENOSPC')
  await sh(`rm -f '${m.path('more')}'`)

  for (const [i, data] of before.entries()) {
    t.ok((await readFile(m.path(`before-${i}`))).equals(data), `before-${i} is intact`)
  }

  // deleting the big file makes room: the same write now succeeds
  await sh(`rm '${m.path('big')}'`)
  const after = await run('dd', [`if=${src}`, `of=${m.path('after')}`, 'bs=1M', `skip=${FRESH}`, 'count=16', 'conv=fsync', 'status=none'], { timeoutMs: 30_000 })
  t.equal(after.code, 0, `after deleting, a 16 MiB write succeeds ${after.stderr.trim()}`)
  await sh(`cmp -n ${16 * MiB} -i ${FRESH * MiB}:0 '${src}' '${m.path('after')}'`)
  t.pass('and reads back')

  // consistent after a remount
  t.equal((await m.stop()).code, 0, 'stops cleanly')
  const st = await disktro(['status', '--json', '--data-dir', dataDir, '--config', config])
  t.equal(st.code, 2, `status without a daemon exits 2 (unknown) ${st.stderr.trim()}`)
  type Totals = { files: number, logicalBytes: number, uniqueBytes: number, storedBytes: number, chunks: number }
  const j = JSON.parse(st.stdout) as { volume?: Totals } & Totals
  const s = j.volume ?? j
  const want = before.reduce((n, b) => n + b.length, 0) + 16 * MiB
  t.match(s, { files: 4, logicalBytes: want }, 'status counts what is there')
  // stored bytes are the chunk table's pages (volume/stats.ts): at least every record; fsck tells a leak
  t.ok(s.storedBytes >= s.uniqueBytes + s.chunks * RECORD_OVERHEAD, 'the chunk table holds at least every record')
  const f = JSON.parse((await disktro(['fsck', '--json', '--data-dir', dataDir, '--config', config])).stdout)
  t.same(f.problems, [], 'no chunk leaked by the failed writes (fsck)')
  t.ok(s.storedBytes <= LIMIT, `stored bytes stay within maxStoreBytes (${s.storedBytes})`)
  const file = (await stat(join(dataDir, 'store', 'data.mdb'))).size
  t.ok(file <= LIMIT + 4 * MiB, `the store file stays within maxStoreBytes, give or take free-list slack (${file})`)

  m = await Mount.start(t, { dataDir, mountpoint: mnt, config })
  for (const [i, data] of before.entries()) {
    t.ok((await readFile(m.path(`before-${i}`))).equals(data), `before-${i} is intact after a remount`)
  }
  await sh(`cmp -n ${16 * MiB} -i ${FRESH * MiB}:0 '${src}' '${m.path('after')}'`)
  t.pass('after is intact after a remount')
  t.equal((await m.stop()).code, 0, 'stops cleanly')
})
