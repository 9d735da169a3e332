import { createHmac } from 'node:crypto'

export const ID_BYTES = 32

// HMAC-SHA256 under a volume subkey: node:crypto's SHA-256 runs at about
// 1.6 GB/s here against BLAKE2b's 0.6 GB/s, and a keyed hash means nobody
// without the key can test the store for known content.
export function keyedHash (key: Buffer, ...parts: Buffer[]): Buffer {
  const h = createHmac('sha256', key)
  for (const p of parts) h.update(p)
  return h.digest()
}
