import { fail } from '../errors.js'

// 1: times in ms; 2: + the nanoseconds past the ms of atime and mtime,
// written only when one is set finer than a ms (so records stay version 1
// otherwise, and every version-1 record reads as before).
export const INODE_RECORD_VERSION = 1
export const INODE_RECORD_VERSION_NS = 2

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
  // atime and mtime set finer than a ms (utimens, touch -d): [the ms, the
  // nanoseconds past it, 0-999999]. Each counts only while its time field
  // still holds that ms, so whatever sets the time anew drops it (subMs).
  fine?: { atime?: [number, number], mtime?: [number, number] }
}

// The nanoseconds past the ms of `a`'s atime or mtime (0 unless set finer).
export function subMs (a: InodeAttrs, k: 'atime' | 'mtime'): number {
  const f = a.fine?.[k]
  return f !== undefined && f[0] === a[k] ? f[1] : 0
}

const FIXED = 1 + 4 * 5 + 8 + 4 + 8 * 3

export function encodeInode (a: InodeAttrs): Buffer {
  const target = a.target === undefined ? null : Buffer.from(a.target, 'utf8')
  const ans = subMs(a, 'atime')
  const mns = subMs(a, 'mtime')
  const ns = ans !== 0 || mns !== 0
  const b = Buffer.allocUnsafe(FIXED + (ns ? 8 : 0) + (target ? target.length : 0))
  let o = 0
  b[o++] = ns ? INODE_RECORD_VERSION_NS : INODE_RECORD_VERSION
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
  if (ns) {
    o = b.writeUInt32LE(ans, o)
    o = b.writeUInt32LE(mns, o)
  }
  if (target) target.copy(b, o)
  return b
}

export function decodeInode (b: Buffer): InodeAttrs {
  if (b.length < FIXED) throw fail('CORRUPT_RECORD', 'inode record too short')
  if (b[0] !== INODE_RECORD_VERSION && b[0] !== INODE_RECORD_VERSION_NS) throw fail('UNSUPPORTED_VERSION', `inode record version ${b[0]}`)
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
  if (b[0] === INODE_RECORD_VERSION_NS) {
    if (b.length < FIXED + 8) throw fail('CORRUPT_RECORD', 'inode record too short')
    const ans = b.readUInt32LE(o)
    const mns = b.readUInt32LE(o + 4)
    o += 8
    if (ans > 999_999 || mns > 999_999) throw fail('CORRUPT_RECORD', 'inode record nanoseconds out of range')
    const fine: NonNullable<InodeAttrs['fine']> = {}
    if (ans !== 0) fine.atime = [a.atime, ans]
    if (mns !== 0) fine.mtime = [a.mtime, mns]
    a.fine = fine
  }
  if (b.length > o) a.target = b.subarray(o).toString('utf8')
  return a
}
