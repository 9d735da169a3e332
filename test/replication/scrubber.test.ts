// The scrubber against real LMDB stores: one is ours, the other plays the
// peers a good copy is fetched from.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { LmdbStore } from '../../src/store/lmdb-store.js'
import { ChunkPipeline } from '../../src/chunks/chunk-pipeline.js'
import { ChunkVerifier } from '../../src/chunks/chunk-verifier.js'
import { Scrubber, type ScrubberOptions } from '../../src/replication/scrubber.js'
import type { RemoteChunks } from '../../src/chunks/chunk-store.js'
import { isChunkSum, aeadSum, AEAD_SUM_VERSION } from '../../src/codec/chunk-sum.js'
import { randomKey } from '../../src/crypto/volume-keys.js'
import { tempDir } from '../helpers/disktro.js'
import { until } from '../helpers/cluster.js'

const KiB = 1024

interface Teardown { teardown (fn: () => unknown): void }

async function openStore (t: Teardown, name: string): Promise<LmdbStore> {
  const store = LmdbStore.open(join(await tempDir(t), name))
  t.teardown(() => store.close())
  return store
}

// `n` sealed chunks of `size` random bytes, stored in every given store.
async function fill (pipeline: ChunkPipeline, n: number, size: number, ...stores: LmdbStore[]): Promise<Buffer[]> {
  const ids: Buffer[] = []
  for (let i = 0; i < n; i++) {
    const s = await pipeline.seal(randomBytes(size))
    for (const store of stores) await store.putChunk(s.id, s.record)
    ids.push(s.id)
  }
  return ids
}

// Peers, as the scrubber sees them: here, one other real store.
function peerOf (store: LmdbStore, asked: string[] = []): RemoteChunks {
  return {
    async fetch (id, accept) {
      asked.push(id.toString('hex'))
      const record = store.chunkCopy(id) // inline or packed
      if (record && await accept(Buffer.from(record))) return { record: Buffer.from(record), from: 'peer' }
      return null
    }
  }
}

function scrubber (t: Teardown, o: Partial<ScrubberOptions> & Pick<ScrubberOptions, 'store' | 'verifier'>, logs: string[] = []): Scrubber {
  const s = new Scrubber({ remote: null, rate: 1024 * 1024 * 1024, interval: 60_000, startDelay: 0, log: line => logs.push(line), ...o })
  t.teardown(() => s.close())
  return s
}

async function corrupt (store: LmdbStore, id: Buffer, at = 0.5): Promise<void> {
  const bad = Buffer.from(store.chunks.getBinary(id)!)
  bad[Math.floor(bad.length * at)] ^= 0x20
  await store.chunks.put(id, bad) // behind the store's back: the checksum stays
}

t.test('full member: corrupt, missing and unsummed chunks are found; bad ones repaired from a peer', async t => {
  const pipeline = new ChunkPipeline(randomKey(), randomKey())
  const mine = await openStore(t, 'mine')
  const peer = await openStore(t, 'peer')
  const ids = await fill(pipeline, 10, 256 * KiB, mine, peer)
  for (const i of [0, 3, 5]) await corrupt(mine, ids[i], i / 10 + 0.05)
  await mine.chunks.remove(ids[7]) // record lost, checksum still here
  await mine.sums.remove(ids[9]) // a chunk stored before checksums existed
  const logs: string[] = []
  const s = scrubber(t, { store: mine, verifier: new ChunkVerifier(pipeline), remote: peerOf(peer) }, logs)
  const started = Date.now()
  s.start()
  const last = await until('a pass finished', () => s.report().last, 30_000, 20)
  t.match(last, { checked: 10, corrupt: 3, missing: 1, repaired: 4, unrepairable: 0, adopted: 1 }, 'what the pass found and did')
  t.ok(last.bytes >= 9 * 256 * KiB, 'bytes read are counted')
  t.comment(`10 x 256 KiB scrubbed and 4 repaired in ${Date.now() - started} ms`)
  for (const id of ids) {
    const record = mine.chunks.getBinary(id)!
    t.ok(Buffer.from(record).equals(Buffer.from(peer.chunks.getBinary(id)!)), `chunk ${id.toString('hex').slice(0, 8)} is the good copy again`)
    const sum = Buffer.from(mine.sums.getBinary(id)!)
    t.ok(isChunkSum(sum, true), 'and has a checksum')
    t.match(await new ChunkVerifier(pipeline).check(id, Buffer.from(record), sum), { state: 'good' }, 'which the record passes')
  }
  t.equal(mine.sums.getBinary(ids[9])![0], AEAD_SUM_VERSION, 'a full member adopts with the AEAD sum (the record\'s tag)')
  t.match(logs.join('\n'), /repaired chunk [0-9a-f]{16} \(checksum mismatch\)/)
  t.match(logs.join('\n'), /repaired chunk [0-9a-f]{16} \(missing\)/)
  const saved = Scrubber.offlineReport(mine, 1, 1)
  t.match(saved, { passes: 1, last: { corrupt: 3, repaired: 4 } }, 'the result is kept in the data dir')
})

