import sodium from 'sodium-native'
import type { LmdbStore } from '../store/lmdb-store.js'
import type { Holders } from './holders.js'
import type { ReplicaState } from './replica-state.js'
import { challenge } from './holder-proofs.js'
import { HolderClaims, type ClaimsReport } from './holder-claims.js'

const HAS_BATCH = 4096 // the HAS message limit
const ROUND_MS = 10_000 // one challenge round per peer this often
const SAMPLE = 32 // holdings looked at per peer and round: half in order, half at random
const PROOF_PERIOD_MS = 24 * 3600 * 1000 // every holding checked within this, once a first pass measured how many a peer has
const MAX_IN_ORDER = 512 // holdings in order per round at most (a peer of 4.4 million holdings in a day)
const EXPIRE_MS = 30_000 // how often offline holders are checked against repairAfter
const NOTE_DELAY_MS = 250 // holding notes gathered this long
const ASK_DELAY_MS = 500 // newly tracked chunks gathered this long before asking peers
const SLICE = 2000 // holdings removed per transaction

export interface AuditLink {
  id: string
  has: (ids: Buffer[]) => Promise<boolean[]>
  prove: (nonce: Buffer, ids: Buffer[]) => Promise<Array<Buffer | null>>
  holding: (held: Buffer[], dropped: Buffer[]) => Promise<number>
  stats: () => Promise<{ chunks: number }>
}

export interface PeerPresence { id: string, online: boolean, lastSeen: number }

export interface HolderAuditOptions {
  store: LmdbStore
  holders: Holders
  state: ReplicaState
  links: () => AuditLink[]
  peers: () => PeerPresence[] // every peer seen this run, online or not
  repairAfter: number // ms an offline holder's copies still count
  storageOnly: boolean
  log: (line: string) => void
}

export interface PeerAudit {
  id: string
  checked: number // holdings checked by challenge or HAS this run
  proven: number // of them, proven by a keyed hash of the record
  failed: number // holdings that failed (no copy, or a wrong proof): removed
  lastRound: number | null // ms
  wiped: number // times most of a sample failed and every holding was checked
  checkedAllSince: number | null // ms: every holding of this peer was checked at or after this (the last full pass of the cursor began then); null before one finished
}

export interface AuditReport {
  peers: PeerAudit[]
  claims: ClaimsReport // peers' word about their copies, counted only once proven (holder-claims.ts)
  expired: number // holdings removed because their holder was offline past repairAfter
  lastExpiry: number | null
}

// Holder knowledge, shared and checked (docs/protocol.md, "Holder proofs"):
// - this node tells its peers which chunks it now holds or no longer holds
//   (HOLDING), as its store changes;
// - when its tree starts referencing chunks (or a peer connects), it asks
//   peers which of the chunks below target they hold (HAS);
// - every ROUND_MS it checks a sample of each connected peer's holdings: a
//   chunk it holds itself by a challenge only the record answers (a keyed
//   BLAKE2b of the record under a fresh nonce, compared with its own), the
//   others by HAS. A holding that fails is removed at once; a sample that
//   mostly fails (a wiped store) has every holding of that peer checked;
// - a holder offline longer than repairAfter loses its holdings.
// Removing a holding marks the chunk dirty, ReplicaState recounts it, and
// the replicator repairs what fell below target. Costs follow change and
// the sample size, never the volume's size.
export class HolderAudit {
  private readonly audits = new Map<string, PeerAudit>()
  private readonly cursors = new Map<string, Buffer | null>()
  private readonly passStarted = new Map<string, number>()
  private readonly outHeld = new Set<string>()
  private readonly outDropped = new Set<string>()
  private noteTimer: NodeJS.Timeout | null = null
  private readonly toAsk = new Set<string>()
  private askTimer: NodeJS.Timeout | null = null
  private roundTimer: NodeJS.Timeout | null = null
  private expireTimer: NodeJS.Timeout | null = null
  private readonly started = Date.now()
  private closed = false
  private rounding = false
  private expired = 0
  private lastExpiry: number | null = null
  private readonly busyPeers = new Set<string>()

