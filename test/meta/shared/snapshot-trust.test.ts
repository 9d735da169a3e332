// A snapshot is believed only as far as it can be (#28, items 4 and 5): one
// signed by a key that is no member we know, one claiming more of our own
// log than we wrote, or a sequence number near 2^53, is refused; a full
// member keeps writing after it, and a storage-only member keeps its records.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { openNode } from '../../helpers/node.js'
import { tempDir } from '../../helpers/disktro.js'
import { LmdbStore } from '../../../src/store/lmdb-store.js'
import { OpLog } from '../../../src/meta/shared/op-log.js'
import { NamespaceSync, type NsPeer } from '../../../src/replication/namespace-sync.js'
import { encodeOpRecord, signingKeyOfSeed } from '../../../src/codec/op-record.js'
import { encodeSnapshotHeader, encodeSnapshotPart, newSnapshotId, type SnapshotHeader } from '../../../src/codec/snapshot-record.js'
import { MergeTree } from '../../../src/meta/merge/merge-tree.js'
import { smallStateOf, stateItems } from '../../../src/meta/merge/tree-state.js'
import type { Op } from '../../../src/meta/merge/op.js'

const BIG = Number.MAX_SAFE_INTEGER

// A well-formed version 2 snapshot of an empty tree, signed by `secret`.
function forge (h: SnapshotHeader, meta: Buffer, secret: Buffer): { record: Buffer, parts: Buffer[] } {
  const f = new MergeTree().freeze()
  const id = newSnapshotId()
  const parts = [encodeSnapshotPart(id, 0, [...stateItems(f)], meta)]
  return { record: encodeSnapshotHeader(h, id, parts, smallStateOf(f), meta, secret), parts }
}

t.test('a full member refuses snapshots it cannot believe and keeps writing', async t => {
  const node = await openNode(t, { config: { compactEvery: 0 } })
  const shared = node.volume.full.shared!
  const meta = node.volume.full.keys.meta
  const self = node.volume.file.nodeId
  node.vfs.mkdir('/before', 0o755)
  const own = node.volume.oplog.headOf(self)
  t.ok(own >= 1, 'this member has written')

  // A writer we know (its records are in our log).
  const known = signingKeyOfSeed(randomBytes(32))
  const kid = known.publicKey.toString('hex')
  node.volume.members.issueCert(kid, 'full') // a certified full member (volume/member-set.ts)
  const op: Op = { type: 'create', hlc: 5n << 16n, member: kid, seq: 1, id: `${kid}:1`, parent: 'root', name: 'k', kind: 'file', attrs: {}, content: '' }
  t.equal(shared.receive([encodeOpRecord(op, meta, known.secretKey)]).accepted.length, 1)
  const stranger = signingKeyOfSeed(randomBytes(32))
  const sid = stranger.publicKey.toString('hex')
  const none = async (): Promise<Buffer | null> => null
  const adopt = async (s: { record: Buffer, parts: Buffer[] }): Promise<boolean> => await shared.adoptSnapshot(s.record, async i => s.parts[i] ?? null)

  const byStranger = forge({ creator: sid, horizon: 1n, covered: [{ member: sid, seq: 3, hlc: 2n }], base: [] }, meta, stranger.secretKey)
  await t.rejects(adopt(byStranger), { code: 'EPERM', message: /not a full member in good standing/ }, 'signed by a key that is no member')

  const ours = forge({ creator: kid, horizon: 1n, covered: [{ member: self, seq: BIG, hlc: 2n }, { member: kid, seq: 2, hlc: 2n }], base: [] }, meta, known.secretKey)
  await t.rejects(adopt(ours), { code: 'EPERM', message: /changes of ours/ }, 'claiming our own log up to 2^53-1')
  const aFew = forge({ creator: kid, horizon: 1n, covered: [{ member: self, seq: own + 5, hlc: 2n }, { member: kid, seq: 2, hlc: 2n }], base: [] }, meta, known.secretKey)
  await t.rejects(adopt(aFew), { code: 'EPERM', message: /changes of ours/ }, 'or just a few more changes of ours than we wrote')

  const huge = forge({ creator: kid, horizon: 1n, covered: [{ member: kid, seq: BIG, hlc: 2n }], base: [] }, meta, known.secretKey)
  await t.rejects(adopt(huge), { code: 'EPERM', message: /claims/ }, 'another member\'s log up to 2^53-1')

  const overfold = forge({ creator: kid, horizon: 1n, covered: [{ member: kid, seq: 2, hlc: 2n }], base: [{ member: kid, seq: 9 }] }, meta, known.secretKey)
  await t.rejects(adopt(overfold), { code: 'EPERM', message: /does not cover/ }, 'folding records it does not cover')

  const future = forge({ creator: kid, horizon: BigInt(Date.now() + 86_400_000) << 16n, covered: [{ member: kid, seq: 2, hlc: BigInt(Date.now() + 86_400_000) << 16n }], base: [] }, meta, known.secretKey)
  await t.rejects(adopt(future), { code: 'EPERM', message: /future/ }, 'a horizon a day ahead')

  const missing = forge({ creator: kid, horizon: 1n, covered: [{ member: kid, seq: 2, hlc: 2n }], base: [] }, meta, known.secretKey)
  await t.rejects(shared.adoptSnapshot(missing.record, none), { code: 'ENOENT' }, 'parts that do not come: nothing adopted')
  const tampered = { record: missing.record, parts: [Buffer.concat([missing.parts[0].subarray(0, -1), Buffer.from([missing.parts[0][missing.parts[0].length - 1] ^ 1])])] }
  await t.rejects(adopt(tampered), { code: 'CORRUPT_RECORD' }, 'a part that does not match its header')

  t.equal(node.volume.oplog.headOf(self), own, 'our own head did not move')
  node.vfs.mkdir('/after', 0o755)
  t.equal(node.volume.oplog.headOf(self), own + 1, 'and the next change is numbered after it')
  t.ok(shared.tree.resolve('/after'), 'in the shared tree')
})

