// disktro replication across the network lab (test/helpers/net-lab.ts):
// `npm run bench -- --lab [--lab-size MiB] [--lab-profiles lan,broadband,poor]`, root only.
//
// Per link profile: a writer A (mounted), a full member B and a storage-only
// member C (`serve`), each in its own namespace behind its own shaped line,
// replicaCount 3. A file is copied into A's mount; the clock runs from the
// start of the copy until every chunk is in a second and a third machine's
// store (asked of each store's LMDB). The yardstick is one plain TCP stream
// of the same size from A to B over the same lab, measured in the same run.
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { NetLab, PROFILES, labAvailable, rawTcp, rawSwarm, type LinkProfile } from '../test/helpers/net-lab.js'
import { sh, tempDir, sleep } from '../test/helpers/disktro.js'
import { startBootstrap, makeCluster, mountNode, serveNode, storedChunkIds, statusJson, until } from '../test/helpers/cluster.js'

const MiB = 1024 * 1024

export interface LabResult {
  profile: LinkProfile
  sizeMiB: number
  rawSeconds: number // one TCP copy A -> B
  swarmSeconds: number // one raw Hyperswarm stream A -> B
  twoSeconds: number // until every chunk is on 2 machines (A and one more)
  threeSeconds: number // ... on 3 machines
  uplinkPerByte: number // bytes A's line carried out per byte written
  silentDrops: number // connections dropped as silent, in all three logs
}

class Teardowns {
  private readonly fns: Array<() => unknown> = []
  passing = (): boolean => true
  teardown (fn: () => unknown): void { this.fns.push(fn) }
  async run (): Promise<void> {
    for (const fn of this.fns.reverse()) { try { await fn() } catch {} }
    this.fns.length = 0
  }
}

export async function labRun (profile: LinkProfile, sizeMiB: number, log: (s: string) => void, extra: Record<string, unknown> = {}): Promise<LabResult> {
  const t = new Teardowns()
  try {
    const lab = await NetLab.start(t, [{ name: 'a' }, { name: 'b' }, { name: 'c' }], profile)
    const raw = await rawTcp(lab, 'a', 'b', sizeMiB)
    log(`${profile.name}: raw TCP ${sizeMiB} MiB in ${raw.seconds.toFixed(1)} s (${(raw.bytes * 8 / 1e6 / raw.seconds).toFixed(1)} Mbit/s)`)
    const bootstrap = await startBootstrap(t, { host: lab.host('boot').ip, netns: lab.ns('boot') })
    const swarm = await rawSwarm(lab, bootstrap, 'a', 'b', sizeMiB)
    log(`${profile.name}: raw Hyperswarm ${sizeMiB} MiB in ${swarm.seconds.toFixed(1)} s (${(swarm.bytes * 8 / 1e6 / swarm.seconds).toFixed(1)} Mbit/s)`)
    const [a, b, c] = await makeCluster(t, bootstrap, ['full', 'full', 'storage'], { heartbeatInterval: 5000, ...extra })
    const ma = await mountNode(t, a, lab.ns('a'))
    const sb = await serveNode(t, b, lab.ns('b'))
    const sc = await serveNode(t, c, lab.ns('c'))
    await until('the writer sees both peers online', async () => (await statusJson(a)).peers.filter((p: any) => p.online).length === 2, 180_000, 500)
    const local = await tempDir(t)
    await writeFile(join(local, 'big'), randomBytes(sizeMiB * MiB))
    const before = (await lab.stats()).get('a')!.sent
    const started = performance.now()
    await sh(`cp ${join(local, 'big')} ${ma.path('big')}`, { timeoutMs: 600_000 })
    const ids = [...storedChunkIds(a.dataDir)]
    let two = 0
    let three = 0
    const deadline = Date.now() + Math.max(300_000, sizeMiB * 8 / Math.max(profile.mbit, 1) * 1000 * 20)
    while (three === 0) {
      if (Date.now() > deadline) throw new Error(`${sizeMiB} MiB did not reach 3 machines in time`)
      const done = [b, c].filter(n => { const have = storedChunkIds(n.dataDir); return ids.every(id => have.has(id)) }).length
      const now = (performance.now() - started) / 1000
      if (done >= 1 && two === 0) two = now
      if (done === 2) three = now
      else await sleep(200)
    }
    const after = (await lab.stats()).get('a')!
    const sent = after.sent - before
    const silentDrops = [ma.stderr, sb.stderr, sc.stderr, ma.stdout, sb.stdout, sc.stdout].join('\n').split('\n').filter(l => /silent for/.test(l)).length
    // DISKTRO_LAB_LOGS=dir: the three daemons' output, to see what happened.
    const logs = process.env.DISKTRO_LAB_LOGS
    if (logs) await writeFile(join(logs, `${profile.mbit}-stats.json`), JSON.stringify({ before, after, status: await statusJson(a) }, null, 1))
    if (logs) for (const [n, d] of [['a', ma], ['b', sb], ['c', sc]] as const) await writeFile(join(logs, `${profile.mbit}-${n}.log`), d.stdout + d.stderr)
    const r = { profile, sizeMiB, rawSeconds: raw.seconds, swarmSeconds: swarm.seconds, twoSeconds: two, threeSeconds: three, uplinkPerByte: sent / (sizeMiB * MiB), silentDrops }
    log(`${profile.name}: ${sizeMiB} MiB on 2 machines after ${two.toFixed(1)} s, on 3 after ${three.toFixed(1)} s; uplink ${r.uplinkPerByte.toFixed(2)} B/B; ${silentDrops} silent drops`)
    return r
  } finally {
    await t.run()
  }
}

export function labTable (rs: LabResult[]): string {
  let md = '| link | MiB | raw TCP, one copy (s) | raw Hyperswarm, one copy (s) | on 2 machines (s) | vs raw TCP | on 3 machines (s) | vs 2x raw TCP | writer uplink B per B written | silent drops |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
  for (const r of rs) {
    md += `| ${r.profile.name} | ${r.sizeMiB} | ${r.rawSeconds.toFixed(1)} | ${r.swarmSeconds.toFixed(1)} | ${r.twoSeconds.toFixed(1)} | ${(r.rawSeconds / r.twoSeconds).toFixed(2)} | ${r.threeSeconds.toFixed(1)} | ${(2 * r.rawSeconds / r.threeSeconds).toFixed(2)} | ${r.uplinkPerByte.toFixed(2)} | ${r.silentDrops} |\n`
  }
  return md
}

export async function labMain (argv: string[]): Promise<number> {
  const missing = labAvailable()
  if (missing !== null) throw new Error(missing)
  const arg = (name: string, dflt: string): string => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : dflt }
  const sizes = arg('--lab-size', '64').split(',').map(Number)
  const profiles = arg('--lab-profiles', 'lan,broadband,poor').split(',').map(p => {
    const prof = (PROFILES as Record<string, LinkProfile>)[p]
    if (prof === undefined) throw new Error(`unknown profile ${p} (lan, broadband, poor)`)
    return prof
  })
  const log = (s: string): void => { process.stderr.write(`[lab ${new Date().toISOString().slice(11, 19)}] ${s}\n`) }
  const rs: LabResult[] = []
  const heartbeat = arg('--lab-heartbeat', '5000')
  for (const p of profiles) for (const s of sizes) rs.push(await labRun(p, s, log, { heartbeatInterval: Number(heartbeat) }))
  process.stdout.write(labTable(rs))
  return 0
}
