import { fail } from '../errors.js'

export const COUNTERS_RECORD_VERSION = 1
const FIELDS = 5

// The volume's totals, kept in `sys` under 'counters' and rewritten in the
// transaction of every change that moves them (meta/namespace-counters.ts), so
// `status` reads five numbers instead of walking the tree.
export interface NamespaceCounts {
  files: number
  directories: number
  logicalBytes: number // sum of file sizes
  referencedBytes: number // block refs' lengths, once per reference
  uniqueBytes: number // distinct referenced chunks, each at the length its refs record keeps
}

export function zeroCounts (): NamespaceCounts {
  return { files: 0, directories: 0, logicalBytes: 0, referencedBytes: 0, uniqueBytes: 0 }
}

export function encodeCounts (c: NamespaceCounts): Buffer {
  const b = Buffer.allocUnsafe(1 + 8 * FIELDS)
  b[0] = COUNTERS_RECORD_VERSION
  b.writeDoubleLE(c.files, 1)
  b.writeDoubleLE(c.directories, 9)
  b.writeDoubleLE(c.logicalBytes, 17)
  b.writeDoubleLE(c.referencedBytes, 25)
  b.writeDoubleLE(c.uniqueBytes, 33)
  return b
}

export function decodeCounts (b: Buffer): NamespaceCounts {
  if (b.length < 1) throw fail('CORRUPT_RECORD', 'counters record is empty')
  if (b[0] !== COUNTERS_RECORD_VERSION) throw fail('UNSUPPORTED_VERSION', `counters record version ${b[0]}`)
  if (b.length !== 1 + 8 * FIELDS) throw fail('CORRUPT_RECORD', 'counters record has the wrong length')
  return { files: b.readDoubleLE(1), directories: b.readDoubleLE(9), logicalBytes: b.readDoubleLE(17), referencedBytes: b.readDoubleLE(25), uniqueBytes: b.readDoubleLE(33) }
}

export function sameCounts (a: NamespaceCounts, b: NamespaceCounts): boolean {
  return a.files === b.files && a.directories === b.directories && a.logicalBytes === b.logicalBytes && a.referencedBytes === b.referencedBytes && a.uniqueBytes === b.uniqueBytes
}
