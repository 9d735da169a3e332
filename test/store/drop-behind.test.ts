// Page-cache drop-behind of replicas (src/store/drop-behind.ts), against a
// real LMDB file and the kernel's page cache as fincore(1) reports it.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { LmdbStore } from '../../src/store/lmdb-store.js'
import { dropCacheFn, ADDON_PATH } from '../../src/store/drop-behind.js'
import { aeadSum } from '../../src/codec/chunk-sum.js'
import { tempDir } from '../helpers/disktro.js'
import { until } from '../helpers/cluster.js'

const run = promisify(execFile)
const MiB = 1024 * 1024
const RECORDS = 24

// Bytes of `file` in the page cache.
async function cached (file: string): Promise<number> {
  const { stdout } = await run('fincore', ['--bytes', '--noheadings', '--output', 'RES', file])
  return Number(stdout.trim())
}

const fincore = await run('fincore', ['--version']).then(() => true, () => false)
const addon = dropCacheFn() !== null
// Under CI the addon must have been built by npm install (scripts/build-io.cjs).
if (process.env.CI === 'true') t.ok(addon, `the native io addon loads from ${ADDON_PATH}`)

t.test('replicas leave the page cache once synced; local writes stay cached', { skip: !addon ? 'native io addon not built' : !fincore ? 'no fincore' : false }, async t => {
  const dir = await tempDir(t)
  const replica = LmdbStore.open(join(dir, 'replica'))
  const local = LmdbStore.open(join(dir, 'local'))
  t.teardown(async () => { await replica.close(); await local.close() })
  for (let i = 0; i < RECORDS; i++) {
    const record = randomBytes(MiB)
    await replica.putReplica(randomBytes(32), record, 'aa'.repeat(32), aeadSum())
    await local.putChunk(randomBytes(32), record, aeadSum())
  }
  await replica.flushed()
  await local.flushed()
  const replicaFile = join(dir, 'replica', 'data.mdb')
  const localFile = join(dir, 'local', 'data.mdb')
  const { left } = await until('the replicas\' pages dropped', async () => {
    const bytes = await cached(replicaFile)
    return bytes < 4 * MiB ? { left: bytes } : null
  }, 10_000, 50)
  const kept = await cached(localFile)
  t.comment(`after sync: replica store ${(left / MiB).toFixed(1)} MiB cached, local store ${(kept / MiB).toFixed(1)} MiB cached (${RECORDS} MiB written to each)`)
  t.ok(left < 4 * MiB, 'at most the tree pages of the replica store stay cached')
  t.ok(kept >= (RECORDS - 2) * MiB, 'the locally written store keeps its pages')
  for (let i = 0; i < 3; i++) {
    const id = randomBytes(32); const record = randomBytes(MiB)
    await replica.putReplica(id, record, 'aa'.repeat(32), aeadSum())
    await replica.flushed()
    t.same(replica.chunks.getBinary(id), record, 'a dropped store still reads back what it stored')
  }
})
