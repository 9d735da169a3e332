// The addon's attribute cache (src/fuse/attr-cache.ts, scripts/build-fuse.cjs
// (g)) through a real mount: getattrs are answered from it, and no stat ever
// shows attributes from before a change, whichever name, handle or member
// made it.
import t from 'tap'
import { spawn } from 'node:child_process'
import { stat, writeFile, appendFile } from 'node:fs/promises'
import { Mount, sh, requireFuse } from '../helpers/disktro.js'
import { attrCacheBinding, loadFuse } from '../../src/fuse/native.js'
import { startBootstrap, makeCluster, mountNode, until } from '../helpers/cluster.js'

function cacheStats (m: Mount): [number, number] | null {
  const s = /attribute cache: (\d+) getattrs answered from it, \d+ answered ENOENT, (\d+) passed to the VFS/.exec(m.stdout + m.stderr)
  return s ? [Number(s[1]), Number(s[2])] : null
}

// Runs a node script in a child process (never in this one: a synchronous
// call into a mount from the process serving it would deadlock; here it
// would only be slow, but the daemon is another process anyway).
function child (script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    c.stdout.on('data', (d: Buffer) => { out += d.toString() })
    c.on('error', reject)
    c.on('exit', code => code === 0 ? resolve(out) : reject(new Error(`child exited with ${code}: ${out}`)))
  })
}

t.test('the patched addon offers the attribute cache', async t => {
  if (!await requireFuse(t)) return
  loadFuse()
  t.ok(attrCacheBinding(), 'npm install built the addon with the attribute cache (scripts/build-fuse.cjs)')
})

t.test('repeated stats are answered from the cache', async t => {
  if (!await requireFuse(t)) return
  const m = await Mount.start(t)
  await sh(`cd '${m.dir}' && mkdir d && for i in $(seq 1 50); do echo $i > d/f$i; done`)
  const listing = await sh(`cd '${m.dir}' && for i in 1 2 3 4; do ls -l d; done | sort | uniq -c | sort -n | head -1`)
  t.match(listing, /^\s*4 /, 'each of four listings shows the same lines')
  await m.stop()
  const stats = cacheStats(m)
  t.ok(stats, 'the daemon reports what the cache answered')
  const [hits, misses] = stats ?? [0, 0]
  t.ok(hits > misses, `${hits} getattrs answered from the cache, ${misses} by the VFS`)
})

t.test('every name of a file, and its directory, show each change at once', async t => {
  if (!await requireFuse(t)) return
  const m = await Mount.start(t)
  // One shell: each stat follows the change before it with no pause.
  const out = await sh(`cd '${m.dir}' && set -e
    mkdir d; stat -c '%h' d
    echo hello > d/a; stat -c '%h %s %a' d/a
    ln d/a d/b; stat -c '%h' d/a; stat -c '%h %s' d/b
    chmod 600 d/a; stat -c '%a' d/b
    echo more >> d/b; stat -c '%s' d/a
    truncate -s 2 d/a; stat -c '%s' d/b
    touch -m -d '2001-02-03 04:05:06 UTC' d/b; stat -c '%Y' d/a
    rm d/a; stat -c '%h' d/b
    mkdir d/e; stat -c '%h' d
    mv d/e d/f; stat -c '%h' d; stat -c '%h' d/f
    rmdir d/f; stat -c '%h' d
    mv d/b d/c; stat d/b >/dev/null 2>&1 && echo b-still-there || echo b-gone; stat -c '%h %s' d/c
    mkdir d/x; echo hi > d/x/f; stat -c '%s' d/x/f; mv d/x d/y; stat d/x/f >/dev/null 2>&1 && echo x-still-there || echo x-gone; stat -c '%s' d/y/f
    mkdir d/x; echo longer > d/x/f; stat -c '%s' d/x/f`)
  t.same(out.trim().split('\n'), [
    '2',
    '1 6 644',
    '2', '2 6',
    '600',
    '11',
    '2',
    '981173106',
    '1',
    '3',
    '3', '2',
    '2',
    'b-gone', '1 2',
    '3', 'x-gone', '3',
    '7'
  ], 'nlink, size, mode and mtime as each change left them, through every name, and every path under a moved directory')
})

