import type { Volume } from './volume/volume.js'
import type { Config } from './config.js'
import { PeerNetwork } from './net/peer-network.js'
import type { PeerConnection } from './net/peer-connection.js'
import { memberGate } from './volume/member-gate.js'
import type { RequestBody, ReplyBody } from './codec/wire.js'
import { ChunkService } from './replication/chunk-service.js'
import { Replicator } from './replication/replicator.js'
import { Holders } from './replication/holders.js'
import { RemoteFetcher } from './replication/remote-fetcher.js'
import type { PeerLink, PutResult, PeerStats, RecordSource } from './replication/peer-link.js'
import type { PeerReport } from './status-report.js'
import { NamespaceSync, type NsPeer } from './replication/namespace-sync.js'
import { HolderAudit, type AuditLink } from './replication/holder-audit.js'
import { answerProve } from './replication/holder-proofs.js'
import { ReplicaState } from './replication/replica-state.js'
import { GarbageCollector } from './replication/garbage-collector.js'
import { Trimmer } from './replication/trimmer.js'
import { Evictor } from './replication/evictor.js'
import { HoldingLeases } from './replication/holding-leases.js'
import { quotaOf } from './config.js'
import { heldForAll } from './store/foreign-holdings.js'

const PUT_TIMEOUT_MS = 60_000
const GET_TIMEOUT_MS = 30_000
const STATS_TIMEOUT_MS = 3_000
const NS_TIMEOUT_MS = 30_000

// Everything a node does with other machines: the peer network, answering
// peers' chunk requests, pushing our chunks to replicaCount members, and
// fetching chunks back to heal. Beside the VFS, never imported by it.
export class SwarmServices {
  readonly network: PeerNetwork
  readonly replicator: Replicator
  readonly remote: RemoteFetcher
  readonly service: ChunkService
  readonly replicaCount: number
  readonly nsSync: NamespaceSync
  readonly audit: HolderAudit
  readonly state: ReplicaState
  readonly gc: GarbageCollector
  readonly trimmer: Trimmer
  readonly evictor: Evictor | null
  readonly leases: HoldingLeases
  private readonly connectedAt = new WeakMap<PeerConnection, number>()
  private readonly linkCache = new WeakMap<PeerConnection, PeerLink>()
  private readonly nsPeerCache = new WeakMap<PeerConnection, NsPeer>()
  private readonly auditCache = new WeakMap<PeerConnection, AuditLink>()

