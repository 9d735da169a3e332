// Stats by name in a directory nobody has listed since the mount (git
// status's lstat of each file in its index, du or cp of a tree): after a
// few reach the event loop, the directory's entries go to the addon's
// attribute cache as a listing's do (src/fuse/fuse-adapter.ts), and the
// rest are answered there, never with attributes from before a change.
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Mount, sh, requireFuse } from '../helpers/disktro.js'
import { daemonErrors } from './posix-helpers.js'

const FILES = 200

function passedToVfs (m: Mount): number | null {
  const s = /attribute cache: \d+ getattrs answered from it, \d+ answered ENOENT, (\d+) passed to the VFS/.exec(m.stdout + m.stderr)
  return s ? Number(s[1]) : null
}

t.test('stats by name of an unlisted directory are answered by the addon after a few', async t => {
  if (!await requireFuse(t)) return
  const first = await Mount.start(t)
  await sh(`cd '${first.dir}' && mkdir d && for i in $(seq 1 ${FILES}); do printf %\${i}s > d/f$i; done`)
  t.equal((await first.stop()).code, 0, 'first mount stopped')
  const m = await Mount.start(t, { dataDir: first.dataDir, mountpoint: first.dir })
  // the names come from outside the mount: no readdir of d before the stats
  const list = join(first.dataDir, '..', 'names')
  await writeFile(list, Array.from({ length: FILES }, (_, i) => join(m.dir, 'd', `f${i + 1}`)).join('\n') + '\n')
  const sizes = (await sh(`xargs -a '${list}' stat -c %s`)).trim().split('\n').map(Number)
  t.same(sizes, Array.from({ length: FILES }, (_, i) => i + 1), 'every file shows its own size')
  // a change after the entries went over shows at once, by name
  await sh(`printf abc >> '${m.path('d', 'f7')}' && touch -d @1000000000 '${m.path('d', 'f9')}'`)
  t.equal((await sh(`stat -c %s '${m.path('d', 'f7')}'`)).trim(), '10', 'an append shows in the size')
  t.equal((await sh(`stat -c %Y '${m.path('d', 'f9')}'`)).trim(), '1000000000', 'a touch shows in the mtime')
  await sh(`rm '${m.path('d', 'f11')}'`)
  t.equal((await sh(`stat '${m.path('d', 'f11')}' 2>&1 || true`)).includes('No such file'), true, 'a removed name is gone')
  t.equal((await m.stop()).code, 0, 'SIGTERM exits 0')
  const passed = passedToVfs(m)
  t.ok(passed !== null && passed < FILES / 4, `getattrs that reached the event loop: ${passed} of ${FILES}+ stats`)
  t.same(daemonErrors(m.stderr), [], 'the daemon logged no unexpected errors')
})
