import t from 'tap'
import { randomBytes } from 'node:crypto'
import { openNode } from '../helpers/node.js'
import { tempDir } from '../helpers/disktro.js'
import { Replicator } from '../../src/replication/replicator.js'
import { Holders } from '../../src/replication/holders.js'
import { PinStore } from '../../src/replication/pin-store.js'
import type { PeerLink } from '../../src/replication/peer-link.js'
import type { Vfs } from '../../src/vfs/vfs.js'
import type { DisktroNode } from '../../src/node.js'

const CS = 64 * 1024

// Pinning lives in src/replication (pin-store.ts, pinning.ts); its tests sit
// here beside the API that drives it.

class FakePeer implements PeerLink {
  readonly id = randomBytes(32).toString('hex')
  readonly role = 'full' as const
  readonly held = new Set<string>()
  async putChunk (id: Buffer): Promise<{ ok: boolean }> { this.held.add(id.toString('hex')); return { ok: true } }
  async getChunk (): Promise<Buffer | null> { return null }
  async stats (): Promise<{ chunks: number, bytes: number }> { return { chunks: this.held.size, bytes: 0 } }
}

async function write (vfs: Vfs, path: string, blocks: number): Promise<void> {
  const data = randomBytes(blocks * CS)
  const fh = vfs.create(path, 0o644)
  await vfs.write(fh, data, data.length, 0)
  await vfs.release(fh)
}

function chunksOf (node: DisktroNode, path: string): string[] {
  const ns = node.volume.full.ns
  const ino = node.vfs.resolve(path)
  return ns.blockIndexes(ino).map(i => ns.getBlock(ino, i)!.id.toString('hex'))
}

async function until (what: string, fn: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

t.test('a pinned file or folder: every chunk on the pinned peer, counted toward the target', async t => {
  const dataDir = await tempDir(t)
  const node = await openNode(t, { dataDir, config: { chunkSize: CS, port: 0 } })
  const vfs = node.vfs
  const pinning = node.pinning!
  const peers = [new FakePeer(), new FakePeer(), new FakePeer()]
  const replicator = new Replicator({ store: node.volume.store, selfId: node.volume.file.nodeId, replicaCount: 2, links: () => peers, log: () => {} })
  replicator.usePins(pinning)
  t.teardown(() => replicator.close())
  const holders = new Holders(node.volume.store)

  vfs.mkdir('/dir', 0o755)
  await write(vfs, '/a', 6)
  await write(vfs, '/dir/b', 5)
  const [p1, , p3] = peers
  t.ok(pinning.pin(vfs.resolve('/dir'), p3.id), 'pinned')
  t.notOk(pinning.pin(vfs.resolve('/dir'), p3.id), 'pinning twice changes nothing')
  // The node counts the new chunks' copies (ReplicaState, a moment after the
  // commits): the rescan sweeps the ones it found below target.
  const store = node.volume.store
  await until('the new chunks counted', () => (store.rdirty.getStats() as { entryCount: number }).entryCount === 0)
  replicator.rescan()
  const all = [...chunksOf(node, '/a'), ...chunksOf(node, '/dir/b')]
  await until('every chunk at target', () => all.every(hex => holders.get(Buffer.from(hex, 'hex')).length >= 1))
  for (const hex of chunksOf(node, '/dir/b')) {
    t.same(holders.get(Buffer.from(hex, 'hex')), [p3.id], `chunk ${hex.slice(0, 8)} of the pinned folder: on the pinned peer, and that copy is the second of two`)
  }
  t.ok(chunksOf(node, '/dir/b').every(hex => p3.held.has(hex)), 'the pinned peer holds the whole folder')

  // A pin added after placement: the peer gets what it lacks, on top of the target.
  t.ok(pinning.pin(vfs.resolve('/a'), p1.id))
  replicator.rescan()
  await until('p1 holds all of /a', () => chunksOf(node, '/a').every(hex => p1.held.has(hex)))
  for (const hex of chunksOf(node, '/a')) t.ok(holders.get(Buffer.from(hex, 'hex')).includes(p1.id))

  // A file written later into a pinned folder follows the pin (after the
  // index catches up with the tree, at most a second, and a rescan).
  await write(vfs, '/dir/later', 3)
  await until('p3 holds the new file', () => {
    replicator.rescan()
    return chunksOf(node, '/dir/later').every(hex => p3.held.has(hex))
  }, 5000)
  t.pass('a new file in a pinned folder reached the pinned peer')

  // Reports: path, peer, progress; a rename keeps the pin (it names the inode).
  vfs.rename('/dir', '/moved')
  const reports = pinning.reports(id => id === p3.id)
  t.match(reports.find(r => r.peer === p3.id), { path: '/moved', peerOnline: true, chunks: 8, held: 8 })
  t.match(reports.find(r => r.peer === p1.id), { path: '/a', peerOnline: false, chunks: 6, held: 6 })
  t.same((await node.status()).pins.map(p => p.path).sort(), ['/a', '/moved'], 'status carries the pins')

  // Unpin; deleting a pinned file drops its pin.
  t.ok(pinning.unpin(vfs.resolve('/moved'), p3.id))
  t.notOk(pinning.unpin(vfs.resolve('/moved'), p3.id), 'unpinning twice changes nothing')
  vfs.unlink('/a')
  t.same(pinning.reports(() => false), [], 'the pin of a deleted file is gone')
})

t.test('pins persist in the volume\'s LMDB', async t => {
  const dataDir = await tempDir(t)
  const peer = randomBytes(32).toString('hex')
  let ino: number
  {
    const node = await openNode(t, { dataDir, config: { chunkSize: CS, port: 0 } })
    await write(node.vfs, '/kept', 2)
    ino = node.vfs.resolve('/kept')
    node.pinning!.pin(ino, peer)
    await node.close()
  }
  const node = await openNode(t, { dataDir, config: { chunkSize: CS, port: 0 } })
  t.match(new PinStore(node.volume.store).list(), [{ ino, peer, created: Number }])
  t.match((await node.status()).pins, [{ path: '/kept', ino, peer, chunks: 2, held: 0, peerOnline: false }])
  t.throws(() => new PinStore(node.volume.store).add(1, 'not-a-node-id'), { code: 'EINVAL' })
})