  constructor (private readonly volume: Volume, config: Config, private readonly log: (line: string) => void, private readonly revoked: string[] = []) {
    this.replicaCount = config.replicaCount
    this.network = new PeerNetwork({
      swarmKey: volume.swarmKey,
      keySeed: volume.seed,
      role: volume.file.role,
      roleKey: volume.roleKey,
      bootstrap: config.bootstrap ?? undefined,
      heartbeatInterval: config.heartbeatInterval,
      log,
      revoked,
      members: memberGate(volume.members, volume.file.nodeId)
    })
    const holders = new Holders(volume.store)
    volume.store.quotaPerMember = quotaOf(config)
    this.leases = new HoldingLeases({
      store: volume.store,
      leaseMs: config.holdLease,
      fullSince: () => {
        let since: number | null = null
        for (const c of this.network.connections()) {
          const at = c.role === 'full' ? this.connectedAt.get(c) : undefined
          if (at !== undefined && (since === null || at < since)) since = at
        }
        return since
      },
      settled: () => volume.access ? (volume.access.shared?.settled ?? true) : true,
      log
    })
    const links = (): PeerLink[] => this.network.connections().map(c => this.linkOf(c))
    this.service = new ChunkService(volume.store, volume.access?.pipeline ?? null, volume.file.chunkSize)
    const storageOnly = volume.file.role === 'storage'
    this.state = new ReplicaState(volume.store, config.replicaCount, storageOnly, log)
    this.replicator = new Replicator({ store: volume.store, selfId: volume.file.nodeId, replicaCount: config.replicaCount, links, log, holders, state: this.state })
    this.remote = new RemoteFetcher(links, holders, log)
    this.audit = new HolderAudit({
      store: volume.store,
      holders,
      state: this.state,
      links: () => this.network.connections().map(c => this.auditOf(c)),
      peers: () => this.network.peers(),
      repairAfter: config.repairAfter,
      storageOnly,
      log
    })
    this.gc = new GarbageCollector({
      store: volume.store,
      holders,
      graceMs: config.gcGrace,
      settled: () => volume.access?.shared?.settled ?? true,
      log,
      links: () => this.network.connections().map(conn => ({
        id: conn.id,
        async drop (ids: Buffer[]) {
          const r = await conn.request({ type: 'DROP_CHUNKS', ids }, NS_TIMEOUT_MS) as ReplyBody
          if (r.type !== 'DROP_ACK') throw new Error('bad DROP reply')
          return r.dropped
        }
      }))
    })
    this.evictor = config.cacheSize === null || !volume.access
      ? null
      : new Evictor({
        store: volume.store,
        cacheSize: config.cacheSize,
        selfId: volume.file.nodeId,
        replicaCount: config.replicaCount,
        lastUse: id => volume.chunks.lastUse(id),
        holdersOf: id => this.replicator.holdersOf(id),
        handoff: async id => await this.replicator.handoff(id),
        pins: () => this.replicator.pinPolicy,
        log
      })
    this.trimmer = new Trimmer({
      surplus: this.state.surplus,
      exempt: hex => this.evictor?.handingOff.has(hex) ?? false,
      store: volume.store,
      holders,
      selfId: volume.file.nodeId,
      replicaCount: config.replicaCount,
      pins: () => this.replicator.pinPolicy,
      log,
      links: () => this.network.connections().map(conn => ({
        id: conn.id,
        prove: this.auditOf(conn).prove,
        async trim (ids: Buffer[]) {
          const r = await conn.request({ type: 'TRIM_CHUNKS', ids }, NS_TIMEOUT_MS) as ReplyBody
          if (r.type !== 'DROP_ACK') throw new Error('bad TRIM reply')
          return r.dropped
        }
      }))
    })
    this.nsSync = new NamespaceSync({
      store: volume.store,
      log: volume.oplog,
      shared: volume.access?.shared ?? null,
      peers: () => this.network.connections().map(c => this.nsPeerOf(c)),
      print: log,
      signerOk: (member, seq) => volume.members.signerOk(member, seq)
    })
    // Member records new to us go to every peer (gossip: a peer that knows
    // one already does not pass it on again); records set aside because
    // their signer's certificate had not come yet are taken back.
    volume.members.onRecord((r, raw) => {
      for (const c of this.network.connections()) {
        c.request({ type: 'MEMBERS_OFFER', cert: Buffer.alloc(0), records: [raw] }, NS_TIMEOUT_MS).catch(() => {})
      }
      if (r.kind === 'cert') this.nsSync.released(r.subject)
    })
    volume.access?.ns.onCommit(c => {
      if (c.op === 'blocks') this.replicator.enqueue(c.blocks.flatMap(([, hex]) => hex ? [Buffer.from(hex, 'hex')] : []))
    })
  }

  async start (): Promise<void> {
    this.network.on('peer', (conn: PeerConnection) => {
      this.connectedAt.set(conn, Date.now())
      conn.onRequest(body => this.answer(conn, body))
      this.log(`peer ${conn.id.slice(0, 12)} (${conn.role}) connected from ${conn.address}`)
      this.replicator.rescan()
      this.nsSync.peerConnected(this.nsPeerOf(conn))
      setTimeout(() => { if (conn.isOpen) void this.audit.peerConnected(this.auditOf(conn)) }, 500).unref()
    })
    this.network.on('peer-closed', (id: string) => this.log(`peer ${id.slice(0, 12)} went offline`))
    if (this.volume.file.role === 'storage' && !this.volume.roleKey.publicKey) {
      this.log('WARNING: this storage-only member joined with a code older than version 3: it cannot check that a peer claiming the full role is one, and takes the claim on trust (placements, drops, snapshots). Run `disktro join --upgrade <code>` with a new `disktro invite --storage-only` code of this volume.')
    }
    await this.network.start()
    this.state.start()
    this.replicator.start()
    this.nsSync.start()
    this.audit.start()
    for (const id of this.revoked) void this.audit.dropAllOf(id)
    if (this.volume.access) this.gc.start()
    this.trimmer.start()
    this.evictor?.start()
    this.leases.start()
  }

