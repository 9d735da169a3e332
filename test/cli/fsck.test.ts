// `disktro fsck` on real data dirs: a volume written through the VFS
// in-process, then damaged behind the store's back, checked by the CLI.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { open as openLmdb, type RootDatabase } from 'lmdb'
import { openNode } from '../helpers/node.js'
import { disktro, tempDir, PASSWORD } from '../helpers/disktro.js'
import { spawnDisktro } from '../helpers/cluster.js'
import { Volume } from '../../src/volume/volume.js'
import { u64Key, pairKey, inodeAd } from '../../src/codec/keys.js'
import { seal } from '../../src/crypto/aead.js'
import { encodeInode } from '../../src/codec/inode-record.js'
import { encodeBlockRef } from '../../src/codec/block-record.js'
import type { Vfs } from '../../src/vfs/vfs.js'

const envTimeout = Number(process.env.TAP_TIMEOUT ?? '30')
if (envTimeout !== 0 && envTimeout < 120) t.setTimeout(120_000)

const KiB = 1024

async function put (vfs: Vfs, path: string, data: Buffer): Promise<void> {
  const fh = vfs.create(path, 0o644)
  await vfs.write(fh, data, data.length, 0)
  await vfs.release(fh)
}

// A volume with a tree and some data (64 KiB chunks: several per file).
async function makeVolume (t: Parameters<typeof openNode>[0]): Promise<string> {
  const dataDir = join(await tempDir(t), 'data')
  const node = await openNode(t, { dataDir, config: { chunkSize: 64 * KiB, scrubRate: 0 } })
  const vfs = node.vfs
  vfs.mkdir('/d', 0o755)
  vfs.mkdir('/d/e', 0o755)
  await put(vfs, '/d/a', randomBytes(300 * KiB))
  await put(vfs, '/d/e/b', randomBytes(100 * KiB))
  await put(vfs, '/small', Buffer.from('hello'))
  vfs.link('/d/a', '/hard')
  vfs.symlink('d/a', '/sym')
  await put(vfs, '/gone', randomBytes(70 * KiB))
  vfs.unlink('/gone')
  await node.close()
  return dataDir
}

function openDbs (dataDir: string): { env: RootDatabase<Buffer, Buffer>, db: (name: string) => ReturnType<RootDatabase<Buffer, Buffer>['openDB']> } {
  const env = openLmdb<Buffer, Buffer>({ path: join(dataDir, 'store'), maxDbs: 16, encoding: 'binary', keyEncoding: 'binary', compression: false })
  return { env, db: name => env.openDB<Buffer, Buffer>({ name, encoding: 'binary', keyEncoding: 'binary', compression: false }) }
}

async function fsck (dataDir: string, ...args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return await disktro(['fsck', '--data-dir', dataDir, ...args])
}

t.test('a clean volume: exit 0', async t => {
  const dataDir = await makeVolume(t)
  const r = await fsck(dataDir)
  t.equal(r.code, 0, r.stdout + r.stderr)
  t.match(r.stdout, /checked .* \(full member\): \d+ inodes, \d+ directory entries, \d+ block map entries, \d+ chunks/)
  t.match(r.stdout, /^clean$/m)
  const j = JSON.parse((await fsck(dataDir, '--json')).stdout)
  t.match(j, { role: 'full', found: 0, remaining: 0, problems: [] })
  t.ok(j.checked.chunks >= 7, `${j.checked.chunks} chunks checked`)
  const wrong = await disktro(['fsck', '--data-dir', dataDir], { password: 'not the password' })
  t.equal(wrong.code, 2, 'exit 2: could not check')
  t.match(wrong.stderr, /^disktro: wrong password for this volume$/m)
})

t.test('damage is found, one line per kind; --repair fixes what it can offline', async t => {
  const dataDir = await makeVolume(t)
  const v = await Volume.open(dataDir, PASSWORD, { maxStoreBytes: 1 << 30, readOnly: true })
  const sym = v.full.ns.lookup(1, 'sym')!
  await v.close()
  const { env, db } = openDbs(dataDir)
  const chunks = db('chunks'); const refs = db('refs'); const inodes = db('inodes')
  const ids = [...chunks.getKeys({})].map(k => Buffer.from(k as Buffer))
  // a wrong reference count
  const r0 = Buffer.from(refs.getBinary(ids[0])!)
  r0.writeUInt32LE(r0.readUInt32LE(0) + 5)
  await refs.put(ids[0], r0)
  // a leaked chunk: stored, nothing references it
  const leaked = randomBytes(32)
  await chunks.put(leaked, Buffer.concat([Buffer.from([1, 0]), randomBytes(1000)]))
  // a flipped byte in a stored chunk
  const victim = ids[1]
  const bad = Buffer.from(chunks.getBinary(victim)!)
  bad[bad.length >> 1] ^= 1
  await chunks.put(victim, bad)
  // a directory entry whose inode is gone: remove the inode of /sym
  await inodes.remove(u64Key(sym))
  await env.close()

  const r = await fsck(dataDir)
  t.equal(r.code, 1, 'exit 1: problems found')
  t.match(r.stdout, /^wrong chunk reference counts: 1 \(--repair: fixed\)$/m)
  t.match(r.stdout, /^leaked chunks \(no file references them, not held for a peer\): 1 \(--repair: dropped\)$/m)
  t.match(r.stdout, /^corrupt chunks: 1; start the daemon: its scrubber fetches good copies from peers$/m)
  t.match(r.stdout, /^directory entries naming a missing inode: 1 \(--repair: removed\)$/m)
  t.match(r.stdout, /^4 problem\(s\) found$/m)
  const j = JSON.parse((await fsck(dataDir, '--json')).stdout)
  t.same(j.problems.map((p: any) => p.kind).sort(), ['chunk-corrupt', 'chunk-leaked', 'dirent-dangling', 'refcount-wrong'])

  const fixed = await fsck(dataDir, '--repair')
  t.equal(fixed.code, 1, 'exit 1: problems were found (and fixed)')
  t.match(fixed.stdout, /^wrong chunk reference counts: 1: fixed$/m)
  t.match(fixed.stdout, /^leaked chunks .*: 1: dropped$/m)
  t.match(fixed.stdout, /^directory entries naming a missing inode: 1: removed$/m)
  t.match(fixed.stdout, /^corrupt chunks: 1: NOT repaired offline; start the daemon/m)
  t.match(fixed.stdout, /^4 problem\(s\) found, 3 fixed, 1 remain$/m)

  const after = await fsck(dataDir, '--json')
  t.equal(after.code, 1, 'the corrupt chunk remains: it needs a peer')
  t.same(JSON.parse(after.stdout).problems.map((p: any) => [p.kind, p.count]), [['chunk-corrupt', 1]])

  // put the original byte back: clean
  const again = openDbs(dataDir)
  bad[bad.length >> 1] ^= 1
  await again.db('chunks').put(victim, bad)
  await again.env.close()
  const clean = await fsck(dataDir)
  t.equal(clean.code, 0, clean.stdout)
  t.match(clean.stdout, /^clean$/m)
})

