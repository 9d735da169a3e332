// Small chunk records packed into pack records (store/chunk-packs.ts), against
// real LMDB files: readable through every path, compacted when deleted, and
// whole after a kill -9 in the middle of packing.
import t from 'tap'
import { randomBytes, createHash } from 'node:crypto'
import { spawn } from 'node:child_process'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LmdbStore, openChunkReader } from '../../src/store/lmdb-store.js'
import { isPointer, POINTER_BYTES, PACKABLE_MAX } from '../../src/store/chunk-packs.js'
import { sumMatches } from '../../src/codec/chunk-sum.js'
import { proofOf } from '../../src/replication/holder-proofs.js'
import { tempDir } from '../helpers/disktro.js'

interface Teardown { teardown (fn: () => unknown): void }

// A record shaped like a sealed one: version 01, then bytes.
function record (size: number): Buffer {
  const r = randomBytes(size)
  r[0] = 1
  return r
}

async function fill (store: LmdbStore, n: number, min = 1024 + 42, max = 4096 + 42): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>()
  for (let i = 0; i < n; i++) {
    const id = randomBytes(32)
    const r = record(min + Math.floor(Math.random() * (max - min)))
    await store.putChunk(id, r)
    out.set(id.toString('hex'), r)
  }
  return out
}

async function openStore (t: Teardown, dir?: string): Promise<{ store: LmdbStore, path: string }> {
  const path = dir ?? join(await tempDir(t), 'store')
  const store = LmdbStore.open(path)
  t.teardown(() => store.close())
  return { store, path }
}

const entries = (db: LmdbStore['chunks']): number => (db.getStats() as { entryCount: number }).entryCount

function pagesOf (store: LmdbStore, names: Array<'chunks' | 'packs' | 'packlive'>): number {
  let n = 0
  for (const name of names) {
    const s = store[name].getStats() as { treeBranchPageCount: number, treeLeafPageCount: number, overflowPages: number }
    n += s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages
  }
  return n
}

t.test('small records are packed and read back the same through every reader', async t => {
  const { store, path } = await openStore(t)
  const records = await fill(store, 600)
  store.packNow()
  let packed = 0
  for (const [hex, r] of records) {
    const id = Buffer.from(hex, 'hex')
    const raw = store.chunks.getBinary(id)!
    if (isPointer(raw)) packed++
    if (!store.chunkView(id)!.equals(r) || !store.chunkCopy(id)!.equals(r)) t.fail(`view or copy of ${hex}`)
    if (store.chunkSize(id) !== r.length) t.fail(`size of ${hex}`)
    if (!await sumMatches(r, store.sums.getBinary(id)!)) t.fail(`checksum of ${hex}`)
  }
  t.pass('views, copies, sizes and checksums of every record are those of the record')
  t.ok(packed >= 560, `most records packed (${packed} of 600; the rest wait for a full pack)`)
  t.equal(entries(store.chunks), 600, 'every chunk still has its own key')
  const reader = openChunkReader(path, false)
  t.teardown(() => reader.close())
  const ids = [...records.keys()]
  t.ok(ids.every(hex => reader.withRecord(Buffer.from(hex, 'hex'), r => Buffer.from(r).equals(records.get(hex)!))), 'a crypto worker\'s reader resolves packed records')
  // A holder proof hashes the record itself, wherever it is stored.
  const nonce = randomBytes(32)
  const id0 = Buffer.from(ids[0], 'hex')
  const plain = createHash('sha256').update(records.get(ids[0])!).digest()
  t.ok(proofOf(store, nonce, id0)!.equals(proofOf(store, nonce, id0)!) && !plain.equals(proofOf(store, nonce, id0)!), 'proofs are computed over the record')
  const bytes = [...records.values()].reduce((s, r) => s + r.length, 0)
  const ratio = pagesOf(store, ['chunks', 'packs', 'packlive']) * 4096 / bytes
  t.ok(ratio < 1.12, `chunk table and packs: ${ratio.toFixed(3)} bytes per record byte`)
  const space = store.spaceStats() // what status reports
  t.ok(space.packs === entries(store.packs) && space.chunkBytes === pagesOf(store, ['chunks', 'packs', 'packlive']) * 4096 && space.storeBytes > space.chunkBytes, `status space: ${space.packs} packs, ${space.chunkBytes} of ${space.storeBytes} bytes are chunk records`)
  await store.close()
  const again = LmdbStore.open(path)
  t.teardown(() => again.close())
  for (const [hex, r] of records) if (!again.chunkView(Buffer.from(hex, 'hex'))!.equals(r)) t.fail(`${hex} after reopening`)
  t.pass('packed records read back after reopening')
})

