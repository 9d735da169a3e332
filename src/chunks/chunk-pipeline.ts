import { seal, open, authentic, sealedLength } from '../crypto/aead.js'
import { chunkIdFunction, type ChunkIdHash } from '../crypto/chunk-id.js'
import { decodeChunkRecord, chunkAd, CHUNK_RECORD_VERSION, FLAG_LZ4 } from '../codec/chunk-record.js'
import { aeadSum } from '../codec/chunk-sum.js'
import { fail } from '../errors.js'
import type { CryptoWorkers } from './crypto-workers.js'
import type { ChunkStore } from './chunk-store.js'
import * as lz4 from '../codec/lz4.js'

const PROBE_BYTES = 4096
const PROBE_RATIO = 0.9 // a sample that shrinks less than 10% means the block will not pay
const KEEP_RATIO = 0.97
const MIN_COMPRESS = 128 // keep the compressed form only if it saves at least 3%
const OFFLOAD_BYTES = 64 * 1024 // blocks at least this big are sealed and opened on a worker thread

export interface SealedChunk {
  id: Buffer
  record: Buffer
  sum?: Buffer // the record's checksum (codec/chunk-sum.ts), when sealed on a worker
}

export interface ChunkKeys {
  dataKey: Buffer
  idKey: Buffer
  idHash: ChunkIdHash // the volume's chunk-id function (crypto/chunk-id.ts)
}

// Each thread's chunk-id function for a set of keys, made once: a keyed
// BLAKE3 hasher is reused block after block.
const idFunctions = new WeakMap<ChunkKeys, (plain: Buffer) => Buffer>()

function idFunctionOf (keys: ChunkKeys): (plain: Buffer) => Buffer {
  let f = idFunctions.get(keys)
  if (f === undefined) {
    f = chunkIdFunction(keys.idHash, keys.idKey)
    idFunctions.set(keys, f)
  }
  return f
}

// plaintext block -> (id, stored record) and back. The id is a keyed hash of
// the plaintext under the volume's chunk-id key (keyed BLAKE3 in new
// volumes, HMAC-SHA256 in older ones: `idHash`), so identical blocks share one
// record. A small probe decides whether LZ4 is worth trying. Blocks of 64 KiB
// and more go to the crypto worker threads when the pipeline has them, so the
// event loop keeps answering FUSE while a block is hashed and encrypted.
export class ChunkPipeline {
  private readonly keys: ChunkKeys

  // `idHash`: the workers' when there are workers.
  constructor (dataKey: Buffer, idKey: Buffer, private readonly workers: CryptoWorkers | null = null, idHash: ChunkIdHash = workers?.idHash ?? 'blake3') {
    this.keys = { dataKey, idKey, idHash }
    idFunctionOf(this.keys) // made now: where it cannot load, the volume fails to open, not its first write
  }

  // The read workers start now (CryptoWorkers.prestart): a mount does
  // this, so its first read does not wait for them.
  prestart (): void {
    this.workers?.prestart()
  }

  get workersRunning (): { read: number, seal: number } | null {
    return this.workers?.running ?? null
  }

  idOf (plain: Buffer): Buffer {
    return idFunctionOf(this.keys)(plain)
  }

  async seal (plain: Buffer): Promise<SealedChunk> {
    if (this.workers && plain.length >= OFFLOAD_BYTES) return await this.workers.seal(plain)
    if (plain.length < OFFLOAD_BYTES) return sealChunkSync(this.keys, plain)
    const id = this.idOf(plain)
    const packed = plain.length >= MIN_COMPRESS && worthCompressing(plain) ? await lz4.compress(plain) : null
    return { id, record: sealRecord(this.keys.dataKey, id, plain, packed), sum: aeadSum() }
  }

  // The block sealed here and now when it is small enough to be sealed on
  // this thread anyway (as seal() does); null when it goes to a worker.
  sealNow (plain: Buffer): SealedChunk | null {
    return plain.length < OFFLOAD_BYTES ? sealChunkSync(this.keys, plain) : null
  }

  // `donate`: the caller never uses `record` again (a worker may take its memory).
  async open (id: Buffer, record: Buffer, donate = false): Promise<Buffer> {
    if (this.workers && record.length >= OFFLOAD_BYTES) return await this.workers.open(id, record, donate)
    const { flags, body } = openRecord(this.keys.dataKey, id, record)
    return flags & FLAG_LZ4 ? await uncompress(id, body) : body
  }

  // The plaintext of a chunk in the local store, or null when the store does
  // not hold it. With crypto workers that read the store, the event loop
  // never touches the record.
  async openStored (id: Buffer, chunks: ChunkStore): Promise<Buffer | null> {
    if (this.workers?.readsStore) {
      const plain = await this.workers.readAndOpen(id)
      if (plain) {
        chunks.noteUse(id)
        return plain
      }
      // Not there for the worker: make sure with the event loop's own view.
    }
    const record = await chunks.get(id)
    return record ? await this.open(id, record, true) : null
  }

  // A record from seal() that nothing uses any more (stored and committed):
  // its memory goes back to the workers for the next record.
  recycle (record: Buffer): void {
    this.workers?.recycle(record)
  }

  // A block's plaintext from openStored() that nothing references any more:
  // the next block read is decrypted into its memory.
  recyclePlain (plain: Buffer): void {
    this.workers?.recyclePlain(plain)
  }

  async close (): Promise<void> {
    await this.workers?.close()
  }

  // Throws CORRUPT_CHUNK unless the record is one sealed under this volume's
  // data key for this id (and these flags): what open() authenticates, without
  // decrypting or decompressing. For a member storing a replica it won't read.
  verify (id: Buffer, record: Buffer): void {
    verifyChunkSync(this.keys, id, record)
  }

