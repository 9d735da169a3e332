// Every user of a shared mount (issue 29): mounted by root with
// --allow-other, what `nobody` makes is nobody's (the FUSE caller's, from
// the request), and the permission rules that follow from ownership hold:
// chmod and chown by the owner only, setgid directories, setgid and setuid
// cleared where POSIX clears them, sticky directories, moving one's own
// directory, hard links under protected_hardlinks.
import t, { type Test } from 'tap'
import { chmod } from 'node:fs/promises'
import { join } from 'node:path'
import { Mount, tempDir, requireFuse } from '../helpers/disktro.js'
import { run, sh, stat, daemonErrors } from './posix-helpers.js'

const envTimeout = Number(process.env.TAP_TIMEOUT ?? '30')
if (envTimeout !== 0 && envTimeout < 180) t.setTimeout(180_000)

const NOBODY = 65534
const NOGROUP = 65534
const OTHER_GROUP = 1234 // a group nobody is not in

// Runs `script` as nobody; its exit code and output.
async function asNobody (script: string): Promise<{ code: number | null, out: string }> {
  const r = await run('runuser', ['-u', 'nobody', '--', 'sh', '-c', script], { timeoutMs: 30_000 })
  return { code: r.code, out: (r.stdout + r.stderr).trim() }
}

async function nobodyOk (t: Test, script: string, what: string): Promise<void> {
  const r = await asNobody(script)
  t.equal(r.code, 0, `${what} ${r.out}`)
}

async function nobodyFails (t: Test, script: string, pattern: RegExp, what: string): Promise<void> {
  const r = await asNobody(script)
  t.not(r.code, 0, what)
  t.match(r.out, pattern, `${what}: ${r.out}`)
}

// A root-owned --allow-other mount with a directory open to all ('pub').
async function sharedMount (t: Test, env: NodeJS.ProcessEnv = {}): Promise<Mount> {
  const base = await tempDir(t)
  await chmod(base, 0o755) // mkdtemp makes it 0700: nobody must walk through
  const m = await Mount.start(t, { dataDir: join(base, 'data'), mountpoint: join(base, 'mnt'), args: ['--allow-other'], env })
  await sh(`chmod 755 ${m.dir} && mkdir ${m.path('pub')} && chmod 777 ${m.path('pub')}`)
  return m
}

function canRunAsNobody (t: Test): boolean {
  if (process.getuid?.() !== 0) {
    t.comment('skipped: needs root to mount with --allow-other and to run commands as nobody')
    return false
  }
  return true
}

// Creates answered by the addon itself (scripts/build-fuse.cjs (i)) and
// creates through JS (DISKTRO_CREATES_BEHIND=0) must both give the owner.
for (const [label, env] of [['creates answered by the addon', {}], ['creates through the event loop', { DISKTRO_CREATES_BEHIND: '0', DISKTRO_ATTRS_BEHIND: '0' }]] as Array<[string, NodeJS.ProcessEnv]>) {
  t.test(`new nodes are their creator's (${label})`, async t => {
    if (!canRunAsNobody(t) || !await requireFuse(t)) return
    const m = await sharedMount(t, env)
    const pub = m.path('pub')
    // tar x looks up a name, creates it, writes it and closes it: the addon answers all of it.
    await nobodyOk(t, `cd ${pub} && echo hi > f && mkdir d && ln -s f l && mkfifo p && echo x > d/inner`, 'nobody made a file, a directory, a symlink and a FIFO')
    const owners = await stat('%U:%G %u:%g %n', join(pub, 'f'), join(pub, 'd'), join(pub, 'l'), join(pub, 'p'), join(pub, 'd', 'inner'))
    for (const line of owners) t.match(line, new RegExp(`^nobody:nogroup ${NOBODY}:${NOGROUP} `), line)
    t.same(await stat('%u:%g', m.path('pub')), ['0:0'], 'the directory root made is root\'s')

    // The creator can now do with its own file what an owner can.
    await nobodyOk(t, `cd ${pub} && chmod 600 f && echo more >> f && truncate -s 2 f && cat f`, 'nobody chmods, writes and truncates its own file')
    t.same(await stat('%a %s', join(pub, 'f')), ['600 2'])
    await nobodyOk(t, `cd ${pub} && ln f hard`, 'and links it under protected_hardlinks')
    await nobodyOk(t, `cd ${pub} && touch -d '2001-02-03 04:05:06' f`, 'and sets its times')
    await nobodyOk(t, `cd ${pub} && chgrp ${NOGROUP} f`, 'chgrp to its own group is allowed')
    await nobodyOk(t, `cd ${pub} && mkdir d2 && mv d d2/ && mv d2/d d3`, 'nobody moves its own directory between directories')
    t.same(await stat('%u:%g %F', join(pub, 'd3')), [`${NOBODY}:${NOGROUP} directory`])
    t.same(daemonErrors(m.stderr), [], 'the daemon logged no failed operation')
    t.equal((await m.stop()).code, 0, 'clean exit')

    // Ownership is in the records: after a restart it is still nobody's.
    const again = await Mount.start(t, { dataDir: m.dataDir, mountpoint: m.dir, args: ['--allow-other'], env })
    t.same(await stat('%u:%g', again.path('pub', 'f'), again.path('pub', 'd3', 'inner')), [`${NOBODY}:${NOGROUP}`, `${NOBODY}:${NOGROUP}`], 'owners survive a restart')
    t.equal((await again.stop()).code, 0, 'clean exit')
  })
}

