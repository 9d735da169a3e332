import type { Volume } from './volume.js'
import { walkCounts } from '../meta/count-walk.js'

export interface VolumeStats {
  volumeId: string
  nodeId: string
  chunkSize: number
  files: number
  directories: number
  logicalBytes: number // sum of file sizes
  referencedBytes: number // bytes in stored blocks, counted once per reference
  uniqueBytes: number // bytes in distinct chunks (after dedupe, before compression)
  storedBytes: number // the chunk table's pages (LMDB's statistics: records and their page overhead)
  chunks: number
  compressionRatio: number // uniqueBytes / storedBytes
  dedupeRatio: number // referencedBytes / uniqueBytes
}

// Reads the counters the namespace keeps (meta/namespace-counters.ts) and the
// chunk table's own LMDB statistics: constant time at any volume size. A
// volume from before the counters, read beside no daemon, is walked instead
// (its first mount counts it once).
export function volumeStats (v: Volume): VolumeStats {
  const counts = v.full.ns.counters() ?? walkCounts(v.store, v.full.keys.meta).counts
  const { chunks, bytes: storedBytes } = v.store.chunkStats()
  const { referencedBytes, uniqueBytes } = counts
  return {
    volumeId: v.file.volumeId,
    nodeId: v.file.nodeId,
    chunkSize: v.file.chunkSize,
    ...counts,
    storedBytes,
    chunks,
    compressionRatio: storedBytes ? uniqueBytes / storedBytes : 1,
    dedupeRatio: uniqueBytes ? referencedBytes / uniqueBytes : 1
  }
}
