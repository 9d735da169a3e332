// Memory per file (#26): opens a volume in-process (real LMDB, the shared
// namespace, no mount), writes N small files through the VFS, 1,000 per
// directory, and reports the JS heap after a full GC, with what each
// per-file structure holds (measured by dropping it and collecting again).
// Run: node --expose-gc dist/bench/memory.js [files] (default 100000).
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DisktroNode } from '../src/node.js'
import { DEFAULT_CONFIG } from '../src/config.js'

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with node --expose-gc')

function heapMiB (): number {
  for (let i = 0; i < 3; i++) gc!()
  return process.memoryUsage().heapUsed / 1048576
}

function rss (): string {
  const s = readFileSync('/proc/self/status', 'utf8')
  const f = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? 0) / 1024
  const m = process.memoryUsage()
  return `RSS ${f('VmRSS').toFixed(0)} MiB (anon ${f('RssAnon').toFixed(0)}, file ${f('RssFile').toFixed(0)}; V8 heap total ${(m.heapTotal / 1048576).toFixed(0)}, external ${(m.external / 1048576).toFixed(0)}, arrayBuffers ${(m.arrayBuffers / 1048576).toFixed(0)})`
}

async function main (): Promise<void> {
  const files = Number(process.argv[2] ?? 100_000)
  const dir = await mkdtemp(join(process.env.BENCH_DIR ?? tmpdir(), 'disktro-mem-'))
  const password = async (): Promise<string> => 'bench-password'
  const open = async (): Promise<DisktroNode> => await DisktroNode.open({ dataDir: dir, password, newPassword: password, config: { ...DEFAULT_CONFIG, compactEvery: 0 }, offline: true, log: () => {} })
  try {
    let node = await open()
    const h0 = heapMiB()
    console.log(`open: heap ${h0.toFixed(1)} MiB, ${rss()}`)
    const t0 = performance.now()
    for (let i = 0; i < files; i++) {
      if (i % 1000 === 0) node.vfs.mkdir(`/d${String(i / 1000).padStart(4, '0')}`, 0o755)
      const path = `/d${String(Math.floor(i / 1000)).padStart(4, '0')}/f${String(i).padStart(7, '0')}`
      const fh = node.vfs.create(path, 0o644)
      const buf = randomBytes(1024 + (i % 3073))
      await node.vfs.write(fh, buf, buf.length, 0)
      await node.vfs.release(fh)
      if (i % 10000 === 9999) console.log(`${i + 1} files, ${((performance.now() - t0) / 1000).toFixed(1)} s, heap ${heapMiB().toFixed(1)} MiB, ${rss()}`)
    }
    await node.vfs.flushAll()
    const shared = node.volume.full.shared!
    shared.reconcile()
    await new Promise(resolve => setTimeout(resolve, 500))
    const h1 = heapMiB()
    console.log(`written: heap ${h1.toFixed(1)} MiB (${((h1 - h0) * 1048576 / files).toFixed(0)} B/file), ${rss()}`)
    smaps()
    report(shared, files)
    await node.close()
    console.log(`closed: heap ${heapMiB().toFixed(1)} MiB`)
    node = await open()
    const h2 = heapMiB()
    console.log(`reopened: heap ${h2.toFixed(1)} MiB (${((h2 - h0) * 1048576 / files).toFixed(0)} B/file over a fresh open), ${rss()}`)
    report(node.volume.full.shared!, files)
    await node.close()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

// The largest resident mappings: what the RSS outside the JS heap is.
function smaps (): void {
  const rows: Array<{ name: string, kb: number }> = []
  let cur = ''
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (head) { cur = head[1] || '[anon]'; continue }
    const r = /^Rss:\s+(\d+) kB/.exec(line)
    if (r) rows.push({ name: cur, kb: Number(r[1]) })
  }
  const by = new Map<string, { kb: number, n: number, max: number }>()
  for (const r of rows) {
    const x = by.get(r.name) ?? { kb: 0, n: 0, max: 0 }
    x.kb += r.kb; x.n++; x.max = Math.max(x.max, r.kb)
    by.set(r.name, x)
  }
  for (const [name, x] of [...by].sort((a, b) => b[1].kb - a[1].kb).slice(0, 8)) console.log(`  rss ${(x.kb / 1024).toFixed(0).padStart(5)} MiB in ${x.n} mappings (largest ${(x.max / 1024).toFixed(0)} MiB): ${name}`)
}

// Drops one structure at a time (the daemon is not used afterwards) and
// counts what the collector frees.
function report (shared: any, files: number): void {
  const tree = shared.tree
  const steps: Array<[string, () => void]> = [
    ['MergeTree listings (derived views)', () => { tree.listings.clear(); tree.stale.clear() }],
    ['MergeTree attrView', () => tree.attrView.clear()],
    ['MergeTree seen (duplicate filter)', () => tree.seen.clear()],
    ['MergeTree children + versionNode', () => { tree.children.clear(); tree.versionNode.clear() }],
    ['MergeTree versions', () => tree.versions.clear()],
    ['MergeTree attrs', () => tree.attrs.clear()],
    ['MergeTree kinds + sets', () => { tree.kinds.clear(); tree.superseded.clear(); tree.dismissed.clear(); tree.removed.clear() }],
    ['MoveTree place', () => tree.moves.place.clear()],
    ['MoveTree undo log', () => { tree.moves.log = [] }],
    ['EntryMap', () => { shared.state.map.byEntry.clear(); shared.state.map.byIno.clear() }],
    ['OpLog heads/above', () => { shared.log.above.clear() }]
  ]
  let h = heapMiB()
  for (const [name, drop] of steps) {
    drop()
    const n = heapMiB()
    console.log(`  ${name.padEnd(38)} ${(h - n).toFixed(1).padStart(7)} MiB  ${((h - n) * 1048576 / files).toFixed(0).padStart(5)} B/file`)
    h = n
  }
  console.log(`  rest of the heap                       ${h.toFixed(1).padStart(7)} MiB`)
}

main().catch(e => { console.error(e); process.exit(1) })
