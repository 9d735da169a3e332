import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import HyperDHT from 'hyperdht'
import Hyperswarm from 'hyperswarm'
import { open as openLmdb } from 'lmdb'
import { requireFuse, sh, disktro, tempDir } from '../helpers/disktro.js'
import { startBootstrap, makeCluster, mountNode, serveNode, storedChunkIds, statusJson, until } from '../helpers/cluster.js'
import { RawConnection, waitFor } from '../net/helpers.js'
import { decodeInvite } from '../../src/volume/invite.js'
import { capabilityProof, topicFor } from '../../src/net/capability.js'
import { WIRE_VERSION, type ReplyBody, type RequestBody } from '../../src/codec/wire.js'

// A member you cannot fully trust (issue #28, items 1 and 2): a scripted
// peer holding only a storage-only join code, speaking the real wire
// protocol to real daemons over loopback, tries to make members drop the
// volume's chunks. Nothing is dropped, every file reads back, and status
// stays truthful.

class Attacker {
  readonly conns: RawConnection[] = []
  private nextId = 1
  readonly swarm: Hyperswarm

  constructor (bootstrap: string, swarmKey: Buffer, role: 'full' | 'storage') {
    const [host, port] = bootstrap.split(':')
    const keyPair = HyperDHT.keyPair()
    this.swarm = new Hyperswarm({ keyPair, dht: new HyperDHT({ bootstrap: [{ host, port: Number(port) }], host: '127.0.0.1', keyPair }) })
    this.swarm.on('connection', stream => {
      const c = new RawConnection(stream)
      this.conns.push(c)
      const side = stream.isInitiator ? 'initiator' : 'responder'
      c.send({ type: 'HELLO', version: WIRE_VERSION, role, proof: capabilityProof(swarmKey, side, stream.handshakeHash) })
    })
    this.swarm.join(topicFor(swarmKey), { client: true, server: true })
    // Heartbeats, as any peer sends them: a member closes a connection
    // silent for three intervals, and this one talks to one member at a time.
    this.pinger = setInterval(() => { for (const c of this.open()) c.send({ type: 'PING', time: 0 }) }, 250)
  }

  private readonly pinger: NodeJS.Timeout

  async destroy (): Promise<void> {
    clearInterval(this.pinger)
    await this.swarm.destroy()
  }

  open (): RawConnection[] {
    return this.conns.filter(c => !c.closed && c.received.some(m => m.type === 'HELLO'))
  }

  async request (c: RawConnection, body: RequestBody): Promise<ReplyBody> {
    const id = this.nextId++
    c.send({ type: 'REQUEST', id, body })
    await waitFor(() => c.closed || c.received.some(m => m.type === 'REPLY' && m.id === id), 30_000, `reply to ${body.type}`)
    const r = c.received.find(m => m.type === 'REPLY' && m.id === id)
    if (!r || r.type !== 'REPLY') throw new Error(`no reply to ${body.type} (connection closed)`)
    return r.body
  }
}

t.test('a storage-only code holder cannot make any member drop the volume\'s chunks', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  const [a, b, c] = await makeCluster(t, bootstrap, ['full', 'full', 'storage'])
  const ma = await mountNode(t, a)
  await serveNode(t, b)
  await serveNode(t, c)
  await until('writer sees both peers online', async () => (await statusJson(a)).peers.filter((p: any) => p.online).length === 2, 60_000)
  const local = await tempDir(t)
  for (let i = 0; i < 8; i++) await sh(`head -c 200000 /dev/urandom > ${join(local, `f${i}`)}`)
  await sh(`cp ${local}/f* ${ma.path('')}`)
  const ids = [...storedChunkIds(a.dataDir)]
  t.equal(ids.length, 8)
  for (const n of [b, c]) await until(`${n.name} holds every chunk`, () => { const have = storedChunkIds(n.dataDir); return ids.every(id => have.has(id)) }, 120_000)
  await until('safe on the writer', async () => (await disktro(['status', '--data-dir', a.dataDir, '--config', a.config])).code === 0, 30_000)

  // The genuine records, as any member could fetch them.
  const env = openLmdb({ path: join(a.dataDir, 'store'), maxDbs: 24, readOnly: true })
  const chunks = env.openDB({ name: 'chunks', encoding: 'binary', keyEncoding: 'binary', compression: false })
  const records = ids.map(id => ({ id: Buffer.from(id, 'hex'), record: Buffer.from(chunks.getBinary(Buffer.from(id, 'hex'))!) }))
  await env.close()

  const code = (await disktro(['invite', '--storage-only', '--data-dir', a.dataDir])).stdout.trim()
  const swarmKey = decodeInvite(code).key

  // Claiming the full role without its key: refused at the handshake.
  const liar = new Attacker(bootstrap, swarmKey, 'full')
  t.teardown(() => liar.destroy())
  await waitFor(() => liar.conns.filter(x => x.closed).length >= 3, 60_000, 'every member to drop the false full member')
  t.equal(liar.open().length, 0, 'a storage-only key cannot pass as a full member')
  await liar.destroy()

  // As what it is, a storage-only member: it stores genuine records with
  // every member, then asks them to trim and drop them.
  const evil = new Attacker(bootstrap, swarmKey, 'storage')
  t.teardown(() => evil.destroy())
  await waitFor(() => evil.open().length >= 3, 60_000, 'the hostile storage-only member to reach all three members')
  let dropped = 0
  for (const conn of evil.open()) {
    for (const r of records) {
      const ack = await evil.request(conn, { type: 'PUT_CHUNK', id: r.id, record: r.record })
      t.ok(ack.type === 'PUT_ACK' && !ack.ok && /only a proven full member places/.test(ack.reason ?? ''), 'a placement by a storage-only member is refused')
    }
    const ids32 = records.map(r => r.id)
    for (const type of ['TRIM_CHUNKS', 'DROP_CHUNKS'] as const) {
      const reply = await evil.request(conn, { type, ids: ids32 })
      if (reply.type === 'DROP_ACK') dropped += reply.dropped
    }
  }
  t.equal(dropped, 0, 'no member dropped anything a storage-only member asked it to')
  for (const n of [a, b, c]) {
    const have = storedChunkIds(n.dataDir)
    t.ok(ids.every(id => have.has(id)), `${n.name} still holds every chunk`)
  }
  for (let i = 0; i < 8; i++) {
    const back = await readFile(ma.path(`f${i}`))
    t.ok(back.equals(await readFile(join(local, `f${i}`))), `f${i} reads back`)
  }
  // A remount reads from the store, not from caches.
  await ma.stop()
  const ma2 = await mountNode(t, a)
  for (let i = 0; i < 8; i++) t.ok((await readFile(ma2.path(`f${i}`))).equals(await readFile(join(local, `f${i}`))), `f${i} reads back after a remount`)
  const st = await until('status settles', async () => { const s = await statusJson(a); return s.replication.unsettled === 0 ? s : false }, 30_000)
  t.equal(st.replication.lost, 0, 'nothing lost')
  t.equal(st.replication.atTarget, 8, 'every chunk at target: the writer still replicates its own chunks')
})
