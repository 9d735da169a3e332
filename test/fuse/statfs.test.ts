// df on a mount tells of the volume (issue 29): size from maxStoreBytes (or
// the disk, when that gives less), used from the store, free what writes
// still get; inodes from the namespace.
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Mount, tempDir, requireFuse } from '../helpers/disktro.js'
import { run, sh, q } from './posix-helpers.js'

const envTimeout = Number(process.env.TAP_TIMEOUT ?? '30')
if (envTimeout !== 0 && envTimeout < 180) t.setTimeout(180_000)

const MiB = 1024 * 1024

// `df -P -B1` of a path: [size, used, avail] in bytes.
async function df (path: string): Promise<[number, number, number]> {
  const [size, used, avail] = (await sh(`df -P -B1 ${q(path)} | tail -n 1`)).trim().split(/\s+/).slice(1, 4).map(Number)
  return [size, used, avail]
}

// `df -P -i`: [inodes, used, free].
async function dfi (path: string): Promise<[number, number, number]> {
  const [n, used, free] = (await sh(`df -P -i ${q(path)} | tail -n 1`)).trim().split(/\s+/).slice(1, 4).map(Number)
  return [n, used, free]
}

t.test('with maxStoreBytes: df -h shows the limit, used grows with data, free reaches 0 at ENOSPC; df -i counts the namespace', async t => {
  if (!await requireFuse(t)) return
  const base = await tempDir(t)
  const config = join(base, 'config.yaml')
  await writeFile(config, 'maxStoreBytes: 50MiB\nreplicaCount: 1\n')
  const m = await Mount.start(t, { dataDir: join(base, 'data'), mountpoint: join(base, 'mnt'), config })

  const [size, used, avail] = await df(m.dir)
  t.ok(Math.abs(size - 50 * MiB) < MiB, `size is the limit: ${size}`)
  t.ok(used > 0 && used < 2 * MiB, `used is the new store's: ${used}`)
  t.equal(size, used + avail, 'used and free add up to the size')
  t.match(await sh(`df -h ${q(m.dir)} | tail -n 1`), /\s50M\s/, 'df -h says 50M')

  const [inodes, iused, ifree] = await dfi(m.dir)
  t.equal(iused, 1, 'one inode used: the root')
  t.equal(inodes, iused + ifree)
  t.ok(ifree > 1000, `free inodes: ${ifree}`)

  await sh(`cd ${q(m.dir)} && mkdir a b && for i in $(seq 1 100); do : > a/f$i; done && ln -s a/f1 l && mkfifo p && sync`)
  t.equal((await dfi(m.dir))[1], 1 + 2 + 100 + 2, 'df -i counts every node made')
  await sh(`rm -r ${q(m.path('b'))} && rm ${q(m.path('a', 'f1'))} ${q(m.path('a', 'f2'))} && sync`)
  t.equal((await dfi(m.dir))[1], 1 + 1 + 98 + 2, 'and every node removed')

  await sh(`head -c ${10 * MiB} /dev/urandom > ${q(m.path('ten'))} && sync`)
  const [size2, used2, avail2] = await df(m.dir)
  t.ok(used2 - used >= 10 * MiB, `used grew by the 10 MiB written: ${used} -> ${used2}`)
  t.ok(Math.abs(size2 - size) < MiB, 'the size stays the limit')
  t.ok(avail - avail2 >= 10 * MiB, `free shrank as much: ${avail} -> ${avail2}`)

  const dd = await run('dd', ['if=/dev/urandom', `of=${m.path('fill')}`, 'bs=1M', 'conv=fsync', 'status=none'], { timeoutMs: 120_000 })
  t.match(dd.stderr, /No space left on device/, 'writing on stops with ENOSPC')
  const [, used3, avail3] = await df(m.dir)
  t.ok(avail3 < 2 * MiB, `df shows (almost) no room left: ${avail3}`)
  t.ok(used3 > 48 * MiB, `and the store used: ${used3}`)
  t.equal((await m.stop()).code, 0, 'clean exit')
})

// The default limit (1 TiB) is more than this machine's disk gives.
t.test('with a limit past the disk: the size is what the disk can give the volume', async t => {
  if (!await requireFuse(t)) return
  const base = await tempDir(t)
  const m = await Mount.start(t, { dataDir: join(base, 'data'), mountpoint: join(base, 'mnt') })
  const [, hostUsed, hostAvail] = await df(base)
  if (hostAvail > 512 * 1024 * MiB) {
    t.comment('skipped: the disk gives more than the default limit')
    return
  }
  const [size, used, avail] = await df(m.dir)
  t.ok(Math.abs(avail - hostAvail) < 64 * MiB, `free is the disk's: ${avail} against ${hostAvail}`)
  t.ok(size < hostUsed + hostAvail, `the size is not the limit (1 TiB): ${size}`)
  t.equal(size, used + avail)
  t.equal((await m.stop()).code, 0, 'clean exit')
})
