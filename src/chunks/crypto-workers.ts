import { Worker } from 'node:worker_threads'
import { availableParallelism } from 'node:os'
import { fail, DisktroError, type ErrorCode } from '../errors.js'
import type { ChunkKeys, SealedChunk } from './chunk-pipeline.js'
import type { ChunkIdHash } from '../crypto/chunk-id.js'
import { FLAG_LZ4 } from '../codec/chunk-record.js'
import { hugePages } from '../store/heap.js'

export interface WorkerRequest {
  n: number
  op: 'seal' | 'open' | 'read' | 'verify' | 'close'
  buf?: ArrayBuffer | SharedArrayBuffer
  off?: number
  len?: number
  id?: Uint8Array
  spare?: ArrayBuffer // memory for a future record
  slot?: number // read: the plaintext pool's slot to open into
}

export type WorkerReply =
  | { n: number, buf: ArrayBuffer, off: number, len: number, id?: ArrayBuffer, sum?: ArrayBuffer, error?: undefined, missing?: undefined }
  | { n: number, missing: true, error?: undefined }
  | { n: number, slot: number, len: number, missing?: undefined, error?: undefined }
  | { n: number, error: { code: ErrorCode, message: string } }

export interface WorkerStore {
  path: string
  readOnly: boolean
  // The largest plaintext a read returns (the chunk size): with it, reads
  // open into slots of a pool shared with the workers instead of memory
  // moved between threads.
  plainBytes?: number
}

// Memory shared by the event loop and the workers, allocated once: a read
// opens a block into a free slot and hands back its index. Moving a fresh
// megabyte from a worker for every block read made V8 count a gigabyte of
// new external memory per GiB read, and collect garbage for it: a full
// mark-compact every 40-100 ms of a sequential read, and its helper threads
// took a fifth of both cores.
export interface PlainPool { sab: SharedArrayBuffer, slotBytes: number }
const POOL_SLOTS = 64
const READERS_MIN = 2

type Reply = Extract<WorkerReply, { buf: ArrayBuffer }>

interface Pending {
  resolve: (r: WorkerReply & { error?: undefined }) => void
  reject: (e: DisktroError) => void
}

interface Slot {
  worker: Worker
  busy: number
}

// Seals run on threads of their own, a few nice levels down
// (thread-priority.ts): they are throughput work, and a write's FUSE
// requests go first. Reads, opens and verifies run at normal priority: a
// reader waits on each of them (a cold read of 1 GiB took 1.35-1.53 s
// instead of 1.18-1.27 s with every thread lowered).
type Pool = 'seal' | 'read'

// Threads that seal and open chunk records (src/chunks/crypto-worker.ts), so
// hashing and encrypting a megabyte never blocks the event loop that answers
// FUSE. A plaintext block in a SharedArrayBuffer (the VFS's block buffers) is
// read in place; results come back by transfer. The threads start on first
// use and do not keep the process alive while idle. Seals have threads of
// their own at a lower priority (Pool, below).
export class CryptoWorkers {
  private readonly pools: Record<Pool, Slot[]> = { seal: [], read: [] }
  private readonly pending = new Map<number, Pending>()
  private seq = 0
  private closed = false
  private readonly spares: ArrayBuffer[] = []
  private readonly plainSpares: ArrayBuffer[] = []
  // Share of recent seals that compressed (a moving average). LZ4 costs about
  // 3.4 ms per MiB here, six times the encryption: while blocks compress,
  // sealing may use one thread more (on 2 cores: 512 MiB of text written
  // 332-339 -> 365-376 MB/s); while they do not, that thread only competes
  // with the event loop (incompressible: 510 -> 415 MB/s), so it stays idle.
  private compressing = 0
  private readonly pool: PlainPool | null
  private readonly freeSlots: number[] = []

  // `size`: threads when blocks do not compress; `compressingSize` when they
  // do. `store`: the volume's LMDB store, which the workers then read chunk
  // records from themselves.
  private readonly size: number
  private readonly compressingSize: number
  // Read threads: at least READERS_MIN, even on 2 cores. A read thread
  // waits on the disk as often as it computes (a cold read faults the
  // store's pages in), so a second one overlaps the two: a cold 1 GiB read
  // took 1.15-1.29 s (median 1.16) with two, 1.24-1.33 s (median 1.31) with
  // one, and 1.26-1.48 s with three (5, 5 and 2 runs, alternating).
  private readonly readSize: number

