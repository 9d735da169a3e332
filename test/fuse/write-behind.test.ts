// Write-behind (src/fuse/write-behind.ts, scripts/build-fuse.cjs (d)) through
// a real mount: queued writes must not starve other operations, and what a
// write stream acknowledged reads back whole.
import t from 'tap'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { Mount, tempDir, sh, requireFuse } from '../helpers/disktro.js'
import { writeBehindBinding, loadFuse } from '../../src/fuse/native.js'

const envTimeout = Number(process.env.TAP_TIMEOUT ?? '30')
if (envTimeout !== 0 && envTimeout < 180) t.setTimeout(180_000)

t.test('the patched addon offers write-behind', async t => {
  if (!await requireFuse(t)) return
  loadFuse()
  t.ok(writeBehindBinding(), 'npm install built the addon with write-behind (scripts/build-fuse.cjs)')
})

// Every other operation waits until the queue is empty: a stat during long
// copies must still be answered long before they end. (New writes also wait
// behind a waiting operation, so a queue that never empties cannot starve
// it; on this machine the queue empties often enough that this test passes
// without that rule too, so it checks the behaviour, not that rule.)
t.test('stat answers while write streams keep the queue full', async t => {
  if (!await requireFuse(t)) return
  const m = await Mount.start(t)
  const src = join(await tempDir(t, 'disktro-wb-src-'), 'src')
  await sh(`head -c ${256 * 1024 * 1024} /dev/urandom > '${src}'`)
  // Three writers at once keep the queue busy.
  const writers = [0, 1, 2].map(i => {
    const dd = spawn('dd', [`if=${src}`, `of=${m.path(`big-${i}`)}`, 'bs=64K', 'conv=fsync', 'status=none'], { stdio: 'ignore' })
    t.teardown(() => { if (dd.exitCode === null) dd.kill('SIGKILL') })
    return new Promise<number | null>(resolve => dd.on('exit', code => resolve(code)))
  })
  let finished = 0
  for (const w of writers) void w.then(() => { finished++ })
  await new Promise(resolve => setTimeout(resolve, 500))
  const statted = await sh(`stat -c %s '${m.path('big-0')}' && ls -l '${m.path('')}' > /dev/null && echo ok`)
  t.match(statted, /ok/, 'stat and ls -l answered')
  t.equal(finished, 0, 'before any copy finished')
  t.same(await Promise.all(writers), [0, 0, 0], 'the copies completed')
  for (const i of [0, 1, 2]) await sh(`cmp '${src}' '${m.path(`big-${i}`)}'`)
  t.pass('and read back identical')
})

// Creates the addon answers itself (scripts/build-fuse.cjs (i)) from many
// callers at once: the event loop may apply a queued create before the FUSE
// thread that queued it has finished answering, so that thread must not read
// the queued item again (it did: the handle it answered was, now and then,
// whatever the freed memory held, and the file's writes failed with EBADF;
// parallel tar x runs lost a file in about one run of three). Six tar x of
// 1,500 small files each into one mount at once, twice; every file must
// read back with its content.
t.test('small files created by many writers at once all read back', async t => {
  if (!await requireFuse(t)) return
  const m = await Mount.start(t)
  const src = await tempDir(t, 'disktro-wb-tar-')
  await sh(`cd '${src}' && mkdir t && for i in $(seq 1 1000); do printf 'file %s\\n' $i > t/f$i; done && tar cf t.tar -C t . && tar xf t.tar -C t`)
  for (const round of [1, 2]) {
    const writers = 6
    const failed = await sh(Array.from({ length: writers }, (_, w) => `mkdir '${m.path(`r${round}w${w}`)}' && tar xf '${src}/t.tar' -C '${m.path(`r${round}w${w}`)}' &`).join('\n') +
      '\nfails=0; for j in $(jobs -p); do wait $j || fails=$((fails+1)); done; echo $fails')
    t.equal(failed.trim(), '0', `round ${round}: no tar x saw a write or close fail`)
    const differ = await sh(`for w in $(seq 0 ${writers - 1}); do diff -rq '${src}/t' '${m.dir}/r${round}w'$w > /dev/null || echo w$w; done`)
    t.equal(differ, '', `round ${round}: every tree reads back as extracted`)
  }
})

// 1 MiB WRITE requests (scripts/build-fuse.cjs (o)): the INIT reply raises
// max_write and the FUSE loop's buffers hold such a write. Writes at odd
// offsets, across blocks and over earlier data read back after a remount;
// the write-behind line counts the requests. With libfuse's 128 KiB
// (DISKTRO_FUSE_MAX_WRITE_KIB=128, tried by hand) the same writes took 308
// requests, the largest 128 KiB. (Only 1024 here: the suite's time.)
for (const kib of [1024]) {
  t.test(`writes of up to ${kib} KiB per request read back byte for byte`, async t => {
    if (!await requireFuse(t)) return
    const dir = await tempDir(t, 'disktro-wsize-')
    const ref = join(dir, 'ref')
    const dataDir = join(dir, 'data')
    const env = kib === 1024 ? {} : { DISKTRO_FUSE_MAX_WRITE_KIB: String(kib) }
    const m = await Mount.start(t, { dataDir, env })
    const write = async (target: string): Promise<void> => {
      await sh(`dd if='${join(dir, 'src')}' of='${target}' bs=1M conv=fsync status=none &&
        dd if='${join(dir, 'src')}' of='${target}' bs=1M count=3 iflag=skip_bytes skip=7 oflag=seek_bytes seek=${300 * 1024 + 5} conv=notrunc,fsync status=none &&
        dd if='${join(dir, 'src')}' of='${target}' bs=3M count=1 oflag=seek_bytes seek=${40 * 1024 * 1024 - 1000} conv=notrunc status=none`)
    }
    await sh(`head -c ${32 * 1024 * 1024} /dev/urandom > '${join(dir, 'src')}'`)
    await write(ref)
    await write(m.path('f'))
    await m.stop()
    const log = m.stdout + m.stderr
    const stats = /write-behind: (\d+) writes queued, the largest (\d+) KiB/.exec(log)
    t.ok(stats, 'the daemon counts the writes it queued')
    const [writes, largest] = [Number(stats?.[1]), Number(stats?.[2])]
    t.match(log, new RegExp(`FUSE writes of up to ${kib} KiB`), `the kernel was asked for ${kib} KiB writes`)
    t.equal(largest, kib, `the largest write was ${kib} KiB`)
    // 32 + 3 + 3 MiB: 38 requests of 1 MiB (a few more at unaligned edges), 304 of 128 KiB
    const most = kib === 1024 ? 48 : 400
    const least = kib === 1024 ? 38 : 304
    t.ok(writes >= least && writes <= most, `${writes} write requests for 38 MiB`)
    const again = await Mount.start(t, { dataDir, env })
    const [a, b] = await Promise.all([sh(`sha256sum < '${ref}'`), sh(`sha256sum < '${again.path('f')}'`)])
    t.equal(b, a, 'the file reads back byte for byte after a remount')
    t.equal((await sh(`stat -c %s '${again.path('f')}'`)).trim(), String(40 * 1024 * 1024 - 1000 + 3 * 1024 * 1024), 'with its size')
  })
}
