import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

// XChaCha20-Poly1305 by the OpenSSL inside Node (native/aead.c, built at npm
// install by scripts/build-io.cjs): the same bytes as sodium's, 0.24 ms per
// MiB here instead of 0.58, written into the caller's buffers. Null when the
// addon is not built, or under DISKTRO_NATIVE_AEAD=0 (to compare): aead.ts
// then uses sodium for everything.
export interface NativeAead {
  // sealed = nonce (filled by the caller) | ciphertext | tag; sealed.length = plain.length + 40
  seal (sealed: Uint8Array, plain: Uint8Array, ad: Uint8Array | null, key: Uint8Array): void
  // false (and `plain` zeroed) when the tag does not match; plain.length = sealed.length - 40
  open (plain: Uint8Array, sealed: Uint8Array, ad: Uint8Array | null, key: Uint8Array): boolean
  // whether open() would succeed, without keeping the plaintext
  verify (sealed: Uint8Array, ad: Uint8Array | null, key: Uint8Array): boolean
}

export const AEAD_ADDON_PATH = fileURLToPath(new URL('../../../native/build/Release/aead.node', import.meta.url))

let loaded: NativeAead | null | undefined

export function nativeAead (): NativeAead | null {
  if (loaded !== undefined) return loaded
  try {
    const addon = createRequire(import.meta.url)(AEAD_ADDON_PATH) as Partial<NativeAead>
    loaded = typeof addon.seal === 'function' && typeof addon.open === 'function' && typeof addon.verify === 'function' ? addon as NativeAead : null
  } catch {
    loaded = null
  }
  if (process.env.DISKTRO_NATIVE_AEAD === '0') loaded = null
  return loaded
}
