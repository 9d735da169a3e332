// The writer for chunk-packs.test.ts's kill -9 test (a child process): stores
// records as fast as it can, the packer packing and compacting behind it,
// prints each id with the SHA-256 of its record once its put has resolved,
// and deletes some, saying so before each deletion commits.
import { randomBytes, createHash } from 'node:crypto'
import { LmdbStore } from '../../src/store/lmdb-store.js'

function record (size: number): Buffer {
  const r = randomBytes(size)
  r[0] = 1
  return r
}

const store = LmdbStore.open(process.argv[2])
const ids: Buffer[] = []
for (let i = 0; ; i += 20) {
  // Twenty puts at a time (they share commits), each printed once resolved.
  await Promise.all(Array.from({ length: 20 }, async (_, j) => {
    const id = randomBytes(32)
    const r = record(1066 + ((i + j) * 131) % 3072)
    await store.putChunk(id, r)
    ids.push(id)
    process.stdout.write(`${id.toString('hex')} ${createHash('sha256').update(r).digest('hex')}\n`)
  }))
  if (i % 100 === 80) {
    const doomed = ids.splice(0, 60)
    // Said before the deletion commits: a record missing after the kill
    // must be one of these.
    process.stdout.write(doomed.map(d => `D ${d.toString('hex')}\n`).join(''))
    store.txn(() => { for (const d of doomed) store.removeChunkSync(d) })
  }
}
