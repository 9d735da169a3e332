// The filesystems under test. Each target owns a directory under the bench's
// work dir; `root` is where workloads read and write (a mountpoint for the
// FUSE targets), `backing` is where the stored bytes end up.
import { spawn, type ChildProcess } from 'node:child_process'
import { daemonNodeFlags } from './node-flags.js'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { run, sh, q, sleep } from './proc.js'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const DISKTRO_BIN = join(ROOT, 'bin', 'disktro')
const PASSWORD = 'disktro bench password'

export interface Target {
  readonly name: string
  readonly root: string
  readonly backing: string
  /** Creates the (empty) volume and mounts it. */
  create (): Promise<void>
  mount (): Promise<void>
  unmount (): Promise<void>
  /** Unmounts if needed and removes everything the target stored. */
  destroy (): Promise<void>
}

// ---- mount table ----------------------------------------------------------

async function mountedAt (path: string): Promise<string | null> {
  const text = await readFile('/proc/self/mounts', 'utf8')
  let fstype: string | null = null
  for (const line of text.split('\n')) {
    const [, mp, type] = line.split(' ')
    if (mp !== undefined && mp.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))) === path) fstype = type ?? ''
  }
  return fstype
}

export async function isMounted (path: string): Promise<boolean> {
  return (await mountedAt(path)) !== null
}

/** Unmounts a FUSE mount; lazily as a last resort. Never touches a non-FUSE mount. */
export async function fuseUnmount (path: string): Promise<void> {
  for (const lazy of [false, true]) {
    const type = await mountedAt(path)
    if (type === null) return
    if (type !== 'fuse' && type !== 'fuseblk' && !type.startsWith('fuse.')) throw new Error(`refusing to unmount ${path}: not FUSE (${type})`)
    for (const [cmd, args] of [['fusermount3', [lazy ? '-uz' : '-u']], ['fusermount', [lazy ? '-uz' : '-u']], ['umount', lazy ? ['-l'] : []]] as const) {
      const r = await run(cmd, [...args, path], { timeoutMs: 30_000 }).catch(() => null)
      if (r?.code === 0 && !(await isMounted(path))) return
    }
    if (!lazy) await sleep(500)
  }
  if (await isMounted(path)) throw new Error(`cannot unmount ${path}`)
}

async function waitMounted (path: string, ms: number, alive: () => boolean, why: () => string): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await isMounted(path)) return
    if (!alive()) throw new Error(`mount of ${path} failed: ${why()}`)
    await sleep(50)
  }
  throw new Error(`${path} was not mounted within ${ms / 1000} s: ${why()}`)
}

// ---- plain directory --------------------------------------------------------

export class PlainTarget implements Target {
  readonly root: string
  readonly backing: string
  constructor (readonly name: string, private readonly dir: string) {
    this.root = join(dir, 'files')
    this.backing = this.root
  }

  async create (): Promise<void> { await mkdir(this.root, { recursive: true }) }
  async mount (): Promise<void> {}
  async unmount (): Promise<void> {}
  async destroy (): Promise<void> { await rm(this.dir, { recursive: true, force: true }) }
}

// ---- disktro ---------------------------------------------------------------

export interface DisktroOptions {
  chunkSize?: number
  /** "host:port" of a loopback DHT bootstrap node, so the daemon's swarm never leaves this machine. */
  bootstrap?: string | null
  /** Directory for `node --cpu-prof` profiles of the daemon, or null. */
  profileDir?: string | null
}

export class DisktroTarget implements Target {
  readonly root: string
  readonly backing: string
  private child: ChildProcess | null = null
  private exited: Promise<void> = Promise.resolve()
  stdout = ''
  stderr = ''

  constructor (readonly name: string, private readonly dir: string, private readonly o: DisktroOptions = {}) {
    this.root = join(dir, 'mnt')
    this.backing = join(dir, 'data')
  }

  async create (): Promise<void> {
    await mkdir(this.root, { recursive: true })
    const config = [
      ...(this.o.chunkSize ? [`chunkSize: ${this.o.chunkSize}`] : []),
      ...(this.o.bootstrap ? [`bootstrap: ["${this.o.bootstrap}"]`] : [])
    ]
    if (config.length) await writeFile(join(this.dir, 'config.yaml'), config.join('\n') + '\n')
    await this.mount() // the first mount creates the volume
  }

