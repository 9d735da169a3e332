// The reference LZ4 (native/lz4) against lz4-napi: each decompresses what the
// other compressed, so chunk records written with either stay readable with
// either; damaged blocks are refused, never read past.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { nativeLz4, LZ4_ADDON_PATH, compressSync, uncompressSync } from '../../src/codec/lz4.js'

const lz4napi: typeof import('lz4-napi') = createRequire(import.meta.url)('lz4-napi')
const native = nativeLz4()
// Under CI the addon must have been built by npm install (scripts/build-io.cjs).
if (process.env.CI === 'true') t.ok(native, `the native lz4 addon loads from ${LZ4_ADDON_PATH}`)

// Text-like data that compresses, random data that does not, and runs.
function inputs (): Array<[string, Buffer]> {
  const words = ['chunk', 'replica', 'volume', 'peer', 'block', 'inode', ' ', '\n', 'the ', 'of ']
  const text = (n: number): Buffer => {
    let s = ''
    while (s.length < n) s += words[s.length * 7 % words.length] + String(s.length % 97)
    return Buffer.from(s.slice(0, n))
  }
  return [
    ['empty', Buffer.alloc(0)],
    ['one byte', Buffer.from([7])],
    ['zeros 1 MiB', Buffer.alloc(1024 * 1024)],
    ['text 200 B', text(200)],
    ['text 1 MiB + 3', text(1024 * 1024 + 3)],
    ['random 64 KiB', randomBytes(64 * 1024)],
    ['random 1 MiB', randomBytes(1024 * 1024)]
  ]
}

t.test('native and lz4-napi read each other\'s blocks', { skip: !native && 'native lz4 addon not built' }, async t => {
  for (const [name, plain] of inputs()) {
    const mine = Buffer.from(compressSync(plain)) // a copy: the next call reuses the memory
    t.ok(lz4napi.uncompressSync(mine).equals(plain), `lz4-napi reads native's block: ${name}`)
    const theirs = lz4napi.compressSync(plain)
    t.ok(uncompressSync(theirs).equals(plain), `native reads lz4-napi's block: ${name}`)
    t.equal(mine.readUInt32LE(0), plain.length, `the same framing (length first): ${name}`)
  }
})

t.test('decompression into the caller\'s memory', { skip: !native && 'native lz4 addon not built' }, async t => {
  const plain = Buffer.from('disktro '.repeat(5000))
  const block = Buffer.from(compressSync(plain))
  const into = Buffer.alloc(plain.length + 100)
  const out = uncompressSync(block, into)
  t.equal(out.buffer, into.buffer, 'written into the given memory')
  t.equal(out.byteOffset, into.byteOffset)
  t.ok(out.equals(plain))
  const small = Buffer.alloc(10)
  t.ok(uncompressSync(block, small).equals(plain), 'memory too small for it: a buffer of its own')
})

t.test('damaged blocks are refused', { skip: !native && 'native lz4 addon not built' }, async t => {
  const plain = Buffer.from('abcdefgh'.repeat(20000))
  const block = Buffer.from(compressSync(plain))
  t.throws(() => uncompressSync(block.subarray(0, 3)), /truncated/, 'shorter than its length field')
  t.throws(() => uncompressSync(block.subarray(0, block.length - 5)), /not a valid LZ4 block/, 'cut short')
  const longer = Buffer.from(block)
  longer.writeUInt32LE(plain.length + 1, 0)
  t.throws(() => uncompressSync(longer), /not a valid LZ4 block/, 'naming more bytes than it holds')
  const huge = Buffer.from(block)
  huge.writeUInt32LE(0xffffffff, 0)
  t.throws(() => uncompressSync(huge), /names 4294967295 bytes/, 'naming an absurd length: refused before allocating')
  // A flipped byte may still decode (LZ4 has no checksum; the AEAD tag
  // catches that), but the decoder must check what it reads: some flips
  // are refused, with this error, and none crashes the process.
  let refused = 0
  for (let i = 0; i < 200; i++) {
    const bad = Buffer.from(block)
    bad[4 + (i * 7919) % (bad.length - 4)] ^= 0xff
    try {
      uncompressSync(bad)
    } catch (e) {
      t.match((e as Error).message, /not a valid LZ4 block/)
      refused++
    }
  }
  t.ok(refused > 0, `${refused} of 200 single-byte flips refused`)
})
