// The network lab: disktro members on links with delay, jitter, loss and a
// rate, in Linux network namespaces of their own (root only). Used by
// test/net/lab.test.ts and `npm run bench -- --lab`.
//
// Each lab host is a namespace with one TUN device; link-emulator.c (built
// here with the system's cc, cached in the temp directory) forwards packets
// between the TUN devices with each host's access line (uplink and
// downlink rate and queue, delay, jitter, loss). This kernel has no netem,
// hence user space. A host may sit behind a NAT: a router namespace holds
// its lab address and masquerades a private network the member lives on.
// Host 0 is `boot`, on an unshaped line: the DHT bootstrap lives there.
//
// Everything stays in namespaces made here, under addresses of the lab's
// own (10.77.0.0/16, private 192.168.N.0/24 behind a NAT): nothing reaches a
// real network. Names carry a per-run id, so parallel test files do not
// collide, and teardown removes them also when the test failed.
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { rename } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT, run, type RunResult } from './disktro.js'
import { reapOnExit } from './reaper.js'

interface Teardown { teardown (fn: () => unknown): void }

// One direction of a path, end to end: a path's delay, jitter and loss are
// split between the two access lines it crosses.
export interface LinkProfile {
  name: string
  mbit: number // each host's uplink and downlink; 0: unlimited
  delayMs: number // one way, host to host
  jitterMs: number // one way, host to host, added at random (never reorders)
  lossPct: number // one way, host to host
  queueMs?: number // each line's queue, in time at its rate (default 200)
}

export const PROFILES: Record<'lan' | 'broadband' | 'poor', LinkProfile> = {
  lan: { name: 'LAN 1 Gbit/s, 0.2 ms RTT', mbit: 1000, delayMs: 0.1, jitterMs: 0, lossPct: 0 },
  broadband: { name: 'broadband 50 Mbit/s, 40 ms RTT, 0.5% loss', mbit: 50, delayMs: 20, jitterMs: 0, lossPct: 0.5 },
  poor: { name: 'poor 10 Mbit/s, 150 ms RTT, 2% loss', mbit: 10, delayMs: 75, jitterMs: 0, lossPct: 2 }
}

export interface HostSpec { name: string, profile?: LinkProfile, nat?: boolean }

export interface LabHost {
  name: string
  index: number // in the emulator's tables
  ns: string // the namespace its programs run in
  ip: string // the address other hosts reach it at (its router's, behind a NAT)
  router: string | null // the router namespace, behind a NAT
}

export interface LinkStats { sent: number, recv: number, lost: number, dropped: number }

export function labAvailable (): string | null {
  if (process.getuid?.() !== 0) return 'the network lab needs root (ip netns)'
  if (!existsSync('/dev/net/tun')) return 'the network lab needs /dev/net/tun'
  return null
}

const NETNS_DIR = '/run/netns'

// argv that runs a command inside a namespace's network, keeping this
// process's mount namespace: `ip netns exec` unshares the mounts, and a FUSE
// mount made under it would be invisible to the test.
export function inNetns (ns: string | undefined, argv: string[]): string[] {
  return ns === undefined ? argv : ['nsenter', `--net=${NETNS_DIR}/${ns}`, ...argv]
}

