import t from 'tap'
import { createHmac, randomBytes } from 'node:crypto'
import { chunkIdFunction, newVolumeChunkIdHash, isChunkIdHash } from '../../src/crypto/chunk-id.js'

// BLAKE3's published keyed_hash vectors (the first 32 bytes): input i % 251,
// key "whats the Elvish word for friend". 102400 bytes is many 1 KiB chunks,
// the SIMD paths.
const KEY = Buffer.from('whats the Elvish word for friend')
const VECTORS: Array<[number, string]> = [
  [0, '92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26'],
  [1, '6d7878dfff2f485635d39013278ae14f1454b8c0a3a2d34bc1ab38228a80c95b'],
  [1025, '357dc55de0c7e382c900fd6e320acc04146be01db6a8ce7210b7189bd664ea69'],
  [4097, '00df940cd36bb9fa7cbbc3556744e0dbc8191401afe70520ba292ee3ca80abbc'],
  [102400, '1c35d1a5811083fd7119f5d5d1ba027b4d01c0c6c49fb6ff2cf75393ea5db4a7']
]

function input (n: number): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = i % 251
  return b
}

t.test('blake3 is keyed BLAKE3: the published vectors, in any order, from one reused hasher', async t => {
  const id = chunkIdFunction('blake3', KEY)
  for (const [n, hex] of [...VECTORS, ...VECTORS.slice().reverse()]) t.equal(id(input(n)).toString('hex'), hex, `${n} bytes`)
  const big = randomBytes(1024 * 1024)
  t.same(id(big), chunkIdFunction('blake3', KEY)(big), 'a 1 MiB block: the same id from a fresh hasher')
  t.not(chunkIdFunction('blake3', randomBytes(32))(big).toString('hex'), id(big).toString('hex'), 'another key, another id')
})

t.test('hmac-sha256 is HMAC-SHA256 under the key (volumes made before BLAKE3)', async t => {
  const key = randomBytes(32)
  const block = randomBytes(70000)
  t.same(chunkIdFunction('hmac-sha256', key)(block), createHmac('sha256', key).update(block).digest())
  t.not(chunkIdFunction('hmac-sha256', key)(block).toString('hex'), chunkIdFunction('blake3', key)(block).toString('hex'))
})

t.test('new volumes get blake3 here; only the two names are valid', async t => {
  t.equal(newVolumeChunkIdHash(), 'blake3')
  t.ok(isChunkIdHash('blake3') && isChunkIdHash('hmac-sha256'))
  t.notOk(isChunkIdHash('sha256') || isChunkIdHash(undefined) || isChunkIdHash(1))
})