  readonly claims: HolderClaims

  constructor (private readonly o: HolderAuditOptions) {
    this.claims = new HolderClaims({
      store: o.store,
      holders: o.holders,
      links: o.links,
      distrusted: peer => this.distrusted.has(peer),
      refuted: peer => this.distrusted.add(peer),
      log: o.log
    })
    o.state.onLocalChange((ids, local) => this.noteLocal(ids, local))
    o.state.onTracked(ids => this.ask(ids))
  }

  start (): void {
    this.roundTimer = setInterval(() => { void this.round() }, ROUND_MS)
    this.roundTimer.unref()
    this.expireTimer = setInterval(() => { void this.expire() }, Math.max(1000, Math.min(EXPIRE_MS, this.o.repairAfter / 2)))
    this.expireTimer.unref()
  }

  close (): void {
    this.closed = true
    this.claims.close()
    for (const t of [this.noteTimer, this.askTimer]) if (t) clearTimeout(t)
    for (const t of [this.roundTimer, this.expireTimer]) if (t) clearInterval(t)
  }

  report (): AuditReport {
    return { peers: [...this.audits.values()].map(a => ({ ...a })), claims: this.claims.report(), expired: this.expired, lastExpiry: this.lastExpiry }
  }

  // A peer connected: what it holds may have changed while apart. It says
  // how many chunks it holds (0 after a wiped store: its holdings go now),
  // gets a challenge round at once, and is asked about the chunks below
  // target.
  async peerConnected (link: AuditLink): Promise<void> {
    const stats = await link.stats().catch(() => null)
    if (stats && stats.chunks === 0) {
      const n = await this.dropAllOf(link.id)
      if (n > 0) this.o.log(`peer ${link.id.slice(0, 12)} holds no chunks: its ${n} holdings no longer count`)
    }
    await this.checkPeer(link).catch(e => this.o.log(`holder check of ${link.id.slice(0, 12)}: ${(e as Error).message}`))
    this.claims.peerConnected()
    await this.askLapsed(link)
    await this.askAll(link)
  }

  // A holder back after its holdings lapsed (offline past repairAfter): the
  // copies it still has count again (the trimmer then removes the surplus).
  private async askLapsed (link: AuditLink): Promise<void> {
    const node = Buffer.from(link.id, 'hex')
    const end = Buffer.concat([node, Buffer.alloc(32, 0xff), Buffer.from([0])])
    let back = 0
    while (!this.closed) {
      const keys: Buffer[] = []
      for (const key of this.o.store.lapsed.getKeys({ start: node, end, limit: HAS_BATCH })) keys.push(Buffer.from(key as Buffer))
      if (keys.length === 0) break
      const ids = keys.map(k => k.subarray(32))
      const have = await link.has(ids).catch(() => null)
      if (!have) return
      const held = ids.filter((id, i) => have[i] && this.tracks(id))
      this.o.store.txn(() => { for (const k of keys) this.o.store.lapsed.removeSync(k) })
      this.claims.claim(link.id, held)
      back += held.length
    }
    if (back > 0) this.o.log(`peer ${link.id.slice(0, 12)} is back and says it holds ${back} copies: they count again once proven`)
  }

  // --- notes of our own holdings ---

  // A copy stored for a peer: said at once, whatever our counts thought of
  // it before (a copy lost behind our back comes back unnoticed by them).
  noteStored (id: Buffer): void {
    this.noteLocal([Buffer.from(id)], true)
  }

