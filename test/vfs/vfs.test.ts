import t from 'tap'
import { randomBytes } from 'node:crypto'
import { openNode } from '../helpers/node.js'
import { tempDir } from '../helpers/disktro.js'
import type { Vfs } from '../../src/vfs/vfs.js'
import type { BlockReader } from '../../src/chunks/block-reader.js'
import type { Namespace } from '../../src/meta/namespace.js'
import { S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO } from '../../src/vfs/vfs.js'

const CS = 64 * 1024 // small chunks keep these tests quick

async function writeFile (vfs: Vfs, path: string, data: Buffer, offset = 0): Promise<void> {
  let fh: number
  try { fh = vfs.open(path, 2) } catch { fh = vfs.create(path, 0o644) }
  await vfs.write(fh, data, data.length, offset)
  await vfs.release(fh)
}

async function readFile (vfs: Vfs, path: string): Promise<Buffer> {
  const st = vfs.getattr(path)
  const fh = vfs.open(path, 0)
  const buf = Buffer.alloc(st.size)
  const n = await vfs.read(fh, buf, st.size, 0)
  await vfs.release(fh)
  return buf.subarray(0, n)
}

function chunkCount (node: Awaited<ReturnType<typeof openNode>>): number {
  return node.volume.store.chunks.getKeysCount()
}

t.test('files, directories, links and symlinks', async t => {
  const node = await openNode(t, { config: { chunkSize: CS } })
  const vfs = node.vfs
  vfs.mkdir('/d', 0o755)
  t.equal(vfs.getattr('/d').mode, S_IFDIR | 0o755)
  t.equal(vfs.getattr('/').nlink, 3, 'root nlink counts the subdirectory')
  const data = randomBytes(3 * CS + 123)
  await writeFile(vfs, '/d/f', data)
  t.same(await readFile(vfs, '/d/f'), data)
  t.equal(vfs.getattr('/d/f').size, data.length)
  t.equal(vfs.getattr('/d/f').mode, S_IFREG | 0o644)
  vfs.link('/d/f', '/g')
  t.equal(vfs.getattr('/g').nlink, 2)
  t.equal(vfs.getattr('/d/f').ino, vfs.getattr('/g').ino)
  vfs.unlink('/d/f')
  t.equal(vfs.getattr('/g').nlink, 1)
  t.same(await readFile(vfs, '/g'), data, 'data survives through the other name')
  vfs.symlink('g', '/s')
  t.equal(vfs.getattr('/s').mode & 0o170000, S_IFLNK)
  t.equal(vfs.readlink('/s'), 'g')
  vfs.mknod('/fifo', S_IFIFO | 0o600, 0)
  t.equal(vfs.getattr('/fifo').mode & 0o170000, S_IFIFO)
  t.throws(() => vfs.mkdir('/d', 0o755), { code: 'EEXIST' })
  t.throws(() => vfs.rmdir('/'.concat('nope')), { code: 'ENOENT' })
  t.throws(() => vfs.getattr('/g/x'), { code: 'ENOTDIR' })
  t.throws(() => vfs.create('/' + 'n'.repeat(256), 0o644), { code: 'ENAMETOOLONG' })
  t.same(vfs.readdir('/').sort(), ['.', '..', 'd', 'fifo', 'g', 's'])
})

t.test('rename semantics', async t => {
  const node = await openNode(t, { config: { chunkSize: CS } })
  const vfs = node.vfs
  vfs.mkdir('/a', 0o755); vfs.mkdir('/a/b', 0o755); vfs.mkdir('/c', 0o755)
  await writeFile(vfs, '/a/b/f', Buffer.from('one'))
  await writeFile(vfs, '/c/f2', Buffer.from('two'))
  t.throws(() => vfs.rename('/a', '/a/b/x'), { code: 'EINVAL' }, 'not into own subtree')
  vfs.rename('/a/b', '/c/b')
  t.same(await readFile(vfs, '/c/b/f'), Buffer.from('one'))
  t.equal(vfs.getattr('/a').nlink, 2, 'old parent lost a subdirectory')
  t.equal(vfs.getattr('/c').nlink, 3, 'new parent gained one')
  vfs.rename('/c/f2', '/c/b/f')
  t.same(await readFile(vfs, '/c/b/f'), Buffer.from('two'), 'replaces a file')
  t.throws(() => vfs.getattr('/c/f2'), { code: 'ENOENT' })
  vfs.mkdir('/empty', 0o755)
  t.throws(() => vfs.rename('/empty', '/c'), { code: 'ENOTEMPTY' })
  vfs.rename('/a', '/empty')
  t.throws(() => vfs.getattr('/a'), { code: 'ENOENT' })
  t.equal(vfs.getattr('/empty').mode & 0o170000, S_IFDIR, 'replaced an empty directory')
  t.throws(() => vfs.rename('/c/b/f', '/empty'), { code: 'EISDIR' })
  t.throws(() => vfs.rmdir('/c'), { code: 'ENOTEMPTY' })
})

