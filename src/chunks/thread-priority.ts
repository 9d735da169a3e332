import { readlinkSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'

// The crypto workers' scheduling priority, below the event loop's and the
// FUSE threads'. A sequential write is a chain of synchronous 128 KiB
// requests (the writer, the kernel, a FUSE thread, back): each waits for a
// core whenever two workers hold both, and those waits add up to the write's
// time. Workers a few nice levels down still get every idle moment (and,
// by the kernel's weights, 335 against 1,024, about a quarter of a core
// they share with one normal thread), but a woken FUSE thread or writer
// runs first. 1 GiB of compressible data, dd bs=1M conv=fsync, alternating: idle
// CPU 45-65 -> 27-35 ticks of 100; 2.48-2.64 -> 2.44-2.57 s (6 each), a
// smaller gain in a later series (medians 2.65 -> 2.61 s, 8 each).
// DISKTRO_WORKER_NICE sets the step (0 leaves the priority alone).
export const WORKER_NICE_STEP = 5
const MAX_NICE = 19

// Lowers the calling thread's priority by `step` nice levels (Linux, where
// setpriority on a thread id applies to that thread alone). The new nice
// value, or null where threads cannot be told apart (other systems) or the
// call failed: the thread then keeps running at its old priority.
export function lowerThreadPriority (step = configuredStep()): number | null {
  if (process.platform !== 'linux' || step <= 0) return null
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop())
    if (!Number.isInteger(tid) || tid <= 0) return null
    const nice = Math.min(MAX_NICE, getPriority(tid) + step)
    setPriority(tid, nice)
    return getPriority(tid)
  } catch {
    return null
  }
}

function configuredStep (): number {
  const v = Number(process.env.DISKTRO_WORKER_NICE ?? WORKER_NICE_STEP)
  return Number.isFinite(v) ? Math.max(0, Math.floor(v)) : WORKER_NICE_STEP
}
