import { timingSafeEqual } from 'node:crypto'
import { keyedHash } from '../crypto/keyed-hash.js'
import { fail } from '../errors.js'

// What holding the swarm key lets a node do: find the volume's peers and
// prove membership to them. Both are HMACs under the key with their own
// domain string, so the topic (public on the DHT) says nothing about the key,
// and the two values can never be confused for each other.
const TOPIC_NS = Buffer.from('disktro-topic-v1')
const CAP_NS = Buffer.from('disktro-cap-v1')
// Both labels are 9 bytes, so the concatenated HMAC input is unambiguous.
const SIDE = { initiator: Buffer.from('initiator'), responder: Buffer.from('responder') } as const

export type Side = keyof typeof SIDE

export function topicFor (swarmKey: Buffer): Buffer {
  return keyedHash(swarmKey, TOPIC_NS)
}

// Bound to the Noise handshake hash, as hypercore binds its replication
// capabilities (lib/caps.js): a proof is good for this one session and this
// one direction, so it cannot be replayed on another connection or reflected
// back at its sender.
export function capabilityProof (swarmKey: Buffer, side: Side, handshakeHash: Buffer): Buffer {
  if (handshakeHash.length < 32) throw fail('EINVAL', 'handshake hash too short')
  return keyedHash(swarmKey, CAP_NS, SIDE[side], handshakeHash)
}

export function verifyProof (swarmKey: Buffer, side: Side, handshakeHash: Buffer, proof: Buffer): boolean {
  const expected = capabilityProof(swarmKey, side, handshakeHash)
  return proof.length === expected.length && timingSafeEqual(proof, expected)
}
