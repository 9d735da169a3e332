// Several real disktro processes on loopback with a local DHT bootstrap.
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { open as openLmdb } from 'lmdb'
import { BIN, disktro, disktroEnv, tempDir, sleep, Mount, PASSWORD } from './disktro.js'
import { reapOnExit } from './reaper.js'
import { inNetns } from './net-lab.js'

interface Teardown { teardown (fn: () => unknown): void, passing?: () => boolean }

export class Daemon {
  stdout = ''
  stderr = ''
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  constructor (readonly child: ChildProcess) {
    child.stdout?.on('data', (d: Buffer) => { this.stdout += d.toString() })
    child.stderr?.on('data', (d: Buffer) => { this.stderr += d.toString() })
    this.exited = new Promise(resolve => child.on('exit', (code, signal) => resolve({ code, signal })))
  }

  get running (): boolean { return this.child.exitCode === null && this.child.signalCode === null }

  async waitFor (re: RegExp, ms = 30_000): Promise<void> {
    const deadline = Date.now() + ms
    while (!re.test(this.stdout)) {
      if (!this.running) throw new Error(`process exited: ${this.stderr.trim()}`)
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}: ${this.stderr.trim()}`)
      await sleep(50)
    }
  }

  async stop (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.running) this.child.kill(signal)
    await this.exited
  }
}

// netns: run inside a network namespace of the lab (test/helpers/net-lab.ts).
export function spawnDisktro (t: Teardown, args: string[], password: string = PASSWORD, netns?: string): Daemon {
  const [cmd, ...argv] = inNetns(netns, [process.execPath, BIN, ...args])
  const child = spawn(cmd, argv, { env: disktroEnv(password), stdio: ['ignore', 'pipe', 'pipe'] })
  reapOnExit(child)
  const d = new Daemon(child)
  t.teardown(async () => {
    // A failed test shows what its daemons said: a cluster failure is
    // rarely explained by the assertion alone.
    if (t.passing?.() === false && d.stderr !== '') console.error(`--- stderr of disktro ${args.join(' ')} (last 4,000 characters):\n${d.stderr.slice(-4000)}`)
    if (d.running) child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    await d.exited
    clearTimeout(timer)
  })
  return d
}

// A DHT bootstrap node on 127.0.0.1 (or a lab host's address, inside its
// namespace); resolves with its "host:port".
export async function startBootstrap (t: Teardown, at: { host: string, netns: string } = { host: '127.0.0.1', netns: '' }): Promise<string> {
  const d = spawnDisktro(t, ['bootstrap', '--host', at.host, '--port', '0'], PASSWORD, at.netns === '' ? undefined : at.netns)
  await d.waitFor(/listening on (\S+)/)
  return /listening on (\S+)/.exec(d.stdout)![1]
}

export interface ClusterNode {
  name: string
  dataDir: string
  config: string
}

// Writes a config for a test node: fast heartbeats, a local bootstrap.
export async function nodeConfig (dir: string, bootstrap: string, extra: Record<string, unknown> = {}): Promise<string> {
  const path = join(dir, 'config.json')
  await writeFile(path, JSON.stringify({ heartbeatInterval: 500, replicaCount: 3, bootstrap: [bootstrap], ...extra }))
  return path
}

// Creates the first member, then joins others from its invites.
export async function makeCluster (t: Teardown, bootstrap: string, roles: Array<'full' | 'storage'>, extra: Record<string, unknown> = {}): Promise<ClusterNode[]> {
  const base = await tempDir(t, 'disktro-cluster-')
  const nodes: ClusterNode[] = []
  for (let i = 0; i < roles.length; i++) {
    const dir = join(base, `n${i}`)
    await mkdir(dir, { recursive: true })
    const node = { name: `n${i}`, dataDir: join(dir, 'data'), config: await nodeConfig(dir, bootstrap, extra) }
    if (i === 0) {
      const r = await disktro(['init', '--data-dir', node.dataDir, '--config', node.config])
      if (r.code !== 0) throw new Error(r.stderr)
    } else {
      const inv = await disktro(['invite', '--data-dir', nodes[0].dataDir, ...(roles[i] === 'storage' ? ['--storage-only'] : [])])
      if (inv.code !== 0) throw new Error(inv.stderr)
      const r = await disktro(['join', inv.stdout.trim(), '--data-dir', node.dataDir])
      if (r.code !== 0) throw new Error(r.stderr)
    }
    nodes.push(node)
  }
  return nodes
}

export async function mountNode (t: Teardown, n: ClusterNode, netns?: string): Promise<Mount> {
  return await Mount.start(t, { dataDir: n.dataDir, mountpoint: join(n.dataDir, '..', 'mnt'), config: n.config, netns })
}

export async function serveNode (t: Teardown, n: ClusterNode, netns?: string): Promise<Daemon> {
  const d = spawnDisktro(t, ['serve', '--data-dir', n.dataDir, '--config', n.config], PASSWORD, netns)
  await d.waitFor(/serving volume/)
  return d
}

// The chunk ids a node's own store holds, read from its LMDB files (a
// second reader beside the running daemon).
export function storedChunkIds (dataDir: string): Set<string> {
  const env = openLmdb({ path: join(dataDir, 'store'), maxDbs: 12, readOnly: true })
  try {
    const db = env.openDB({ name: 'chunks', encoding: 'binary', keyEncoding: 'binary', compression: false })
    const out = new Set<string>()
    for (const key of db.getKeys({})) out.add((key as Buffer).toString('hex'))
    return out
  } finally {
    void env.close()
  }
}

export async function statusJson (n: ClusterNode): Promise<any> {
  const r = await disktro(['status', '--json', '--data-dir', n.dataDir, '--config', n.config])
  try { return JSON.parse(r.stdout) } catch { throw new Error(`status: ${r.stderr}`) }
}

export async function until<T> (what: string, fn: () => Promise<T | false | null | undefined> | T | false | null | undefined, ms = 60_000, every = 250): Promise<T> {
  const deadline = Date.now() + ms
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (e) { last = e }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`)
    await sleep(every)
  }
}
