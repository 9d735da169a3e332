// Keeps the event loop awake for a short while after each FUSE operation: a
// chain of setImmediate callbacks makes libuv poll without sleeping, so the
// next operation's wake-up (uv_async from a FUSE thread) is seen at once
// instead of after the thread has slept in epoll_wait. With the FUSE
// threads' own spin (scripts/build-fuse.cjs (f)) it saved about 47 us per
// operation at first (tar x of 2,000 files, ~38,000 operations: 5.7 ->
// 3.9 s), where an operation cost ~76 us of JavaScript. The cost is at most
// `window` of CPU after the last operation of a burst.
//
// In a burst (BURST_OPS operations within BUCKET_MS) the window is the
// longer `burstWindow`: on these VMs a CPU that went idle for a moment is
// slow to wake, and even a few gaps in a burst of creates cost more than the
// polling. tar x of 2,000 files, alternating: 1.36-1.44 s with 500 us
// throughout, 1.22-1.30 s with 20 ms in bursts; ls -lR of 10,000 files
// 1.29-1.75 vs 1.20-1.61 s. A steady trickle (a poller's stat every 10 ms)
// never makes a burst, so it never costs more than `window` each.
// The event loop's window as a multiple of the FUSE threads' (mount-session.ts).
export const EVENT_LOOP_SPIN_FACTOR = 5
export const BURST_WINDOW_US = 20_000
const BUCKET_MS = 50
const BUCKET_NS = BigInt(BUCKET_MS * 1e6)
const BURST_OPS = 20
const QUIET_MS = 250
const QUIET_NS = BigInt(QUIET_MS * 1e6)

export class HotLoop {
  private until = 0n
  private running = false
  private readonly window: bigint
  private readonly burstWindow: bigint
  private bucketStart = 0n
  private count = 0
  private burst = false

  // A window that is not a finite number (a bad DISKTRO_FUSE_SPIN_US) is 0;
  // so is the burst window then.
  constructor (windowMicroseconds: number, burstWindowMicroseconds = windowMicroseconds) {
    this.window = nanoseconds(windowMicroseconds)
    this.burstWindow = this.window === 0n ? 0n : nanoseconds(Math.max(windowMicroseconds, burstWindowMicroseconds))
  }

  // Whether the last touch found a burst.
  get inBurst (): boolean {
    return this.burst || this.count >= BURST_OPS
  }

  // A burst's operation came within QUIET_MS: background work that can
  // wait (the namespace's emission, the scrubber) waits. A burst has gaps
  // (tar x pauses to make a directory, to read its archive): within one,
  // the emission of the waiting files' ops (about 85 us a file on the event
  // loop here) would go ahead and stall the burst.
  get busy (): boolean {
    return this.lastBurst !== 0n && process.hrtime.bigint() - this.lastBurst < QUIET_NS
  }

  private lastBurst = 0n

  touch (): void {
    if (this.window === 0n) return
    const now = process.hrtime.bigint()
    if (now - this.bucketStart >= BUCKET_NS) {
      this.burst = this.count >= BURST_OPS
      this.count = 0
      this.bucketStart = now
    }
    this.count++
    const burst = this.inBurst
    if (burst) this.lastBurst = now
    this.until = now + (burst ? this.burstWindow : this.window)
    if (!this.running) {
      this.running = true
      setImmediate(this.spin)
    }
  }

  private readonly spin = (): void => {
    if (process.hrtime.bigint() < this.until) setImmediate(this.spin)
    else this.running = false
  }
}

function nanoseconds (us: number): bigint {
  const ns = Math.round(us * 1000)
  return BigInt(Number.isFinite(ns) ? Math.max(0, ns) : 0)
}