// 400 random changes through names and open handles, each followed by a stat
// of every name, against a model of the files.
t.test('a model test: stats always show the last change', async t => {
  if (!await requireFuse(t)) return
  const m = await Mount.start(t)
  const script = `
    const fs = require('fs'), path = require('path')
    const dir = ${JSON.stringify(m.path('model'))}
    fs.mkdirSync(dir)
    let seed = 12345
    const rnd = n => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n }
    const names = ['a', 'b', 'c', 'd']
    const at = new Map() // name -> inode { size, mode, mtime }
    let subdirs = 0
    const bad = []
    const check = (step, op) => {
      for (const n of names) {
        const want = at.get(n)
        let st = null
        try { st = fs.statSync(path.join(dir, n)) } catch {}
        if (!want) { if (st) bad.push(step + ' ' + op + ': ' + n + ' exists'); continue }
        if (!st) { bad.push(step + ' ' + op + ': ' + n + ' missing'); continue }
        const nlink = names.filter(x => at.get(x) === want).length
        const got = [st.size, st.mode & 0o7777, st.nlink, want.mtime === null ? null : Math.floor(st.mtimeMs / 1000)]
        const exp = [want.size, want.mode, nlink, want.mtime]
        if (JSON.stringify(got) !== JSON.stringify(exp)) bad.push(step + ' ' + op + ': ' + n + ' ' + JSON.stringify(got) + ' != ' + JSON.stringify(exp))
      }
      const d = fs.statSync(dir)
      if (d.nlink !== 2 + subdirs) bad.push(step + ' ' + op + ': dir nlink ' + d.nlink + ' != ' + (2 + subdirs))
    }
    for (let step = 0; step < 400; step++) {
      const n = names[rnd(names.length)], o = names[rnd(names.length)]
      const f = at.get(n), p = path.join(dir, n)
      const kind = rnd(9)
      let op = ''
      if (!f || kind === 0) {
        if (f) { fs.unlinkSync(p); at.delete(n); op = 'unlink ' + n }
        else { const len = rnd(5000); fs.writeFileSync(p, Buffer.alloc(len, 1)); fs.chmodSync(p, 0o644); at.set(n, { size: len, mode: 0o644, mtime: null }); op = 'create ' + n }
      } else if (kind === 1) {
        // a write through a handle kept open: stat before the close
        const fd = fs.openSync(p, 'r+')
        const pos = rnd(6000), len = 1 + rnd(3000)
        fs.writeSync(fd, Buffer.alloc(len, 2), 0, len, pos)
        f.size = Math.max(f.size, pos + len); f.mtime = null
        check(step, 'write (open) ' + n)
        fs.closeSync(fd); op = 'write ' + n
      } else if (kind === 2) {
        const size = rnd(8000); fs.truncateSync(p, size); f.size = size; f.mtime = null; op = 'truncate ' + n
      } else if (kind === 3) {
        const mode = [0o600, 0o640, 0o644, 0o755][rnd(4)]; fs.chmodSync(p, mode); f.mode = mode; op = 'chmod ' + n
      } else if (kind === 4) {
        const s = 1000000000 + rnd(100000000); fs.utimesSync(p, s, s); f.mtime = s; op = 'utimes ' + n
      } else if (kind === 5 && !at.has(o)) {
        fs.linkSync(p, path.join(dir, o)); at.set(o, f); op = 'link ' + n + ' ' + o
      } else if (kind === 6 && n !== o) {
        fs.renameSync(p, path.join(dir, o))
        if (at.get(o) !== f) { at.set(o, f); at.delete(n) }
        op = 'rename ' + n + ' ' + o
      } else if (kind === 7) {
        const sub = path.join(dir, 'sub' + rnd(3))
        if (fs.existsSync(sub)) { fs.rmdirSync(sub); subdirs-- } else { fs.mkdirSync(sub); subdirs++ }
        op = 'mkdir/rmdir'
      } else {
        const fd = fs.openSync(p, 'a'); const len = 1 + rnd(200); fs.writeSync(fd, Buffer.alloc(len, 3)); fs.closeSync(fd)
        f.size += len; f.mtime = null; op = 'append ' + n
      }
      check(step, op)
    }
    process.stdout.write(JSON.stringify(bad.slice(0, 10).concat(['total ' + bad.length])))
  `
  const bad = JSON.parse(await child(script)) as string[]
  t.same(bad, ['total 0'], '400 changes, every stat after each as the model says')
  await m.stop()
  const [hits] = cacheStats(m) ?? [0]
  t.ok(hits > 0, `the cache answered ${hits} of those getattrs`)
})

