// Keeps the event loop and the FUSE threads on CPUs of their own while the
// mount is busy with metadata: the main thread is bound to the last CPU the
// process may use, the FUSE threads (each places itself on its next
// operation, scripts/build-fuse.cjs (j)) and the other threads there were at
// mount (V8's and libuv's helpers, lmdb-js's writer) to the others. The
// event loop does nearly all of a small file's work; left to the scheduler
// it kept moving between CPUs and sharing one with a FUSE thread polling for
// its answer, with cold caches each time. tar x of 2,000 files, alternating
// runs: 1.47-1.68 s unplaced, 1.28-1.41 s placed.
//
// Data is another matter: a 1 GiB write kept placed took 2.99-3.06 s
// instead of 2.36-2.54 s, with the crypto workers and the event loop short
// of a CPU. So while the crypto workers are being given blocks, every thread
// may run anywhere again, and placement comes back once they have had
// nothing for a tick (TICK_MS).
//
// A thread started while placed inherits the event loop's CPU from its
// creator (a crypto worker starts on its first block): each tick frees any
// new thread found bound to that CPU alone. Nothing happens with fewer than
// two CPUs; DISKTRO_CPU_PLACEMENT=0 turns it off.
import { readdir } from 'node:fs/promises'
import type { CpuBinding } from './native.js'

const TICK_MS = 250

export interface Placement {
  loop: number // the event loop's CPU
  fuse: number[] // the FUSE threads' and the helpers'
}

// Where the threads go, given the CPUs the process may use; null with fewer than two.
export function planPlacement (allowed: number[]): Placement | null {
  if (allowed.length < 2) return null
  const sorted = [...allowed].sort((a, b) => a - b)
  return { loop: sorted[sorted.length - 1], fuse: sorted.slice(0, -1) }
}

export class CpuPlacement {
  private timer: NodeJS.Timeout | null = null
  private readonly helpers = new Set<number>() // threads there were at mount, but the event loop
  private readonly free = new Set<number>() // threads started since: anywhere
  private ticking: Promise<void> | null = null
  private placed = false
  private stopped = false
  private lastActivity: number

  private constructor (
    private readonly binding: CpuBinding,
    readonly placement: Placement,
    private readonly allowed: number[],
    private readonly activity: () => number,
    private readonly log: (line: string) => void
  ) {
    this.lastActivity = activity()
  }

  // `activity`: a count that grows while data keeps the crypto workers busy.
  // Null when there is nothing to do (one CPU, no binding, or turned off).
  static async start (binding: CpuBinding | null, activity: () => number, log: (line: string) => void): Promise<CpuPlacement | null> {
    if (!binding || process.env.DISKTRO_CPU_PLACEMENT === '0') return null
    const allowed = binding.fuse_native_cpus_get(process.pid)
    const plan = planPlacement(allowed)
    if (!plan) return null
    const p = new CpuPlacement(binding, plan, allowed, activity, log)
    for (const tid of await threads()) if (tid !== process.pid) p.helpers.add(tid)
    if (!p.place()) return null
    p.timer = setInterval(() => { void p.tick() }, TICK_MS)
    p.timer.unref()
    return p
  }

  get isPlaced (): boolean {
    return this.placed
  }

  // Settles once this tick's look at the threads and the workers is done.
  tick (): Promise<void> {
    this.ticking ??= this.look().catch(e => this.log(`cpu placement: ${(e as Error).message}`)).finally(() => { this.ticking = null })
    return this.ticking
  }

  private async look (): Promise<void> {
    const n = this.activity()
    const busy = n !== this.lastActivity
    this.lastActivity = n
    if (busy && this.placed) this.unplace()
    else if (!busy && !this.placed) this.place()
    const tids = await threads()
    if (this.stopped) return
    const alive = new Set(tids)
    for (const set of [this.helpers, this.free]) for (const t of set) if (!alive.has(t)) set.delete(t)
    for (const tid of tids) {
      if (tid === process.pid || this.helpers.has(tid) || this.free.has(tid)) continue
      this.free.add(tid)
      // A FUSE thread binds itself elsewhere; this one inherited the loop's CPU.
      const cpus = this.binding.fuse_native_cpus_get(tid)
      if (cpus.length === 1 && cpus[0] === this.placement.loop) this.binding.fuse_native_cpus_set(tid, this.allowed)
    }
  }

  private place (): boolean {
    const rc = this.binding.fuse_native_cpus_set(process.pid, [this.placement.loop])
    if (rc !== 0) {
      this.log(`cpu placement: cannot bind the event loop to CPU ${this.placement.loop} (errno ${rc}); left to the scheduler`)
      return false
    }
    this.binding.fuse_native_cpus_fuse(this.placement.fuse)
    for (const tid of this.helpers) this.binding.fuse_native_cpus_set(tid, this.placement.fuse) // ESRCH: it ended
    this.placed = true
    return true
  }

  private unplace (): void {
    this.binding.fuse_native_cpus_fuse(this.allowed)
    for (const tid of [process.pid, ...this.helpers]) this.binding.fuse_native_cpus_set(tid, this.allowed)
    this.placed = false
  }

  // Every thread may run anywhere it could before.
  async stop (): Promise<void> {
    if (this.stopped) return
    if (this.timer) clearInterval(this.timer)
    await this.ticking
    this.stopped = true
    this.unplace()
  }
}

async function threads (): Promise<number[]> {
  const names = await readdir('/proc/self/task').catch(() => [] as string[])
  return names.map(Number).filter(t => Number.isInteger(t) && t > 0)
}
