import { open, type RootDatabase, type Database } from 'lmdb'
import { join } from 'node:path'
import { wrapStorageError, fail } from '../errors.js'
import { chunkSum, chunkSumAsync } from '../codec/chunk-sum.js'
import { keepHeap, hugeMappingsOf } from './heap.js'
import { StoreRoom } from './room.js'
import { DataFileSync } from './data-sync.js'
import { gcqKey, garbageQueuedAt, heldKey, indexOfNode } from './replica-keys.js'
import { ChunkPacker, isPointer, readPointer, recordIn, packKey } from './chunk-packs.js'
import { holdForSync, heldFor, presenceClock } from './foreign-holdings.js'

export { gcqKey, garbageQueuedAt, heldKey } from './replica-keys.js'

type Db = Database<Buffer, Buffer>

// Transaction flags (lmdb-js TransactionFlags): commit synchronously, so the
// change is in the file (the page cache) and survives kill -9 at once. The
// environment runs with noSync: a commit costs ~7 us instead of ~300 us with
// an fsync each. Durability against power loss comes from sync(): fsync(2) on
// a file, acknowledgements to peers, and a background sync (data-sync.ts).
const SYNC_COMMIT_NO_FLUSH_WAIT = 0x1 | 0x2 | 0x10000
const EMPTY = Buffer.alloc(0)

export interface StoreOptions {
  mapSize?: number
  readOnly?: boolean
}

