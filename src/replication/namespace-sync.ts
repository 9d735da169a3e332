import type { LmdbStore } from '../store/lmdb-store.js'
import type { OpLog } from '../meta/shared/op-log.js'
import type { SharedNamespace } from '../meta/shared/shared-namespace.js'
import type { NsHead } from '../codec/wire.js'
import { snapshotIdOf, verifySnapshot } from '../codec/snapshot-record.js'
import { fetchSnapshot, snapshotRefusal } from '../meta/shared/snapshots.js'
import { opRecordHeader, OP_HEADER_BYTES } from '../codec/op-record.js'
import { Quarantine } from './quarantine.js'

const REPLY_BUDGET_BYTES = 4 * 1024 * 1024
const PUSH_BATCH_BYTES = 4 * 1024 * 1024
const PUSH_BATCH_RECORDS = 1024
const ANTI_ENTROPY_MS = 3000

// What the sync needs of a connected peer.
export interface NsPeer {
  id: string
  role: 'full' | 'storage'
  sync: (heads: NsHead[], frontier: bigint) => Promise<{ records: Buffer[], more: boolean, snapshot?: Buffer }>
  push: (records: Buffer[]) => Promise<number>
  offer: (snapshot: Buffer) => Promise<void>
  part: (snapshot: Buffer, index: number) => Promise<Buffer | null> // part `index` of the snapshot with that id
  close: (reason: string) => void
}

export interface NamespaceSyncOptions {
  store: LmdbStore
  log: OpLog
  shared: SharedNamespace | null // null on a storage-only member: it keeps and relays records it cannot open
  peers: () => NsPeer[]
  print: (line: string) => void
  // Whether a record's signer is a member in good standing (volume/member-set.ts);
  // absent: every signer is (tests of the sync alone).
  signerOk?: (member: string, seq: number) => 'ok' | 'unknown' | 'revoked'
}

export interface NsPeerState { id: string, behind: number, lastSync: number | null }

// Exchanges the members' namespace logs (docs/protocol.md, "Namespace sync"):
// new local records are pushed to every peer at once; records accepted from
// one peer are relayed to the others; and every few seconds, and whenever a
// peer connects, each side asks the other for what its heads lack, which
// fills any gap a lost push left. A peer that sends a record that fails
// verification is disconnected.
export class NamespaceSync {
  private readonly peerHeads = new Map<string, Map<string, number>>()
  private readonly lastSync = new Map<string, number>()
  private readonly pulling = new Set<string>()
  private timer: NodeJS.Timeout | null = null
  private closed = false
  private readonly blamed = new Map<string, number>() // storage-only relayers of refused records: when last logged
  private adopting = false
  readonly quarantine: Quarantine

  constructor (private readonly o: NamespaceSyncOptions) {
    this.quarantine = new Quarantine(o.store)
    o.shared?.onRecords(records => this.relay(records, null))
    o.shared?.onSnapshot(snapshot => {
      for (const p of this.o.peers()) p.offer(snapshot).catch(() => {})
    })
  }

  // A full peer offers its snapshot (it compacted): fetched from it and
  // adopted in the background. Returns 1 when it is taken up.
  answerSnapshot (from: NsPeer, snapshot: Buffer): number {
    if (this.adopting) return 0
    this.adopt(from, snapshot).catch(() => {})
    return 1
  }

  // Part `index` of the snapshot we keep, if `id` is still its id.
  answerPart (id: Buffer, index: number): Buffer | null {
    const snap = this.o.log.snapshot
    if (snap === null || !id.equals(snapshotIdOf(snap) ?? Buffer.alloc(0))) return null
    return this.o.log.snapshotPart(index)
  }

  start (): void {
    this.timer = setInterval(() => { for (const p of this.o.peers()) this.pull(p) }, ANTI_ENTROPY_MS)
    this.timer.unref()
  }

  peerConnected (p: NsPeer): void {
    this.pull(p)
  }

