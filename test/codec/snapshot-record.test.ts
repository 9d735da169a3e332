// Namespace snapshots (docs/format.md, "Snapshots"): version 2 in parts
// named by hash in a signed header; version 1 (one record) still read.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { signingKeyOfSeed } from '../../src/codec/op-record.js'
import {
  encodeSnapshot, encodeSnapshotHeader, encodeSnapshotPart, decodeSnapshotPart, decodeSnapshotState, newSnapshotId,
  snapshotIdOf, verifySnapshot, verifySnapshotPart, SNAPSHOT_VERSION, SNAPSHOT_V1, PART_VERSION
} from '../../src/codec/snapshot-record.js'
import { MergeTree } from '../../src/meta/merge/merge-tree.js'
import { Member } from '../../src/meta/merge/member.js'
import { HybridClock } from '../../src/meta/hlc.js'
import { smallStateOf, stateItems, TreeBuilder } from '../../src/meta/merge/tree-state.js'
import { readSnapshot } from '../../src/meta/shared/snapshots.js'

const key = signingKeyOfSeed(randomBytes(32))
const creator = key.publicKey.toString('hex')
const meta = randomBytes(32)

function sampleTree (): MergeTree {
  const m = new Member(creator, new HybridClock())
  const d = m.create('root', 'docs', 'dir', '', { mode: 0o40755 })
  const f = m.create(d.id, 'a.txt', 'file', '', { mode: 0o100644, mtime: 5 })
  m.write(f.id, '{"s":1,"b":[]}', f.id, { mtime: 6 })
  m.write(f.id, '', f.id) // a conflict copy
  m.create('root', 'link', 'symlink', 'docs/a.txt')
  m.removeNode(m.create('root', 'gone', 'file').id, [])
  return m.tree
}

const header = { creator, horizon: 7n << 16n, covered: [{ member: creator, seq: 6, hlc: 9n << 16n }], base: [{ member: creator, seq: 4 }] }

t.test('version 2: header and parts round-trip', async t => {
  const tree = sampleTree()
  const f = tree.freeze()
  const id = newSnapshotId()
  const items = [...stateItems(f)]
  const parts = [encodeSnapshotPart(id, 0, items.slice(0, 2), meta), encodeSnapshotPart(id, 1, items.slice(2), meta)]
  const record = encodeSnapshotHeader(header, id, parts, smallStateOf(f), meta, key.secretKey)
  t.equal(record[0], SNAPSHOT_VERSION)
  t.equal(parts[0][0], PART_VERSION)
  t.same(parts[1].subarray(1, 17), id, 'a part names its snapshot')
  t.equal(parts[1].readUInt32BE(17), 1, 'and its index')
  const h = verifySnapshot(record)
  t.same({ creator: h.creator, horizon: h.horizon, covered: h.covered, base: h.base }, header)
  t.same(h.id, id)
  t.same(snapshotIdOf(record), id, 'the id is found without the key')
  t.equal(h.parts.length, 2)
  for (let i = 0; i < 2; i++) verifySnapshotPart(h, i, parts[i])
  t.throws(() => verifySnapshotPart(h, 0, parts[1]), { code: 'CORRUPT_RECORD' }, 'a part in the wrong place')
  const b = new TreeBuilder()
  b.add(decodeSnapshotPart(h, 0, parts[0], meta))
  b.add(decodeSnapshotPart(h, 1, parts[1], meta))
  const { state } = decodeSnapshotState(record, meta)
  t.same(b.finish(state).snapshot(), tree.snapshot(), 'the same tree')
  t.same(readSnapshot(record, i => parts[i], meta).tree.snapshot(), tree.snapshot(), 'as read at start-up')
  t.throws(() => decodeSnapshotPart(h, 0, parts[0], randomBytes(32)), { code: 'CORRUPT_RECORD' }, 'another volume\'s key')
  const forged = Buffer.from(record); forged[45] ^= 1
  t.throws(() => verifySnapshot(forged), { code: 'CORRUPT_RECORD' }, 'a changed header fails its signature')
})

t.test('version 1 snapshots are still read', async t => {
  const tree = sampleTree()
  const record = encodeSnapshot(header, tree.toState(), meta, key.secretKey)
  t.equal(record[0], SNAPSHOT_V1)
  const h = verifySnapshot(record)
  t.equal(h.version, SNAPSHOT_V1)
  t.equal(h.parts.length, 0)
  t.equal(snapshotIdOf(record), null)
  t.same(readSnapshot(record, () => null, meta).tree.snapshot(), tree.snapshot(), 'the same tree')
})
