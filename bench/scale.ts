// The scale benchmark: `npm run bench -- --scale [options]` (or `npm run
// bench:scale -- [options]`); see --help and docs/benchmarks.md "Scale".
//
// Per volume size (10^4, 10^5, 10^6 small files of 1-4 KiB, 1,000 per
// directory): tar x into a real mount, then what should stay flat as the
// volume grows: idle CPU per member, the longest event-loop stall (status
// --json), status time, RSS, store bytes per file byte, remount time, cold
// ls -lR / find / du; the same tree on gocryptfs (or, when it is not
// installed, a plain directory) for the ratios. With --members 3: two mounted
// full members and one storage-only `serve` over a loopback DHT; ingest into
// the first, time until every chunk is at target and the second shows every
// file. Every workload is a child process; this one never touches a mount.
import { parseArgs } from 'node:util'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, open, readFile, rm, writeFile, stat } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { cpus, totalmem, release } from 'node:os'
import { join } from 'node:path'
import { sh, timed, which, q, sleep, run } from './proc.js'
import { ROOT, DISKTRO_BIN, LocalBootstrap, isMounted, fuseUnmount } from './targets.js'
import { daemonNodeFlags } from './node-flags.js'
import { storeBreakdown, breakdownTable } from './store-breakdown.js'

const HELP = `usage: npm run bench -- --scale [options]

  --sizes LIST     files per volume, e.g. 10000,100000 (default 10000,100000)
  --million        add 1000000 to the sizes (about an hour)
  --members N      1 (one mounted member) or 3 (two mounted full members and a storage-only serve) (default 1)
  --idle-sec S     how long idle CPU is measured (default 60)
  --compare LIST   gocryptfs,plain: what the metadata workloads are compared with (default: gocryptfs if installed, else plain)
  --work-dir DIR   scratch space, a plain local directory (default /tmp/disktro-bench)
  --out DIR        where results .md/.json go (default bench/out)
  --help
`

const PASSWORD = 'disktro bench password'
const PER_DIR = 1000
const TICKS = 100 // USER_HZ: /proc/PID/stat counts CPU time in these

interface Options { sizes: number[], members: 1 | 3, idleSec: number, compare: string[], workDir: string, outDir: string }

function options (argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      scale: { type: 'boolean' },
      sizes: { type: 'string', default: '10000,100000' },
      million: { type: 'boolean', default: false },
      members: { type: 'string', default: '1' },
      'idle-sec': { type: 'string', default: '60' },
      compare: { type: 'string' },
      'work-dir': { type: 'string', default: '/tmp/disktro-bench' },
      out: { type: 'string', default: join(ROOT, 'bench', 'out') },
      help: { type: 'boolean', default: false }
    }
  })
  if (values.help) { process.stdout.write(HELP); return null }
  const sizes = values.sizes!.split(',').map(Number)
  if (values.million) sizes.push(1_000_000)
  for (const n of sizes) if (!Number.isInteger(n) || n < 1) throw new Error(`bad size ${n}`)
  const members = Number(values.members)
  if (members !== 1 && members !== 3) throw new Error('--members is 1 or 3')
  return { sizes, members, idleSec: Number(values['idle-sec']), compare: values.compare?.split(',') ?? [], workDir: values['work-dir']!, outDir: values.out! }
}

function log (s: string): void {
  process.stderr.write(`[scale ${new Date().toISOString().slice(11, 19)}] ${s}\n`)
}

// Deterministic sizes: the same tar for the same file count (mulberry32).
function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// ---- input: a tar of `files` files of 1-4 KiB, 1,000 per directory ----------

