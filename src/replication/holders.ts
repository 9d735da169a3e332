import type { LmdbStore } from '../store/lmdb-store.js'

const ID = 32

// Which peers acknowledged a verified, durable replica of each chunk.
export class Holders {
  constructor (private readonly store: LmdbStore) {}

  get (chunkId: Buffer): string[] {
    const raw = this.store.holders.getBinary(chunkId)
    if (!raw) return []
    const out: string[] = []
    for (let o = 0; o + ID <= raw.length; o += ID) out.push(raw.subarray(o, o + ID).toString('hex'))
    return out
  }

  set (chunkId: Buffer, nodes: string[]): void {
    this.store.holders.putSync(chunkId, Buffer.concat(nodes.map(h => Buffer.from(h, 'hex'))))
  }

  addMany (chunkIds: Buffer[], node: string): void {
    this.store.txn(() => { for (const id of chunkIds) this.add(id, node) })
  }

  add (chunkId: Buffer, node: string): void {
    this.store.txn(() => {
      const cur = this.get(chunkId)
      if (cur.includes(node)) return
      this.store.holders.putSync(chunkId, Buffer.concat([...cur, node].map(h => Buffer.from(h, 'hex'))))
    })
  }
}
