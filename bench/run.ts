// disktro benchmark: `npm run bench -- [options]` (see --help).
//
// Runs the same workloads on a plain directory, disktro, and (when installed)
// gocryptfs and bindfs, and reports wall times plus speed ratios to the plain
// directory and to gocryptfs measured in the same run. Every workload is a
// child process (dd, tar, ls); this process never touches a mount itself.
import { parseArgs } from 'node:util'
import { mkdir, mkdtemp, writeFile, access, constants, realpath } from 'node:fs/promises'
import { cpus, totalmem, release } from 'node:os'
import { basename, join } from 'node:path'
import { sh, which, killRunning } from './proc.js'
import { randomFile, compressibleFile, smallFilesTar, smallFilesTree, gitRepo, sqliteScript } from './inputs.js'
import { WORKLOADS, GOALS, GROUPS, runTarget, throughput, type Group, type WorkloadId, type WorkloadOptions, type Inputs } from './workloads.js'
import { ROOT, PlainTarget, DisktroTarget, GocryptfsTarget, BindfsTarget, LocalBootstrap, type Target } from './targets.js'
import { summarise, profileFiles, formatSummary } from './profile.js'
import { replicationBench } from './replication.js'

const MiB = 1024 * 1024

const HELP = `usage: npm run bench -- [options]

  --size MiB             size of the sequential files (default 1024)
  --files N              small files in the tar and cp -a workloads (default 10000)
  --transactions N       sqlite transactions (default 1000)
  --git-tree DIR         what the git repo's commit holds (default: the small-file tree;
                         e.g. node_modules for a large checkout)
  --targets LIST         plain,disktro,gocryptfs,bindfs (default: all installed)
  --workloads LIST       write,read,smallfiles,meta,tree,git,sqlite,replication
                         (default: all; with --chunk-sizes: write,read)
                         smallfiles: tar x, cold ls -lR; meta: warm ls -lR, cold and warm find
                         and du -s; tree: cp -a, rm -rf; git: clone, cold and warm status
  --chunk-sizes LIST     run disktro once per chunk size, e.g. 256K,1M,4M
  --repeat N             rounds; targets are interleaved, medians reported (default 1)
  --work-dir DIR         scratch space, a plain local directory (default /tmp/disktro-bench)
  --out DIR              where results .md/.json go (default bench/out)
  --profile              run the disktro daemon under node --cpu-prof and summarise it
  --scale                the scale benchmark instead (bench/scale.ts; --scale --help for its options)
  --lab                  replication across the network lab instead (bench/lab.ts; root only):
                         --lab-size MiB[,MiB] (default 64), --lab-profiles lan,broadband,poor,
                         --lab-heartbeat ms (default 5000)
  --help
`

interface Options extends WorkloadOptions {
  targets: string[]
  chunkSizes: number[]
  repeat: number
  workDir: string
  outDir: string
  profile: boolean
  gitTree: string | null
}

function parseSize (s: string): number {
  const m = /^(\d+)\s*([kmg]?)i?b?$/i.exec(s.trim())
  if (!m) throw new Error(`bad size: ${s}`)
  return Number(m[1]) * ({ '': 1, k: 1024, m: MiB, g: 1024 * MiB }[m[2].toLowerCase()] ?? 1)
}

function fmtSize (n: number): string {
  if (n % MiB === 0) return `${n / MiB}M`
  if (n % 1024 === 0) return `${n / 1024}K`
  return String(n)
}

function options (): Options {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: '1024' },
      files: { type: 'string', default: '10000' },
      transactions: { type: 'string', default: '1000' },
      'git-tree': { type: 'string' },
      targets: { type: 'string' },
      workloads: { type: 'string' },
      'chunk-sizes': { type: 'string' },
      repeat: { type: 'string', default: '1' },
      'work-dir': { type: 'string', default: '/tmp/disktro-bench' },
      out: { type: 'string', default: join(ROOT, 'bench', 'out') },
      profile: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false }
    }
  })
  if (values.help) { process.stdout.write(HELP); process.exit(0) }
  const chunkSizes = values['chunk-sizes'] ? values['chunk-sizes'].split(',').map(parseSize) : []
  const workloads = new Set((values.workloads ?? (chunkSizes.length ? 'write,read' : [...GROUPS, 'replication'].join(','))).split(','))
  for (const w of workloads) if (![...GROUPS, 'replication'].includes(w as Group)) throw new Error(`unknown workload group ${w}`)
  if (workloads.has('read')) workloads.add('write') // reads read what the writes wrote
  const targets = (values.targets ?? 'plain,disktro,gocryptfs,bindfs').split(',')
  for (const t of targets) if (!['plain', 'disktro', 'gocryptfs', 'bindfs'].includes(t)) throw new Error(`unknown target ${t}`)
  const num = (s: string, name: string): number => {
    const n = Number(s)
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`)
    return n
  }
  return {
    sizeMiB: num(values.size!, 'size'),
    files: num(values.files!, 'files'),
    transactions: num(values.transactions!, 'transactions'),
    gitTree: values['git-tree'] ?? null,
    gitFiles: 0,
    targets,
    workloads,
    chunkSizes,
    repeat: num(values.repeat!, 'repeat'),
    workDir: values['work-dir']!,
    outDir: values.out!,
    profile: values.profile!
  }
}

// A closed stderr (e.g. `| head`) must not kill the run before it cleans up.
process.stderr.on('error', () => {})
process.stdout.on('error', () => {})

function log (s: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`)
}

