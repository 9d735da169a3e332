// A chunk's reference record (`refs`): u32 LE count, then u32 LE the bytes
// the chunk counts for in uniqueBytes (its longest reference while it has
// been referenced: a truncated reference still holds the whole chunk).
// Records written before the counters carry the count alone.
export function encodeRefs (count: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(8)
  b.writeUInt32LE(count, 0)
  b.writeUInt32LE(length, 4)
  return b
}

export function refsCount (b: Buffer): number {
  return b.readUInt32LE(0)
}

// undefined: a record from before the counters.
export function refsLength (b: Buffer): number | undefined {
  return b.length >= 8 ? b.readUInt32LE(4) : undefined
}
