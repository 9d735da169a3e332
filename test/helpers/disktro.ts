// Test harness: real disktro processes, real mounts, driven from child
// processes (a test must never make a sync call into a mount it serves).
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, mkdir, rm, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { isMounted, unmountPath } from '../../src/fuse/unmount.js'
import { removeRedoLog } from '../../src/fuse/close-behind.js'
import { reapOnExit } from './reaper.js'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
export const BIN = join(ROOT, 'bin', 'disktro')
export const PASSWORD = 'correct horse battery staple'

interface Teardown { teardown (fn: () => unknown): void, passing?: () => boolean }

export async function tempDir (t: Teardown, prefix = 'disktro-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

export interface RunResult { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

// Runs a command to completion, asynchronously. `input` is written to stdin.
export function run (cmd: string, args: string[], opts: { cwd?: string, env?: NodeJS.ProcessEnv, input?: string | Buffer, timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []; const err: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => err.push(d))
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : null
    child.on('error', reject)
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer)
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() })
    })
    child.stdin.on('error', () => {}) // a child that exits at once closes its stdin: EPIPE is expected
    child.stdin.end(opts.input ?? '')
  })
}

// `sh -c script`, failing the promise when it exits non-zero.
export async function sh (script: string, opts: { cwd?: string, timeoutMs?: number } = {}): Promise<string> {
  const r = await run('sh', ['-c', script], { cwd: opts.cwd, timeoutMs: opts.timeoutMs ?? 120_000 })
  if (r.code !== 0) throw new Error(`sh failed (${r.code ?? r.signal}): ${script}\n${r.stderr}${r.stdout}`)
  return r.stdout
}

// Daemons started by tests never reach for the public DHT: without a
// bootstrap in their config they run alone (DISKTRO_BOOTSTRAP=none).
export function disktroEnv (password: string | null = PASSWORD): NodeJS.ProcessEnv {
  const env = { ...process.env }
  delete env.DISKTRO_HOME
  // tap's NODE_OPTIONS imports its process tracker into every node process
  // started under it: +0.58 s of CPU per daemon or CLI run, for coverage
  // this suite does not collect.
  delete env.NODE_OPTIONS
  env.DISKTRO_BOOTSTRAP = 'none'
  // A mount starts its read workers before the first read (node.ts attach):
  // about 0.34 s of CPU per daemon, for reads most of these daemons never
  // do; the suite starts some 150 of them on 2 cores. The workers then start
  // at the first read, through the same spawn. test/fuse/read-ahead.test.ts
  // checks the mount's prestart.
  env.DISKTRO_PRESTART_WORKERS ??= '0'
  if (password === null) delete env.DISKTRO_PASSWORD
  else env.DISKTRO_PASSWORD = password
  return env
}

// Runs the disktro CLI to completion.
export function disktro (args: string[], opts: { password?: string | null, timeoutMs?: number, input?: string } = {}): Promise<RunResult> {
  return run(process.execPath, [BIN, ...args], { env: disktroEnv(opts.password === undefined ? PASSWORD : opts.password), timeoutMs: opts.timeoutMs ?? 60_000, input: opts.input })
}

export interface MountOptions {
  dataDir?: string
  mountpoint?: string
  password?: string
  config?: string
  args?: string[]
  env?: NodeJS.ProcessEnv // added to the daemon's environment
  umask?: number // the daemon's umask (inherited at spawn), else this process's
  netns?: string // a lab namespace to run in (test/helpers/net-lab.ts); the mount stays visible here
}

// A `disktro mount` daemon. Teardown always unmounts and kills it, also when
// the test failed half-way.
export class Mount {
  stdout = ''
  stderr = ''
  private exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>

  private constructor (readonly child: ChildProcess, readonly dir: string, readonly dataDir: string) {
    child.stdout?.on('data', (d: Buffer) => { this.stdout += d.toString() })
    child.stderr?.on('data', (d: Buffer) => { this.stderr += d.toString() })
    this.exited = new Promise(resolve => child.on('exit', (code, signal) => resolve({ code, signal })))
  }

