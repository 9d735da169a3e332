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