  private get running (): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null
  }

  async mount (): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already mounted`)
    const nodeArgs = this.o.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${this.o.profileDir}`] : []
    const args = [...daemonNodeFlags(DISKTRO_BIN), ...nodeArgs, DISKTRO_BIN, 'mount', this.root, '--data-dir', this.backing,
      ...(this.o.chunkSize || this.o.bootstrap ? ['--config', join(this.dir, 'config.yaml')] : [])]
    const env: NodeJS.ProcessEnv = { ...process.env, DISKTRO_PASSWORD: PASSWORD }
    delete env.DISKTRO_HOME
    this.stdout = ''
    this.stderr = ''
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    child.stdout?.on('data', (d: Buffer) => { this.stdout += d.toString() })
    child.stderr?.on('data', (d: Buffer) => { this.stderr += d.toString() })
    this.exited = new Promise(resolve => child.on('exit', () => resolve()))
    const deadline = Date.now() + 60_000
    while (!/mounted volume/.test(this.stdout)) {
      if (!this.running) throw new Error(`disktro mount exited before mounting: ${this.stderr.trim()}`)
      if (Date.now() > deadline) throw new Error(`disktro did not mount within 60 s: ${this.stderr.trim()}`)
      await sleep(50)
    }
    await waitMounted(this.root, 10_000, () => this.running, () => this.stderr.trim())
  }

  async unmount (): Promise<void> {
    if (this.running) {
      this.child?.kill('SIGTERM')
      const ok = await Promise.race([this.exited.then(() => true), sleep(180_000).then(() => false)])
      if (!ok) {
        this.child?.kill('SIGKILL')
        await this.exited
      }
    }
    await fuseUnmount(this.root)
    this.child = null
  }

  async destroy (): Promise<void> {
    await this.unmount()
    await rm(this.dir, { recursive: true, force: true })
  }

  /** Synchronous last-resort kill, for process exit. */
  killNow (): void {
    if (this.running) this.child?.kill('SIGKILL')
  }
}

// ---- a DHT bootstrap node on loopback ---------------------------------------

/**
 * `disktro bootstrap` on 127.0.0.1: disktro daemons that know of peers find
 * them through a DHT, whose default bootstrap nodes are public. The bench
 * points every daemon here instead, so nothing leaves the machine. Resolves
 * null when this disktro has no `bootstrap` command (a build without a swarm).
 */
export class LocalBootstrap {
  private child: ChildProcess | null = null
  private exited: Promise<void> = Promise.resolve()

  async start (): Promise<string | null> {
    const child = spawn(process.execPath, [DISKTRO_BIN, 'bootstrap', '--host', '127.0.0.1', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    let out = ''
    let err = ''
    child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr?.on('data', (d: Buffer) => { err += d.toString() })
    this.exited = new Promise(resolve => child.on('exit', () => resolve()))
    const deadline = Date.now() + 30_000
    for (;;) {
      const m = /listening on (127\.0\.0\.1:\d+)/.exec(out)
      if (m) return m[1]
      if (child.exitCode !== null || child.signalCode !== null) {
        if (/Unknown (argument|command)s?:.*bootstrap/i.test(err + out)) return null
        throw new Error(`disktro bootstrap exited: ${err.trim()}`)
      }
      if (Date.now() > deadline) throw new Error(`disktro bootstrap did not start within 30 s: ${err.trim()}`)
      await sleep(50)
    }
  }

  async stop (): Promise<void> {
    const c = this.child
    if (!c || c.exitCode !== null || c.signalCode !== null) return
    c.kill('SIGTERM')
    if (!await Promise.race([this.exited.then(() => true), sleep(10_000).then(() => false)])) c.kill('SIGKILL')
  }

  killNow (): void {
    const c = this.child
    if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  }
}

// ---- gocryptfs / bindfs (both daemonize: the parent exits once mounted) ------

abstract class DaemonTarget implements Target {
  readonly root: string
  abstract readonly backing: string
  constructor (readonly name: string, protected readonly dir: string) {
    this.root = join(dir, 'mnt')
  }

  abstract create (): Promise<void>
  protected abstract mountCommand (): string

  async mount (): Promise<void> {
    // The daemon inherits the shell's stdio: send it to a file, or our pipes
    // would stay open (and `sh` never "close") for as long as it runs.
    await sh(`${this.mountCommand()} </dev/null >>${q(join(this.dir, 'daemon.log'))} 2>&1 || { cat ${q(join(this.dir, 'daemon.log'))} >&2; exit 1; }`, 60_000)
    await waitMounted(this.root, 10_000, () => true, () => '')
  }

  async unmount (): Promise<void> {
    await fuseUnmount(this.root)
  }

  async destroy (): Promise<void> {
    await this.unmount()
    await rm(this.dir, { recursive: true, force: true })
  }
}

export class GocryptfsTarget extends DaemonTarget {
  readonly backing = join(this.dir, 'cipher')
  async create (): Promise<void> {
    await mkdir(this.root, { recursive: true })
    await mkdir(this.backing, { recursive: true })
    await sh(`gocryptfs -init -q -extpass 'echo pw' ${q(this.backing)}`, 60_000)
    await this.mount()
  }

  protected mountCommand (): string {
    return `gocryptfs -q -nosyslog -extpass 'echo pw' ${q(this.backing)} ${q(this.root)}`
  }
}

export class BindfsTarget extends DaemonTarget {
  readonly backing = join(this.dir, 'src')
  async create (): Promise<void> {
    await mkdir(this.root, { recursive: true })
    await mkdir(this.backing, { recursive: true })
    await this.mount()
  }

  protected mountCommand (): string {
    return `bindfs ${q(this.backing)} ${q(this.root)}`
  }
}
