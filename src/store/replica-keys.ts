// Keys and values of the replication bookkeeping's databases (lmdb-store.ts:
// `garbage`, `gcq`, `holders`, `held`).

// A `garbage` value: f64 LE since when, then (from the queue on) f64 LE its place in `gcq`.
export function garbageQueuedAt (v: Buffer): number {
  return v.length >= 16 ? v.readDoubleLE(8) : v.readDoubleLE(0)
}

export function gcqKey (ms: number, id: Buffer): Buffer {
  const k = Buffer.allocUnsafe(40)
  k.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(ms))), 0)
  id.copy(k, 8)
  return k
}

export function heldKey (node: Buffer, id: Buffer): Buffer {
  return Buffer.concat([node, id])
}

// Where a 32-byte node id sits in a holders value (a multiple of 32), or -1.
export function indexOfNode (raw: Buffer, node: Buffer): number {
  for (let o = 0; o + 32 <= raw.length; o += 32) if (raw.compare(node, 0, 32, o, o + 32) === 0) return o
  return -1
}