// ---- cleanup on any exit ----------------------------------------------------

const live = new Set<Target>()
const bootstrapNode = new LocalBootstrap()
let interrupted = false

async function cleanupAll (): Promise<void> {
  await bootstrapNode.stop().catch(() => {})
  for (const t of [...live]) {
    try { await t.destroy() } catch (e) { log(`cleanup of ${t.name}: ${(e as Error).message}`) }
    live.delete(t)
  }
}

// First signal: stop the workload in flight; the run loop then unmounts and
// removes the target and exits. A second signal cleans up and exits at once.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (interrupted) {
      log(`${sig} again: cleaning up now`)
      cleanupAll().finally(() => process.exit(130))
      return
    }
    interrupted = true
    log(`${sig}: stopping, unmounting and cleaning up`)
    killRunning()
  })
}

function checkInterrupted (): void {
  if (interrupted) throw new Error('interrupted')
}
process.on('exit', () => {
  for (const t of live) if (t instanceof DisktroTarget) t.killNow()
  bootstrapNode.killNow()
})

// ---- the run ------------------------------------------------------------------

type Samples = Map<string, Map<WorkloadId | 'stored', number[]>>

function add (s: Samples, target: string, w: WorkloadId | 'stored', v: number): void {
  let m = s.get(target)
  if (!m) s.set(target, m = new Map())
  const a = m.get(w) ?? []
  a.push(v)
  m.set(w, a)
}

// ---- reporting ------------------------------------------------------------------

