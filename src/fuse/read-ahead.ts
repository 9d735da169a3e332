import { stat, writeFile } from 'node:fs/promises'

const READ_AHEAD_KB = 4096

// The kernel reads ahead only 128 KiB on a FUSE mount (its bdi default), so a
// sequential read reaches the daemon one 128 KiB request at a time. As root,
// raise the mount's read-ahead so it sends several requests at once (the
// FUSE threads deliver them concurrently): +20% on a cold 256 MiB `dd` here
// (320 -> 383-393 MB/s). Best effort: without permission nothing changes.
export async function raiseReadAhead (mountpoint: string): Promise<boolean> {
  try {
    const { dev } = await stat(mountpoint) // async: the mount answers this getattr itself
    const major = (dev >> 8) & 0xfff
    const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00)
    await writeFile(`/sys/class/bdi/${major}:${minor}/read_ahead_kb`, String(READ_AHEAD_KB))
    return true
  } catch {
    return false
  }
}
