import type { Vfs } from '../vfs/vfs.js'
import type { Volume } from '../volume/volume.js'
import type { SwarmServices } from '../swarm-services.js'
import type { Pinning } from '../replication/pinning.js'
import { chunkReplication, type ChunkReplication } from '../replication/file-replication.js'
import type { StatusReport, PinReport } from '../status-report.js'
import type { ReplicationSummary } from '../replication/replicator.js'
import type { NodeInfo, PeerView } from './web-types.js'
import { fail } from '../errors.js'

// What the dashboard needs from a node. `vfs` and `pins` are null on a
// storage-only member, which has no key to read names or data.
export interface WebBackend {
  info (): NodeInfo
  readonly vfs: Vfs | null
  readonly pins: PinControl | null
  replicationOf (ino: number): ChunkReplication
  copiesOf (ino: number, limit: number): number[]
  status (): Promise<StatusReport>
  replication (): ReplicationSummary | null
  peers (): Promise<PeerView[]>
  traffic (): { sent: number, received: number } // cumulative bytes
}

export interface PinControl {
  list (): PinReport[]
  of (ino: number): string[]
  check (peer: string): void // throws unless `peer` may be pinned to
  pin (ino: number, peer: string): boolean
  unpin (ino: number, peer: string): boolean
}

export interface NodeParts {
  volume: Volume
  vfs: Vfs | null
  swarm: SwarmServices | null
  pinning: Pinning | null
  replicaCount: number
  status: () => Promise<StatusReport>
}

// The backend over a running node's layers.
export function nodeBackend (n: NodeParts): WebBackend {
  const { volume, swarm, pinning } = n
  const copiesOf = (id: Buffer): number => swarm ? swarm.replicator.copiesOf(id) : (volume.store.hasChunk(id) ? 1 : 0)
  const online = (peer: string): boolean => swarm?.network.connections().some(c => c.id === peer) ?? false
  const ns = () => volume.full.ns
  const check = (peer: string): void => {
    if (peer === volume.file.nodeId || peer === swarm?.network.id) throw fail('EINVAL', 'a file is always held by the node that wrote it: pin it to another peer')
    if (!swarm?.network.peers().some(p => p.id === peer)) throw fail('ENOENT', `no peer ${peer.slice(0, 16)} has been seen: pin to a peer shown on the Peers view`)
  }
  return {
    vfs: n.vfs,
    info: () => ({
      volumeId: volume.file.volumeId,
      nodeId: volume.file.nodeId,
      role: volume.file.role,
      files: n.vfs !== null,
      replicaCount: n.replicaCount,
      chunkSize: volume.file.chunkSize
    }),
    replicationOf: ino => chunkReplication(ns(), ino, copiesOf, n.replicaCount),
    copiesOf: (ino, limit) => {
      const out: number[] = []
      for (const index of ns().blockIndexes(ino)) {
        if (out.length >= limit) break
        const ref = ns().getBlock(ino, index)
        if (ref) out.push(copiesOf(ref.id))
      }
      return out
    },
    status: n.status,
    replication: () => swarm?.replicator.summary() ?? null,
    peers: async () => {
      if (!swarm) return []
      const pins = pinning?.pins.list() ?? []
      const reports = await swarm.peerReports()
      return reports.map(p => ({ ...p, sentBytes: swarm.replicator.sentTo.get(p.id) ?? 0, pins: pins.filter(x => x.peer === p.id).length }))
    },
    traffic: () => swarm
      ? { sent: swarm.replicator.sentBytes + swarm.service.traffic.served, received: swarm.service.traffic.received }
      : { sent: 0, received: 0 },
    pins: pinning === null ? null : {
      list: () => pinning.reports(online),
      of: ino => pinning.pinsOf(ino).map(p => p.peer),
      check,
      pin: (ino, peer) => {
        check(peer)
        const added = pinning.pin(ino, peer)
        swarm?.replicator.rescan()
        return added
      },
      unpin: (ino, peer) => pinning.unpin(ino, peer)
    }
  }
}
