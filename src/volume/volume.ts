import { join } from 'node:path'
import { LmdbStore } from '../store/lmdb-store.js'
import { LmdbNamespace } from '../meta/lmdb-namespace.js'
import { ChunkPipeline } from '../chunks/chunk-pipeline.js'
import { LmdbChunkStore } from '../chunks/lmdb-chunk-store.js'
import { deriveVolumeKeys, type VolumeKeys } from '../crypto/volume-keys.js'
import { readVolumeFile, createVolumeFile, unlockVolumeFile, type VolumeFile } from './volume-file.js'
import { Recovery } from './recovery.js'

export interface VolumeOptions {
  maxStoreBytes: number
  readOnly?: boolean // a reader beside a running daemon (status)
}

// An unlocked volume: its keys, store, namespace and chunk pipeline.
export class Volume {
  private closed = false
  private constructor (
    readonly dataDir: string,
    readonly file: VolumeFile,
    readonly keys: VolumeKeys,
    readonly store: LmdbStore,
    readonly ns: LmdbNamespace,
    readonly chunks: LmdbChunkStore,
    readonly pipeline: ChunkPipeline
  ) {}

  static async create (dataDir: string, password: string, chunkSize: number): Promise<void> {
    await createVolumeFile(dataDir, password, chunkSize)
  }

  static async open (dataDir: string, password: string, opts: VolumeOptions): Promise<Volume> {
    const file = await readVolumeFile(dataDir)
    const master = await unlockVolumeFile(file, password)
    const keys = deriveVolumeKeys(master)
    const store = LmdbStore.open(join(dataDir, 'store'), { mapSize: opts.maxStoreBytes })
    const ns = new LmdbNamespace(store, keys, file.nodeId)
    ns.setChunkSize(file.chunkSize)
    if (!opts.readOnly) ns.initRoot(process.getuid?.() ?? 0, process.getgid?.() ?? 0)
    const v = new Volume(dataDir, file, keys, store, ns, new LmdbChunkStore(store), new ChunkPipeline(keys.data, keys.chunkId))
    v.readOnly = !!opts.readOnly
    return v
  }

  private readOnly = false

  // After an unclean shutdown: fix reference counts, drop chunks nothing
  // references and entries FUSE left for files unlinked while open.
  async recoverIfUnclean (log: (line: string) => void): Promise<void> {
    const clean = this.store.sysGet('clean')
    if (clean === undefined || clean[0] !== 1) {
      const r = new Recovery(this.store, this.ns, this.keys).run()
      if (this.store.sysGet('clean') !== undefined) {
        log(`recovered after unclean shutdown: ${r.refsFixed} reference counts fixed, ${r.chunksDropped} unreferenced chunks dropped, ${r.hiddenRemoved} stale hidden files removed`)
      }
    }
    this.store.txn(() => this.store.sysPut('clean', Buffer.from([0])))
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (!this.readOnly) this.store.txn(() => this.store.sysPut('clean', Buffer.from([1])))
    await this.store.flushed()
    await this.store.close()
  }
}