t.test('sparse files, truncate, and random writes rewrite one block', async t => {
  const node = await openNode(t, { config: { chunkSize: CS } })
  const vfs = node.vfs
  const fh = vfs.create('/sparse', 0o644)
  const big = 5 * 1024 ** 3
  await vfs.ftruncate(fh, big)
  await vfs.write(fh, Buffer.from('tail'), 4, 4.5 * 1024 ** 3)
  await vfs.release(fh)
  t.equal(vfs.getattr('/sparse').size, big)
  t.equal(chunkCount(node), 1, 'holes are not stored')
  const probe = Buffer.alloc(8)
  const rh = vfs.open('/sparse', 0)
  await vfs.read(rh, probe, 8, 4.5 * 1024 ** 3 - 2)
  t.same(probe, Buffer.from([0, 0, 0x74, 0x61, 0x69, 0x6c, 0, 0]), 'data past 4 GiB, zeros around it')
  await vfs.release(rh)

  const data = randomBytes(10 * CS)
  await writeFile(vfs, '/f', data)
  const before = chunkCount(node)
  const patch = randomBytes(100)
  await writeFile(vfs, '/f', patch, 5 * CS + 7)
  patch.copy(data, 5 * CS + 7)
  t.same(await readFile(vfs, '/f'), data)
  t.equal(chunkCount(node), before, 'one block replaced: one chunk in, one reclaimed')

  await vfs.truncate('/f', 3 * CS + 10)
  await vfs.truncate('/f', 4 * CS)
  const back = await readFile(vfs, '/f')
  t.same(back.subarray(0, 3 * CS + 10), data.subarray(0, 3 * CS + 10))
  t.ok(back.subarray(3 * CS + 10).equals(Buffer.alloc(CS - 10)), 'bytes cut by truncate do not come back')
})

t.test('dedupe and reclaiming space', async t => {
  const node = await openNode(t, { config: { chunkSize: CS } })
  const vfs = node.vfs
  const data = randomBytes(4 * CS)
  await writeFile(vfs, '/a', data)
  await writeFile(vfs, '/b', data)
  t.equal(chunkCount(node), 4, 'identical blocks are stored once')
  vfs.unlink('/a')
  t.equal(chunkCount(node), 4, 'still referenced by /b')
  vfs.unlink('/b')
  t.equal(chunkCount(node), 0, 'unreferenced chunks are reclaimed')
  t.equal(node.volume.store.refs.getKeysCount(), 0)
})

t.test('times follow POSIX', async t => {
  const node = await openNode(t, { config: { chunkSize: CS } })
  const vfs = node.vfs
  await writeFile(vfs, '/f', Buffer.from('x'))
  vfs.utimens('/f', 1000, 2000)
  let st = vfs.getattr('/f')
  t.equal(st.atime, 1000); t.equal(st.mtime, 2000)
  vfs.utimens('/f', undefined, 3000)
  st = vfs.getattr('/f')
  t.equal(st.atime, 1000, 'atime untouched by an mtime-only change'); t.equal(st.mtime, 3000)
  vfs.utimens('/f', 4000, undefined)
  st = vfs.getattr('/f')
  t.equal(st.atime, 4000); t.equal(st.mtime, 3000, 'mtime untouched by an atime-only change')
  const c0 = st.ctime
  await new Promise(resolve => setTimeout(resolve, 5))
  vfs.chmod('/f', 0o600)
  t.ok(vfs.getattr('/f').ctime > 3000 && vfs.getattr('/f').ctime >= c0, 'chmod sets ctime')
  t.equal(vfs.getattr('/f').mode, S_IFREG | 0o600)
  await writeFile(vfs, '/f', Buffer.from('y'), 1)
  t.ok(vfs.getattr('/f').mtime > 3000, 'write sets mtime')
})

