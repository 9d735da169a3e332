import { statfs } from 'node:fs/promises'
import type { Volume } from './volume/volume.js'
import type { Vfs } from './vfs/vfs.js'
import type { Scrubber } from './replication/scrubber.js'
import { fuseOps, queuedAttrChanges, queuedCreates, queuedWrites, queuedWritesNow } from './fuse/fuse-adapter.js'
import { loadFuse, writeBehindBinding, readCacheBinding, attrCacheBinding, createBehindBinding, closeBehindBinding, setAnswerSpin, dirAttrTimeout, onFuseLoopEnd, fuseThreadsStarted, fuseMaxPages, fuseMaxWrite, type FuseInstance } from './fuse/native.js'
import { AttrCache } from './fuse/attr-cache.js'
import { ReadCache } from './fuse/read-cache.js'
import { HotLoop, EVENT_LOOP_SPIN_FACTOR, BURST_WINDOW_US } from './fuse/hot-loop.js'
import { WriteBehind } from './fuse/write-behind.js'
import { CloseBehind, type MarkStore } from './fuse/close-behind.js'
import { unmountPath } from './fuse/unmount.js'
import { raiseReadAhead, backgroundOptions } from './fuse/read-ahead.js'
import { maxPages, bigReads, maxWriteBytes } from './fuse/request-size.js'
import { fail } from './errors.js'

// How long the kernel may hold a directory's attributes (scripts/build-fuse.cjs (k)),
// as long as it holds names (libfuse's entry_timeout).
const DIR_ATTR_TIMEOUT_S = 1

export interface MountParts {
  volume: Volume
  vfs: Vfs
  scrubber: Scrubber | null
  log: (line: string) => void
  closing: () => boolean // the node is shutting down: an unmount is its own
  unmounted: () => void // the mount went away without close(): unmounted from outside
}

// A volume's FUSE mount: the addon's caches and queues wired to the VFS and
// the namespace, the mount itself, and its unmount with what it logs. The
// node (node.ts) builds one per mount and owns the rest of shut-down.
export class MountSession {
  private fuse: FuseInstance | null = null
  private writeBehind: WriteBehind | null = null
  private closeBehind: CloseBehind | null = null
  private readCache: ReadCache | null = null
  private attrCache: AttrCache | null = null
  private dirAttrHeldAtMount: number | null = null // the addon's count of held directory replies when mounted
  private readonly volume: Volume
  private readonly log: (line: string) => void

  constructor (private readonly parts: MountParts) {
    this.volume = parts.volume
    this.log = parts.log
  }