  // verify() on a crypto worker for a record of 64 KiB or more: a receiving
  // member's event loop then spends nothing on the tag (0.38 s per GiB of
  // replicas). `donate`: the caller never uses `record` again, so its memory
  // moves to the worker and back instead of being copied; the record comes
  // back in the returned buffer either way.
  async verifyAsync (id: Buffer, record: Buffer, donate = false): Promise<Buffer> {
    if (this.workers && record.length >= OFFLOAD_BYTES) return await this.workers.verify(id, record, donate)
    this.verify(id, record)
    return record
  }
}

// The whole verify on the calling thread (the crypto workers run this).
export function verifyChunkSync (keys: ChunkKeys, id: Buffer, record: Buffer): void {
  const { flags, sealed } = decodeChunkRecord(record)
  if (!authentic(keys.dataKey, sealed, chunkAd(id, flags))) {
    throw fail('CORRUPT_CHUNK', `chunk ${short(id)} failed authentication`)
  }
}

// The whole seal on the calling thread (the crypto workers run this, and the
// event loop for a block under 64 KiB: LZ4 on the thread pool would cost a
// round trip there for a few microseconds of work). The record goes into
// `spare` when it is big enough. Its sum is its own tag (codec/chunk-sum.ts).
export function sealChunkSync (keys: ChunkKeys, plain: Buffer, spare?: ArrayBuffer): SealedChunk {
  const id = idFunctionOf(keys)(plain)
  const packed = plain.length >= MIN_COMPRESS && worthCompressing(plain) ? lz4.compressSync(plain) : null
  return { id, record: sealRecord(keys.dataKey, id, plain, packed, spare), sum: aeadSum() }
}

// The whole open on the calling thread (the crypto workers run this).
// `spare`: memory to decrypt into when big enough (an uncompressed block).
export function openChunkSync (keys: ChunkKeys, id: Buffer, record: Buffer, spare?: ArrayBuffer): Buffer {
  const { flags, body } = openRecord(keys.dataKey, id, record, spare)
  if (!(flags & FLAG_LZ4)) return body
  try {
    return lz4.uncompressSync(body)
  } catch (e) {
    throw fail('CORRUPT_CHUNK', `chunk ${short(id)} failed to decompress`, e)
  }
}

// The whole open into `into` (a slot of the crypto workers' shared pool):
// the plaintext's length. An uncompressed block is decrypted in place.
export function openChunkInto (keys: ChunkKeys, id: Buffer, record: Buffer, into: Buffer): number {
  const { flags, sealed } = decodeChunkRecord(record)
  const length = sealed.length - sealedLength(0)
  if (!(flags & FLAG_LZ4)) {
    if (length > into.length) throw fail('CORRUPT_CHUNK', `chunk ${short(id)} is larger than a block`)
    try {
      open(keys.dataKey, sealed, chunkAd(id, flags), into.subarray(0, length))
    } catch (e) {
      throw fail('CORRUPT_CHUNK', `chunk ${short(id)} failed authentication`, e)
    }
    return length
  }
  const { body } = openRecord(keys.dataKey, id, record)
  let plain: Buffer
  try {
    plain = lz4.uncompressSync(body, into)
  } catch (e) {
    throw fail('CORRUPT_CHUNK', `chunk ${short(id)} failed to decompress`, e)
  }
  // uncompressSync wrote into `into` unless the block is larger than it.
  if (plain.length > into.length) throw fail('CORRUPT_CHUNK', `chunk ${short(id)} is larger than a block`)
  return plain.length
}

// [version][flags][nonce|ciphertext|tag], encrypted straight into the record.
function sealRecord (dataKey: Buffer, id: Buffer, plain: Buffer, packed: Buffer | null, spare?: ArrayBuffer): Buffer {
  const compressed = packed !== null && packed.length < plain.length * KEEP_RATIO
  const body = compressed ? packed : plain
  const flags = compressed ? FLAG_LZ4 : 0
  const length = 2 + sealedLength(body.length)
  const record = spare && spare.byteLength >= length ? Buffer.from(spare, 0, length) : Buffer.allocUnsafeSlow(length)
  record[0] = CHUNK_RECORD_VERSION
  record[1] = flags
  seal(dataKey, body, chunkAd(id, flags), record.subarray(2))
  return record
}

function openRecord (dataKey: Buffer, id: Buffer, record: Buffer, spare?: ArrayBuffer): { flags: number, body: Buffer } {
  const { flags, sealed } = decodeChunkRecord(record)
  const length = sealed.length - sealedLength(0)
  // (A block much smaller than the spare gets its own memory: the spare would go back half empty.)
  const out = spare !== undefined && !(flags & FLAG_LZ4) && length * 2 >= spare.byteLength && length <= spare.byteLength ? Buffer.from(spare, 0, length) : undefined
  try {
    return { flags, body: open(dataKey, sealed, chunkAd(id, flags), out) }
  } catch (e) {
    throw fail('CORRUPT_CHUNK', `chunk ${short(id)} failed authentication`, e)
  }
}

async function uncompress (id: Buffer, body: Buffer): Promise<Buffer> {
  try {
    return await lz4.uncompress(body, OFFLOAD_BYTES)
  } catch (e) {
    throw fail('CORRUPT_CHUNK', `chunk ${short(id)} failed to decompress`, e)
  }
}

function worthCompressing (plain: Buffer): boolean {
  if (plain.length < 4 * PROBE_BYTES) return true // small: trying is as cheap as probing
  const start = Math.floor((plain.length - PROBE_BYTES) / 2)
  const sample = plain.subarray(start, start + PROBE_BYTES)
  return lz4.compressSync(sample).length < PROBE_BYTES * PROBE_RATIO
}

function short (id: Buffer): string {
  return id.toString('hex').slice(0, 16)
}