  // Not async: a PUT_CHUNK's record (a view of the received message) is
  // stored synchronously and not held while the ack waits for the disk.
  private answer (conn: PeerConnection, body: RequestBody): Promise<ReplyBody> {
    if (body.type === 'PUT_CHUNK') {
      // Placement is a full member's act: only a member that can read the
      // tree knows which chunks the volume needs. Storage-only members never
      // push (the replicator and the evictor push only chunks their own tree
      // references, and they have none), so a PUT from one is junk to refuse.
      if (conn.role !== 'full') return Promise.resolve({ type: 'PUT_ACK', ok: false, reason: 'placement refused: only a proven full member places chunks' })
      const id = Buffer.from(body.id)
      return this.service.put(body.id, body.record, conn.id).then(r => {
        if (r.ok) this.audit.noteStored(id)
        return { type: 'PUT_ACK', ...r }
      })
    }
    return this.answerOther(conn, body)
  }

  private async answerOther (conn: PeerConnection, body: RequestBody): Promise<ReplyBody> {
    switch (body.type) {
      case 'PUT_CHUNK': throw new Error('PUT_CHUNK is answered by answer()')
      case 'GET_CHUNK': this.renewFor(conn, [body.id]); return { type: 'CHUNK', record: await this.service.get(body.id) }
      case 'HAS': this.renewFor(conn, body.ids); return { type: 'HAS_REPLY', have: this.service.has(body.ids) }
      case 'STATS': return { type: 'STATS_REPLY', ...this.service.stats(), role: this.volume.file.role }
      case 'NS_SYNC': return { type: 'NS_RECORDS', ...this.nsSync.answerSync(this.nsPeerOf(conn), body.frontier, body.heads) }
      case 'NS_SNAPSHOT': return { type: 'NS_ACK', accepted: conn.role === 'full' ? this.nsSync.answerSnapshot(this.nsPeerOf(conn), body.snapshot) : 0 }
      case 'NS_PUSH': return { type: 'NS_ACK', accepted: this.nsSync.answerPush(this.nsPeerOf(conn), body.records) }
      case 'NS_PART': return { type: 'CHUNK', record: this.nsSync.answerPart(body.snapshot, body.index) }
      // Only a member that can read the tree may say a chunk is garbage.
      case 'DROP_CHUNKS': return { type: 'DROP_ACK', dropped: conn.role === 'full' ? this.gc.answerDrop(body.ids) : 0 }
      // Surplus copies are trimmed by the member that wrote them, a full one.
      case 'TRIM_CHUNKS': return { type: 'DROP_ACK', dropped: conn.role === 'full' ? Trimmer.answerTrim(this.volume.store, body.ids) : 0 }
      // A peer speaks for its own holdings only.
      case 'HOLDING': return { type: 'DROP_ACK', dropped: await this.audit.answerHolding(this.auditOf(conn), body.held.map(b => Buffer.from(b)), body.dropped.map(b => Buffer.from(b))) }
      case 'PROVE': this.renewFor(conn, body.ids); return { type: 'PROOFS', proofs: await answerProve(this.volume.store, body.nonce, body.ids) }
      // New member records (the first offer is answered in the handshake, peer-connection.ts).
      case 'MEMBERS_OFFER': this.volume.members.addAll(body.records); return { type: 'MEMBERS', records: [] }
    }
  }

  // A full member's interest in copies we hold for others renews their leases.
  private renewFor (conn: PeerConnection, ids: Buffer[]): void {
    if (conn.role === 'full') this.leases.renew(ids.filter(id => id.length === 32))
  }

  // Bytes and chunks held here for each placing member (its quota's account).
  heldForOthers (): Array<{ member: string, bytes: number, chunks: number }> {
    return heldForAll(this.volume.store)
  }

  private nsPeerOf (conn: PeerConnection): NsPeer {
    let p = this.nsPeerCache.get(conn)
    if (!p) {
      p = {
        id: conn.id,
        role: conn.role,
        async sync (heads, frontier) {
          const r = await conn.request({ type: 'NS_SYNC', heads, frontier }, NS_TIMEOUT_MS) as ReplyBody
          if (r.type !== 'NS_RECORDS') throw new Error(r.type === 'ERROR' ? r.message : `unexpected ${r.type}`)
          return { records: r.records, more: r.more, snapshot: r.snapshot }
        },
        async offer (snapshot) {
          await conn.request({ type: 'NS_SNAPSHOT', snapshot }, NS_TIMEOUT_MS)
        },
        async part (snapshot, index) {
          const r = await conn.request({ type: 'NS_PART', snapshot, index }, NS_TIMEOUT_MS) as ReplyBody
          if (r.type !== 'CHUNK') throw new Error(r.type === 'ERROR' ? r.message : `unexpected ${r.type}`)
          return r.record
        },
        async push (records) {
          const r = await conn.request({ type: 'NS_PUSH', records }, NS_TIMEOUT_MS) as ReplyBody
          return r.type === 'NS_ACK' ? r.accepted : 0
        },
        close: reason => conn.close(reason)
      }
      this.nsPeerCache.set(conn, p)
    }
    return p
  }

