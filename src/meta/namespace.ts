import type { InodeAttrs } from '../codec/inode-record.js'
import type { BlockRef } from '../codec/block-record.js'
import type { Change } from '../codec/change-record.js'

export const ROOT_INO = 1

export interface DirEntry {
  name: string
  ino: number
}

// A chunk that must exist in the store when a change referencing it commits.
export interface ChunkToEnsure {
  id: Buffer
  record: Buffer
  sum?: Buffer // its checksum, when already computed
}

// The namespace: inodes, directory entries, block maps and chunk reference
// counts. Every mutation is a self-contained Change record, stamped and
// applied in one transaction; the VFS never writes the tree any other way.
export interface Namespace {
  lookup (parent: number, name: string): number | undefined
  getAttrs (ino: number): InodeAttrs | undefined
  readdir (dir: number): DirEntry[]
  isEmptyDir (dir: number): boolean
  getBlock (ino: number, index: number): BlockRef | undefined
  allocIno (): number
  commit (change: Change, ensure?: ChunkToEnsure[]): void
}
