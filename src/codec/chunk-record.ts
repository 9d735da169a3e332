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

// The record's fixed bytes around its payload: header, XChaCha20 nonce,
// Poly1305 tag.
export const CHUNK_HEADER_BYTES = 2
export const CHUNK_NONCE_BYTES = 24
export const CHUNK_TAG_BYTES = 16
export const CHUNK_RECORD_OVERHEAD = CHUNK_HEADER_BYTES + CHUNK_NONCE_BYTES + CHUNK_TAG_BYTES

// Why `b` cannot be a record of a volume with `chunkSize`, or null: what
// can be checked without the data key (a storage-only member's whole check;
// a full member's before it verifies). The payload is the plaintext, at
// most chunkSize, or its LZ4 form, kept only when smaller than that
// (chunks/chunk-pipeline.ts), so never longer than chunkSize.
export function chunkRecordShapeError (b: Buffer, chunkSize: number): string | null {
  if (b.length < CHUNK_RECORD_OVERHEAD) return `record of ${b.length} bytes is shorter than its ${CHUNK_RECORD_OVERHEAD} bytes of header, nonce and tag`
  if (b[0] !== CHUNK_RECORD_VERSION) return `record version ${b[0]}, not ${CHUNK_RECORD_VERSION}`
  if ((b[1] & ~FLAG_LZ4) !== 0) return `unknown record flags ${b[1]}`
  const payload = b.length - CHUNK_RECORD_OVERHEAD
  if (payload > chunkSize) return `record of ${b.length} bytes is longer than the volume's chunkSize (${chunkSize}) plus ${CHUNK_RECORD_OVERHEAD} bytes of header, nonce and tag`
  if (payload === 0 && (b[1] & FLAG_LZ4) !== 0) return 'compressed record with nothing in it'
  return null
}

export function chunkAd (id: Buffer, flags: number): Buffer {
  return Buffer.concat([id, chunkHeader(flags)])
}