t.test('packed records: a byte flipped inside a pack is found and the record repaired from a peer', async t => {
  const pipeline = new ChunkPipeline(randomKey(), randomKey())
  const mine = await openStore(t, 'mine')
  const peer = await openStore(t, 'peer')
  const ids = await fill(pipeline, 120, 2 * KiB, mine, peer)
  mine.packNow()
  const packed = ids.filter(id => mine.chunks.getBinary(id)!.length === 17)
  t.ok(packed.length >= 60, `${packed.length} of 120 records packed (the rest wait inline for a full pack)`)
  // Flip a byte of one packed record inside its pack, behind the store's back.
  const victim = packed[7]
  const ptr = Buffer.from(mine.chunks.getBinary(victim)!)
  const packKey = ptr.subarray(1, 9)
  const pack = Buffer.from(mine.packs.getBinary(packKey)!)
  pack[ptr.readUInt32LE(9) + 100] ^= 0x20
  await mine.packs.put(packKey, pack)
  const s = scrubber(t, { store: mine, verifier: new ChunkVerifier(pipeline), remote: peerOf(peer) })
  s.start()
  const last = await until('a pass finished', () => s.report().last, 30_000, 20)
  t.match(last, { checked: 120, corrupt: 1, repaired: 1, unrepairable: 0 }, 'the damaged packed record, and only it')
  t.ok(mine.chunkCopy(victim)!.equals(peer.chunkCopy(victim)!), 'the good copy is stored')
  t.ok(ids.every(id => mine.chunkCopy(id)!.equals(peer.chunkCopy(id)!)), 'every record reads as the peer\'s')
})

t.test('full member: a record whose checksum is its AEAD tag (v3) is checked under the data key', async t => {
  const pipeline = new ChunkPipeline(randomKey(), randomKey())
  const mine = await openStore(t, 'mine')
  const peer = await openStore(t, 'peer')
  const ids: Buffer[] = []
  for (let i = 0; i < 4; i++) {
    const s = await pipeline.seal(randomBytes(128 * KiB))
    await mine.putChunk(s.id, s.record, aeadSum())
    await peer.putChunk(s.id, s.record)
    ids.push(s.id)
  }
  await corrupt(mine, ids[2], 0.7)
  const logs: string[] = []
  const s = scrubber(t, { store: mine, verifier: new ChunkVerifier(pipeline), remote: peerOf(peer) }, logs)
  s.start()
  const last = await until('a pass finished', () => s.report().last, 30_000, 20)
  t.match(last, { checked: 4, corrupt: 1, repaired: 1, adopted: 0 }, 'the flipped byte fails the tag; the other three pass it')
  t.match(logs.join('\n'), /repaired chunk [0-9a-f]{16} \(failed authentication\)/)
  t.ok(Buffer.from(mine.chunks.getBinary(ids[2])!).equals(Buffer.from(peer.chunks.getBinary(ids[2])!)), 'the good copy is back')
  t.match(await new ChunkVerifier(null).check(ids[0], Buffer.from(mine.chunks.getBinary(ids[0])!), aeadSum()), { state: 'adopt' }, 'a storage-only member cannot use a v3 sum: it sums the record itself')
})

t.test('a record that fails under the data key is corrupt even when it has no checksum', async t => {
  const pipeline = new ChunkPipeline(randomKey(), randomKey())
  const mine = await openStore(t, 'mine')
  const peer = await openStore(t, 'peer')
  const ids = await fill(pipeline, 3, 64 * KiB, mine, peer)
  await corrupt(mine, ids[1])
  await mine.sums.remove(ids[1])
  const s = scrubber(t, { store: mine, verifier: new ChunkVerifier(pipeline), remote: peerOf(peer) })
  s.start()
  const last = await until('a pass finished', () => s.report().last, 30_000, 20)
  t.match(last, { checked: 3, corrupt: 1, repaired: 1, adopted: 0 })
  await pipeline.open(ids[1], Buffer.from(mine.chunks.getBinary(ids[1])!))
  t.pass('the repaired record opens')
})

