// The patched addon's FUSE loop (scripts/fuse-patches/fuse-loop.c): threads
// serve until the mount ends. libfuse's own loop ended any thread that found
// more than 10 others idle and started one whenever none was, so each burst
// of read-ahead created and ended threads (244 in one cold 1 GiB read), and
// fuse-native kept an event-loop handle for every thread it ever saw.
import t from 'tap'
import { readdir } from 'node:fs/promises'
import { Mount, sh, requireFuse } from '../helpers/disktro.js'

const MIB = 1024 * 1024

async function tids (pid: number): Promise<string[]> {
  return await readdir(`/proc/${pid}/task`).catch(() => [])
}

t.test('cold reads of a large file start at most 64 FUSE threads, and none of them ends', async t => {
  if (!await requireFuse(t)) return
  const m = await Mount.start(t)
  const pid = m.child.pid!
  const file = m.path('big.bin')
  await sh(`head -c ${128 * MIB} /dev/urandom > '${file}'`)
  const before = new Set(await tids(pid))

  // Threads seen by sampling /proc while the reads run: libfuse's loop ended
  // its extra threads within milliseconds of a burst, so most, not all, of
  // its threads would show here; the addon's own count is exact (below).
  const seen = new Set<string>()
  let reading = true
  const sampler = (async () => {
    while (reading) {
      for (const id of await tids(pid)) seen.add(id)
      await new Promise(resolve => setTimeout(resolve, 2))
    }
  })()
  const coldRead = async (): Promise<void> => {
    await sh(`echo 3 > /proc/sys/vm/drop_caches; dd if='${file}' of=/dev/null bs=1M 2>/dev/null`)
  }
  try {
    await coldRead()
    const afterFirst = new Set(await tids(pid))
    await coldRead()
    await coldRead()
    const afterThird = new Set(await tids(pid))
    t.same([...afterFirst].filter(id => !afterThird.has(id)), [], 'no thread that served the first read has ended after the third')
  } finally {
    reading = false
    await sampler
  }
  const now = new Set(await tids(pid))
  t.same([...seen].filter(id => !before.has(id) && !now.has(id)), [], 'no thread seen during the reads has ended')
  const started = [...seen].filter(id => !before.has(id))
  // 64 FUSE threads, the two read workers and libuv's 4 (lmdb-js's prefetch) start with the first read.
  t.ok(started.length <= 70, `threads started during the reads: ${started.length} (at most 70)`)

  await m.stop()
  const logged = /FUSE threads started: (\d+)/.exec(m.stderr)
  t.ok(logged, 'the daemon logs how many FUSE threads it started')
  t.ok(Number(logged?.[1]) >= 2 && Number(logged?.[1]) <= 64, `started: ${logged?.[1]}`)
})