t.test('a storage-only member ignores a forged snapshot and keeps its records', async t => {
  const store = LmdbStore.open(join(await tempDir(t), 'store'))
  t.teardown(() => store.close())
  const log = new OpLog(store)
  const meta = randomBytes(32)
  const writer = signingKeyOfSeed(randomBytes(32))
  const wid = writer.publicKey.toString('hex')
  const record = (seq: number): Buffer => encodeOpRecord({ type: 'create', hlc: BigInt(seq) << 16n, member: wid, seq, id: `${wid}:${seq}`, parent: 'root', name: `f${seq}`, kind: 'file', attrs: {}, content: '' }, meta, writer.secretKey)
  const lines: string[] = []
  const from: NsPeer & { closed: string | null } = {
    id: 'f'.repeat(64),
    role: 'full',
    closed: null,
    sync: async () => ({ records: [], more: false }),
    push: async () => 0,
    offer: async () => {},
    part: async () => null,
    close (reason) { this.closed = reason }
  }
  const sync = new NamespaceSync({ store, log, shared: null, peers: () => [], print: l => lines.push(l), })
  t.teardown(() => sync.close())
  t.equal(sync.answerPush(from, [record(1), record(2), record(3)]), 3)

  // Signed by a known writer's key, but claiming its log up to 2^53-1.
  const forged = forge({ creator: wid, horizon: 1n, covered: [{ member: wid, seq: BIG, hlc: 3n << 16n }], base: [{ member: wid, seq: BIG }] }, meta, writer.secretKey)
  t.equal(sync.answerSnapshot(from, forged.record), 1)
  await new Promise(resolve => setTimeout(resolve, 50))
  t.equal(log.headOf(wid), 3, 'the head stays')
  t.equal(log.folded, 0, 'nothing folded')
  t.equal([...log.all()].length, 3, 'every record kept')
  t.equal(from.closed, null, 'the relaying peer is not cut off for it')
  t.match(lines.join('\n'), /ignore: it claims/)
  t.equal(sync.answerPush(from, [record(4)]), 1, 'later records are still taken')

  // By a key that is no member at all.
  const stranger = signingKeyOfSeed(randomBytes(32))
  const sid = stranger.publicKey.toString('hex')
  const byStranger = forge({ creator: sid, horizon: 1n, covered: [{ member: wid, seq: 4, hlc: 3n << 16n }], base: [{ member: wid, seq: 4 }] }, meta, stranger.secretKey)
  sync.answerSnapshot(from, byStranger.record)
  await new Promise(resolve => setTimeout(resolve, 50))
  t.equal(log.folded, 0, 'a stranger\'s snapshot folds nothing')
  t.match(lines.join('\n'), /not a full member in good standing/)
})
