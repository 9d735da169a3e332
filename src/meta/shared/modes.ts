import type { InodeAttrs } from '../../codec/inode-record.js'
import type { Attrs, NodeKind } from '../merge/op.js'

export const S_IFMT = 0o170000
export const S_IFDIR = 0o040000
export const S_IFLNK = 0o120000
export const S_IFREG = 0o100000

export function kindOf (mode: number): NodeKind {
  const t = mode & S_IFMT
  return t === S_IFDIR ? 'dir' : t === S_IFLNK ? 'symlink' : 'file'
}

export function opAttrs (a: InodeAttrs): Attrs {
  return { mode: a.mode, uid: a.uid, gid: a.gid, mtime: a.mtime }
}

// The permission bits of a mode that came through the shared namespace. The
// file type is the node's kind's (a peer cannot make a file a FIFO or a
// device); setuid and setgid survive only when this member set them itself;
// the sticky bit only on directories.
export function sanitizeMode (mode: number, kind: NodeKind, ownChange: boolean): number {
  let m = mode & 0o777
  if (kind === 'dir') m |= mode & 0o1000
  if (ownChange && kind !== 'symlink') m |= mode & 0o6000
  return m
}