// Directories' attributes are held by the kernel for a second (scripts/build-fuse.cjs
// (k)): with default_permissions, a path's every ancestor was fetched again on
// every system call that walked it. The same listing, with it and without it.
t.test('ls -lR: directories\' attributes are held by the kernel, not fetched per path', async t => {
  if (!await requireFuse(t)) return
  const first = await Mount.start(t)
  await sh(`cd '${first.dir}' && for d in 1 2 3 4; do mkdir -p a/b/c$d; for i in $(seq 1 50); do echo $i > a/b/c$d/f$i; done; done`)
  await first.stop()
  const listing = async (env: NodeJS.ProcessEnv): Promise<{ getattrs: number, held: number, out: string }> => {
    const m = await Mount.start(t, { dataDir: first.dataDir, env })
    const out = await sh(`cd '${m.dir}' && ls -lR a | grep -c '^-'`)
    await m.stop()
    const held = /(\d+) directory attribute replies held by the kernel/.exec(m.stdout + m.stderr)
    return { getattrs: cacheStats(m)?.[0] ?? 0, held: held ? Number(held[1]) : -1, out: out.trim() }
  }
  const off = await listing({ DISKTRO_DIR_ATTR_TIMEOUT: '0' })
  const on = await listing({})
  t.equal(off.out, '200', 'the listing shows the 200 files')
  t.equal(on.out, '200', 'and so it does with directories held')
  t.equal(off.held, 0, 'with DISKTRO_DIR_ATTR_TIMEOUT=0 no reply is held')
  t.ok(on.held > 0, `by default, ${on.held} replies for directories were held`)
  t.ok(on.getattrs * 2 < off.getattrs, `the addon answered ${on.getattrs} getattrs with directories held, ${off.getattrs} without`)
})

// Another member's change reaches this one as a merge of its log, not through
// FUSE: the merge invalidates the cache (node.ts, LmdbNamespace.onTreeChange).
t.test('a stat here shows another member\'s change', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  const [a, b] = await makeCluster(t, bootstrap, ['full', 'full'])
  const ma = await mountNode(t, a)
  const mb = await mountNode(t, b)
  await writeFile(ma.path('grows.txt'), 'one\n')
  await until('B sees A\'s file', async () => (await stat(mb.path('grows.txt')).catch(() => null))?.size === 4, 60_000)
  // B's stats now come from its cache, until something changes.
  for (let i = 0; i < 5; i++) t.equal((await stat(mb.path('grows.txt'))).size, 4)
  await appendFile(ma.path('grows.txt'), 'two\n')
  await until('B\'s stat shows A\'s append', async () => (await stat(mb.path('grows.txt'))).size === 8, 60_000)
  t.pass('the size B shows followed A\'s change')
  // A directory B made is known whole to B's addon, which answers lookups of
  // names not created in it; a file A creates there must still appear.
  await sh(`mkdir '${mb.path('w')}'`)
  await until('A sees B\'s directory', async () => (await stat(ma.path('w')).catch(() => null))?.isDirectory() === true, 60_000)
  t.equal(await stat(mb.path('w', 'from-a.txt')).catch((e: NodeJS.ErrnoException) => e.code), 'ENOENT', 'not there yet')
  await writeFile(ma.path('w', 'from-a.txt'), 'hello\n')
  await until('B sees A\'s file in the directory B made', async () => (await stat(mb.path('w', 'from-a.txt')).catch(() => null))?.size === 6, 60_000)
  t.pass('a name another member created shows up in a directory known whole')
  // B's kernel holds w's attributes for up to a second (scripts/build-fuse.cjs
  // (k)); a subdirectory A makes shows in w's link count within that, once B
  // has it.
  t.equal((await stat(mb.path('w'))).nlink, 2, 'B shows w with no subdirectory')
  await sh(`mkdir '${ma.path('w', 'sub')}'`)
  await until('B sees A\'s subdirectory', async () => (await stat(mb.path('w', 'sub')).catch(() => null))?.isDirectory() === true, 60_000)
  const seen = Date.now()
  await until('B\'s stat of w counts it', async () => (await stat(mb.path('w'))).nlink === 3, 10_000)
  // 1 s held, plus the polling and a loaded machine's slack.
  t.ok(Date.now() - seen < 4_000, `w's link count followed within ${Date.now() - seen} ms of the subdirectory showing`)
})

