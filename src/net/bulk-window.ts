// Bulk data (chunk records: PUT_CHUNK requests, CHUNK replies) goes out only
// when no control frame (PING/PONG, small requests and replies) waits, and
// PUT_CHUNK bytes sent and not yet acknowledged stay within what the peer
// acknowledged over its quickest answer plus BULK_WINDOW_MS, never below
// MIN_BULK_WINDOW (two chunks: one on the wire, one ready behind it). The
// quickest answer is the pipe (the link's round trip, the receiver's
// verify and fsync); BULK_WINDOW_MS is the queue allowed beyond it. On a
// busy 10 Mbit/s uplink 32 chunks in flight were 26 s of queue ahead of
// every heartbeat and request; this keeps a few hundred ms. On loopback the
// window opens to the request limit.
export const BULK_WINDOW_MS = 300
export const MIN_BULK_WINDOW = 2 * (1024 * 1024 + 64 * 1024)
const RATE_SPAN_MS = 2000

// How many PUT_CHUNK bytes one connection may have on the wire unanswered,
// from the answers of the last RATE_SPAN_MS: the acknowledged rate times
// (the quickest answer in that span + BULK_WINDOW_MS). Rate alone times
// 300 ms shrank to two chunks whenever a loaded receiver answered slower
// than that (verify, fsync), and stayed there. At most 32 entries per 2 s
// per MiB/s acknowledged.
export class BulkWindow {
  private readonly answers: Array<{ t: number, bytes: number, took: number }> = []

  acked (bytes: number, took: number): void {
    const now = performance.now()
    this.answers.push({ t: now, bytes, took })
    this.trim(now)
  }

  size (): number {
    const now = performance.now()
    this.trim(now)
    if (this.answers.length === 0) return MIN_BULK_WINDOW
    let bytes = 0
    let quickest = Infinity
    for (const a of this.answers) { bytes += a.bytes; quickest = Math.min(quickest, a.took) }
    const rate = bytes / Math.max(100, now - this.answers[0].t + quickest) // bytes per ms
    return Math.max(MIN_BULK_WINDOW, rate * (quickest + BULK_WINDOW_MS))
  }

  private trim (now: number): void {
    while (this.answers.length > 0 && this.answers[0].t < now - RATE_SPAN_MS) this.answers.shift()
  }
}
