import type { LmdbStore } from '../store/lmdb-store.js'
import { u64Key, readU64Key } from '../codec/keys.js'
import { fail } from '../errors.js'

// A pin: the peer `peer` must always hold every chunk under inode `ino` (a
// file, or a directory and all it will ever contain). Keyed by inode, not by
// name, so a pin follows renames and the store reveals no names.
export interface Pin {
  ino: number
  peer: string // hex node id
  created: number // ms since the epoch
}

export const PIN_RECORD_VERSION = 1
const PEER_BYTES = 32

// Pins in the volume's `pins` database: key ino (u64 BE) · peer id (32),
// value 01 · created (f64 LE). Kept here beside its one user rather than in
// src/codec while pinning is local to a node (not on the wire).
export class PinStore {
  constructor (private readonly store: LmdbStore) {}

  list (): Pin[] {
    const out: Pin[] = []
    for (const { key, value } of this.store.pins.getRange({})) {
      const k = key as Buffer
      const v = value as Buffer
      if (k.length !== 8 + PEER_BYTES || v.length !== 9 || v[0] !== PIN_RECORD_VERSION) continue // unknown future record: leave it be
      out.push({ ino: readU64Key(k), peer: k.subarray(8).toString('hex'), created: v.readDoubleLE(1) })
    }
    return out
  }

  has (ino: number, peer: string): boolean {
    return this.store.pins.doesExist(pinKey(ino, peer))
  }

  // Returns false when the pin already existed.
  add (ino: number, peer: string): boolean {
    const key = pinKey(ino, peer)
    return this.store.txn(() => {
      if (this.store.pins.doesExist(key)) return false
      const v = Buffer.alloc(9)
      v[0] = PIN_RECORD_VERSION
      v.writeDoubleLE(Date.now(), 1)
      this.store.pins.putSync(key, v)
      return true
    })
  }

  // Returns false when there was no such pin.
  remove (ino: number, peer: string): boolean {
    const key = pinKey(ino, peer)
    return this.store.txn(() => this.store.pins.doesExist(key) && this.store.pins.removeSync(key))
  }
}

function pinKey (ino: number, peer: string): Buffer {
  if (!/^[0-9a-f]{64}$/.test(peer)) throw fail('EINVAL', `not a node id: ${peer}`)
  return Buffer.concat([u64Key(ino), Buffer.from(peer, 'hex')])
}