t.test('without packing the same records take ~1.45x: what packing saves', async t => {
  // The baseline the ratio above is measured against (one record per key).
  const { store } = await openStore(t)
  const records = new Map<string, Buffer>()
  store.txn(() => {
    for (let i = 0; i < 600; i++) {
      const id = randomBytes(32); const r = record(1066 + Math.floor(Math.random() * 3072))
      store.chunks.putSync(id, r)
      records.set(id.toString('hex'), r)
    }
  })
  const bytes = [...records.values()].reduce((s, r) => s + r.length, 0)
  const ratio = pagesOf(store, ['chunks']) * 4096 / bytes
  t.ok(ratio > 1.3, `one record per key: ${ratio.toFixed(3)} bytes per record byte`)
})

t.test('large records keep their own pages; deleted packed records are compacted away', async t => {
  const { store } = await openStore(t)
  const big = randomBytes(32); const bigRecord = record(PACKABLE_MAX + 1)
  await store.putChunk(big, bigRecord)
  const records = await fill(store, 400)
  store.packNow()
  t.notOk(isPointer(store.chunks.getBinary(big)!), 'a record over PACKABLE_MAX stays inline')
  const packsBefore = entries(store.packs)
  t.ok(packsBefore >= 10, `${packsBefore} packs`)
  const ids = [...records.keys()]
  const gone = ids.filter((_, i) => i % 4 !== 0) // three in four deleted
  store.txn(() => { for (const hex of gone) store.removeChunkSync(Buffer.from(hex, 'hex')) })
  const steps = store.packNow()
  t.ok(steps > 0, `${steps} compaction and packing steps`)
  const packsAfter = entries(store.packs)
  t.ok(packsAfter <= Math.ceil(packsBefore / 2), `packs ${packsBefore} -> ${packsAfter}`)
  t.ok(gone.every(hex => store.chunkView(Buffer.from(hex, 'hex')) === undefined), 'deleted records are gone')
  for (const hex of ids.filter((_, i) => i % 4 === 0)) {
    const id = Buffer.from(hex, 'hex')
    if (!store.chunkView(id)?.equals(records.get(hex)!)) t.fail(`survivor ${hex} changed`)
  }
  t.pass('the survivors read back unchanged')
  t.ok(store.chunkView(big)!.equals(bigRecord))
  // Replacing a packed record (a repair) takes it out of its pack.
  const keep = Buffer.from(ids.find((_, i) => i % 4 === 0)!, 'hex')
  const fresh = record(2000)
  await store.putChunk(keep, fresh)
  t.ok(store.chunkView(keep)!.equals(fresh), 'a replaced record reads as the new one')
})

t.test('a record that would read as a pack pointer is refused', async t => {
  const { store } = await openStore(t)
  const fake = Buffer.alloc(POINTER_BYTES); fake[0] = 0xf0
  await t.rejects(store.putReplica(randomBytes(32), fake, 'aa'.repeat(32)), { code: 'EINVAL' })
  await t.rejects(store.putChunk(randomBytes(32), fake), { code: 'EINVAL' })
})

t.test('kill -9 while packing and compacting: every acknowledged record is whole', async t => {
  const path = join(await tempDir(t), 'store')
  const child = spawn(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), 'pack-writer.js'), path], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  await new Promise(resolve => setTimeout(resolve, 6000))
  child.kill('SIGKILL')
  await new Promise(resolve => child.on('close', resolve))
  const lines = out.split('\n')
  const acked = lines.filter(l => l.length === 129).map(l => l.split(' '))
  const doomed = new Set(lines.filter(l => l.startsWith('D ')).map(l => l.slice(2)))
  t.ok(acked.length > 300, `${acked.length} records acknowledged before the kill`)
  const { store } = await openStore(t, path)
  t.ok(entries(store.packs) > 0, 'packs were made before the kill')
  let present = 0
  for (const [hex, sha] of acked) {
    const r = store.chunkView(Buffer.from(hex, 'hex'))
    if (r === undefined) {
      if (!doomed.has(hex)) t.fail(`acknowledged record ${hex} lost`)
      continue // deleted by the child
    }
    present++
    if (createHash('sha256').update(r).digest('hex') !== sha) t.fail(`record ${hex} damaged`)
    if (!await sumMatches(Buffer.from(r), store.sums.getBinary(Buffer.from(hex, 'hex'))!)) t.fail(`checksum of ${hex}`)
  }
  t.ok(present > acked.length / 3, `${present} records present and whole`)
  t.equal(entries(store.chunks), entries(store.sums), 'a checksum for every record, no record without one')
  // The packer picks up after the crash and the store stays consistent.
  store.packNow()
  for (const [hex, sha] of acked) {
    const r = store.chunkView(Buffer.from(hex, 'hex'))
    if (r !== undefined && createHash('sha256').update(r).digest('hex') !== sha) t.fail(`record ${hex} after packing again`)
  }
})
