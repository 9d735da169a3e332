// Durability under kill -9: what was acknowledged by close(2) or fsync(2)
// survives the daemon dying mid-copy, and the volume remounts consistent.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, readFile, writeFile, stat, open as openFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Mount, tempDir, sh, run, disktro, requireFuse, sleep } from '../helpers/disktro.js'
import { isMounted } from '../../src/fuse/unmount.js'

// Real mounts and node start-ups: allow for a loaded machine, past tap's 30 s default.
const envTimeout = Number(process.env.TAP_TIMEOUT ?? '30')
if (envTimeout !== 0 && envTimeout < 180) t.setTimeout(180_000)

const MiB = 1024 * 1024
const CHUNK = MiB // default chunkSize
const RECORD_OVERHEAD = 2 + 24 + 16 // chunk header + XChaCha nonce + Poly1305 tag
const BIG = 384 * MiB
const KILL_AT = 64 * MiB

interface Status { files: number, logicalBytes: number, uniqueBytes: number, storedBytes: number, chunks: number }

// Without a daemon, status shows the volume from the data dir and says the
// copies are unknown (exit 2): nothing runs to vouch for them.
async function status (t: Test, dataDir: string, config: string): Promise<Status> {
  const r = await disktro(['status', '--json', '--data-dir', dataDir, '--config', config])
  t.equal(r.code, 2, `status without a daemon exits 2 (unknown) ${r.stderr.trim()}`)
  const j = JSON.parse(r.stdout) as { volume?: Status } & Status
  return j.volume ?? j // volume totals sit under "volume" in the newer report
}

async function singleNodeConfig (base: string): Promise<string> {
  const config = join(base, 'config.yaml')
  await writeFile(config, 'replicaCount: 1\n')
  return config
}

// Status's stored bytes are the chunk table's LMDB pages (volume/stats.ts):
// at least every record (its block plus a fixed overhead: the data is random,
// so nothing compresses or dedupes). fsck walks the store: no chunk nothing
// references (leaked), no referenced chunk missing. The daemon is stopped.
async function checkChunkAccounting (t: Test, s: Status, dataDir: string, config: string, what: string): Promise<void> {
  t.ok(s.storedBytes >= s.uniqueBytes + s.chunks * RECORD_OVERHEAD, `${what}: the chunk table holds at least every record`)
  const f = await disktro(['fsck', '--json', '--data-dir', dataDir, '--config', config])
  const r = JSON.parse(f.stdout)
  t.same({ problems: r.problems, remote: r.notes.filter((n: any) => n.kind === 'chunk-remote') }, { problems: [], remote: [] }, `${what}: every stored chunk is referenced and every reference is stored`)
}

function exitOf (child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  return new Promise(resolve => child.once('exit', code => resolve(code)))
}

async function sizeOf (path: string): Promise<number> {
  return await stat(path).then(s => s.size, () => 0)
}

// Writes, fsyncs and prints "synced", then keeps the file open (never closes it).
const FSYNC_AND_HOLD = `
import os, sys, time
src, dst = sys.argv[1], sys.argv[2]
data = open(src, 'rb').read()
fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, data)
os.fsync(fd)
print('synced', flush=True)
time.sleep(600)
`

// Overwrites bytes in the middle of an existing file, fsyncs, closes.
const PWRITE_FSYNC = `
import os, sys
dst, off, src = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = open(src, 'rb').read()
fd = os.open(dst, os.O_WRONLY)
os.pwrite(fd, data, off)
os.fsync(fd)
os.close(fd)
`

