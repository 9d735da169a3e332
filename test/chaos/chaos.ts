// A seeded, reproducible chaos run: five real processes on loopback (a
// writer with a mount, one more full member and three storage-only members),
// a writer workload, and peers (never the writer) killed with SIGKILL and
// restarted at random. Afterwards every chunk must return to target and a
// freshly joined member must read every file back byte for byte. The same
// seed gives the same workload and the same kill schedule.
import { createHash } from 'node:crypto'
import { writeFile, readFile, unlink, rename, mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { disktro } from '../helpers/disktro.js'
import { prng } from '../helpers/prng.js'
import { startBootstrap, makeCluster, mountNode, serveNode, statusJson, until, nodeConfig, type Daemon, type ClusterNode } from '../helpers/cluster.js'

interface Teardown { teardown (fn: () => unknown): void }

export interface ChaosOptions {
  seed: number
  durationMs: number
  log: (line: string) => void
}

export interface ChaosResult {
  files: number
  bytesWritten: number
  ops: number
  kills: number
  restarts: number
  atTargetMs: number // after the chaos ended and every peer was back
  verifiedFiles: number
}

function content (seed: number, size: number): Buffer {
  // Deterministic, incompressible bytes: SHA-256 in counter mode.
  const out = Buffer.allocUnsafe(size)
  for (let o = 0, i = 0; o < size; o += 32, i++) createHash('sha256').update(`${seed}:${i}`).digest().copy(out, o)
  return out
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

export async function runChaos (t: Teardown, o: ChaosOptions): Promise<ChaosResult> {
  const rnd = prng(o.seed)
  const bootstrap = await startBootstrap(t)
  const nodes = await makeCluster(t, bootstrap, ['full', 'full', 'storage', 'storage', 'storage'], { repairAfter: '3s', gcGrace: '5s' })
  const [w, ...peers] = nodes
  const mw = await mountNode(t, w)
  const daemons: Array<Daemon | null> = []
  for (const p of peers) daemons.push(await serveNode(t, p))
  await until('the writer sees its four peers', async () => (await statusJson(w)).peers.filter((p: any) => p.online).length === 4, 90_000)

  const expected = new Map<string, string>() // path -> sha256
  const result: ChaosResult = { files: 0, bytesWritten: 0, ops: 0, kills: 0, restarts: 0, atTargetMs: 0, verifiedFiles: 0 }
  await mkdir(mw.path('chaos'))
  let stop = false
  let counter = 0

  const workload = (async () => {
    while (!stop) {
      const r = rnd()
      const paths = [...expected.keys()]
      if (r < 0.55 || paths.length < 3) {
        const size = Math.floor(rnd() * 3 * 1024 * 1024)
        const path = `chaos/f${counter++}.bin`
        const body = content(o.seed * 1000 + counter, size)
        await writeFile(mw.path(path), body)
        expected.set(path, sha(body))
        result.bytesWritten += size
      } else if (r < 0.75) {
        const path = paths[Math.floor(rnd() * paths.length)]
        const body = content(o.seed * 1000 + counter++, Math.floor(rnd() * 2 * 1024 * 1024))
        await writeFile(mw.path(path), body)
        expected.set(path, sha(body))
        result.bytesWritten += body.length
      } else if (r < 0.88) {
        const path = paths[Math.floor(rnd() * paths.length)]
        await unlink(mw.path(path))
        expected.delete(path)
      } else {
        const path = paths[Math.floor(rnd() * paths.length)]
        const to = `chaos/r${counter++}.bin`
        await rename(mw.path(path), mw.path(to))
        expected.set(to, expected.get(path)!)
        expected.delete(path)
      }
      result.ops++
      await sleep(50 + Math.floor(rnd() * 200))
    }
  })()

  const end = Date.now() + o.durationMs
  while (Date.now() < end) {
    await sleep(1500 + Math.floor(rnd() * 2500))
    const i = Math.floor(rnd() * peers.length)
    const down = daemons.filter(d => d === null).length
    if (daemons[i] !== null && down < 2) {
      const d = daemons[i]!
      d.child.kill('SIGKILL')
      await d.exited
      daemons[i] = null
      result.kills++
      o.log(`chaos: killed ${peers[i].name}`)
    } else if (daemons[i] === null) {
      daemons[i] = await serveNode(t, peers[i])
      result.restarts++
      o.log(`chaos: restarted ${peers[i].name}`)
    }
  }
  stop = true
  await workload
  for (let i = 0; i < peers.length; i++) {
    if (daemons[i] === null) { daemons[i] = await serveNode(t, peers[i]); result.restarts++ }
  }
  const settled = Date.now()
  await until('every chunk at target after the chaos', async () => {
    const s = await statusJson(w)
    return s.replication.chunks > 0 && s.replication.atTarget === s.replication.chunks
  }, 120_000)
  result.atTargetMs = Date.now() - settled
  result.files = expected.size
  o.log(`chaos: ${result.ops} ops, ${result.kills} kills, ${result.restarts} restarts; every chunk at target ${result.atTargetMs} ms after the last restart`)

  // A freshly joined member reads everything.
  const inv = await disktro(['invite', '--data-dir', w.dataDir])
  const base = join(w.dataDir, '..', '..', 'fresh')
  await mkdir(base)
  const fresh: ClusterNode = { name: 'fresh', dataDir: join(base, 'data'), config: await nodeConfig(base, bootstrap, { repairAfter: '3s' }) }
  const j = await disktro(['join', inv.stdout.trim(), '--data-dir', fresh.dataDir])
  if (j.code !== 0) throw new Error(j.stderr)
  const mf = await mountNode(t, fresh)
  const want = [...expected.keys()].map(p => p.slice('chaos/'.length)).sort().join(',')
  await until('the fresh member shows the whole tree', async () => {
    try { return (await readdir(mf.path('chaos'))).sort().join(',') === want } catch { return false }
  }, 90_000)
  for (const [path, hash] of expected) {
    const got = sha(await readFile(mf.path(path)))
    if (got !== hash) throw new Error(`${path} reads back wrong on the fresh member`)
    result.verifiedFiles++
  }
  return result
}
