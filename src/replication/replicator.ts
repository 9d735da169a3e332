import type { LmdbStore } from '../store/lmdb-store.js'
import type { PeerLink } from './peer-link.js'
import { Holders } from './holders.js'
import { rank } from './placement.js'
import { ReplicaState } from './replica-state.js'

const PARALLEL = 32 // chunk pushes in flight: bounds memory (16 x chunk size) and keeps links busy
const RETRY_MS = 5000

export interface ReplicationSummary {
  target: number
  chunks: number // tracked: referenced by our tree (full member) or held here (storage-only)
  atTarget: number
  underReplicated: number
  onlyHere: number
  lost: number
  pendingBytes: number
  uploadRate: number // bytes/s acknowledged over the last few seconds
  queued: number // chunks waiting to be pushed now (new writes and repairs)
  etaSec: number | null // pendingBytes / uploadRate: time to safety at the current rate; null when idle or stalled
  unsettled: number // chunks whose copies changed and are not recounted yet (the figures above lag by them)
  counting: boolean // a first count of every chunk is running: the figures are not complete
  savedAt: number | null // when the counts were last written to disk
  unproven: number // chunks with a copy elsewhere never proven by challenge (acknowledged or reported only)
}

// The summary from ReplicaState's counters (a node without peers: nothing uploads).
export function summaryOf (state: ReplicaState, uploadRate = 0, queued = 0): ReplicationSummary {
  const c = state.summary()
  const s: ReplicationSummary = { target: c.target, chunks: c.tracked, atTarget: c.atTarget, underReplicated: c.below, onlyHere: c.onlyHere, lost: c.lost, pendingBytes: c.pendingBytes, uploadRate, queued, etaSec: null, unsettled: c.unsettled, counting: c.counting, savedAt: c.savedAt, unproven: c.unproven }
  if (s.pendingBytes > 0 && s.uploadRate > 0) s.etaSec = Math.ceil(s.pendingBytes / s.uploadRate)
  return s
}

// Peers that must hold a chunk whatever the placement says (pinning.ts).
export interface PinPolicy {
  pinnedTo (chunkId: Buffer): string[]
  // Pinned chunks a pinned peer is not known to hold (cost: the pinned chunks).
  unplaced?: () => Buffer[]
}

export interface ReplicatorOptions {
  store: LmdbStore
  selfId: string
  replicaCount: number
  links: () => PeerLink[]
  log: (line: string) => void
  holders?: Holders
  state?: ReplicaState
}

// Pushes this node's chunks (the ones its own block maps reference) to
// replicaCount - 1 other members chosen by rendezvous hashing, in the
// background. A placement is recorded only on the receiver's acknowledgement
// that the chunk is verified and durable. Chunks short of target wait for
// peers to appear and are retried. A chunk of a pinned file also goes to the
// pinned peer; that copy counts toward replicaCount like any other.
export class Replicator {
  private readonly holders: Holders
  readonly state: ReplicaState
  private readonly queue = new Set<string>()
  private sweepFrom: Buffer | null = null // where the sweep of `needs` goes on; null: none running
  private sweepAgain = false
  private retryTimer: NodeJS.Timeout | null = null
  private running = 0
  private closed = false
  private readonly acked: Array<{ t: number, bytes: number }> = []
  private pins: PinPolicy | null = null
  readonly sentTo = new Map<string, number>() // bytes acknowledged per peer, this run
  readonly refusals = new Map<string, { at: number, reason: string }>() // last refusal per peer (a full disk, say)
  sentBytes = 0

  constructor (private readonly o: ReplicatorOptions) {
    this.holders = o.holders ?? new Holders(o.store)
    this.state = o.state ?? new ReplicaState(o.store, o.replicaCount, false)
    // Chunks that fell below target (a holder gone, a failed proof, a new
    // write): those alone are looked at, never the whole of `needs`.
    this.state.onNeeds(ids => this.enqueue(ids.filter(id => this.o.store.hasChunk(id))))
  }

