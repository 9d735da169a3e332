import { fail } from '../errors.js'

export const CHUNK_RECORD_VERSION = 1
export const FLAG_LZ4 = 1

// Stored chunk: [version][flags][nonce|ciphertext|tag]. The header bytes are
// bound into the AEAD's associated data together with the chunk id, so a
// record cannot be moved to another id or have its flags flipped unnoticed.
export interface ChunkRecord {
  flags: number
  sealed: Buffer
}

export function chunkHeader (flags: number): Buffer {
  return Buffer.from([CHUNK_RECORD_VERSION, flags])
}

export function encodeChunkRecord (flags: number, sealed: Buffer): Buffer {
  const b = Buffer.allocUnsafe(2 + sealed.length)
  b[0] = CHUNK_RECORD_VERSION
  b[1] = flags
  sealed.copy(b, 2)
  return b
}

export function decodeChunkRecord (b: Buffer): ChunkRecord {
  if (b.length < 2) throw fail('CORRUPT_CHUNK', 'chunk record too short')
  if (b[0] !== CHUNK_RECORD_VERSION) throw fail('CORRUPT_CHUNK', `chunk record version ${b[0]}`)
  return { flags: b[1], sealed: b.subarray(2) }
}

export function chunkAd (id: Buffer, flags: number): Buffer {
  return Buffer.concat([id, chunkHeader(flags)])
}
