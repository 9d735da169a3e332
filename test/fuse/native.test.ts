// The patched addon's loop-end hook (scripts/build-fuse.cjs (j)), on two
// bare fuse-native mounts in this process: each mount's callback fires when
// that mount is unmounted from outside, and only then. The mounts are driven
// by child processes only (their callbacks run on this event loop).
import t from 'tap'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { loadFuse, onFuseLoopEnd, type FuseInstance } from '../../src/fuse/native.js'
import { isMounted, unmountPath } from '../../src/fuse/unmount.js'
import { tempDir, requireFuse, sh, sleep } from '../helpers/disktro.js'

async function bareMount (dir: string): Promise<FuseInstance> {
  const Fuse = loadFuse()
  const now = new Date()
  const fuse = new Fuse(dir, {
    getattr: (path, cb) => path === '/' ? cb(0, { mode: 0o40701, size: 0, uid: 0, gid: 0, nlink: 2, mtime: now, atime: now, ctime: now }) : cb(Fuse.ENOENT),
    readdir: (_path, cb) => cb(0, [])
  })
  await new Promise<void>((resolve, reject) => fuse.mount(err => err ? reject(err) : resolve()))
  return fuse
}

async function until (cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!cond() && Date.now() < deadline) await sleep(25)
  return cond()
}

t.test('each mount hears of its own unmount, and only of its own', async t => {
  if (!await requireFuse(t)) return
  const base = await tempDir(t)
  const [a, b] = [join(base, 'a'), join(base, 'b')]
  await mkdir(a)
  await mkdir(b)
  t.teardown(async () => {
    for (const d of [a, b]) if (await isMounted(d)) await unmountPath(d, { lazy: true }).catch(() => {})
  })
  const fa = await bareMount(a)
  const fb = await bareMount(b)
  const ended: string[] = []
  t.ok(onFuseLoopEnd(fa, () => ended.push('a')), 'the hook is there (patched addon)')
  t.ok(onFuseLoopEnd(fb, () => ended.push('b')))
  t.equal(await sh(`stat -c %a '${a}'`), '701\n', 'mount a answers')

  await sh(`fusermount -u '${a}' 2>/dev/null || umount '${a}'`)
  t.ok(await until(() => ended.length > 0, 10_000), 'a callback came')
  await sleep(300)
  t.same(ended, ['a'], 'mount a\'s, once')
  t.ok(await isMounted(b), 'mount b is untouched')
  t.equal(await sh(`stat -c %a '${b}'`), '701\n', 'and still answers')

  await sh(`fusermount -u '${b}' 2>/dev/null || umount '${b}'`)
  t.ok(await until(() => ended.length > 1, 10_000), 'then b\'s')
  t.same(ended, ['a', 'b'])
  for (const f of [fa, fb]) await new Promise<void>(resolve => f.unmount(() => resolve()))
})
