import type { LmdbStore } from '../store/lmdb-store.js'
import type { PeerLink } from './peer-link.js'
import { Holders } from './holders.js'
import { rank } from './placement.js'

const PARALLEL = 32 // chunk pushes in flight: bounds memory (16 x chunk size) and keeps links busy
const RETRY_MS = 5000

export interface ReplicationSummary {
  target: number
  chunks: number
  atTarget: number
  underReplicated: number
  onlyHere: number
  lost: number
  pendingBytes: number
  uploadRate: number // bytes/s acknowledged over the last few seconds
  queued: number // chunks waiting to be pushed now (new writes and repairs)
  etaSec: number | null // pendingBytes / uploadRate: time to safety at the current rate; null when idle or stalled
}

// Peers that must hold a chunk whatever the placement says (pinning.ts).
export interface PinPolicy {
  pinnedTo (chunkId: Buffer): string[]
}

export interface ReplicatorOptions {
  store: LmdbStore
  selfId: string
  replicaCount: number
  links: () => PeerLink[]
  log: (line: string) => void
  holders?: Holders
  // False for a holder offline longer than `repairAfter`: its copies no
  // longer count, so the chunk is copied to another member.
  counts?: (peerId: string) => boolean
}

// Pushes this node's chunks (the ones its own block maps reference) to
// replicaCount - 1 other members chosen by rendezvous hashing, in the
// background. A placement is recorded only on the receiver's acknowledgement
// that the chunk is verified and durable. Chunks short of target wait for
// peers to appear and are retried. A chunk of a pinned file also goes to the
// pinned peer; that copy counts toward replicaCount like any other.
export class Replicator {
  private readonly holders: Holders
  private readonly queue = new Set<string>()
  private running = 0
  private closed = false
  private timer: NodeJS.Timeout | null = null
  private readonly acked: Array<{ t: number, bytes: number }> = []
  private pins: PinPolicy | null = null
  readonly sentTo = new Map<string, number>() // bytes acknowledged per peer, this run
  readonly refusals = new Map<string, { at: number, reason: string }>() // last refusal per peer (a full disk, say)
  sentBytes = 0

  constructor (private readonly o: ReplicatorOptions) {
    this.holders = o.holders ?? new Holders(o.store)
  }

  // A copy we hold for another member (it was pushed to us) is that member's
  // to replicate while a holder of it still counts; when none does (they
  // have been gone longer than repairAfter), we repair it.
  private othersDuty (id: Buffer, have: string[]): boolean {
    return have.length > 0 && this.o.store.foreign.doesExist(id) && this.missingPins(id, have).length === 0
  }

  // Holders whose copies count toward the target.
  holdersOf (id: Buffer): string[] {
    const all = this.holders.get(id)
    return this.o.counts ? all.filter(this.o.counts) : all
  }

  start (): void {
    this.rescan()
    this.timer = setInterval(() => this.rescan(), RETRY_MS)
    this.timer.unref()
  }

  usePins (pins: PinPolicy): void {
    this.pins = pins
  }

  get pinPolicy (): PinPolicy | null {
    return this.pins
  }

  // New chunks committed locally. With no peer connected there is nowhere to
  // send them: the rescan when one appears finds them (and a single node
  // spends nothing per written block on replication).
  enqueue (ids: Buffer[]): void {
    if (this.o.links().length === 0) return
    for (const id of ids) this.queue.add(id.toString('hex'))
    this.pump()
  }

  // Re-examines every own chunk: at start, when a peer appears, periodically.
  rescan (): void {
    if (this.closed) return
    if (this.o.links().length === 0) return
    for (const key of this.o.store.refs.getKeys({})) {
      const id = key as Buffer
      const have = this.holdersOf(id)
      if (this.othersDuty(id, have)) continue
      if (1 + have.length < this.o.replicaCount || this.missingPins(id, have).length > 0) this.queue.add(id.toString('hex'))
    }
    this.pump()
  }

  private missingPins (id: Buffer, have: string[]): string[] {
    if (!this.pins) return []
    return this.pins.pinnedTo(id).filter(p => p !== this.o.selfId && !have.includes(p))
  }