t.test('chmod and chown: the owner may chmod, only root may give a file away', async t => {
  if (!canRunAsNobody(t) || !await requireFuse(t)) return
  const m = await sharedMount(t)
  const pub = m.path('pub')
  await sh(`echo root > ${pub}/roots && chmod 666 ${pub}/roots`)
  await nobodyOk(t, `echo mine > ${pub}/mine`, 'nobody made a file')
  await nobodyFails(t, `chmod 777 ${pub}/roots`, /Operation not permitted/, 'nobody cannot chmod root\'s file')
  await nobodyFails(t, `chown nobody ${pub}/roots`, /Operation not permitted/, 'nor take it')
  await nobodyFails(t, `chown 0 ${pub}/mine`, /Operation not permitted/, 'nor give its own file to root')
  await nobodyFails(t, `chgrp ${OTHER_GROUP} ${pub}/mine`, /Operation not permitted/, 'nor to a group it is not in')
  t.same(await stat('%u:%g %a', join(pub, 'roots'), join(pub, 'mine')), ['0:0 666', `${NOBODY}:${NOGROUP} 644`], 'both files as they were')
  await sh(`chown 1000:${OTHER_GROUP} ${pub}/mine`)
  t.same(await stat('%u:%g', join(pub, 'mine')), [`1000:${OTHER_GROUP}`], 'root gives it away')
  t.same(daemonErrors(m.stderr), [])
})

t.test('setgid: a setgid directory gives its group (and setgid to subdirectories); setgid and setuid are cleared as POSIX says', async t => {
  if (!canRunAsNobody(t) || !await requireFuse(t)) return
  const m = await sharedMount(t)
  const sg = m.path('sg')
  await sh(`mkdir ${sg} && chown 0:${OTHER_GROUP} ${sg} && chmod 2777 ${sg}`)
  await nobodyOk(t, `cd ${sg} && echo x > f && mkdir sub && mkdir sub/deeper && mkfifo p`, 'nobody made nodes in a setgid directory')
  t.same(await stat('%u:%g %A', join(sg, 'f'), join(sg, 'p')), [`${NOBODY}:${OTHER_GROUP} -rw-r--r--`, `${NOBODY}:${OTHER_GROUP} prw-r--r--`], 'files take the directory\'s group')
  t.same(await stat('%u:%g %A', join(sg, 'sub'), join(sg, 'sub', 'deeper')), [`${NOBODY}:${OTHER_GROUP} drwxr-sr-x`, `${NOBODY}:${OTHER_GROUP} drwxr-sr-x`], 'new directories take its group and its setgid bit, down the tree')

  // nobody owns f but is not in its group: a chmod that asks for setgid does not get it.
  await nobodyOk(t, `chmod 2755 ${sg}/f`, 'nobody chmods its file with setgid')
  t.same(await stat('%a', join(sg, 'f')), ['755'], 'setgid is cleared: the owner is not in the file\'s group')
  await nobodyOk(t, `chmod 4755 ${sg}/f`, 'setuid on its own file')
  t.same(await stat('%a', join(sg, 'f')), ['4755'], 'is kept')

  // A write by someone other than root clears setuid and setgid.
  await sh(`echo x > ${m.path('pub', 'suid')} && chmod 6777 ${m.path('pub', 'suid')}`)
  t.same(await stat('%a', m.path('pub', 'suid')), ['6777'])
  await nobodyOk(t, `echo more >> ${m.path('pub', 'suid')}`, 'nobody writes to a setuid, setgid, world-writable file of root\'s')
  t.same(await stat('%a', m.path('pub', 'suid')), ['777'], 'the write cleared setuid and setgid')
  // A chown by root of a setuid file clears setuid (Linux, for every caller of chown on a non-directory).
  await sh(`chmod 4755 ${m.path('pub', 'suid')} && chown 1000 ${m.path('pub', 'suid')}`)
  t.same(await stat('%u %a', m.path('pub', 'suid')), ['1000 755'], 'a chown cleared setuid')
  t.same(daemonErrors(m.stderr), [])
})