// A directory made through the mount is known whole to the addon, which
// then answers lookups of names never created in it (scripts/build-fuse.cjs
// (i)). Names that arrive any other way end that, and are seen at once.
t.test('lookups in a new directory: answered by the addon, never hiding a name', async t => {
  if (!await requireFuse(t)) return
  const m = await Mount.start(t)
  await writeFile(m.path('a'), 'a')
  await writeFile(m.path('b'), 'b')
  // Each way a name can arrive gets a directory of its own, made just before,
  // with one file created in it first (answered by the addon) and a lookup
  // of the new name (answered ENOENT by the addon) before it arrives.
  const out = await child(`
    const fs = require('fs'), { execFileSync } = require('child_process')
    const root = ${JSON.stringify(m.dir)}
    const exists = p => { try { fs.lstatSync(p); return true } catch (e) { if (e.code === 'ENOENT') return false; throw e } }
    const ways = {
      create: p => fs.closeSync(fs.openSync(p, 'wx')),
      link: p => fs.linkSync(root + '/a', p),
      rename: p => fs.renameSync(root + '/b', p),
      symlink: p => fs.symlinkSync('x', p),
      mkfifo: p => execFileSync('mkfifo', [p]),
      mkdir: p => fs.mkdirSync(p),
      recreate: p => { fs.closeSync(fs.openSync(p, 'wx')); fs.unlinkSync(p); if (exists(p)) throw new Error('unlinked, still there'); fs.closeSync(fs.openSync(p, 'wx')) }
    }
    const seen = {}
    for (const [way, make] of Object.entries(ways)) {
      const d = root + '/' + way
      fs.mkdirSync(d)
      fs.closeSync(fs.openSync(d + '/x', 'wx'))
      const before = exists(d + '/new')
      make(d + '/new')
      seen[way] = [before, exists(d + '/new'), exists(d + '/x'), fs.readdirSync(d).sort().join(',')]
    }
    process.stdout.write(JSON.stringify(seen))`)
  const seen = JSON.parse(out) as Record<string, [boolean, boolean, boolean, string]>
  for (const [way, [before, after, first, listing]] of Object.entries(seen)) {
    t.same([before, after, first, listing], [false, true, true, 'new,x'], `${way}: absent before, seen at once after, listed`)
  }
  t.equal(Object.keys(seen).length, 7)
  await m.stop()
  const absent = /(\d+) answered ENOENT/.exec(m.stdout + m.stderr)
  t.ok(Number(absent?.[1]) >= 7, `the addon answered lookups in the new directories (${absent?.[1]})`)
})

