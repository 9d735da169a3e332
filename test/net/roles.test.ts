import t from 'tap'
import { randomKey, roleKeyOf } from '../../src/crypto/volume-keys.js'
import { capabilityProof, roleProof, topicFor } from '../../src/net/capability.js'
import { WIRE_VERSION } from '../../src/codec/wire.js'
import { Harness, type RawConnection, waitFor } from './helpers.js'

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
