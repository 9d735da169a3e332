import type { ServerResponse } from 'node:http'
import type { WebBackend } from './web-backend.js'
import type { Transfers } from './file-transfer.js'
import type { LiveHello, LiveTick, PeerView, ThroughputSample } from './web-types.js'

const TICK_MS = 1000
const HISTORY = 120 // samples: the chart's two minutes
const REPLICATION_EVERY = 1 // ticks: the summary reads counters (replication/replica-state.ts)

// Server-sent events for the live views: once a second, peers, a throughput
// sample and transfers in flight. Throughput is sampled whether or not a page
// is open, so the chart has a history; peers are asked only while one is.
export class LiveFeed {
  private readonly clients = new Set<ServerResponse>()
  private readonly history: ThroughputSample[] = []
  private readonly timer: NodeJS.Timeout
  private last: { sent: number, received: number, web: number }
  private peers: PeerView[] = []
  private busy = false
  private ticks = 0

  constructor (private readonly backend: WebBackend, private readonly transfers: Transfers, private readonly log: (line: string) => void) {
    this.last = { ...backend.traffic(), web: transfers.total }
    this.timer = setInterval(() => { void this.tick() }, TICK_MS)
    this.timer.unref()
  }

  add (res: ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' })
    const hello: LiveHello = { history: this.history }
    res.write(`event: hello\ndata: ${JSON.stringify(hello)}\n\n`)
    this.clients.add(res)
    res.on('close', () => this.clients.delete(res))
    if (this.clients.size === 1) void this.tick(false) // a fresh page should not wait a second for peers
  }

  private async tick (sample = true): Promise<void> {
    if (sample) this.sample()
    if (this.clients.size === 0 || this.busy) return
    this.busy = true
    try {
      this.peers = await this.backend.peers()
      const replication = this.ticks++ % REPLICATION_EVERY === 0 ? this.backend.replication() : null
      const tick: LiveTick = { t: Date.now(), peers: this.peers, sample: this.history[this.history.length - 1] ?? { t: Date.now(), sent: 0, received: 0, web: 0 }, transfers: this.transfers.list(), replication }
      const frame = `event: tick\ndata: ${JSON.stringify(tick)}\n\n`
      for (const c of this.clients) c.write(frame)
    } catch (e) {
      this.log(`dashboard feed: ${(e as Error).message}`)
    } finally {
      this.busy = false
    }
  }

  private sample (): void {
    const now = { ...this.backend.traffic(), web: this.transfers.total }
    const s: ThroughputSample = { t: Date.now(), sent: now.sent - this.last.sent, received: now.received - this.last.received, web: now.web - this.last.web }
    this.last = now
    this.history.push(s)
    if (this.history.length > HISTORY) this.history.shift()
  }

  close (): void {
    clearInterval(this.timer)
    for (const c of this.clients) c.end()
    this.clients.clear()
  }
}
