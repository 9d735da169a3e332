import type { Volume } from './volume.js'
import { open } from '../crypto/aead.js'
import { decodeInode } from '../codec/inode-record.js'
import { decodeBlockRef } from '../codec/block-record.js'
import { inodeAd } from '../codec/keys.js'

export interface VolumeStats {
  volumeId: string
  nodeId: string
  chunkSize: number
  files: number
  directories: number
  logicalBytes: number // sum of file sizes
  referencedBytes: number // bytes in stored blocks, counted once per reference
  uniqueBytes: number // bytes in distinct chunks (after dedupe, before compression)
  storedBytes: number // sealed chunk records as stored
  chunks: number
  compressionRatio: number // uniqueBytes / storedBytes
  dedupeRatio: number // referencedBytes / uniqueBytes
}

const S_IFMT = 0o170000

// One pass over the namespace and the chunk table. Sizes are sealed at rest,
// so this needs the volume key.
export function volumeStats (v: Volume): VolumeStats {
  const s = v.store
  let files = 0; let directories = 0; let logicalBytes = 0
  for (const { key, value } of s.inodes.getRange({})) {
    const a = decodeInode(open(v.full.keys.meta, value as Buffer, inodeAd(key as Buffer)))
    if ((a.mode & S_IFMT) === 0o040000) directories++
    else if ((a.mode & S_IFMT) === 0o100000) { files++; logicalBytes += a.size }
  }
  let referencedBytes = 0
  const unique = new Map<string, number>()
  for (const { key, value } of s.blocks.getRange({})) {
    const ref = decodeBlockRef(open(v.full.keys.meta, value as Buffer, key as Buffer))
    referencedBytes += ref.length
    const hex = ref.id.toString('hex')
    unique.set(hex, Math.max(unique.get(hex) ?? 0, ref.length))
  }
  let uniqueBytes = 0
  for (const n of unique.values()) uniqueBytes += n
  let chunks = 0; let storedBytes = 0
  for (const { value } of s.chunks.getRange({})) {
    chunks++
    storedBytes += (value as Buffer).length
  }
  return {
    volumeId: v.file.volumeId,
    nodeId: v.file.nodeId,
    chunkSize: v.file.chunkSize,
    files,
    directories,
    logicalBytes,
    referencedBytes,
    uniqueBytes,
    storedBytes,
    chunks,
    compressionRatio: storedBytes ? uniqueBytes / storedBytes : 1,
    dedupeRatio: uniqueBytes ? referencedBytes / uniqueBytes : 1
  }
}
