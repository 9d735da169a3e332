import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const lz4napi: typeof import('lz4-napi') = require('lz4-napi')

// LZ4 blocks in lz4-napi's framing: the uncompressed length (u32 little
// endian), then one block. The synchronous calls (the crypto workers', and
// the event loop's for blocks under 64 KiB) go to native/lz4 when it is
// built: the reference C library, about 1,070 MB/s on the benchmark's
// compressible megabytes here against lz4-napi's 305 MB/s, into memory
// reused call after call. The asynchronous ones, and everything when the
// addon is missing or under DISKTRO_NATIVE_LZ4=0, go to lz4-napi. Either
// reads what the other wrote.
interface NativeLz4 {
  compress (dst: Uint8Array, src: Uint8Array): number // bytes written, 0 when they do not fit
  decompress (dst: Uint8Array, src: Uint8Array): number // the length src names, -1 when it is no block or dst is short
  bound (n: number): number
}

export const LZ4_ADDON_PATH = fileURLToPath(new URL('../../../native/lz4/build/Release/lz4.node', import.meta.url))
const PREFIX = 4
// No block of ours is larger (config.ts allows chunks up to 16 MiB): a
// length above it is damage, not a reason to allocate.
const MAX_PLAIN = 64 * 1024 * 1024

let loaded: NativeLz4 | null | undefined
let scratch: Buffer | null = null // this thread's compression output

export function nativeLz4 (): NativeLz4 | null {
  if (loaded !== undefined) return loaded
  try {
    const addon = require(LZ4_ADDON_PATH) as Partial<NativeLz4>
    loaded = typeof addon.compress === 'function' && typeof addon.decompress === 'function' && typeof addon.bound === 'function' ? addon as NativeLz4 : null
  } catch {
    loaded = null
  }
  if (process.env.DISKTRO_NATIVE_LZ4 === '0') loaded = null
  return loaded
}

// `plain` compressed, in memory this thread reuses on its next call: use it
// (or copy it) before compressing again.
export function compressSync (plain: Buffer): Buffer {
  const n = nativeLz4()
  if (n === null) return lz4napi.compressSync(plain)
  const need = n.bound(plain.length)
  if (scratch === null || scratch.length < need) scratch = Buffer.allocUnsafeSlow(need)
  const len = n.compress(scratch, plain)
  return len > 0 ? scratch.subarray(0, len) : lz4napi.compressSync(plain)
}

// The block decompressed, into `into` when it is large enough; throws on
// anything that is not a whole block.
export function uncompressSync (body: Buffer, into?: Buffer): Buffer {
  const n = nativeLz4()
  if (n === null) {
    const plain = lz4napi.uncompressSync(body)
    if (into === undefined || plain.length > into.length) return plain
    plain.copy(into)
    return into.subarray(0, plain.length)
  }
  if (body.length < PREFIX) throw new Error('LZ4 block is truncated')
  const want = body.readUInt32LE(0)
  if (want > MAX_PLAIN) throw new Error(`LZ4 block names ${want} bytes`)
  const out = into !== undefined && into.length >= want ? into.subarray(0, want) : Buffer.allocUnsafe(want)
  if (n.decompress(out, body) !== want) throw new Error('not a valid LZ4 block')
  return out
}

export async function compress (plain: Buffer): Promise<Buffer> {
  return await lz4napi.compress(plain)
}

// A block that names fewer than `syncBelow` bytes is decompressed at once
// by the native library (microseconds), not through a round trip to the
// thread pool.
export async function uncompress (body: Buffer, syncBelow = 0): Promise<Buffer> {
  if (nativeLz4() !== null && body.length >= PREFIX && body.readUInt32LE(0) < syncBelow) return uncompressSync(body)
  return await lz4napi.uncompress(body)
}
