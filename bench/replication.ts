// Replication throughput over loopback: disktro pushing chunks between two
// processes, against a raw Hyperswarm stream between the same two processes,
// measured in the same run. `node dist/bench/replication.js --size 1024`.
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { run } from './proc.js'
import { daemonNodeFlags } from './node-flags.js'

const here = fileURLToPath(new URL('.', import.meta.url))
const BIN = join(here, '..', '..', 'bin', 'disktro')
const PASSWORD = 'bench-password'

interface Line { raw?: { bytes: number, seconds: number, widened: boolean }, replication?: { bytes: number, seconds: number }, cpu?: { phase: string, role: string, seconds: number, threads?: Record<string, number> }, ready?: boolean }

// cpu: CPU seconds of both processes together per phase (the raw phase, and
// the replication phase including opening and closing the nodes).
// Two yardsticks, both raw Hyperswarm streams between the same two processes:
// `raw` as Hyperswarm ships it (the reference), `rawWidened` with the
// socket buffers disktro gives its own connections (net/socket-buffers.ts),
// which isolates the cost of replication itself from that transport tuning.
export interface ReplicationResult { rawMBs: number, rawWidenedMBs: number, replMBs: number, ratio: number, ratioWidened: number, cpu: { raw: number, rawWidened: number, replication: number } }

export async function replicationBench (sizeMiB: number): Promise<ReplicationResult> {
  const dir = await mkdtemp(join(tmpdir(), 'disktro-repl-bench-'))
  const kids: Array<ReturnType<typeof spawn>> = []
  try {
    const env = { ...process.env, DISKTRO_PASSWORD: PASSWORD }
    const boot = spawn(process.execPath, [BIN, 'bootstrap', '--host', '127.0.0.1', '--port', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    kids.push(boot)
    const bootstrap = await new Promise<string>((resolve, reject) => {
      let out = ''
      boot.stdout!.on('data', (d: Buffer) => { out += d; const m = /listening on (\S+)/.exec(out); if (m) resolve(m[1]) })
      boot.on('exit', () => reject(new Error('bootstrap exited')))
    })
    const a = join(dir, 'a'); const b = join(dir, 'b')
    const init = await run(process.execPath, [BIN, 'init', '--data-dir', a], { env })
    if (init.code !== 0) throw new Error(init.stderr)
    const inv = await run(process.execPath, [BIN, 'invite', '--data-dir', a], { env })
    const join1 = await run(process.execPath, [BIN, 'join', inv.stdout.trim(), '--data-dir', b], { env })
    if (join1.code !== 0) throw new Error(join1.stderr)
    const lines: Line[] = []
    // DISKTRO_BENCH_PERF=file: perf record of both processes (every thread),
    // the raw stream into file.raw and the replication phase into file.
    const perfOut = process.env.DISKTRO_BENCH_PERF
    let perf: ReturnType<typeof spawn> | null = null
    let perfPhase = ''
    const record = (out: string): ReturnType<typeof spawn> => spawn('perf', ['record', '-F', '999', '-g', '-o', out, '-p', kids.slice(1).map(k => k.pid).join(',')], { stdio: 'ignore' })
    const stopPerf = async (): Promise<void> => {
      const p = perf
      perf = null
      if (p === null) return
      p.kill('SIGINT')
      await new Promise(resolve => p.on('exit', resolve))
    }
    const onLine = (): void => {
      if (!perfOut) return
      if (perfPhase === '' && kids.length === 3) { perfPhase = 'raw'; perf = record(perfOut + '.raw') }
      if (perfPhase === 'raw' && lines.filter(l => l.cpu?.phase === 'raw-widened').length === 2) {
        perfPhase = 'replication'
        void stopPerf().then(() => { perf = record(perfOut) })
      }
    }
    const start = (dataDir: string, role: string): ReturnType<typeof spawn> => {
      const child = spawn(process.execPath, [...daemonNodeFlags(BIN), join(here, 'replication-node.js'), '--data-dir', dataDir, '--bootstrap', bootstrap, '--role', role, '--size', String(sizeMiB), '--password', PASSWORD], { stdio: ['pipe', 'pipe', 'inherit'] })
      kids.push(child)
      let buf = ''
      child.stdout!.on('data', (d: Buffer) => {
        buf += d
        let nl
        while ((nl = buf.indexOf('\n')) >= 0) { lines.push(JSON.parse(buf.slice(0, nl))); buf = buf.slice(nl + 1); onLine() }
      })
      return child
    }
    const sender = start(a, 'sender')
    while (!lines.some(l => l.ready)) await new Promise(resolve => setTimeout(resolve, 100))
    const receiver = start(b, 'receiver')
    const exited = new Promise(resolve => sender.on('exit', resolve))
    // The raw streams meet through the DHT; once in a while the two never
    // found each other (stop 15) and the benchmark waited forever.
    const limitMs = Math.max(180_000, sizeMiB * 200)
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<never>((resolve, reject) => {
      timer = setTimeout(() => {
        const done = [...new Set(lines.flatMap(l => l.cpu ? [l.cpu.phase] : []))].join(', ') || 'none'
        reject(new Error(`the two processes did not finish within ${limitMs / 1000} s (phases done: ${done})`))
      }, limitMs)
    })
    try {
      await Promise.race([exited, timedOut])
    } finally {
      clearTimeout(timer)
    }
    await stopPerf()
    receiver.stdin!.end('done\n')
    await new Promise(resolve => receiver.on('exit', resolve))
    const raw = lines.find(l => l.raw && !l.raw.widened)?.raw
    const rawWidened = lines.find(l => l.raw?.widened)?.raw
    const repl = lines.find(l => l.replication)?.replication
    if (!raw || !rawWidened || !repl) throw new Error('replication bench produced no result')
    const rawMBs = raw.bytes / 1e6 / raw.seconds
    const rawWidenedMBs = rawWidened.bytes / 1e6 / rawWidened.seconds
    const replMBs = repl.bytes / 1e6 / repl.seconds
    const cpu = (phase: string): number => lines.reduce((n, l) => n + (l.cpu?.phase === phase ? l.cpu.seconds : 0), 0)
    if (process.env.DISKTRO_BENCH_THREADS) for (const l of lines) if (l.cpu) process.stderr.write(`${l.cpu.phase} ${l.cpu.role}: ${JSON.stringify(l.cpu.threads)}\n`)
    return { rawMBs, rawWidenedMBs, replMBs, ratio: replMBs / rawMBs, ratioWidened: replMBs / rawWidenedMBs, cpu: { raw: cpu('raw'), rawWidened: cpu('raw-widened'), replication: cpu('replication') } }
  } finally {
    for (const k of kids) if (k.exitCode === null) k.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { size: { type: 'string', default: '1024' } } })
  const r = await replicationBench(Number(values.size))
  process.stdout.write(`replication over loopback, ${values.size} MiB: disktro replication ${r.replMBs.toFixed(1)} MB/s; raw hyperswarm stream ${r.rawMBs.toFixed(1)} MB/s, ratio ${r.ratio.toFixed(2)} (target >= 0.7); raw stream with disktro's socket buffers ${r.rawWidenedMBs.toFixed(1)} MB/s, ratio ${r.ratioWidened.toFixed(2)}; CPU s of both processes: raw ${r.cpu.raw.toFixed(1)}, raw widened ${r.cpu.rawWidened.toFixed(1)}, replication ${r.cpu.replication.toFixed(1)}\n`)
}
