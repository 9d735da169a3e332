import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { ChunkPipeline } from '../../src/chunks/chunk-pipeline.js'
import { CryptoWorkers } from '../../src/chunks/crypto-workers.js'
import { randomKey } from '../../src/crypto/volume-keys.js'
import { FLAG_LZ4 } from '../../src/codec/chunk-record.js'
import { isAeadSum } from '../../src/codec/chunk-sum.js'
import { LmdbStore } from '../../src/store/lmdb-store.js'
import { LmdbChunkStore } from '../../src/chunks/lmdb-chunk-store.js'
import { join } from 'node:path'
import { tempDir } from '../helpers/disktro.js'

const MiB = 1024 * 1024

function pipelines (t: Test): { inline: ChunkPipeline, pooled: ChunkPipeline } {
  const dataKey = randomKey(); const idKey = randomKey()
  const pooled = new ChunkPipeline(dataKey, idKey, new CryptoWorkers({ dataKey, idKey, idHash: 'blake3' }, 1))
  t.teardown(() => pooled.close())
  return { inline: new ChunkPipeline(dataKey, idKey), pooled }
}

// Workers that read chunk records from a real store themselves (one
// sealing worker), with `plainBytes`: reads open into the shared slot pool.
async function storeWorkers (t: Test, plainBytes?: number): Promise<{ dataKey: Buffer, idKey: Buffer, store: LmdbStore, workers: CryptoWorkers, pipeline: ChunkPipeline }> {
  const dataKey = randomKey(); const idKey = randomKey()
  const store = LmdbStore.open(join(await tempDir(t), 'store'))
  const workers = new CryptoWorkers({ dataKey, idKey, idHash: 'blake3' }, 1, { path: store.path, readOnly: false, plainBytes })
  const pipeline = new ChunkPipeline(dataKey, idKey, workers)
  t.teardown(async () => { await pipeline.close(); await store.close() })
  return { dataKey, idKey, store, workers, pipeline }
}

t.test('a worker seals and opens exactly as the event loop does', async t => {
  const { inline, pooled } = pipelines(t)
  const random = randomBytes(MiB)
  const shared = Buffer.from(new SharedArrayBuffer(MiB)) // the VFS's block buffers
  random.copy(shared)
  const text = Buffer.alloc(MiB)
  for (let o = 0; o < MiB; o += 64) text.write(`line ${o % 977} of a compressible text file\n`, o)
  for (const [what, block] of [['random', random], ['shared memory', shared], ['text', text]] as const) {
    const r = await pooled.seal(block)
    t.ok(r.id.equals(inline.idOf(block)), `${what}: same keyed id`)
    t.ok(r.sum && isAeadSum(r.sum), `${what}: the worker's record gets the AEAD sum (its own tag)`)
    t.ok((await inline.open(r.id, r.record)).equals(block), `${what}: the inline path opens the worker's record`)
    const back = await inline.seal(block)
    t.ok((await pooled.open(back.id, back.record)).equals(block), `${what}: the worker opens the inline record`)
    t.ok((await pooled.open(back.id, Buffer.from(back.record), true)).equals(block), `${what}: also a donated record`)
  }
  t.equal((await pooled.seal(text)).record[1] & FLAG_LZ4, FLAG_LZ4, 'compressible blocks are compressed on the worker')
})

t.test('recycled record memory is reused, and records stay intact', async t => {
  const { inline, pooled } = pipelines(t)
  const blocks = Array.from({ length: 6 }, () => randomBytes(MiB))
  let previous = await pooled.seal(blocks[0])
  for (const block of blocks.slice(1)) {
    const copy = Buffer.from(previous.record)
    pooled.recycle(previous.record)
    const r = await pooled.seal(block)
    t.ok((await inline.open(r.id, r.record)).equals(block), 'a record sealed into recycled memory opens')
    t.ok(copy.length > MiB, 'the earlier record was complete before it was recycled')
    previous = r
  }
})

t.test('a bad record fails as CORRUPT_CHUNK on the worker; a closed pool fails with EIO', async t => {
  const { pooled } = pipelines(t)
  const r = await pooled.seal(randomBytes(MiB))
  const bad = Buffer.from(r.record)
  bad[1000] ^= 0x40
  await t.rejects(pooled.open(r.id, bad), { code: 'CORRUPT_CHUNK' })
  await t.rejects(pooled.open(Buffer.alloc(32), r.record), { code: 'CORRUPT_CHUNK' }, 'wrong id')
  t.ok((await pooled.seal(randomBytes(MiB))).id.length === 32, 'the worker keeps working after an error')
  await pooled.close()
  await t.rejects(pooled.seal(randomBytes(MiB)), { code: 'EIO' })
})