// Written directly as ustar (no tree of small files on the scratch disk).
async function smallFilesTar (dir: string, files: number): Promise<{ path: string, bytes: number }> {
  const path = join(dir, `scale-${files}.tar`)
  const meta = path + '.bytes'
  try {
    await stat(path)
    return { path, bytes: Number(await readFile(meta, 'utf8')) }
  } catch {}
  log(`generating ${path}`)
  const rand = prng(files)
  const fh = await open(path + '.tmp', 'w')
  let bytes = 0
  const out: Buffer[] = []
  let pending = 0
  const flush = async (): Promise<void> => { await fh.write(Buffer.concat(out)); out.length = 0; pending = 0 }
  const push = async (b: Buffer): Promise<void> => { out.push(b); pending += b.length; if (pending > 4 << 20) await flush() }
  const dirs = Math.ceil(files / PER_DIR)
  for (let d = 0; d < dirs; d++) {
    const dname = `d${String(d).padStart(4, '0')}/`
    await push(tarHeader(dname, 0, '5'))
    for (let i = d * PER_DIR; i < Math.min(files, (d + 1) * PER_DIR); i++) {
      const size = 1024 + Math.floor(rand() * 3073)
      bytes += size
      await push(tarHeader(`${dname}f${String(i).padStart(7, '0')}`, size, '0'))
      const body = Buffer.alloc(Math.ceil(size / 512) * 512)
      randomBytes(size).copy(body)
      await push(body)
    }
  }
  await push(Buffer.alloc(1024))
  await flush()
  await fh.close()
  await sh(`mv ${q(path + '.tmp')} ${q(path)}`)
  await writeFile(meta, String(bytes))
  return { path, bytes }
}

function tarHeader (name: string, size: number, type: '0' | '5'): Buffer {
  const h = Buffer.alloc(512)
  h.write(name, 0, 100, 'utf8')
  h.write((type === '5' ? '0000755' : '0000644') + '\0', 100)
  h.write('0000000\0', 108)
  h.write('0000000\0', 116)
  h.write(size.toString(8).padStart(11, '0') + '\0', 124)
  h.write(Math.floor(Date.now() / 1000).toString(8).padStart(11, '0') + '\0', 136)
  h.write('        ', 148)
  h.write(type, 156)
  h.write('ustar\0' + '00', 257)
  let sum = 0
  for (const b of h) sum += b
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148)
  return h
}

// ---- processes --------------------------------------------------------------

function disktroEnv (): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, DISKTRO_PASSWORD: PASSWORD }
  delete env.DISKTRO_HOME
  delete env.NODE_OPTIONS
  return env
}

async function cli (args: string[], timeoutMs = 120_000): Promise<{ seconds: number, stdout: string, stderr: string, code: number | null }> {
  const t0 = process.hrtime.bigint()
  const r = await run(process.execPath, [DISKTRO_BIN, ...args], { env: disktroEnv(), timeoutMs })
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, stdout: r.stdout, stderr: r.stderr, code: r.code }
}

// A member: a data dir, its config, and its daemon (mount or serve) while it runs.
class Member {
  child: ChildProcess | null = null
  stdout = ''
  stderr = ''
  private exited: Promise<void> = Promise.resolve()
  constructor (readonly name: string, readonly dir: string, readonly mounted: boolean) {}
  get dataDir (): string { return join(this.dir, 'data') }
  get mnt (): string { return join(this.dir, 'mnt') }
  get config (): string { return join(this.dir, 'config.json') }
  get pid (): number { return this.child!.pid! }