t.test('data acknowledged by close or fsync survives kill -9 mid-copy', async t => {
  if (!await requireFuse(t)) return
  const base = await tempDir(t)
  const dataDir = join(base, 'data')
  const mnt = join(base, 'mnt')
  const ref = join(base, 'ref')
  await mkdir(ref)
  const config = await singleNodeConfig(base)
  const src = join(base, 'big.src')
  const makeSrc = sh(`head -c ${BIG} /dev/urandom > '${src}'`)

  let m = await Mount.start(t, { dataDir, mountpoint: mnt })
  const expected: string[] = [] // paths relative to the mount, reference copy in ref/ under the same name with / -> _

  // closed with close(2): sizes around block boundaries, a nested directory
  const sizes = [0, 1, 4095, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12345]
  await mkdir(m.path('dir', 'sub'), { recursive: true })
  for (const [i, n] of sizes.entries()) {
    const rel = i % 2 ? `dir/sub/closed-${i}` : `closed-${i}`
    const data = randomBytes(n)
    await writeFile(join(ref, rel.replaceAll('/', '_')), data)
    await writeFile(m.path(rel), data)
    expected.push(rel)
  }
  // renamed and deleted after close: the rename sticks, the deleted file stays gone
  await writeFile(m.path('to-rename'), 'x')
  await sh(`mv '${m.path('closed-0')}' '${m.path('renamed-0')}' && rm '${m.path('to-rename')}'`)
  expected[0] = 'renamed-0'
  await sh(`mv '${join(ref, 'closed-0')}' '${join(ref, 'renamed-0')}'`)

  // fsync'd by dd conv=fsync
  await sh(`head -c ${2 * CHUNK + 777} /dev/urandom > '${join(ref, 'dd-fsync')}' && dd if='${join(ref, 'dd-fsync')}' of='${m.path('dd-fsync')}' bs=64k conv=fsync status=none`)
  expected.push('dd-fsync')

  // an in-place overwrite across a block boundary, fsync'd by python
  const patch = randomBytes(5000)
  await writeFile(join(base, 'patch'), patch)
  const patchAt = CHUNK - 2000
  const py = await run('python3', ['-c', PWRITE_FSYNC, m.path('closed-6'), String(patchAt), join(base, 'patch')], { timeoutMs: 30_000 })
  t.equal(py.code, 0, `pwrite + fsync succeeds ${py.stderr}`)
  const ref6 = await readFile(join(ref, 'closed-6'))
  patch.copy(ref6, patchAt)
  await writeFile(join(ref, 'closed-6'), ref6)

  // fsync'd but never closed: the writer still holds it open at the kill
  await sh(`head -c ${CHUNK + CHUNK / 2 + 3} /dev/urandom > '${join(ref, 'held-open')}'`)
  const holder = spawn('python3', ['-c', FSYNC_AND_HOLD, join(ref, 'held-open'), m.path('held-open')], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { holder.kill('SIGKILL') })
  await new Promise<void>((resolve, reject) => {
    let out = ''
    holder.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('synced')) resolve() })
    holder.once('exit', code => reject(new Error(`fsync writer exited ${code}`)))
  })
  expected.push('held-open')

  // a large copy, killed in the middle
  await makeSrc
  const cp = spawn('cp', [src, m.path('big')], { stdio: 'ignore' })
  t.teardown(() => { cp.kill('SIGKILL') })
  const cpDone = exitOf(cp)
  let copied = 0
  while ((copied = await sizeOf(m.path('big'))) < KILL_AT && cp.exitCode === null) await sleep(20)
  t.equal(cp.exitCode, null, `the copy is still running at the kill (${copied} bytes in)`)
  await m.kill9()
  t.not(await cpDone, 0, 'the interrupted copy fails')
  t.notOk(await isMounted(mnt), 'the stale mount is cleared')
  holder.kill('SIGKILL')
  await exitOf(holder)

  m = await Mount.start(t, { dataDir, mountpoint: mnt })
  t.match(m.stderr, /recovered after unclean shutdown/, 'the remount runs recovery')
  for (const rel of expected) {
    const want = await readFile(join(ref, rel.replaceAll('/', '_')))
    const got = await readFile(m.path(rel))
    t.ok(got.equals(want), `${rel} (${want.length} bytes) survives byte for byte`)
  }
  await t.rejects(stat(m.path('to-rename')), { code: 'ENOENT' }, 'a file deleted before the crash stays deleted')

  // The interrupted file: short or missing, but readable; every block is the
  // source's or a hole, never garbage.
  const bigSize = await sizeOf(m.path('big'))
  t.ok(bigSize <= BIG, `the partial copy is not longer than its source (${bigSize} bytes)`)
  if (bigSize > 0) {
    await sh(`cat '${m.path('big')}' > /dev/null`)
    const fh = await openFile(m.path('big'), 'r')
    const sfh = await openFile(src, 'r')
    let bad = 0
    let fromSource = 0
    try {
      const a = Buffer.alloc(CHUNK); const b = Buffer.alloc(CHUNK)
      for (let off = 0; off < bigSize; off += CHUNK) {
        const { bytesRead } = await fh.read(a, 0, CHUNK, off)
        await sfh.read(b, 0, CHUNK, off)
        const x = a.subarray(0, bytesRead)
        if (x.equals(b.subarray(0, bytesRead))) fromSource++
        else if (!x.every(v => v === 0)) bad++
      }
    } finally {
      await fh.close()
      await sfh.close()
    }
    t.equal(bad, 0, `each block of the partial copy is the source's or a hole (${fromSource} from source)`)
  }

  t.equal((await m.stop()).code, 0, 'the remounted daemon stops cleanly')
  let s = await status(t, dataDir, config)
  t.equal(s.files, expected.length + (bigSize > 0 ? 1 : 0), 'status counts the surviving files')
  const refBytes = (await Promise.all(expected.map(rel => sizeOf(join(ref, rel.replaceAll('/', '_')))))).reduce((x, y) => x + y, 0)
  t.equal(s.logicalBytes, refBytes + bigSize, 'status logical bytes match the files')
  await checkChunkAccounting(t, s, dataDir, config, 'after the crash')

  // No leaked space left forever: delete everything, remount, nothing stored.
  m = await Mount.start(t, { dataDir, mountpoint: mnt })
  await sh(`rm -rf '${mnt}'/*`)
  t.equal((await m.stop()).code, 0, 'stops cleanly after deleting everything')
  m = await Mount.start(t, { dataDir, mountpoint: mnt })
  t.equal((await m.stop()).code, 0, 'remounts and stops cleanly')
  s = await status(t, dataDir, config)
  t.match(s, { files: 0, logicalBytes: 0, chunks: 0, storedBytes: 0 }, 'after deleting everything no chunk is left')
})