function median (a: number[]): number {
  const s = [...a].sort((x, y) => x - y)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

function report (o: Options, samples: Samples, names: string[], errors: Map<string, string>, meta: Record<string, string>): string {
  const med = (t: string, w: WorkloadId | 'stored'): number | undefined => {
    const a = samples.get(t)?.get(w)
    return a && a.length ? median(a) : undefined
  }
  const ratio = (t: string, ref: string, w: WorkloadId): string => {
    const a = med(t, w); const b = med(ref, w)
    return a !== undefined && b !== undefined ? `${(b / a).toFixed(2)}×` : '–'
  }
  const lines: string[] = []
  lines.push(`Run: ${Object.entries(meta).map(([k, v]) => `${k} ${v}`).join(', ')}`, '')
  lines.push('Times are wall seconds (median of rounds); ratios are speed relative to the reference (reference time / time: >1 is faster).', '')
  lines.push('| workload | target | time (s) | throughput | vs plain | vs gocryptfs |')
  lines.push('| --- | --- | ---: | ---: | ---: | ---: |')
  for (const w of Object.keys(WORKLOADS) as WorkloadId[]) {
    for (const t of names) {
      const a = samples.get(t)?.get(w)
      if (!a || a.length === 0) continue
      const m = median(a)
      const spread = a.length > 1 ? ` (${Math.min(...a).toFixed(2)}–${Math.max(...a).toFixed(2)})` : ''
      lines.push(`| ${WORKLOADS[w].label} | ${t} | ${m.toFixed(2)}${spread} | ${throughput(w, m, o)} | ${ratio(t, 'plain', w)} | ${ratio(t, 'gocryptfs', w)} |`)
    }
  }
  const stored = names.filter(t => med(t, 'stored') !== undefined)
  if (stored.length) {
    lines.push('', '| target | stored on disk after the writes (MiB, du) |', '| --- | ---: |')
    for (const t of stored) lines.push(`| ${t} | ${(med(t, 'stored')! / MiB).toFixed(0)} |`)
  }
  const disktros = names.filter(n => n.startsWith('disktro'))
  if (samples.has('gocryptfs') && disktros.length) {
    lines.push('', 'Goals (disktro speed / gocryptfs speed):', '')
    lines.push(`| workload | goal | ${disktros.join(' | ')} |`)
    lines.push(`| --- | ---: | ${disktros.map(() => '---').join(' | ')} |`)
    for (const [w, goal] of Object.entries(GOALS) as Array<[WorkloadId, number]>) {
      if (med('gocryptfs', w) === undefined) continue
      const cells = disktros.map(t => {
        const a = med(t, w); const g = med('gocryptfs', w)!
        if (a === undefined) return '–'
        const r = g / a
        // Each round's own ratio too: the two targets of a round run within
        // about a minute, so a slow spell of the machine shows in one pair.
        const ts = samples.get(t)?.get(w) ?? []
        const gs = samples.get('gocryptfs')?.get(w) ?? []
        const pairs = ts.length > 1 ? ts.slice(0, gs.length).map((x, i) => (gs[i] / x).toFixed(2)) : []
        return `${r.toFixed(2)} ${r >= goal ? 'met' : 'MISSED'}${pairs.length > 1 ? ` (rounds: ${pairs.join(', ')})` : ''}`
      })
      lines.push(`| ${WORKLOADS[w].label} | ≥ ${goal.toFixed(1)} | ${cells.join(' | ')} |`)
    }
  }
  if (errors.size) {
    lines.push('', 'Errors:')
    for (const [t, e] of errors) lines.push(`- ${t}: ${e.split('\n')[0]}`)
  }
  return lines.join('\n')
}

// ---- main ---------------------------------------------------------------------

async function main (): Promise<number> {
  // The scale benchmark has its own options (bench/scale.ts).
  if (process.argv.includes('--scale')) return await (await import('./scale.js')).scaleMain(process.argv.slice(2))
  if (process.argv.includes('--lab')) return await (await import('./lab.js')).labMain(process.argv.slice(2))
  const o = options()
  await mkdir(o.workDir, { recursive: true })
  const inputsDir = join(o.workDir, 'inputs')
  await mkdir(inputsDir, { recursive: true })
  await mkdir(o.outDir, { recursive: true })

  // which targets exist here
  const names: string[] = []
  const skipped: string[] = []
  for (const t of o.targets) {
    if (t === 'gocryptfs' || t === 'bindfs') {
      if (!(await which(t))) { skipped.push(`${t} (not installed)`); continue }
    }
    if (t === 'disktro' && o.chunkSizes.length) names.push(...o.chunkSizes.map(c => `disktro@${fmtSize(c)}`))
    else names.push(t)
  }
  if (names.some(n => n !== 'plain')) {
    try { await access('/dev/fuse', constants.R_OK | constants.W_OK) } catch {
      log('/dev/fuse is not usable: only the plain directory can run')
      for (const n of names.filter(n => n !== 'plain')) skipped.push(`${n} (no /dev/fuse)`)
      names.splice(0, names.length, ...names.filter(n => n === 'plain'))
    }
  }
  for (const s of skipped) log(`skipping ${s}`)
  if (names.length === 0) throw new Error('nothing to benchmark')

  const canDrop = await sh('echo 3 > /proc/sys/vm/drop_caches').then(() => true, () => false)
  if (!canDrop) log('cannot write /proc/sys/vm/drop_caches (not root?): reads after remount may be served from the backing files\' page cache')

  const inputs: Inputs = {}
  if (o.workloads.has('write')) {
    inputs.random = await randomFile(inputsDir, o.sizeMiB, log)
    inputs.compressible = await compressibleFile(inputsDir, o.sizeMiB, log)
  }
  const w = (g: Group): boolean => o.workloads.has(g)
  if (w('smallfiles') || w('meta') || w('tree') || (w('git') && !o.gitTree)) inputs.tar = await smallFilesTar(inputsDir, o.files, log)
  if (w('tree') || (w('git') && !o.gitTree)) inputs.tree = await smallFilesTree(inputsDir, inputs.tar!, log)
  if (w('git')) {
    // a real path: git refuses a work tree reached through a symlink (a worktree's node_modules)
    const g = await gitRepo(inputsDir, o.gitTree ? await realpath(o.gitTree) : inputs.tree!, log)
    inputs.repo = g.repo
    o.gitFiles = g.files
  }
  if (w('sqlite')) inputs.sql = await sqliteScript(inputsDir, o.transactions)

  let bootstrap: string | null = null
  if (names.some(n => n.startsWith('disktro'))) {
    bootstrap = await bootstrapNode.start()
    log(bootstrap ? `disktro daemons bootstrap from a local DHT node at ${bootstrap}` : 'this disktro has no bootstrap command: daemons run without a swarm config')
  }

  const profileDir = o.profile ? await mkdtemp(join(o.workDir, 'profile-')) : null
  const samples: Samples = new Map()
  const errors = new Map<string, string>()
  const started = new Date()
  for (let round = 0; round < o.repeat && !interrupted; round++) {
    // rotate the order each round so no target always runs first
    const order = names.map((_n, i) => names[(i + round) % names.length])
    for (const name of order) {
      if (interrupted || errors.has(name)) continue
      const dir = await mkdtemp(join(o.workDir, `${name.replace(/[^a-z0-9]/gi, '_')}-`))
      const t: Target = name === 'plain'
        ? new PlainTarget(name, dir)
        : name.startsWith('disktro')
          ? new DisktroTarget(name, dir, { chunkSize: name.includes('@') ? parseSize(name.split('@')[1]) : undefined, profileDir, bootstrap })
          : name === 'gocryptfs' ? new GocryptfsTarget(name, dir) : new BindfsTarget(name, dir)
      live.add(t)
      log(`round ${round + 1}/${o.repeat}: ${name}`)
      try {
        await runTarget(t, { o, inputs, canDrop, record: (w, v) => add(samples, name, w, v), log, checkInterrupted })
      } catch (e) {
        if (interrupted) break
        const extra = t instanceof DisktroTarget && t.stderr.trim() ? `\n  daemon stderr: ${t.stderr.trim().split('\n').slice(-5).join(' | ')}` : ''
        errors.set(name, (e as Error).message + extra)
        log(`${name} FAILED: ${(e as Error).message}${extra}`)
      } finally {
        try { await t.destroy() } catch (e) { log(`cleanup of ${name}: ${(e as Error).message}`) }
        live.delete(t)
      }
    }
  }
  if (interrupted) return 130

  const cpu = cpus()[0]?.model ?? '?'
  const meta: Record<string, string> = {
    date: started.toISOString().slice(0, 10),
    size: `${o.sizeMiB} MiB`,
    files: String(o.files),
    ...(o.workloads.has('sqlite') ? { transactions: String(o.transactions) } : {}),
    ...(o.workloads.has('git') ? { 'git checkout': `${o.gitFiles} files${o.gitTree ? ` from ${o.gitTree}` : ' (the small-file tree)'}` } : {}),
    rounds: String(o.repeat),
    machine: `${cpus().length} × ${cpu}, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, Linux ${release()}, node ${process.version}`,
    'cold cache': canDrop ? 'drop_caches' : 'NO (not root)'
  }
  if (o.chunkSizes.length) meta['chunk sizes'] = o.chunkSizes.map(fmtSize).join(',')
  if (skipped.length) meta.skipped = skipped.join('; ')
  let md = report(o, samples, names, errors, meta)
  if (o.workloads.has('replication') && !interrupted) {
    // Two processes over loopback: a raw Hyperswarm stream between them, then
    // disktro replicating the same amount of chunks between them (goal >= 0.7).
    log(`replication: ${o.sizeMiB} MiB between two processes`)
    try {
      const r = await replicationBench(o.sizeMiB)
      md += `\n\n| replication over loopback (${o.sizeMiB} MiB) | MB/s |\n|---|---:|\n| raw Hyperswarm stream, same two processes | ${r.rawMBs.toFixed(1)} |\n| raw stream with disktro's socket buffers | ${r.rawWidenedMBs.toFixed(1)} |\n| disktro chunk replication (verified, flushed, acknowledged) | ${r.replMBs.toFixed(1)} |\n| ratio to the raw stream (goal >= 0.7) | ${r.ratio.toFixed(2)} ${r.ratio >= 0.7 ? 'met' : 'missed'} |\n| ratio to the raw stream with the same socket buffers | ${r.ratioWidened.toFixed(2)} |`
    } catch (e) {
      errors.set('replication', (e as Error).message)
      md += `\n\nreplication FAILED: ${(e as Error).message}`
    }
  }
  if (profileDir) {
    // one profile per daemon process, in start order: the first mount of a
    // volume does the writes, each later mount one cold walk (see workloads.ts)
    const files = await profileFiles([profileDir])
    md += `\n\nCPU profiles of the disktro daemon (main thread; ${files.length} file(s) in ${profileDir}):`
    for (const [i, f] of files.entries()) {
      md += `\n\n${basename(f)} (daemon ${i + 1} of ${files.length}):\n\n` + formatSummary(await summarise([f], 15))
    }
  }
  const stamp = started.toISOString().replace(/[:.]/g, '-').slice(0, 19)
  await writeFile(join(o.outDir, `bench-${stamp}.md`), md + '\n')
  await writeFile(join(o.outDir, `bench-${stamp}.json`), JSON.stringify({ meta, options: { ...o, workloads: [...o.workloads] }, errors: Object.fromEntries(errors), samples: Object.fromEntries([...samples].map(([t, m]) => [t, Object.fromEntries(m)])) }, null, 2) + '\n')
  process.stdout.write(md + '\n')
  log(`results written to ${join(o.outDir, `bench-${stamp}.md`)}`)
  return errors.size ? 1 : 0
}

let code = 1
try {
  code = await main()
} catch (e) {
  log((e as Error).stack ?? String(e))
} finally {
  await cleanupAll()
}
process.exit(code)