  async attach (mountpoint: string, allowOther: boolean): Promise<void> {
    const vfs = this.parts.vfs
    // The read workers boot while the mount is set up. A cold 1 GiB read
    // right after a mount took 1.17-1.27 s, one after 256 MiB had been read
    // 0.94-1.03 s (4 runs each); the first read was starting its workers.
    // DISKTRO_PRESTART_WORKERS=0 leaves them to the first read.
    if (process.env.DISKTRO_PRESTART_WORKERS !== '0') this.volume.access?.pipeline.prestart()
    let Fuse
    try {
      Fuse = loadFuse()
    } catch (e) {
      throw fail('FUSE_UNAVAILABLE', (e as Error).message)
    }
    // Each side of an operation's hand-over waits for the other before it
    // sleeps (fuse/hot-loop.ts, scripts/build-fuse.cjs (f)): a FUSE thread up
    // to 100 us for JS's answer, the event loop five times as long for the
    // next operation, as that wait spans the caller's own work between two
    // calls and the calls the addon answers itself. tar x of 2,000 files:
    // 5.4-6.0 -> 3.85-3.93 s with 100 us on both sides; a longer wait on
    // the event loop's side then took it from 2.78-3.10 s (100 us) to
    // 2.68-2.89 s (300 us), 2.59-2.63 s (600 us), 2.70-2.85 s (1 ms); 500 us
    // in the benchmark: 2.62 s (3 rounds). In a burst the event loop waits
    // 20 ms (stop 15): 1.36-1.44 -> 1.22-1.30 s; 300 us on the FUSE threads'
    // side then gained nothing more (1.24-1.31 s). DISKTRO_FUSE_SPIN_US sets
    // the FUSE threads' window; 0 turns both off.
    const spinUs = Number(process.env.DISKTRO_FUSE_SPIN_US ?? 100)
    const hot = new HotLoop(spinUs * EVENT_LOOP_SPIN_FACTOR, BURST_WINDOW_US)
    // The namespace's ops of new files wait for a burst to end (up to 15 s).
    if (process.env.DISKTRO_EMIT_DEFER !== '0') this.volume.access?.shared?.deferEmitWhile(() => hot.busy)
    // So does the scrubber's background check.
    if (process.env.DISKTRO_SCRUB_DEFER !== '0') this.parts.scrubber?.deferWhile(() => hot.busy)
    const attrCache = this.newAttrCache(vfs)
    const closeBehind = attrCache ? await this.startCloseBehind(vfs) : null
    this.closeBehind = closeBehind
    const onReleased = closeBehind ? (fh: number) => closeBehind.released(fh) : null
    const beforeCommit = closeBehind ? (fh: number) => closeBehind.settle(fh, () => vfs.flush(fh)) : null
    const ops = fuseOps(vfs, this.log, () => hot.touch(), attrCache, onReleased, beforeCommit)
    const wb = writeBehindBinding()
    if (wb && ops.write && process.env.DISKTRO_WRITE_BEHIND !== '0') {
      // With the attribute cache, chmod, chown and utimens whose outcome it
      // can show are answered at once too (scripts/build-fuse.cjs (h)).
      // DISKTRO_CLOSE_BEHIND_HOLD=1 (tests): released files are never committed, so a kill -9 leaves them all to the redo log.
      const apply = queuedAttrChanges(vfs, this.log, closeBehind && {
        released: onReleased,
        checkpoint: (fh, seq) => closeBehind.checkpoint(fh, seq, () => vfs.flush(fh)),
        holdReleases: process.env.DISKTRO_CLOSE_BEHIND_HOLD === '1'
      })
      this.writeBehind = new WriteBehind(wb, queuedWrites(vfs, this.log), attrCache && process.env.DISKTRO_ATTRS_BEHIND !== '0'
        ? (...args) => attrCache.applyPredicted(() => apply(...args))
        : null, process.env.DISKTRO_WRITES_NOW !== '0' ? queuedWritesNow(vfs, this.log) : null,
        // With close behind, tar x reaches the event loop only through the
        // queue: its items are the burst that holds back background work.
        closeBehind ? () => hot.touch() : undefined)
      this.writeBehind.start()
      if (attrCache && process.env.DISKTRO_CREATES_BEHIND !== '0') this.createsBehind(this.writeBehind, attrCache, vfs)
    }
    this.useReadCache(ops, vfs)
    setAnswerSpin(spinUs)
    fuseMaxPages(maxPages())
    fuseMaxWrite(maxWriteBytes())
    // Directories' attributes are held by the kernel for a second (scripts/build-fuse.cjs (k)):
    // with default_permissions every path walked re-fetched each ancestor's.
    // DISKTRO_DIR_ATTR_TIMEOUT sets the seconds; 0 turns it off.
    const dirSeconds = Number(process.env.DISKTRO_DIR_ATTR_TIMEOUT ?? DIR_ATTR_TIMEOUT_S)
    this.dirAttrHeldAtMount = dirAttrTimeout(Number.isFinite(dirSeconds) && dirSeconds >= 0 ? dirSeconds : DIR_ATTR_TIMEOUT_S)
    const fuse = new Fuse(mountpoint, ops, {
      // fuse-native joins options with commas, so fsname carries the ones it
      // has no setting for: 128 KiB writes and our inode numbers, and
      // attr_timeout=0 (fuse-native drops a 0 attrTimeout): the high-level API
      // gives each hard link its own kernel inode, so a cached nlink/ctime of
      // one name would go stale when another name is linked or unlinked
      // (directories, which have one name, get DIR_ATTR_TIMEOUT_S from the addon).
      // The read-ahead's background requests get room too (fuse/read-ahead.ts).
      fsname: ['disktro,big_writes,use_ino,attr_timeout=0', backgroundOptions()].filter(Boolean).join(','),
      subtype: 'disktro',
      defaultPermissions: true,
      allowOther,
      // No timeout for data ops: a slow read must not fail. Others get a
      // generous one as a last resort; the adapter answers every call itself.
      timeout: { default: 120_000, read: false, write: false, flush: false, fsync: false, release: false, truncate: false, ftruncate: false } as unknown as number
    })
    await new Promise<void>((resolve, reject) => fuse.mount(err => err ? reject(fail('MOUNT_FAILED', `cannot mount ${mountpoint}: ${err.message}`, err)) : resolve()))
    this.fuse = fuse
    // Unmounted by someone else (`disktro unmount`, fusermount -u): the
    // daemon would otherwise hold the data dir with nothing to serve.
    onFuseLoopEnd(fuse, () => {
      if (this.fuse !== fuse || this.parts.closing()) return
      this.log(`${mountpoint} was unmounted`)
      this.parts.unmounted()
    })
    if (attrCache?.enable(fuse)) this.attrCache = attrCache
    await raiseReadAhead(mountpoint)
  }

