import { setTimeout as sleep } from 'node:timers/promises'
import type { LmdbStore } from '../store/lmdb-store.js'
import type { RemoteChunks } from '../chunks/chunk-store.js'
import type { ChunkVerifier } from '../chunks/chunk-verifier.js'

const BATCH = 256 // keys read per cursor pass: a short read transaction each
const PREFETCH = 16 // records brought in by one prefetch (lmdb's thread): at most 16 MiB
const PACE_STEP_BYTES = 64 * 1024 // small records are paced together, a pause per 64 KiB read
const SAVE_MS = 3000 // the position written to `sys` at most this often
const RETRY_MS = 5000 // chunks no peer could repair are asked for again this often
const STATE_KEY = 'scrub'
const PACE_SLACK_MS = 100
const BUSY_CHECK_MS = 1000 // while the filesystem is busy, one chunk at most this often (deferWhile)
const BUSY_POLL_MS = 50
// Pacing is by bytes only: a store of small files is scrubbed as fast as
// one of big files (before, each chunk counted as at least 64 KiB: 256
// chunks a second at 16 MiB/s, 65 min a pass at 10^6 chunks). What a chunk
// costs the event loop whatever its size is shared: records are prefetched
// PREFETCH at a time, and the pause (a yield) comes once per PACE_STEP_BYTES
// read; while the filesystem is busy the scrubber still steps aside
// (deferWhile).

// One walk over every chunk this node holds (or held: a checksum whose
// record is gone is a missing chunk).
export interface ScrubPass {
  started: number
  finished: number | null
  checked: number // chunks examined
  bytes: number // record bytes read
  corrupt: number // records that failed verification
  missing: number // records gone though their checksum is still here
  repaired: number // of those, replaced by a verified copy from a peer
  unrepairable: number // of those, no peer had a good copy (yet: retried)
  adopted: number // records from before checksums existed, now given one
}

export interface ScrubReport {
  rateBytesPerSec: number // the configured bound; 0: scrubbing is off
  intervalMs: number // pause between passes
  running: boolean
  passes: number // completed passes, ever
  current: ScrubPass | null
  last: ScrubPass | null // the last completed pass
}

export interface ScrubberOptions {
  store: LmdbStore
  verifier: ChunkVerifier
  remote: RemoteChunks | null // null: no network, bad chunks are only reported
  rate: number // bytes per second, at most
  interval: number // ms between passes
  startDelay?: number // ms before the first pass (default 2 s: let start-up work finish)
  log: (line: string) => void
}

interface Saved {
  pos: string | null // hex key of the last chunk checked in the current pass
  passes: number
  current: ScrubPass | null
  last: ScrubPass | null
}

const CLOSED = Symbol('closed')

// Re-verifies every stored chunk in the background at a bounded rate, so it
// never starves the mount: records are read on lmdb's prefetch thread,
// hashed on the thread pool, and the loop yields between chunks. A corrupt
// or missing record is fetched again from peers and stored back. The walk
// is in key order and its position is kept in `sys`, so a restart resumes.
export class Scrubber {
  private state: Saved
  private readonly pending = new Map<string, ScrubPass>() // bad chunks waiting for a good copy
  private readonly abort = new AbortController()
  private readonly stopped: Promise<typeof CLOSED>
  private loop: Promise<void> | null = null
  private nextAt = 0 // pacing: when the next read may start
  private savedAt = 0
  private retriedAt = 0

  constructor (private readonly o: ScrubberOptions) {
    this.state = Scrubber.saved(o.store)
    this.stopped = new Promise(resolve => this.abort.signal.addEventListener('abort', () => resolve(CLOSED), { once: true }))
  }

  // What the last run left in the data dir (status without a daemon).
  static saved (store: LmdbStore): Saved {
    const raw = store.sysGet(STATE_KEY)
    try {
      if (raw) return JSON.parse(raw.toString('utf8')) as Saved
    } catch {}
    return { pos: null, passes: 0, current: null, last: null }
  }

  static offlineReport (store: LmdbStore, rate: number, interval: number): ScrubReport {
    const s = Scrubber.saved(store)
    return { rateBytesPerSec: rate, intervalMs: interval, running: false, passes: s.passes, current: s.current, last: s.last }
  }

  // While `busy` says the filesystem answers a burst of operations
  // (fuse/hot-loop.ts), the scrubber checks at most one chunk a second
  // (BUSY_CHECK_MS): its reads and hashing took 0.19-0.24 s of the event
  // loop during a tar x of 10,000 files, which the extraction waited for.
  deferWhile (busy: (() => boolean) | null): void {
    this.busy = busy
  }

  private busy: (() => boolean) | null = null

