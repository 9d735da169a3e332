import type { LmdbNamespace } from '../meta/lmdb-namespace.js'
import { ROOT_INO } from '../meta/namespace.js'
import type { Replicator } from './replicator.js'
import type { FileReplication } from '../status-report.js'

const S_IFMT = 0o170000
const S_IFDIR = 0o040000
const S_IFREG = 0o100000

// Per-file replication for `status --files`: walks the tree, and for each
// file counts its chunks at target, under it, and lost.
export function fileReplication (ns: LmdbNamespace, replicator: Replicator, target: number, limit = 10_000): FileReplication[] {
  const out: FileReplication[] = []
  const copiesOf = (id: Buffer): number => replicator.copiesOf(id)
  const walk = (dir: number, prefix: string): void => {
    for (const e of ns.readdir(dir)) {
      if (out.length >= limit) return
      const a = ns.getAttrs(e.ino)
      if (!a) continue
      const path = prefix + '/' + e.name
      if ((a.mode & S_IFMT) === S_IFDIR) { walk(e.ino, path); continue }
      if ((a.mode & S_IFMT) !== S_IFREG) continue
      out.push({ path, size: a.size, ...chunkReplication(ns, e.ino, copiesOf, target) })
    }
  }
  walk(ROOT_INO, '')
  return out
}

export interface ChunkReplication {
  chunks: number
  atTarget: number
  underReplicated: number // includes the lost ones
  lost: number
}

// One file's chunks by their number of copies (the dashboard's bar).
export function chunkReplication (ns: LmdbNamespace, ino: number, copiesOf: (id: Buffer) => number, target: number): ChunkReplication {
  const r = { chunks: 0, atTarget: 0, underReplicated: 0, lost: 0 }
  for (const index of ns.blockIndexes(ino)) {
    const ref = ns.getBlock(ino, index)
    if (!ref) continue
    r.chunks++
    const copies = copiesOf(ref.id)
    if (copies === 0) r.lost++
    if (copies >= target) r.atTarget++
    else r.underReplicated++
  }
  return r
}
