import { fail } from '../errors.js'
import type { InodeAttrs } from './inode-record.js'

export const CHANGE_RECORD_VERSION = 1

// A namespace change, self-contained: applying it needs nothing but the
// current tree, so a peer can one day receive and apply it. Chunk ids travel
// as hex; every record is stamped with a hybrid logical clock and the node id.
export type Change =
  | { op: 'mknode', parent: number, name: string, ino: number, attrs: InodeAttrs }
  | { op: 'link', parent: number, name: string, ino: number, ctime: number }
  | { op: 'unlink', parent: number, name: string, ctime: number }
  | { op: 'rename', parent: number, name: string, newParent: number, newName: string, ctime: number }
  | { op: 'setattr', ino: number, attrs: Partial<InodeAttrs> }
  // `attrs`: attribute changes made while the data was buffered (vfs/open-file.ts, hold()), applied with it
  | { op: 'blocks', ino: number, size: number, mtime: number, blocks: Array<[number, string | null, number]>, attrs?: Partial<InodeAttrs> }
  | { op: 'truncate', ino: number, size: number, mtime: number }

export interface Stamp {
  hlc: bigint // 48 bits of milliseconds, 16 bits of logical counter
  node: string // hex node id
}

export type StampedChange = Change & Stamp

export function encodeChange (c: StampedChange): Buffer {
  const json = JSON.stringify(c, (_k, v) => typeof v === 'bigint' ? v.toString() : v)
  return Buffer.concat([Buffer.from([CHANGE_RECORD_VERSION]), Buffer.from(json, 'utf8')])
}

export function decodeChange (b: Buffer): StampedChange {
  if (b.length < 2) throw fail('CORRUPT_RECORD', 'change record too short')
  if (b[0] !== CHANGE_RECORD_VERSION) throw fail('UNSUPPORTED_VERSION', `change record version ${b[0]}`)
  const o = JSON.parse(b.subarray(1).toString('utf8'))
  if (typeof o !== 'object' || o === null || typeof o.op !== 'string') throw fail('CORRUPT_RECORD', 'change record is not an object')
  o.hlc = BigInt(o.hlc)
  return o as StampedChange
}
