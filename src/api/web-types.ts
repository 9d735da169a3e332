// The JSON the HTTP API speaks (docs/api.md), shared by the server and the
// page; type-only, so the browser modules import nothing from Node.
import type { PeerReport, PinReport, StatusReport } from '../status-report.js'
import type { ReplicationSummary } from '../replication/replicator.js'
import type { ChunkReplication } from '../replication/file-replication.js'

export type { PeerReport, PinReport, StatusReport, ReplicationSummary, ChunkReplication }

// Every /api/ answer, also errors (then data is { code }).
export interface ApiReply<T> {
  success: boolean
  message: string
  data: T
}

export interface NodeInfo {
  volumeId: string
  nodeId: string
  role: 'full' | 'storage'
  files: boolean // false on a storage-only member: no Files view
  replicaCount: number
  chunkSize: number
}

export type EntryType = 'file' | 'dir' | 'symlink' | 'other'

export interface FileEntry {
  name: string
  path: string
  type: EntryType
  size: number
  mtime: number
  mode: number
  replication: ChunkReplication | null // regular files only
  pins: string[] // peers this entry itself is pinned to
}

export interface DirListing {
  path: string
  entries: FileEntry[]
  truncated: boolean // more entries than one listing returns
}

export interface FileInfo extends FileEntry {
  copies: number[] // copies of each stored chunk, in block order (at most MAX_CHUNK_MAP)
  chunkSize: number
}

export interface Transfer {
  id: number
  kind: 'upload' | 'download'
  path: string
  bytes: number
  total: number | null
  started: number
  done: boolean
  error: string | null
}

// One second of traffic, bytes per second.
export interface ThroughputSample {
  t: number
  sent: number // chunk records peers acknowledged from us
  received: number // chunk records peers stored with us or fetched from us
  web: number // uploads and downloads through this API
}

export interface PeerView extends PeerReport {
  sentBytes: number // acknowledged replicas pushed to this peer, this run
  pins: number // pins naming this peer
}

// One server-sent event on /api/events, every second.
export interface LiveTick {
  t: number
  peers: PeerView[]
  sample: ThroughputSample
  transfers: Transfer[]
  replication: ReplicationSummary | null // every few ticks
}

export interface LiveHello {
  history: ThroughputSample[]
}
