// disktro across the network lab (test/helpers/net-lab.ts): members in
// network namespaces of their own, on shaped, lossy links. Root only.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { NetLab, PROFILES, labAvailable, rawTcp } from '../helpers/net-lab.js'
import { requireFuse, sh, tempDir } from '../helpers/disktro.js'
import { startBootstrap, makeCluster, mountNode, serveNode, storedChunkIds, statusJson, until } from '../helpers/cluster.js'

const MiB = 1024 * 1024

const missing = labAvailable()
if (missing !== null) {
  if (process.env.CI) t.fail(missing)
  else t.plan(0, missing)
} else {
  t.test('the lab link: rate, delay and loss as configured; a cut partitions', async t => {
    const lab = await NetLab.start(t, [{ name: 'a' }, { name: 'b' }], PROFILES.broadband)
    const before = await lab.stats()
    const r = await rawTcp(lab, 'a', 'b', 16)
    const mbit = r.bytes * 8 / 1e6 / r.seconds
    t.equal(r.bytes, 16 * 1024 * 1024, 'every byte arrived')
    t.ok(mbit > 25 && mbit < 51, `a TCP stream over 50 Mbit/s, 40 ms RTT, 0.5% loss: ${mbit.toFixed(1)} Mbit/s`)
    const after = await lab.stats()
    const sent = after.get('a')!.sent - before.get('a')!.sent
    const lost = after.get('a')!.lost + after.get('b')!.lost - before.get('a')!.lost - before.get('b')!.lost
    t.ok(lost / (sent / 1500) > 0.001 && lost / (sent / 1500) < 0.02, `loss near 0.5% of packets (${lost} of about ${Math.round(sent / 1500)})`)
    // Latency: a 1-byte exchange costs a connect (1 RTT) plus a request (1 RTT): >= 80 ms.
    const t0 = performance.now()
    await rawTcp(lab, 'a', 'b', 0)
    t.ok(performance.now() - t0 > 80, 'a connect and an answer take two 40 ms round trips at least')

    await lab.cut(['a'], ['b'])
    const cut = rawTcp(lab, 'a', 'b', 1, 5202).then(() => 'through', () => 'failed')
    const raced = await Promise.race([cut, new Promise(resolve => setTimeout(() => resolve('blocked'), 3000))])
    t.equal(raced, 'blocked', 'nothing crosses a cut link')
    await lab.heal(['a'], ['b'])
    t.equal(await cut, 'through', 'the stream goes through once the link is healed (TCP retried)')
  })

  // The first lab run: every connection dropped as silent as soon
  // as replication filled the link, and 32 MiB never reached 3 machines.
  t.test('32 MiB reaches three machines over broadband, with no silent drops', async t => {
    if (!await requireFuse(t)) return
    const lab = await NetLab.start(t, [{ name: 'a' }, { name: 'b' }, { name: 'c' }], PROFILES.broadband)
    const bootstrap = await startBootstrap(t, { host: lab.host('boot').ip, netns: lab.ns('boot') })
    // heartbeatInterval 2 s: a peer is silent after 6 s, far less than the
    // seconds of bulk data a full send window once queued ahead of a PONG.
    const [a, b, c] = await makeCluster(t, bootstrap, ['full', 'full', 'storage'], { heartbeatInterval: 2000 })
    const ma = await mountNode(t, a, lab.ns('a'))
    const sb = await serveNode(t, b, lab.ns('b'))
    const sc = await serveNode(t, c, lab.ns('c'))
    await until('the writer sees both peers online', async () => (await statusJson(a)).peers.filter((p: any) => p.online).length === 2, 120_000, 500)

    const local = await tempDir(t)
    await writeFile(join(local, 'big'), randomBytes(32 * MiB))
    const before = (await lab.stats()).get('a')!
    const started = Date.now()
    await sh(`cp ${join(local, 'big')} ${ma.path('big')}`)
    const writerChunks = storedChunkIds(a.dataDir)
    t.equal(writerChunks.size, 32, '32 chunks of 1 MiB on the writer')
    for (const n of [b, c]) {
      await until(`${n.name} holds every chunk`, () => {
        const have = storedChunkIds(n.dataDir)
        return [...writerChunks].every(id => have.has(id))
      }, 120_000, 250)
    }
    const seconds = (Date.now() - started) / 1000
    const sent = (await lab.stats()).get('a')!.sent - before.sent
    t.pass(`32 MiB on 3 machines after ${seconds.toFixed(1)} s; the writer's uplink carried ${(sent / (32 * MiB)).toFixed(2)} bytes per byte written`)
    // Two copies over one 50 Mbit/s uplink take 10.7 s at the line rate.
    t.ok(seconds < 60, 'within 60 s')
    for (const [name, log] of [['a', ma.stderr + ma.stdout], ['b', sb.stderr + sb.stdout], ['c', sc.stderr + sc.stdout]]) {
      const silent = log.split('\n').filter(l => /silent for/.test(l))
      t.same(silent, [], `${name}: no connection dropped as silent`)
    }
  })
}
