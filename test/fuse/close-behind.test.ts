// Close behind (opt-in, DISKTRO_CLOSE_BEHIND=1; src/fuse/close-behind.ts,
// scripts/fuse-patches/close-behind.c): the addon answers close(2) of a
// small file it created once a sealed copy is in the redo log. What a close
// acknowledged survives kill -9 through the log's replay, and the log holds
// no plaintext.
import t, { type Test } from 'tap'
import { mkdir, writeFile, readFile, truncate, stat, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Mount, tempDir, sh, requireFuse, sleep } from '../helpers/disktro.js'
import { spawn } from 'node:child_process'
import { readFrames, redoLogPath } from '../../src/fuse/close-behind.js'

const envTimeout = Number(process.env.TAP_TIMEOUT ?? '30')
if (envTimeout !== 0 && envTimeout < 180) t.setTimeout(180_000)

const ENV = { DISKTRO_CLOSE_BEHIND: '1' }
const FILES = 400
const MARKER = 'closebehindmarker'

// A tree of small files in 4 directories, and a tar of it.
async function makeTree (base: string, files = FILES): Promise<{ src: string, tar: string }> {
  const src = join(base, 'src')
  for (let d = 0; d < 4; d++) {
    await mkdir(join(src, `d${d}`), { recursive: true })
    for (let i = d; i < files; i += 4) {
      const body = Buffer.concat([Buffer.from(`${MARKER}-${i}\n`), randomBytes(500 + (i * 37) % 6000)])
      await writeFile(join(src, `d${d}`, `${MARKER}-name-${i}.bin`), body, { mode: 0o640 })
    }
  }
  const tar = join(base, 'tree.tar')
  await sh(`tar cf ${tar} -C ${src} .`)
  return { src, tar }
}

// A tree of `files`, a data dir whose redo log goes at teardown, and a mount with close behind.
async function mounted (t: Test, files: number): Promise<{ base: string, src: string, tar: string, dataDir: string, mountpoint: string, m: Mount }> {
  const base = await tempDir(t)
  const { src, tar } = await makeTree(base, files)
  const dataDir = join(base, 'data')
  const mountpoint = join(base, 'mnt')
  t.teardown(() => rm(redoLogPath(dataDir), { force: true }))
  const m = await Mount.start(t, { dataDir, mountpoint, env: ENV })
  return { base, src, tar, dataDir, mountpoint, m }
}

t.test('closes answered from the redo log survive kill -9', async t => {
  if (!await requireFuse(t)) return
  const base = await tempDir(t)
  const { src, tar } = await makeTree(base)
  const dataDir = join(base, 'data')
  const mountpoint = join(base, 'mnt')
  t.teardown(() => rm(redoLogPath(dataDir), { force: true }))
  // Held: the daemon commits none of the files it answered close for, so
  // after kill -9 every one of them must come back from the log.
  const m = await Mount.start(t, { dataDir, mountpoint, env: { ...ENV, DISKTRO_CLOSE_BEHIND_HOLD: '1' } })
  await mkdir(m.path('x'))
  await sh(`tar xf ${tar} -C ${m.path('x')}`)
  await m.kill9()
  const log = await readFile(redoLogPath(dataDir))
  t.ok(log.length > FILES * 500, `the redo log holds the files: ${log.length} bytes`)
  t.notOk(log.includes(Buffer.from(MARKER)), 'no file name or content in plaintext in the redo log')

  const again = await Mount.start(t, { dataDir, mountpoint, env: ENV })
  const replayed = /redo log: (\d+) frames read, (\d+) files applied/.exec(again.stdout + again.stderr)
  t.ok(replayed, 'the log was read at mount')
  // (A create the addon cannot answer, the first in a new directory, goes to JS and commits there.)
  t.ok(Number(replayed?.[1]) >= FILES - 10, `nearly every close was answered from the log: ${replayed?.[0]}`)
  t.equal(Number(replayed?.[2]), Number(replayed?.[1]), 'every file in the log was applied at mount')
  await sh(`diff -r ${src} ${again.path('x')}`)
  t.pass('every file reads back byte for byte')
  // tar's archive keeps whole seconds of mtime
  const list = (dir: string): Promise<string> => sh(`cd ${dir} && find . -type f -printf '%p %m %s %T@\\n' | awk '{ printf "%s %s %s %d\\n", $1, $2, $3, $4 }' | sort`)
  t.equal(await list(again.path('x')), await list(src), 'names, modes, sizes and mtimes as tar set them')
  t.equal((await stat(redoLogPath(dataDir))).size > 0, true, 'a new log was started')
  const r = await again.stop()
  t.equal(r.code, 0, 'clean exit')
  t.equal(await stat(redoLogPath(dataDir)).then(() => true, () => false), false, 'a clean unmount leaves nothing to replay')
  t.match(again.stdout + again.stderr, /close behind: \d+ closes answered from the redo log/, 'the unmount reports close behind')
})