// The single LMDB environment of a volume and its databases (docs/format.md).
const FORMAT_KEY = 'store-format'
export const STORE_FORMAT = 2

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
  readonly foreign: Db // chunk id -> held on behalf of other members, not our block maps: placer, size, lease (foreign-holdings.ts; empty before accounting)
  readonly pins: Db // ino (u64 BE) + peer node id (32) -> pin record: a peer that must hold the subtree
  readonly oplog: Db // member id (32) + seq (u64 BE) -> signed, sealed namespace op record (every member's log)
  readonly garbage: Db // chunk id -> f64 LE ms: no longer referenced here since then (then f64 LE: its place in gcq); copies elsewhere to collect
  readonly nsmap: Db // shared-namespace bookkeeping: view entry <-> local inode, materialized versions, unsent writes
  readonly sums: Db // chunk id -> checksum of the stored record (codec/chunk-sum.ts): the scrubber's reference
  readonly held: Db // holder node id (32) + chunk id -> f64 LE ms of its last proof (0: acknowledged or reported, not yet proven): the holders index by peer
  readonly rdirty: Db // chunk id -> empty: its copies or references changed; replication/replica-state.ts recounts it
  readonly rstate: Db // chunk id -> what the replication counters include for it (replica-state.ts)
  readonly needs: Db // chunk id -> empty: tracked chunks below replicaCount copies (the replicator's and holder audit's work)
  readonly gcq: Db // ms (u64 BE) · chunk id -> empty: `garbage` in the order it falls due (the collector reads what is due, nothing else)
  readonly lapsed: Db // holder node id (32) + chunk id -> empty: holdings dropped when the holder stayed offline past repairAfter; asked about again when it returns
  readonly leaseq: Db // full-member clock ms (u64 BE) · chunk id -> empty: copies held for others by when their lease was last renewed (foreign-holdings.ts)
  readonly claims: Db // claimer node id (32) + chunk id -> empty: holdings a peer claimed (HOLDING, HAS), not counted until proven (holder-claims.ts)
  readonly packs: Db // pack seq (u64 BE) -> small chunk records end to end (chunk-packs.ts)
  readonly packlive: Db // pack seq -> live bytes · all bytes: when a pack is worth compacting
  readonly packq: Db // records staged for packing, packs due for compaction
  private packer: ChunkPacker | null = null
  private closed = false
  private readonly all: Db[] = []
  private readonly room: StoreRoom
  private readonly data: DataFileSync

  private constructor (env: RootDatabase<Buffer, Buffer>, dataFile: string, limit?: number) {
    this.env = env
    this.room = new StoreRoom(this.all, limit)
    this.data = new DataFileSync(dataFile)
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
    this.gcq = sub('gcq')
    this.leaseq = sub('leaseq')
    this.claims = sub('claims')
    this.packs = sub('packs')
    this.packlive = sub('packlive')
    this.packq = sub('packq') // 25 of maxDbs (32)
  }

  static open (path: string, opts: StoreOptions = {}): LmdbStore {
    try {
      const env = openEnv(path, opts)
      const dataFile = join(path, 'data.mdb')
      const store = new LmdbStore(env, dataFile, opts.mapSize)
      store.path = path
      store.readOnly = !!opts.readOnly
      try {
        store.checkFormat()
      } catch (e) {
        void env.close()
        throw e
      }
      hugeMappingsOf(dataFile) // records fault in 2 MiB at a time (heap.ts)
      if (!opts.readOnly) {
        keepHeap() // LMDB's record pages from kept memory, not fresh faults (heap.ts)
        store.data.start()
        store.startPacker()
      }
      return store
    } catch (e) {
      throw wrapStorageError(e, `cannot open store at ${path}`)
    }
  }

  // The store's format (`sys` store-format, u32 LE): 1 had none written,
  // 2 may hold pack records (chunk-packs.ts). A store written by a newer
  // disktro is refused rather than misread; an older one is marked current
  // when opened for writing (2 reads 1 as it is).
  private checkFormat (): void {
    const raw = this.sysGet(FORMAT_KEY)
    const format = raw?.length === 4 ? raw.readUInt32LE(0) : 1
    if (format > STORE_FORMAT) throw fail('UNSUPPORTED_VERSION', `the store at ${this.path} is of format ${format}, written by a newer disktro (this one reads up to ${STORE_FORMAT})`)
    if (format < STORE_FORMAT && !this.readOnly) {
      const b = Buffer.alloc(4)
      b.writeUInt32LE(STORE_FORMAT)
      this.txn(() => this.sysPut(FORMAT_KEY, b))
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

  // Throws ENOSPC unless the limit (maxStoreBytes) leaves room for `value` (room.ts).
  async putLimited (db: Db, key: Buffer, value: Buffer): Promise<void> {
    await this.room.limited(value.length, () => db.put(key, value))
  }

  // A chunk record always goes in with its checksum, and leaves with it:
  // a checksum without its record means the record was lost (the scrubber
  // fetches it again). Both puts are queued together, so they share a commit.
  // `sum`: the record's checksum when the caller already has it (a crypto worker computed it).
  // A small record goes in inline and is staged for packing (chunk-packs.ts).
  async putChunk (id: Buffer, record: Buffer, sum?: Buffer): Promise<void> {
    storable(record)
    sum ??= await chunkSumAsync(record)
    const old = valueOf(this.chunks.getBinaryFast(id))
    if (old !== undefined && isPointer(old)) {
      // Replacing a packed record (a repair): its pack loses it in the same commit.
      await this.room.limited(record.length, async () => { this.txn(() => this.putChunkSync(id, record, sum)) })
      return
    }
    const stage = this.packer?.stageKey(id, record.length) ?? null
    await this.room.limited(record.length, () => Promise.all([
      this.chunks.put(id, record), this.sums.put(id, sum), this.rdirty.put(id, EMPTY),
      stage ? this.packq.put(stage, EMPTY) : null
    ]))
    this.dirtied()
    this.packer?.kick()
  }

  putChunkSync (id: Buffer, record: Buffer, sum?: Buffer): void {
    storable(record)
    this.releasePacked(id)
    this.chunks.putSync(id, record)
    this.sums.putSync(id, sum ?? chunkSum(record))
    const stage = this.packer?.stageKey(id, record.length)
    if (stage) { this.packq.putSync(stage, EMPTY); this.packer!.kick() }
    this.markDirty(id)
  }

  removeChunkSync (id: Buffer): void {
    this.releasePacked(id)
    this.chunks.removeSync(id)
    this.sums.removeSync(id)
    this.markDirty(id)
  }

  // Inside a transaction: the record of `id`, if packed, leaves its pack.
  private releasePacked (id: Buffer): void {
    const old = valueOf(this.chunks.getBinaryFast(id))
    if (old === undefined || !isPointer(old) || this.packer === null) return
    this.packer.releaseSync(Buffer.from(old))
    this.packer.kick()
  }

  // --- reading records (inline or packed) ---

  // The record of `id` as a view of lmdb-js's read buffer: valid only until
  // the next read of this store on this thread; copy it to keep it.
  chunkView (id: Buffer): Buffer | undefined {
    return resolveRecord(this.chunks, this.packs, id)
  }

  // The record of `id`, a copy of its own.
  chunkCopy (id: Buffer): Buffer | undefined {
    const v = this.chunkView(id)
    return v === undefined ? undefined : Buffer.from(v)
  }

  // The record's length, without copying a large one out.
  chunkSize (id: Buffer): number | undefined {
    const v = valueOf(this.chunks.getBinaryFast(id))
    if (v === undefined) return undefined
    return isPointer(v) ? readPointer(v).length : v.length
  }

  // lmdb-js touches the records' pages on its prefetch thread, so the reads
  // after find them in memory. A packed record's pack is not prefetched:
  // telling a pointer from a record means reading the value, which lmdb-js
  // copies whole (a megabyte for a large block, on the event loop); a pack
  // is 16 contiguous pages, faulted in by one read where it is used.
  async prefetchChunks (ids: Buffer[]): Promise<void> {
    await this.chunks.prefetch(ids)
  }

  private startPacker (): void {
    const pageSize = (this.chunks.getStats() as { pageSize: number }).pageSize
    // Not kicked here: a process that only reads (an offline status, fsck)
    // changes nothing. The first put or delete picks up what an earlier run
    // left staged or due.
    this.packer = new ChunkPacker({ chunks: this.chunks, packs: this.packs, packlive: this.packlive, packq: this.packq }, fn => this.txn(fn), pageSize)
  }

  // Packs and compactions waiting, done now (tests; the daemon's packer runs
  // them on its own as puts and deletes come).
  packNow (): number {
    let steps = 0
    while (this.packer?.step() === true) steps++
    return steps
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
  // A placing member may keep at most `quotaPerMember` bytes here (its
  // account: foreign-holdings.ts); past it, ENOSPC names the quota.
  quotaPerMember: number | null = null
  private readonly placing = new Map<string, number>() // bytes of placements queued, per placer

  async putReplica (id: Buffer, record: Buffer, from?: string, sum?: Buffer): Promise<void> {
    const sender = from === undefined ? null : Buffer.from(from, 'hex')
    const isKnown = (held: Buffer | undefined): boolean => sender === null || (held !== undefined && indexOfNode(held, sender) >= 0)
    const stored = this.hasChunk(id)
    if (stored && isKnown(this.holders.getBinary(id))) {
      if (sender !== null && this.foreign.doesExist(id)) await this.env.transaction(() => holdForSync(this, id, sender, record.length, presenceClock(this)))
      return
    }
    const bytes = stored ? 0 : record.length
    if (bytes > 0 && from !== undefined && this.quotaPerMember !== null) {
      const used = heldFor(this, from).bytes + (this.placing.get(from) ?? 0)
      if (used + bytes > this.quotaPerMember) throw fail('ENOSPC', `quota for member ${from.slice(0, 12)} full (${used} of quotaPerMember ${this.quotaPerMember} bytes held for it)`)
    }
    this.room.reserve(bytes)
    if (from !== undefined) this.placing.set(from, (this.placing.get(from) ?? 0) + bytes)
    let committed = false
    try {
      if (!stored && sum === undefined) sum = await chunkSumAsync(record)
      // Queued in one event turn, so one batch commits them together. The
      // record and its sum go in unless another peer's copy got there first
      // (checked on lmdb-js's write thread, which also copies the record
      // into the map: the event loop copies nothing); the marks are a small
      // read-modify-write, in a transaction callback.
      storable(record)
      const stage = stored ? null : this.packer?.stageKey(id, record.length) ?? null
      const data = stored ? null : this.chunks.ifNoExists(id, () => { void this.chunks.put(id, record); void this.sums.put(id, sum!); if (stage) void this.packq.put(stage, EMPTY) })
      const marks = this.env.transaction(() => {
        // A copy already ours (we wrote it) stays ours: a peer that pushes
        // the same chunk to us does not make it a copy held for others (which
        // we would then stop replicating). A copy new here is held for the
        // sender, whose duty its replication stays.
        if (!stored && sender !== null) holdForSync(this, id, sender, record.length, presenceClock(this))
        else if (!stored && !this.foreign.doesExist(id)) this.foreign.putSync(id, EMPTY)
        else if (sender !== null && this.foreign.doesExist(id)) holdForSync(this, id, sender, record.length, presenceClock(this)) // a placement renews its lease
        if (sender !== null) this.addHolderSync(id, sender, Date.now()) // it just sent the record: proof at that time
        this.markDirty(id)
      })
      await Promise.all([data, marks])
      committed = true
      if (bytes > 0) { this.data.replicasCommitted(); this.packer?.kick() }
    } catch (e) {
      throw wrapStorageError(e, 'store transaction failed')
    } finally {
      this.room.release(bytes, committed)
      if (from !== undefined) {
        const left = (this.placing.get(from) ?? 0) - bytes
        if (left > 0) this.placing.set(from, left)
        else this.placing.delete(from)
      }
    }
  }

  // For a record the caller commits in its next synchronous transaction:
  // throws ENOSPC when it would not fit, else counts it as used.
  checkRoom (bytes: number): void {
    this.room.checkRoom(bytes)
  }

  // Bytes the limit (maxStoreBytes) still allows; Infinity without one.
  roomLeft (): number {
    return this.room.roomLeft()
  }

  usedBytes (): number {
    return this.room.usedBytes()
  }

  // Used bytes and the room the limit leaves, counted together (statfs).
  space (): { used: number, left: number } {
    return this.room.space()
  }

  // Chunk records and the bytes of the chunk table's and the packs' pages,
  // from LMDB's own accounting: constant time, and unlike the file size it
  // shrinks when chunks are deleted.
  chunkStats (): { chunks: number, bytes: number } {
    type Stat = { pageSize: number, entryCount: number, treeBranchPageCount: number, treeLeafPageCount: number, overflowPages: number }
    const pages = (s: Stat): number => s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages
    const c = this.chunks.getStats() as Stat
    const p = this.packs.getStats() as Stat
    const l = this.packlive.getStats() as Stat
    return { chunks: c.entryCount, bytes: (pages(c) + pages(p) + pages(l)) * c.pageSize }
  }

  // Pages in use and pack records, for status (SpaceReport).
  spaceStats (): { storeBytes: number, chunkBytes: number, packs: number } {
    return { storeBytes: this.room.usedBytes(), chunkBytes: this.chunkStats().bytes, packs: (this.packs.getStats() as { entryCount: number }).entryCount }
  }

  path = ''
  readOnly = false

  // Everything committed so far is on disk when this resolves (data-sync.ts).
  sync (): Promise<void> {
    return this.data.sync()
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
    this.packer?.close()
    if (this.data.stop()) await this.flushed().catch(() => {})
    await this.data.close()
    await this.env.close()
  }
}

function openEnv (path: string, opts: StoreOptions): RootDatabase<Buffer, Buffer> {
  return open<Buffer, Buffer>({
    path,
    maxDbs: 32,
    encoding: 'binary',
    keyEncoding: 'binary',
    compression: false,
    mapSize: opts.mapSize,
    readOnly: opts.readOnly,
    noMemInit: false, // never let freed pages leak stale bytes into the file
    noSync: !opts.readOnly
  })
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
  const packs = env.openDB<Buffer, Buffer>({ name: 'packs', encoding: 'binary', keyEncoding: 'binary', compression: false })
  return {
    withRecord: (id, use) => {
      // A fresh snapshot for every read: lmdb-js keeps a read transaction
      // until a zero-delay timer fires, and messages from the main thread can
      // arrive before it does, asking for a chunk committed after that snapshot.
      chunks.resetReadTxn()
      const record = resolveRecord(chunks, packs, id)
      return record === undefined ? undefined : use(record)
    },
    close: () => env.close()
  }
}

// A chunk's record, inline or in its pack, as a view of lmdb-js's read
// buffer (valid until the next read). The pointer and the pack are read in
// the same read transaction, so a pack compacted meanwhile is still whole.
function resolveRecord (chunks: Db, packs: Db, id: Buffer): Buffer | undefined {
  const v = valueOf(chunks.getBinaryFast(id))
  if (v === undefined || !isPointer(v)) return v
  const p = readPointer(v) // parsed before the next read reuses the buffer
  const pack = valueOf(packs.getBinaryFast(packKey(p.pack)))
  return pack === undefined ? undefined : recordIn(pack, p)
}

// lmdb-js's read buffer is longer than the value; only its `length`
// property says so. A real view of the value.
function valueOf (fast: Buffer | undefined): Buffer | undefined {
  return fast === undefined ? undefined : fast.subarray(0, fast.length)
}

// A 17-byte value starting with f0 reads as a pointer into a pack. No chunk
// record is that short (a sealed record has at least 42 bytes), so such
// bytes (from a faulty or hostile peer) are refused rather than stored.
function storable (record: Buffer): void {
  if (isPointer(record)) throw fail('EINVAL', 'not a chunk record (the bytes of a pack pointer)')
}
