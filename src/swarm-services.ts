// TEMPORARY stub while src/net is being written; replaced by the real services.
import type { Volume } from './volume/volume.js'
import type { Config } from './config.js'
import { Replicator } from './replication/replicator.js'
import { RemoteFetcher } from './replication/remote-fetcher.js'
import { Holders } from './replication/holders.js'
import type { PeerReport } from './status-report.js'

export class SwarmServices {
  readonly replicator: Replicator
  readonly remote: RemoteFetcher
  readonly replicaCount: number
  constructor (volume: Volume, config: Config, log: (line: string) => void) {
    this.replicaCount = config.replicaCount
    const holders = new Holders(volume.store)
    this.replicator = new Replicator({ store: volume.store, selfId: volume.file.nodeId, replicaCount: config.replicaCount, links: () => [], log, holders })
    this.remote = new RemoteFetcher(() => [], holders, log)
  }

  async start (): Promise<void> {}
  async peerReports (): Promise<PeerReport[]> { return [] }
  async close (): Promise<void> { this.replicator.close() }
}
