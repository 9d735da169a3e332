import { open, type RootDatabase, type Database } from 'lmdb'
import { open as openFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { statSync } from 'node:fs'
import { fail, wrapStorageError } from '../errors.js'
import { chunkSum, chunkSumAsync } from '../codec/chunk-sum.js'
import { dropCacheFn } from './drop-behind.js'
import { keepHeap, hugeMappingsOf } from './heap.js'

type Db = Database<Buffer, Buffer>

// Transaction flags (lmdb-js TransactionFlags): commit synchronously, so the
// change is in the file (the page cache) and survives kill -9 at once. The
// environment runs with noSync: a commit costs ~7 us instead of ~300 us with
// an fsync each. Durability against power loss comes from sync(): fsync(2) on
// a file, acknowledgements to peers, and a background sync (BACKGROUND_SYNC_MS).
const SYNC_COMMIT_NO_FLUSH_WAIT = 0x1 | 0x2 | 0x10000
// Committed data is fsynced in the background this often, when the file has
// changed: a sequential write then has little left to flush when it ends
// (512 MiB dd conv=fsync: 421-432 MB/s at 2 s, 491-496 MB/s at 100 ms).
const BACKGROUND_SYNC_MS = 100
const PAGE_SLACK = 2 * 4096 // an overflow value's page header and rounding
const EMPTY = Buffer.alloc(0)

export interface StoreOptions {
  mapSize?: number
  readOnly?: boolean
}

// The single LMDB environment of a volume and its databases (docs/format.md).
export class LmdbStore {
  readonly env: RootDatabase<Buffer, Buffer>
  readonly chunks: Db // chunk id -> sealed chunk record
  readonly refs: Db // chunk id -> u32 reference count
  readonly inodes: Db // ino -> sealed inode record
  readonly dirents: Db // parent ino + keyed hash of name -> sealed directory entry
  readonly blocks: Db // ino + block index -> sealed block ref
  readonly log: Db // hlc + node -> sealed change record
  readonly sys: Db // small plain bookkeeping: format, next inode, clean-shutdown flag
  readonly holders: Db // chunk id -> node ids (32 bytes each) that acknowledged a replica
  readonly foreign: Db // chunk id -> empty: held on behalf of other members, not our block maps
  readonly pins: Db // ino (u64 BE) + peer node id (32) -> pin record: a peer that must hold the subtree
  readonly oplog: Db // member id (32) + seq (u64 BE) -> signed, sealed namespace op record (every member's log)
  readonly garbage: Db // chunk id -> f64 LE ms: no longer referenced here since then (then f64 LE: its place in gcq); copies elsewhere to collect
  readonly nsmap: Db // shared-namespace bookkeeping: view entry <-> local inode, materialized versions, unsent writes
  readonly sums: Db // chunk id -> checksum of the stored record (codec/chunk-sum.ts): the scrubber's reference
  readonly held: Db // holder node id (32) + chunk id -> f64 LE ms of its last proof (0: acknowledged or reported, not yet proven): the holders index by peer
  readonly rdirty: Db // chunk id -> empty: its copies or references changed; replication/replica-state.ts recounts it
  readonly rstate: Db // chunk id -> what the replication counters include for it (replica-state.ts)
  readonly needs: Db // chunk id -> empty: tracked chunks below replicaCount copies (the replicator's and census's work)
  readonly gcq: Db // ms (u64 BE) · chunk id -> empty: `garbage` in the order it falls due (the collector reads what is due, nothing else)
  readonly lapsed: Db // holder node id (32) + chunk id -> empty: holdings dropped when the holder stayed offline past repairAfter; asked about again when it returns
  private closed = false
  private readonly all: Db[] = []
  private queued = 0 // bytes of limited puts not yet committed

  private constructor (env: RootDatabase<Buffer, Buffer>, private readonly limit?: number) {
    this.env = env
    const sub = (name: string): Db => {
      const db = env.openDB<Buffer, Buffer>({ name, encoding: 'binary', keyEncoding: 'binary', compression: false })
      this.all.push(db)
      return db
    }
    this.chunks = sub('chunks')
    this.refs = sub('refs')
    this.inodes = sub('inodes')
    this.dirents = sub('dirents')
    this.blocks = sub('blocks')
    this.log = sub('log')
    this.sys = sub('sys')
    this.holders = sub('holders')
    this.foreign = sub('foreign')
    this.pins = sub('pins')
    this.oplog = sub('oplog')
    this.nsmap = sub('nsmap')
    this.garbage = sub('garbage')
    this.sums = sub('sums')
    this.held = sub('held')
    this.rdirty = sub('rdirty')
    this.rstate = sub('rstate')
    this.needs = sub('needs')
    this.lapsed = sub('lapsed')
    this.gcq = sub('gcq') // 20 of maxDbs (24)
  }

  static open (path: string, opts: StoreOptions = {}): LmdbStore {
    try {
      const env = openEnv(path, opts)
      const store = new LmdbStore(env, opts.mapSize)
      store.path = path
      store.readOnly = !!opts.readOnly
      store.dataFile = join(path, 'data.mdb')
      // Drop-behind starts at the end of the file as opened: what was there
      // before keeps its cache.
      try { store.droppedTo = statSync(store.dataFile).size } catch {}
      hugeMappingsOf(store.dataFile) // records fault in 2 MiB at a time (heap.ts)
      if (!opts.readOnly) {
        keepHeap() // LMDB's record pages from kept memory, not fresh faults (heap.ts)
        store.timer = setInterval(() => { store.syncIfWritten().catch(() => {}) }, BACKGROUND_SYNC_MS)
        store.timer.unref()
      }
      return store
    } catch (e) {
      throw wrapStorageError(e, `cannot open store at ${path}`)
    }
  }

  // Runs `fn` in one write transaction and commits before returning.
  txn<T> (fn: () => T): T {
    try {
      return this.env.transactionSync(fn, SYNC_COMMIT_NO_FLUSH_WAIT as never)
    } catch (e) {
      throw wrapStorageError(e, 'store transaction failed')
    }
  }

  // lmdb-js grows the map whenever it fills, so mapSize alone limits nothing.
  // This is the limit for data: the pages in use (every database, the free
  // list's own pages, the two meta pages) plus puts still queued must leave
  // room for `value`. Pages freed by deletes are reused, so deleting makes room.
  async putLimited (db: Db, key: Buffer, value: Buffer): Promise<void> {
    await this.limited(value.length, () => db.put(key, value))
  }

  private async limited (bytes: number, put: () => Promise<unknown>): Promise<void> {
    this.reserve(bytes)
    let committed = false
    try {
      await put()
      committed = true
    } finally {
      this.release(bytes, committed)
    }
  }

  // Room for `bytes` is held (queued) from the check until the put settles,
  // across every await: puts arriving together must not all pass the check
  // before any is counted.
  private reserve (bytes: number): void {
    this.fits(bytes)
    this.queued += bytes
  }

  // A committed put counts as used from now on: a recount taken while it was
  // queued did not see it, and it must not drop out of the count until the
  // next one (a recount after its commit sees it and starts afresh).
  private release (bytes: number, committed: boolean): void {
    this.queued -= bytes
    if (committed) this.usedSince += bytes
  }

  // A chunk record always goes in with its checksum, and leaves with it:
  // a checksum without its record means the record was lost (the scrubber
  // fetches it again). Both puts are queued together, so they share a commit.
  // `sum`: the record's checksum when the caller already has it (a crypto worker computed it).
  async putChunk (id: Buffer, record: Buffer, sum?: Buffer): Promise<void> {
    sum ??= await chunkSumAsync(record)
    await this.limited(record.length, () => Promise.all([this.chunks.put(id, record), this.sums.put(id, sum), this.rdirty.put(id, EMPTY)]))
    this.dirtied()
  }

  putChunkSync (id: Buffer, record: Buffer, sum?: Buffer): void {
    this.chunks.putSync(id, record)
    this.sums.putSync(id, sum ?? chunkSum(record))
    this.markDirty(id)
  }

  removeChunkSync (id: Buffer): void {
    this.chunks.removeSync(id)
    this.sums.removeSync(id)
    this.markDirty(id)
  }

  // --- replication bookkeeping (replication/replica-state.ts) ---

  // A chunk's copies or references changed: its replication state is
  // recounted soon (in the caller's transaction when there is one).
  markDirty (id: Buffer): void {
    this.rdirty.putSync(id, EMPTY)
    this.dirtied()
  }

  private readonly dirtyListeners: Array<() => void> = []
  onDirty (fn: () => void): void {
    this.dirtyListeners.push(fn)
  }

  private dirtied (): void {
    for (const fn of this.dirtyListeners) fn()
  }

  // A chunk no longer referenced here since `ms`: `garbage` and its queue by
  // time, changed together. Inside a transaction.
  // `queuedAt`: where it sits in the queue (a retry goes to the back).
  markGarbageSync (id: Buffer, ms: number, queuedAt = ms): void {
    this.unmarkGarbageSync(id)
    const t = Buffer.allocUnsafe(16)
    t.writeDoubleLE(ms, 0)
    t.writeDoubleLE(queuedAt, 8)
    this.garbage.putSync(id, t)
    this.gcq.putSync(gcqKey(queuedAt, id), EMPTY)
  }

  unmarkGarbageSync (id: Buffer): void {
    const t = this.garbage.getBinary(id)
    if (t === undefined) return
    this.gcq.removeSync(gcqKey(garbageQueuedAt(t), id))
    this.garbage.removeSync(id)
  }

  // The holders of a chunk: `holders` (chunk -> node ids) and its index by
  // peer, `held` (node + chunk -> time of the last proof), changed together.
  // Inside a transaction.
  addHolderSync (id: Buffer, node: Buffer, provenAt = 0): boolean {
    const key = heldKey(node, id)
    const raw = this.holders.getBinary(id)
    const known = raw !== undefined && indexOfNode(raw, node) >= 0
    if (!known) this.holders.putSync(id, raw ? Buffer.concat([raw, node]) : Buffer.from(node))
    let firstProof = false
    if (!known || provenAt > 0) {
      const before = this.held.getBinary(key)?.readDoubleLE(0) ?? 0
      firstProof = provenAt > 0 && before === 0
      const t = Buffer.allocUnsafe(8)
      t.writeDoubleLE(provenAt > 0 ? provenAt : before)
      this.held.putSync(key, t)
    }
    if (!known || firstProof) this.markDirty(id) // recounted: a new holder, or a first proof
    return !known
  }

  removeHolderSync (id: Buffer, node: Buffer): boolean {
    this.held.removeSync(heldKey(node, id))
    const raw = this.holders.getBinary(id)
    const at = raw === undefined ? -1 : indexOfNode(raw, node)
    if (at < 0) return false
    const rest = Buffer.concat([raw!.subarray(0, at), raw!.subarray(at + 32)])
    if (rest.length === 0) this.holders.removeSync(id)
    else this.holders.putSync(id, rest)
    this.markDirty(id)
    return true
  }

  clearHoldersSync (id: Buffer): void {
    const raw = this.holders.getBinary(id)
    if (raw === undefined) return
    for (let o = 0; o + 32 <= raw.length; o += 32) this.held.removeSync(heldKey(raw.subarray(o, o + 32), id))
    this.holders.removeSync(id)
    this.markDirty(id)
  }

  // A chunk record held for another member: stored unless already here, and
  // marked foreign (placement put it here: the sender, recorded as a holder,
  // stays responsible for its copies while it lives), all in one commit of
  // lmdb-js's write batch, whose thread copies the record into the map and
  // writes the pages. Resolves once committed (not yet fsynced: see
  // flushed()). `record` must stay unchanged until then. Throws ENOSPC past
  // the limit like putLimited. `sum` is the record's checksum when the caller
  // has one (a full member, which has just authenticated the record, passes
  // the AEAD sum); without one the record gets a SHA-256 sum (a storage-only
  // member cannot authenticate it, so its checksum must resist a forger).
  async putReplica (id: Buffer, record: Buffer, from?: string, sum?: Buffer): Promise<void> {
    const sender = from === undefined ? null : Buffer.from(from, 'hex')
    const isKnown = (held: Buffer | undefined): boolean => sender === null || (held !== undefined && indexOfNode(held, sender) >= 0)
    const stored = this.hasChunk(id)
    if (stored && isKnown(this.holders.getBinary(id))) return
    const bytes = stored ? 0 : record.length
    this.reserve(bytes)
    let committed = false
    try {
      if (!stored && sum === undefined) sum = await chunkSumAsync(record)
      // Queued in one event turn, so one batch commits them together. The
      // record and its sum go in unless another peer's copy got there first
      // (checked on lmdb-js's write thread, which also copies the record
      // into the map: the event loop copies nothing); the marks are a small
      // read-modify-write, in a transaction callback.
      const data = stored ? null : this.chunks.ifNoExists(id, () => { void this.chunks.put(id, record); void this.sums.put(id, sum!) })
      const marks = this.env.transaction(() => {
        // A copy already ours (we wrote it) stays ours: a peer that pushes
        // the same chunk to us does not make it a copy held for others (which
        // we would then stop replicating). A copy new here is held for the
        // sender, whose duty its replication stays.
        if (!stored && !this.foreign.doesExist(id)) this.foreign.putSync(id, EMPTY)
        if (sender !== null) this.addHolderSync(id, sender, Date.now()) // it just sent the record: proof at that time
        this.markDirty(id)
      })
      await Promise.all([data, marks])
      committed = true
      if (bytes > 0) this.replicasUnsynced = true
    } catch (e) {
      throw wrapStorageError(e, 'store transaction failed')
    } finally {
      this.release(bytes, committed)
    }
  }

  // For a record the caller commits in its next synchronous transaction:
  // throws ENOSPC when it would not fit, else counts it as used.
  checkRoom (bytes: number): void {
    this.fits(bytes)
    this.usedSince += bytes
  }

  private fits (bytes: number): void {
    if (this.limit === undefined) return
    const used = this.usedBytesCached() + this.queued
    if (used + bytes + PAGE_SLACK > this.limit) {
      this.usedAt = 0 // recount exactly before refusing
      const exact = this.usedBytesCached() + this.queued
      if (exact + bytes + PAGE_SLACK > this.limit) throw fail('ENOSPC', `storage full (${exact} of maxStoreBytes ${this.limit} bytes in use)`)
    }
  }

  // Counting pages reads the stats of every database (~45 us): recount at
  // most every 100 ms and add what was stored since.
  private usedAt = 0
  private usedBase = 0
  private usedSince = 0
  private usedBytesCached (): number {
    const now = Date.now()
    if (now - this.usedAt > 100) {
      this.usedBase = this.usedBytes()
      this.usedSince = 0
      this.usedAt = now
    }
    return this.usedBase + this.usedSince
  }

  // Bytes the limit (maxStoreBytes) still allows; Infinity without one.
  roomLeft (): number {
    return this.limit === undefined ? Infinity : this.limit - this.usedBytesCached() - this.queued
  }

  usedBytes (): number {
    type Stat = { pageSize: number, treeBranchPageCount: number, treeLeafPageCount: number, overflowPages: number, root: Stat, free: Stat }
    const pages = (s: Stat): number => s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages
    let n = 2
    let stat: Stat | undefined
    for (const db of this.all) {
      stat = db.getStats() as Stat
      n += pages(stat)
    }
    if (stat) n += pages(stat.root) + pages(stat.free)
    return n * (stat?.pageSize ?? 4096)
  }

  // Chunk records and the bytes of the chunk table's pages, from LMDB's own
  // accounting: constant time, and unlike the file size it shrinks when
  // chunks are deleted.
  chunkStats (): { chunks: number, bytes: number } {
    const s = this.chunks.getStats() as { pageSize: number, entryCount: number, treeBranchPageCount: number, treeLeafPageCount: number, overflowPages: number }
    return { chunks: s.entryCount, bytes: (s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages) * s.pageSize }
  }

  path = ''
  readOnly = false
  private dataFile = ''
  private file: FileHandle | null = null
  private timer: NodeJS.Timeout | null = null
  private syncing: Promise<void> | null = null // the datasync running now
  private nextSync: Promise<void> | null = null // the one that starts after it
  private replicasUnsynced = false // replicas committed since the last sync started
  private droppedTo = 0 // data file offset up to which drop-behind has run
  private dropping: Promise<void> = Promise.resolve() // the last drop-behind, awaited by close()

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

  async flushed (): Promise<void> {
    await this.env.committed
    await this.sync()
  }

  // Whether a chunk is stored, without reading it: lmdb-js's doesExist reads
  // the whole value (a 1 MiB copy per call for a chunk); a key cursor does not.
  // No snapshot: the cursor reads the latest commit (or the write
  // transaction it runs in) without renewing a read transaction.
  hasChunk (id: Buffer): boolean {
    for (const key of this.chunks.getKeys({ start: id, limit: 1, snapshot: false })) return (key as Buffer).equals(id)
    return false
  }

  // The same for a record known to be small if it is there (a chunk of a
  // block under 64 KiB: the same plaintext always seals to the same size):
  // lmdb-js's doesExist copies the value, which costs nothing much at that
  // size, and is a quarter of a cursor's cost on the path of every small file.
  hasSmallChunk (id: Buffer): boolean {
    return this.chunks.doesExist(id)
  }

  sysGet (key: string): Buffer | undefined {
    return this.sys.getBinary(Buffer.from(key))
  }

  sysPut (key: string, value: Buffer): void {
    this.sys.putSync(Buffer.from(key), value)
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.timer) {
      clearInterval(this.timer)
      await this.flushed().catch(() => {})
    }
    await this.dropping
    await this.file?.close()
    await this.env.close()
  }
}