t.test('a torn last frame is ignored, the frames before it are read', async t => {
  if (!await requireFuse(t)) return
  const base = await tempDir(t)
  const { tar } = await makeTree(base)
  const dataDir = join(base, 'data')
  t.teardown(() => rm(redoLogPath(dataDir), { force: true })) // left by the kill -9, in /dev/shm
  const m = await Mount.start(t, { dataDir, env: ENV })
  await mkdir(m.path('x'))
  await sh(`tar xf ${tar} -C ${m.path('x')}`)
  await m.kill9()
  const file = redoLogPath(dataDir)
  const { Volume } = await import('../../src/volume/volume.js')
  const { PASSWORD } = await import('../helpers/disktro.js')
  const v = await Volume.open(dataDir, PASSWORD, { maxStoreBytes: 1 << 30, readOnly: true })
  const meta = v.access!.keys.meta
  const whole = readFrames(await readFile(file), meta)
  await v.close()
  t.ok(whole.length >= FILES * 0.9, `${whole.length} frames for ${FILES} files`)
  const size = (await stat(file)).size
  await truncate(file, size - 7)
  const torn = readFrames(await readFile(file), meta)
  t.equal(torn.length, whole.length - 1, 'the torn frame is dropped, and only it')
  t.same(readFrames(await readFile(file), randomBytes(32)), [], 'under another key: nothing')
})

t.test('the log is cut back while the daemon keeps up, and stays correct', async t => {
  if (!await requireFuse(t)) return
  const files = 2400
  const { src, tar, dataDir, mountpoint, m } = await mounted(t, files)
  await mkdir(m.path('x'))
  await sh(`tar xf ${tar} -C ${m.path('x')}`)
  await sh(`diff -r ${src} ${m.path('x')}`)
  const logBytes = (await stat(redoLogPath(dataDir))).size
  const r = await m.stop()
  t.equal(r.code, 0, 'clean exit')
  const cut = /the log cut back (\d+) times/.exec(m.stdout + m.stderr)
  t.ok(cut !== null && Number(cut[1]) >= 1, `cut back while running: ${cut?.[0]}`)
  t.ok(logBytes < files * 3000, `the log held ${logBytes} bytes after ${files} files of about 3.5 KB`)
  const again = await Mount.start(t, { dataDir, mountpoint, env: ENV })
  await sh(`diff -r ${src} ${again.path('x')}`)
  t.pass('every file reads back after a remount')
})

// A descriptor closed while a dup of it stays open: that close is answered
// from the log, and the file stays open (never released, never committed).
const HOLD_OPEN = `
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, open(sys.argv[2], 'rb').read())
os.close(os.dup(fd))
print('closed', flush=True)
time.sleep(600)
`

t.test('a file held open keeps what its first close acknowledged, and the log is still cut back', async t => {
  if (!await requireFuse(t)) return
  const files = 2400
  const { base, src, tar, dataDir, mountpoint, m } = await mounted(t, files)
  const body = Buffer.concat([Buffer.from(MARKER), randomBytes(5000)])
  await writeFile(join(base, 'held.src'), body)
  await mkdir(m.path('x'))
  const py = spawn('python3', ['-c', HOLD_OPEN, m.path('x', 'held.bin'), join(base, 'held.src')], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { py.kill('SIGKILL') })
  let out = ''
  py.stdout.on('data', (d: Buffer) => { out += d.toString() })
  for (let i = 0; i < 200 && !out.includes('closed'); i++) await sleep(50)
  t.ok(out.includes('closed'), 'the dup was closed, the file is still open')
  await sh(`tar xf ${tar} -C ${m.path('x')}`)
  await sh(`diff -r ${src} ${m.path('x')} -x held.bin`)
  const logBytes = (await stat(redoLogPath(dataDir))).size
  t.ok(logBytes < files * 1500, `the log was cut back with the file open: ${logBytes} bytes after ${files} files`)
  await m.kill9()
  py.kill('SIGKILL')
  const again = await Mount.start(t, { dataDir, mountpoint, env: ENV })
  t.same(await readFile(again.path('x', 'held.bin')), body, 'what the first close acknowledged came back from the log')
})