  // Close behind (fuse/close-behind.ts); DISKTRO_CLOSE_BEHIND=0 turns it off.
  private async startCloseBehind (vfs: Vfs): Promise<CloseBehind | null> {
    if (process.env.DISKTRO_CLOSE_BEHIND === '0') return null
    const binding = closeBehindBinding()
    const access = this.volume.access
    if (!binding || !access) return null
    const sys = this.volume.store.sys
    const markKey = (seq: number): Buffer => {
      const k = Buffer.alloc(13)
      k.write('redo:')
      k.writeBigUInt64BE(BigInt(seq), 5)
      return k
    }
    const marks: MarkStore = {
      // A mark rides in the next commit: until then nothing changed the
      // file since its release committed it, so replaying its frame is harmless.
      mark: seq => { access.ns.putWithNextCommit(markKey(seq), Buffer.alloc(0)) },
      markNow: seq => { this.volume.store.txn(() => { sys.putSync(markKey(seq), Buffer.alloc(0)) }) },
      marked: seq => sys.getBinary(markKey(seq)) !== undefined,
      clearMarks: upTo => {
        this.volume.store.txn(() => {
          const end = upTo === undefined ? Buffer.from('redo;') : markKey(upTo + 1)
          for (const k of sys.getKeys({ start: Buffer.from('redo:'), end })) sys.removeSync(k as Buffer)
        })
      }
    }
    const cb = await CloseBehind.start(binding, this.volume.dataDir, access.keys.meta, marks, {
      vfs,
      exists: ino => access.ns.getAttrs(ino) !== undefined,
      reserveIno: ino => access.ns.reserveIno(ino)
    }, this.log)
    const store = this.volume.store
    const dataDir = this.volume.dataDir
    cb.watchRoom(async () => {
      const s = await statfs(dataDir)
      return Math.min(store.roomLeft(), s.bavail * s.bsize)
    }, this.log)
    return cb
  }

  // Creates the addon answers itself (scripts/build-fuse.cjs (i)): it shows
  // inode numbers handed over ahead, one more after each create applied.
  private createsBehind (wb: WriteBehind, attrCache: AttrCache, vfs: Vfs): void {
    const binding = createBehindBinding()
    const ns = this.volume.access?.ns
    if (!binding || !ns) return
    const apply = queuedCreates(vfs, this.log)
    wb.startCreates(binding, (path, fh, mode, ino, time, owner) => {
      const result = attrCache.applyPredicted(() => apply(path, fh, mode, ino, time, owner))
      binding.fuse_native_cb_inos([ns.allocIno()])
      return result
    })
    binding.fuse_native_cb_inos(Array.from({ length: 64 }, () => ns.allocIno()))
  }

  // The addon's attribute cache (fuse/attr-cache.ts), told of every change
  // through the VFS and of every change to the tree that does not come
  // through FUSE; it answers getattrs once enabled after the mount.
  private newAttrCache (vfs: Vfs): AttrCache | null {
    const binding = attrCacheBinding()
    const ns = this.volume.access?.ns
    if (!binding || !ns || process.env.DISKTRO_ATTR_CACHE === '0') return null
    const cache = new AttrCache(binding)
    vfs.onChange(ino => { if (ino === null) cache.invalidate(); else cache.invalidateInode(ino) })
    ns.onInodeChange(ino => cache.invalidateInode(ino))
    ns.onWideChange(() => cache.invalidate())
    return cache
  }

