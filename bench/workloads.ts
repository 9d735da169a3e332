// The workloads `npm run bench` times on every target, and the order it runs
// them in. Each is a shell command in a child process; "cold" means after a
// remount and drop_caches, so neither the kernel's dentry/inode/page caches
// nor the daemon's own caches of a previous mount help; "warm" is the same
// command run again at once, which is what an everyday second `ls` sees.
import { join } from 'node:path'
import { sh, timed, q } from './proc.js'
import type { Target } from './targets.js'

export type Group = 'write' | 'read' | 'smallfiles' | 'meta' | 'tree' | 'git' | 'sqlite'
export const GROUPS: Group[] = ['write', 'read', 'smallfiles', 'meta', 'tree', 'git', 'sqlite']

export type WorkloadId =
  'write-random' | 'write-compressible' | 'untar' | 'read-random' | 'read-compressible' |
  'ls-lR' | 'ls-lR-warm' | 'find' | 'find-warm' | 'du' | 'du-warm' |
  'cp-a' | 'rm-rf' | 'git-clone' | 'git-status' | 'git-status-warm' | 'sqlite'

/** What a throughput figure counts: bytes of the sequential files, small files, git files, transactions. */
type Unit = 'size' | 'files' | 'git' | 'tx'

export const WORKLOADS: Record<WorkloadId, { label: string, group: Group, unit: Unit }> = {
  'write-random': { label: 'seq write, incompressible (dd bs=1M conv=fsync)', group: 'write', unit: 'size' },
  'write-compressible': { label: 'seq write, compressible (dd bs=1M conv=fsync)', group: 'write', unit: 'size' },
  untar: { label: 'tar x small files + sync', group: 'smallfiles', unit: 'files' },
  'read-random': { label: 'cold seq read, incompressible (after remount)', group: 'read', unit: 'size' },
  'read-compressible': { label: 'cold seq read, compressible (after remount)', group: 'read', unit: 'size' },
  'ls-lR': { label: 'cold ls -lR of the small files (after remount)', group: 'smallfiles', unit: 'files' },
  'ls-lR-warm': { label: 'warm ls -lR of the small files (again)', group: 'meta', unit: 'files' },
  find: { label: 'cold find of the small files (after remount)', group: 'meta', unit: 'files' },
  'find-warm': { label: 'warm find (again)', group: 'meta', unit: 'files' },
  du: { label: 'cold du -s of the small files (after remount)', group: 'meta', unit: 'files' },
  'du-warm': { label: 'warm du -s (again)', group: 'meta', unit: 'files' },
  'cp-a': { label: 'cp -a of the small-file tree into the target + sync', group: 'tree', unit: 'files' },
  'rm-rf': { label: 'rm -rf of that copy + sync (after remount)', group: 'tree', unit: 'files' },
  'git-clone': { label: 'git clone (local bare repo) into the target', group: 'git', unit: 'git' },
  'git-status': { label: 'cold git status in the clone (after remount)', group: 'git', unit: 'git' },
  'git-status-warm': { label: 'warm git status (again)', group: 'git', unit: 'git' },
  sqlite: { label: 'sqlite3: one INSERT per transaction, default journal', group: 'sqlite', unit: 'tx' }
}

// Goals from the issues: disktro speed / gocryptfs speed.
export const GOALS: Partial<Record<WorkloadId, number>> = {
  'write-random': 1.0,
  'write-compressible': 1.0,
  untar: 1.0,
  'read-random': 0.8,
  'ls-lR': 1.0,
  find: 1.0,
  du: 1.0,
  'cp-a': 1.0,
  'rm-rf': 1.0,
  'git-clone': 1.0,
  'git-status': 1.0,
  sqlite: 1.0
}

export interface WorkloadOptions {
  sizeMiB: number
  files: number
  transactions: number
  /** Files in the git checkout (counted when the repo is made). */
  gitFiles: number
  workloads: Set<string>
}

export interface Inputs { random?: string, compressible?: string, tar?: string, tree?: string, repo?: string, sql?: string }

export type Record_ = (w: WorkloadId | 'stored', v: number) => void

/** The throughput column: what a workload moved per second. */
export function throughput (w: WorkloadId, seconds: number, o: WorkloadOptions): string {
  switch (WORKLOADS[w].unit) {
    case 'size': return `${(o.sizeMiB / seconds).toFixed(0)} MiB/s`
    case 'files': return `${(o.files / seconds).toFixed(0)} files/s`
    case 'git': return `${(o.gitFiles / seconds).toFixed(0)} files/s`
    case 'tx': return `${(o.transactions / seconds).toFixed(0)} tx/s`
  }
}

const MiB = 1024 * 1024

export interface RunContext {
  o: WorkloadOptions
  inputs: Inputs
  canDrop: boolean
  record: Record_
  log: (s: string) => void
  checkInterrupted: () => void
}

async function dropCaches (canDrop: boolean): Promise<void> {
  await sh(canDrop ? 'sync && echo 3 > /proc/sys/vm/drop_caches' : 'sync')
}