t.test('bytes of a block never written read as zeros, also from recycled buffers', async t => {
  const node = await openNode(t, { config: { chunkSize: CS } })
  const vfs = node.vfs
  // Fill the buffer pool with non-zero blocks first.
  await writeFile(vfs, '/noise', Buffer.alloc(8 * CS, 0xaa))
  const fh = vfs.create('/sparse', 0o644)
  const a = randomBytes(1000)
  const b = randomBytes(2000)
  await vfs.write(fh, a, a.length, 100) // gap [0, 100) in block 0
  await vfs.write(fh, b, b.length, CS / 2) // gap [1100, CS/2) in block 0
  await vfs.write(fh, a, a.length, 2 * CS + 10) // block 1 untouched: a hole; block 0's tail now inside the file
  const expect = Buffer.alloc(2 * CS + 10 + a.length)
  a.copy(expect, 100)
  b.copy(expect, CS / 2)
  a.copy(expect, 2 * CS + 10)
  const open = Buffer.alloc(expect.length)
  t.equal(await vfs.read(fh, open, open.length, 0), expect.length)
  t.ok(open.equals(expect), 'read back while the blocks are still being written')
  await vfs.release(fh)
  t.ok((await readFile(vfs, '/sparse')).equals(expect), 'read back after they were sealed')
})

// The kernel's own read-ahead sends several requests at once, a few blocks
// apart and out of order. Read-ahead must treat that as sequential and keep
// READ_AHEAD (8) blocks in flight; it used to fall back to one block on every
// out-of-order arrival, so the crypto worker sat idle between blocks.
t.test('read-ahead keeps its window when requests arrive a few blocks apart and out of order', async t => {
  const node = await openNode(t, { config: { chunkSize: CS } })
  const vfs = node.vfs
  const data = randomBytes(40 * CS)
  await writeFile(vfs, '/big', data)
  const internals = vfs as unknown as { reader: BlockReader, ns: Namespace }
  const asked = new Set<string>()
  const prefetch = internals.reader.prefetch.bind(internals.reader)
  internals.reader.prefetch = (id: Buffer) => { asked.add(id.toString('hex')); prefetch(id) }
  const ino = vfs.getattr('/big').ino
  const fh = vfs.open('/big', 0)
  // Three requests in flight at a time, the furthest first.
  const order = [2, 0, 1, 5, 3, 4, 8, 6, 7, 11, 9, 10, 14, 12, 13, 16, 15]
  for (let k = 0; k < order.length; k += 3) {
    await Promise.all(order.slice(k, k + 3).map(async i => {
      const buf = Buffer.alloc(CS)
      t.equal(await vfs.read(fh, buf, CS, i * CS), CS)
      if (!buf.equals(data.subarray(i * CS, (i + 1) * CS))) t.fail(`block ${i} read back wrong`)
    }))
  }
  await vfs.release(fh)
  let furthest = -1
  for (let i = 0; i < 40; i++) if (asked.has(internals.ns.getBlock(ino, i)!.id.toString('hex'))) furthest = i
  t.ok(furthest >= 16 + 7, `blocks up to ${furthest} were asked for ahead of a read at block 16`)
})

// Blocks evicted from the reader's cache lend their memory to later reads
// (BlockReader.retire): many concurrent reads across far more blocks than the
// cache holds must each still see their own block's bytes.
t.test('concurrent reads across many more blocks than the cache holds read the right bytes', async t => {
  const node = await openNode(t, { config: { chunkSize: CS } })
  const vfs = node.vfs
  const blocks = 150 // the cache holds 48
  const data = randomBytes(blocks * CS)
  await writeFile(vfs, '/many', data)
  const fh = vfs.open('/many', 0)
  let x = 7
  const rnd = (n: number): number => { x = (x * 1103515245 + 12345) % 2147483648; return x % n }
  let wrong = 0
  for (let round = 0; round < 40; round++) {
    await Promise.all(Array.from({ length: 16 }, async () => {
      const i = rnd(blocks)
      const off = i * CS + rnd(CS / 2)
      const len = 1 + rnd(CS)
      const buf = Buffer.alloc(len)
      const n = await vfs.read(fh, buf, len, off)
      if (!buf.subarray(0, n).equals(data.subarray(off, off + n))) wrong++
    }))
  }
  await vfs.release(fh)
  t.equal(wrong, 0, '640 reads, none saw another block\'s bytes')
  t.same(await readFile(vfs, '/many'), data, 'and a whole sequential read matches')
})

