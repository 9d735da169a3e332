// Keeps the event loop awake for a short while after each FUSE operation: a
// chain of setImmediate callbacks makes libuv poll without sleeping, so the
// next operation's wake-up (uv_async from a FUSE thread) is seen at once
// instead of after the thread has slept in epoll_wait. With the FUSE
// threads' own spin (scripts/build-fuse.cjs (f)) it saves about 47 us per
// operation on these VMs (tar x of 2,000 files, ~38,000 operations: 5.7 ->
// 3.9 s), where an operation costs ~76 us of JavaScript. The cost is at most
// `window` of CPU after the last operation of a burst.
// The event loop's window as a multiple of the FUSE threads' (node.ts).
export const EVENT_LOOP_SPIN_FACTOR = 5

export class HotLoop {
  private until = 0n
  private running = false
  private readonly window: bigint

  // A window that is not a finite number (a bad DISKTRO_FUSE_SPIN_US) is 0.
  constructor (windowMicroseconds: number) {
    const ns = Math.round(windowMicroseconds * 1000)
    this.window = BigInt(Number.isFinite(ns) ? Math.max(0, ns) : 0)
  }

  touch (): void {
    if (this.window === 0n) return
    this.until = process.hrtime.bigint() + this.window
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