t.test('sticky directories: only the owner of the file or of the directory, or root, may remove or rename', async t => {
  if (!canRunAsNobody(t) || !await requireFuse(t)) return
  const m = await sharedMount(t)
  const tmp = m.path('tmp')
  await sh(`mkdir ${tmp} && chmod 1777 ${tmp} && echo r > ${tmp}/roots && chmod 666 ${tmp}/roots && mkdir ${tmp}/rootdir && chmod 777 ${tmp}/rootdir`)
  await nobodyOk(t, `echo n > ${tmp}/mine && mkdir ${tmp}/mydir`, 'nobody made a file and a directory in /tmp-like dir')
  await nobodyFails(t, `rm -f ${tmp}/roots`, /Operation not permitted/, 'nobody cannot remove root\'s file')
  await nobodyFails(t, `mv ${tmp}/roots ${tmp}/stolen`, /Operation not permitted/, 'nor rename it')
  await nobodyFails(t, `rmdir ${tmp}/rootdir`, /Operation not permitted/, 'nor remove root\'s empty directory')
  await nobodyFails(t, `mv -T ${tmp}/mine ${tmp}/roots`, /Operation not permitted/, 'nor replace root\'s file by a rename')
  await nobodyOk(t, `echo more >> ${tmp}/roots`, 'but may write to it (0666)')
  await nobodyOk(t, `mv ${tmp}/mine ${tmp}/mine2 && rm ${tmp}/mine2 && rmdir ${tmp}/mydir`, 'nobody renames and removes its own')
  await sh(`rm ${tmp}/roots && rmdir ${tmp}/rootdir`)
  t.same(await sh(`ls -A ${tmp}`), '', 'root removes its own')

  // The owner of a sticky directory may remove anything in it.
  await nobodyOk(t, `mkdir ${m.path('pub', 'own')} && chmod 1777 ${m.path('pub', 'own')}`, 'nobody made a sticky directory')
  await sh(`echo r > ${m.path('pub', 'own', 'roots')}`)
  await nobodyOk(t, `rm -f ${m.path('pub', 'own', 'roots')}`, 'and removes root\'s file in it')
  t.same(daemonErrors(m.stderr), [])
})

// Files only the redo log holds (close behind, released but not committed,
// then kill -9) are replayed with their creator as owner.
t.test('files replayed from the redo log after kill -9 keep their creator', async t => {
  if (!canRunAsNobody(t) || !await requireFuse(t)) return
  const m = await sharedMount(t, { DISKTRO_CLOSE_BEHIND_HOLD: '1' })
  await nobodyOk(t, `cd ${m.path('pub')} && for i in 1 2 3 4 5; do echo "file $i" > f$i; done`, 'nobody wrote five small files')
  await m.kill9()
  const again = await Mount.start(t, { dataDir: m.dataDir, mountpoint: m.dir, args: ['--allow-other'] })
  t.match(again.stdout + again.stderr, /redo log: \d+ frames read, [1-9]\d* files applied/, 'the files came back from the redo log')
  const owners = await stat('%u:%g %s', ...[1, 2, 3, 4, 5].map(i => again.path('pub', `f${i}`)))
  t.same(owners, Array(5).fill(`${NOBODY}:${NOGROUP} 7`), 'each is nobody\'s, with its content')
  t.equal((await again.stop()).code, 0, 'clean exit')
})
