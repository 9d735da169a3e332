import { readFileSync, realpathSync } from 'node:fs'
import { ioAddon } from './io-addon.js'

// glibc's malloc hands a freed block at the top of an arena back to the
// kernel once more than 128 KiB are free there, and serves blocks of 128 KiB
// and more (its threshold rises only as such blocks are freed) from a fresh
// mmap each. LMDB allocates every 1 MiB chunk record's overflow pages with
// malloc on lmdb-js's write thread and frees them at the commit: with the
// defaults each record's pages came from memory the kernel had to fault in
// again, page by page (a 1 GiB write: 115,000-240,000 faults, 90% in LMDB's
// copy of the record; each fault costs a host exit on this project's VMs).
// Every arena keeps TOP_PAD bytes instead, and blocks under MMAP_THRESHOLD
// come from the arenas. Measured, 1 GiB incompressible dd conv=fsync into a
// fresh mount: 4.0-7.7 s and 115,000-240,000 faults with glibc's defaults,
// 2.1-2.7 s and 19,000-23,000 faults with a pad of 8 to 64 MiB; the daemon's
// resident size after it: 304-319 MB with the defaults, 204-242 MB padded.
const TOP_PAD = 64 * 1024 * 1024
const MMAP_THRESHOLD = 32 * 1024 * 1024 // glibc's largest

let applied: boolean | undefined

// Sets malloc's pad and threshold once per process; false when the addon is
// not built or the C library refused (the store works the same, slower).
// DISKTRO_MALLOC=off leaves glibc's defaults (to measure against);
// DISKTRO_MALLOC=<pad MiB>,<threshold MiB> sets others.
export function keepHeap (env: NodeJS.ProcessEnv = process.env): boolean {
  if (applied !== undefined) return applied
  const keep = ioAddon()?.keepHeap
  const setting = env.DISKTRO_MALLOC
  applied = false
  if (typeof keep !== 'function' || setting === 'off') return applied
  const [pad, threshold] = setting === undefined ? [TOP_PAD, MMAP_THRESHOLD] : setting.split(',').map(mib => Math.round(Number(mib) * 1024 * 1024))
  if (!Number.isSafeInteger(pad) || !Number.isSafeInteger(threshold) || pad < 0 || threshold < 0) return applied
  applied = keep(pad, threshold)
  return applied
}

// Transparent huge pages for long-lived memory that fills as it is used (the
// crypto workers' block pool, 64 MiB): the kernel here gives them only on
// request (transparent_hugepage=madvise), and a 2 MiB page costs one fault
// where 4 KiB pages cost 512. The bytes advised; 0 without the addon, where
// the kernel refused, or with DISKTRO_HUGE_PAGES=off (to measure against).
export function hugePages (view: Uint8Array, env: NodeJS.ProcessEnv = process.env): number {
  const advise = ioAddon()?.hugePages
  if (typeof advise !== 'function' || env.DISKTRO_HUGE_PAGES === 'off') return 0
  return advise(view)
}

// MADV_HUGEPAGE on this process's mappings of `file`: LMDB's read-only map of
// data.mdb, shared by every thread. The kernel then reads the file into the
// page cache in 2 MiB folios (ext4 has them) and maps each with one fault,
// where 4 KiB pages took a fault per 64 KiB; lmdb-js's prefetch threads,
// which fault the records of a sequential read in ahead of the crypto
// worker, then cost next to nothing. Cold 1 GiB read after a remount,
// alternating, 3 each: 1.17-1.33 s against 1.27-1.50 s; bench (2 rounds
// each): 0.88x gocryptfs against 0.71x. LMDB writes the file with pwrite,
// not through the map, and ext4 writes back only a folio's dirty blocks.
// A volume's store maps maxStoreBytes (1 TiB by default) when it opens, so
// one advice then holds: lmdb-js maps the file anew only when that fills.
// The bytes advised; 0 without the addon, with no such mapping, or with
// DISKTRO_HUGE_PAGES=off.
export function hugeMappingsOf (file: string, env: NodeJS.ProcessEnv = process.env): number {
  const advise = ioAddon()?.hugeMapping
  if (typeof advise !== 'function' || env.DISKTRO_HUGE_PAGES === 'off') return 0
  let maps: string
  let path: string
  try {
    maps = readFileSync('/proc/self/maps', 'utf8')
    path = realpathSync(file) // as the kernel names it
  } catch {
    return 0
  }
  let advised = 0
  for (const line of maps.split('\n')) {
    if (!line.endsWith(' ' + path)) continue
    const [from, to] = line.slice(0, line.indexOf(' ')).split('-').map(h => parseInt(h, 16))
    if (from > 0 && to > from) advised += advise(from, to - from)
  }
  return advised
}