  private async yieldWhileBusy (): Promise<void> {
    const until = Date.now() + BUSY_CHECK_MS
    while (this.busy?.() === true && !this.closed && Date.now() < until) await this.wait(BUSY_POLL_MS)
  }

  start (): void {
    if (this.o.rate <= 0 || this.loop) return
    this.loop = this.run().catch(e => {
      if (!this.abort.signal.aborted) this.o.log(`scrubber stopped: ${(e as Error).message}`)
    })
  }

  report (): ScrubReport {
    return {
      rateBytesPerSec: this.o.rate,
      intervalMs: this.o.interval,
      running: this.state.current !== null && this.loop !== null,
      passes: this.state.passes,
      current: this.state.current && { ...this.state.current },
      last: this.state.last && { ...this.state.last }
    }
  }

  // Safe to call twice. Returns without waiting for a peer's answer.
  async close (): Promise<void> {
    if (this.abort.signal.aborted) return
    this.abort.abort()
    await this.loop
    this.loop = null
    try {
      this.o.store.sysPut(STATE_KEY, Buffer.from(JSON.stringify(this.state))) // resume here next time
    } catch {}
  }

  private get closed (): boolean {
    return this.abort.signal.aborted
  }

  // Resolves with `p`, or rejects at once when the scrubber closes.
  private async until<T> (p: Promise<T>): Promise<T> {
    const r = await Promise.race([p, this.stopped])
    if (r === CLOSED) throw new Error('closed')
    return r as T
  }

  private async run (): Promise<void> {
    await this.wait(this.o.startDelay ?? 2000)
    // A pass finished before a restart: the next one comes an interval after
    // it, not at every start.
    const last = this.state.last?.finished
    if (this.state.current === null && last != null) await this.wait(last + this.o.interval - Date.now())
    while (!this.closed) {
      await this.pass()
      const until = Date.now() + this.o.interval
      while (!this.closed && Date.now() < until) {
        await this.wait(Math.min(RETRY_MS, until - Date.now()))
        await this.retryPending()
      }
    }
  }

  private async wait (ms: number): Promise<void> {
    await sleep(Math.max(0, ms), undefined, { signal: this.abort.signal }).catch(() => {})
  }

  private async pass (): Promise<void> {
    let pass = this.state.current
    let after: Buffer | null = this.state.pos ? Buffer.from(this.state.pos, 'hex') : null
    if (!pass) {
      pass = { started: Date.now(), finished: null, checked: 0, bytes: 0, corrupt: 0, missing: 0, repaired: 0, unrepairable: 0, adopted: 0 }
      after = null
      this.state = { ...this.state, current: pass, pos: null }
    }
    let unpaced = 0 // bytes read since the last pause
    let began = Date.now()
    for (;;) {
      const keys = this.nextKeys(after)
      if (keys.length === 0 || this.closed) break
      for (let i = 0; i < keys.length; i++) {
        const id = keys[i]
        await this.yieldWhileBusy()
        if (this.closed) return
        const before = { ...pass }
        try {
          if (i % PREFETCH === 0) await this.until(this.o.store.prefetchChunks(keys.slice(i, i + PREFETCH)))
          unpaced += await this.scrubOne(id, pass)
        } catch (e) {
          // Stopped half way through this chunk: it is checked again on resume.
          if (this.closed) { Object.assign(pass, before); return }
          throw e
        }
        after = id
        this.state.pos = id.toString('hex')
        this.save(false)
        if (unpaced >= PACE_STEP_BYTES) {
          await this.pace(unpaced, began)
          unpaced = 0
          began = Date.now()
        }
      }
      if (Date.now() - this.retriedAt > RETRY_MS) await this.retryPending()
    }
    if (this.closed) return
    if (unpaced > 0) await this.pace(unpaced, began)
    if (this.closed) return
    pass.finished = Date.now()
    this.state = { pos: null, passes: this.state.passes + 1, current: null, last: pass }
    this.save(true)
    if (pass.corrupt + pass.missing > 0) {
      this.o.log(`scrub: ${pass.checked} chunks checked, ${pass.corrupt} corrupt, ${pass.missing} missing, ${pass.repaired} repaired, ${pass.unrepairable} without a good copy yet`)
    }
  }

