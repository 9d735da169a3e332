import { fail } from '../errors.js'

export const INODE_RECORD_VERSION = 1

export interface InodeAttrs {
  mode: number
  uid: number
  gid: number
  nlink: number
  rdev: number
  size: number
  blocks: number // chunks stored for this file (holes excluded): drives st_blocks
  atime: number // milliseconds since the epoch
  mtime: number
  ctime: number
  target?: string // symlink target
}

const FIXED = 1 + 4 * 5 + 8 + 4 + 8 * 3

export function encodeInode (a: InodeAttrs): Buffer {
  const target = a.target === undefined ? null : Buffer.from(a.target, 'utf8')
  const b = Buffer.allocUnsafe(FIXED + (target ? target.length : 0))
  let o = 0
  b[o++] = INODE_RECORD_VERSION
  o = b.writeUInt32LE(a.mode >>> 0, o)
  o = b.writeUInt32LE(a.uid >>> 0, o)
  o = b.writeUInt32LE(a.gid >>> 0, o)
  o = b.writeUInt32LE(a.nlink >>> 0, o)
  o = b.writeUInt32LE(a.rdev >>> 0, o)
  o = b.writeDoubleLE(a.size, o)
  o = b.writeUInt32LE(a.blocks >>> 0, o)
  o = b.writeDoubleLE(a.atime, o)
  o = b.writeDoubleLE(a.mtime, o)
  o = b.writeDoubleLE(a.ctime, o)
  if (target) target.copy(b, o)
  return b
}

export function decodeInode (b: Buffer): InodeAttrs {
  if (b.length < FIXED) throw fail('CORRUPT_RECORD', 'inode record too short')
  if (b[0] !== INODE_RECORD_VERSION) throw fail('UNSUPPORTED_VERSION', `inode record version ${b[0]}`)
  let o = 1
  const a: InodeAttrs = {
    mode: b.readUInt32LE(o),
    uid: b.readUInt32LE(o += 4),
    gid: b.readUInt32LE(o += 4),
    nlink: b.readUInt32LE(o += 4),
    rdev: b.readUInt32LE(o += 4),
    size: b.readDoubleLE(o += 4),
    blocks: b.readUInt32LE(o += 8),
    atime: b.readDoubleLE(o += 4),
    mtime: b.readDoubleLE(o += 8),
    ctime: b.readDoubleLE(o += 8)
  }
  o += 8
  if (b.length > FIXED) a.target = b.subarray(FIXED).toString('utf8')
  return a
}
