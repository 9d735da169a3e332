// A corrupt chunk at rest: reads of its range fail with EIO, the daemon says
// which file, everything else reads fine and the daemon keeps serving.
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { open as openLmdb } from 'lmdb'
import { Mount, tempDir, sh, run, requireFuse } from '../helpers/disktro.js'

// Real mounts and node start-ups: allow for a loaded machine, past tap's 30 s default.
const envTimeout = Number(process.env.TAP_TIMEOUT ?? '30')
if (envTimeout !== 0 && envTimeout < 180) t.setTimeout(180_000)

const MiB = 1024 * 1024
const BLOCKS = 4

function openChunks (dataDir: string) {
  const env = openLmdb<Buffer, Buffer>({ path: join(dataDir, 'store'), maxDbs: 12, encoding: 'binary', keyEncoding: 'binary', compression: false })
  const chunks = env.openDB<Buffer, Buffer>({ name: 'chunks', encoding: 'binary', keyEncoding: 'binary', compression: false })
  return { env, chunks }
}

async function chunkKeys (dataDir: string): Promise<Set<string>> {
  const { env, chunks } = openChunks(dataDir)
  try {
    return new Set([...chunks.getKeys({})].map(k => (k as Buffer).toString('hex')))
  } finally {
    await env.close()
  }
}

t.test('a corrupt chunk fails its range with EIO and nothing else', async t => {
  if (!await requireFuse(t)) return
  const base = await tempDir(t)
  const dataDir = join(base, 'data')
  const mnt = join(base, 'mnt')

  let m = await Mount.start(t, { dataDir, mountpoint: mnt })
  const good = randomBytes(3 * MiB + 5)
  const small = randomBytes(1000)
  await writeFile(m.path('good'), good)
  await writeFile(m.path('small'), small)
  t.equal((await m.stop()).code, 0, 'stops cleanly')
  const before = await chunkKeys(dataDir)

  // the victim: BLOCKS random blocks, so BLOCKS chunks of its own
  const victim = randomBytes(BLOCKS * MiB)
  m = await Mount.start(t, { dataDir, mountpoint: mnt })
  await writeFile(m.path('victim.bin'), victim)
  t.equal((await m.stop()).code, 0, 'stops cleanly')
  const mine = [...await chunkKeys(dataDir)].filter(k => !before.has(k))
  t.equal(mine.length, BLOCKS, 'the victim has one chunk per block')

  // flip one byte in the middle of one of them
  const { env, chunks } = openChunks(dataDir)
  const id = Buffer.from(mine[0], 'hex')
  const record = Buffer.from(chunks.getBinary(id) as Buffer)
  record[record.length >> 1] ^= 0x40
  await chunks.put(id, record)
  await env.close()

  m = await Mount.start(t, { dataDir, mountpoint: mnt })
  const cat = await run('cat', [m.path('victim.bin')], { timeoutMs: 30_000 })
  t.not(cat.code, 0, 'cat of the whole file fails')
  t.match(cat.stderr, /Input\/output error/, 'with EIO')
  t.match(m.stderr, /read error: \/victim\.bin: chunk [0-9a-f]+ failed authentication/, 'the daemon log names the file and the chunk')

  // block by block: exactly one range fails, the others read back exactly
  const failed: number[] = []
  for (let b = 0; b < BLOCKS; b++) {
    const out = join(base, `block-${b}`)
    const r = await run('dd', [`if=${m.path('victim.bin')}`, `of=${out}`, 'bs=1M', `skip=${b}`, 'count=1', 'status=none'], { timeoutMs: 30_000 })
    if (r.code !== 0) {
      t.match(r.stderr, /Input\/output error/, `block ${b} fails with EIO`)
      failed.push(b)
    } else {
      t.ok((await readFile(out)).equals(victim.subarray(b * MiB, (b + 1) * MiB)), `block ${b} reads back intact`)
    }
  }
  t.equal(failed.length, 1, `exactly one block is unreadable (${failed.join()})`)
  const again = await run('dd', [`if=${m.path('victim.bin')}`, 'of=/dev/null', 'bs=1M', `skip=${failed[0]}`, 'count=1', 'status=none'], { timeoutMs: 30_000 })
  t.not(again.code, 0, 'the bad range fails again on a second read (no bad data cached)')

  // other files and the daemon itself are fine
  t.ok((await readFile(m.path('good'))).equals(good), 'another file reads fine')
  t.ok((await readFile(m.path('small'))).equals(small), 'a small file reads fine')
  t.ok(m.running, 'the daemon keeps running')
  await writeFile(m.path('new'), 'still serving')
  t.equal(await readFile(m.path('new'), 'utf8'), 'still serving', 'and takes new writes')
  t.match(await sh(`ls '${mnt}'`), /victim\.bin/, 'and lists the damaged file')
  t.equal((await m.stop()).code, 0, 'stops cleanly')
})
