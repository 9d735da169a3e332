import { createRequire } from 'node:module'
import { keyedHash } from './keyed-hash.js'
import { fail } from '../errors.js'

const require = createRequire(import.meta.url)

// How a volume names its chunks: a keyed hash of the block's plaintext under
// the chunk-id subkey (docs/format.md). A volume keeps the function it was
// created with (volume.json `chunkIdHash`, carried by join codes):
//   'blake3'      keyed BLAKE3, @napi-rs/blake-hash (the Rust crate, SIMD
//                 picked at run time). New volumes, where the module loads.
//                 A 1 MiB block: 169 us here, against 603 us for HMAC-SHA256
//                 with the SHA extensions (6.2 vs 1.7 GB/s); a 4 KiB one:
//                 3.4 vs 5.7 us.
//   'hmac-sha256' node:crypto. Volumes made before BLAKE3 (no field), and new
//                 ones where @napi-rs/blake-hash does not load.
export type ChunkIdHash = 'blake3' | 'hmac-sha256'
const CHUNK_ID_HASHES: readonly ChunkIdHash[] = ['blake3', 'hmac-sha256']

interface Blake3Hasher {
  reset (): void
  update (input: Uint8Array): Blake3Hasher
  digestBuffer (): Buffer
}
interface Blake3Module {
  Blake3Hasher: { newKeyed (key: Buffer): Blake3Hasher }
}

let blake3: Blake3Module | null | undefined
let blake3Error = ''

function blake3Module (): Blake3Module | null {
  if (blake3 !== undefined) return blake3
  try {
    const m = require('@napi-rs/blake-hash') as Partial<Blake3Module>
    blake3 = typeof m.Blake3Hasher?.newKeyed === 'function' ? m as Blake3Module : null
    if (blake3 === null) blake3Error = 'it has no Blake3Hasher.newKeyed'
  } catch (e) {
    blake3 = null
    blake3Error = (e as Error).message.split('\n')[0]
  }
  return blake3
}

// The function a new volume gets here.
export function newVolumeChunkIdHash (): ChunkIdHash {
  return blake3Module() !== null && process.env.DISKTRO_CHUNK_ID !== 'hmac-sha256' ? 'blake3' : 'hmac-sha256'
}

export function isChunkIdHash (v: unknown): v is ChunkIdHash {
  return typeof v === 'string' && (CHUNK_ID_HASHES as readonly string[]).includes(v)
}

// plaintext -> chunk id (32 bytes) under `key`. One keyed BLAKE3 hasher per
// function, reset between blocks: with a new hasher, a 4 KiB block took
// 12.7 us instead of 3.4.
export function chunkIdFunction (alg: ChunkIdHash, key: Buffer): (plain: Buffer) => Buffer {
  if (alg === 'hmac-sha256') return plain => keyedHash(key, plain)
  const m = blake3Module()
  if (m === null) throw fail('UNSUPPORTED_VERSION', `this volume names its chunks with BLAKE3, and @napi-rs/blake-hash does not load here (${blake3Error})`)
  const hasher = m.Blake3Hasher.newKeyed(key)
  return plain => {
    hasher.reset()
    return hasher.update(plain).digestBuffer()
  }
}