t.test('storage-only: checksums decide, only the exact stored bytes are accepted, and a later attempt repairs', async t => {
  const pipeline = new ChunkPipeline(randomKey(), randomKey()) // the writer's; the scrubber never sees it
  const mine = await openStore(t, 'mine')
  const peer = await openStore(t, 'peer')
  const ids = await fill(pipeline, 6, 128 * KiB, mine, peer)
  await corrupt(mine, ids[2])
  await corrupt(mine, ids[4])
  await corrupt(peer, ids[4], 0.1) // the peer's copy of this one is bad too, differently
  const logs: string[] = []
  const asked: string[] = []
  const s = scrubber(t, { store: mine, verifier: new ChunkVerifier(null), remote: peerOf(peer, asked), interval: 60_000 }, logs)
  s.start()
  const last = await until('a pass finished', () => s.report().last, 30_000, 20)
  t.match(last, { checked: 6, corrupt: 2, repaired: 1, unrepairable: 1 })
  t.match(logs.join('\n'), /chunk [0-9a-f]{16} is bad \(checksum mismatch\) and no peer had a good copy yet/)
  t.notOk(Buffer.from(mine.chunks.getBinary(ids[4])!).equals(Buffer.from(peer.chunks.getBinary(ids[4])!)), 'a bad copy from the peer was not taken')
  // the peer gets a good copy back (say, its own scrubber fixed it)
  const original = Buffer.from(mine.chunks.getBinary(ids[4])!)
  original[Math.floor(original.length * 0.5)] ^= 0x20 // undo our corruption: the original bytes
  await peer.chunks.put(ids[4], original)
  const fixed = await until('the retry repaired it', () => s.report().last?.unrepairable === 0 && s.report().last, 30_000, 100)
  t.match(fixed, { corrupt: 2, repaired: 2, unrepairable: 0 })
  t.ok(Buffer.from(mine.chunks.getBinary(ids[4])!).equals(original), 'the good copy is stored')
  t.match(logs.join('\n'), /repaired chunk [0-9a-f]{16} on a later attempt/)
})

t.test('with no peers a bad chunk is reported, not touched', async t => {
  const pipeline = new ChunkPipeline(randomKey(), randomKey())
  const mine = await openStore(t, 'mine')
  const ids = await fill(pipeline, 4, 64 * KiB, mine)
  await corrupt(mine, ids[0])
  const bad = Buffer.from(mine.chunks.getBinary(ids[0])!)
  const s = scrubber(t, { store: mine, verifier: new ChunkVerifier(pipeline) })
  s.start()
  const last = await until('a pass finished', () => s.report().last, 30_000, 20)
  t.match(last, { checked: 4, corrupt: 1, repaired: 0, unrepairable: 1 })
  t.ok(Buffer.from(mine.chunks.getBinary(ids[0])!).equals(bad), 'the record is left as it was')
})

t.test('the read rate stays under scrubRate, and a pass resumes where it stopped', async t => {
  const pipeline = new ChunkPipeline(randomKey(), randomKey())
  const mine = await openStore(t, 'mine')
  const n = 12
  await fill(pipeline, n, 256 * KiB, mine)
  const rate = 1024 * 1024 // 1 MiB/s: 12 x 256 KiB take about 3 s
  let s = new Scrubber({ store: mine, verifier: new ChunkVerifier(pipeline), remote: null, rate, interval: 60_000, startDelay: 0, log: () => {} })
  const started = Date.now()
  s.start()
  await until('half way', () => (s.report().current?.checked ?? 0) >= n / 2, 30_000, 20)
  const elapsed = (Date.now() - started) / 1000
  const got = s.report().current!
  // the pause comes after each read, so the first chunk is read at once,
  // and up to 100 ms of late timers are made up for
  const paced = (got.bytes - 256 * KiB) / elapsed
  t.ok(paced <= rate * 1.2, `read ${(paced / 1024 / 1024).toFixed(2)} MiB/s (one chunk of burst aside) with a bound of 1 MiB/s`)
  t.ok(paced >= rate * 0.5, 'and not much less')
  await s.close()
  const stoppedAt = Scrubber.offlineReport(mine, rate, 60_000).current!
  t.ok(stoppedAt.checked >= n / 2 && stoppedAt.checked < n, `stopped after ${stoppedAt.checked} chunks`)
  s = new Scrubber({ store: mine, verifier: new ChunkVerifier(pipeline), remote: null, rate: 1024 * 1024 * 1024, interval: 60_000, startDelay: 0, log: () => {} })
  t.teardown(() => s.close())
  s.start()
  const last = await until('the pass finished', () => s.report().last, 30_000, 20)
  t.equal(last.checked, n, 'each chunk checked exactly once in the pass, across the restart')
  t.equal(last.started, stoppedAt.started, 'the same pass went on')
})

