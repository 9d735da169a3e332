// LMDB key layouts. Integers are big-endian so that range scans walk them in order.
export function u64Key (n: number): Buffer {
  const b = Buffer.allocUnsafe(8)
  b.writeBigUInt64BE(BigInt(n))
  return b
}

export function readU64Key (b: Buffer, offset = 0): number {
  return Number(b.readBigUInt64BE(offset))
}

// An inode record's associated data (docs/format.md): 'i' and the inode's key.
export function inodeAd (key: Buffer): Buffer {
  const ad = Buffer.allocUnsafe(1 + key.length)
  ad[0] = 0x69 // 'i'
  key.copy(ad, 1)
  return ad
}

export function pairKey (a: number, b: number): Buffer {
  const k = Buffer.allocUnsafe(16)
  k.writeBigUInt64BE(BigInt(a), 0)
  k.writeBigUInt64BE(BigInt(b), 8)
  return k
}