  // The next keys after `after` in either the records or their checksums
  // (a checksum alone is a missing record), in key order.
  private nextKeys (after: Buffer | null): Buffer[] {
    const read = (db: LmdbStore['chunks']): { keys: Buffer[], full: boolean } => {
      const keys: Buffer[] = []
      for (const k of db.getKeys(after ? { start: after, limit: BATCH + 1 } : { limit: BATCH })) {
        const key = Buffer.from(k as Buffer)
        if (!after || !key.equals(after)) keys.push(key)
      }
      return { keys: keys.slice(0, BATCH), full: keys.length >= BATCH }
    }
    const a = read(this.o.store.chunks)
    const b = read(this.o.store.sums)
    const seen = new Map<string, Buffer>()
    for (const k of [...a.keys, ...b.keys]) seen.set(k.toString('hex'), k)
    let merged = [...seen.values()].sort(Buffer.compare)
    // A full batch from one cursor ends where the other may not have reached.
    const bounds = [a, b].filter(x => x.full).map(x => x.keys[x.keys.length - 1])
    if (bounds.length > 0) {
      const bound = bounds.sort(Buffer.compare)[0]
      merged = merged.filter(k => Buffer.compare(k, bound) <= 0)
    }
    return merged
  }

  // Returns the bytes read. The record was prefetched with its neighbours.
  private async scrubOne (id: Buffer, pass: ScrubPass): Promise<number> {
    const store = this.o.store
    // Both read in one synchronous step: the same snapshot.
    const record = store.chunkCopy(id)
    const sum = store.sums.getBinary(id)
    if (!record && !sum) return 0 // deleted meanwhile
    if (!record) {
      pass.checked++
      pass.missing++
      await this.repair(id, pass, 'missing')
      return 0
    }
    const verdict = await this.until(this.o.verifier.check(id, record, sum))
    // Counted once checked: a close during the check leaves it uncounted
    // (and checked again on resume), so the live report never runs ahead of
    // what a resume keeps.
    pass.checked++
    pass.bytes += record.length
    if (verdict.state === 'adopt') {
      if (store.hasChunk(id)) await store.sums.put(id, verdict.sum)
      pass.adopted++
    } else if (verdict.state === 'bad') {
      pass.corrupt++
      await this.repair(id, pass, verdict.why)
    }
    return record.length
  }

  // A read of `bytes` that began at `began` may be followed by the next one
  // bytes / rate later: the time spent verifying counts toward the pause.
  private async pace (bytes: number, began: number): Promise<void> {
    const now = Date.now()
    // Timers fire late; a little slack lets the next reads make up for it.
    this.nextAt = Math.max(this.nextAt, began - PACE_SLACK_MS) + bytes * 1000 / this.o.rate
    if (this.nextAt - now >= 1) await this.wait(this.nextAt - now)
    else await new Promise<void>(resolve => setImmediate(resolve))
  }

  private async repair (id: Buffer, pass: ScrubPass, why: string): Promise<void> {
    const hex = id.toString('hex')
    if (await this.fetchGood(id)) {
      pass.repaired++
      this.o.log(`scrub: repaired chunk ${hex.slice(0, 16)} (${why}) with a copy from a peer`)
    } else {
      const earlier = this.pending.get(hex)
      if (earlier) earlier.unrepairable-- // counted again in this pass
      pass.unrepairable++
      this.pending.set(hex, pass)
      this.o.log(`scrub: chunk ${hex.slice(0, 16)} is bad (${why}) and no peer had a good copy yet`)
    }
  }

  // Fetches a verified copy and stores it back. False when no peer had one.
  private async fetchGood (id: Buffer): Promise<boolean> {
    if (!this.o.remote) return false
    const sum = this.o.store.sums.getBinary(id)
    const got = await this.until(this.o.remote.fetch(id, async record => await this.o.verifier.accepts(id, record, sum)))
    if (!got || this.closed) return false
    // Deleted meanwhile (the file was removed): nothing to put back.
    if (!this.o.store.hasChunk(id) && !this.o.store.sums.doesExist(id)) return true
    await this.o.store.putChunk(id, got.record)
    return true
  }

  // Chunks no peer could repair before: asked for again (a peer may have
  // come online), unless a read healed them or they were deleted meanwhile.
  private async retryPending (): Promise<void> {
    this.retriedAt = Date.now()
    for (const [hex, pass] of [...this.pending]) {
      if (this.closed) return
      const id = Buffer.from(hex, 'hex')
      await this.until(this.o.store.prefetchChunks([id]))
      const record = this.o.store.chunkCopy(id)
      const sum = this.o.store.sums.getBinary(id)
      const gone = !record && !sum
      const healed = !gone && record !== undefined && (await this.until(this.o.verifier.check(id, record, sum))).state !== 'bad'
      if (gone || healed || await this.fetchGood(id)) {
        this.pending.delete(hex)
        pass.unrepairable--
        if (!gone) pass.repaired++
        if (!gone) this.o.log(`scrub: repaired chunk ${hex.slice(0, 16)} on a later attempt`)
        this.save(true)
      }
    }
  }

  private save (now: boolean): void {
    if (this.closed) return
    if (!now && Date.now() - this.savedAt < SAVE_MS) return
    this.savedAt = Date.now()
    this.o.store.sysPut(STATE_KEY, Buffer.from(JSON.stringify(this.state)))
  }
}
