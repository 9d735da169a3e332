import t from 'tap'
import { openNode } from '../helpers/node.js'
import { tempDir } from '../helpers/disktro.js'

// `hlc` and `nextIno` in the sys database are bounds written ahead
// (LmdbNamespace.leaseHlc / leaseIno): rewritten only when a commit passes
// them, and never below what was used.
t.test('the clock and the inode counter are stored as leases: most commits leave them alone, and a reopened volume reuses neither', async t => {
  const dataDir = await tempDir(t)
  const a = await openNode(t, { dataDir })
  const store = a.volume.store
  const storedHlc = (): bigint => store.sysGet('hlc')!.readBigUInt64BE(0)
  const storedIno = (): number => store.sysGet('nextIno')!.readDoubleLE(0)
  a.vfs.mkdir('/d', 0o755)
  const h0 = storedHlc()
  const i0 = storedIno()
  const ns = a.volume.full.ns
  t.ok(h0 > ns.clock.current, 'the stored clock is ahead of the last stamp')
  // The bounds are kept in memory too: a commit reads neither from the store.
  const sysGet = store.sysGet.bind(store)
  const reads: string[] = []
  store.sysGet = (key: string) => { reads.push(key); return sysGet(key) }
  t.teardown(() => { store.sysGet = sysGet })
  for (let i = 0; i < 20; i++) await a.vfs.release(a.vfs.create(`/d/f${i}`, 0o644))
  t.same(reads.filter(k => k === 'hlc' || k === 'nextIno'), [], '20 creates read neither bound from the store')
  const lastIno = a.vfs.getattr('/d/f19').ino
  const lastStamp = ns.clock.current
  t.ok(lastStamp < h0, '20 creates within the lease: their stamps are below the stored clock')
  t.equal(storedHlc(), h0, 'so the stored clock was not rewritten')
  t.ok(lastIno < i0, 'the inode numbers used are below the stored counter')
  t.equal(storedIno(), i0, 'so the stored counter was not rewritten')

  // A stamp past the lease (a peer's clock ahead of ours) rewrites it.
  ns.clock.observe(h0 + (5000n << 16n))
  await a.vfs.release(a.vfs.create('/d/later', 0o644))
  t.ok(storedHlc() > ns.clock.current, 'a stamp past the lease moves the stored clock ahead of it again')
  // A failed transaction forgets them: the next commit reads them again.
  const journal = ns.journal
  ns.journal = () => { throw new Error('injected failure') }
  t.throws(() => a.vfs.mkdir('/d/failed', 0o755), /injected failure/, 'a commit that fails')
  ns.journal = journal
  reads.length = 0
  await a.vfs.release(a.vfs.create('/d/after-failure', 0o644))
  t.same(reads.filter(k => k === 'hlc' || k === 'nextIno').sort(), ['hlc', 'nextIno'], 'the commit after it read both bounds again')
  t.throws(() => a.vfs.getattr('/d/failed'), { code: 'ENOENT' }, 'the failed change left nothing')
  const beforeClose = ns.clock.current
  await a.close()

  const b = await openNode(t, { dataDir })
  t.ok(b.volume.full.ns.clock.current > beforeClose, 'reopened: the clock starts above every stamp issued before')
  await b.vfs.release(b.vfs.create('/d/after', 0o644))
  t.ok(b.vfs.getattr('/d/after').ino > b.vfs.getattr('/d/later').ino, 'and a new file gets an unused inode number')
  t.same(b.vfs.readdir('/d').filter(n => n.startsWith('f')).length, 20, 'the files are all there')
})

// A chunk no file references any more, with copies placed elsewhere, waits in
// `garbage` for the collector; a file that references it again takes it back.
t.test('a chunk referenced again leaves the garbage list; a new chunk never enters it', async t => {
  const a = await openNode(t, { dataDir: await tempDir(t) })
  const store = a.volume.store
  const content = Buffer.alloc(200 * 1024, 'disktro garbage ')
  const writeFile = async (path: string): Promise<void> => {
    const fh = a.vfs.create(path, 0o644)
    await a.vfs.write(fh, content, content.length, 0)
    await a.vfs.release(fh)
  }
  await writeFile('/f')
  const ids = [...store.refs.getKeys({})] as Buffer[]
  t.equal(ids.length, 1, 'one chunk, referenced')
  const id = ids[0]
  t.equal(store.garbage.doesExist(id), false, 'a new chunk is not garbage')
  store.holders.putSync(id, Buffer.alloc(32, 7)) // a peer acknowledged a replica
  a.vfs.unlink('/f')
  t.equal(store.refs.doesExist(id), false, 'unreferenced once its file is gone')
  t.equal(store.garbage.doesExist(id), true, 'and listed as garbage: a peer holds a copy')
  await writeFile('/g')
  t.equal(store.refs.getBinary(id)?.readUInt32LE(0), 1, 'the same content again references the chunk')
  t.equal(store.garbage.doesExist(id), false, 'and takes it off the garbage list')
})