  // A copy we hold for another member (it was pushed to us) is that member's
  // to replicate while a holder of it still counts; when none does (they
  // have been gone longer than repairAfter), we repair it.
  private othersDuty (id: Buffer, have: string[]): boolean {
    return have.length > 0 && this.o.store.foreign.doesExist(id) && this.missingPins(id, have).length === 0
  }

  // Holders whose copies count toward the target (holder-audit.ts removes
  // the ones that stopped counting).
  holdersOf (id: Buffer): string[] {
    return this.holders.get(id)
  }

  start (): void {
    this.state.start()
    this.rescan()
  }

  // Pinned chunks are looked at every few seconds (their number, not the
  // volume's, is the cost): a chunk written into a pinned folder reaches
  // its peer without a sweep.
  usePins (pins: PinPolicy): void {
    this.pins = pins
    this.pinTimer ??= setInterval(() => {
      const ids = this.pins?.unplaced?.() ?? []
      if (ids.length > 0) this.enqueue(ids)
    }, RETRY_MS)
    this.pinTimer.unref()
  }

  private pinTimer: NodeJS.Timeout | null = null

  get pinPolicy (): PinPolicy | null {
    return this.pins
  }

  // New chunks committed locally. With no peer connected there is nowhere to
  // send them: the sweep when one appears finds them (and a single node
  // spends nothing per written block on replication).
  enqueue (ids: Buffer[]): void {
    if (this.o.links().length === 0) return
    for (const id of ids) this.queue.add(id.toString('hex'))
    this.pump()
  }

  // Looks at every chunk below target (`needs`, kept by ReplicaState), a
  // slice at a time as the push queue drains: when a peer appears and after
  // failed pushes (chunks that fall below target are queued by themselves). Chunks at target cost
  // nothing, so a safe volume's replication is idle whatever its size.
  // Pinned chunks at target that a pinned peer lacks are queued by pinning.
  rescan (): void {
    if (this.closed || this.o.links().length === 0) return
    for (const id of this.pins?.unplaced?.() ?? []) this.queue.add(id.toString('hex'))
    if (this.sweepFrom !== null) { this.sweepAgain = true; return }
    this.sweepFrom = Buffer.alloc(0)
    this.pump()
  }

  // Queues the next chunks of the sweep that this node can copy now: reads
  // `needs` until the queue has enough or about 2,000 entries were looked at
  // (then the rest waits for the next turn of the event loop).
  private refill (): void {
    const links = this.o.links()
    let budget = 2048
    while (this.sweepFrom !== null && this.queue.size < 2 * PARALLEL) {
      if (budget <= 0) {
        if (!this.refillLater) {
          this.refillLater = true
          setImmediate(() => { this.refillLater = false; this.pump() })
        }
        return
      }
      const from = this.sweepFrom
      let last: Buffer | null = null
      for (const key of this.o.store.needs.getKeys({ start: from.length === 0 ? undefined : from, limit: 256 })) {
        const id = key as Buffer
        if (from.length > 0 && id.equals(from)) continue
        last = Buffer.from(id)
        budget--
        if (!this.o.store.hasChunk(id)) continue
        const have = this.holdersOf(id)
        if (this.othersDuty(id, have)) continue
        if (!links.some(l => l.id !== this.o.selfId && !have.includes(l.id))) continue
        const hex = id.toString('hex')
        if (!this.inflight.has(hex)) this.queue.add(hex)
      }
      if (last === null) {
        this.sweepFrom = null
        if (this.sweepAgain) { this.sweepAgain = false; this.sweepFrom = Buffer.alloc(0) }
        return
      }
      this.sweepFrom = last
    }
  }

  private refillLater = false
  private readonly inflight = new Set<string>()

  private missingPins (id: Buffer, have: string[]): string[] {
    if (!this.pins) return []
    return this.pins.pinnedTo(id).filter(p => p !== this.o.selfId && !have.includes(p))
  }

  // From the counters ReplicaState keeps: constant time at any size.
  summary (): ReplicationSummary {
    return summaryOf(this.state, this.rate(), this.queue.size + this.running)
  }

  copiesOf (id: Buffer): number {
    return this.state.copiesOf(id)
  }