  private noteLocal (ids: Buffer[], local: boolean): void {
    for (const id of ids) {
      const hex = id.toString('hex')
      if (local) { this.outHeld.add(hex); this.outDropped.delete(hex) } else { this.outDropped.add(hex); this.outHeld.delete(hex) }
    }
    if (this.noteTimer || this.closed) return
    this.noteTimer = setTimeout(() => { this.noteTimer = null; void this.sendNotes() }, NOTE_DELAY_MS)
    this.noteTimer.unref()
  }

  private async sendNotes (): Promise<void> {
    const links = this.o.links()
    while (!this.closed && (this.outHeld.size > 0 || this.outDropped.size > 0)) {
      const held = take(this.outHeld, HAS_BATCH)
      const dropped = take(this.outDropped, HAS_BATCH - held.length)
      await Promise.all(links.map(l => l.holding(held, dropped).catch(() => 0)))
    }
  }

  // A peer's note about its own holdings, for chunks we track: what it
  // holds is a claim (counted once proven: holder-claims.ts), what it
  // dropped stops counting at once (a peer may always speak against itself).
  async answerHolding (link: AuditLink, held: Buffer[], dropped: Buffer[]): Promise<number> {
    const node = Buffer.from(link.id, 'hex')
    let n = this.claims.claim(link.id, held.filter(id => this.tracks(id)))
    this.claims.forget(link.id, dropped)
    this.o.store.txn(() => {
      for (const id of dropped) if (this.o.store.removeHolderSync(id, node)) n++
    })
    return n
  }

  // Peers that failed a proof: their word about chunks we cannot challenge
  // for (not held here) no longer counts at all.
  private readonly distrusted = new Set<string>()

  private tracks (id: Buffer): boolean {
    return this.o.storageOnly ? this.o.store.hasChunk(id) : this.o.store.refs.doesExist(id)
  }

  // --- asking who holds what ---

  private ask (ids: Buffer[]): void {
    for (const id of ids) this.toAsk.add(id.toString('hex'))
    if (this.askTimer || this.closed) return
    this.askTimer = setTimeout(() => { this.askTimer = null; void this.askNew() }, ASK_DELAY_MS)
    this.askTimer.unref()
  }

  private async askNew (): Promise<void> {
    while (!this.closed && this.toAsk.size > 0) {
      const ids = take(this.toAsk, HAS_BATCH)
      for (const link of this.o.links()) await this.learn(link, ids)
    }
  }

  // One batch of the chunks below target asked of every peer each round, a
  // cursor going round them: what notes missed is learnt eventually, at a
  // bounded cost, and nothing when every chunk is at target.
  private needsCursor: Buffer | null = null
  private async askSome (links: AuditLink[]): Promise<void> {
    if (links.length === 0) return
    const ids = this.needsAfter(this.needsCursor)
    this.needsCursor = ids.length === HAS_BATCH ? ids[ids.length - 1] : null
    if (ids.length === 0) return
    for (const link of links) await this.learn(link, ids)
  }

  // Up to HAS_BATCH chunks below target, in id order after `from`.
  private needsAfter (from: Buffer | null): Buffer[] {
    const ids: Buffer[] = []
    for (const key of this.o.store.needs.getKeys({ start: from ?? undefined, limit: HAS_BATCH + 1 })) {
      const k = key as Buffer
      if (from && k.equals(from)) continue
      ids.push(Buffer.from(k))
      if (ids.length === HAS_BATCH) break
    }
    return ids
  }

  // Every chunk below target, asked of one peer, in batches.
  private async askAll (link: AuditLink): Promise<void> {
    let from: Buffer | null = null
    while (!this.closed) {
      const ids = this.needsAfter(from)
      if (ids.length === 0) return
      if (!await this.learn(link, ids)) return
      from = ids[ids.length - 1]
      if (ids.length < HAS_BATCH) return
    }
  }

  private async learn (link: AuditLink, ids: Buffer[]): Promise<boolean> {
    const have = await link.has(ids).catch(() => null)
    if (!have) return false
    this.claims.claim(link.id, ids.filter((id, i) => have[i] && this.tracks(id)))
    return true
  }

