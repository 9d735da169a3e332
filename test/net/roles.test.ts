import t from 'tap'
import { randomKey, roleKeyOf } from '../../src/crypto/volume-keys.js'
import { capabilityProof, roleProof, topicFor } from '../../src/net/capability.js'
import { WIRE_VERSION } from '../../src/codec/wire.js'
import { Harness, memberHandshake, type RawConnection, waitFor } from './helpers.js'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { LmdbStore } from '../../src/store/lmdb-store.js'
import { MemberSet } from '../../src/volume/member-set.js'
import { memberGate } from '../../src/volume/member-gate.js'
import { nodeIdOfSeed } from '../../src/volume/volume-file.js'
import { signingKeyOfSeed } from '../../src/codec/op-record.js'
import { encodeMemberRecord } from '../../src/codec/member-record.js'
import { tempDir } from '../helpers/disktro.js'

// Roles are proven, not claimed (issue #28, item 2): a HELLO claiming the
// full role carries a signature only holders of the master key can make.

function hello (c: RawConnection, swarmKey: Buffer, role: 'full' | 'storage', roleSecret?: Buffer): void {
  const side = c.stream.isInitiator ? 'initiator' : 'responder'
  c.send({ type: 'HELLO', version: WIRE_VERSION, role, proof: capabilityProof(swarmKey, side, c.stream.handshakeHash), ...(roleSecret ? { roleProof: roleProof(roleSecret, side, c.stream.handshakeHash) } : {}) })
}

t.test('a swarm-key holder that claims the full role without the role key is refused; one that proves it is accepted', { timeout: 90_000 }, async t => {
  const h = await Harness.create(t)
  const master = randomKey()
  const swarmKey = randomKey()
  const full = roleKeyOf(master)
  // A full member and a storage-only member (public half only).
  const a = await h.network(swarmKey, { role: 'full', roleKey: full })
  const s = await h.network(swarmKey, { role: 'storage', roleKey: { publicKey: full.publicKey, secretKey: null } })
  await waitFor(() => a.connections().length === 1 && s.connections().length === 1, 30_000, 'the honest pair to connect')
  t.equal(s.connections()[0].role, 'full', 'the storage-only member sees the full member as full: its proof checked')
  t.equal(a.connections()[0].role, 'storage')

  const liar = h.raw(topicFor(swarmKey), c => hello(c, swarmKey, 'full'))
  await waitFor(() => liar.connections.filter(c => c.closed).length >= 2, 20_000, 'both members to drop the liar')
  t.ok(h.logs.some(l => /claims to be a full member without proving it/.test(l)), 'the refusal is logged')
  for (const n of [a, s]) t.notOk(n.connections().some(c => c.id === liar.id), 'never an open connection')

  const forger = h.raw(topicFor(swarmKey), c => hello(c, swarmKey, 'full', roleKeyOf(randomKey()).secretKey!))
  await waitFor(() => forger.connections.filter(c => c.closed).length >= 2, 20_000, 'both members to drop a proof under another role key')
  for (const n of [a, s]) t.notOk(n.connections().some(c => c.id === forger.id), 'a proof under another role key fails')

  const honest = h.raw(topicFor(swarmKey), c => hello(c, swarmKey, 'full', full.secretKey!))
  await waitFor(() => a.connections().some(c => c.id === honest.id) && s.connections().some(c => c.id === honest.id), 20_000, 'both members to accept a proven full member')
  t.equal(s.connections().find(c => c.id === honest.id)!.role, 'full')

  const storage = h.raw(topicFor(swarmKey), c => hello(c, swarmKey, 'storage'))
  await waitFor(() => a.connections().some(c => c.id === storage.id), 20_000, 'a storage-only peer is accepted as such')
  t.equal(a.connections().find(c => c.id === storage.id)!.role, 'storage')
})

