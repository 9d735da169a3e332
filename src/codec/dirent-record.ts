import { fail } from '../errors.js'

export const DIRENT_RECORD_VERSION = 1

export interface Dirent {
  name: string
  ino: number
}

export function encodeDirent (d: Dirent): Buffer {
  const name = Buffer.from(d.name, 'utf8')
  const b = Buffer.allocUnsafe(9 + name.length)
  b[0] = DIRENT_RECORD_VERSION
  b.writeDoubleLE(d.ino, 1)
  name.copy(b, 9)
  return b
}

export function decodeDirent (b: Buffer): Dirent {
  if (b.length < 9) throw fail('CORRUPT_RECORD', 'directory entry too short')
  if (b[0] !== DIRENT_RECORD_VERSION) throw fail('UNSUPPORTED_VERSION', `directory entry version ${b[0]}`)
  return { ino: b.readDoubleLE(1), name: b.subarray(9).toString('utf8') }
}
