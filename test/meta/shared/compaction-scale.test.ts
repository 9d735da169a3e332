// Compaction at any size (#26): a 100,000-entry namespace is folded into a
// snapshot written in parts, without holding the event loop for long; the
// folded records go; a restart starts from the snapshot and replays only
// what is left; and another member adopts the snapshot part by part and
// shows the same tree.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { openNode } from '../../helpers/node.js'
import { tempDir, PASSWORD } from '../../helpers/disktro.js'
import type { DisktroNode } from '../../../src/node.js'
import { Volume } from '../../../src/volume/volume.js'
import { encodeOpRecord, signingKeyOfSeed } from '../../../src/codec/op-record.js'
import { verifySnapshot } from '../../../src/codec/snapshot-record.js'
import { Member } from '../../../src/meta/merge/member.js'
import { HybridClock } from '../../../src/meta/hlc.js'
import { ROOT_ID, type Op } from '../../../src/meta/merge/op.js'
import { ROOT_INO } from '../../../src/meta/namespace.js'

const DIRS = 100
const FILES = 1000
const config = { compactEvery: 0, compactMargin: 0 }

function text (node: DisktroNode): string {
  return JSON.stringify(node.volume.full.shared!.tree.snapshot(), (_k, v) => typeof v === 'bigint' ? v.toString() : v)
}

function records (node: DisktroNode): number {
  return node.volume.store.oplog.getCount({})
}

t.test('a 100,000-entry namespace compacts, restarts and is adopted', async t => {
  const dirA = await tempDir(t)
  let a = await openNode(t, { dataDir: dirA, config })
  const shared = a.volume.full.shared!
  const key = signingKeyOfSeed(randomBytes(32))
  const p = new Member(key.publicKey.toString('hex'), new HybridClock())
  const rec = (op: Op): Buffer => encodeOpRecord(op, a.volume.full.keys.meta, key.secretKey)
  let batch: Buffer[] = []
  const flush = (): void => {
    const r = shared.receive(batch)
    if (r.rejected > 0) throw new Error(r.reason)
    shared.reconcile()
    batch = []
  }
  let started = performance.now()
  for (let d = 0; d < DIRS; d++) {
    const dir = p.create(ROOT_ID, `d${d}`, 'dir', '', { mode: 0o40755 })
    batch.push(rec(dir))
    for (let f = 0; f < FILES; f++) {
      batch.push(rec(p.create(dir.id, `f${f}.txt`, 'file', '', { mode: 0o100644, mtime: 1_700_000_000_000 + f })))
      if (batch.length >= 4096) flush()
    }
  }
  flush()
  a.vfs.mkdir('/local', 0o755) // this member writes too
  t.comment(`built in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  const before = text(a)
  t.equal(records(a), DIRS * (FILES + 1) + 1, 'every change is a log record')

  // Every writer published its frontier: everything can fold.
  shared.noteFrontier(p.id, p.clock.current, p.lastSeq)
  let longest = 0
  let last = performance.now()
  const probe = setInterval(() => { const now = performance.now(); longest = Math.max(longest, now - last); last = now }, 1)
  started = performance.now()
  const folded = await shared.compact()
  const compactMs = performance.now() - started
  clearInterval(probe)
  t.equal(shared.compactionError, null, 'no compaction error')
  t.ok(shared.lastCompaction !== null, 'the time of the compaction shows')
  t.ok(folded >= DIRS * (FILES + 1), `${folded} records folded`)
  const snap = a.volume.oplog.snapshot!
  const h = verifySnapshot(snap)
  let bytes = snap.length
  for (let i = 0; i < h.parts.length; i++) bytes += a.volume.oplog.snapshotPart(i)!.length
  t.ok(h.parts.length > 1, `a snapshot of ${h.parts.length} parts`)
  t.comment(`compaction of ${DIRS * (FILES + 1)} entries: ${(compactMs / 1000).toFixed(2)} s, ${(bytes / 1048576).toFixed(1)} MiB (${Math.round(bytes / (DIRS * (FILES + 1)))} bytes per entry), longest event-loop stall ${longest.toFixed(0)} ms`)
  // (The freeze copies the tree's outer maps at once: O(entries), a few hundred ms at 100,000 on a busy machine.)
  t.ok(longest < 2000, `the event loop ran during it (longest stall ${longest.toFixed(0)} ms)`)
  for (let i = 0; i < 200 && records(a) > 10; i++) await new Promise(resolve => setTimeout(resolve, 50))
  t.ok(records(a) <= 2, `the folded records are deleted (${records(a)} left)`)
  t.equal(a.volume.oplog.folded, DIRS * (FILES + 1), 'and count as folded')
  t.equal(text(a), before, 'the tree is unchanged')

  // A restart reads the snapshot and replays only what was not folded.
  await a.close()
  started = performance.now()
  a = await openNode(t, { dataDir: dirA, config })
  const openMs = performance.now() - started
  t.comment(`restart from the snapshot: ${(openMs / 1000).toFixed(2)} s`)
  t.equal([...a.volume.oplog.all()].length, records(a), 'only the records kept are read')
  t.equal(text(a), before, 'the restarted member shows the same tree')
  const ns = a.volume.full.ns
  t.equal(ns.readdir(ns.lookup(ROOT_INO, 'd42')!).length, FILES)

  // Another member of the volume adopts it, a part at a time.
  const dirB = join(await tempDir(t), 'b')
  await Volume.create(dirB, PASSWORD, a.volume.file.chunkSize, { volumeId: a.volume.file.volumeId, key: a.volume.master!, chunkIdHash: a.volume.file.chunkIdHash })
  const b = await openNode(t, { dataDir: dirB, config })
  const bs = b.volume.full.shared!
  const snapA = a.volume.oplog.snapshot!
  const part = async (i: number): Promise<Buffer | null> => a.volume.oplog.snapshotPart(i)
  await t.rejects(bs.adoptSnapshot(snapA, part), { code: 'EPERM' }, 'not from a member without a certificate here')
  b.volume.members.addAll([a.volume.members.certOf(a.volume.file.nodeId)!]) // as a connected member's certificate reaches it
  started = performance.now()
  t.equal(await bs.adoptSnapshot(snapA, part), true, 'adopted')
  const adoptMs = performance.now() - started
  started = performance.now()
  while (!bs.settled) await new Promise(resolve => setTimeout(resolve, 20))
  t.comment(`adoption: ${(adoptMs / 1000).toFixed(2)} s, then materialized in ${((performance.now() - started) / 1000).toFixed(1)} s, in slices`)
  t.equal(text(b), before, 'the adopting member shows the same tree')
  const nb = b.volume.full.ns
  t.equal(nb.readdir(ROOT_INO).length, DIRS + 1)
  t.equal(nb.readdir(nb.lookup(ROOT_INO, 'd99')!).length, FILES, 'in its local tree too')
})
