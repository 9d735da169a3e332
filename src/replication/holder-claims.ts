import type { LmdbStore } from '../store/lmdb-store.js'
import type { Holders } from './holders.js'
import { challenge, type Prover } from './holder-proofs.js'

const TICK_MS = 1000 // claims are proven at most this often per peer
const MAX_CLAIMS = 256 // claims of one peer challenged per tick at most
const MAX_BYTES = 32 * 1024 * 1024 // and no more record bytes than this (each side hashes them)
const EMPTY = Buffer.alloc(0)

export interface ClaimLink extends Prover { id: string }

export interface ClaimsReport {
  pending: number // claims waiting for their proof (`claims`)
  proven: number // this run: claims that proved and now count
  refuted: number // this run: claims whose proof failed, never counted
}

export interface HolderClaimsOptions {
  store: LmdbStore
  holders: Holders
  links: () => ClaimLink[] // connected peers
  // A peer's claims about chunks we do not hold (nothing to challenge with)
  // count, unproven, unless the peer is distrusted (it failed a proof).
  distrusted: (peer: string) => boolean
  refuted: (peer: string, n: number) => void
  log: (line: string) => void
}

// A peer's word that it holds a copy (a HOLDING note, a HAS "yes") is a
// claim, not a copy: for a chunk we hold ourselves it counts only after the
// peer proves it (a keyed hash of the record under a fresh nonce), at a
// bounded rate (MAX_CLAIMS / MAX_BYTES per peer and TICK_MS). Until then it
// waits in `claims` (LMDB: node · chunk), and status does not count it. A
// claim about a chunk we do not hold cannot be challenged here: it counts
// as a copy never proven (status's `unproven`), and the holder audit checks
// it by HAS; a peer that failed a proof gets no such credit.
// Copies we pushed and saw acknowledged, and copies a peer pushed to us,
// count at once (the record went over the wire): they are not claims.
export class HolderClaims {
  private timer: NodeJS.Timeout | null = null
  private closed = false
  private running = false
  private proven = 0
  private refutedTotal = 0

  constructor (private readonly o: HolderClaimsOptions) {}

  close (): void {
    this.closed = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
  }

  report (): ClaimsReport {
    return { pending: (this.o.store.claims.getStats() as { entryCount: number }).entryCount, proven: this.proven, refuted: this.refutedTotal }
  }

  // Records a peer's claims; returns how many became holdings at once
  // (unproven, for chunks not held here).
  claim (peer: string, ids: Buffer[]): number {
    if (ids.length === 0) return 0
    const node = Buffer.from(peer, 'hex')
    const trusted = !this.o.distrusted(peer)
    let added = 0
    let queued = 0
    this.o.store.txn(() => {
      for (const id of ids) {
        if (this.o.store.hasChunk(id)) {
          if (this.provenHolder(node, id)) continue
          this.o.store.claims.putSync(Buffer.concat([node, id]), EMPTY)
          queued++
        } else if (trusted && this.o.store.addHolderSync(id, node)) {
          added++
        }
      }
    })
    if (queued > 0) this.schedule(0)
    return added
  }

  // The peer says it no longer holds these: nothing left to prove.
  forget (peer: string, ids: Buffer[]): void {
    const node = Buffer.from(peer, 'hex')
    this.o.store.txn(() => { for (const id of ids) this.o.store.claims.removeSync(Buffer.concat([node, id])) })
  }

  // A peer (re)connected: its waiting claims can be proven now.
  peerConnected (): void {
    this.schedule(0)
  }

  private provenHolder (node: Buffer, id: Buffer): boolean {
    return (this.o.store.held.getBinary(Buffer.concat([node, id]))?.readDoubleLE(0) ?? 0) > 0
  }

  private schedule (ms: number): void {
    if (this.timer || this.closed) return
    this.timer = setTimeout(() => { this.timer = null; void this.run() }, ms)
    this.timer.unref()
  }

  private async run (): Promise<void> {
    if (this.running || this.closed) return
    this.running = true
    let more = false
    try {
      for (const link of this.o.links()) {
        if (this.closed) break
        if (await this.proveSome(link).catch(e => { this.o.log(`claims of ${link.id.slice(0, 12)}: ${(e as Error).message}`); return false })) more = true
      }
    } finally {
      this.running = false
    }
    if (more) this.schedule(TICK_MS)
  }

  // One bounded batch of a peer's claims; whether more are waiting.
  private async proveSome (link: ClaimLink): Promise<boolean> {
    const node = Buffer.from(link.id, 'hex')
    const end = Buffer.concat([node, Buffer.alloc(32, 0xff), Buffer.from([0])])
    const keys: Buffer[] = []
    let bytes = 0
    for (const key of this.o.store.claims.getKeys({ start: node, end, limit: MAX_CLAIMS + 1 })) {
      if (keys.length === MAX_CLAIMS || bytes >= MAX_BYTES) return await this.settle(link, keys, true)
      const k = Buffer.from(key as Buffer)
      keys.push(k)
      bytes += this.o.store.chunks.getBinaryFast(k.subarray(32))?.length ?? 0
    }
    return await this.settle(link, keys, false)
  }

  private async settle (link: ClaimLink, keys: Buffer[], more: boolean): Promise<boolean> {
    if (keys.length === 0) return false
    const ids = keys.map(k => Buffer.from(k.subarray(32)))
    const outcome = await challenge(link, this.o.store, ids)
    if (outcome.every(o => o === 'unknown') && !this.o.links().some(l => l.id === link.id)) return false // it went away: its claims wait
    const proven = ids.filter((_, i) => outcome[i] === 'proven')
    const refuted = outcome.filter(o => o === 'failed').length
    this.o.store.txn(() => {
      for (const k of keys) this.o.store.claims.removeSync(k)
    })
    if (proven.length > 0) this.o.holders.addMany(proven, link.id, Date.now())
    this.proven += proven.length
    if (refuted > 0) {
      this.refutedTotal += refuted
      this.o.refuted(link.id, refuted)
      this.o.log(`peer ${link.id.slice(0, 12)} claimed ${refuted} cop${refuted === 1 ? 'y' : 'ies'} it could not prove: not counted`)
    }
    return more
  }
}
