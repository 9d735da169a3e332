import sodium from './sodium.js'
import { fail } from '../errors.js'

export const KEY_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_KEYBYTES
export const NONCE_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
export const TAG_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES

// XChaCha20-Poly1305 with a random 192-bit nonce: random nonces are safe at
// this size, so no counter state has to survive crashes.
export function seal (key: Buffer, plaintext: Buffer, ad: Buffer | null, out?: Buffer): Buffer {
  const sealed = out ?? Buffer.allocUnsafe(NONCE_BYTES + plaintext.length + TAG_BYTES)
  const nonce = sealed.subarray(0, NONCE_BYTES)
  sodium.randombytes_buf(nonce)
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
    sealed.subarray(NONCE_BYTES, NONCE_BYTES + plaintext.length + TAG_BYTES), plaintext, ad, null, nonce, key)
  return sealed
}

export function sealedLength (plainLength: number): number {
  return NONCE_BYTES + plainLength + TAG_BYTES
}

// Opens into `out` when given (must be exactly the plaintext length).
export function open (key: Buffer, sealed: Buffer, ad: Buffer | null, out?: Buffer): Buffer {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) throw fail('CORRUPT_RECORD', 'sealed record too short')
  const plainLength = sealed.length - NONCE_BYTES - TAG_BYTES
  const plaintext = out ?? Buffer.allocUnsafe(plainLength)
  if (plaintext.length !== plainLength) throw fail('EINVAL', 'output buffer has the wrong length')
  try {
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
      plaintext, null, sealed.subarray(NONCE_BYTES), ad, sealed.subarray(0, NONCE_BYTES), key)
  } catch (e) {
    throw fail('CORRUPT_RECORD', 'authentication failed', e)
  }
  return plaintext
}