function openEnv (path: string, opts: StoreOptions): RootDatabase<Buffer, Buffer> {
  return open<Buffer, Buffer>({
    path,
    maxDbs: 24,
    encoding: 'binary',
    keyEncoding: 'binary',
    compression: false,
    mapSize: opts.mapSize,
    readOnly: opts.readOnly,
    noMemInit: false, // never let freed pages leak stale bytes into the file
    noSync: !opts.readOnly
  })
}

// A `garbage` value: f64 LE since when, then (from the queue on) f64 LE its place in `gcq`.
export function garbageQueuedAt (v: Buffer): number {
  return v.length >= 16 ? v.readDoubleLE(8) : v.readDoubleLE(0)
}

export function gcqKey (ms: number, id: Buffer): Buffer {
  const k = Buffer.allocUnsafe(40)
  k.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(ms))), 0)
  id.copy(k, 8)
  return k
}

export function heldKey (node: Buffer, id: Buffer): Buffer {
  return Buffer.concat([node, id])
}

// Where a 32-byte node id sits in a holders value (a multiple of 32), or -1.
function indexOfNode (raw: Buffer, node: Buffer): number {
  for (let o = 0; o + 32 <= raw.length; o += 32) if (raw.compare(node, 0, 32, o, o + 32) === 0) return o
  return -1
}

export interface ChunkReader {
  // Calls `use` with the record, undefined when absent. The record is a view
  // of lmdb-js's read buffer, valid only until `use` returns: no copy of a
  // megabyte per read, but `use` must not keep it or hand it to anything
  // asynchronous.
  withRecord<T> (id: Buffer, use: (record: Buffer) => T): T | undefined
  close (): Promise<void>
}

// Chunk records read from another thread of this process (a crypto worker):
// lmdb-js shares one environment among the threads that open the same path.
export function openChunkReader (path: string, readOnly: boolean): ChunkReader {
  const env = openEnv(path, { readOnly })
  const chunks = env.openDB<Buffer, Buffer>({ name: 'chunks', encoding: 'binary', keyEncoding: 'binary', compression: false })
  return {
    withRecord: (id, use) => {
      // A fresh snapshot for every read: lmdb-js keeps a read transaction
      // until a zero-delay timer fires, and messages from the main thread can
      // arrive before it does, asking for a chunk committed after that snapshot.
      chunks.resetReadTxn()
      const fast = chunks.getBinaryFast(id)
      // lmdb-js's read buffer is longer than the value; only `length` says so.
      return fast === undefined ? undefined : use(fast.subarray(0, fast.length))
    },
    close: () => env.close()
  }
}
