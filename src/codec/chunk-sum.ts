import { createHash, webcrypto } from 'node:crypto'

export const CHUNK_SUM_VERSION = 1
const SUM_BYTES = 1 + 32

// The checksum kept beside each stored chunk record (`sums`, docs/format.md):
// version · SHA-256 of the record exactly as stored. It needs no key, so a
// storage-only member can verify what it holds too.
export function chunkSum (record: Buffer): Buffer {
  return Buffer.concat([Buffer.from([CHUNK_SUM_VERSION]), createHash('sha256').update(record).digest()])
}

// The same, computed on the thread pool: hashing a 1 MiB record takes the
// event loop 1-2 ms otherwise, time that FUSE callbacks wait for.
export async function chunkSumAsync (record: Buffer): Promise<Buffer> {
  const digest = await webcrypto.subtle.digest('SHA-256', record)
  return Buffer.concat([Buffer.from([CHUNK_SUM_VERSION]), Buffer.from(digest)])
}

// Whether a stored sum is one this code understands (else it is recomputed).
export function isChunkSum (sum: Buffer | undefined): sum is Buffer {
  return sum !== undefined && sum.length === SUM_BYTES && sum[0] === CHUNK_SUM_VERSION
}
