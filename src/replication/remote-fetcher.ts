import type { RemoteChunks } from '../chunks/chunk-store.js'
import type { PeerLink } from './peer-link.js'
import type { Holders } from './holders.js'
import { rank } from './placement.js'

// Fetches a chunk from peers: acknowledged holders first, then everyone else,
// until one returns a record the caller accepts. A peer that lies (returns a
// record that fails verification) is skipped.
export class RemoteFetcher implements RemoteChunks {
  constructor (private readonly links: () => PeerLink[], private readonly holders: Holders, private readonly log: (line: string) => void) {}

  async fetch (id: Buffer, accept: (record: Buffer) => Promise<boolean>): Promise<{ record: Buffer, from: string } | null> {
    const held = new Set(this.holders.get(id))
    const all = rank(id, this.links())
    const order = [...all.filter(l => held.has(l.id)), ...all.filter(l => !held.has(l.id))]
    for (const link of order) {
      const record = await link.getChunk(id).catch(() => null)
      if (!record) continue
      if (await accept(record)) return { record, from: link.id }
      this.log(`peer ${link.id.slice(0, 12)} sent a chunk that failed verification`)
    }
    return null
  }
}