  // --- challenges ---

  private async round (): Promise<void> {
    if (this.rounding || this.closed) return
    this.rounding = true
    try {
      const links = this.o.links()
      for (const link of links) await this.checkPeer(link).catch(e => this.o.log(`holder check of ${link.id.slice(0, 12)}: ${(e as Error).message}`))
      await this.askSome(links)
    } finally {
      this.rounding = false
    }
  }

  // Exposed for tests: one challenge round against one peer now.
  async checkPeer (link: AuditLink): Promise<void> {
    if (this.busyPeers.has(link.id)) return
    this.busyPeers.add(link.id)
    try {
      await this.checkSample(link)
    } finally {
      this.busyPeers.delete(link.id)
    }
  }

  private async checkSample (link: AuditLink): Promise<void> {
    const a = this.auditOf(link.id)
    a.lastRound = Date.now()
    // Only holdings of chunks we track: asking about the others would renew
    // the holder's lease on copies nobody needs (holding-leases.ts).
    const sample = this.sampleOf(link.id).filter(id => this.tracks(id))
    if (sample.length === 0) return
    const mine = sample.filter(id => this.o.store.hasChunk(id))
    const others = sample.filter(id => !mine.includes(id))
    const failed: Buffer[] = []
    const proven: Buffer[] = []
    const outcome = await challenge(link, this.o.store, mine)
    mine.forEach((id, i) => {
      if (outcome[i] === 'proven') proven.push(id)
      else if (outcome[i] === 'failed') failed.push(id)
    })
    if (others.length > 0) {
      const have = await link.has(others).catch(() => null)
      if (have) others.forEach((id, i) => { if (!have[i]) failed.push(id) })
    }
    a.checked += sample.length
    a.proven += proven.length
    const now = Date.now()
    if (proven.length > 0) this.o.holders.addMany(proven, link.id, now)
    if (failed.length === 0) {
      // A round without a failure, with proofs: its word counts again.
      if (proven.length > 0) this.distrusted.delete(link.id)
      return
    }
    this.distrusted.add(link.id)
    a.failed += this.lapse(failed, link.id)
    this.o.log(`peer ${link.id.slice(0, 12)} failed ${failed.length} of ${sample.length} holding checks: those copies no longer count`)
    if (failed.length >= 2 && failed.length * 4 >= sample.length) {
      a.wiped++
      const removed = await this.checkAll(link)
      if (removed > 0) this.o.log(`peer ${link.id.slice(0, 12)} lost ${removed} more copies (every holding checked): repairing`)
      a.failed += removed
    }
  }

  // A sample of a peer's holdings: some from a cursor that walks them all in
  // turn (16 a round, more for a peer holding so many that a pass would
  // take longer than PROOF_PERIOD_MS, as measured by the last pass), and
  // SAMPLE/2 at random places (a wholesale loss shows in the first round).
  private readonly inOrder = new Map<string, number>()
  private readonly passCount = new Map<string, number>()
  private sampleOf (peer: string): Buffer[] {
    const out = new Map<string, Buffer>()
    let cursor = this.cursors.get(peer) ?? null
    const a = this.auditOf(peer)
    const step = this.inOrder.get(peer) ?? SAMPLE / 2
    if (cursor === null) this.passStarted.set(peer, Date.now())
    let got = this.o.holders.heldBy(peer, cursor, step)
    this.passCount.set(peer, (this.passCount.get(peer) ?? 0) + got.length)
    if (got.length < step) {
      // The cursor reached the end: a pass over every holding is complete.
      a.checkedAllSince = this.passStarted.get(peer) ?? Date.now()
      const count = this.passCount.get(peer) ?? 0
      this.inOrder.set(peer, Math.min(MAX_IN_ORDER, Math.max(SAMPLE / 2, Math.ceil(count * ROUND_MS / PROOF_PERIOD_MS))))
      this.passCount.set(peer, 0)
      this.passStarted.set(peer, Date.now())
      if (cursor !== null) got = got.concat(this.o.holders.heldBy(peer, null, step - got.length))
    }
    for (const h of got) out.set(h.id.toString('hex'), h.id)
    cursor = got.length > 0 ? got[got.length - 1].id : null
    this.cursors.set(peer, cursor)
    for (let i = 0; i < SAMPLE / 2; i++) {
      const at = Buffer.alloc(32)
      sodium.randombytes_buf(at)
      const h = this.o.holders.heldBy(peer, at, 1)[0] ?? this.o.holders.heldBy(peer, null, 1)[0]
      if (h) out.set(h.id.toString('hex'), h.id)
    }
    return [...out.values()]
  }