  summary (): ReplicationSummary {
    const s: ReplicationSummary = { target: this.o.replicaCount, chunks: 0, atTarget: 0, underReplicated: 0, onlyHere: 0, lost: 0, pendingBytes: 0, uploadRate: this.rate(), queued: this.queue.size + this.running, etaSec: null }
    for (const key of this.o.store.refs.getKeys({})) {
      const id = key as Buffer
      s.chunks++
      const h = this.holdersOf(id).length
      const local = this.o.store.hasChunk(id)
      const copies = h + (local ? 1 : 0)
      if (copies === 0) { s.lost++; s.underReplicated++; continue }
      if (copies >= this.o.replicaCount) { s.atTarget++; continue }
      s.underReplicated++
      if (h === 0) s.onlyHere++
      const size = local ? this.sizeOf(id) : 0
      s.pendingBytes += size * (this.o.replicaCount - copies)
    }
    if (s.pendingBytes > 0 && s.uploadRate > 0) s.etaSec = Math.ceil(s.pendingBytes / s.uploadRate)
    return s
  }

  copiesOf (id: Buffer): number {
    return this.holdersOf(id).length + (this.o.store.hasChunk(id) ? 1 : 0)
  }

  close (): void {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    this.queue.clear()
  }

  private pump (): void {
    while (!this.closed && this.running < PARALLEL && this.queue.size > 0) {
      const hex = this.queue.values().next().value as string
      this.queue.delete(hex)
      this.running++
      this.replicate(Buffer.from(hex, 'hex'))
        .catch(e => this.o.log(`replication of chunk ${hex.slice(0, 12)}: ${(e as Error).message}`))
        .finally(() => { this.running--; this.pump() })
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
    await this.o.store.chunks.prefetch([id])
    if (!this.o.store.hasChunk(id)) return // lost locally: healing fetches it back on read
    // The record is read when each push goes on the wire, from LMDB's reused
    // read buffer, and copied straight into the frame: no 1 MiB copy lives
    // here across the awaits (it would outlive young-generation GCs and cost
    // full ones).
    let size = -1
    const read = (): Buffer | undefined => {
      const fast = this.o.store.chunks.getBinaryFast(id)
      size = fast?.length ?? 0
      // lmdb-js's read buffer is larger than the value and only its `length`
      // property says otherwise; a real view of the value is what may be copied.
      return fast?.subarray(0, fast.length)
    }
    for (const link of candidates) {
      if (this.closed) break
      if (need <= 0 && !pinned.has(link.id)) break
      const r = await link.putChunk(id, read).catch((e: Error) => ({ ok: false, reason: e.message }))
      if (r.ok) {
        if (size < 0) read() // a link that never read it
        this.holders.add(id, link.id)
        this.acked.push({ t: Date.now(), bytes: size })
        this.sentTo.set(link.id, (this.sentTo.get(link.id) ?? 0) + size)
        this.sentBytes += size
        need--
      } else {
        this.refusals.set(link.id, { at: Date.now(), reason: r.reason ?? 'no reason' })
        this.o.log(`peer ${link.id.slice(0, 12)} refused chunk ${id.toString('hex').slice(0, 12)}: ${r.reason ?? 'no reason'}`)
      }
    }
  }

  // Record sizes for pendingBytes, without copying records out of the map
  // on every status call (the length of a fast view is all that is read).
  private readonly sizes = new Map<string, number>()
  private sizeOf (id: Buffer): number {
    const hex = id.toString('hex')
    let n = this.sizes.get(hex)
    if (n === undefined) {
      n = this.o.store.chunks.getBinaryFast(id)?.length ?? 0
      if (this.sizes.size > 100_000) this.sizes.clear()
      this.sizes.set(hex, n)
    }
    return n
  }

  private rate (): number {
    const since = Date.now() - 5000
    while (this.acked.length > 0 && this.acked[0].t < since) this.acked.shift()
    return this.acked.reduce((n, a) => n + a.bytes, 0) / 5
  }
}
