import type { VolumeStats } from './volume/stats.js'
import type { ReplicationSummary } from './replication/replicator.js'
import type { PeerStats } from './replication/peer-link.js'

// What `disktro status --json` prints and the control socket returns.
export interface PeerReport {
  id: string
  address: string
  role: 'full' | 'storage'
  online: boolean
  lastSeen: number | null
  rttMs: number | null
  chunks: number | null
  bytes: number | null
}

export interface FileReplication {
  path: string
  size: number
  chunks: number
  atTarget: number
  underReplicated: number
  lost: number
}

export interface StatusReport {
  daemon: { running: boolean, pid?: number, uptimeSec?: number }
  dataDir: string
  node: { id: string, role: 'full' | 'storage' }
  volume: VolumeStats | { volumeId: string }
  store: PeerStats
  peers: PeerReport[]
  replication: ReplicationSummary
  files?: FileReplication[]
}
