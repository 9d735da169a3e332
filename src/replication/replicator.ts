import type { LmdbStore } from '../store/lmdb-store.js'
import type { PeerLink } from './peer-link.js'
import { Holders } from './holders.js'
import { rank } from './placement.js'

const PARALLEL = 4 // chunk pushes in flight: bounds memory and keeps links busy
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
}

export interface ReplicatorOptions {
  store: LmdbStore
  selfId: string
  replicaCount: number
  links: () => PeerLink[]
  log: (line: string) => void
  holders?: Holders
}

// Pushes this node's chunks (the ones its own block maps reference) to
// replicaCount - 1 other members chosen by rendezvous hashing, in the
// background. A placement is recorded only on the receiver's acknowledgement
// that the chunk is verified and durable. Chunks short of target wait for
// peers to appear and are retried.
export class Replicator {
  private readonly holders: Holders
  private readonly queue = new Set<string>()
  private running = 0
  private closed = false
  private timer: NodeJS.Timeout | null = null
  private readonly acked: Array<{ t: number, bytes: number }> = []

  constructor (private readonly o: ReplicatorOptions) {
    this.holders = o.holders ?? new Holders(o.store)
  }

  start (): void {
    this.rescan()
    this.timer = setInterval(() => this.rescan(), RETRY_MS)
    this.timer.unref()
  }

  // New chunks committed locally.
  enqueue (ids: Buffer[]): void {
    for (const id of ids) this.queue.add(id.toString('hex'))
    this.pump()
  }

  // Re-examines every own chunk: at start, when a peer appears, periodically.
  rescan (): void {
    if (this.closed) return
    if (this.o.links().length === 0) return
    for (const key of this.o.store.refs.getKeys({})) {
      const id = key as Buffer
      if (1 + this.holders.get(id).length < this.o.replicaCount) this.queue.add(id.toString('hex'))
    }
    this.pump()
  }

  summary (): ReplicationSummary {
    const s: ReplicationSummary = { target: this.o.replicaCount, chunks: 0, atTarget: 0, underReplicated: 0, onlyHere: 0, lost: 0, pendingBytes: 0, uploadRate: this.rate() }
    for (const key of this.o.store.refs.getKeys({})) {
      const id = key as Buffer
      s.chunks++
      const h = this.holders.get(id).length
      const local = this.o.store.chunks.doesExist(id)
      const copies = h + (local ? 1 : 0)
      if (copies === 0) { s.lost++; s.underReplicated++; continue }
      if (copies >= this.o.replicaCount) { s.atTarget++; continue }
      s.underReplicated++
      if (h === 0) s.onlyHere++
      const size = local ? (this.o.store.chunks.getBinary(id)?.length ?? 0) : 0
      s.pendingBytes += size * (this.o.replicaCount - copies)
    }
    return s
  }

  copiesOf (id: Buffer): number {
    return this.holders.get(id).length + (this.o.store.chunks.doesExist(id) ? 1 : 0)
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

  private async replicate (id: Buffer): Promise<void> {
    if (!this.o.store.refs.doesExist(id)) return // deleted meanwhile
    const have = this.holders.get(id)
    let need = this.o.replicaCount - 1 - have.length
    if (need <= 0) return
    const candidates = rank(id, this.o.links().filter(l => !have.includes(l.id) && l.id !== this.o.selfId))
    if (candidates.length === 0) return
    await this.o.store.chunks.prefetch([id])
    const record = this.o.store.chunks.getBinary(id)
    if (!record) return // lost locally: healing fetches it back on read
    for (const link of candidates) {
      if (need <= 0 || this.closed) break
      const r = await link.putChunk(id, record).catch((e: Error) => ({ ok: false, reason: e.message }))
      if (r.ok) {
        this.holders.add(id, link.id)
        this.acked.push({ t: Date.now(), bytes: record.length })
        need--
      } else {
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