  close (): void {
    this.closed = true
    if (this.retryTimer) clearTimeout(this.retryTimer)
    if (this.pinTimer) clearInterval(this.pinTimer)
    this.queue.clear()
    this.state.close()
  }

  private failedSinceRetry = false
  private retryLater (): void {
    this.failedSinceRetry = true
    if (this.retryTimer || this.closed) return
    this.retryTimer = setTimeout(() => { this.retryTimer = null; if (this.failedSinceRetry) { this.failedSinceRetry = false; this.rescan() } }, RETRY_MS)
    this.retryTimer.unref()
  }

  private pump (): void {
    if (this.queue.size < PARALLEL) this.refill()
    while (!this.closed && this.running < PARALLEL && this.queue.size > 0) {
      const hex = this.queue.values().next().value as string
      this.queue.delete(hex)
      this.running++
      this.inflight.add(hex)
      this.replicate(Buffer.from(hex, 'hex'))
        .catch(e => { this.retryLater(); this.o.log(`replication of chunk ${hex.slice(0, 12)}: ${(e as Error).message}`) })
        .finally(() => { this.running--; this.inflight.delete(hex); this.pump() })
      if (this.queue.size < PARALLEL) this.refill()
    }
  }

  // Before this node drops its own copy (a bounded cache): make sure
  // replicaCount copies exist elsewhere. True when they do.
  async handoff (id: Buffer): Promise<boolean> {
    await this.replicate(id, 1)
    return this.holdersOf(id).length >= this.o.replicaCount
  }

  private async replicate (id: Buffer, extra = 0): Promise<void> {
    if (!this.o.store.refs.doesExist(id)) return // deleted meanwhile
    const have = this.holdersOf(id)
    if (extra === 0 && this.othersDuty(id, have)) return
    const pinned = new Set(this.missingPins(id, have))
    let need = this.o.replicaCount - 1 - have.length + extra
    if (need <= 0 && pinned.size === 0) return
    const others = this.o.links().filter(l => !have.includes(l.id) && l.id !== this.o.selfId)
    // Pinned peers first: their copies count toward the target.
    const candidates = [...others.filter(l => pinned.has(l.id)), ...rank(id, others.filter(l => !pinned.has(l.id)))]
    if (candidates.length === 0) return
    await this.o.store.prefetchChunks([id])
    if (!this.o.store.hasChunk(id)) return // lost locally: healing fetches it back on read
    // The record is read when each push goes on the wire, from LMDB's reused
    // read buffer, and copied straight into the frame: no 1 MiB copy lives
    // here across the awaits (it would outlive young-generation GCs and cost
    // full ones).
    let size = -1
    const read = (): Buffer | undefined => {
      // A view of lmdb-js's read buffer (inline or packed: LmdbStore.chunkView).
      const record = this.o.store.chunkView(id)
      size = record?.length ?? 0
      return record
    }
    for (const link of candidates) {
      if (this.closed) break
      if (need <= 0 && !pinned.has(link.id)) break
      const r = await link.putChunk(id, read).catch((e: Error) => ({ ok: false, reason: e.message }))
      if (r.ok) {
        if (size < 0) read() // a link that never read it
        this.holders.add(id, link.id, Date.now()) // an ack after the receiver verified and stored the record: proof at that time
        this.acked.push({ t: Date.now(), bytes: size })
        this.sentTo.set(link.id, (this.sentTo.get(link.id) ?? 0) + size)
        this.sentBytes += size
        need--
      } else {
        this.retryLater()
        this.refusals.set(link.id, { at: Date.now(), reason: r.reason ?? 'no reason' })
        this.o.log(`peer ${link.id.slice(0, 12)} refused chunk ${id.toString('hex').slice(0, 12)}: ${r.reason ?? 'no reason'}`)
      }
    }
  }

  private rate (): number {
    const since = Date.now() - 5000
    while (this.acked.length > 0 && this.acked[0].t < since) this.acked.shift()
    return this.acked.reduce((n, a) => n + a.bytes, 0) / 5
  }
}
