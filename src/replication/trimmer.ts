import type { LmdbStore } from '../store/lmdb-store.js'
import type { Holders } from './holders.js'
import type { PinPolicy } from './replicator.js'
import { rank } from './placement.js'
import { Periodic } from './periodic.js'
import { proves } from './holder-proofs.js'
import { unforeignSync } from '../store/foreign-holdings.js'

const EVERY_MS = 5000 // a look at the surplus set, empty unless a holder came back
const BATCH = 4096

export interface TrimLink {
  id: string
  prove: (nonce: Buffer, ids: Buffer[]) => Promise<Array<Buffer | null>>
  trim: (ids: Buffer[]) => Promise<number>
}

export interface TrimmerOptions {
  store: LmdbStore
  holders: Holders
  selfId: string
  replicaCount: number
  links: () => TrimLink[] // connected peers
  pins?: () => PinPolicy | null
  surplus: Set<string> // chunks of ours with more than replicaCount copies (ReplicaState keeps it)
  exempt?: (hex: string) => boolean // chunks being handed off before eviction
  log: (line: string) => void
}

// Removes surplus replicas: when a holder that was given up on comes back,
// a chunk can have more than replicaCount live copies. The member that wrote
// the chunk (its copy is its own, not `foreign`) keeps itself and the
// replicaCount - 1 best-ranked live holders, as placement chose them, and
// asks the others to drop theirs, only after every kept holder proved its
// copy (PROVE). A member asked to trim drops only copies it holds for others,
// never its own; pinned peers are never asked. So a trim never takes a chunk
// below target or removes the last copy. One case is not covered: two members
// that wrote the same content independently each keep their own set, and
// could together trim below target (the repair rescan then copies it again).
export class Trimmer {
  trimmed = 0

  private readonly job: Periodic

  constructor (private readonly o: TrimmerOptions) {
    this.job = new Periodic('trim', EVERY_MS, async () => await this.pass(), o.log)
  }

  start (): void {
    this.job.start()
  }

  close (): void {
    this.job.close()
  }

  run (): Promise<void> {
    return this.job.run()
  }

  private async pass (): Promise<void> {
    const links = new Map(this.o.links().map(l => [l.id, l]))
    if (links.size === 0) return
    // surplus holder -> chunks to trim there; keep-set member -> chunks to confirm
    const plan: Array<{ id: Buffer, keep: string[], drop: string[] }> = []
    for (const hex of [...this.o.surplus]) {
      this.o.surplus.delete(hex)
      const id = Buffer.from(hex, 'hex')
      if (!this.o.store.refs.doesExist(id)) continue
      const live = this.o.holders.get(id).filter(h => links.has(h))
      if (live.length + 1 <= this.o.replicaCount || !this.o.store.hasChunk(id)) continue
      // Only a member whose copy is its own (it wrote the chunk) trims, as
      // placement put it: itself plus the best-ranked others.
      if (this.o.store.foreign.doesExist(id) || this.o.exempt?.(id.toString('hex'))) continue
      const keep = [this.o.selfId, ...rank(id, live.map(m => ({ id: m }))).slice(0, this.o.replicaCount - 1).map(m => m.id)]
      const pinned = new Set(this.o.pins?.()?.pinnedTo(id) ?? [])
      const drop = live.filter(h => !keep.includes(h) && !pinned.has(h))
      if (drop.length > 0) plan.push({ id: Buffer.from(id), keep: keep.filter(k => k !== this.o.selfId), drop })
      if (plan.length >= BATCH) break
    }
    if (plan.length === 0) return
    // Confirm the keep sets: each kept holder proves its copy now (a keyed
    // hash of the record under a fresh nonce), so a peer that only claims a
    // copy can never be the reason another is trimmed.
    const confirmed = new Set<string>()
    const byKeeper = new Map<string, Buffer[]>()
    for (const p of plan) for (const k of p.keep) { let l = byKeeper.get(k); if (!l) byKeeper.set(k, l = []); l.push(p.id) }
    const unconfirmed = new Set<string>()
    for (const [peer, ids] of byKeeper) {
      const link = links.get(peer)
      const have = link ? await proves(link, this.o.store, ids) : null
      ids.forEach((id, i) => { if (have?.[i]) confirmed.add(peer + id.toString('hex')); else unconfirmed.add(id.toString('hex')) })
    }
    const byDropper = new Map<string, Buffer[]>()
    for (const p of plan) {
      const hex = p.id.toString('hex')
      if (unconfirmed.has(hex) || !p.keep.every(k => confirmed.has(k + hex))) continue
      for (const d of p.drop) { let l = byDropper.get(d); if (!l) byDropper.set(d, l = []); l.push(p.id) }
    }
    for (const [peer, ids] of byDropper) {
      const n = await links.get(peer)?.trim(ids).catch(() => null)
      if (n === null || n === undefined) continue
      this.trimmed += n
      this.o.log(`trimmed ${n} surplus cop${n === 1 ? 'y' : 'ies'} on peer ${peer.slice(0, 12)} (asked for ${ids.length})`)
      this.o.holders.removeMany(ids, peer)
    }
  }

  // A full member asks us to drop surplus copies: only those we hold for
  // others, never one our own tree references (the caller checks the
  // asker's proven role).
  static answerTrim (store: LmdbStore, ids: Buffer[]): number {
    let dropped = 0
    store.txn(() => {
      for (const id of ids) {
        if (!store.foreign.doesExist(id) || store.refs.doesExist(id)) continue
        if (store.hasChunk(id)) { store.removeChunkSync(id); dropped++ }
        unforeignSync(store, id)
      }
    })
    return dropped
  }
}
