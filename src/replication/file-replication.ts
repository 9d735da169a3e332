import type { LmdbNamespace } from '../meta/lmdb-namespace.js'
import { ROOT_INO } from '../meta/namespace.js'
import type { FileReplication } from '../status-report.js'

const S_IFMT = 0o170000
const S_IFDIR = 0o040000
const S_IFREG = 0o100000

// Per-file replication for `status --files`: walks the tree depth first
// with an explicit stack and yields each file as it goes (streamed: nothing
// holds the whole list), with its chunks at target, under it, and lost.
export function * fileReplication (ns: LmdbNamespace, copiesOf: (id: Buffer) => number, target: number): Generator<FileReplication> {
  const stack: Array<{ ino: number, path: string }> = [{ ino: ROOT_INO, path: '' }]
  while (stack.length > 0) {
    const { ino: dir, path: prefix } = stack.pop()!
    const subdirs: Array<{ ino: number, path: string }> = []
    for (const e of ns.readdir(dir)) {
      const a = ns.getAttrs(e.ino)
      if (!a) continue
      const path = prefix + '/' + e.name
      if ((a.mode & S_IFMT) === S_IFDIR) { subdirs.push({ ino: e.ino, path }); continue }
      if ((a.mode & S_IFMT) !== S_IFREG) continue
      yield { path, size: a.size, ...chunkReplication(ns, e.ino, copiesOf, target) }
    }
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i])
  }
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
