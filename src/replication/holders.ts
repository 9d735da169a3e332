import type { LmdbStore } from '../store/lmdb-store.js'

const ID = 32

// Which peers hold a copy of each chunk: acknowledged our push, pushed it to
// us, said so (HAS, a holding note), or proved it (a challenge). Each entry
// carries the time of its last proof (0: never proven). A holder that fails
// a challenge, says it has no copy, or is gone longer than repairAfter is
// removed (replication/holder-audit.ts), so every holder listed counts.
export class Holders {
  constructor (private readonly store: LmdbStore) {}

  get (chunkId: Buffer): string[] {
    const raw = this.store.holders.getBinary(chunkId)
    if (!raw) return []
    const out: string[] = []
    for (let o = 0; o + ID <= raw.length; o += ID) out.push(raw.subarray(o, o + ID).toString('hex'))
    return out
  }

  count (chunkId: Buffer): number {
    const raw = this.store.holders.getBinary(chunkId)
    return raw ? Math.floor(raw.length / ID) : 0
  }

  addMany (chunkIds: Buffer[], node: string, provenAt = 0): number {
    const n = Buffer.from(node, 'hex')
    let added = 0
    this.store.txn(() => { for (const id of chunkIds) if (this.store.addHolderSync(id, n, provenAt)) added++ })
    return added
  }

  add (chunkId: Buffer, node: string, provenAt = 0): void {
    this.addMany([chunkId], node, provenAt)
  }

  // Inside the caller's transaction.
  removeSync (chunkId: Buffer, node: string): boolean {
    return this.store.removeHolderSync(chunkId, Buffer.from(node, 'hex'))
  }

  removeMany (chunkIds: Buffer[], node: string): number {
    let n = 0
    this.store.txn(() => { for (const id of chunkIds) if (this.removeSync(id, node)) n++ })
    return n
  }

  // Chunks `node` is listed as holding, in id order from `after` (exclusive).
  heldBy (node: string, after: Buffer | null, limit: number): Array<{ id: Buffer, provenAt: number }> {
    const n = Buffer.from(node, 'hex')
    const start = after ? Buffer.concat([n, after, Buffer.from([0])]) : n
    const end = Buffer.concat([n, Buffer.alloc(ID, 0xff), Buffer.from([0])])
    const out: Array<{ id: Buffer, provenAt: number }> = []
    for (const { key, value } of this.store.held.getRange({ start, end, limit })) {
      out.push({ id: Buffer.from((key as Buffer).subarray(ID)), provenAt: (value as Buffer).readDoubleLE(0) })
    }
    return out
  }

  // The peers listed as holding anything: one seek per peer, not a walk.
  peers (): string[] {
    const out: string[] = []
    let start: Buffer = Buffer.alloc(0)
    for (;;) {
      let next: Buffer | undefined
      for (const key of this.store.held.getKeys({ start, limit: 1 })) next = key as Buffer
      if (!next || next.length < ID) break
      const node = next.subarray(0, ID)
      out.push(node.toString('hex'))
      start = Buffer.concat([node, Buffer.alloc(ID, 0xff), Buffer.from([0xff])])
    }
    return out
  }
}