// tar sets a file's old mtime while it is still open, then closes it. The
// block's commit then carries that old mtime; the change time must still be
// when it happened, and one commit of the block is all close needs.
t.test('an old mtime set on an open file keeps ctime at the change, across close', async t => {
  const node = await openNode(t, { config: { chunkSize: CS } })
  const vfs = node.vfs
  const fh = vfs.create('/tarred', 0o644)
  await vfs.write(fh, randomBytes(3000), 3000, 0)
  const before = Date.now()
  vfs.utimens('/tarred', 1_000_000, 2_000_000)
  await vfs.release(fh)
  const st = vfs.getattr('/tarred')
  t.equal(st.mtime, 2_000_000, 'mtime is the one set')
  t.equal(st.size, 3000)
  t.ok(st.ctime >= before, `ctime is the time of the change (${st.ctime} >= ${before})`)
})

// tar x, cp -p and rsync write a file, then set its mode, owner and times,
// then close it: the attribute changes ride in the commit of the data.
t.test('attribute changes to a file with buffered data commit with that data', async t => {
  const dataDir = await tempDir(t)
  let node = await openNode(t, { dataDir, config: { chunkSize: CS } })
  const ops: string[] = []
  node.volume.access!.ns.onCommit(c => { ops.push(c.op) })
  const vfs = node.vfs
  const fh = vfs.create('/f', 0o644)
  await vfs.write(fh, Buffer.alloc(3000, 7), 3000, 0)
  ops.length = 0
  vfs.chmod('/f', 0o600)
  vfs.chown('/f', 1234, 5678)
  vfs.utimens('/f', 1_000_000, 2_000_000)
  const want = { mode: S_IFREG | 0o600, uid: 1234, gid: 5678, atime: 1_000_000, mtime: 2_000_000, size: 3000 }
  const pick = (st: ReturnType<Vfs['getattr']>): typeof want => ({ mode: st.mode, uid: st.uid, gid: st.gid, atime: st.atime, mtime: st.mtime, size: st.size })
  t.same(pick(vfs.getattr('/f')), want, 'getattr shows the changes at once')
  t.same(ops, [], 'nothing committed yet')
  await vfs.release(fh)
  t.same(ops, ['blocks'], 'close committed data and attributes in one change')
  t.same(pick(vfs.getattr('/f')), want, 'and getattr still shows them')

  // With no buffered data there is nothing to ride with: the change commits at once.
  const fh2 = vfs.open('/f', 2)
  ops.length = 0
  vfs.chmod('/f', 0o640)
  t.same(ops, ['setattr'], 'a chmod of a clean open file commits at once')
  await vfs.release(fh2)

  await node.close()
  node = await openNode(t, { dataDir, config: { chunkSize: CS } })
  t.same(pick(node.vfs.getattr('/f')), { ...want, mode: S_IFREG | 0o640 }, 'all of it is in the store')
})

// The FUSE layer answers some creates itself (scripts/build-fuse.cjs (i)) and
// the VFS then makes the file with the inode number, handle and time shown.
t.test('a create answered already is made with the inode, handle and time shown', async t => {
  const node = await openNode(t, { config: { chunkSize: CS } })
  const vfs = node.vfs
  vfs.mkdir('/d', 0o755)
  const ino = node.volume.full.ns.allocIno()
  const fh = 0x40000001
  const time = Date.now() - 5000
  vfs.createAnswered('/d/new', 0o640, fh, ino, time)
  const st = vfs.getattr('/d/new')
  t.equal(st.ino, ino, 'the inode number shown')
  t.equal(st.mode, S_IFREG | 0o640)
  t.same([st.atime, st.mtime, st.ctime], [time, time, time], 'its times are the one shown')
  t.equal(vfs.getattr('/d').mtime, time, 'and so are its directory\'s')
  t.equal(vfs.getattr('/d').ctime, time)
  await vfs.write(fh, Buffer.from('hello'), 5, 0)
  await vfs.flush(fh)
  await vfs.release(fh)
  t.equal(vfs.getattr('/d/new').size, 5, 'the handle shown writes to it')
  t.throws(() => vfs.createAnswered('/d/new', 0o640, 0x40000002, node.volume.full.ns.allocIno(), time), { code: 'EEXIST' }, 'an existing name is refused')
  t.throws(() => vfs.createAnswered('/d/other', 0o640, 0x40000003, ino, time), { code: 'EEXIST' }, 'so is an inode number in use')
  const open = vfs.open('/d/new', 2)
  t.throws(() => vfs.createAnswered('/d/third', 0o640, open, node.volume.full.ns.allocIno(), time), { code: 'EINVAL' }, 'and a handle in use')
  await vfs.release(open)
  t.same(vfs.readdir('/d').sort(), ['.', '..', 'new'], 'nothing was made by the refused ones')
})

