import t from 'tap'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { LmdbStore } from '../../src/store/lmdb-store.js'
import { OpLog } from '../../src/meta/shared/op-log.js'
import { NamespaceSync, type NsPeer } from '../../src/replication/namespace-sync.js'
import { encodeOpRecord, signingKeyOfSeed } from '../../src/codec/op-record.js'
import type { Op } from '../../src/meta/merge/op.js'
import type { NsHead } from '../../src/codec/wire.js'
import { tempDir } from '../helpers/disktro.js'

const writer = signingKeyOfSeed(randomBytes(32))
const member = writer.publicKey.toString('hex')
const meta = randomBytes(32)
const op = (seq: number): Op => ({ type: 'create', hlc: BigInt(seq) << 16n, member, seq, id: `${member}:${seq}`, parent: 'root', name: `f${seq}`, kind: 'file', attrs: {}, content: '' })
const record = (seq: number): Buffer => encodeOpRecord(op(seq), meta, writer.secretKey)

// A peer as the sync sees it, recording what it is sent and whether it was cut off.
function peer (id: string, serve: (heads: NsHead[]) => { records: Buffer[], more: boolean } = () => ({ records: [], more: false })): NsPeer & { pushed: Buffer[], closed: string | null } {
  const p = {
    id,
    role: 'full' as const,
    pushed: [] as Buffer[],
    closed: null as string | null,
    sync: async (heads: NsHead[]) => serve(heads),
    push: async (records: Buffer[]) => { p.pushed.push(...records); return records.length },
    offer: async () => {},
    part: async () => null,
    close: (reason: string) => { p.closed = reason }
  }
  return p
}

// The relay as a storage-only member runs it: real LMDB, records it cannot open.
t.test('a relay stores verified records, passes them on, and cuts off a forger', async t => {
  const store = LmdbStore.open(join(await tempDir(t), 'store'))
  t.teardown(() => store.close())
  const log = new OpLog(store)
  const honest = peer('a'.repeat(64))
  const other = peer('b'.repeat(64))
  const sync = new NamespaceSync({ store, log, shared: null, peers: () => [honest, other], print: () => {} })
  t.teardown(() => sync.close())

  t.equal(sync.answerPush(honest, [record(1), record(2)]), 2, 'two records accepted')
  t.equal(log.headOf(member), 2)
  t.equal(other.pushed.length, 2, 'relayed to the other peer')
  t.equal(honest.pushed.length, 0, 'not echoed to the sender')
  t.equal(sync.answerPush(honest, [record(2)]), 0, 'a duplicate is ignored')

  const forged = encodeOpRecord(op(3), meta, signingKeyOfSeed(randomBytes(32)).secretKey)
  const liar = peer('c'.repeat(64))
  t.equal(sync.answerPush(liar, [forged, record(4)]), 1, 'only the genuine record of the batch is kept')
  t.match(liar.closed, /invalid namespace record/, 'the peer that sent a forgery is disconnected')
  t.notOk(log.has(member, 3), 'the forgery is not stored')
  // A storage-only member relays what any key signed: refused, not blamed (issue #28, item 3).
  const relayer = peer('f'.repeat(64))
  ;(relayer as { role: string }).role = 'storage'
  t.equal(sync.answerPush(relayer, [forged]), 0, 'a forgery relayed by a storage-only member is refused')
  t.equal(relayer.closed, null, 'and the relayer is not disconnected for it')
  t.ok(log.has(member, 4), 'a record past a gap is kept')
  t.equal(log.headOf(member), 2, 'the head stays at the gapless prefix')

  // A peer that has seq 1 only is sent what it lacks, and its lag shows.
  const answer = sync.answerSync(peer('d'.repeat(64)), 0n, [{ member: writer.publicKey, seq: 1 }])
  t.equal(answer.records.length, 2, 'records 2 and 4')
  t.same(sync.status().find(s => s.id === 'd'.repeat(64))?.behind, 1, 'behind by one change of the gapless prefix')

  // Pulling fills the gap from a peer that has record 3.
  const full = peer('e'.repeat(64), heads => {
    t.same(heads.map(h => [h.member.toString('hex'), h.seq]), [[member, 2]], 'asks with its heads')
    return { records: [record(3)], more: false }
  })
  sync.peerConnected(full)
  await new Promise(resolve => setTimeout(resolve, 50))
  t.equal(log.headOf(member), 4, 'gap filled: head moves to 4')
})