// The addon answers a chmod, chown or utimens itself when its cache holds
// the file's attributes, shows the outcome at once, and queues the change
// for JS (scripts/build-fuse.cjs (h)): what a stat showed then, change time
// included, is what the store holds afterwards.
t.test('chmod, chown, touch, writes and creates answered at once are stored as they were shown', async t => {
  if (!await requireFuse(t)) return
  let m = await Mount.start(t)
  const dataDir = m.dataDir
  const [a, b, c, link, d, dir, e, f] = ['a', 'b', 'c', 'c-link', 'd', 'dir', 'dir/e', 'dir/f'].map(n => m.path(n))
  for (const p of [a, b, c, d]) await writeFile(p, 'data')
  await sh(`ln '${c}' '${link}' && mkdir '${dir}'`)
  const pick = `const pick = p => { const s = require('fs').statSync(p); return [s.mode, s.uid, s.gid, s.atimeMs, s.mtimeMs, s.ctimeMs, s.nlink, s.size] }`
  // Each file gets one kind of change, so each change's own ctime is what is compared.
  const shown = JSON.parse(await child(`
    const fs = require('fs'); ${pick}
    const all = ${JSON.stringify([a, b, c, link, d])}
    // A change drops every other file's entry: each file is read into the
    // cache again, once the change before has been applied, before its own.
    const fresh = (...ps) => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100); ps.forEach(pick) }
    fresh(all[0]); fs.chmodSync(all[0], 0o600); const afterChmod = pick(all[0])
    fresh(all[1]); fs.chownSync(all[1], 12, 34); const afterChown = pick(all[1])
    fresh(all[2], all[3]); fs.utimesSync(all[2], 1100000000, 1000000000); const afterTouch = [pick(all[2]), pick(all[3])]
    // a write through an open handle: size, mtime and ctime show before the close
    fresh(all[4]); const fd = fs.openSync(all[4], 'r+'); fs.writeSync(fd, Buffer.alloc(5000, 1), 0, 5000, 100); const afterWrite = pick(all[4]); fs.closeSync(fd)
    // new files: the file (its inode number too) and its directory's new times
    const dir = ${JSON.stringify(dir)}
    fresh(dir); fs.closeSync(fs.openSync(${JSON.stringify(e)}, 'wx', 0o640)); const afterCreate = [pick(${JSON.stringify(e)}), pick(dir), [fs.statSync(${JSON.stringify(e)}).ino]]
    fresh(dir); const fd2 = fs.openSync(${JSON.stringify(f)}, 'wx', 0o600); fs.writeSync(fd2, 'new'); const afterCreateWrite = [pick(${JSON.stringify(f)}), pick(dir), [fs.statSync(${JSON.stringify(f)}).ino]]; fs.closeSync(fd2)
    process.stdout.write(JSON.stringify([afterChmod, afterChown, ...afterTouch, afterWrite, ...afterCreate, ...afterCreateWrite]))`)) as number[][]
  t.equal(shown[0][0] & 0o7777, 0o600, 'the chmod shows at once')
  t.same([shown[1][1], shown[1][2]], [12, 34], 'the chown too')
  t.same([shown[2][3], shown[2][4]], [1100000000000, 1000000000000], 'and the times')
  t.same(shown[3], shown[2], 'the other name of the touched file shows the same')
  t.equal(shown[4][7], 5100, 'the write\'s size shows before the close')
  t.equal(shown[5][0] & 0o7777, 0o640, 'the new file shows its mode')
  t.equal(shown[8][7], 3, 'and the other one its size before the close')
  await m.stop()
  const behind = /(\d+) chmod, chown and utimens and (\d+) creates answered at once/.exec(m.stdout + m.stderr)
  t.equal(Number(behind?.[1]), 3, 'the addon answered all three itself')
  t.ok(Number(behind?.[2]) >= 2, `and the creates (${behind?.[2]} in all)`)

  m = await Mount.start(t, { dataDir, mountpoint: m.dir })
  const stored = JSON.parse(await child(`${pick}; const fs = require('fs'); const [a, b, c, link, d, dir, e, f] = ${JSON.stringify([a, b, c, link, d, dir, e, f])}
    process.stdout.write(JSON.stringify([...[a, b, c, link, d].map(pick), pick(e), pick(dir), [fs.statSync(e).ino], pick(f), pick(dir), [fs.statSync(f).ino]]))`)) as number[][]
  // The directory's times are compared as of the last create in it.
  shown[6] = shown[9]
  t.same(stored, shown, 'after a remount the store holds exactly what was shown, change times and inode numbers included')
})