  constructor (private readonly keys: ChunkKeys, size = defaultSize(), private readonly store: WorkerStore | null = null, compressingSize = compressingDefault()) {
    this.size = Math.max(1, Math.floor(size))
    this.compressingSize = Math.max(this.size, Math.floor(compressingSize))
    this.readSize = Math.max(this.size, READERS_MIN)
    const slotBytes = store?.plainBytes ?? 0
    // Pages are only touched as slots are used; huge ones where the kernel gives them (store/heap.ts).
    this.pool = slotBytes > 0 ? { sab: new SharedArrayBuffer(POOL_SLOTS * slotBytes), slotBytes } : null
    if (this.pool) hugePages(new Uint8Array(this.pool.sab))
    for (let i = POOL_SLOTS - 1; this.pool && i >= 0; i--) this.freeSlots.push(i)
  }

  get idHash (): ChunkIdHash {
    return this.keys.idHash
  }

  get readsStore (): boolean {
    return this.store !== null
  }

  // Reads a chunk record from the store and opens it, both on a worker: the
  // event loop neither copies the record nor decrypts it. Null when the
  // store does not hold the chunk. The block's memory is a slot of the
  // shared pool when one is free: give it back with recyclePlain once
  // nothing reads it.
  async readAndOpen (id: Buffer): Promise<Buffer | null> {
    if (!this.store) throw fail('EINVAL', 'crypto workers were started without the store')
    const slot = this.freeSlots.pop()
    let r
    try {
      r = await this.call('read', null, false, id, slot)
    } catch (e) {
      if (slot !== undefined) this.freeSlots.push(slot)
      throw e
    }
    if (r.missing) {
      if (slot !== undefined) this.freeSlots.push(slot)
      return null
    }
    // Every worker has the pool (workerData), so a slot asked for is the slot used.
    if ('slot' in r) return Buffer.from(this.pool!.sab, r.slot * this.pool!.slotBytes, r.len)
    const m = r as Reply
    return Buffer.from(m.buf, m.off, m.len)
  }

  async seal (plain: Buffer): Promise<SealedChunk> {
    const r = await this.call('seal', plain, false) as Reply
    const record = Buffer.from(r.buf, r.off, r.len)
    this.compressing = this.compressing * 0.9 + ((record[1] & FLAG_LZ4) !== 0 ? 0.1 : 0)
    return { id: Buffer.from(r.id!), record, sum: Buffer.from(r.sum!) }
  }

  // `donate`: the caller never uses `record` again, so its memory may move to
  // the worker instead of being copied.
  async open (id: Buffer, record: Buffer, donate = false): Promise<Buffer> {
    const r = await this.call('open', record, donate, id) as Reply
    return Buffer.from(r.buf, r.off, r.len)
  }

  // Checks a record authenticates under the data key for `id` (its AEAD tag,
  // without decrypting) and hands it back, in the same memory when `donate`
  // let it move to the worker. Rejects with CORRUPT_CHUNK otherwise.
  async verify (id: Buffer, record: Buffer, donate = false): Promise<Buffer> {
    const r = await this.call('verify', record, donate, id) as Reply
    return Buffer.from(r.buf, r.off, r.len)
  }

  recycle (record: Buffer): void {
    const ab = record.buffer
    if (ab instanceof ArrayBuffer && ab.byteLength >= RECYCLE_MIN && this.spares.length < MAX_SPARES) this.spares.push(ab)
  }

  // Plaintext memory for reads (a fresh megabyte costs ~0.1 ms here, and GC).
  recyclePlain (plain: Buffer): void {
    if (this.pool && plain.buffer === this.pool.sab) {
      this.freeSlots.push(Math.floor(plain.byteOffset / this.pool.slotBytes))
      return
    }
    const ab = plain.buffer
    if (ab instanceof ArrayBuffer && ab.byteLength >= RECYCLE_MIN && plain.byteOffset === 0 && this.plainSpares.length < MAX_SPARES) this.plainSpares.push(ab)
  }

  // Starts every read worker now, not at the first read: a worker's start
  // (a new isolate and its modules: about 0.17 s of CPU each here; its
  // store handle still opens at its first read) took place inside the
  // first read after a mount, which waited for it. Idle workers keep nothing running (unref'd). Sealing
  // workers still start at the first write.
  prestart (): void {
    if (this.closed || !this.readsStore) return
    while (this.pools.read.length < this.readSize) this.spawn('read')
  }

  // Workers running now, by kind.
  get running (): { read: number, seal: number } {
    return { read: this.pools.read.length, seal: this.pools.seal.length }
  }

