import type { LmdbStore } from '../store/lmdb-store.js'
import { open } from '../crypto/aead.js'
import { decodeInode } from '../codec/inode-record.js'
import { decodeBlockRef } from '../codec/block-record.js'
import { inodeAd } from '../codec/keys.js'
import { zeroCounts, type NamespaceCounts } from '../codec/counters-record.js'
import { refsLength } from '../codec/refs-record.js'

const S_IFMT = 0o170000
const S_IFDIR = 0o040000
const S_IFREG = 0o100000

export interface CountWalk {
  counts: NamespaceCounts
  // Per referenced chunk (hex id): references in the block maps, and the
  // bytes it counts for (the longer of its refs record's length and its
  // longest reference now).
  chunks: Map<string, { refs: number, length: number }>
}

// The volume's totals by walking every inode and block record (decrypting
// each): what the counters kept by the namespace must equal. Seconds at
// 10^5 files: run once per volume (the first open with counters), by fsck,
// and after a recovery that changed reference counts.
export function walkCounts (store: LmdbStore, metaKey: Buffer): CountWalk {
  const counts = zeroCounts()
  for (const { key, value } of store.inodes.getRange({})) {
    const a = decodeInode(open(metaKey, value as Buffer, inodeAd(key as Buffer)))
    const t = a.mode & S_IFMT
    if (t === S_IFDIR) counts.directories++
    else if (t === S_IFREG) { counts.files++; counts.logicalBytes += a.size }
  }
  const chunks = new Map<string, { refs: number, length: number }>()
  for (const { key, value } of store.blocks.getRange({})) {
    const ref = decodeBlockRef(open(metaKey, value as Buffer, key as Buffer))
    counts.referencedBytes += ref.length
    const hex = ref.id.toString('hex')
    const c = chunks.get(hex)
    if (c) { c.refs++; c.length = Math.max(c.length, ref.length) } else chunks.set(hex, { refs: 1, length: ref.length })
  }
  for (const [hex, c] of chunks) {
    const raw = store.refs.getBinary(Buffer.from(hex, 'hex'))
    const kept = raw ? refsLength(raw) : undefined
    if (kept !== undefined && kept > c.length) c.length = kept
    counts.uniqueBytes += c.length
  }
  return { counts, chunks }
}
