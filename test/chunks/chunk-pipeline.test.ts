import t from 'tap'
import { randomBytes } from 'node:crypto'
import { ChunkPipeline } from '../../src/chunks/chunk-pipeline.js'
import { randomKey } from '../../src/crypto/volume-keys.js'
import { FLAG_LZ4 } from '../../src/codec/chunk-record.js'

const MiB = 1024 * 1024

t.test('incompressible blocks are stored uncompressed, compressible ones compressed', async t => {
  const p = new ChunkPipeline(randomKey(), randomKey())
  const random = randomBytes(MiB)
  const r = await p.seal(random)
  t.equal(r.record[1] & FLAG_LZ4, 0, 'random data not compressed')
  t.ok(r.record.length < MiB + 64, 'overhead is small')
  t.same(await p.open(r.id, r.record), random)
  const text = Buffer.alloc(MiB)
  for (let o = 0; o < MiB; o += 64) text.write(`line ${o % 977} of a compressible text file\n`, o)
  const c = await p.seal(text)
  t.equal(c.record[1] & FLAG_LZ4, FLAG_LZ4, 'text compressed')
  t.ok(c.record.length < MiB / 4, `compressed to ${c.record.length} bytes`)
  t.same(await p.open(c.id, c.record), text)
  const small = Buffer.from('x'.repeat(1000))
  const s = await p.seal(small)
  t.equal(s.record[1] & FLAG_LZ4, FLAG_LZ4, 'small compressible block compressed')
  t.same(await p.open(s.id, s.record), small)
})

t.test('ids are keyed, deterministic, and content never appears in the record', async t => {
  const dataKey = randomKey(); const idKey = randomKey()
  const p = new ChunkPipeline(dataKey, idKey)
  const block = Buffer.from('secret content '.repeat(1000))
  const a = await p.seal(block); const b = await p.seal(block)
  t.same(a.id, b.id, 'same plaintext, same id (dedupe)')
  t.not(a.record.toString('hex'), b.record.toString('hex'), 'records differ (random nonce)')
  t.equal(a.record.indexOf('secret content'), -1)
  const other = new ChunkPipeline(dataKey, randomKey())
  t.not(other.idOf(block).toString('hex'), a.id.toString('hex'), 'another volume cannot test for known content')
})

t.test('a flipped byte, a wrong id or a wrong key fails as CORRUPT_CHUNK', async t => {
  const p = new ChunkPipeline(randomKey(), randomKey())
  const r = await p.seal(randomBytes(4096))
  for (const at of [1, 10, r.record.length - 1]) {
    const bad = Buffer.from(r.record)
    bad[at] ^= 0x40
    await t.rejects(p.open(r.id, bad), { code: 'CORRUPT_CHUNK' }, `byte ${at}`)
  }
  await t.rejects(p.open(Buffer.alloc(32), r.record), { code: 'CORRUPT_CHUNK' })
  const q = new ChunkPipeline(randomKey(), randomKey())
  await t.rejects(q.open(r.id, r.record), { code: 'CORRUPT_CHUNK' })
})

t.test('verify authenticates like open, without decrypting', async t => {
  const p = new ChunkPipeline(randomKey(), randomKey())
  for (const size of [0, 1, 15, 16, 17, 4096, MiB, MiB + 3]) {
    const block = size % 2 === 0 ? randomBytes(size) : Buffer.alloc(size, 'a')
    const r = await p.seal(block)
    t.doesNotThrow(() => p.verify(r.id, r.record), `${size} bytes`)
    for (const at of [1, 2, 10, 30, r.record.length - 17, r.record.length - 1]) {
      if (at >= r.record.length) continue
      const bad = Buffer.from(r.record)
      bad[at] ^= 0x01
      t.throws(() => p.verify(r.id, bad), { code: 'CORRUPT_CHUNK' }, `${size} bytes, flipped byte ${at}`)
      await t.rejects(p.open(r.id, bad), { code: 'CORRUPT_CHUNK' }, 'open agrees')
    }
    t.throws(() => p.verify(Buffer.alloc(32), r.record), { code: 'CORRUPT_CHUNK' }, 'wrong id')
    t.throws(() => p.verify(r.id, r.record.subarray(0, r.record.length - 1)), { code: 'CORRUPT_CHUNK' }, 'truncated')
  }
  const r = await p.seal(randomBytes(4096))
  const q = new ChunkPipeline(randomKey(), randomKey())
  t.throws(() => q.verify(r.id, r.record), { code: 'CORRUPT_CHUNK' }, 'another key')
  t.throws(() => p.verify(r.id, Buffer.alloc(1)), { code: 'CORRUPT_CHUNK' }, 'too short')
  t.throws(() => p.verify(r.id, Buffer.alloc(20)), { code: 'CORRUPT_CHUNK' }, 'shorter than nonce and tag')
})
