// `disktro unmount` (or fusermount -u) of a live mount: the daemon notices
// its FUSE loop ended and stops cleanly, instead of holding the data dir.
import t from 'tap'
import { spawn } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { Mount, disktro, requireFuse, sleep, sh } from '../helpers/disktro.js'
import { isMounted } from '../../src/fuse/unmount.js'

const envTimeout = Number(process.env.TAP_TIMEOUT ?? '30')
if (envTimeout !== 0 && envTimeout < 180) t.setTimeout(180_000)

t.test('disktro unmount stops the daemon of a live mount, which exits 0 with everything written kept', async t => {
  if (!await requireFuse(t)) return
  const m = await Mount.start(t)
  await writeFile(m.path('kept.txt'), 'written before the unmount\n')
  await sh(`head -c 3000000 /dev/urandom > '${m.path('big.bin')}'`)
  const before = await readFile(m.path('big.bin'))
  const u = await disktro(['unmount', m.dir])
  t.equal(u.code, 0, `disktro unmount exits 0 ${u.stderr.trim()}`)
  const status = await m.exit(30_000)
  t.same(status, { code: 0, signal: null }, 'the daemon exits by itself, cleanly')
  t.match(m.stderr, /was unmounted/, 'and says why')
  t.notOk(await isMounted(m.dir), 'nothing is left mounted')

  // The data dir is free again: a new daemon mounts it and reads everything back.
  const again = await Mount.start(t, { dataDir: m.dataDir, mountpoint: m.dir })
  t.equal(await readFile(again.path('kept.txt'), 'utf8'), 'written before the unmount\n')
  t.ok((await readFile(again.path('big.bin'))).equals(before), 'the 3 MB file reads back byte for byte')
  t.same(await again.stop(), { code: 0, signal: null })
})

t.test('after a lazy unmount the daemon serves the files still open, then stops', async t => {
  if (!await requireFuse(t)) return
  const m = await Mount.start(t)
  await writeFile(m.path('held.txt'), 'still readable\n')
  // A reader that opens the file, waits, then reads through the open descriptor.
  const reader = spawn('sh', ['-c', `exec 3<'${m.path('held.txt')}'; echo opened; sleep 3; cat <&3`], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  reader.stdout.on('data', (d: Buffer) => { out += d.toString() })
  const readerDone = new Promise<number | null>(resolve => reader.on('exit', code => resolve(code)))
  t.teardown(() => { reader.kill('SIGKILL') })
  for (const deadline = Date.now() + 20_000; !out.includes('opened') && Date.now() < deadline;) await sleep(20)
  if (!t.ok(out.includes('opened'), 'the reader opened the file')) return
  await sh(`fusermount -uz '${m.dir}' 2>/dev/null || umount -l '${m.dir}'`)
  await sleep(1000)
  t.ok(m.running, 'the daemon keeps running while a file of the detached mount is open')
  t.equal(await readerDone, 0, 'the reader finishes')
  t.equal(out, 'opened\nstill readable\n', 'and read the file through the open descriptor')
  t.same(await m.exit(30_000), { code: 0, signal: null }, 'then the daemon exits 0')
})