// A queued write (fuse/write-behind.ts) is done at once when nothing it
// touches must be read first: the bytes are there for reads and commits as
// if written the usual way; otherwise nothing is done and null says so.
t.test('writeNow: at once where nothing must be read first, else nothing', async t => {
  const node = await openNode(t, { config: { chunkSize: CS } })
  const vfs = node.vfs
  const fh = vfs.create('/f', 0o644)
  const a = randomBytes(5000)
  t.equal(vfs.writeNow(fh, a, a.length, 0, 1_000), a.length, 'a new file\'s first bytes')
  const b = randomBytes(2 * CS + 10)
  t.equal(vfs.writeNow(fh, b, b.length, 5000, 2_000), b.length, 'on past its end, across whole blocks')
  t.equal(vfs.getattr('/f').size, 5000 + b.length)
  await vfs.release(fh)
  const expected = Buffer.concat([a, b])
  t.same(await readFile(vfs, '/f'), expected, 'reads back as written')
  t.equal(vfs.getattr('/f').mtime, 2_000, 'the mtime it was given')

  // The file's blocks are committed now: a partial write into one must read it first.
  const fh2 = vfs.open('/f', 2)
  const c = Buffer.from('patched')
  t.equal(vfs.writeNow(fh2, c, c.length, 100, 3_000), null, 'not into a stored block it covers only in part')
  t.same(await readFile(vfs, '/f'), expected, 'and nothing was written')
  const whole = randomBytes(CS)
  t.equal(vfs.writeNow(fh2, whole, whole.length, CS, 4_000), CS, 'a stored block it covers whole is replaced at once')
  await vfs.write(fh2, c, c.length, 100, 5_000)
  t.equal(vfs.writeNow(fh2, c, c.length, 200, 6_000), c.length, 'into a block already read in for writing')
  await vfs.release(fh2)
  const now = Buffer.from(expected)
  whole.copy(now, CS)
  c.copy(now, 100)
  c.copy(now, 200)
  t.same(await readFile(vfs, '/f'), now)

  // A hole before the write reads back as zeros.
  const fh3 = vfs.create('/g', 0o644)
  t.equal(vfs.writeNow(fh3, c, c.length, 3 * CS + 7, 7_000), c.length, 'past a hole')
  await vfs.release(fh3)
  const g = await readFile(vfs, '/g')
  t.equal(g.length, 3 * CS + 7 + c.length)
  t.ok(g.subarray(0, 3 * CS + 7).every(x => x === 0), 'the hole is zeros')
  t.same(g.subarray(3 * CS + 7), c)
})

// flush and release finish before they return when the file has at most one
// small block waiting (OpenFile.flushNow): a small file's close costs no
// promise. Anything bigger goes the usual way and returns a promise.
t.test('flush and release of a small file are done before they return', async t => {
  const node = await openNode(t, { config: { chunkSize: CS } })
  const vfs = node.vfs
  const fh = vfs.create('/small', 0o644)
  const a = randomBytes(5000)
  await vfs.write(fh, a, a.length, 0)
  const before = chunkCount(node)
  t.equal(vfs.flush(fh), undefined, 'flush returns no promise')
  t.equal(chunkCount(node), before + 1, 'and the block is stored when it returns')
  t.equal(node.volume.access!.ns.getAttrs(vfs.getattr('/small').ino)?.size, 5000, 'with the file\'s size')
  t.equal(vfs.release(fh), undefined, 'release of the flushed handle returns no promise')
  t.same(await readFile(vfs, '/small'), a)

  const fh2 = vfs.create('/big', 0o644)
  const b = randomBytes(CS + 100) // a whole block is sealed on a worker
  await vfs.write(fh2, b, b.length, 0)
  const flushed = vfs.flush(fh2)
  t.ok(flushed instanceof Promise, 'two blocks waiting: the usual way')
  await flushed
  t.equal(vfs.flush(fh2), undefined, 'flushed again with nothing waiting: done at once')
  await vfs.release(fh2)
  t.same(await readFile(vfs, '/big'), b)
})
