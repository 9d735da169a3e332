import { timingSafeEqual } from 'node:crypto'
import { keyedHash } from '../crypto/keyed-hash.js'
import { fail } from '../errors.js'
import sodium from '../crypto/sodium.js'

// What holding the swarm key lets a node do: find the volume's peers and
// prove membership to them. Both are HMACs under the key with their own
// domain string, so the topic (public on the DHT) says nothing about the key,
// and the two values can never be confused for each other.
const TOPIC_NS = Buffer.from('disktro-topic-v1')
const CAP_NS = Buffer.from('disktro-cap-v1')
const ROLE_NS = Buffer.from('disktro-role-v1')
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

// A full member's proof of its role: an Ed25519 signature, under the key
// pair derived from the master key, of this session's handshake hash and
// side. Any member checks it with the public key (storage-only members get
// it in their join code); the swarm key alone cannot make it.
export const ROLE_PROOF_BYTES = 64

export function roleProof (secretKey: Buffer, side: Side, handshakeHash: Buffer): Buffer {
  const sig = Buffer.alloc(ROLE_PROOF_BYTES)
  sodium.crypto_sign_detached(sig, Buffer.concat([ROLE_NS, SIDE[side], handshakeHash]), secretKey)
  return sig
}

export function verifyRoleProof (publicKey: Buffer, side: Side, handshakeHash: Buffer, proof: Buffer | undefined): boolean {
  if (!proof || proof.length !== ROLE_PROOF_BYTES || publicKey.length !== 32) return false
  return sodium.crypto_sign_verify_detached(proof, Buffer.concat([ROLE_NS, SIDE[side], handshakeHash]), publicKey)
}
