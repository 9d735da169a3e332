// Operations of the multi-writer namespace. Each member appends ops to its own
// log; an op is stamped with a hybrid logical clock and the member id, and
// (hlc, member) is a total order over all ops of the volume. `seq` counts the
// member's own ops from 1 so a receiver can tell it holds a gapless prefix.
export type NodeKind = 'file' | 'dir' | 'symlink'

export const ROOT_ID = 'root'

export interface Attrs {
  mode?: number
  uid?: number
  gid?: number
  mtime?: number
}

export interface OpStamp {
  hlc: bigint
  member: string
  seq: number
}

// create: places a new node; for a file or symlink it also carries the first
// version (version id = node id), whose content is `content`.
export type CreateOp = OpStamp & { type: 'create', id: string, parent: string, name: string, kind: NodeKind, attrs: Attrs, content: string }
// move: rename and move in one; skipped if it would make a node its own ancestor.
export type MoveOp = OpStamp & { type: 'move', id: string, parent: string, name: string }
// remove: unlink or rmdir. For a file it names the versions the remover saw
// in the entry it deleted; versions it did not see stay alive.
export type RemoveOp = OpStamp & { type: 'remove', id: string, versions: string[] }
// write: a new version of a file's content (a content ref, opaque here);
// `base` is the version the writer was looking at. `attrs` (optional) set
// attributes in the same op, as a setattr would (the mtime of the write).
export type WriteOp = OpStamp & { type: 'write', id: string, version: string, content: string, base: string | null, attrs?: Attrs }
export type SetattrOp = OpStamp & { type: 'setattr', id: string, attrs: Attrs }

export type Op = CreateOp | MoveOp | RemoveOp | WriteOp | SetattrOp
export type PlacementOp = CreateOp | MoveOp

export interface Ts { hlc: bigint, member: string }

export function compareTs (a: Ts, b: Ts): number {
  if (a.hlc !== b.hlc) return a.hlc < b.hlc ? -1 : 1
  return a.member < b.member ? -1 : a.member > b.member ? 1 : 0
}

// Unique per op: a member's clock never repeats a stamp.
export function opKey (o: Ts): string {
  return `${o.hlc.toString(36)}/${o.member}`
}

// `report.pdf` -> `report.conflict-1a2b3c4d-1700000000123.pdf`. A leading dot
// (`.bashrc`) is part of the stem, not an extension.
export function conflictName (name: string, member: string, hlc: bigint): string {
  const tag = `.conflict-${member.slice(0, 8)}-${Number(hlc >> 16n)}`
  const dot = name.lastIndexOf('.')
  if (dot <= 0) return name + tag
  return name.slice(0, dot) + tag + name.slice(dot)
}
