import t from 'tap'
import { createHmac, randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Volume } from '../../src/volume/volume.js'
import { readVolumeFile } from '../../src/volume/volume-file.js'
import { chunkIdFunction } from '../../src/crypto/chunk-id.js'

const PASSWORD = 'volume test password'
const MiB = 1024 * 1024

async function idsOf (dataDir: string, blocks: Buffer[]): Promise<{ ids: Buffer[], key: Buffer }> {
  const v = await Volume.open(dataDir, PASSWORD, { maxStoreBytes: 1 << 30 })
  try {
    const ids: Buffer[] = []
    for (const b of blocks) ids.push((await v.full.pipeline.seal(b)).id) // 1 MiB: sealed on a crypto worker
    return { ids, key: Buffer.from(v.full.keys.chunkId) }
  } finally {
    await v.close()
  }
}

const blocks = [randomBytes(MiB), Buffer.from('a small block, sealed on the event loop '.repeat(50))]

t.test('a new volume names its chunks by keyed BLAKE3', async t => {
  const dataDir = t.testdir()
  await Volume.create(dataDir, PASSWORD, MiB)
  t.equal((await readVolumeFile(dataDir)).chunkIdHash, 'blake3', 'volume.json says so')
  const { ids, key } = await idsOf(dataDir, blocks)
  const blake3 = chunkIdFunction('blake3', key)
  t.same(ids, blocks.map(b => blake3(b)))
})

t.test('a volume made before BLAKE3 (no chunkIdHash) keeps HMAC-SHA256 ids', async t => {
  const dataDir = t.testdir()
  await Volume.create(dataDir, PASSWORD, MiB)
  const path = join(dataDir, 'volume.json')
  const f = JSON.parse(await readFile(path, 'utf8'))
  delete f.chunkIdHash
  await writeFile(path, JSON.stringify(f))
  const { ids, key } = await idsOf(dataDir, blocks)
  t.same(ids, blocks.map(b => createHmac('sha256', key).update(b).digest()))
})

t.test('a volume.json naming an unknown chunk-id function is damaged, in one line', async t => {
  const dataDir = t.testdir()
  await Volume.create(dataDir, PASSWORD, MiB)
  const path = join(dataDir, 'volume.json')
  await writeFile(path, JSON.stringify({ ...JSON.parse(await readFile(path, 'utf8')), chunkIdHash: 'md5' }))
  await t.rejects(Volume.open(dataDir, PASSWORD, { maxStoreBytes: 1 << 30 }), { code: 'VOLUME_DAMAGED' })
})
