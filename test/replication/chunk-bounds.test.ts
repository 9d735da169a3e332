// Bounded storage for others (issue 28, item 8, in part): a member refuses a
// PUT_CHUNK whose record no chunk of the volume can make: longer than
// chunkSize plus the record's overhead, shorter than that overhead, another
// version, unknown flags. Real nodes on a local DHT; the sender is a
// scripted peer that holds the swarm key and speaks the wire protocol.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { DisktroNode } from '../../src/node.js'
import { DEFAULT_CONFIG } from '../../src/config.js'
import { createVolumeFile, nodeIdOfSeed } from '../../src/volume/volume-file.js'
import { topicFor } from '../../src/net/capability.js'
import type { PutAck } from '../../src/codec/wire.js'
import { CHUNK_RECORD_OVERHEAD, FLAG_LZ4 } from '../../src/codec/chunk-record.js'
import { Harness, memberHandshake, type RawConnection, waitFor } from '../net/helpers.js'
import { tempDir, PASSWORD } from '../helpers/disktro.js'

const CS = 64 * 1024

function record (payload: number, o: { version?: number, flags?: number } = {}): Buffer {
  const b = randomBytes(CHUNK_RECORD_OVERHEAD + payload)
  b[0] = o.version ?? 1
  b[1] = o.flags ?? 0
  return b
}

for (const role of ['storage', 'full'] as const) {
  t.test(`a ${role === 'storage' ? 'storage-only' : 'full'} member refuses records no chunk of the volume can make`, { timeout: 120_000 }, async t => {
    const h = await Harness.create(t)
    const dataDir = await tempDir(t)
    const logs: string[] = []
    t.teardown(() => { if (t.passing() === false) console.error(logs.join('\n')) })
    await createVolumeFile(dataDir, PASSWORD, CS, { volumeId: randomBytes(16).toString('hex'), role, key: randomBytes(32) })
    const node = await DisktroNode.open({
      dataDir,
      password: async () => PASSWORD,
      newPassword: async () => PASSWORD,
      config: { ...DEFAULT_CONFIG, chunkSize: CS, port: 0, heartbeatInterval: 1000, bootstrap: h.bootstrap },
      log: line => logs.push(line)
    })
    t.teardown(() => node.close())
    const key = node.volume.swarmKey
    const seed = randomBytes(32)
    // Only a proven full member places chunks, so the sender is one: a
    // certified full member that proves its role to a full node (which
    // checks certificates and role proofs); the storage-only node, made
    // without the role key, can check neither and takes the claim.
    const cert = role === 'full' ? node.volume.members.issueCert(nodeIdOfSeed(seed), 'full') : undefined
    const roleSecret = role === 'full' ? node.volume.roleKey.secretKey ?? undefined : undefined
    const peer = h.raw(topicFor(key), c => memberHandshake(c, { swarmKey: key, role: 'full', cert, roleSecret }), seed)
    // Every connection answers the node's pings: it closes a peer that falls
    // silent, and a 31 MiB frame takes a while to send.
    const replies: Array<{ id: number, body: PutAck }> = []
    const pong = setInterval(() => {
      for (const c of peer.connections) {
        for (const m of c.received.splice(0)) {
          if (m.type === 'PING') c.send({ type: 'PONG', time: m.time })
          else if (m.type === 'REPLY' && m.body.type === 'PUT_ACK') replies.push({ id: m.id, body: m.body })
        }
      }
    }, 20)
    t.teardown(() => clearInterval(pong))
    // Hyperswarm may open a second connection and drop one: wait for one that stays.
    const open = (): RawConnection | undefined => peer.connections.find(c => !c.closed && node.swarm?.network.connections().some(n => n.id === peer.id))
    await waitFor(() => open() !== undefined, 30_000, 'the node to accept the scripted peer')
    await new Promise(resolve => setTimeout(resolve, 1000))
    await waitFor(() => open() !== undefined, 30_000, 'a lasting connection')
    const conn = open()!
    let next = 1
    const put = async (id: Buffer, rec: Buffer): Promise<PutAck> => {
      const n = next++
      conn.send({ type: 'REQUEST', id: n, body: { type: 'PUT_CHUNK', id, record: rec } })
      await waitFor(() => replies.some(r => r.id === n), 30_000, `the reply to request ${n}`)
      return replies.find(r => r.id === n)!.body
    }

    const cases: Array<[string, Buffer, RegExp]> = [
      ['one byte past chunkSize plus overhead', record(CS + 1), /longer than the volume's chunkSize \(65536\) plus 42 bytes/],
      ['a 4 MiB record of junk', record(4 * 1024 * 1024), /longer than the volume's chunkSize/],
      ['shorter than header, nonce and tag', randomBytes(CHUNK_RECORD_OVERHEAD - 1).fill(1, 0, 1).fill(0, 1, 2), /shorter than its 42 bytes/],
      ['version 2', record(100, { version: 2 }), /record version 2, not 1/],
      ['version 0', record(100, { version: 0 }), /record version 0, not 1/],
      ['unknown flags', record(100, { flags: 0x80 }), /unknown record flags 128/],
      ['compressed and empty', record(0, { flags: FLAG_LZ4 }), /compressed record with nothing in it/]
    ]
    for (const [what, rec, reason] of cases) {
      const id = randomBytes(32)
      const ack = await put(id, rec)
      t.equal(ack.ok, false, `${what}: refused`)
      t.match(ack.reason, reason, `with the reason: ${ack.reason}`)
      t.notOk(node.volume.store.hasChunk(id), 'and not stored')
    }
    if (role === 'storage') {
      // The largest record a chunk can make still fits (a storage-only member cannot check more).
      const id = randomBytes(32)
      t.same(await put(id, record(CS)), { type: 'PUT_ACK', ok: true }, 'chunkSize plus overhead exactly: stored')
      t.ok(node.volume.store.hasChunk(id))
    } else {
      const ack = await put(randomBytes(32), record(CS))
      t.match(ack, { ok: false, reason: 'chunk failed verification' }, 'a full member goes on to check the tag under the data key')
    }
    t.notOk(conn.closed, 'the sender is not cut off for asking')
  })
}