async function ip (...args: string[]): Promise<void> {
  const r = await run('ip', args, { timeoutMs: 10_000 })
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`)
}

async function nsSh (ns: string, script: string): Promise<void> {
  const r = await run('nsenter', [`--net=${NETNS_DIR}/${ns}`, 'sh', '-c', script], { timeoutMs: 10_000 })
  if (r.code !== 0) throw new Error(`in ${ns}: ${script}: ${r.stderr.trim()}`)
}

async function emulatorBinary (): Promise<string> {
  const src = join(ROOT, 'test', 'helpers', 'link-emulator.c')
  const hash = createHash('sha256').update(readFileSync(src)).digest('hex').slice(0, 12)
  const bin = join(tmpdir(), `disktro-link-emulator-${hash}`)
  if (existsSync(bin)) return bin
  const tmp = `${bin}.${process.pid}`
  const r = await run('cc', ['-O2', '-o', tmp, src], { timeoutMs: 60_000 })
  if (r.code !== 0) throw new Error(`building the link emulator: ${r.stderr}`)
  await rename(tmp, bin) // atomic: a parallel test file sees all of it or nothing
  return bin
}

function lineArgs (p: LinkProfile): string[] {
  const bps = Math.round(p.mbit * 1e6)
  const queue = p.mbit === 0 ? 0 : Math.max(64 * 1024, Math.round(bps / 8 * (p.queueMs ?? 200) / 1000))
  return [String(bps), String(bps), String(Math.round(p.delayMs * 1000 / 2)), String(Math.round(p.jitterMs * 1000 / 2)), String(Math.round(p.lossPct * 1e4 / 2)), String(queue)]
}

const UNSHAPED: LinkProfile = { name: 'unshaped', mbit: 0, delayMs: 0, jitterMs: 0, lossPct: 0 }

export class NetLab {
  readonly hosts = new Map<string, LabHost>()
  private readonly namespaces: string[] = []
  private emulator: ChildProcess | null = null
  private out = ''
  private closed = false

  private constructor (readonly id: string) {}

  // Hosts `boot` (index 0) and the given ones, each on its profile (else
  // `profile`). Teardown removes every namespace and stops the emulator.
  static async start (t: Teardown, specs: HostSpec[], profile: LinkProfile = PROFILES.broadband): Promise<NetLab> {
    const lab = new NetLab(process.pid.toString(36) + randomBytes(2).toString('hex'))
    t.teardown(() => lab.close())
    await lab.build([{ name: 'boot', profile: UNSHAPED }, ...specs], profile)
    return lab
  }

  private async build (specs: HostSpec[], profile: LinkProfile): Promise<void> {
    const bin = await emulatorBinary()
    const tun = (i: number): string => `dl${this.id}${i}` // <= 15 characters
    const args: string[] = []
    specs.forEach((s, i) => args.push(tun(i), `10.77.0.${i + 1}`, ...lineArgs(s.profile ?? profile)))
    const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    reapOnExit(child)
    this.emulator = child
    child.stdout!.on('data', (d: Buffer) => { this.out += d.toString() })
    let err = ''
    child.stderr!.on('data', (d: Buffer) => { err += d.toString() })
    await this.waitLine(/^ready$/m, () => `link emulator did not start: ${err}`)
    for (let i = 0; i < specs.length; i++) {
      const s = specs[i]
      const ns = `dl-${this.id}-${s.name}`
      const router = s.nat === true ? `dl-${this.id}-${s.name}-nat` : null
      const edge = router ?? ns // the namespace holding the lab address
      for (const n of router === null ? [ns] : [router, ns]) {
        await ip('netns', 'add', n)
        this.namespaces.push(n)
        await ip('-n', n, 'link', 'set', 'lo', 'up')
      }
      await ip('link', 'set', tun(i), 'netns', edge)
      await ip('-n', edge, 'addr', 'add', `10.77.0.${i + 1}/16`, 'dev', tun(i))
      await ip('-n', edge, 'link', 'set', tun(i), 'up')
      if (router !== null) {
        // The member's private network behind its router, masqueraded to
        // the router's lab address (conntrack: a port-restricted NAT).
        const veth = `dv${this.id}${i}`
        await ip('link', 'add', veth + 'a', 'netns', router, 'type', 'veth', 'peer', 'name', veth + 'b', 'netns', ns)
        await ip('-n', router, 'addr', 'add', `192.168.${i + 1}.1/24`, 'dev', veth + 'a')
        await ip('-n', router, 'link', 'set', veth + 'a', 'up')
        await ip('-n', ns, 'addr', 'add', `192.168.${i + 1}.2/24`, 'dev', veth + 'b')
        await ip('-n', ns, 'link', 'set', veth + 'b', 'up')
        await ip('-n', ns, 'route', 'add', 'default', 'via', `192.168.${i + 1}.1`)
        await nsSh(router, `echo 1 > /proc/sys/net/ipv4/ip_forward && nft -f - <<'EOF'
table ip nat {
  chain post { type nat hook postrouting priority 100; oifname "${tun(i)}" masquerade; }
}
EOF`)
      }
      this.hosts.set(s.name, { name: s.name, index: i, ns, ip: `10.77.0.${i + 1}`, router })
    }
  }

  host (name: string): LabHost {
    const h = this.hosts.get(name)
    if (h === undefined) throw new Error(`no lab host ${name}`)
    return h
  }

  ns (name: string): string { return this.host(name).ns }

  // Runs a command to completion inside a host's network.
  async exec (name: string, argv: string[], timeoutMs = 120_000): Promise<RunResult> {
    const [cmd, ...args] = inNetns(this.ns(name), argv)
    return await run(cmd, args, { timeoutMs })
  }

  // Cuts every path between the two groups (both ways), or heals them.
  async cut (a: string[], b: string[]): Promise<void> { await this.pairs('cut', a, b) }
  async heal (a: string[], b: string[]): Promise<void> { await this.pairs('heal', a, b) }

  private async pairs (verb: string, a: string[], b: string[]): Promise<void> {
    for (const x of a) for (const y of b) await this.command(`${verb} ${this.host(x).index} ${this.host(y).index}`, /^ok$/m)
  }

  async setProfile (name: string, p: LinkProfile): Promise<void> {
    await this.command(`set ${this.host(name).index} ${lineArgs(p).join(' ')}`, /^ok$/m)
  }

  // Bytes each host put on and took off its line so far (IP packets).
  async stats (): Promise<Map<string, LinkStats>> {
    const line = await this.command('stats', /^\{.*\}$/m)
    const s = JSON.parse(line) as { sent: number[], recv: number[], lost: number[], dropped: number[] }
    const out = new Map<string, LinkStats>()
    for (const h of this.hosts.values()) out.set(h.name, { sent: s.sent[h.index], recv: s.recv[h.index], lost: s.lost[h.index], dropped: s.dropped[h.index] })
    return out
  }

  private async command (line: string, answer: RegExp): Promise<string> {
    if (this.emulator === null || this.closed) throw new Error('the lab is closed')
    this.out = ''
    this.emulator.stdin!.write(line + '\n')
    return await this.waitLine(answer, () => `link emulator did not answer ${line}`)
  }

  private async waitLine (re: RegExp, msg: () => string): Promise<string> {
    const deadline = Date.now() + 10_000
    for (;;) {
      const m = re.exec(this.out)
      if (m !== null) return m[0]
      if (this.emulator?.exitCode !== null || Date.now() > deadline) throw new Error(msg())
      await new Promise(resolve => setTimeout(resolve, 10))
    }
  }

  // Safe twice. Programs still running in a namespace keep it alive until
  // they exit (the mount point in /run/netns goes now); the tests' own
  // teardowns stop them.
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    const e = this.emulator
    if (e !== null && e.exitCode === null) {
      e.stdin!.end()
      const timer = setTimeout(() => e.kill('SIGKILL'), 2000)
      await new Promise(resolve => e.once('exit', resolve))
      clearTimeout(timer)
    }
    for (const n of this.namespaces.reverse()) await run('ip', ['netns', 'del', n], { timeoutMs: 10_000 }).catch(() => {})
  }
}

// A raw Hyperswarm stream (swarm-probe.ts) of `mib` MiB across the lab,
// through a DHT bootstrap the lab runs: the transport disktro runs on.
export async function rawSwarm (lab: NetLab, bootstrap: string, from: string, to: string, mib: number, widen = true): Promise<{ bytes: number, seconds: number }> {
  return await probe(lab, from, to, 'swarm-probe.js', [bootstrap, randomBytes(8).toString('hex')], [String(mib), ...(widen ? ['widen'] : [])], widen ? ['widen'] : [])
}

// A plain TCP stream of `mib` MiB from one host to another across the lab:
// the link's reference throughput (bytes and seconds as the receiver saw them).
export async function rawTcp (lab: NetLab, from: string, to: string, mib: number, port = 5201): Promise<{ bytes: number, seconds: number }> {
  return await probe(lab, from, to, 'tcp-probe.js', [lab.host(to).ip, String(port)], [String(mib)], [])
}

async function probe (lab: NetLab, from: string, to: string, script: string, common: string[], clientArgs: string[], serverArgs: string[]): Promise<{ bytes: number, seconds: number }> {
  const bin = join(ROOT, 'dist', 'test', 'helpers', script)
  const [cmd, ...args] = inNetns(lab.ns(to), [process.execPath, bin, 'server', ...common, ...serverArgs])
  const server = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  reapOnExit(server)
  let out = ''
  server.stdout.on('data', (d: Buffer) => { out += d.toString() })
  try {
    const deadline = Date.now() + 10_000
    while (!out.includes('listening')) {
      if (server.exitCode !== null || Date.now() > deadline) throw new Error(`${script} server did not start`)
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    const c = await lab.exec(from, [process.execPath, bin, 'client', ...common, ...clientArgs], 600_000)
    if (c.code !== 0) throw new Error(`${script} client: ${c.stderr}`)
    while (!/\{.*\}/.test(out)) {
      if (server.exitCode !== null && !/\{.*\}/.test(out)) throw new Error(`${script} server gave no result`)
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    return JSON.parse(/\{.*\}/.exec(out)![0])
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL')
  }
}
