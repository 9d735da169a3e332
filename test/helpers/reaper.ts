// The last resort behind teardown. A test file that tap stops for taking too
// long (SIGTERM) never runs its teardowns, and the daemons it started would
// outlive it, still mounted. Every daemon and mountpoint a helper starts is
// registered here, and on any exit of the test process, signals included,
// the daemons still running are killed and their mounts lazily detached.
import { spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { onExit } from 'signal-exit'

const children = new Set<ChildProcess>()
const mountpoints = new Set<string>()
let armed = false

export function reapOnExit (child: ChildProcess, mountpoint?: string): void {
  if (!armed) {
    armed = true
    onExit(reap, { alwaysLast: true })
  }
  children.add(child)
  child.once('exit', () => children.delete(child))
  if (mountpoint !== undefined) mountpoints.add(mountpoint)
}

function reap (): void {
  for (const c of children) {
    try { c.kill('SIGKILL') } catch {}
  }
  if (mountpoints.size === 0) return
  let table = ''
  try { table = readFileSync('/proc/mounts', 'utf8') } catch { return }
  for (const m of mountpoints) {
    // /proc/mounts escapes spaces and the like as octal.
    const escaped = m.replace(/[ \t\n\\]/g, ch => '\\' + ch.charCodeAt(0).toString(8).padStart(3, '0'))
    if (!table.split('\n').some(line => line.split(' ')[1] === escaped)) continue
    for (const [cmd, ...args] of [['fusermount', '-uz', m], ['fusermount3', '-uz', m], ['umount', '-l', m]]) {
      if (spawnSync(cmd, args, { stdio: 'ignore', timeout: 5000 }).status === 0) break
    }
  }
}
