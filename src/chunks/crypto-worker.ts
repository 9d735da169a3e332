// Entry point of a crypto worker thread (see crypto-workers.ts): seals and
// opens chunk records with the keys it was started with, and hands results
// back by transfer, so no megabyte is copied between threads.
import { parentPort, workerData } from 'node:worker_threads'
import { sealChunkSync, openChunkSync, openChunkInto, verifyChunkSync, type ChunkKeys } from './chunk-pipeline.js'
import { DisktroError } from '../errors.js'
import { aeadSum } from '../codec/chunk-sum.js'
import { openChunkReader, type ChunkReader } from '../store/lmdb-store.js'
import type { WorkerRequest, WorkerReply, PlainPool } from './crypto-workers.js'
import { lowerThreadPriority } from './thread-priority.js'

const MAX_SPARES = 8
const keys: ChunkKeys = { dataKey: Buffer.from(workerData.dataKey), idKey: Buffer.from(workerData.idKey), idHash: workerData.idHash }
const port = parentPort!
const spares: ArrayBuffer[] = [] // record memory handed back by the main thread
let reader: ChunkReader | null = null // the volume's chunk records, opened on first read
const pool = workerData.pool as PlainPool | null // plaintext slots shared with the event loop

// A sealing thread does throughput work: FUSE threads and writers go first (thread-priority.ts).
if (workerData.background === true) lowerThreadPriority()

port.on('message', (m: WorkerRequest) => {
  if (m.op === 'close') {
    void (reader?.close() ?? Promise.resolve()).catch(() => {}).finally(() => port.close())
    return
  }
  let reply: WorkerReply
  const transfer: ArrayBuffer[] = []
  try {
    if (m.op === 'read') {
      reader ??= openChunkReader(workerData.store.path, workerData.store.readOnly)
      const id = Buffer.from(m.id!)
      if (m.slot !== undefined && pool) {
        const into = Buffer.from(pool.sab, m.slot * pool.slotBytes, pool.slotBytes)
        const len = reader.withRecord(id, record => openChunkInto(keys, id, record, into))
        post(len === undefined ? { n: m.n, missing: true } : { n: m.n, slot: m.slot, len }, transfer)
        return
      }
      const plain = reader.withRecord(id, record => openChunkSync(keys, id, record, m.spare))
      reply = plain ? { n: m.n, ...own(plain, transfer) } : { n: m.n, missing: true }
      post(reply, transfer)
      return
    }
    if (m.spare && spares.length < MAX_SPARES) spares.push(m.spare)
    const input = Buffer.from(m.buf!, m.off, m.len)
    if (m.op === 'seal') {
      const spare = spares.pop()
      const { id, record } = sealChunkSync(keys, input, spare)
      if (spare && record.buffer !== spare) spares.push(spare)
      reply = { n: m.n, id: new Uint8Array(id).buffer, sum: new Uint8Array(aeadSum()).buffer, ...own(record, transfer, record.buffer === spare) }
    } else if (m.op === 'verify') {
      verifyChunkSync(keys, Buffer.from(m.id!), input)
      reply = { n: m.n, ...own(input, transfer, true) }
    } else {
      const plain = openChunkSync(keys, Buffer.from(m.id!), input)
      reply = { n: m.n, ...own(plain, transfer) }
    }
  } catch (e) {
    const code = e instanceof DisktroError ? e.code : 'EIO'
    reply = { n: m.n, error: { code, message: e instanceof Error ? e.message : String(e) } }
  }
  post(reply, transfer)
})

function post (reply: WorkerReply, transfer: ArrayBuffer[]): void {
  try {
    port.postMessage(reply, transfer)
  } catch {
    // Memory from a native addon (lz4's output) may not be transferable: send a copy.
    port.postMessage(reply)
  }
}

// A result whose memory can move to the other thread as it is (the record or
// plaintext fills most of its own ArrayBuffer); otherwise a copy that can.
function own (b: Buffer, transfer: ArrayBuffer[], whole = false): { buf: ArrayBuffer, off: number, len: number } {
  let buf = b.buffer as ArrayBuffer
  let off = b.byteOffset
  if (buf instanceof SharedArrayBuffer || (!whole && b.length < buf.byteLength / 2)) {
    const copy = Buffer.allocUnsafeSlow(b.length)
    b.copy(copy)
    buf = copy.buffer as ArrayBuffer
    off = 0
  }
  transfer.push(buf)
  return { buf, off, len: b.length }
}
