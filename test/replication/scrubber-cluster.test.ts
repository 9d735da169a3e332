// Real processes: chunks corrupted at rest on a full and a storage-only
// member are found by their scrubbers and repaired from the other members.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { open as openLmdb } from 'lmdb'
import { requireFuse, sh, disktro, tempDir } from '../helpers/disktro.js'
import { startBootstrap, makeCluster, mountNode, serveNode, storedChunkIds, statusJson, until, nodeConfig, type ClusterNode } from '../helpers/cluster.js'

const envTimeout = Number(process.env.TAP_TIMEOUT ?? '30')
if (envTimeout !== 0 && envTimeout < 300) t.setTimeout(300_000)

const MiB = 1024 * 1024

function records (dataDir: string): Map<string, Buffer> {
  const env = openLmdb({ path: join(dataDir, 'store'), maxDbs: 16, readOnly: true })
  try {
    const db = env.openDB({ name: 'chunks', encoding: 'binary', keyEncoding: 'binary', compression: false })
    const out = new Map<string, Buffer>()
    for (const { key, value } of db.getRange({})) out.set((key as Buffer).toString('hex'), Buffer.from(value as Buffer))
    return out
  } finally {
    void env.close()
  }
}

// Flips a byte in each of `flip` and deletes the record of each of `drop`,
// behind the (stopped) node's back: checksums stay as they were.
async function damage (n: ClusterNode, flip: string[], drop: string[]): Promise<void> {
  const env = openLmdb({ path: join(n.dataDir, 'store'), maxDbs: 16 })
  const chunks = env.openDB({ name: 'chunks', encoding: 'binary', keyEncoding: 'binary', compression: false })
  for (const [i, hex] of flip.entries()) {
    const id = Buffer.from(hex, 'hex')
    const bad = Buffer.from(chunks.getBinary(id)!)
    bad[Math.floor(bad.length * (i + 1) / (flip.length + 2))] ^= 0x08
    await chunks.put(id, bad)
  }
  for (const hex of drop) await chunks.remove(Buffer.from(hex, 'hex'))
  await env.close()
}

t.test('the scrubber finds and repairs corrupt and missing chunks on full and storage-only members', async t => {
  if (!await requireFuse(t)) return
  const bootstrap = await startBootstrap(t)
  const [a, b, c] = await makeCluster(t, bootstrap, ['full', 'full', 'storage'], { scrubRate: 0 })
  const ma = await mountNode(t, a)
  let sb = await serveNode(t, b)
  let sc = await serveNode(t, c)

  const local = await tempDir(t)
  await writeFile(join(local, 'f'), randomBytes(20 * MiB))
  await sh(`cp ${join(local, 'f')} ${ma.path('f')}`)
  const ids = [...storedChunkIds(a.dataDir)]
  t.equal(ids.length, 20, '20 chunks on the writer')
  for (const n of [b, c]) {
    await until(`${n.name} holds every chunk`, () => {
      const have = storedChunkIds(n.dataDir)
      return ids.every(id => have.has(id))
    }, 120_000).catch(async e => {
      // Seen once in CI (stop 24): say what the writer thought and logged.
      const st = await statusJson(a).catch(err => (err as Error).message)
      throw new Error(`${(e as Error).message}; writer's status: ${JSON.stringify(st)}; writer's log: ${ma.stderr.slice(-3000)}; ${n.name}'s log: ${(n === b ? sb : sc).stderr.slice(-3000)}`)
    })
  }
  const good = records(a.dataDir)

  await sb.stop()
  await sc.stop()
  const onB = { flip: ids.slice(0, 3), drop: [] as string[] }
  const onC = { flip: ids.slice(5, 9), drop: [ids[15]] }
  await damage(b, onB.flip, onB.drop)
  await damage(c, onC.flip, onC.drop)
  for (const n of [b, c]) await nodeConfig(dirname(n.config), bootstrap, { scrubRate: '256MiB', scrubInterval: '1h' })

  const restarted = Date.now()
  sb = await serveNode(t, b)
  sc = await serveNode(t, c)
  for (const [n, d] of [[b, onB], [c, onC]] as const) {
    let seen: unknown
    const last = await until(`${n.name}'s scrub repaired everything`, async () => {
      const s = (await statusJson(n)).scrub
      seen = s
      return s?.last && s.last.corrupt === d.flip.length && s.last.repaired === d.flip.length + s.last.missing && s.last.unrepairable === 0 && s.last
    }, 90_000, 250).catch(e => { throw new Error(`${(e as Error).message}; last status: ${JSON.stringify(seen)}; log: ${(n === b ? sb : sc).stderr}`) })
    // A dropped record may come back by replication before the scrubber
    // reaches it (a full member pushes what its block maps name): either way
    // it is back.
    t.match(last, { checked: 20, corrupt: d.flip.length, unrepairable: 0 }, `${n.name}: found ${d.flip.length} corrupt, ${last.missing} missing; all repaired`)
    t.ok(last.missing <= d.drop.length)
    t.comment(`${n.name}: ${last.repaired} chunks repaired ${Date.now() - restarted} ms after restart; pass read ${(last.bytes / MiB).toFixed(1)} MiB in ${last.finished - last.started} ms`)
    const now = records(n.dataDir)
    const wrong = ids.filter(id => !now.get(id)?.equals(good.get(id)!))
    t.same(wrong, [], `${n.name}: every stored record is byte-identical to the writer's again`)
  }
  t.match(sc.stderr, /scrub: repaired chunk [0-9a-f]{16} \((checksum mismatch|missing)\)/, 'the daemon logs each repair')
  const st = await disktro(['status', '--data-dir', c.dataDir, '--config', c.config])
  t.match(st.stdout, /scrub {7}at most 256\.0 MiB\/s, 1 pass\(es\) done/)
  t.match(st.stdout, /last pass finished \d+s ago: 20 chunks, .* 4 corrupt, [01] missing: [45] repaired from peers/)

  // Offline, both members check clean now.
  await sb.stop()
  await sc.stop()
  for (const n of [b, c]) {
    const r = await disktro(['fsck', '--data-dir', n.dataDir, '--config', n.config])
    t.equal(r.code, 0, `${n.name}: fsck clean after the scrub\n${r.stdout}${r.stderr}`)
  }
  await ma.stop()
  const fa = await disktro(['fsck', '--data-dir', a.dataDir, '--config', a.config])
  t.equal(fa.code, 0, `the writer: fsck clean\n${fa.stdout}`)
})
