import { createHash, webcrypto } from 'node:crypto'
import zlib from 'node:zlib'

// The checksum kept beside each stored chunk record (`sums`, docs/format.md),
// over the record exactly as stored. Three versions:
//   01 · SHA-256 (33 bytes): what a storage-only member keeps. It holds no key
//        and cannot open a record, so the sum is also how it refuses a forged
//        replacement copy.
//   02 · CRC-32 (5 bytes): a full member's records, up to this version.
//   03 · AEAD (1 byte): a full member's records now. The record's own
//        Poly1305 tag is the checksum: a full member checks it under the data
//        key (ChunkPipeline.verify), which catches rot as a CRC would and
//        forgery too. Writing a record then costs no checksum pass at all
//        (a CRC-32 of each received replica was 0.2 s per GiB on the event
//        loop of a receiving member). Only a full member can check it; to
//        anyone else it is no sum (isChunkSum with full = false).
export const CHUNK_SUM_VERSION = 1
export const FAST_SUM_VERSION = 2
export const AEAD_SUM_VERSION = 3
const AEAD_SUM = Buffer.from([AEAD_SUM_VERSION])

// A full member's sum of a record it sealed or authenticated (03 · AEAD).
export function aeadSum (): Buffer {
  return AEAD_SUM
}

export function isAeadSum (sum: Buffer): boolean {
  return sum.length === 1 && sum[0] === AEAD_SUM_VERSION
}
const crc32 = (zlib as unknown as { crc32?: (data: Buffer) => number }).crc32

export function chunkSum (record: Buffer): Buffer {
  return Buffer.concat([Buffer.from([CHUNK_SUM_VERSION]), createHash('sha256').update(record).digest()])
}

// The same, computed on the thread pool: hashing a 1 MiB record takes the
// event loop 1-2 ms otherwise, time that FUSE callbacks wait for.
export async function chunkSumAsync (record: Buffer): Promise<Buffer> {
  const digest = await webcrypto.subtle.digest('SHA-256', record)
  return Buffer.concat([Buffer.from([CHUNK_SUM_VERSION]), Buffer.from(digest)])
}

// A full member's sum (02 · CRC-32); SHA-256 on a Node without zlib.crc32.
export function fastChunkSum (record: Buffer): Buffer {
  if (!crc32) return chunkSum(record)
  const b = Buffer.allocUnsafe(5)
  b[0] = FAST_SUM_VERSION
  b.writeUInt32BE(crc32(record), 1)
  return b
}

// Whether a stored sum is one this member can check (else it is recomputed).
// `full`: the member holds the data key (an AEAD sum needs it).
export function isChunkSum (sum: Buffer | undefined, full: boolean): sum is Buffer {
  if (sum === undefined) return false
  return (sum.length === 33 && sum[0] === CHUNK_SUM_VERSION) || (sum.length === 5 && sum[0] === FAST_SUM_VERSION && crc32 !== undefined) || (full && isAeadSum(sum))
}

// Whether `record` is what `sum` (a valid SHA-256 or CRC-32 sum) was taken
// of. An AEAD sum is checked with the data key instead (ChunkVerifier).
export async function sumMatches (record: Buffer, sum: Buffer): Promise<boolean> {
  const actual = sum[0] === FAST_SUM_VERSION ? fastChunkSum(record) : await chunkSumAsync(record)
  return actual.equals(sum)
}
