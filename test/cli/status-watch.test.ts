import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { requireFuse, Mount, disktro } from '../helpers/disktro.js'
import { spawnDisktro } from '../helpers/cluster.js'

// A node alone cannot reach three copies: `status --watch` keeps refreshing
// with a progress bar while chunks are below target.
t.test('status --watch refreshes with a progress bar while replication is behind', async t => {
  if (!await requireFuse(t)) return
  const m = await Mount.start(t)
  await writeFile(m.path('f.bin'), randomBytes(3 * 1024 * 1024))
  const watch = spawnDisktro(t, ['status', '--watch', '--data-dir', m.dataDir])
  await watch.waitFor(/(\x1b\[2J\x1b\[H[^]*){3}/, 30_000)
  await watch.stop('SIGINT')
  const frames = watch.stdout.split('\x1b[2J\x1b[H').filter(f => f.trim() !== '')
  t.ok(frames.length >= 3, `${frames.length} frames, each after clearing the screen`)
  for (const f of frames.slice(0, 3)) {
    t.match(f, /^at risk: 3 of 3 chunks below 3 copies: this volume has 1 machine known and replicaCount is 3: add 2 with `disktro invite`/, 'says what is behind, and what to do')
    t.match(f, /\[\.{40}\] 0\.0%/, 'shows the progress bar')
  }
  t.equal((await m.stop()).code, 0)
  const after = await disktro(['status', '--data-dir', m.dataDir])
  t.match(after.stdout, /^unknown: no daemon running; last known \d+ s ago: 3 of 3 chunks below 3 copies/, 'with the daemon stopped, it says so and shows the last count')
  t.equal(after.code, 2, 'exit 2: unknown')
})