  get running (): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  static async start (t: Teardown, o: MountOptions = {}): Promise<Mount> {
    const base = (o.dataDir && o.mountpoint) ? '' : await tempDir(t)
    const dataDir = o.dataDir ?? join(base, 'data')
    const dir = o.mountpoint ?? join(base, 'mnt')
    await mkdir(dir, { recursive: true })
    const args = [BIN, 'mount', dir, '--data-dir', dataDir, ...(o.config ? ['--config', o.config] : []), ...(o.args ?? [])]
    const umask = o.umask === undefined ? null : process.umask(o.umask)
    let child: ChildProcess
    try {
      const [cmd, ...argv] = o.netns === undefined ? [process.execPath, ...args] : ['nsenter', `--net=/run/netns/${o.netns}`, process.execPath, ...args]
      child = spawn(cmd, argv, { env: { ...disktroEnv(o.password ?? PASSWORD), ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    } finally {
      if (umask !== null) process.umask(umask)
    }
    reapOnExit(child, dir)
    const m = new Mount(child, dir, dataDir)
    t.teardown(() => {
      if (t.passing?.() === false && m.stderr !== '') console.error(`--- stderr of disktro mount ${dir} (last 4,000 characters):\n${m.stderr.slice(-4000)}`)
      // A daemon killed here or by the test leaves its redo log in a directory of its own in /dev/shm (src/fuse/close-behind.ts).
      return m.cleanup().finally(() => { try { removeRedoLog(dataDir) } catch {} })
    })
    await m.waitReady()
    return m
  }

  private async waitReady (): Promise<void> {
    const deadline = Date.now() + 30_000
    while (Date.now() < deadline) {
      if (/mounted volume/.test(this.stdout) && await isMounted(this.dir)) return
      if (!this.running) throw new Error(`disktro mount exited before mounting: ${this.stderr.trim()}`)
      await sleep(50)
    }
    throw new Error(`disktro mount did not mount within 30 s: ${this.stderr.trim()}`)
  }

  path (...parts: string[]): string {
    return join(this.dir, ...parts)
  }

  // SIGTERM: the clean way out. Resolves with the exit status.
  async stop (): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
    if (this.running) this.child.kill('SIGTERM')
    return await withTimeout(this.exited, 20_000, 'disktro did not exit after SIGTERM')
  }

  // The exit status of a daemon that stops by itself, or a rejection after `ms`.
  async exit (ms = 20_000): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
    return await withTimeout(this.exited, ms, `disktro did not exit within ${ms} ms`)
  }

  // kill -9, then clear the stale mount it leaves.
  async kill9 (): Promise<void> {
    if (this.running) this.child.kill('SIGKILL')
    await this.exited
    if (await isMounted(this.dir)) await unmountPath(this.dir, { lazy: true })
  }

  async cleanup (): Promise<void> {
    if (this.running) {
      this.child.kill('SIGTERM')
      await withTimeout(this.exited, 10_000, '').catch(() => { this.child.kill('SIGKILL') })
    }
    await this.exited
    if (await isMounted(this.dir)) await unmountPath(this.dir, { lazy: true }).catch(() => {})
  }
}

export function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

async function withTimeout<T> (p: Promise<T>, ms: number, msg: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<T>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(msg)), ms) })])
  } finally {
    clearTimeout(timer)
  }
}

export async function readText (path: string): Promise<string> {
  return await readFile(path, 'utf8')
}

// Under CI the FUSE tests must fail, not skip, when FUSE is unavailable.
export async function requireFuse (t: { fail (msg: string): unknown }): Promise<boolean> {
  const { access } = await import('node:fs/promises')
  try {
    await access('/dev/fuse')
    return true
  } catch {
    if (process.env.CI) t.fail('/dev/fuse is not available: FUSE tests cannot run')
    return false
  }
}
