// The mount's read-ahead settings (src/fuse/read-ahead.ts), read back from
// the kernel: the bdi's window and the FUSE connection's background limits.
import t from 'tap'
import { readdir, readFile, stat } from 'node:fs/promises'
import { Mount, sh, requireFuse } from '../helpers/disktro.js'
import { deviceNumbers } from '../../src/fuse/read-ahead.js'

const CONNECTIONS = '/sys/fs/fuse/connections'

// The fusectl filesystem shows each FUSE connection's limits; mount it for
// the test when the machine has not.
async function fusectl (t: { fail (msg: string): unknown, comment (msg: string): unknown, teardown (fn: () => unknown): unknown }): Promise<boolean> {
  if ((await readdir(CONNECTIONS).catch(() => [])).length > 0) return true
  try {
    await sh(`mount -t fusectl fusectl ${CONNECTIONS}`)
    t.teardown(() => sh(`umount ${CONNECTIONS}`).catch(() => {}))
    return true
  } catch (e) {
    if (process.env.CI) t.fail(`cannot mount fusectl: ${(e as Error).message}`)
    else t.comment(`skipped: cannot mount fusectl (${(e as Error).message})`)
    return false
  }
}

async function limits (m: Mount): Promise<{ background: number, congestion: number, readAheadKb: number }> {
  const { dev } = await stat(m.dir) // another process serves it: an async stat is fine
  const { major, minor } = deviceNumbers(dev)
  const num = async (p: string): Promise<number> => Number((await readFile(p, 'utf8')).trim())
  return {
    background: await num(`${CONNECTIONS}/${minor}/max_background`),
    congestion: await num(`${CONNECTIONS}/${minor}/congestion_threshold`),
    readAheadKb: await num(`/sys/class/bdi/${major}:${minor}/read_ahead_kb`)
  }
}

t.test('a mount lets a whole 4 MiB read-ahead window through: 64 background requests, congested at 48', async t => {
  if (!await requireFuse(t) || !await fusectl(t)) return
  const m = await Mount.start(t, { env: { DISKTRO_PRESTART_WORKERS: '1' } }) // the default, which the other tests turn off
  t.same(await limits(m), { background: 64, congestion: 48, readAheadKb: 4096 })
  // The first read does not wait for its workers either: the mount started
  // them (node.ts attach), though nothing was read here.
  await m.stop()
  t.match(m.stdout + m.stderr, /crypto workers: [1-9]\d* reading, 0 sealing/, 'the mount started its read workers before any read')
})

t.test('DISKTRO_FUSE_MAX_BACKGROUND=0 leaves the kernel its own limits (12, congested at 9)', async t => {
  if (!await requireFuse(t) || !await fusectl(t)) return
  const m = await Mount.start(t, { env: { DISKTRO_FUSE_MAX_BACKGROUND: '0' } })
  t.match(await limits(m), { background: 12, congestion: 9 })
})
