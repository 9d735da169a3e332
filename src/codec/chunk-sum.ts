import { createHash, webcrypto } from 'node:crypto'
import zlib from 'node:zlib'

// The checksum kept beside each stored chunk record (`sums`, docs/format.md),
// over the record exactly as stored. It needs no key, so a storage-only
// member can verify what it holds too. Two versions:
//   01 · SHA-256 (33 bytes): what a storage-only member keeps. It cannot open a
//        record, so the sum is also how it refuses a forged replacement copy.
//   02 · CRC-32 (5 bytes): a full member's own records. Opening a record under
//        the data key is its real test; the sum only has to catch rot and loss,
//        at 6 GB/s instead of SHA-256's 1.9 (it was a third of sealing's cost).
export const CHUNK_SUM_VERSION = 1
export const FAST_SUM_VERSION = 2
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

// Whether a stored sum is one this code understands (else it is recomputed).
export function isChunkSum (sum: Buffer | undefined): sum is Buffer {
  if (sum === undefined) return false
  return (sum.length === 33 && sum[0] === CHUNK_SUM_VERSION) || (sum.length === 5 && sum[0] === FAST_SUM_VERSION && crc32 !== undefined)
}

// Whether `record` is what `sum` (a valid sum of either version) was taken of.
export async function sumMatches (record: Buffer, sum: Buffer): Promise<boolean> {
  const actual = sum[0] === FAST_SUM_VERSION ? fastChunkSum(record) : await chunkSumAsync(record)
  return actual.equals(sum)
}