t.test('small chunks are paced by their bytes alone: no floor per chunk', async t => {
  const pipeline = new ChunkPipeline(randomKey(), randomKey())
  const mine = await openStore(t, 'mine')
  const n = 600
  await fill(pipeline, n, 1 * KiB, mine)
  // The records as stored, inline or packed (a packed one's value in `chunks` is a pointer).
  const recordBytes = [...mine.chunks.getKeys({})].reduce((sum: number, k) => sum + mine.chunkSize(k as Buffer)!, 0)
  const rate = 512 * KiB // about 1.2 s for 600 records of 1 KiB; 75 s if each counted as 64 KiB
  const s = scrubber(t, { store: mine, verifier: new ChunkVerifier(pipeline), rate })
  const started = Date.now()
  s.start()
  const last = await until('the pass finished', () => s.report().last, 30_000, 20)
  const elapsed = (Date.now() - started) / 1000
  t.equal(last.checked, n, 'every chunk checked')
  t.equal(last.bytes, recordBytes, 'every record byte read')
  const byBytes = recordBytes / rate
  // the first 64 KiB are read before the first pause; timers fire up to 100 ms late and are made up for
  t.ok(elapsed >= byBytes - 64 * KiB / rate - 0.15, `${n} records (${(recordBytes / KiB).toFixed(0)} KiB) in ${elapsed.toFixed(2)} s at 512 KiB/s: no faster than the rate (${byBytes.toFixed(2)} s)`)
  t.ok(elapsed < byBytes * 3 + 1, 'and about as fast as the rate allows')
})

t.test('a restart after a finished pass waits for the interval; a restart during one resumes it', async t => {
  const pipeline = new ChunkPipeline(randomKey(), randomKey())
  const mine = await openStore(t, 'mine')
  await fill(pipeline, 10, 4 * KiB, mine)
  const make = (interval: number): Scrubber => new Scrubber({ store: mine, verifier: new ChunkVerifier(pipeline), remote: null, rate: 1024 * 1024 * 1024, interval, startDelay: 0, log: () => {} })
  let s = make(60_000)
  s.start()
  const first = await until('a pass finished', () => s.report().last, 30_000, 20)
  await s.close()
  s = make(60_000)
  s.start()
  await new Promise(resolve => setTimeout(resolve, 500))
  t.match(s.report(), { passes: 1, current: null }, 'restarted within the interval: no new pass')
  await s.close()
  s = make(1500) // the interval since the pass ends during this run
  t.teardown(() => s.close())
  s.start()
  const second = await until('the next pass, an interval after the first', () => s.report().passes === 2 && s.report().last, 30_000, 20)
  t.ok(second.started >= first.finished! + 1500, 'started an interval after the first ended')
})

t.test('while the filesystem is busy, at most one chunk a second; all of them once it is quiet', async t => {
  const pipeline = new ChunkPipeline(randomKey(), randomKey())
  const mine = await openStore(t, 'mine')
  const n = 40
  await fill(pipeline, n, 1 * KiB, mine)
  const s = scrubber(t, { store: mine, verifier: new ChunkVerifier(pipeline) })
  let busy = true
  s.deferWhile(() => busy)
  s.start()
  const checked = (): number => s.report().current?.checked ?? s.report().last?.checked ?? 0
  await new Promise(resolve => setTimeout(resolve, 2500))
  t.ok(checked() <= 3, `busy for 2.5 s: ${checked()} of ${n} chunks checked`)
  busy = false
  const last = await until('the pass finished once quiet', () => s.report().last, 30_000, 20)
  t.equal(last.checked, n, 'every chunk checked')
})
