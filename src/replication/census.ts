import type { LmdbStore } from '../store/lmdb-store.js'
import type { Holders } from './holders.js'
import { Periodic } from './periodic.js'

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

  private readonly job: Periodic

  constructor (private readonly store: LmdbStore, private readonly holders: Holders, private readonly target: number, private readonly links: () => HasLink[], log: (line: string) => void) {
    this.job = new Periodic('census', EVERY_MS, async () => await this.pass(), log)
  }

  start (): void {
    this.job.start()
  }

  close (): void {
    this.job.close()
  }

  run (): Promise<void> {
    return this.job.run()
  }

  private async pass (): Promise<void> {
    const unknown: Buffer[] = []
    for (const key of this.store.refs.getKeys({})) {
      const id = Buffer.from(key as Buffer)
      if (this.store.hasChunk(id)) continue
      if (this.holders.get(id).length >= this.target) continue
      unknown.push(id)
    }
    for (const link of this.links()) {
      for (let i = 0; i < unknown.length && !this.job.closed; i += BATCH) {
        const batch = unknown.slice(i, i + BATCH)
        const have = await link.has(batch).catch(() => null)
        if (!have) break
        const held = batch.filter((_, j) => have[j])
        if (held.length > 0) this.holders.addMany(held, link.id)
      }
    }
  }
}
