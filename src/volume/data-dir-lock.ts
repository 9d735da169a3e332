import { open, readFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { fail } from '../errors.js'

const LOCK_FILE = 'daemon.pid'

// One daemon per data dir. The lock is a pid file; a pid that no longer runs
// (a daemon killed with -9) leaves a stale lock that the next start takes over.
export class DataDirLock {
  private held = false
  private constructor (private readonly path: string) {}

  static async acquire (dataDir: string): Promise<DataDirLock> {
    const lock = new DataDirLock(join(dataDir, LOCK_FILE))
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await open(lock.path, 'wx', 0o600)
        await fh.writeFile(String(process.pid))
        await fh.close()
        lock.held = true
        return lock
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
        const pid = await runningPid(lock.path)
        if (pid !== null) throw fail('DATA_DIR_LOCKED', `data dir ${dataDir} is in use by another disktro daemon (pid ${pid})`)
        await unlink(lock.path).catch(() => {})
      }
    }
    throw fail('DATA_DIR_LOCKED', `cannot lock data dir ${dataDir}`)
  }

  async release (): Promise<void> {
    if (!this.held) return
    this.held = false
    await unlink(this.path).catch(() => {})
  }
}

export async function runningPid (path: string): Promise<number | null> {
  const text = await readFile(path, 'utf8').catch(() => '')
  const pid = Number(text.trim())
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return null
  try {
    process.kill(pid, 0)
    return pid
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? pid : null
  }
}

export function lockPath (dataDir: string): string {
  return join(dataDir, LOCK_FILE)
}
