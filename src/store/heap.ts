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