  // Each worker closes its store handle and exits; one that does not within a second is terminated.
  async close (): Promise<void> {
    this.closed = true
    this.failAll('crypto workers closed')
    // Emptied in place: a worker's exit handler then finds nothing to fail.
    const slots = [...this.pools.seal.splice(0), ...this.pools.read.splice(0)]
    await Promise.all(slots.map(async s => {
      const exited = new Promise<void>(resolve => s.worker.once('exit', () => resolve()))
      s.worker.postMessage({ n: 0, op: 'close' } satisfies WorkerRequest)
      const timer = setTimeout(() => { s.worker.terminate().catch(() => {}) }, 1000)
      await exited
      clearTimeout(timer)
    }))
  }

  private call (op: 'seal' | 'open' | 'read' | 'verify', input: Buffer | null, donate: boolean, id?: Buffer, poolSlot?: number): Promise<WorkerReply & { error?: undefined }> {
    if (this.closed) return Promise.reject(fail('EIO', 'crypto workers closed'))
    const slot = this.pick(op === 'seal' ? 'seal' : 'read')
    const n = ++this.seq
    const transfer: ArrayBuffer[] = []
    let buf = input?.buffer as ArrayBuffer | SharedArrayBuffer | undefined
    let off = input?.byteOffset
    if (input && buf && !(buf instanceof SharedArrayBuffer)) {
      if (!donate || input.length < buf.byteLength / 2) {
        const copy = Buffer.allocUnsafeSlow(input.length)
        input.copy(copy)
        buf = copy.buffer as ArrayBuffer
        off = 0
      }
      transfer.push(buf as ArrayBuffer)
    }
    const spare = op === 'seal' ? this.spares.pop() : op === 'read' && poolSlot === undefined ? this.plainSpares.pop() : undefined
    if (spare) transfer.push(spare)
    const req: WorkerRequest = { n, op, buf, off, len: input?.length, id: id ? new Uint8Array(id) : undefined, spare, slot: poolSlot }
    return new Promise((resolve, reject) => {
      this.pending.set(n, { resolve, reject })
      if (slot.busy++ === 0) slot.worker.ref()
      try {
        slot.worker.postMessage(req, transfer)
      } catch (e) {
        this.pending.delete(n)
        if (--slot.busy === 0) slot.worker.unref()
        reject(fail('EIO', `crypto worker: ${(e as Error).message}`, e))
      }
    })
  }

  private pick (pool: Pool): Slot {
    const slots = this.pools[pool]
    const limit = pool === 'read' ? this.readSize : this.compressing > 0.5 ? this.compressingSize : this.size
    let best: Slot | undefined
    for (const s of slots.slice(0, limit)) if (!best || s.busy < best.busy) best = s
    if (best && (best.busy === 0 || slots.length >= limit)) return best
    return this.spawn(pool)
  }

  private spawn (pool: Pool): Slot {
    const slots = this.pools[pool]
    const worker = new Worker(new URL('./crypto-worker.js', import.meta.url), {
      workerData: { dataKey: new Uint8Array(this.keys.dataKey), idKey: new Uint8Array(this.keys.idKey), idHash: this.keys.idHash, store: this.store, pool: this.pool, background: pool === 'seal' }
    })
    const slot: Slot = { worker, busy: 0 }
    worker.unref()
    worker.on('message', (r: WorkerReply) => {
      const p = this.pending.get(r.n)
      if (!p) return
      this.pending.delete(r.n)
      if (--slot.busy === 0) worker.unref()
      if (r.error) p.reject(fail(r.error.code, r.error.message))
      else p.resolve(r)
    })
    const lost = (why: string): void => {
      const i = slots.indexOf(slot)
      if (i === -1) return
      slots.splice(i, 1)
      // Requests are not tracked per worker: fail them all, callers retry or report EIO.
      this.failAll(`crypto worker ${why}`)
    }
    worker.on('error', e => lost(`failed: ${e.message}`))
    worker.on('exit', code => lost(`exited with code ${code}`))
    slots.push(slot)
    return slot
  }

  private allSlots (): Slot[] {
    return [...this.pools.seal, ...this.pools.read]
  }

  private failAll (why: string): void {
    const all = [...this.pending.values()]
    this.pending.clear()
    for (const s of this.allSlots()) { s.busy = 0; s.worker.unref() }
    for (const p of all) p.reject(fail('EIO', why))
  }
}

const RECYCLE_MIN = 64 * 1024
const MAX_SPARES = 8

// While blocks compress: one thread per core, at most 4.
function compressingDefault (): number {
  return Math.max(1, Math.min(4, availableParallelism()))
}

// One thread per core beyond the event loop's own, at least one, at most 4.
function defaultSize (): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1))
}