t.test('a received record is verified on a worker and comes back whole, in the memory it was donated in', async t => {
  const { pooled } = pipelines(t)
  const r = await pooled.seal(randomBytes(MiB))
  // As a record arrives: a view of a larger message buffer.
  const message = Buffer.allocUnsafe(r.record.length + 48)
  r.record.copy(message, 40)
  const view = message.subarray(40, 40 + r.record.length)
  const back = await pooled.verifyAsync(r.id, view, true)
  t.ok(back.equals(r.record), 'the same bytes come back')
  t.equal(view.length, 0, 'the donated memory moved to the worker (no copy was made)')
  t.equal(back.byteOffset, 40, 'and came back as it was')
  const bad = Buffer.from(r.record)
  bad[bad.length - 20] ^= 0x01
  await t.rejects(pooled.verifyAsync(r.id, bad, true), { code: 'CORRUPT_CHUNK' }, 'a flipped byte fails its tag')
  await t.rejects(pooled.verifyAsync(Buffer.alloc(32), Buffer.from(r.record)), { code: 'CORRUPT_CHUNK' }, 'so does the wrong id')
  const kept = Buffer.from(r.record)
  t.ok((await pooled.verifyAsync(r.id, kept)).equals(r.record) && kept.length === r.record.length, 'without donate the caller keeps its record')
})

t.test('workers that read the store see every chunk committed before they were asked', async t => {
  const { store, workers, pipeline } = await storeWorkers(t)
  const chunks = new LmdbChunkStore(store)
  const first = await pipeline.seal(randomBytes(MiB))
  store.txn(() => store.putChunkSync(first.id, first.record))
  let found = 0
  for (let i = 0; i < 20; i++) {
    t.ok(await workers.readAndOpen(first.id), 'a read that starts a worker snapshot')
    // Committed right after that read, well inside lmdb-js's snapshot timer.
    const next = await pipeline.seal(randomBytes(MiB))
    store.txn(() => store.putChunkSync(next.id, next.record))
    if (await workers.readAndOpen(next.id)) found++
  }
  t.equal(found, 20, 'the worker found each chunk committed just before it was asked for')
  t.equal(await workers.readAndOpen(Buffer.alloc(32)), null, 'a chunk the store does not hold is null')
  const plain = randomBytes(MiB)
  const r = await pipeline.seal(plain)
  store.txn(() => store.putChunkSync(r.id, r.record))
  t.ok((await pipeline.openStored(r.id, chunks))!.equals(plain), 'openStored reads and opens on the worker')
})

// A mount starts the read workers before its first read (node.ts attach):
// the first read then does not wait for a worker to boot.
t.test('prestart starts every read worker before the first read, and reads use them', async t => {
  const { dataKey, idKey, store, workers, pipeline } = await storeWorkers(t, MiB)
  t.same(workers.running, { read: 0, seal: 0 }, 'no worker runs before it is needed')
  pipeline.prestart()
  t.same(workers.running, { read: 2, seal: 0 }, 'two read workers started, none for sealing')
  const block = randomBytes(MiB)
  const s = await new ChunkPipeline(dataKey, idKey).seal(block) // sealed on this thread: no sealing worker
  store.txn(() => store.putChunkSync(s.id, s.record))
  const reads = await Promise.all([0, 1, 2, 3].map(async () => await workers.readAndOpen(s.id)))
  t.ok(reads.every(r => r?.equals(block)), 'reads on the started workers come back whole')
  t.same(workers.running, { read: 2, seal: 0 }, 'and start no more')
})

// With `plainBytes`, reads open into slots of memory shared with the workers
// (no megabyte moved between threads per block); a slot given back is used
// again, and reads go on, correct, when every slot is taken.
t.test('reads open into a shared pool of slots, which are given back and reused', async t => {
  const { store, workers, pipeline } = await storeWorkers(t, MiB)
  const blocks = [randomBytes(MiB), randomBytes(1000), Buffer.alloc(MiB, 'text '.repeat(10))]
  const ids: Buffer[] = []
  for (const b of blocks) {
    const s = await pipeline.seal(b)
    store.txn(() => store.putChunkSync(s.id, s.record))
    ids.push(s.id)
  }
  t.ok((await pipeline.seal(blocks[2])).record[1] & FLAG_LZ4, 'the third block is stored compressed')
  const held: Buffer[] = []
  for (let i = 0; i < 100; i++) {
    const k = i % blocks.length
    const plain = await workers.readAndOpen(ids[k])
    if (!plain || !plain.equals(blocks[k])) { t.fail(`read ${i} came back wrong`); return }
    held.push(plain)
  }
  const pooled = held.filter(b => b.buffer instanceof SharedArrayBuffer)
  t.equal(pooled.length, 64, 'the first 64 reads filled the pool\'s slots; the rest, with none free, came the old way')
  t.equal(new Set(pooled.map(b => b.byteOffset)).size, 64, 'each in a slot of its own')
  for (const b of held) workers.recyclePlain(b)
  const again = await workers.readAndOpen(ids[0])
  t.ok(again!.buffer instanceof SharedArrayBuffer && again!.equals(blocks[0]), 'a slot given back is used again')
  // A record that fails authentication: the slot comes back too.
  const bad = Buffer.from(store.chunks.getBinary(ids[1])!)
  bad[bad.length - 1] ^= 1
  const badId = randomBytes(32)
  store.txn(() => store.putChunkSync(badId, bad))
  for (let i = 0; i < 70; i++) await t.rejects(workers.readAndOpen(badId), { code: 'CORRUPT_CHUNK' })
  const after = await workers.readAndOpen(ids[1])
  t.ok(after!.buffer instanceof SharedArrayBuffer && after!.equals(blocks[1]), 'failed reads leave no slot taken')
})