  // A peer asks for what its heads lack; its heads also tell us how far
  // behind it is, and a full member's frontier feeds our compaction horizon.
  // A peer below what we still keep as records gets our snapshot too.
  answerSync (from: NsPeer, frontier: bigint, heads: NsHead[]): { records: Buffer[], more: boolean, snapshot?: Buffer } {
    const map = headsMap(heads)
    this.peerHeads.set(from.id, map)
    if (from.role === 'full' && frontier > 0n) this.o.shared?.noteFrontier(from.id, frontier, map.get(from.id) ?? 0)
    const out: { records: Buffer[], more: boolean, snapshot?: Buffer } = this.o.log.missingFor(map, REPLY_BUDGET_BYTES)
    if (this.o.log.needsSnapshot(map)) {
      const snap = this.o.log.snapshot
      if (snap) out.snapshot = snap
    }
    return out
  }

  answerPush (from: NsPeer, records: Buffer[]): number {
    return this.ingest(from, records)
  }

  status (): NsPeerState[] {
    return [...this.peerHeads].map(([id, heads]) => ({ id, behind: this.o.log.behind(heads), lastSync: this.lastSync.get(id) ?? null }))
  }

  close (): void {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
  }

  private heads (): NsHead[] {
    return this.o.log.allHeads().map(h => ({ member: Buffer.from(h.member, 'hex'), seq: h.seq }))
  }

  private pull (p: NsPeer): void {
    if (this.closed || this.pulling.has(p.id)) return
    this.pulling.add(p.id)
    const loop = async (): Promise<void> => {
      for (let round = 0; round < 1000 && !this.closed; round++) {
        const r = await p.sync(this.heads(), this.o.shared?.frontier() ?? 0n)
        if (r.snapshot) await this.adopt(p, r.snapshot)
        this.ingest(p, r.records)
        if (!r.more || r.records.length === 0) break
      }
      this.lastSync.set(p.id, Date.now())
    }
    loop().catch(e => this.o.print(`namespace sync with ${p.id.slice(0, 12)}: ${(e as Error).message}`))
      .finally(() => this.pulling.delete(p.id))
  }

  // A full member adopts a snapshot only when it covers changes it lacks (it
  // compacts by itself otherwise); a storage-only member also when it lets
  // it drop records it keeps. The parts are fetched from the peer that sent
  // the header. A snapshot that fails verification cuts the peer off; one
  // whose claims we do not believe (snapshotRefusal) is only ignored: the
  // peer may have relayed it in good faith.
  private async adopt (from: NsPeer, snapshot: Buffer): Promise<boolean> {
    if (this.adopting) return false
    this.adopting = true
    try {
      const fetch = async (i: number): Promise<Buffer | null> => await from.part(snapshotIdOf(snapshot) ?? Buffer.alloc(16), i)
      if (this.o.shared) return await this.o.shared.adoptSnapshot(snapshot, fetch)
      const h = verifySnapshot(snapshot)
      if (!h.covered.some(c => c.seq > this.o.log.headOf(c.member)) && !this.o.log.wouldFold(h.base)) return false
      const refusal = snapshotRefusal(h, this.o.log, null, 0)
      if (refusal !== null) {
        this.o.print(`peer ${from.id.slice(0, 12)} sent a namespace snapshot we ignore: ${refusal}`)
        return false
      }
      const { parts } = await fetchSnapshot(h, null, fetch, null)
      if (this.closed) return false
      // Records it never had up to `covered` cannot be served: the floor goes there too.
      const upTo = h.covered.map(c => {
        const b = h.base.find(x => x.member === c.member)?.seq ?? 0
        return { member: c.member, seq: c.seq > this.o.log.headOf(c.member) ? c.seq : b }
      })
      this.o.store.txn(() => this.o.log.fold(snapshot, parts, upTo, h.covered))
      this.o.log.sweep()
      return true
    } catch (e) {
      const err = e as Error & { code?: string }
      if (err.code === 'EPERM' || err.code === 'ENOENT' || err.code === 'PEER_TIMEOUT' || err.code === 'PEER_CLOSED') {
        this.o.print(`namespace snapshot from ${from.id.slice(0, 12)} not adopted: ${err.message}`)
        return false
      }
      if (from.role === 'storage') {
        this.o.print(`peer ${from.id.slice(0, 12)} relayed a namespace snapshot that failed verification (${err.message}); refused`)
        return false
      }
      this.o.print(`peer ${from.id.slice(0, 12)} sent a namespace snapshot that failed verification (${err.message}); disconnecting it`)
      from.close('sent an invalid namespace snapshot')
      return false
    } finally {
      this.adopting = false
    }
  }

