import { performance } from 'node:perf_hooks'

const TICK_MS = 20 // a stall of S ms shows as a timer S - TICK_MS to S ms late
const STALL_MS = 50
const WINDOW_MS = 60_000

export interface StallReport {
  longestStallMs: number // since start
  stallsOver50ms: number // since start
  sinceSec: number // how long the meter has run
  lastMinute: { longestStallMs: number, stallsOver50ms: number }
  // Of the stalls, those during which this process ran on a CPU at least
  // half the time: its own work. The rest is mostly waiting for a CPU on a
  // loaded machine (a process of ours at work counts too: the CPU time is
  // the whole process's, every thread's).
  busy: { longestStallMs: number, stallsOver50ms: number }
}

// How long the event loop was blocked: a timer that should fire every
// TICK_MS, and how late it fires. A heartbeat, a FUSE reply or a status
// request waits as long as the timer does. Costs 50 wake-ups a second
// (about 0.1% of a core here); the timer never keeps the process alive.
export class EventLoopStalls {
  private static instance: EventLoopStalls | null = null
  private timer: NodeJS.Timeout | null = null
  private startedAt = 0
  private last = 0
  private longest = 0
  private count = 0
  private busyLongest = 0
  private busyCount = 0
  private cpu = 0 // µs of CPU, user and system, at the last tick
  private readonly recent: Array<{ at: number, ms: number }> = [] // stalls within the window, oldest first

  constructor (private readonly tickMs = TICK_MS) {}

  // The meter of this process, started on first use: the daemon's start-up
  // counts too.
  static shared (): EventLoopStalls {
    EventLoopStalls.instance ??= new EventLoopStalls().start()
    return EventLoopStalls.instance
  }

  start (): this {
    if (this.timer !== null) return this
    this.startedAt = performance.now()
    this.last = this.startedAt
    this.cpu = cpuMicros()
    this.timer = setInterval(() => this.tick(), this.tickMs)
    this.timer.unref()
    return this
  }

  private tick (): void {
    const now = performance.now()
    const late = now - this.last - this.tickMs
    const cpu = cpuMicros()
    const share = (cpu - this.cpu) / 1000 / Math.max(1, now - this.last)
    this.last = now
    this.cpu = cpu
    if (late <= STALL_MS) return
    this.count++
    if (late > this.longest) this.longest = late
    if (share >= 0.5) {
      this.busyCount++
      if (late > this.busyLongest) this.busyLongest = late
    }
    this.recent.push({ at: now, ms: late })
    this.prune(now)
  }

  private prune (now: number): void {
    while (this.recent.length > 0 && now - this.recent[0].at > WINDOW_MS) this.recent.shift()
  }

  report (): StallReport {
    const now = performance.now()
    this.prune(now)
    let minute = 0
    for (const s of this.recent) minute = Math.max(minute, s.ms)
    return {
      longestStallMs: Math.round(this.longest),
      stallsOver50ms: this.count,
      sinceSec: Math.round((now - this.startedAt) / 1000),
      lastMinute: { longestStallMs: Math.round(minute), stallsOver50ms: this.recent.length },
      busy: { longestStallMs: Math.round(this.busyLongest), stallsOver50ms: this.busyCount }
    }
  }

  close (): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
  }
}

function cpuMicros (): number {
  const u = process.cpuUsage()
  return u.user + u.system
}
