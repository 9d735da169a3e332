// Close behind (on by default, DISKTRO_CLOSE_BEHIND=0 turns it off;
// src/fuse/close-behind.ts, scripts/fuse-patches/close-behind.c): the addon
// answers close(2) of a small file it created once a sealed copy is in the
// redo log. What a close acknowledged survives kill -9 through the log's
// replay, the log holds no plaintext, a frame never comes back over what its
// file got later, and with little room left closes fail with ENOSPC.
import t, { type Test } from 'tap'
import { mkdir, writeFile, readFile, truncate, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Mount, tempDir, sh, requireFuse, sleep } from '../helpers/disktro.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFrames, redoLogPath } from '../../src/fuse/close-behind.js'

const envTimeout = Number(process.env.TAP_TIMEOUT ?? '30')
if (envTimeout !== 0 && envTimeout < 180) t.setTimeout(180_000)

const ENV = {} // close behind is on by default
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

// A python script holding a file open in the mount, killed at teardown:
// `out()` is what it printed, `until(text)` waits (up to `tries` × 50 ms)
// for `text` in it.
function python (t: Test, script: string, args: string[]): { proc: ChildProcess, out: () => string, until: (text: string, tries?: number) => Promise<boolean> } {
  const proc = spawn('python3', ['-c', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { proc.kill('SIGKILL') })
  let out = ''
  proc.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  proc.stderr?.on('data', (d: Buffer) => { out += d.toString() })
  const until = async (text: string, tries = 200): Promise<boolean> => {
    for (let i = 0; i < tries && !out.includes(text); i++) await sleep(50)
    return out.includes(text)
  }
  return { proc, out: () => out, until }
}

// A test's directories. Mount's teardown removes the data dir's redo log
// (test/helpers/disktro.ts), which a kill -9 leaves in /dev/shm.
async function dirs (t: Test): Promise<{ base: string, dataDir: string, mountpoint: string }> {
  const base = await tempDir(t)
  return { base, dataDir: join(base, 'data'), mountpoint: join(base, 'mnt') }
}

// A tree of `files` and a mount with close behind.
async function mounted (t: Test, files: number): Promise<{ base: string, src: string, tar: string, dataDir: string, mountpoint: string, m: Mount }> {
  const { base, dataDir, mountpoint } = await dirs(t)
  const { src, tar } = await makeTree(base, files)
  const m = await Mount.start(t, { dataDir, mountpoint, env: ENV })
  return { base, src, tar, dataDir, mountpoint, m }
}

t.test('closes answered from the redo log survive kill -9', async t => {
  if (!await requireFuse(t)) return
  const { base, dataDir, mountpoint } = await dirs(t)
  const { src, tar } = await makeTree(base)
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
  const { base, dataDir } = await dirs(t)
  const { tar } = await makeTree(base)
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

t.test('the log is cut back while the daemon keeps up, also with a file held open, and stays correct', async t => {
  if (!await requireFuse(t)) return
  const files = 2400
  const { base, src, tar, dataDir, mountpoint, m } = await mounted(t, files)
  const body = Buffer.concat([Buffer.from(MARKER), randomBytes(5000)])
  await writeFile(join(base, 'held.src'), body)
  await mkdir(m.path('x'))
  const py = python(t, HOLD_OPEN, [m.path('x', 'held.bin'), join(base, 'held.src')])
  t.ok(await py.until('closed'), 'the dup was closed, the file is still open')
  await sh(`tar xf ${tar} -C ${m.path('x')}`)
  await sh(`diff -r ${src} ${m.path('x')} -x held.bin`)
  // Without cuts the log would hold every file (about 3.5 KB each); a held
  // handle kept it from being cut before 13affc0 (8.9 MB here).
  const logBytes = (await stat(redoLogPath(dataDir))).size
  t.ok(logBytes < files * 1500, `the log was cut back with the file open: ${logBytes} bytes after ${files} files`)
  await m.kill9()
  py.proc.kill('SIGKILL')
  const again = await Mount.start(t, { dataDir, mountpoint, env: ENV })
  t.same(await readFile(again.path('x', 'held.bin')), body, 'what the first close acknowledged came back from the log')
  await sh(`diff -r ${src} ${again.path('x')} -x held.bin`)
  t.pass('every file reads back after kill -9 and a remount')
})

// A descriptor closed while a dup of it stays open: its close wrote a frame,
// and what the file holds after it must win over that frame after kill -9.
// argv: scenario, path, a file of bytes A, a file of bytes B.
const AFTER_FIRST_CLOSE = `
import os, sys, time
what, path, a, b = sys.argv[1], sys.argv[2], open(sys.argv[3], 'rb').read(), open(sys.argv[4], 'rb').read()
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, a)
os.close(os.dup(fd))
if what == 'truncate':
    os.ftruncate(fd, 0)
    os.pwrite(fd, b, 0)
elif what == 'overwrite':
    os.pwrite(fd, b, 0)
elif what == 'large':
    os.pwrite(fd, b, 0)
elif what == 'chmod':
    os.chmod(path, 0o600)
elif what == 'unlink':
    os.unlink(path)
if what != 'unlink':
    os.fsync(fd)
print('done', flush=True)
time.sleep(600)
`

t.test('a frame is never replayed over what its file got after it: truncate, overwrite, large write, chmod, unlink', async t => {
  if (!await requireFuse(t)) return
  const { base, dataDir, mountpoint } = await dirs(t)
  const m = await Mount.start(t, { dataDir, mountpoint, env: ENV })
  // A directory just made: the addon answers the creates in it, so the files get copies.
  await mkdir(m.path('x'))
  const a = Buffer.concat([Buffer.from(MARKER), randomBytes(5000)])
  const b = randomBytes(3000)
  const large = randomBytes(200 * 1024)
  await writeFile(join(base, 'a'), a)
  await writeFile(join(base, 'b'), b)
  await writeFile(join(base, 'large'), large)
  const cases: Array<[string, Buffer]> = [['truncate', b], ['overwrite', b], ['large', large], ['chmod', b], ['unlink', b]]
  const procs = []
  for (const [what] of cases) { // one at a time: each create is answered by the addon
    const py = python(t, AFTER_FIRST_CLOSE, [what, m.path('x', `${what}.bin`), join(base, 'a'), join(base, what === 'large' ? 'large' : 'b')])
    await py.until('done')
    t.equal(py.out().trim(), 'done', `${what}: done with the file held open`)
    procs.push(py.proc)
  }
  await m.kill9()
  for (const py of procs) py.kill('SIGKILL')
  const again = await Mount.start(t, { dataDir, mountpoint, env: ENV })
  const replayed = /redo log: (\d+) frames read/.exec(again.stdout + again.stderr)
  // One frame per first close, and one more at the overwrite's fsync.
  t.ok(Number(replayed?.[1]) >= cases.length + 1, `the log held the first closes' frames: ${replayed?.[0]}`)

  const truncated = Buffer.from(b)
  t.same(await readFile(again.path('x', 'truncate.bin')), truncated, 'truncate: the fsync\'d bytes, not the frame\'s')
  const overwritten = Buffer.concat([b, a.subarray(b.length)])
  t.same(await readFile(again.path('x', 'overwrite.bin')), overwritten, 'overwrite: the fsync\'d bytes over the frame\'s')
  t.same(await readFile(again.path('x', 'large.bin')), large, 'large write: the fsync\'d bytes, not the frame\'s')
  t.equal((await stat(again.path('x', 'chmod.bin'))).mode & 0o777, 0o600, 'chmod: the mode set after the frame')
  t.equal(await stat(again.path('x', 'unlink.bin')).then(() => 'there', () => 'gone'), 'gone', 'unlink: the file stays deleted')
})

// The copy of a handle with a frame cannot grow (out of memory; forced here
// by DISKTRO_TEST_CLB_NO_GROW=1): the write goes on without it, and its
// frame is checkpointed first, so the fsync'd bytes win after kill -9.
// Without the checkpoint the frame's bytes come back over them.
t.test('a copy that cannot grow is checkpointed: the fsync\'d bytes win over its frame', async t => {
  if (!await requireFuse(t)) return
  const { base, dataDir, mountpoint } = await dirs(t)
  const env = { ...ENV, DISKTRO_TEST_CLB_NO_GROW: '1' }
  const m = await Mount.start(t, { dataDir, mountpoint, env })
  await mkdir(m.path('x'))
  const a = Buffer.concat([Buffer.from(MARKER), randomBytes(5000)])
  const b = randomBytes(20 * 1024) // past the copy's buffer, under 60 KiB: only the failed growth stops the copy
  await writeFile(join(base, 'a'), a)
  await writeFile(join(base, 'b'), b)
  const py = python(t, AFTER_FIRST_CLOSE, ['overwrite', m.path('x', 'grow.bin'), join(base, 'a'), join(base, 'b')])
  await py.until('done')
  t.equal(py.out().trim(), 'done', 'done with the file held open')
  await m.kill9()
  py.proc.kill('SIGKILL')
  const again = await Mount.start(t, { dataDir, mountpoint, env: ENV })
  t.match(again.stdout + again.stderr, /redo log: [1-9]\d* frames read/, 'the log held the first close\'s frame')
  t.same(await readFile(again.path('x', 'grow.bin')), b, 'the fsync\'d bytes, not the frame\'s')
})

// A checkpoint whose commit fails (the store is full): its frame stays
// unmarked, the only stored copy of what the first close acknowledged. The
// next fsync of the handle, once there is room, commits the file and marks
// the frame first, so after kill -9 the fsync'd bytes win over it.
// argv: path, a file of bytes A, of bytes B, a directory for go-ahead files.
const FAILED_CHECKPOINT = `
import os, sys, time
path, a, b, go = sys.argv[1], open(sys.argv[2], 'rb').read(), open(sys.argv[3], 'rb').read(), sys.argv[4]
def wait(name):
    while not os.path.exists(os.path.join(go, name)):
        time.sleep(0.05)
def retry(what, fn):
    for i in range(100):
        try:
            return fn()
        except OSError as e:
            print(what, 'failed', e.errno, flush=True)
            time.sleep(0.1)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, a)
os.close(os.dup(fd))
print('framed', flush=True)
wait('full')
try:
    os.ftruncate(fd, 0)
except OSError as e:
    print('truncate failed', e.errno, flush=True)
print('checkpointed', flush=True)
wait('room')
retry('write', lambda: os.pwrite(fd, b, 0))
retry('fsync', lambda: os.fsync(fd))
print('done', flush=True)
time.sleep(600)
`

t.test('a checkpoint that fails for want of room is done by the next fsync: the fsync\'d bytes win over its frame', async t => {
  if (!await requireFuse(t)) return
  const { base, dataDir, mountpoint } = await dirs(t)
  const config = join(base, 'config.yaml')
  await writeFile(config, 'maxStoreBytes: 96MiB\nreplicaCount: 1\n')
  const m = await Mount.start(t, { dataDir, mountpoint, config, env: ENV })
  await mkdir(m.path('x'))
  const a = Buffer.concat([Buffer.from(MARKER), randomBytes(55_000)]) // under the copy's 60 KiB, over the room left below
  const b = randomBytes(60_000) // longer than a: the file is b whether or not the truncate got through
  await writeFile(join(base, 'a'), a)
  await writeFile(join(base, 'b'), b)
  const py = python(t, FAILED_CHECKPOINT, [m.path('x', 'ckpt.bin'), join(base, 'a'), join(base, 'b'), base])
  const until = async (what: string): Promise<void> => {
    t.ok(await py.until(what, 400), `${what}: ${py.out().trim().split('\n').join('; ')}`)
  }
  await until('framed')
  // Full to the last few KiB: a large file, then smaller ones until each size fails.
  await sh(`cd '${m.path()}' && mkdir fill && (dd if=/dev/urandom of=fill/big bs=1M status=none 2>/dev/null || true) &&
    for i in $(seq 200); do head -c 65536 /dev/urandom > fill/a$i 2>/dev/null || break; done &&
    for i in $(seq 200); do head -c 8192 /dev/urandom > fill/b$i 2>/dev/null || break; done`)
  await writeFile(join(base, 'full'), '')
  await until('checkpointed')
  t.match(m.stderr, /checkpoint \/x\/ckpt\.bin \(answered already\): .*(ENOSPC|space|full)/i, 'the checkpoint\'s commit failed: the store was full')
  await sh(`rm -r '${m.path('fill')}'`)
  await writeFile(join(base, 'room'), '')
  await until('done')
  await m.kill9()
  py.proc.kill('SIGKILL')
  const again = await Mount.start(t, { dataDir, mountpoint, config, env: ENV })
  t.match(again.stdout + again.stderr, /redo log: [1-9]\d* frames read/, 'the log held the first close\'s frame')
  t.same(await readFile(again.path('x', 'ckpt.bin')), b, 'the fsync\'d bytes, not the frame\'s')
})

t.test('with little room left, closes go to JS and a close that does not fit fails with ENOSPC', async t => {
  if (!await requireFuse(t)) return
  const { base, dataDir, mountpoint } = await dirs(t)
  const config = join(base, 'config.yaml')
  await writeFile(config, 'maxStoreBytes: 96MiB\nreplicaCount: 1\n')
  // Held: a close the addon answered is stored only by the log's replay at
  // the next mount, as when JS lags far behind.
  const m = await Mount.start(t, { dataDir, mountpoint, config, env: { ...ENV, DISKTRO_CLOSE_BEHIND_HOLD: '1' } })
  await mkdir(m.path('x'))
  await sh(`head -c ${48 * 1024 * 1024} /dev/urandom > '${m.path('fill')}'`)
  for (let i = 0; i < 100 && !/close behind paused/.test(m.stderr); i++) await sleep(50)
  t.match(m.stderr, /close behind paused: \d+ MiB of room left/, 'close behind pauses below 64 MiB of room')
  // Small files until the store is full: every close that succeeded must be stored.
  const FILL = `
import os, sys
d, n = sys.argv[1], 0
try:
    while n < 5000:
        p = os.path.join(d, 'f%05d' % n)
        f = open(p, 'wb')
        f.write(os.urandom(40000))
        f.close()
        n += 1
except OSError as e:
    print('stopped', n, e.errno, flush=True)
    sys.exit(0)
print('all', n, flush=True)
`
  const out = await sh(`python3 -c "${FILL.replace(/"/g, '\\"')}" '${m.path('x')}'`)
  const [, how, count, errno] = /(stopped|all) (\d+)(?: (\d+))?/.exec(out) ?? []
  t.equal(how, 'stopped', `the writer stopped: ${out.trim()}`)
  t.equal(Number(errno), 28, 'with ENOSPC')
  const closed = Number(count)
  t.ok(closed > 100, `${closed} files were closed before that`)
  await m.kill9()
  const again = await Mount.start(t, { dataDir, mountpoint, config, env: ENV })
  const sizes = (await sh(`cd '${again.path('x')}' && for f in $(ls | sort | head -n ${closed}); do stat -c %s $f; done | sort | uniq -c`)).trim()
  t.equal(sizes, `${closed} 40000`, 'every file whose close succeeded is whole after kill -9')
  t.notMatch(again.stderr, /could not be replayed/, 'and nothing in the redo log failed to apply')
})
