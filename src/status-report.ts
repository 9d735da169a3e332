import type { MemberReport } from './membership.js'
import type { VolumeStats } from './volume/stats.js'
import type { ReplicationSummary } from './replication/replicator.js'
import type { PeerStats } from './replication/peer-link.js'
import type { GcReport } from './replication/garbage-collector.js'
import type { EvictionReport } from './replication/evictor.js'
import type { ScrubReport } from './replication/scrubber.js'
import type { AuditReport } from './replication/holder-audit.js'
import type { Health } from './api/web/health.js'
import type { StallReport } from './event-loop-stalls.js'
import type { LeaseReport } from './replication/holding-leases.js'

// Copies held for other members (store/foreign-holdings.ts): per placing
// member, against quotaPerMember, and their leases (holding-leases.ts).
export interface StorageForOthers {
  quotaPerMember: number
  members: Array<{ member: string, bytes: number, chunks: number }>
  leases: LeaseReport
}

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
  refusing?: string // the reason of the peer's last refusal of a chunk within the last minute (a full disk)
}

export interface FileReplication {
  path: string
  size: number
  chunks: number
  atTarget: number
  underReplicated: number
  lost: number
}

// A file or folder pinned to a peer: that peer must hold all of its chunks.
export interface PinReport {
  path: string | null // null when no name in the tree reaches it any more
  ino: number
  peer: string
  peerOnline: boolean
  chunks: number
  held: number // chunks the peer acknowledged holding
  created: number
}

// The shared namespace: this node's copy of every member's log, and how far
// behind each peer was at its last sync (records of ours it lacked).
export interface NamespaceReport {
  members: number
  records: number // kept as log records
  folded: number // folded into the snapshot (compacted away)
  compactions: number // by this daemon
  lastCompaction: number | null // ms since the epoch, the last that succeeded (this daemon)
  compactionError: string | null // why the last attempt failed, if it did
  conflicts: number // conflict copies in the tree now
  peers: Array<{ id: string, behind: number, lastSync: number | null }>
  quarantined?: number // records of signers not in good standing, kept aside (replication/quarantine.ts)
  refused?: number // such records refused this run
}

// Space: what the store takes for what the files hold (issue #26: within
// 1.3x for small files). From LMDB's page counts and the volume counters:
// constant time.
export interface SpaceReport {
  storeBytes: number // pages in use in every database of the store (free pages, reusable, not counted)
  chunkBytes: number // of those, the chunk records: the chunk table and the packs
  packs: number // pack records (small chunk records packed together; store/chunk-packs.ts)
  logicalBytes: number | null // the sum of file sizes (null on a storage-only member: it cannot know)
  perLogicalByte: number | null // storeBytes / logicalBytes
}

export function spaceReport (s: { storeBytes: number, chunkBytes: number, packs: number }, logicalBytes: number | null): SpaceReport {
  return { ...s, logicalBytes, perLogicalByte: logicalBytes ? s.storeBytes / logicalBytes : null }
}

export interface StatusReport {
  daemon: { running: boolean, pid?: number, uptimeSec?: number }
  dataDir: string
  node: { id: string, role: 'full' | 'storage', trustsRoleClaims?: boolean } // trustsRoleClaims: a storage-only member without the role key (a join code before version 3)
  volume: VolumeStats | { volumeId: string }
  store: PeerStats
  space?: SpaceReport
  peers: PeerReport[]
  replication: ReplicationSummary
  pins: PinReport[]
  namespace?: NamespaceReport
  members?: MemberReport[] // the certified member set (membership.ts)
  gc?: GcReport
  cache?: EvictionReport
  scrub?: ScrubReport // the background re-verification of stored chunks
  eventLoop?: StallReport // the daemon's longest event-loop stalls (event-loop-stalls.ts)
  files?: FileReplication[]
  audit?: AuditReport // holder proofs: challenges and checks of peers' copies
  repairAfter?: number // ms an offline holder's copies keep counting
  storage?: StorageForOthers // what this node holds for other members: per placer, quota, leases
  health: Health // the verdict: safe / at-risk / unknown, and its headline
}
