// The floor under any fuse-native filesystem on this machine: a do-nothing
// in-memory filesystem mounted with disktro's own FUSE options, every
// operation answered at once, timed on the benchmark's workloads.
//   node dist/bench/fuse-floor.js [--files 2000] [--size 256] [--attr-timeout 0] [--spin-us 100]
// It shows what per-operation cost remains before disktro does any work
// (docs/benchmarks.md history: `git log -p docs/benchmarks.md`, "Where the remaining time goes").
import { spawn } from 'node:child_process'
import { mkdtemp, rm, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { loadFuse, setAnswerSpin, type FuseStat } from '../src/fuse/native.js'
import { HotLoop, EVENT_LOOP_SPIN_FACTOR } from '../src/fuse/hot-loop.js'
import { run } from './proc.js'
import { randomFile, smallFilesTar } from './inputs.js'

interface Node { mode: number, nlink: number, size: number }

function serve (mountpoint: string, attrTimeout: string, spinUs: number): void {
  const Fuse = loadFuse()
  // The same hand-over spin as the daemon's (node.ts), around every op but reads and writes.
  const hot = new HotLoop(spinUs * EVENT_LOOP_SPIN_FACTOR)
  setAnswerSpin(spinUs)
  const t = (): void => hot.touch()
  const now = new Date()
  const nodes = new Map<string, Node>([['/', { mode: 0o40755, nlink: 2, size: 0 }]])
  const st = (n: Node): FuseStat => ({ mode: n.mode, size: n.size, uid: 0, gid: 0, nlink: n.nlink, mtime: now, atime: now, ctime: now })
  const ok = (cb: (code: number) => void): void => { t(); cb(0) }
  const fuse = new Fuse(mountpoint, {
    getattr (p, cb) { t(); const n = nodes.get(p); if (n) cb(0, st(n)); else cb(Fuse.ENOENT) },
    readdir (_p, cb) { t(); cb(0, []) },
    open (_p, _f, cb) { t(); cb(0, 1) },
    read (p, _fd, _b, l, pos, cb) { const n = nodes.get(p); cb(n ? Math.max(0, Math.min(l, n.size - pos)) : 0) },
    write (p, _fd, _b, l, pos, cb) { const n = nodes.get(p); if (n) n.size = Math.max(n.size, pos + l); cb(l) },
    create (p, m, cb) { t(); nodes.set(p, { mode: m, nlink: 1, size: 0 }); cb(0, 1) },
    mkdir (p, m, cb) { t(); nodes.set(p, { mode: 0o40000 | m, nlink: 2, size: 0 }); cb(0) },
    flush: (_p, _fd, cb) => ok(cb),
    fsync: (_p, _d, _fd, cb) => ok(cb),
    release: (_p, _fd, cb) => ok(cb),
    chmod: (_p, _m, cb) => ok(cb),
    chown: (_p, _u, _g, cb) => ok(cb),
    utimens: (_p, _a, _m, cb) => ok(cb),
    truncate: (_p, _s, cb) => ok(cb)
  }, { fsname: `floor,big_writes,use_ino,attr_timeout=${attrTimeout}`, defaultPermissions: true })
  fuse.mount(err => {
    if (err) { process.stderr.write(`mount failed: ${err.message}\n`); process.exit(1) }
    process.stdout.write('mounted\n')
  })
  process.on('SIGTERM', () => fuse.unmount(() => process.exit(0)))
}

async function measure (files: number, sizeMiB: number, attrTimeout: string, spinUs: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'disktro-floor-'))
  const mnt = join(dir, 'mnt')
  await mkdir(mnt)
  const inputs = join(tmpdir(), 'disktro-bench', 'inputs')
  await mkdir(inputs, { recursive: true })
  const log = (s: string): void => { process.stderr.write(s + '\n') }
  const tar = await smallFilesTar(inputs, files, log)
  const data = await randomFile(inputs, sizeMiB, log)
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve', mnt, '--attr-timeout', attrTimeout, '--spin-us', spinUs], { stdio: ['ignore', 'pipe', 'inherit'] })
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => { if (String(d).includes('mounted')) resolve() })
      child.on('exit', code => reject(new Error(`floor filesystem exited (${code})`)))
    })
    const timed = async (cmd: string, args: string[]): Promise<number> => {
      const t0 = process.hrtime.bigint()
      const r = await run(cmd, args, { timeoutMs: 600_000 })
      if (r.code !== 0) throw new Error(`${cmd} failed: ${r.stderr}`)
      return Number(process.hrtime.bigint() - t0) / 1e9
    }
    await mkdir(join(mnt, 'small'))
    const untar = await timed('tar', ['xf', tar, '-C', join(mnt, 'small')])
    const write = await timed('dd', [`if=${data}`, `of=${join(mnt, 'big')}`, 'bs=1M', 'conv=fsync', 'status=none'])
    const read = await timed('dd', [`if=${join(mnt, 'big')}`, 'of=/dev/null', 'bs=1M', 'status=none'])
    const mibs = (s: number): string => (sizeMiB / s).toFixed(0)
    process.stdout.write(`fuse-native floor (attr_timeout=${attrTimeout}, spin ${spinUs} us): tar x ${files} files ${untar.toFixed(2)} s (${(files / untar).toFixed(0)} files/s); ` +
      `dd write ${sizeMiB} MiB ${mibs(write)} MiB/s; dd read ${mibs(read)} MiB/s\n`)
  } finally {
    child.kill('SIGTERM')
    await new Promise(resolve => setTimeout(resolve, 500))
    await run('fusermount', ['-uz', mnt]).catch(() => {})
    if (child.exitCode === null) child.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { serve: { type: 'string' }, files: { type: 'string', default: '2000' }, size: { type: 'string', default: '256' }, 'attr-timeout': { type: 'string', default: '0' }, 'spin-us': { type: 'string', default: '100' } } })
  if (values.serve) serve(values.serve, values['attr-timeout']!, Number(values['spin-us']))
  else await measure(Number(values.files), Number(values.size), values['attr-timeout']!, values['spin-us']!)
}
