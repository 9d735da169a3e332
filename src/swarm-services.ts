import type { Volume } from './volume/volume.js'
import type { Config } from './config.js'
import { PeerNetwork } from './net/peer-network.js'
import type { PeerConnection } from './net/peer-connection.js'
import type { RequestBody, ReplyBody } from './codec/wire.js'
import { ChunkService } from './replication/chunk-service.js'
import { Replicator } from './replication/replicator.js'
import { Holders } from './replication/holders.js'
import { RemoteFetcher } from './replication/remote-fetcher.js'
import type { PeerLink, PutResult, PeerStats, RecordSource } from './replication/peer-link.js'
import type { PeerReport } from './status-report.js'

const PUT_TIMEOUT_MS = 60_000
const GET_TIMEOUT_MS = 30_000
const STATS_TIMEOUT_MS = 3_000

// Everything a node does with other machines: the peer network, answering
// peers' chunk requests, pushing our chunks to replicaCount members, and
// fetching chunks back to heal. Beside the VFS, never imported by it.
export class SwarmServices {
  readonly network: PeerNetwork
  readonly replicator: Replicator
  readonly remote: RemoteFetcher
  readonly service: ChunkService
  readonly replicaCount: number
  private readonly linkCache = new WeakMap<PeerConnection, PeerLink>()

  constructor (private readonly volume: Volume, config: Config, private readonly log: (line: string) => void, revoked: string[] = []) {
    this.replicaCount = config.replicaCount
    this.network = new PeerNetwork({
      swarmKey: volume.swarmKey,
      keySeed: volume.seed,
      role: volume.file.role,
      bootstrap: config.bootstrap ?? undefined,
      heartbeatInterval: config.heartbeatInterval,
      log,
      revoked
    })
    const holders = new Holders(volume.store)
    const links = (): PeerLink[] => this.network.connections().map(c => this.linkOf(c))
    this.service = new ChunkService(volume.store, volume.access?.pipeline ?? null)
    this.replicator = new Replicator({ store: volume.store, selfId: volume.file.nodeId, replicaCount: config.replicaCount, links, log, holders })
    this.remote = new RemoteFetcher(links, holders, log)
    volume.access?.ns.onCommit(c => {
      if (c.op === 'blocks') this.replicator.enqueue(c.blocks.flatMap(([, hex]) => hex ? [Buffer.from(hex, 'hex')] : []))
    })
  }

  async start (): Promise<void> {
    this.network.on('peer', (conn: PeerConnection) => {
      conn.onRequest(body => this.answer(body))
      this.log(`peer ${conn.id.slice(0, 12)} (${conn.role}) connected from ${conn.address}`)
      this.replicator.rescan()
    })
    this.network.on('peer-closed', (id: string) => this.log(`peer ${id.slice(0, 12)} went offline`))
    await this.network.start()
    this.replicator.start()
  }

  // Not async: a PUT_CHUNK's record (a view of the received message) is
  // stored synchronously and not held while the ack waits for the disk.
  private answer (body: RequestBody): Promise<ReplyBody> {
    if (body.type === 'PUT_CHUNK') return this.service.put(body.id, body.record).then(r => ({ type: 'PUT_ACK', ...r }))
    return this.answerOther(body)
  }

  private async answerOther (body: RequestBody): Promise<ReplyBody> {
    switch (body.type) {
      case 'PUT_CHUNK': throw new Error('PUT_CHUNK is answered by answer()')
      case 'GET_CHUNK': return { type: 'CHUNK', record: await this.service.get(body.id) }
      case 'HAS': return { type: 'HAS_REPLY', have: this.service.has(body.ids) }
      case 'STATS': return { type: 'STATS_REPLY', ...this.service.stats(), role: this.volume.file.role }
    }
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

  async peerReports (): Promise<PeerReport[]> {
    const open = new Map(this.network.connections().map(c => [c.id, c]))
    return await Promise.all(this.network.peers().map(async p => {
      const conn = open.get(p.id)
      const stats = conn ? await this.linkOf(conn).stats().catch(() => null) : null
      return { id: p.id, address: p.address, role: p.role, online: p.online && !!conn, lastSeen: p.lastSeen || null, rttMs: p.rttMs, chunks: stats?.chunks ?? null, bytes: stats?.bytes ?? null }
    }))
  }

  async close (): Promise<void> {
    this.replicator.close()
    await this.network.close()
  }
}