  // Verifies and stores records from a peer, applies them (full members) and
  // relays the new ones to everyone else.
  private ingest (from: NsPeer | null, all: Buffer[]): number {
    // Records of signers not in good standing are set aside first: refused
    // whoever relayed them, and the relayer is not blamed (it may not know
    // the revocation yet, or be a storage-only member that cannot tell).
    const records = this.screen(all)
    if (records.length === 0) return 0
    let accepted: Buffer[]
    let rejected = 0
    let reason: string | undefined
    if (this.o.shared) {
      ({ accepted, rejected, reason } = this.o.shared.receive(records))
    } else {
      accepted = []
      this.o.store.txn(() => {
        for (const r of records) {
          try {
            if (this.o.log.accept(r)) accepted.push(Buffer.from(r))
          } catch (e) {
            rejected++
            reason = (e as Error).message
          }
        }
      })
    }
    if (rejected > 0 && from !== null) {
      // A storage-only member cannot open records, so it relays whatever a
      // key signed: the record is refused, the relayer not blamed (a full
      // member checks what it relays, so an invalid record from one is its own).
      if (from.role === 'storage') {
        const last = this.blamed.get(from.id) ?? 0
        if (Date.now() - last > 60_000) this.o.print(`peer ${from.id.slice(0, 12)} relayed ${rejected} namespace record(s) that failed verification (${reason ?? 'invalid'}); refused, not applied`)
        this.blamed.set(from.id, Date.now())
      } else {
        this.o.print(`peer ${from.id.slice(0, 12)} sent ${rejected} namespace record(s) that failed verification (${reason ?? 'invalid'}); disconnecting it`)
        from.close('sent an invalid namespace record')
      }
    }
    if (accepted.length > 0) this.relay(accepted, from?.id ?? null)
    return accepted.length
  }

  private screen (records: Buffer[]): Buffer[] {
    const check = this.o.signerOk
    if (check === undefined) return records
    const out: Buffer[] = []
    let kept = 0
    this.o.store.txn(() => {
      for (const r of records) {
        // A record too short for a header fails verification later, as before.
        if (r.length < OP_HEADER_BYTES) { out.push(r); continue }
        const h = opRecordHeader(r)
        if (this.o.log.has(h.member, h.seq) || check(h.member, h.seq) === 'ok') { out.push(r); continue }
        this.quarantine.put(h.member, h.seq, r)
        kept++
      }
    })
    if (kept > 0 && Date.now() - this.lastQuarantineLog > 60_000) {
      this.lastQuarantineLog = Date.now()
      this.o.print(`namespace: ${kept} record(s) of signers that are not members in good standing set aside (quarantined), not applied`)
    }
    return out
  }

  private lastQuarantineLog = 0

  // A certificate came for `member`: the records of it we set aside are
  // taken now, as if a peer had sent them.
  released (member: string): number {
    const records = this.quarantine.release(member)
    return records.length === 0 ? 0 : this.ingest(null, records)
  }

  private relay (records: Buffer[], except: string | null): void {
    if (this.closed) return
    const batches: Buffer[][] = []
    let batch: Buffer[] = []
    let bytes = 0
    for (const r of records) {
      if (batch.length > 0 && (bytes + r.length > PUSH_BATCH_BYTES || batch.length >= PUSH_BATCH_RECORDS)) { batches.push(batch); batch = []; bytes = 0 }
      batch.push(r)
      bytes += r.length
    }
    if (batch.length > 0) batches.push(batch)
    for (const p of this.o.peers()) {
      if (p.id === except) continue
      for (const b of batches) {
        p.push(b).catch(() => {
          // A lost push is repaired by the next anti-entropy round.
        })
      }
    }
  }
}

function headsMap (heads: NsHead[]): Map<string, number> {
  const m = new Map<string, number>()
  for (const h of heads) m.set(h.member.toString('hex'), h.seq)
  return m
}