  // Resolves once it serves (mounted, or "serving volume"): the seconds it took.
  async start (): Promise<number> {
    const t0 = process.hrtime.bigint()
    await mkdir(this.mnt, { recursive: true })
    const args = [...daemonNodeFlags(DISKTRO_BIN), DISKTRO_BIN, ...(this.mounted ? ['mount', this.mnt] : ['serve']), '--data-dir', this.dataDir, '--config', this.config]
    this.stdout = ''
    this.stderr = ''
    const child = spawn(process.execPath, args, { env: disktroEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    child.stdout?.on('data', (d: Buffer) => { this.stdout += d.toString() })
    child.stderr?.on('data', (d: Buffer) => { this.stderr += d.toString() })
    this.exited = new Promise(resolve => child.on('exit', () => resolve()))
    const ready = this.mounted ? /mounted volume/ : /serving volume/
    const deadline = Date.now() + 600_000
    while (!ready.test(this.stdout) || (this.mounted && !await isMounted(this.mnt))) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${this.name} exited: ${this.stderr.trim().slice(-2000)}`)
      if (Date.now() > deadline) throw new Error(`${this.name} did not start within 600 s`)
      await sleep(20)
    }
    return Number(process.hrtime.bigint() - t0) / 1e9
  }

  async stop (): Promise<void> {
    const c = this.child
    if (c && c.exitCode === null && c.signalCode === null) {
      c.kill('SIGTERM')
      if (!await Promise.race([this.exited.then(() => true), sleep(300_000).then(() => false)])) { c.kill('SIGKILL'); await this.exited }
    }
    if (this.mounted) await fuseUnmount(this.mnt)
    this.child = null
  }

  killNow (): void {
    const c = this.child
    if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  }

  async status (): Promise<{ seconds: number, report: any }> {
    const r = await cli(['status', '--json', '--data-dir', this.dataDir, '--config', this.config])
    let report: any = null
    try { report = JSON.parse(r.stdout) } catch {}
    return { seconds: r.seconds, report }
  }
}

async function cpuTicks (pid: number): Promise<number> {
  const s = await readFile(`/proc/${pid}/stat`, 'utf8')
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
  return Number(f[11]) + Number(f[12]) // utime, stime (fields 14, 15)
}

async function rssMiB (pid: number): Promise<number> {
  const s = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(s)![1]) / 1024
}

async function duBytes (path: string): Promise<number> {
  return Number((await sh(`du -sb ${q(path)}`)).stdout.split('\t')[0])
}

// ---- one volume size ----------------------------------------------------------

interface MemberRow { name: string, idleCpuPct: number, rssMiB: number, longestStallMs: number | null, stallsOver50ms: number | null, idleStallMs: number | null, idleStalls: number | null, busyStallMs: number | null, busyStalls: number | null, statusSec: number }
interface SizeRow {
  files: number
  fileBytes: number
  ingestSec: number
  ingestRate: number
  toTargetSec: number | null // --members 3: after tar x ends, until every chunk is at target (A's view)
  visibleOnBSec: number | null // --members 3: after tar x ends, until B shows every file
  members: MemberRow[]
  storePerFileByte: number
  storeTable: string // where A's store bytes go, per LMDB database (store-breakdown.ts)
  statusStoredPerLogical: number | null // what A's status reports: store bytes per logical byte
  remountSec: number
  lsSec: number
  findSec: number
  duSec: number
  compare: Record<string, { ingestSec: number, lsSec: number, findSec: number, duSec: number }>
}

const dropCaches = (): Promise<unknown> => sh('sync; echo 3 > /proc/sys/vm/drop_caches').catch(() => {})

async function coldTimes (root: string, remount: () => Promise<unknown>): Promise<{ lsSec: number, findSec: number, duSec: number }> {
  const cold = async (cmd: string): Promise<number> => {
    await remount()
    await dropCaches()
    return (await timed(cmd)).seconds
  }
  return {
    lsSec: await cold(`ls -lR ${q(root)} > /dev/null`),
    findSec: await cold(`find ${q(root)} > /dev/null`),
    duSec: await cold(`du -s ${q(root)} > /dev/null`)
  }
}

async function waitFor<T> (what: string, fn: () => Promise<T | null | false>, ms: number): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await fn().catch(() => null)
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await sleep(1000)
  }
}

async function oneSize (o: Options, files: number, bootstrap: string, live: Set<Member>): Promise<SizeRow> {
  const input = await smallFilesTar(join(o.workDir, 'inputs'), files)
  const base = await mkdtemp(join(o.workDir, `scale-${files}-`))
  try {
    const roles: Array<{ name: string, mounted: boolean, storage: boolean }> = o.members === 3
      ? [{ name: 'A', mounted: true, storage: false }, { name: 'B', mounted: true, storage: false }, { name: 'C', mounted: false, storage: true }]
      : [{ name: 'A', mounted: true, storage: false }]
    const members: Member[] = []
    for (const r of roles) {
      const m = new Member(r.name, join(base, r.name), r.mounted)
      await mkdir(m.dir, { recursive: true })
      await writeFile(m.config, JSON.stringify({ bootstrap: [bootstrap], replicaCount: o.members, heartbeatInterval: 1000 }))
      if (members.length === 0) {
        const c = await cli(['init', '--data-dir', m.dataDir, '--config', m.config])
        if (c.code !== 0) throw new Error(`init: ${c.stderr}`)
      } else {
        const inv = await cli(['invite', '--data-dir', members[0].dataDir, ...(r.storage ? ['--storage-only'] : [])])
        if (inv.code !== 0) throw new Error(`invite: ${inv.stderr}`)
        const j = await cli(['join', inv.stdout.trim(), '--data-dir', m.dataDir])
        if (j.code !== 0) throw new Error(`join: ${j.stderr}`)
      }
      members.push(m)
    }
    for (const m of members) { live.add(m); await m.start() }
    const [a] = members
    if (members.length > 1) await waitFor('A sees its peers', async () => (await a.status()).report?.peers.filter((p: any) => p.online).length === members.length - 1, 120_000)

    log(`${files} files: tar x into A`)
    const ingest = await timed(`tar -x -C ${q(a.mnt)} -f ${q(input.path)} && sync`, 6 * 3600_000)
    const ended = Date.now()
    let toTargetSec: number | null = null
    let visibleOnBSec: number | null = null
    if (members.length > 1) {
      const b = members[1]
      const both = await Promise.all([
        waitFor('every chunk at target', async () => { const r = (await a.status()).report; return r && r.replication.chunks >= files && r.replication.underReplicated === 0 && Date.now() }, 3 * 3600_000),
        waitFor('B shows every file', async () => { const r = (await b.status()).report; return r && r.volume.files >= files && Date.now() }, 3 * 3600_000)
      ])
      toTargetSec = (both[0] - ended) / 1000
      visibleOnBSec = (both[1] - ended) / 1000
    }

    log(`${files} files: idle for ${o.idleSec} s`)
    await sleep(5000) // the tail of the ingest's own work (close behind, flushes)
    const before = await Promise.all(members.map(m => cpuTicks(m.pid)))
    await sleep(o.idleSec * 1000)
    const after = await Promise.all(members.map(m => cpuTicks(m.pid)))
    const rows: MemberRow[] = []
    for (const [i, m] of members.entries()) {
      const st = await m.status()
      rows.push({
        name: m.name,
        idleCpuPct: 100 * (after[i] - before[i]) / TICKS / o.idleSec,
        rssMiB: await rssMiB(m.pid),
        longestStallMs: st.report?.eventLoop?.longestStallMs ?? null,
        stallsOver50ms: st.report?.eventLoop?.stallsOver50ms ?? null,
        // the minute before this status: the idle minute (--idle-sec 60)
        idleStallMs: st.report?.eventLoop?.lastMinute?.longestStallMs ?? null,
        idleStalls: st.report?.eventLoop?.lastMinute?.stallsOver50ms ?? null,
        busyStallMs: st.report?.eventLoop?.busy?.longestStallMs ?? null,
        busyStalls: st.report?.eventLoop?.busy?.stallsOver50ms ?? null,
        statusSec: st.seconds
      })
    }
    const storePerFileByte = (await duBytes(join(a.dataDir, 'store'))) / input.bytes
    const storeTable = breakdownTable(await storeBreakdown(join(a.dataDir, 'store')), input.bytes, files)
    const space = (await a.status()).report?.space
    const statusStoredPerLogical = typeof space?.perLogicalByte === 'number' ? space.perLogicalByte : null
    log(`${files} files: A's store\n${storeTable}`)

    log(`${files} files: remount and cold ls -lR, find, du`)
    const remounts: number[] = []
    const remount = async (): Promise<void> => { await a.stop(); remounts.push(await a.start()) }
    const cold = await coldTimes(a.mnt, remount)
    remounts.sort((x, y) => x - y)
    for (const m of members) { await m.stop(); live.delete(m) }

    const compare: SizeRow['compare'] = {}
    for (const c of o.compare) {
      log(`${files} files: ${c}`)
      compare[c] = await compareTarget(c, join(base, c), input.path)
    }
    return {
      files,
      fileBytes: input.bytes,
      ingestSec: ingest.seconds,
      ingestRate: files / ingest.seconds,
      toTargetSec,
      visibleOnBSec,
      members: rows,
      storePerFileByte,
      storeTable,
      statusStoredPerLogical,
      remountSec: remounts[remounts.length >> 1],
      ...cold,
      compare
    }
  } finally {
    for (const m of live) m.killNow()
    live.clear()
    await sh(`for d in ${q(base)}/*/mnt; do mountpoint -q "$d" && (fusermount3 -uz "$d" || fusermount -uz "$d" || umount -l "$d"); done; true`).catch(() => {})
    await rm(base, { recursive: true, force: true })
  }
}

async function compareTarget (name: string, dir: string, tar: string): Promise<{ ingestSec: number, lsSec: number, findSec: number, duSec: number }> {
  const root = join(dir, name === 'plain' ? 'files' : 'mnt')
  const cipher = join(dir, 'cipher')
  await mkdir(root, { recursive: true })
  const mount = async (): Promise<void> => {
    if (name === 'plain') return
    await sh(`gocryptfs -q -nosyslog -extpass 'echo pw' ${q(cipher)} ${q(root)} </dev/null >/dev/null 2>&1`)
  }
  const unmount = async (): Promise<void> => { if (name !== 'plain') await fuseUnmount(root) }
  try {
    if (name === 'gocryptfs') {
      await mkdir(cipher, { recursive: true })
      await sh(`gocryptfs -init -q -extpass 'echo pw' ${q(cipher)}`)
      await mount()
    }
    const ingest = await timed(`tar -x -C ${q(root)} -f ${q(tar)} && sync`, 6 * 3600_000)
    const cold = await coldTimes(root, async () => { await unmount(); await mount() })
    return { ingestSec: ingest.seconds, ...cold }
  } finally {
    await unmount().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
}

// ---- report -----------------------------------------------------------------------

function table (o: Options, rows: SizeRow[]): string {
  const f = (n: number | null, d = 2): string => n === null ? '-' : n.toFixed(d)
  const cols = rows.map(r => r.files.toLocaleString('en-US'))
  const line = (label: string, cells: string[]): string => `| ${label} | ${cells.join(' | ')} |`
  const out = [line('', cols), line('---', cols.map(() => '---:'))]
  out.push(line('tar x into A: s (files/s)', rows.map(r => `${f(r.ingestSec, 1)} (${f(r.ingestRate, 0)})`)))
  if (o.members === 3) {
    out.push(line('every chunk at target, s after tar x', rows.map(r => f(r.toTargetSec, 1))))
    out.push(line('B shows every file, s after tar x', rows.map(r => f(r.visibleOnBSec, 1))))
  }
  const names = rows[0]?.members.map(m => m.name) ?? []
  for (const [i, n] of names.entries()) {
    const who = names.length > 1 ? ` (${n})` : ''
    out.push(line(`idle CPU${who}, % of a core over ${o.idleSec} s`, rows.map(r => f(r.members[i].idleCpuPct, 1))))
    out.push(line(`RSS${who}, MiB`, rows.map(r => f(r.members[i].rssMiB, 0))))
    out.push(line(`longest event-loop stall${who} since start, ms (stalls > 50 ms)`, rows.map(r => `${r.members[i].longestStallMs ?? '-'} (${r.members[i].stallsOver50ms ?? '-'})`)))
    out.push(line(`of those, while the daemon was on a CPU (busy), ms (stalls > 50 ms)`, rows.map(r => `${r.members[i].busyStallMs ?? '-'} (${r.members[i].busyStalls ?? '-'})`)))
    out.push(line(`longest event-loop stall${who} in the last minute (idle), ms (stalls > 50 ms)`, rows.map(r => `${r.members[i].idleStallMs ?? '-'} (${r.members[i].idleStalls ?? '-'})`)))
    out.push(line(`disktro status --json${who}, s`, rows.map(r => f(r.members[i].statusSec))))
  }
  out.push(line('store bytes per file byte (A, du of the store)', rows.map(r => f(r.storePerFileByte))))
  out.push(line('store bytes per logical byte (A, as status reports it)', rows.map(r => f(r.statusStoredPerLogical))))
  out.push(line('remount until mounted, s (median of 3)', rows.map(r => f(r.remountSec))))
  for (const [k, label] of [['lsSec', 'cold ls -lR'], ['findSec', 'cold find'], ['duSec', 'cold du -s']] as const) {
    out.push(line(`${label}, s`, rows.map(r => f(r[k]))))
    for (const c of o.compare) out.push(line(`${label} on ${c}, s (ratio ${c} / disktro)`, rows.map(r => `${f(r.compare[c]?.[k] ?? null)} (${f(r.compare[c] ? r.compare[c][k] / r[k] : null)})`)))
  }
  for (const c of o.compare) out.push(line(`tar x on ${c}, s (ratio ${c} / disktro)`, rows.map(r => `${f(r.compare[c]?.ingestSec ?? null, 1)} (${f(r.compare[c] ? r.compare[c].ingestSec / r.ingestSec : null)})`)))
  for (const r of rows) out.push('', `Where A's store bytes go at ${r.files.toLocaleString('en-US')} files (LMDB pages per database; bench/store-breakdown.ts):`, '', r.storeTable)
  return out.join('\n')
}

// ---- main -------------------------------------------------------------------------

export async function scaleMain (argv: string[]): Promise<number> {
  const o = options(argv)
  if (!o) return 0
  if (o.compare.length === 0) o.compare = [await which('gocryptfs') ? 'gocryptfs' : 'plain']
  await mkdir(join(o.workDir, 'inputs'), { recursive: true })
  await mkdir(o.outDir, { recursive: true })
  const boot = new LocalBootstrap()
  const live = new Set<Member>()
  const stopAll = (): void => { for (const m of live) m.killNow(); boot.killNow() }
  process.on('exit', stopAll)
  const started = new Date()
  try {
    const bootstrap = await boot.start()
    if (!bootstrap) throw new Error('this disktro has no bootstrap command')
    const rows: SizeRow[] = []
    for (const n of o.sizes) {
      rows.push(await oneSize(o, n, bootstrap, live))
      log(JSON.stringify(rows[rows.length - 1]))
    }
    const cpu = cpus()[0]?.model ?? '?'
    const loadavg = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')
    const md = [
      `scale benchmark, ${started.toISOString().slice(0, 16)}Z: ${o.members} member(s), 1-4 KiB files, ${PER_DIR} per directory; ${cpus().length} × ${cpu}, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, Linux ${release()}, node ${process.version}; load average at the end ${loadavg}`,
      '',
      table(o, rows)
    ].join('\n')
    const stamp = started.toISOString().replace(/[:.]/g, '-').slice(0, 19)
    await writeFile(join(o.outDir, `scale-${stamp}.md`), md + '\n')
    await writeFile(join(o.outDir, `scale-${stamp}.json`), JSON.stringify({ options: o, rows }, null, 2) + '\n')
    process.stdout.write(md + '\n')
    return 0
  } finally {
    stopAll()
    await boot.stop().catch(() => {})
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  scaleMain(process.argv.slice(2)).then(code => process.exit(code), e => { log((e as Error).stack ?? String(e)); process.exit(1) })
}
