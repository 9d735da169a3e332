import type { LmdbStore } from '../store/lmdb-store.js'
import type { Holders } from './holders.js'

const BATCH = 4096 // the HAS message limit
const EVERY_MS = 10_000

// Asks peers which of them hold the chunks our tree references but this
// node neither holds nor placed itself: chunks another member wrote. Without
// it a member would count every chunk it did not write as lost.
export interface HasLink {
  id: string
  has: (ids: Buffer[]) => Promise<boolean[]>
}

export class Census {
  private timer: NodeJS.Timeout | null = null
  private running = false
  private closed = false

  constructor (private readonly store: LmdbStore, private readonly holders: Holders, private readonly target: number, private readonly links: () => HasLink[]) {}

  start (): void {
    this.timer = setInterval(() => { void this.run() }, EVERY_MS)
    this.timer.unref()
  }

  close (): void {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
  }

  async run (): Promise<void> {
    if (this.running || this.closed) return
    this.running = true
    try {
      const unknown: Buffer[] = []
      for (const key of this.store.refs.getKeys({})) {
        const id = Buffer.from(key as Buffer)
        if (this.store.hasChunk(id)) continue
        if (this.holders.get(id).length >= this.target) continue
        unknown.push(id)
      }
      for (const link of this.links()) {
        for (let i = 0; i < unknown.length && !this.closed; i += BATCH) {
          const batch = unknown.slice(i, i + BATCH)
          const have = await link.has(batch).catch(() => null)
          if (!have) break
          const held = batch.filter((_, j) => have[j])
          if (held.length > 0) this.holders.addMany(held, link.id)
        }
      }
    } finally {
      this.running = false
    }
  }
}
