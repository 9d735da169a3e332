import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { LmdbStore, heldKey } from '../../src/store/lmdb-store.js'
import { readVolumeFile } from '../../src/volume/volume-file.js'
import { startBootstrap, makeCluster, serveNode, statusJson, until, type ClusterNode, type Daemon } from '../helpers/cluster.js'
import { sleep } from '../helpers/disktro.js'

// Costs follow change, not size (issue #26): three storage-only members each
// hold the same N chunks, each listing the other two as holders (as after a
// finished replication). Once they have counted them, an idle member's CPU is
// the same for 1,000 and for 100,000 chunks: nothing walks every chunk.

const TICKS_PER_S = 100 // USER_HZ

async function cpuSeconds (pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S // utime + stime
}

async function fill (nodes: ClusterNode[], n: number): Promise<void> {
  const ids = Array.from({ length: n }, () => randomBytes(32))
  const record = randomBytes(300)
  const proofTime = Buffer.alloc(8)
  proofTime.writeDoubleLE(Date.now())
  const nodeIds = await Promise.all(nodes.map(async x => Buffer.from((await readVolumeFile(x.dataDir)).nodeId, 'hex')))
  for (let i = 0; i < nodes.length; i++) {
    const store = LmdbStore.open(join(nodes[i].dataDir, 'store'))
    const others = nodeIds.filter((_, j) => j !== i)
    store.txn(() => {
      for (const id of ids) {
        store.putChunkSync(id, record)
        store.rdirty.removeSync(id) // counted at start, like a volume from before the counts
        store.foreign.putSync(id, Buffer.alloc(0))
        store.holders.putSync(id, Buffer.concat(others))
        for (const o of others) store.held.putSync(heldKey(o, id), proofTime) // proven (an acked push) just now
      }
    })
    await store.close()
  }
}

async function idleCost (t: Test, n: number): Promise<number[]> {
  const bootstrap = await startBootstrap(t)
  // The scrubber aside (it reads at its configured rate whatever else happens).
  const [, ...members] = await makeCluster(t, bootstrap, ['full', 'storage', 'storage', 'storage'], { scrubRate: 0 })
  await fill(members, n)
  const daemons: Daemon[] = []
  for (const m of members) daemons.push(await serveNode(t, m))
  for (const m of members) {
    await until(`${m.name} counted and safe`, async () => {
      const s = await statusJson(m)
      // ... and done with the one-time upgrade of its copies held for others (leases).
      return s.peers.filter((p: any) => p.online).length === 2 && !s.replication.counting && s.replication.unsettled === 0 && s.replication.atTarget === n && s.storage?.leases?.queued === n
    }, 120_000, 500)
  }
  await sleep(3000) // the first challenge rounds after connecting
  const before = await Promise.all(daemons.map(d => cpuSeconds(d.child.pid!)))
  await sleep(20_000)
  const after = await Promise.all(daemons.map(d => cpuSeconds(d.child.pid!)))
  for (const d of daemons) await d.stop()
  return after.map((a, i) => (a - before[i]) * 3) // CPU-s per minute
}

t.test('an idle member costs the same CPU with 1,000 and with 100,000 chunks', async t => {
  const small = await idleCost(t, 1000)
  const large = await idleCost(t, 100_000)
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[1]
  t.comment(`idle CPU-s per minute: 1,000 chunks ${small.map(x => x.toFixed(2)).join(' / ')}; 100,000 chunks ${large.map(x => x.toFixed(2)).join(' / ')}`)
  // Flat within 2x (plus 0.3 CPU-s a minute of scheduling noise); a walk of
  // 100,000 chunks every few seconds would cost several CPU-s a minute.
  t.ok(med(large) <= 2 * med(small) + 0.3, `flat: median ${med(large).toFixed(2)} against ${med(small).toFixed(2)} CPU-s per minute`)
  // What both cost is the floor of a member at all: heartbeats every 500 ms
  // here (10 times the default), the DHT, a challenge round per peer every 10 s.
  t.comment(`${(med(large) / 60 * 100).toFixed(2)}% of a core at 100,000 chunks, ${(med(small) / 60 * 100).toFixed(2)}% at 1,000`)
})
