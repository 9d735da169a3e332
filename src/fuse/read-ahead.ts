import { stat, writeFile } from 'node:fs/promises'

const READ_AHEAD_KB = 4096

// The kernel keeps at most max_background asynchronous (read-ahead) requests
// in flight on a FUSE mount, 12 unless the daemon says otherwise, and once
// congestion_threshold of them (9) are out, fuse_readahead skips the rest of
// the window: the pages the kernel had just added to the page cache for them
// are taken out again, to be added and asked for once more later. With the
// 4 MiB window above (32 requests of 128 KiB) most of every window went that
// way, and adding and removing those pages was over a third of dd's CPU on
// a cold read. 64 lets a whole window through: a cold 1 GiB read took
// 1.03-1.16 s against 1.35-1.50 s (32 and 128: the same as 64).
const MAX_BACKGROUND = 64

// Mount options for the background-request limits (libfuse 2.9 passes them
// to the kernel at INIT). DISKTRO_FUSE_MAX_BACKGROUND=0 leaves the kernel's.
export function backgroundOptions (): string {
  const n = Number(process.env.DISKTRO_FUSE_MAX_BACKGROUND ?? MAX_BACKGROUND)
  if (!Number.isInteger(n) || n <= 0) return ''
  return `max_background=${n},congestion_threshold=${Math.max(1, Math.floor(n * 3 / 4))}`
}

// The kernel reads ahead only 128 KiB on a FUSE mount (its bdi default), so a
// sequential read reaches the daemon one 128 KiB request at a time. As root,
// raise the mount's read-ahead so it sends several requests at once (the
// FUSE threads deliver them concurrently): +20% on a cold 256 MiB `dd` here
// (320 -> 383-393 MB/s). Best effort: without permission nothing changes.
export async function raiseReadAhead (mountpoint: string): Promise<boolean> {
  try {
    const { dev } = await stat(mountpoint) // async: the mount answers this getattr itself
    const { major, minor } = deviceNumbers(dev)
    await writeFile(`/sys/class/bdi/${major}:${minor}/read_ahead_kb`, String(READ_AHEAD_KB))
    return true
  } catch {
    return false
  }
}

// A mount's st_dev as (major, minor): its bdi is /sys/class/bdi/MAJOR:MINOR,
// its FUSE connection /sys/fs/fuse/connections/MINOR.
export function deviceNumbers (dev: number): { major: number, minor: number } {
  return { major: (dev >> 8) & 0xfff, minor: (dev & 0xff) | ((dev >> 12) & 0xfff00) }
}