// Connections need a certificate (issue #28): after HELLO a peer presents a
// certificate for the identity it authenticated with and the role it claims.
t.test('a swarm-key holder without a valid certificate for its identity and role gets nothing past HELLO', { timeout: 120_000 }, async t => {
  const h = await Harness.create(t)
  const master = randomKey()
  const swarmKey = randomKey()
  const full = roleKeyOf(master)
  const volumeId = randomBytes(16).toString('hex')
  const set = async (seed: Buffer, issuing: boolean): Promise<MemberSet> => {
    const store = LmdbStore.open(join(await tempDir(t), 'store'))
    t.teardown(() => store.close())
    const id = nodeIdOfSeed(seed)
    return new MemberSet(store, { volumeId, rolePublicKey: full.publicKey, selfId: id, issuer: issuing ? { roleSecretKey: full.secretKey!, nodeSecretKey: signingKeyOfSeed(seed).secretKey, nodeId: id } : null })
  }
  const seedA = randomKey()
  const seedS = randomKey()
  const A = await set(seedA, true)
  const S = await set(seedS, false)
  A.issueCert(nodeIdOfSeed(seedA), 'full')
  S.addAll([A.issueCert(nodeIdOfSeed(seedS), 'storage')])
  const a = await h.network(swarmKey, { keySeed: seedA, role: 'full', roleKey: full, members: memberGate(A, nodeIdOfSeed(seedA)) })
  const s = await h.network(swarmKey, { keySeed: seedS, role: 'storage', roleKey: { publicKey: full.publicKey, secretKey: null }, members: memberGate(S, nodeIdOfSeed(seedS)) })
  await waitFor(() => a.connections().length === 1 && s.connections().length === 1, 30_000, 'the certified pair to connect')
  t.equal(S.standing(nodeIdOfSeed(seedA)), 'active', 'the storage-only member learned the full member\'s certificate in the handshake')

  const gotMore = (c: RawConnection): boolean => c.received.some(m => m.type !== 'HELLO' && !(m.type === 'REQUEST' && m.body.type === 'MEMBERS_OFFER'))
  const members = new Set([a.id, s.id])
  const refused = async (what: string, peer: { id: string, connections: RawConnection[] }): Promise<void> => {
    await waitFor(() => peer.connections.filter(c => members.has(c.remoteId) && c.closed).length >= 2, 20_000, `both members to close ${what}`)
    for (const n of [a, s]) t.notOk(n.connections().some(c => c.id === peer.id), `${what}: never an open connection`)
    t.notOk(peer.connections.filter(c => members.has(c.remoteId)).some(gotMore), `${what}: nothing past HELLO and the member's own offer`)
  }

  await refused('no certificate', h.raw(topicFor(swarmKey), c => memberHandshake(c, { swarmKey, role: 'storage' })))
  // A genuine certificate, of another identity (a copied join code's, say).
  await refused('another identity\'s certificate', h.raw(topicFor(swarmKey), c => memberHandshake(c, { swarmKey, role: 'storage', cert: S.certOf(nodeIdOfSeed(seedS))! })))
  // A certificate signed under another volume's role key.
  const seedX = randomKey()
  const other = roleKeyOf(randomKey())
  const forged = encodeMemberRecord({ kind: 'cert', role: 'storage', volumeId, subject: nodeIdOfSeed(seedX), issuer: nodeIdOfSeed(seedX), issuedAt: Date.now() }, { roleSecretKey: other.secretKey!, nodeSecretKey: signingKeyOfSeed(seedX).secretKey, nodeId: nodeIdOfSeed(seedX) })
  await refused('a certificate under another role key', h.raw(topicFor(swarmKey), c => memberHandshake(c, { swarmKey, role: 'storage', cert: forged }), seedX))
  // Certified as full, claiming storage (to dodge the role proof? it is refused either way).
  const seedF = randomKey()
  const asFull = A.certificateFor(nodeIdOfSeed(seedF), 'full')
  await refused('a full certificate claiming storage', h.raw(topicFor(swarmKey), c => memberHandshake(c, { swarmKey, role: 'storage', cert: asFull }), seedF))
  // Revoked: refused by both (the storage-only member learns the revocation in a handshake or gossip; here directly).
  const seedR = randomKey()
  const certR = A.issueCert(nodeIdOfSeed(seedR), 'storage')
  const revocation = A.revoke(nodeIdOfSeed(seedR), 0)
  S.addAll([certR, revocation])
  await refused('a revoked identity', h.raw(topicFor(swarmKey), c => memberHandshake(c, { swarmKey, role: 'storage', cert: certR }), seedR))

  // And a certified one is let in by both.
  const seedOk = randomKey()
  const certOk = A.certificateFor(nodeIdOfSeed(seedOk), 'storage')
  const ok = h.raw(topicFor(swarmKey), c => memberHandshake(c, { swarmKey, role: 'storage', cert: certOk }), seedOk)
  await waitFor(() => a.connections().some(c => c.id === ok.id) && s.connections().some(c => c.id === ok.id), 20_000, 'both members to let a certified peer in')
  t.equal(S.standing(ok.id), 'active', 'its certificate reached the storage-only member with it')
})