/** Runs every selected workload on one target, creating it first. The caller destroys it. */
export async function runTarget (t: Target, c: RunContext): Promise<void> {
  const { o, inputs, canDrop, record, log, checkInterrupted } = c
  const want = (g: Group): boolean => o.workloads.has(g)
  const root = t.root
  const at = (p: string): string => q(join(root, p))
  const step = async (w: WorkloadId, cmd: string): Promise<{ stdout: string, stderr: string }> => {
    checkInterrupted()
    const { seconds, result } = await timed(cmd)
    record(w, seconds)
    log(`${t.name} ${w}: ${seconds.toFixed(2)} s, ${throughput(w, seconds, o)}`)
    return result
  }
  const dd = async (w: WorkloadId, cmd: string): Promise<void> => {
    const m = /^(\d+) bytes/m.exec((await step(w, cmd)).stderr)
    if (!m || Number(m[1]) !== o.sizeMiB * MiB) throw new Error(`${w} on ${t.name}: dd moved ${m?.[1] ?? '?'} bytes, expected ${o.sizeMiB * MiB}`)
  }
  const remount = async (): Promise<void> => {
    await t.unmount()
    await dropCaches(canDrop)
    checkInterrupted()
    await t.mount()
  }
  const count = async (dir: string, type: 'f' | 'd' = 'f'): Promise<number> =>
    Number((await sh(`find ${at(dir)} -type ${type} | wc -l`)).stdout.trim())

  await dropCaches(canDrop)
  checkInterrupted()
  log(`${t.name}: creating and mounting`)
  await t.create()

  // ---- first mount: everything that writes ----
  if (want('write')) {
    // The inputs come from the page cache, so the writes time the target alone.
    await sh(`cat ${q(inputs.random!)} ${q(inputs.compressible!)} > /dev/null`)
    await dd('write-random', `dd if=${q(inputs.random!)} of=${at('random.bin')} bs=1M conv=fsync`)
    await dd('write-compressible', `dd if=${q(inputs.compressible!)} of=${at('compressible.bin')} bs=1M conv=fsync`)
  }
  if (want('smallfiles') || want('meta')) {
    await sh(`cat ${q(inputs.tar!)} > /dev/null`)
    await step('untar', `mkdir ${at('small')} && tar xf ${q(inputs.tar!)} -C ${at('small')} && sync`)
  }
  if (want('tree')) {
    // a plain source tree read from the page cache: cp -a also sets modes and times
    await sh(`tar cf /dev/null ${q(inputs.tree!)}`)
    await step('cp-a', `cp -a ${q(inputs.tree!)} ${at('copy')} && sync`)
    const n = await count('copy')
    if (n !== o.files) throw new Error(`${t.name}: ${n} files after cp -a, expected ${o.files}`)
  }
  if (want('git')) {
    await sh(`tar cf /dev/null ${q(inputs.repo!)}`)
    await step('git-clone', `git clone -q --no-hardlinks ${q(inputs.repo!)} ${at('repo')}`)
  }
  if (want('sqlite')) {
    // sqlite3's default (rollback journal, synchronous=FULL): every commit
    // creates, fsyncs and deletes a journal and fsyncs the database
    await step('sqlite', `sqlite3 ${at('db.sqlite')} < ${q(inputs.sql!)}`)
    const rows = (await sh(`sqlite3 ${at('db.sqlite')} 'SELECT count(*) FROM t'`)).stdout.trim()
    if (Number(rows) !== o.transactions) throw new Error(`${t.name}: ${rows} rows after sqlite, expected ${o.transactions}`)
  }
  if (!want('read') && !want('smallfiles') && !want('meta') && !want('tree') && !want('git')) return
  await t.unmount()
  // allocated size of what the target stored, after a clean unmount
  const du = await sh(`du -sk ${q(t.backing)}`)
  record('stored', Number(du.stdout.split(/\s/)[0]) * 1024)
  await dropCaches(canDrop)
  checkInterrupted()
  await t.mount()

  // ---- after a remount: reads and metadata walks, each cold, then warm ----
  let fresh = true // mounted and dropped, nothing walked yet
  const cold = async (): Promise<void> => {
    if (!fresh) await remount()
    fresh = false
  }
  if (want('read')) {
    await dd('read-random', `dd if=${at('random.bin')} of=/dev/null bs=1M`)
    await dropCaches(canDrop)
    await dd('read-compressible', `dd if=${at('compressible.bin')} of=/dev/null bs=1M`)
    fresh = false
  }
  if (want('smallfiles') || want('meta')) {
    await cold()
    await step('ls-lR', `ls -lR ${at('small')} > /dev/null`)
    if (want('meta')) {
      await step('ls-lR-warm', `ls -lR ${at('small')} > /dev/null`)
      await cold()
      await step('find', `find ${at('small')} > /dev/null`)
      await step('find-warm', `find ${at('small')} > /dev/null`)
      await cold()
      await step('du', `du -s ${at('small')} > /dev/null`)
      await step('du-warm', `du -s ${at('small')} > /dev/null`)
    }
    const n = await count('small')
    if (n !== o.files) throw new Error(`${t.name}: found ${n} files after tar x, expected ${o.files}`)
  }
  if (want('git')) {
    await cold()
    // a clone's files were just written: status must find nothing changed
    const out = (await step('git-status', `git -C ${at('repo')} status --porcelain`)).stdout
    if (out.trim()) throw new Error(`${t.name}: git status after clone reports changes: ${out.trim().split('\n').slice(0, 3).join(' | ')}`)
    await step('git-status-warm', `git -C ${at('repo')} status --porcelain`)
  }
  if (want('tree')) {
    await cold()
    await step('rm-rf', `rm -rf ${at('copy')} && sync`)
  }
}