  // The addon's read cache (fuse/read-cache.ts): reads and releases that
  // reach the VFS tell it where readers are; changes to the tree that do not
  // come through FUSE invalidate it.
  private useReadCache (ops: ReturnType<typeof fuseOps>, vfs: Vfs): void {
    const binding = readCacheBinding()
    const { read, release } = ops
    const ns = this.volume.access?.ns
    // With 1 MiB READ requests (fuse/request-size.ts maxPages) the cache only
    // costs: a block is copied into it and out again, where a request that
    // reaches the VFS copies it once. A cold 1 GiB read took 1.04-1.42 s
    // (median 1.14) without it and 1.09-1.86 s (median 1.28) with it, 7
    // runs each, alternating, and 10% more CPU. It pays with 128 KiB requests
    // (eight round trips through the event loop per block): on by default
    // only there. DISKTRO_READ_CACHE=1 or 0 says otherwise.
    const wanted = process.env.DISKTRO_READ_CACHE === undefined ? !bigReads() : process.env.DISKTRO_READ_CACHE !== '0'
    if (!binding || !read || !release || !ns || !wanted) return
    const cache = ReadCache.start(binding, {
      blockSize: this.volume.file.chunkSize,
      read: (fh, buf, length, offset) => vfs.read(fh, buf, length, offset),
      outstanding: () => this.writeBehind?.outstanding ?? 0
    })
    if (!cache) return
    this.readCache = cache
    ops.read = (path, fd, buf, len, pos, cb) => read(path, fd, buf, len, pos, n => { cb(n); if (n > 0) cache.onRead(fd, pos) })
    ops.release = (path, fd, cb) => { cache.forget(fd); release(path, fd, cb) }
    ns.onTreeChange(() => cache.invalidate())
  }

  // Writes answered by write-behind reach the VFS before it is flushed.
  private async drainWrites (): Promise<void> {
    if (this.writeBehind && !await this.writeBehind.drained(10_000)) this.log('unmount: queued writes still pending after 10 s')
  }

  // Unmounts (when mounted) and logs what the mount's caches and queues did.
  async unmount (): Promise<void> {
    if (!this.fuse) return
    const fuse = this.fuse
    this.fuse = null
    this.attrCache?.disable()
    await this.drainWrites()
    await this.parts.vfs.flushAll().catch(e => this.log(`flush on unmount: ${(e as Error).message}`))
    await new Promise<void>(resolve => fuse.unmount(err => {
      if (err) this.log(`unmount: ${err.message}`)
      resolve()
    }))
    await unmountPath(fuse.mnt, { lazy: true }).catch(() => {})
    if (this.readCache) {
      // Nothing it holds may answer a later mount in this process: the
      // same file handle numbers come round again.
      this.readCache.invalidate()
      const { hits, misses } = this.readCache.stats()
      this.log(`read cache: ${hits} reads answered from it, ${misses} passed to the VFS`)
    }
    if (this.attrCache) {
      const [hits, misses, behind, creates, absent] = this.attrCache.stats()
      this.log(`attribute cache: ${hits} getattrs answered from it, ${absent} answered ENOENT, ${misses} passed to the VFS; ${behind} chmod, chown and utimens and ${creates} creates answered at once`)
      this.attrCache = null
    }
    if (this.closeBehind) {
      const { frames, passed, checkpoints, truncations, pauses } = this.closeBehind.stats()
      this.log(`close behind: ${frames} closes answered from the redo log, ${passed} passed to the VFS, ${checkpoints} checkpoints; the log cut back ${truncations} times; paused for room ${pauses} times`)
    }
    const threads = fuseThreadsStarted()
    if (threads !== null) this.log(`FUSE threads started: ${threads}`)
    const pages = fuseMaxPages()
    if (pages !== null) this.log(`FUSE reads of up to ${(pages || 32) * 4} KiB`)
    const workers = this.volume.access?.pipeline.workersRunning
    if (workers) this.log(`crypto workers: ${workers.read} reading, ${workers.seal} sealing`)
    const write = fuseMaxWrite()
    if (write !== null) this.log(`FUSE writes of up to ${(write || 128 * 1024) / 1024} KiB`)
    if (this.writeBehind) {
      const { writes, largest } = this.writeBehind.stats()
      this.log(`write-behind: ${writes} writes queued, the largest ${Math.ceil(largest / 1024)} KiB`)
    }
    if (this.dirAttrHeldAtMount !== null) {
      const held = (dirAttrTimeout(-1) ?? 0) - this.dirAttrHeldAtMount
      this.log(`${held} directory attribute replies held by the kernel`)
      this.dirAttrHeldAtMount = null
    }
    await this.drainWrites() // writes the kernel sent before the unmount, before the last flush
  }

  // After the last flush: the redo log of close behind is done with.
  finish (): void {
    this.closeBehind?.finish()
    this.closeBehind = null
  }
}
