import t from 'tap'
import { randomBytes } from 'node:crypto'
import { chunkSum, chunkSumAsync, fastChunkSum, aeadSum, isAeadSum, isChunkSum, sumMatches, CHUNK_SUM_VERSION, FAST_SUM_VERSION, AEAD_SUM_VERSION } from '../../src/codec/chunk-sum.js'

t.test('both sum versions match their record and nothing else', async t => {
  const record = randomBytes(1024 * 1024 + 42)
  const slow = chunkSum(record)
  const fast = fastChunkSum(record)
  t.equal(slow[0], CHUNK_SUM_VERSION)
  t.equal(slow.length, 33)
  t.equal(fast[0], FAST_SUM_VERSION, 'zlib.crc32 is there on Node 20.15+')
  t.equal(fast.length, 5)
  t.ok((await chunkSumAsync(record)).equals(slow), 'thread-pool SHA-256 agrees')
  for (const sum of [slow, fast]) {
    t.ok(isChunkSum(sum, false) && isChunkSum(sum, true), 'either kind of member can check it')
    t.ok(await sumMatches(record, sum), `v${sum[0]} matches its record`)
    for (const at of [0, 500_000, record.length - 1]) {
      const bad = Buffer.from(record)
      bad[at] ^= 0x01
      t.notOk(await sumMatches(bad, sum), `v${sum[0]}: a flipped bit at ${at} is caught`)
    }
    t.notOk(await sumMatches(record.subarray(1), sum), `v${sum[0]}: a truncated record is caught`)
  }
  t.notOk(isChunkSum(undefined, true))
  t.notOk(isChunkSum(Buffer.from([4, 0, 0, 0, 0]), true), 'an unknown version is not a sum')
  t.notOk(isChunkSum(Buffer.from([AEAD_SUM_VERSION, 0, 0, 0, 0]), true), 'a v3 sum of the wrong length is not a sum')
  t.notOk(isChunkSum(Buffer.concat([Buffer.from([FAST_SUM_VERSION]), Buffer.alloc(32)]), true), 'a v2 sum of the wrong length is not a sum')
})

t.test('the AEAD sum (v3) is a full member\'s: one byte, checked with the data key', async t => {
  const sum = aeadSum()
  t.same([...sum], [AEAD_SUM_VERSION])
  t.ok(isAeadSum(sum))
  t.ok(isChunkSum(sum, true), 'a full member can check it')
  t.notOk(isChunkSum(sum, false), 'a storage-only member cannot: to it, it is no sum')
})
