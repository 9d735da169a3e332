// Another local user (`nobody`) against a root-owned daemon (issue 28, item
// 9): the close-behind redo log in /dev/shm cannot be pointed at a file of
// root's, nor taken over, emptied or read; a data dir that was left open is
// closed at the next open; the control socket is made under umask 077; the
// password leaves the daemon's environment.
import t, { type Test } from 'tap'
import { chmod, lstat, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises'
import { createHash, randomBytes } from 'node:crypto'
import { join, resolve } from 'node:path'
import { Mount, tempDir, sh, run, requireFuse, ROOT, PASSWORD } from '../helpers/disktro.js'
import { redoLogPath } from '../../src/fuse/close-behind.js'

const envTimeout = Number(process.env.TAP_TIMEOUT ?? '30')
if (envTimeout !== 0 && envTimeout < 180) t.setTimeout(180_000)

const FILES = 60

// Runs `script` as nobody; resolves with its exit code and output.
async function asNobody (script: string): Promise<{ code: number | null, out: string }> {
  const r = await run('runuser', ['-u', 'nobody', '--', 'sh', '-c', script], { timeoutMs: 30_000 })
  return { code: r.code, out: r.stdout + r.stderr }
}

function canRunAsNobody (t: Test): boolean {
  if (process.getuid?.() !== 0) {
    t.comment('skipped: needs root to run commands as nobody')
    return false
  }
  return true
}

// A test directory `nobody` can walk through (mkdtemp makes them 0700), with
// a file of root's that an attack would overwrite.
async function arena (t: Test): Promise<{ base: string, dataDir: string, mountpoint: string, victim: string, src: string }> {
  const base = await tempDir(t)
  await chmod(base, 0o755)
  const victim = join(base, 'victim')
  await writeFile(victim, 'precious\n', { mode: 0o644 })
  const src = join(base, 'src')
  await mkdir(src)
  for (let i = 0; i < FILES; i++) await writeFile(join(src, `f${i}.bin`), randomBytes(300 + i * 50))
  return { base, dataDir: join(base, 'data'), mountpoint: join(base, 'mnt'), victim, src }
}

// What nobody leaves in /dev/shm goes at teardown.
function shmCleanup (t: Test, ...paths: string[]): void {
  t.teardown(async () => { for (const p of paths) await rm(p, { recursive: true, force: true }) })
}

t.test('the redo log: nobody can neither redirect it through the old predictable name nor enter its directory', async t => {
  if (!canRunAsNobody(t) || !await requireFuse(t)) return
  const { dataDir, mountpoint, victim, src } = await arena(t)
  // The name every version before this one used: nobody links it to root's file.
  const oldName = `/dev/shm/disktro-redo-${createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 16)}.log`
  shmCleanup(t, oldName)
  t.equal((await asNobody(`ln -s ${victim} ${oldName}`)).code, 0, 'nobody planted a link at the old name')

  // Held: nothing is committed, so after kill -9 the files are only in the log.
  const m = await Mount.start(t, { dataDir, mountpoint, env: { DISKTRO_CLOSE_BEHIND_HOLD: '1' } })
  await mkdir(m.path('x'))
  await sh(`cp -r ${src}/. ${m.path('x')}/`)
  await m.kill9()
  t.equal(await readFile(victim, 'utf8'), 'precious\n', 'root\'s file is untouched')

  const log = redoLogPath(dataDir)
  t.match(log, /^\/dev\/shm\/disktro-redo-[A-Za-z0-9]{6}\/redo\.log$/, `the log is in a directory with an unpredictable name: ${log}`)
  const dir = join(log, '..')
  const ds = await lstat(dir)
  t.ok(ds.isDirectory() && !ds.isSymbolicLink(), 'a real directory')
  t.equal(ds.mode & 0o777, 0o700, 'mode 0700')
  t.equal(ds.uid, 0, 'owned by the daemon\'s user')
  const ls = await lstat(log)
  t.ok(ls.isFile(), 'the log is a regular file')
  t.equal(ls.mode & 0o777, 0o600, 'mode 0600')
  t.equal(ls.nlink, 1, 'one name')
  t.ok(ls.size > FILES * 300, `it holds the files: ${ls.size} bytes`)
  t.not((await asNobody(`ls ${dir}`)).code, 0, 'nobody cannot list the directory')
  t.not((await asNobody(`cat ${log} > /dev/null`)).code, 0, 'nor read the log')
  t.not((await asNobody(`: > ${log}`)).code, 0, 'nor empty it')
  t.not((await asNobody(`ln -s ${victim} ${dir}/redo.log.new`)).code, 0, 'nor put anything in the directory')
  t.not((await asNobody(`rm -rf ${dir}`)).code, 0, 'nor remove it (/dev/shm is sticky)')
  t.equal((await stat(log)).size, ls.size, 'the log is as the daemon left it')

  const again = await Mount.start(t, { dataDir, mountpoint })
  t.match(again.stdout + again.stderr, /redo log: \d+ frames read, \d+ files applied/, 'the log was found and replayed after kill -9')
  await sh(`diff -r ${src} ${again.path('x')}`)
  t.pass('every file acknowledged before kill -9 reads back')
  t.equal(redoLogPath(dataDir), log, 'the same private directory is used again')
  t.equal(await readFile(victim, 'utf8'), 'precious\n', 'root\'s file is still untouched')
  t.equal((await again.stop()).code, 0, 'clean exit')
  t.equal(await lstat(dir).then(() => 'there', () => 'gone'), 'gone', 'a clean unmount removes the directory')
})

t.test('a recorded directory nobody took over while it was gone (a reboot) is not used', async t => {
  if (!canRunAsNobody(t) || !await requireFuse(t)) return
  const { dataDir, mountpoint, victim, src } = await arena(t)
  const m = await Mount.start(t, { dataDir, mountpoint, env: { DISKTRO_CLOSE_BEHIND_HOLD: '1' } })
  await mkdir(m.path('x'))
  await sh(`cp -r ${src}/. ${m.path('x')}/`)
  await m.kill9()
  const log = redoLogPath(dataDir)
  const dir = join(log, '..')
  // /dev/shm emptied (as a reboot does; here the directory is moved aside),
  // and nobody, who saw its name in `ls /dev/shm`, makes it first: open to
  // all, its log a link to root's file, and a second planted file.
  shmCleanup(t, dir, dir + '.saved')
  await rename(dir, dir + '.saved')
  const planted = await asNobody(`mkdir ${dir} && chmod 777 ${dir} && ln -s ${victim} ${log} && echo junk > ${dir}/other`)
  t.equal(planted.code, 0, `nobody made the directory and the link ${planted.out}`)

  const again = await Mount.start(t, { dataDir, mountpoint })
  t.match(again.stdout + again.stderr, new RegExp(`redo log: ${dir} is not a private directory of this user: not used`), 'the daemon says why it ignores it')
  t.notMatch(again.stdout + again.stderr, /frames read/, 'nothing was read from it')
  t.equal(await readFile(victim, 'utf8'), 'precious\n', 'root\'s file is untouched')
  const fresh = redoLogPath(dataDir)
  t.not(fresh, log, `a new private directory: ${fresh}`)
  t.equal((await lstat(join(fresh, '..'))).mode & 0o777, 0o700)
  t.equal((await lstat(join(fresh, '..'))).uid, 0)
  t.same((await readdir(dir)).sort(), ['other', 'redo.log'], 'nobody\'s directory is left as it was')
  t.equal((await again.stop()).code, 0, 'clean exit')
})

// After an upgrade: a log an older daemon, killed with -9, left at the old
// name is read (it is a file of the daemon's user, not a link), then removed.
t.test('a log the previous version left at its old name is replayed once after an upgrade', async t => {
  if (!canRunAsNobody(t) || !await requireFuse(t)) return
  const { dataDir, mountpoint, src } = await arena(t)
  const oldName = `/dev/shm/disktro-redo-${createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 16)}.log`
  shmCleanup(t, oldName)
  const m = await Mount.start(t, { dataDir, mountpoint, env: { DISKTRO_CLOSE_BEHIND_HOLD: '1' } })
  await mkdir(m.path('x'))
  await sh(`cp -r ${src}/. ${m.path('x')}/`)
  await m.kill9()
  // As the version before this one left it: at the old name, no directory, no record.
  const log = redoLogPath(dataDir)
  await rename(log, oldName)
  await rm(join(log, '..'), { recursive: true })
  await rm(join(dataDir, 'redo-dir'))
  const again = await Mount.start(t, { dataDir, mountpoint })
  t.match(again.stdout + again.stderr, /redo log: \d+ frames read, \d+ files applied/, 'the old log was replayed')
  await sh(`diff -r ${src} ${again.path('x')}`)
  t.pass('every file acknowledged before kill -9 reads back')
  t.equal(await lstat(oldName).then(() => 'there', () => 'gone'), 'gone', 'and the old name is gone')
  t.equal((await again.stop()).code, 0, 'clean exit')
})

t.test('a data dir left open to others is closed at the next open; the control socket is the owner\'s', async t => {
  if (!canRunAsNobody(t) || !await requireFuse(t)) return
  const { dataDir, mountpoint } = await arena(t)
  const m = await Mount.start(t, { dataDir, mountpoint })
  await m.stop()
  // As an older disktro, a restored backup or a hand-made dir could leave it.
  await sh(`chmod 755 ${dataDir} ${dataDir}/store && chmod 644 ${dataDir}/store/*.mdb`)
  t.equal((await asNobody(`head -c 1 ${dataDir}/store/data.mdb > /dev/null`)).code, 0, 'set up: nobody can read the store')

  // Started under umask 000: nothing it makes may take its mode from the umask.
  const again = await Mount.start(t, { dataDir, mountpoint, umask: 0 })
  for (const [path, mode] of [[dataDir, 0o700], [join(dataDir, 'store'), 0o700], [join(dataDir, 'store', 'data.mdb'), 0o600], [join(dataDir, 'store', 'lock.mdb'), 0o600], [join(dataDir, 'control.sock'), 0o600]] as Array<[string, number]>) {
    t.equal((await lstat(path)).mode & 0o777, mode, `${path.slice(dataDir.length) || 'the data dir'}: ${mode.toString(8)}`)
  }
  t.not((await asNobody(`head -c 1 ${dataDir}/store/data.mdb > /dev/null`)).code, 0, 'nobody can no longer read the store')
  t.not((await asNobody(`ls ${dataDir}`)).code, 0, 'nor list the data dir')
  t.not((await asNobody(`ls ${mountpoint}`)).code, 0, 'nor enter the mount (no --allow-other)')
  t.equal((await again.stop()).code, 0, 'clean exit')
})

// bind(2) makes the socket with 0777 & ~umask; the chmod to 0600 comes
// after. Traced: the umask is 077 when bind runs, so there is no window.
t.test('the control socket is bound under umask 077', async t => {
  const base = await tempDir(t)
  const script = join(base, 'open.mjs')
  await writeFile(script, `
import { ControlServer } from ${JSON.stringify(join(ROOT, 'dist', 'src', 'api', 'control-server.js'))}
process.umask(0)
const s = new ControlServer(${JSON.stringify(base)}, async () => null, () => {})
await s.open()
await s.close()
`)
  const trace = join(base, 'trace')
  const r = await run('strace', ['-f', '-e', 'trace=umask,bind', '-o', trace, process.execPath, script], { timeoutMs: 60_000 })
  if (r.code !== 0 && /ptrace|Operation not permitted/.test(r.stderr)) {
    t.comment(`skipped: strace cannot trace here: ${r.stderr.trim()}`)
    return
  }
  t.equal(r.code, 0, `the script ran ${r.stderr}`)
  const lines = (await readFile(trace, 'utf8')).split('\n')
  const bind = lines.findIndex(l => l.includes('bind(') && l.includes('control.sock'))
  t.ok(bind >= 0, 'the socket\'s bind was traced')
  const umasks = lines.slice(0, bind).filter(l => /umask\(/.test(l))
  t.match(umasks[umasks.length - 1], /umask\(077\)/, `the last umask before bind set 077: ${umasks[umasks.length - 1]}`)
  t.match(lines.slice(bind + 1).find(l => /umask\(/.test(l)) ?? '', /umask\(0+\) += 077/, 'and the umask is given back right after it')
})

// The daemon's environment as the C library holds it (what libfuse's
// fusermount and every other child would inherit), read from a diagnostic
// report the running daemon writes on SIGUSR2 (Node lists `environ` there).
t.test('DISKTRO_PASSWORD leaves the daemon\'s environment once read', async t => {
  if (!await requireFuse(t)) return
  const base = await tempDir(t)
  const reports = join(base, 'reports')
  await mkdir(reports)
  const m = await Mount.start(t, { dataDir: join(base, 'data'), mountpoint: join(base, 'mnt'), env: { NODE_OPTIONS: `--report-on-signal --report-signal=SIGUSR2 --report-directory=${reports}` } })
  m.child.kill('SIGUSR2')
  let names: string[] = []
  for (let i = 0; i < 200 && names.length === 0; i++) {
    names = (await readdir(reports)).filter(n => n.endsWith('.json'))
    if (names.length === 0) await new Promise(resolve => setTimeout(resolve, 50))
  }
  t.equal(names.length, 1, 'the daemon wrote its report')
  await new Promise(resolve => setTimeout(resolve, 200)) // written in one go, but let it finish
  const text = await readFile(join(reports, names[0]), 'utf8')
  const env = (JSON.parse(text) as { environmentVariables: Record<string, string> }).environmentVariables
  t.equal(env.DISKTRO_BOOTSTRAP, 'none', 'the report lists the daemon\'s environment')
  t.notOk('DISKTRO_PASSWORD' in env, 'DISKTRO_PASSWORD is not in it')
  t.notOk(text.includes(PASSWORD), 'the password is nowhere in the report')
  const initial = await readFile(`/proc/${m.child.pid!}/environ`)
  t.ok(initial.includes(Buffer.from('DISKTRO_BOOTSTRAP=none')), '/proc/<pid>/environ shows the daemon\'s initial environment')
  t.notOk(initial.includes(Buffer.from(PASSWORD)), 'with the password\'s bytes overwritten')
  t.equal((await m.stop()).code, 0, 'clean exit')
})
