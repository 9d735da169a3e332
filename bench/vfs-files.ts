// The event loop's cost of a small file, without a kernel: what `tar x`
// sends to JavaScript for each file once the patched addon has answered
// the rest (scripts/build-fuse.cjs): a create it answered already, one
// write, utimens, chown and chmod it answered already, then flush and
// release. The same calls node.ts makes, on a real volume (LMDB files, the
// crypto workers, the swarm on an unreachable loopback bootstrap), in one
// process, one file after the other.
//
// A mount's tar x on these shared 2-vCPU machines varies by 30% or more
// from one run to the next, more than most changes to this path are worth;
// this varies less, and the fastest of a few rounds is a fair figure for
// the work itself. Not a test: `node dist/bench/vfs-files.js [--files N]
// [--rounds N] [--work-dir DIR]`.
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import { DisktroNode } from '../src/node.js'
import { DEFAULT_CONFIG } from '../src/config.js'
import { ANSWERED_FH_BASE } from '../src/vfs/vfs.js'

const PER_DIR = 100

const argv = yargs(hideBin(process.argv))
  .option('files', { type: 'number', default: 10_000 })
  .option('rounds', { type: 'number', default: 5 })
  .option('work-dir', { type: 'string', default: '/tmp/disktro-bench/vfs-files' })
  .strict()
  .parseSync()

interface Round { ms: number, cpuMs: number }

async function round (n: number, dir: string, data: Buffer[]): Promise<Round> {
  await rm(dir, { recursive: true, force: true })
  await mkdir(dir, { recursive: true })
  const node = await DisktroNode.open({
    dataDir: dir,
    password: async () => 'bench-password',
    newPassword: async () => 'bench-password',
    config: { ...DEFAULT_CONFIG, bootstrap: [{ host: '127.0.0.1', port: 1 }] },
    log: () => {}
  })
  try {
    const vfs = node.vfs
    const ns = node.volume.access?.ns
    if (!ns) throw new Error('the volume has no namespace')
    const uid = process.getuid?.() ?? 0
    const gid = process.getgid?.() ?? 0
    vfs.mkdir('/small', 0o755)
    const cpu0 = process.cpuUsage()
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) {
      if (i % PER_DIR === 0) vfs.mkdir(`/small/d${i / PER_DIR}`, 0o755)
      const path = `/small/d${Math.floor(i / PER_DIR)}/f${i}`
      const buf = data[i]
      const fh = ANSWERED_FH_BASE + i + 1
      const time = Date.now()
      vfs.createAnswered(path, 0o600, fh, ns.allocIno(), time)
      if (vfs.writeNow(fh, buf, buf.length, 0, time) === null) await vfs.write(fh, buf, buf.length, 0, time)
      vfs.utimens(path, undefined, time - 86_400_000, time)
      vfs.chown(path, uid, gid, time)
      vfs.chmod(path, 0o644, time)
      await vfs.flush(fh)
      await vfs.release(fh)
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6
    const cpu = process.cpuUsage(cpu0)
    const last = Math.min(n, PER_DIR) - 1 // a file of the first directory
    if (vfs.getattr(`/small/d0/f${last}`).size !== data[last].length) throw new Error('a file did not keep its size')
    return { ms, cpuMs: (cpu.user + cpu.system) / 1000 }
  } finally {
    await node.close()
    await rm(dir, { recursive: true, force: true })
  }
}

async function main (): Promise<void> {
  const n = argv.files
  // 1-8 KiB of random bytes each, like the benchmark's tarball (bench/inputs.ts)
  const data = Array.from({ length: n }, (_, i) => randomBytes(1024 + ((i * 2654435761) >>> 0) % (7 * 1024 + 1)))
  const rounds: Round[] = []
  for (let r = 0; r < argv.rounds; r++) {
    const x = await round(n, join(argv['work-dir'], `r${r}`), data)
    rounds.push(x)
    console.log(`round ${r + 1}: ${x.ms.toFixed(0)} ms (${(x.ms * 1000 / n).toFixed(1)} us a file), process CPU ${x.cpuMs.toFixed(0)} ms`)
  }
  const ms = rounds.map(x => x.ms).sort((a, b) => a - b)
  console.log(`${n} files: fastest ${(ms[0] * 1000 / n).toFixed(1)} us a file, median ${(ms[Math.floor(ms.length / 2)] * 1000 / n).toFixed(1)} us a file`)
}

main().then(() => process.exit(0), e => { console.error(e); process.exit(1) })