t.test('link and block counts, block maps of missing inodes, lost records', async t => {
  const dataDir = await makeVolume(t)
  const v = await Volume.open(dataDir, PASSWORD, { maxStoreBytes: 1 << 30, readOnly: true })
  const ns = v.full.ns
  const meta = v.full.keys.meta
  const a = ns.lookup(ns.lookup(1, 'd')!, 'a')!
  const key = u64Key(a)
  v.store.txn(() => {
    v.store.inodes.putSync(key, seal(meta, encodeInode({ ...ns.getAttrs(a)!, nlink: 7, blocks: 99 }), inodeAd(key)))
    const orphan = pairKey(99999, 0)
    v.store.blocks.putSync(orphan, seal(meta, encodeBlockRef({ id: ns.getBlock(a, 0)!.id, length: 10 }), orphan))
  })
  await v.close()
  const { env, db } = openDbs(dataDir)
  const chunks = db('chunks')
  const lost = [...chunks.getKeys({})].map(k => Buffer.from(k as Buffer))[2]
  await chunks.remove(lost) // the record goes, its checksum stays
  await env.close()
  const r = await fsck(dataDir, '--json')
  t.equal(r.code, 1)
  t.same(JSON.parse(r.stdout).problems.map((p: any) => [p.kind, p.count]), [['nlink-wrong', 1], ['block-no-inode', 1], ['blocks-wrong', 1], ['chunk-missing', 1]])
  const fixed = await fsck(dataDir, '--repair')
  t.match(fixed.stdout, /^wrong link counts: 1: fixed$/m)
  t.match(fixed.stdout, /^block map entries of a missing inode: 1: removed$/m)
  t.match(fixed.stdout, /^missing chunks \(stored here once, record gone\): 1: NOT repaired offline; start the daemon/m)
  const after = JSON.parse((await fsck(dataDir, '--json')).stdout)
  t.same(after.problems.map((p: any) => p.kind), ['chunk-missing'], 'only the lost record remains')
})

t.test('a running daemon: refused in one line', async t => {
  const dataDir = await makeVolume(t)
  const d = spawnDisktro(t, ['serve', '--data-dir', dataDir])
  await d.waitFor(/serving volume/)
  const r = await fsck(dataDir)
  t.equal(r.code, 2)
  t.match(r.stderr, /^disktro: a daemon \(pid \d+\) is using .*: stop it first/)
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line')
  await d.stop()
})

t.test('storage-only member: checksums only', async t => {
  const dataDir = await makeVolume(t)
  const base = join(dataDir, '..')
  const inv = await disktro(['invite', '--storage-only', '--data-dir', dataDir])
  t.equal(inv.code, 0, inv.stderr)
  const sdir = join(base, 'storage')
  const j = await disktro(['join', inv.stdout.trim(), '--data-dir', sdir])
  t.equal(j.code, 0, j.stderr)
  // give it three chunk records, as a peer's pushes would, with checksums
  const { LmdbStore } = await import('../../src/store/lmdb-store.js')
  const src = openDbs(dataDir)
  const recs = [...src.db('chunks').getRange({})].slice(0, 3).map(({ key, value }) => ({ id: Buffer.from(key as Buffer), record: Buffer.from(value as Buffer) }))
  await src.env.close()
  const store = LmdbStore.open(join(sdir, 'store'))
  for (const r of recs) await store.putChunk(r.id, r.record)
  await store.close()
  const ok = await fsck(sdir)
  t.equal(ok.code, 0, ok.stdout + ok.stderr)
  t.match(ok.stdout, /storage-only: chunk checksums only\): 3 chunks/)
  const { env, db } = openDbs(sdir)
  const flipped = Buffer.from(recs[0].record)
  flipped[flipped.length >> 1] ^= 4
  await db('chunks').put(recs[0].id, flipped)
  await env.close()
  const bad = await fsck(sdir, '--json')
  t.equal(bad.code, 1)
  t.match(JSON.parse(bad.stdout), { role: 'storage', problems: [{ kind: 'chunk-corrupt', count: 1, fixed: 0 }] })
})