  private auditOf (conn: PeerConnection): AuditLink {
    let a = this.auditCache.get(conn)
    if (!a) {
      a = {
        id: conn.id,
        has: hasOf(conn),
        async prove (nonce: Buffer, ids: Buffer[]) {
          const r = await conn.request({ type: 'PROVE', nonce, ids }, NS_TIMEOUT_MS) as ReplyBody
          if (r.type !== 'PROOFS' || r.proofs.length !== ids.length) throw new Error('bad PROVE reply')
          return r.proofs
        },
        async holding (held: Buffer[], dropped: Buffer[]) {
          const r = await conn.request({ type: 'HOLDING', held, dropped }, NS_TIMEOUT_MS) as ReplyBody
          return r.type === 'DROP_ACK' ? r.dropped : 0
        },
        stats: async () => await this.linkOf(conn).stats()
      }
      this.auditCache.set(conn, a)
    }
    return a
  }

  private linkOf (conn: PeerConnection): PeerLink {
    let link = this.linkCache.get(conn)
    if (!link) {
      link = {
        id: conn.id,
        role: conn.role,
        async putChunk (id: Buffer, record: RecordSource): Promise<PutResult> {
          const r = (typeof record === 'function'
            ? await conn.putChunk(id, record, PUT_TIMEOUT_MS)
            : await conn.request({ type: 'PUT_CHUNK', id, record }, PUT_TIMEOUT_MS)) as ReplyBody
          if (r.type !== 'PUT_ACK') return { ok: false, reason: r.type === 'ERROR' ? r.message : `unexpected ${r.type}` }
          return { ok: r.ok, reason: r.reason }
        },
        async getChunk (id: Buffer): Promise<Buffer | null> {
          const r = await conn.request({ type: 'GET_CHUNK', id }, GET_TIMEOUT_MS) as ReplyBody
          return r.type === 'CHUNK' ? r.record : null
        },
        async stats (): Promise<PeerStats> {
          const r = await conn.request({ type: 'STATS' }, STATS_TIMEOUT_MS) as ReplyBody
          if (r.type !== 'STATS_REPLY') throw new Error(`unexpected ${r.type}`)
          return { chunks: r.chunks, bytes: r.bytes }
        }
      }
      this.linkCache.set(conn, link)
    }
    return link
  }

  // Peers listed as holding copies (one seek each): members even when not seen this run.
  holderPeers (): string[] {
    return new Holders(this.volume.store).peers()
  }

  async peerReports (): Promise<PeerReport[]> {
    const open = new Map(this.network.connections().map(c => [c.id, c]))
    return await Promise.all(this.network.peers().map(async p => {
      const conn = open.get(p.id)
      const stats = conn ? await this.linkOf(conn).stats().catch(() => null) : null
      const refused = this.replicator.refusals.get(p.id)
      const report: PeerReport = { id: p.id, address: p.address, role: p.role, online: p.online && !!conn, lastSeen: p.lastSeen || null, rttMs: p.rttMs, chunks: stats?.chunks ?? null, bytes: stats?.bytes ?? null }
      if (refused && Date.now() - refused.at < 60_000) report.refusing = refused.reason
      return report
    }))
  }

  async close (): Promise<void> {
    this.nsSync.close()
    this.audit.close()
    this.gc.close()
    this.trimmer.close()
    this.evictor?.close()
    this.leases.close()
    this.replicator.close()
    await this.network.close()
  }
}

// Asks a peer which of these chunks it holds.
function hasOf (conn: PeerConnection): (ids: Buffer[]) => Promise<boolean[]> {
  return async ids => {
    const r = await conn.request({ type: 'HAS', ids }, NS_TIMEOUT_MS) as ReplyBody
    if (r.type !== 'HAS_REPLY' || r.have.length !== ids.length) throw new Error('bad HAS reply')
    return r.have
  }
}