t.test('a second kill -9: disktro unmount clears the stale mount, remount works', async t => {
  if (!await requireFuse(t)) return
  const base = await tempDir(t)
  const dataDir = join(base, 'data')
  const mnt = join(base, 'mnt')
  const config = await singleNodeConfig(base)
  const a = randomBytes(CHUNK + 99)
  const b = randomBytes(2 * CHUNK)

  for (let cycle = 1; cycle <= 2; cycle++) {
    const m = await Mount.start(t, { dataDir, mountpoint: mnt })
    if (cycle === 2) t.match(m.stderr, /recovered after unclean shutdown/, 'recovery runs after the first kill')
    await writeFile(m.path(`a${cycle}`), a)
    await writeFile(join(base, 'b'), b)
    await sh(`dd if='${join(base, 'b')}' of='${m.path(`b${cycle}`)}' bs=1M conv=fsync status=none`)

    // kill -9 without the harness' clean-up: the mount is left stale
    m.child.kill('SIGKILL')
    await exitOf(m.child)
    t.ok(await isMounted(mnt), `cycle ${cycle}: the dead daemon leaves a stale mount`)
    const again = await disktro(['mount', mnt, '--data-dir', dataDir], { timeoutMs: 20_000 })
    t.not(again.code, 0, 'mounting over the stale mount is refused')
    t.match(again.stderr, /^disktro: .*stale mount.*disktro unmount/, 'with a hint to unmount')
    t.equal(again.stderr.trim().split('\n').length, 1, 'in one line')
    const u = await disktro(['unmount', mnt])
    t.equal(u.code, 0, `cycle ${cycle}: disktro unmount exits 0 on the stale mount ${u.stderr.trim()}`)
    t.notOk(await isMounted(mnt), 'and the mount is gone')
  }

  const m = await Mount.start(t, { dataDir, mountpoint: mnt })
  for (const cycle of [1, 2]) {
    t.ok((await readFile(m.path(`a${cycle}`))).equals(a), `a${cycle} (closed) survives`)
    t.ok((await readFile(m.path(`b${cycle}`))).equals(b), `b${cycle} (fsync'd) survives`)
  }
  t.equal((await m.stop()).code, 0, 'stops cleanly')
  const s = await status(t, dataDir, config)
  t.equal(s.files, 4, 'status counts 4 files')
  await checkChunkAccounting(t, s, dataDir, config, 'after two kills')
  t.equal(s.chunks, 4, 'identical copies share chunks: one per distinct block')
})
