import { open as openFile, type FileHandle } from 'node:fs/promises'
import { statSync } from 'node:fs'
import { dropCacheFn } from './drop-behind.js'

// Committed data is fsynced in the background this often, when the file has
// changed: a sequential write then has little left to flush when it ends
// (512 MiB dd conv=fsync: 421-432 MB/s at 2 s, 491-496 MB/s at 100 ms).
const BACKGROUND_SYNC_MS = 100

// The fsyncs of the store's data file (the environment runs with noSync:
// lmdb-store.ts), shared among callers, run in the background too, and the
// drop-behind of replicas' pages once they are on disk.
export class DataFileSync {
  private file: FileHandle | null = null
  private timer: NodeJS.Timeout | null = null
  private syncing: Promise<void> | null = null // the datasync running now
  private nextSync: Promise<void> | null = null // the one that starts after it
  private replicasUnsynced = false // replicas committed since the last sync started
  private droppedTo = 0 // data file offset up to which drop-behind has run
  private dropping: Promise<void> = Promise.resolve() // the last drop-behind, awaited by close()

  constructor (private readonly dataFile: string) {
    // Drop-behind starts at the end of the file as opened: what was there
    // before keeps its cache.
    try { this.droppedTo = statSync(dataFile).size } catch {}
  }

  // Starts the background sync (a writable store only).
  start (): void {
    this.timer = setInterval(() => { this.syncIfWritten().catch(() => {}) }, BACKGROUND_SYNC_MS)
    this.timer.unref()
  }

  // Replicas were committed: their pages are dropped from the page cache after the next sync.
  replicasCommitted (): void {
    this.replicasUnsynced = true
  }

  // Everything committed so far is on disk when this resolves. Concurrent
  // calls share fsyncs: a caller arriving while one runs (which may have
  // started before its commit) waits for the next one only, which every
  // caller arriving meanwhile shares. Callers never wait on syncs started
  // for later arrivals, so a steady stream of commits (replicas arriving)
  // gets its acknowledgements one or two fsyncs after each commit.
  sync (): Promise<void> {
    if (this.syncing === null && this.nextSync === null) return this.startSync()
    this.nextSync ??= (this.syncing ?? Promise.resolve()).catch(() => {}).then(() => {
      this.nextSync = null
      return this.startSync()
    })
    return this.nextSync
  }

  private startSync (): Promise<void> {
    const run = (async () => {
      this.file ??= await openFile(this.dataFile, 'r')
      // Replicas committed before this sync are on disk after it: their pages
      // are dropped from the page cache (drop-behind.ts). LMDB appends new
      // pages at the end of the file, so they lie between the end at the last
      // drop and the end now. (Local writes appended meanwhile are dropped
      // too; dirty pages and pages LMDB has mapped for reading stay.)
      const drop = this.replicasUnsynced ? dropCacheFn() : null
      this.replicasUnsynced = false
      const end = drop ? (await this.file.stat()).size : 0
      await this.file.datasync()
      if (drop && end > this.droppedTo) {
        const from = this.droppedTo
        this.droppedTo = end
        // Not awaited: nobody waiting for this sync waits for the advice too.
        this.dropping = drop(this.file.fd, from, end - from).catch(() => {})
      }
    })().finally(() => { if (this.syncing === run) this.syncing = null })
    this.syncing = run
    return run
  }

  // A background sync, skipped while the file has not been written since the
  // last one (an idle volume costs one fstat per tick, no disk flush).
  private syncedMtime = -1n
  private async syncIfWritten (): Promise<void> {
    if (this.syncing !== null) return
    this.file ??= await openFile(this.dataFile, 'r')
    const { mtimeNs } = await this.file.stat({ bigint: true })
    if (mtimeNs === this.syncedMtime) return
    this.syncedMtime = mtimeNs // set first: a write during the sync changes it again
    await this.sync()
  }

  // Stops the background sync; returns whether it was running (the store then flushes before closing).
  stop (): boolean {
    if (!this.timer) return false
    clearInterval(this.timer)
    return true
  }

  async close (): Promise<void> {
    await this.dropping
    await this.file?.close()
  }
}
