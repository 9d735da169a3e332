import { fail } from '../../errors.js'

// A file version's content as it travels in a write op: its size and block
// map. Chunk ids are keyed hashes, so a manifest reveals no content; the op
// carrying it is sealed anyway. An empty file is ''.
export interface Manifest {
  size: number
  blocks: Array<{ index: number, id: Buffer, length: number }>
}

export function encodeManifest (m: Manifest): string {
  if (m.size === 0 && m.blocks.length === 0) return ''
  return JSON.stringify({ s: m.size, b: m.blocks.map(b => [b.index, b.id.toString('hex'), b.length]) })
}

// Content comes from another member: every field is checked.
export function decodeManifest (content: string, chunkSize: number): Manifest {
  if (content === '') return { size: 0, blocks: [] }
  let o: unknown
  try { o = JSON.parse(content) } catch (e) { throw fail('CORRUPT_RECORD', 'file manifest is not JSON', e) }
  const bad = (): never => { throw fail('CORRUPT_RECORD', 'file manifest is malformed') }
  if (typeof o !== 'object' || o === null) return bad()
  const { s, b } = o as { s: unknown, b: unknown }
  if (typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0 || !Array.isArray(b)) return bad()
  const seen = new Set<number>()
  const blocks = b.map((x: unknown) => {
    if (!Array.isArray(x) || x.length !== 3) return bad()
    const [index, hex, length] = x as [unknown, unknown, unknown]
    if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0 || seen.has(index)) return bad()
    if (typeof hex !== 'string' || !/^[0-9a-f]{64}$/.test(hex)) return bad()
    if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 1 || length > chunkSize) return bad()
    if (index * chunkSize + length > s) return bad()
    seen.add(index)
    return { index, id: Buffer.from(hex, 'hex'), length }
  })
  return { size: s, blocks }
}
