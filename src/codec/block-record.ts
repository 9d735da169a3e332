import { fail } from '../errors.js'

export const BLOCK_RECORD_VERSION = 1
export const CHUNK_ID_BYTES = 32

// One entry of a file's block map: which chunk holds block `index`, and how
// many bytes of it are data (the last block of a file is usually short).
export interface BlockRef {
  id: Buffer
  length: number
}

export function encodeBlockRef (r: BlockRef): Buffer {
  const b = Buffer.allocUnsafe(1 + CHUNK_ID_BYTES + 4)
  b[0] = BLOCK_RECORD_VERSION
  r.id.copy(b, 1)
  b.writeUInt32LE(r.length, 1 + CHUNK_ID_BYTES)
  return b
}

export function decodeBlockRef (b: Buffer): BlockRef {
  if (b.length !== 1 + CHUNK_ID_BYTES + 4) throw fail('CORRUPT_RECORD', 'block record has the wrong length')
  if (b[0] !== BLOCK_RECORD_VERSION) throw fail('UNSUPPORTED_VERSION', `block record version ${b[0]}`)
  return { id: Buffer.from(b.subarray(1, 1 + CHUNK_ID_BYTES)), length: b.readUInt32LE(1 + CHUNK_ID_BYTES) }
}
