// Unmount a FUSE mountpoint, including a stale one whose daemon died (ENOTCONN).
// Async only: this may run inside the process that serves the mount, where any
// synchronous filesystem call or child process touching the mount deadlocks.

import { execFile } from 'node:child_process'
import { childEnv } from '../child-env.js'
import { readFile, realpath } from 'node:fs/promises'
import { createRequire } from 'node:module'
import path from 'node:path'

const require = createRequire(import.meta.url)
const CMD_TIMEOUT_MS = 15_000

/** /proc/mounts escapes space, tab, newline and backslash as \ooo octal. */
function unescapeMountField (s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)))
}

interface MountEntry { mountpoint: string, fstype: string }

async function readMounts (): Promise<MountEntry[]> {
  let text: string
  try {
    text = await readFile('/proc/self/mounts', 'utf8')
  } catch {
    text = await readFile('/proc/mounts', 'utf8')
  }
  const out: MountEntry[] = []
  for (const line of text.split('\n')) {
    const [, mp, fstype] = line.split(' ')
    if (mp !== undefined) out.push({ mountpoint: unescapeMountField(mp), fstype: fstype ?? '' })
  }
  return out
}

/** Absolute spellings the kernel may list the mountpoint under. */
async function candidatePaths (mountpoint: string): Promise<string[]> {
  const abs = path.resolve(mountpoint)
  const names = new Set([abs])
  // Never realpath the mountpoint itself (stale mount: ENOTCONN, live mount in
  // our own process: deadlock-prone); resolve its parent instead.
  const base = path.basename(abs)
  if (base !== '') {
    try {
      names.add(path.join(await realpath(path.dirname(abs)), base))
    } catch {}
  }
  return [...names]
}

async function findMounted (names: string[]): Promise<MountEntry | undefined> {
  const mounted = await readMounts()
  // last match is the topmost mount
  for (let i = mounted.length - 1; i >= 0; i--) {
    const m = mounted[i]
    if (m !== undefined && names.includes(m.mountpoint)) return m
  }
  return undefined
}

function isFuseType (fstype: string): boolean {
  return fstype === 'fuse' || fstype === 'fuseblk' || fstype.startsWith('fuse.')
}

/** True if mountpoint appears in the mount table (/proc/mounts). */
export async function isMounted (mountpoint: string): Promise<boolean> {
  return (await findMounted(await candidatePaths(mountpoint))) !== undefined
}

function bundledFusermount (): string | undefined {
  try {
    const pkg = require.resolve('fuse-shared-library-linux/package.json')
    return path.join(path.dirname(pkg), 'libfuse', 'bin', 'fusermount')
  } catch {
    return undefined
  }
}

interface RunResult { ok: boolean, missing: boolean, msg: string }

function run (cmd: string, args: string[]): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: CMD_TIMEOUT_MS, windowsHide: true, env: childEnv() }, (err, _stdout, stderr) => {
      if (!err) return resolve({ ok: true, missing: false, msg: '' })
      const code = (err as NodeJS.ErrnoException).code
      const detail = String(stderr).trim().split('\n')[0] || err.message.split('\n')[0] || String(code)
      const name = path.basename(cmd)
      const msg = detail.startsWith(`${name}:`) ? detail : `${name}: ${detail}`
      resolve({ ok: false, missing: code === 'ENOENT' || code === 'EACCES', msg })
    })
  })
}

/**
 * Unmount a FUSE filesystem. Tries fusermount3, fusermount (PATH), the
 * fusermount bundled with fuse-shared-library-linux, then umount (root), and
 * succeeds as soon as the mountpoint is gone from /proc/mounts. Resolves at
 * once if it is not mounted; refuses (throws) if the mount there is not FUSE.
 * `lazy` detaches even if busy (-z / -l).
 */
export async function unmountPath (mountpoint: string, opts: { lazy?: boolean } = {}): Promise<void> {
  const names = await candidatePaths(mountpoint)
  let target = await findMounted(names)
  if (target === undefined) return
  // never let the umount fallback take down something that is not ours
  if (!isFuseType(target.fstype)) {
    throw new Error(`refusing to unmount ${mountpoint}: not a FUSE mount (${target.fstype})`)
  }

  const u = opts.lazy ? '-uz' : '-u'
  const attempts: Array<[string, string[]]> = [
    ['fusermount3', [u]],
    ['fusermount', [u]]
  ]
  const bundled = bundledFusermount()
  if (bundled) attempts.push([bundled, [u]])
  attempts.push(['umount', opts.lazy ? ['-l'] : []])

  const errors: string[] = []
  for (const [cmd, flags] of attempts) {
    // a command that succeeds but leaves the path mounted (stacked mounts) is retried
    for (let i = 0; i < 8; i++) {
      const r = await run(cmd, [...flags, target.mountpoint])
      const still = await findMounted(names)
      if (still === undefined) return
      if (!isFuseType(still.fstype)) {
        throw new Error(`failed to unmount ${mountpoint}: a non-FUSE mount (${still.fstype}) is now on top`)
      }
      target = still
      if (!r.ok) {
        if (!r.missing) errors.push(r.msg)
        break
      }
    }
  }
  const why = errors.length ? errors[errors.length - 1] : 'no unmount tool available'
  throw new Error(`failed to unmount ${mountpoint}: ${why}`)
}