  // Every holding of a peer, by HAS; the ones it denies are removed.
  private async checkAll (link: AuditLink): Promise<number> {
    let after: Buffer | null = null
    let removed = 0
    while (!this.closed) {
      const batch: Buffer[] = this.o.holders.heldBy(link.id, after, HAS_BATCH).map(h => h.id)
      if (batch.length === 0) break
      const have = await link.has(batch).catch(() => null)
      if (!have) break
      const gone = batch.filter((_, i) => !have[i])
      if (gone.length > 0) removed += this.lapse(gone, link.id)
      after = batch[batch.length - 1]
      this.auditOf(link.id).checked += batch.length
    }
    return removed
  }

  // --- holders gone too long ---

  async expire (): Promise<void> {
    if (this.closed) return
    this.lastExpiry = Date.now()
    const seen = new Map(this.o.peers().map(p => [p.id, p]))
    for (const peer of this.o.holders.peers()) {
      const p = seen.get(peer)
      if (p?.online === true) continue
      const since = Math.max(p?.lastSeen ?? 0, this.started)
      if (Date.now() - since < this.o.repairAfter) continue
      const n = await this.dropAllOf(peer, true)
      if (n > 0) this.o.log(`peer ${peer.slice(0, 12)} offline longer than repairAfter (${Math.round(this.o.repairAfter / 1000)} s): its ${n} copies no longer count`)
      this.expired += n
    }
  }

  // Removes every holding of a peer, a slice per event-loop turn; `lapse`:
  // remembered, to ask about when it returns.
  async dropAllOf (peer: string, lapse = false): Promise<number> {
    let n = 0
    const node = Buffer.from(peer, 'hex')
    while (!this.closed) {
      const batch = this.o.holders.heldBy(peer, null, SLICE).map(h => h.id)
      if (batch.length === 0) break
      if (lapse) this.o.store.txn(() => { for (const id of batch) this.o.store.lapsed.putSync(Buffer.concat([node, id]), Buffer.alloc(0)) })
      n += this.o.holders.removeMany(batch, peer)
      await new Promise(resolve => setImmediate(resolve))
    }
    return n
  }

  // Removes holdings and remembers them (`lapsed`): asked about again when
  // the peer next connects, through proofs if it failed one.
  private lapse (ids: Buffer[], peer: string): number {
    const node = Buffer.from(peer, 'hex')
    this.o.store.txn(() => { for (const id of ids) this.o.store.lapsed.putSync(Buffer.concat([node, id]), Buffer.alloc(0)) })
    return this.o.holders.removeMany(ids, peer)
  }

  private auditOf (peer: string): PeerAudit {
    let a = this.audits.get(peer)
    if (!a) this.audits.set(peer, a = { id: peer, checked: 0, proven: 0, failed: 0, lastRound: null, wiped: 0, checkedAllSince: null })
    return a
  }
}

function take (set: Set<string>, n: number): Buffer[] {
  const out: Buffer[] = []
  for (const hex of set) {
    if (out.length >= n) break
    set.delete(hex)
    out.push(Buffer.from(hex, 'hex'))
  }
  return out
}
