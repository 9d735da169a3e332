import { createRequire } from 'node:module'
import { seal, open, authentic } from '../crypto/aead.js'
import { keyedHash } from '../crypto/keyed-hash.js'
import { encodeChunkRecord, decodeChunkRecord, chunkAd, FLAG_LZ4 } from '../codec/chunk-record.js'
import { fail } from '../errors.js'

const require = createRequire(import.meta.url)
const lz4: typeof import('lz4-napi') = require('lz4-napi')

const PROBE_BYTES = 4096
const PROBE_RATIO = 0.9 // a sample that shrinks less than 10% means the block will not pay
const KEEP_RATIO = 0.97
const MIN_COMPRESS = 128 // keep the compressed form only if it saves at least 3%

export interface SealedChunk {
  id: Buffer
  record: Buffer
}

// plaintext block -> (id, stored record) and back. The id is a keyed hash of
// the plaintext under the volume's chunk-id key, so identical blocks share one
// record. LZ4 runs on the thread pool; a small probe decides whether to try.
export class ChunkPipeline {
  constructor (private readonly dataKey: Buffer, private readonly idKey: Buffer) {}

  idOf (plain: Buffer): Buffer {
    return keyedHash(this.idKey, plain)
  }

  async seal (plain: Buffer, id = this.idOf(plain)): Promise<SealedChunk> {
    let body = plain
    let flags = 0
    if (plain.length >= MIN_COMPRESS && this.worthCompressing(plain)) {
      const packed = await lz4.compress(plain)
      if (packed.length < plain.length * KEEP_RATIO) { body = packed; flags |= FLAG_LZ4 }
    }
    const sealed = seal(this.dataKey, body, chunkAd(id, flags))
    return { id, record: encodeChunkRecord(flags, sealed) }
  }

  async open (id: Buffer, record: Buffer): Promise<Buffer> {
    const { flags, sealed } = decodeChunkRecord(record)
    let body: Buffer
    try {
      body = open(this.dataKey, sealed, chunkAd(id, flags))
    } catch (e) {
      throw fail('CORRUPT_CHUNK', `chunk ${id.toString('hex').slice(0, 16)} failed authentication`, e)
    }
    if (flags & FLAG_LZ4) {
      try {
        body = await lz4.uncompress(body)
      } catch (e) {
        throw fail('CORRUPT_CHUNK', `chunk ${id.toString('hex').slice(0, 16)} failed to decompress`, e)
      }
    }
    return body
  }

  // Throws CORRUPT_CHUNK unless the record is one sealed under this volume's
  // data key for this id (and these flags): what open() authenticates, without
  // decrypting or decompressing. For a member storing a replica it won't read.
  verify (id: Buffer, record: Buffer): void {
    const { flags, sealed } = decodeChunkRecord(record)
    if (!authentic(this.dataKey, sealed, chunkAd(id, flags))) {
      throw fail('CORRUPT_CHUNK', `chunk ${id.toString('hex').slice(0, 16)} failed authentication`)
    }
  }

  private worthCompressing (plain: Buffer): boolean {
    if (plain.length < 4 * PROBE_BYTES) return true // small: trying is as cheap as probing
    const start = Math.floor((plain.length - PROBE_BYTES) / 2)
    const sample = plain.subarray(start, start + PROBE_BYTES)
    return lz4.compressSync(sample).length < PROBE_BYTES * PROBE_RATIO
  }
}
