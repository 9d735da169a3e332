// Robust loader for fuse-native.
//
// fuse-native's addon links libfuse.so.2 by SONAME. scripts/build-fuse.cjs
// (postinstall) rebuilds it with an rpath and with utimens fixes; if that did
// not run or failed, the stock addon only loads once libfuse is preloaded
// globally, which we always do first (harmless when the rpath works).

import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { unmountPath } from './unmount.js'

const require = createRequire(import.meta.url)

/** Callback taking a FUSE result: 0 (ok) or a negative errno. */
export type FuseDone = (code: number) => void

/** Attributes accepted by getattr / readdir; times are Date or ms since epoch. */
export interface FuseStat {
  mode: number
  uid?: number
  gid?: number
  size?: number
  dev?: number
  nlink?: number
  ino?: number
  rdev?: number
  blksize?: number
  blocks?: number
  atime?: Date | number
  mtime?: Date | number
  ctime?: Date | number
  atimeNs?: number // the nanoseconds past atime's ms (scripts/build-fuse.cjs (q))
  mtimeNs?: number
}

export interface FuseStatfs {
  bsize: number
  frsize: number
  blocks: number
  bfree: number
  bavail: number
  files: number
  ffree: number
  favail: number
  fsid: number
  flag: number
  namemax: number
}

/**
 * Handlers passed to `new Fuse(...)`. Every callback's first argument is 0 or a
 * negative errno, except read/write, whose callback takes the byte count (or a
 * negative errno). utimens times are raw: decode them with decodeUtimensArg().
 */
export interface FuseOperations {
  init?(cb: FuseDone): void
  access?(path: string, mode: number, cb: FuseDone): void
  statfs?(path: string, cb: (code: number, st?: FuseStatfs) => void): void
  getattr?(path: string, cb: (code: number, st?: FuseStat) => void): void
  fgetattr?(path: string, fd: number, cb: (code: number, st?: FuseStat) => void): void
  flush?(path: string, fd: number, cb: FuseDone): void
  fsync?(path: string, datasync: number, fd: number, cb: FuseDone): void
  fsyncdir?(path: string, datasync: number, fd: number, cb: FuseDone): void
  readdir?(path: string, cb: (code: number, names?: string[], stats?: FuseStat[]) => void): void
  truncate?(path: string, size: number, cb: FuseDone): void
  ftruncate?(path: string, fd: number, size: number, cb: FuseDone): void
  readlink?(path: string, cb: (code: number, target?: string) => void): void
  chown?(path: string, uid: number, gid: number, cb: FuseDone): void
  chmod?(path: string, mode: number, cb: FuseDone): void
  mknod?(path: string, mode: number, dev: number, cb: FuseDone): void
  setxattr?(path: string, name: string, value: Buffer, position: number, flags: number, cb: FuseDone): void
  getxattr?(path: string, name: string, position: number, cb: (code: number, value?: Buffer | null) => void): void
  listxattr?(path: string, cb: (code: number, names?: string[]) => void): void
  removexattr?(path: string, name: string, cb: FuseDone): void
  open?(path: string, flags: number, cb: (code: number, fd?: number) => void): void
  opendir?(path: string, flags: number, cb: (code: number, fd?: number) => void): void
  read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErrno: number) => void): void
  write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErrno: number) => void): void
  release?(path: string, fd: number, cb: FuseDone): void
  releasedir?(path: string, fd: number, cb: FuseDone): void
  create?(path: string, mode: number, cb: (code: number, fd?: number) => void): void
  utimens?(path: string, atime: number | NsTime, mtime: number | NsTime, cb: FuseDone): void
  unlink?(path: string, cb: FuseDone): void
  rename?(src: string, dest: string, cb: FuseDone): void
  link?(src: string, dest: string, cb: FuseDone): void
  symlink?(src: string, dest: string, cb: FuseDone): void
  mkdir?(path: string, mode: number, cb: FuseDone): void
  rmdir?(path: string, cb: FuseDone): void
}

export interface FuseOptions {
  force?: boolean
  mkdir?: boolean
  debug?: boolean
  allowOther?: boolean
  allowRoot?: boolean
  autoUnmount?: boolean
  defaultPermissions?: boolean
  fsname?: string
  subtype?: string
  kernelCache?: boolean
  autoCache?: boolean
  attrTimeout?: number
  entryTimeout?: number
  acAttrTimeout?: number
  maxRead?: number
  uid?: number
  gid?: number
  umask?: number
  /** Per-op timeout in ms (default 15000), false to disable. */
  timeout?: number | false
}

export interface FuseInstance {
  readonly mnt: string
  mount(cb: (err: Error | null) => void): void
  unmount(cb: (err: Error | null) => void): void
}

export interface FuseModule {
  new (mnt: string, ops: FuseOperations, opts?: FuseOptions): FuseInstance
  unmount(mnt: string, cb: (err: Error | null) => void): void
  readonly EPERM: number
  readonly ENOENT: number
  readonly EIO: number
  readonly EBADF: number
  readonly EACCES: number
  readonly EEXIST: number
  readonly EXDEV: number
  readonly ENOTDIR: number
  readonly EISDIR: number
  readonly EINVAL: number
  readonly EFBIG: number
  readonly ENOSPC: number
  readonly EROFS: number
  readonly ENAMETOOLONG: number
  readonly ENOSYS: number
  readonly ENOTEMPTY: number
  readonly ENODATA: number
}

const RTLD_NODELETE = 0x1000 // glibc; not exposed in os.constants

let cached: FuseModule | undefined

function firstLine (err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err)
  return (msg.split('\n').find((l) => l.trim() !== '') ?? msg).trim()
}

function tryResolve (spec: string, from?: string): string | undefined {
  try {
    return from ? require.resolve(spec, { paths: [from] }) : require.resolve(spec)
  } catch {
    return undefined
  }
}

function fuseNativeDir (): string | undefined {
  const pkg = tryResolve('fuse-native/package.json')
  return pkg ? path.dirname(pkg) : undefined
}

/** dlopen libfuse.so.2 globally so the stock addon (no rpath) can bind to it. */
function preloadLibfuse (): string[] {
  const errors: string[] = []
  if (process.platform !== 'linux') return errors
  const fnDir = fuseNativeDir()
  const candidates = [
    tryResolve('fuse-shared-library-linux/libfuse/lib/libfuse.so'),
    fnDir ? tryResolve('fuse-shared-library-linux/libfuse/lib/libfuse.so', fnDir) : undefined,
    fnDir ? path.join(fnDir, 'prebuilds', 'linux-x64', 'libfuse.so') : undefined
  ].filter((p): p is string => p !== undefined && existsSync(p))
  const flags = (os.constants.dlopen.RTLD_NOW ?? 2) | (os.constants.dlopen.RTLD_GLOBAL ?? 0x100) | RTLD_NODELETE
  for (const lib of candidates) {
    try {
      process.dlopen({ exports: {} } as NodeJS.Module, lib, flags)
      return errors
    } catch (err) {
      // A plain shared library is not a Node addon: this error means it loaded.
      if (/did not self-register/i.test(firstLine(err))) return errors
      errors.push(`${lib}: ${firstLine(err)}`)
    }
  }
  if (candidates.length === 0) errors.push('no bundled libfuse.so found')
  return errors
}

/** Load fuse-native (cached). Throws a one-line "cannot load libfuse: ..." Error. */
export function loadFuse (): FuseModule {
  if (cached) return cached
  let Fuse: FuseModule
  try {
    // The patched addon finds libfuse through its rpath, and libfuse then
    // stays out of the global scope: the addon's fuse_reply_attr and
    // fuse_reply_entry come first for libfuse's own calls (scripts/build-fuse.cjs (k)).
    Fuse = require('fuse-native') as FuseModule
  } catch {
    // The stock addon has no rpath: libfuse must be there before it.
    const preloadErrors = preloadLibfuse()
    try {
      Fuse = require('fuse-native') as FuseModule
    } catch (err) {
      const extra = preloadErrors.length ? ` (preload: ${preloadErrors.join('; ')})` : ''
      throw new Error(`cannot load libfuse: ${firstLine(err)}${extra}`)
    }
  }
  // fuse-native's static unmount shells out to `fusermount -uz`, which may not be
  // on PATH; instance.unmount() and the `force` option go through it.
  ;(Fuse as { unmount: FuseModule['unmount'] }).unmount = (mnt, cb) => {
    unmountPath(mnt, { lazy: true }).then(() => cb(null), (err: Error) => cb(err))
  }
  if (nsTimes()) withNsTimes(Fuse)
  cached = Fuse
  return Fuse
}

// The addon takes and gives nanoseconds (scripts/build-fuse.cjs (q)).
function nsTimes (): boolean {
  return patchedFunctions<{ fuse_native_ns_times (): number }>(['fuse_native_ns_times']) !== null
}

// fuse-native's getattr, fgetattr and utimens, but with the nanoseconds the
// addon carries: its own stat array has 18 uint32s (times in ms), and its
// utimens hands the times over as doubles, which cannot hold them.
function withNsTimes (Fuse: FuseModule): void {
  type Signal = (code: number, arg?: Uint32Array) => void
  type Self = { ops: FuseOperations }
  const proto = (Fuse as unknown as { prototype: Record<string, unknown> }).prototype
  const getattr = proto._op_getattr as (this: Self, signal: Signal, path: string) => void
  const fgetattr = proto._op_fgetattr as (this: Self, signal: Signal, path: string, fd: number) => void
  proto._op_getattr = function (this: Self, signal: Signal, path: string): void {
    if (!this.ops.getattr) return getattr.call(this, signal, path)
    this.ops.getattr(path, (err, st) => signal(err, statInts(err === 0 ? st : undefined)))
  }
  proto._op_fgetattr = function (this: Self, signal: Signal, path: string, fd: number): void {
    if (!this.ops.getattr) return fgetattr.call(this, signal, path, fd)
    // As fuse-native does: fgetattr is answered by getattr.
    this.ops.getattr(path, (err, st) => err === 0 ? signal(0, statInts(st)) : signal(err))
  }
  proto._op_utimens = function (this: Self, signal: Signal, path: string, aLow: number, aHigh: number, mLow: number, mHigh: number): void {
    this.ops.utimens?.(path, nsArg(aLow, aHigh), nsArg(mLow, mHigh), err => signal(err))
  }
}

// fuse-native's stat array (getStatArray) and two more: the nanoseconds.
export function statInts (st: FuseStat | undefined, into = new Uint32Array(20)): Uint32Array {
  const i = into
  i.fill(0)
  if (st === undefined) return i
  i[0] = st.mode
  i[1] = st.uid ?? 0
  i[2] = st.gid ?? 0
  split(i, 3, st.size ?? 0)
  i[5] = st.dev ?? 0
  i[6] = st.nlink ?? 1
  i[7] = st.ino ?? 0
  i[8] = st.rdev ?? 0
  i[9] = st.blksize ?? 0
  split(i, 10, st.blocks ?? 0)
  split(i, 12, msOf(st.atime))
  split(i, 14, msOf(st.mtime))
  split(i, 16, msOf(st.ctime))
  if (i.length >= 20) {
    i[18] = st.atimeNs ?? 0
    i[19] = st.mtimeNs ?? 0
  }
  return i
}

function split (i: Uint32Array, at: number, n: number): void {
  i[at] = n % TWO32
  i[at + 1] = Math.floor(n / TWO32)
}

function msOf (t: Date | number | undefined): number {
  return t === undefined ? Date.now() : typeof t === 'number' ? t : t.getTime()
}

// A utimens time as its raw words: UTIME_OMIT and UTIME_NOW as the high word
// says (decodeUtimensArg); else ms in bits 0-43, the ns past it in 44-63. The
// op gets a number that decodeUtimensArg reads, or, when the time has ns,
// a NsTime.
function nsArg (low: number, high: number): number | NsTime {
  if (high === 0xffffffff || high === 0xfffffffe) return high * TWO32 + low
  const ns = high >>> 12
  const ms = (high & 0xfff) * TWO32 + low
  return ns === 0 ? ms : { ms, ns }
}

/** A utimens time finer than a ms, as the patched addon gives it (scripts/build-fuse.cjs (q)). */
export interface NsTime {
  ms: number
  ns: number
}

let patched: boolean | undefined

/**
 * True if the loaded addon is the one built by scripts/build-fuse.cjs (marker
 * present and matching the addon file), i.e. utimens delivers a real mtime and
 * encodes UTIME_NOW / UTIME_OMIT.
 */
export function utimensPatched (): boolean {
  if (patched !== undefined) return patched
  patched = false
  try {
    const dir = fuseNativeDir()
    if (dir) {
      const release = path.join(dir, 'build', 'Release')
      const marker = JSON.parse(readFileSync(path.join(release, 'disktro-patched.json'), 'utf8')) as {
        utimens?: number
        addonHash?: string
      }
      if ((marker.utimens ?? 0) >= 2) { // 2: utimens fixes; 3: also write-behind
        // guard against the stock addon having been rebuilt over ours
        const hash = createHash('sha256').update(readFileSync(path.join(release, 'fuse.node'))).digest('hex')
        patched = marker.addonHash === undefined || marker.addonHash === hash
      }
    }
  } catch {
    patched = false
  }
  return patched
}

const TWO32 = 2 ** 32
/** utimens value for UTIME_OMIT in the patched addon: high word 0xFFFFFFFF, low 0. */
export const UTIMENS_OMIT = 0xffffffff * TWO32
/** utimens value for UTIME_NOW in the patched addon: high word 0xFFFFFFFE, low 0. */
export const UTIMENS_NOW = 0xfffffffe * TWO32

export type UtimensArg = { kind: 'omit' } | { kind: 'now' } | { kind: 'time', ms: number, ns: number }

/** Decode an atime/mtime argument of ops.utimens. */
export function decodeUtimensArg (v: number | NsTime): UtimensArg {
  if (typeof v === 'object') return { kind: 'time', ms: v.ms, ns: v.ns }
  if (utimensPatched()) {
    const high = Math.floor(v / TWO32)
    if (high === 0xffffffff) return { kind: 'omit' }
    if (high === 0xfffffffe) return { kind: 'now' }
  }
  return { kind: 'time', ms: v, ns: 0 }
}

/** A queued chmod (kind 1: a = mode), chown (2: a = uid, b = gid) or utimens (3: atime, mtime in ms, -1 = leave it); ctime in ms. */
export type QueuedAttrHandler = (item: unknown, path: string, kind: number, a: number, b: number, atime: number, mtime: number, ctime: number) => void

/** The write-behind entry points of the patched addon (scripts/build-fuse.cjs (d)). */
export interface WriteBehindBinding {
  // `attrs`: given, chmod, chown and utimens are queued too when the
  // attribute cache can show their outcome (scripts/build-fuse.cjs (h)).
  // `time`: the write's mtime in ms, as the attribute cache shows it (scripts/build-fuse.cjs (g)).
  fuse_native_write_behind (handler: (item: unknown, path: string, fh: number, buf: Buffer, offset: number, time: number) => void, attrs?: QueuedAttrHandler): void
  fuse_native_signal_wb (item: unknown, result: number, data?: ArrayBuffer): void
  fuse_native_wb_outstanding (): number
  fuse_native_wb_stats (): [number, number] // [writes queued since the mount, the largest in bytes]
}

// Creates answered by the addon (scripts/build-fuse.cjs (i)): inode numbers
// for it to show; each create comes with the owner it showed (its caller's,
// the directory's group when that is setgid).
export interface CreateBehindBinding {
  fuse_native_cb_enable (handler: (item: unknown, path: string, fh: number, mode: number, ino: number, time: number, uid: number, gid: number) => void): void
  // Returns how many inode numbers it holds now.
  fuse_native_cb_inos (inos: number[]): number
}

/** Close behind's entry points in the patched addon (scripts/build-fuse.cjs (l)). */
export interface CloseBehindBinding {
  fuse_native_clb_enable (fd: number, key: Buffer): void
  fuse_native_clb_take (fh: number): number
  // [frames written at FLUSH, flushes of copied handles passed to JS, checkpoints queued]
  fuse_native_clb_stats (): [number, number, number]
  fuse_native_clb_truncate (headerBytes: number): number
  fuse_native_clb_pause (paused: boolean): void
}

export function closeBehindBinding (): CloseBehindBinding | null {
  return patchedFunctions<CloseBehindBinding>(['enable', 'take', 'stats', 'truncate', 'pause'].map(n => `fuse_native_clb_${n}`))
}

export function createBehindBinding (): CreateBehindBinding | null {
  // An addon without (p) shows the daemon's owner for the creates it answers: none then.
  return patchedFunctions<CreateBehindBinding>(['fuse_native_cb_enable', 'fuse_native_cb_inos', 'fuse_native_caller'])
}

// The patched addon's functions named `names`, or null when the stock addon
// is in use or lacks one of them. Call after loadFuse(): fuse-native loads
// build/Release/fuse.node when it exists, so this require returns that same
// module.
function patchedFunctions<T> (names: string[]): T | null {
  if (!utimensPatched()) return null
  const dir = fuseNativeDir()
  if (!dir) return null
  try {
    const b = require(path.join(dir, 'build', 'Release', 'fuse.node')) as Record<string, unknown>
    return names.every(n => typeof b[n] === 'function') ? b as T : null
  } catch {
    return null
  }
}

/** The loaded addon's write-behind functions, or null when it has none. */
export function writeBehindBinding (): WriteBehindBinding | null {
  return patchedFunctions<WriteBehindBinding>(['fuse_native_write_behind', 'fuse_native_signal_wb', 'fuse_native_wb_outstanding', 'fuse_native_wb_stats'])
}

/** The read-cache entry points of the patched addon (scripts/build-fuse.cjs (e)). */
export interface ReadCacheBinding {
  // The entries' memory (one Buffer of blockSize each), or null when already enabled.
  fuse_native_rc_enable (blockSize: number, entries: number, hint: (fh: number, offset: number) => void): Buffer[] | null
  fuse_native_rc_gen (): number
  fuse_native_rc_invalidate (): void
  fuse_native_rc_acquire (fh: number, block: number): number
  fuse_native_rc_commit (index: number, bytes: number, gen: number): boolean
  fuse_native_rc_stats (): [number, number]
}

/** The loaded addon's read cache, or null when it has none. */
export function readCacheBinding (): ReadCacheBinding | null {
  return patchedFunctions<ReadCacheBinding>(['enable', 'gen', 'invalidate', 'acquire', 'commit', 'stats'].map(n => `fuse_native_rc_${n}`))
}

/**
 * How long a FUSE thread of the patched addon polls for the event loop's
 * answer before it sleeps (scripts/build-fuse.cjs (f)); 0 turns it off.
 * False when the addon has no such setting.
 */
export function setAnswerSpin (microseconds: number): boolean {
  const b = patchedFunctions<{ fuse_native_spin (ns: number): void }>(['fuse_native_spin'])
  b?.fuse_native_spin(Math.max(0, Math.round(microseconds * 1000)))
  return b !== null
}

/**
 * How long, in seconds, the kernel may hold a directory's attributes
 * (scripts/build-fuse.cjs (k)); a negative number leaves the setting. Returns
 * how many replies the addon has given that timeout so far, or null when the
 * addon has no such patch (every reply then carries attr_timeout, 0).
 */
export function dirAttrTimeout (seconds: number): number | null {
  const b = patchedFunctions<{ fuse_native_dir_attr_timeout (seconds: number): number }>(['fuse_native_dir_attr_timeout'])
  return b === null ? null : b.fuse_native_dir_attr_timeout(Number.isFinite(seconds) ? seconds : -1)
}

/**
 * How many FUSE threads the patched addon's loop has started in this
 * process, all mounts together (scripts/build-fuse.cjs (m): they serve until
 * their mount ends, at most 64 a mount). Null when the addon runs libfuse's
 * own loop.
 */
export function fuseThreadsStarted (): number | null {
  const b = patchedFunctions<{ fuse_native_loop_threads (): number }>(['fuse_native_loop_threads'])
  return b === null ? null : b.fuse_native_loop_threads()
}

/**
 * Pages per READ request (scripts/build-fuse.cjs (n)): with `pages`, what the
 * next mount's INIT reply asks the kernel for (FUSE_MAX_PAGES; more than 32
 * only where the kernel offers it). Returns what the last INIT reply asked
 * for, 0 before one or when the kernel did not offer it; null when the addon
 * has no such patch (reads then stay at 32 pages, 128 KiB).
 */
export function fuseMaxPages (pages?: number): number | null {
  const b = patchedFunctions<{ fuse_native_max_pages (pages?: number): number }>(['fuse_native_max_pages'])
  if (b === null) return null
  return pages === undefined ? b.fuse_native_max_pages() : b.fuse_native_max_pages(pages)
}

/**
 * Bytes per WRITE request (scripts/build-fuse.cjs (o)): with `bytes`, what the
 * next mount's INIT reply asks for (at most its max_pages pages, and only
 * where the kernel offers FUSE_MAX_PAGES; the FUSE loop sizes its receive
 * buffers for it). Returns what the last INIT reply asked for, 0 before one
 * or when it kept libfuse's 128 KiB; null when the addon has no such patch.
 */
export function fuseMaxWrite (bytes?: number): number | null {
  const b = patchedFunctions<{ fuse_native_max_write (bytes?: number): number }>(['fuse_native_max_write'])
  if (b === null) return null
  return bytes === undefined ? b.fuse_native_max_write() : b.fuse_native_max_write(bytes)
}

/**
 * Calls `fn` once, on the event loop, when `fuse`'s FUSE loop returns: the
 * mount was unmounted by someone else (scripts/build-fuse.cjs (j)). False
 * when the addon has no such hook.
 */
export function onFuseLoopEnd (fuse: FuseInstance, fn: () => void): boolean {
  const b = patchedFunctions<{ fuse_native_on_loop_end (owner: Buffer, cb: () => void): boolean }>(['fuse_native_on_loop_end'])
  const owner = (fuse as { _thread?: unknown })._thread
  return b !== null && Buffer.isBuffer(owner) && b.fuse_native_on_loop_end(owner, fn)
}

/** The attribute cache of the patched addon (scripts/build-fuse.cjs (g)). */
export interface AttrCacheBinding {
  // Given the mount's fuse-native _thread buffer: true when the cache now
  // answers that mount's getattrs (not while it answers another's).
  fuse_native_ac_enable (owner: Buffer): boolean
  fuse_native_ac_disable (): void
  fuse_native_ac_bump (): void
  fuse_native_ac_bump_ino (ino: number): void
  // Stores `path`'s attributes (18 uint32s in fuse-native's getattr layout) under the current generation.
  fuse_native_ac_put (path: string, stat: Buffer): boolean
  // A directory just made: known whole (and empty) to the addon (scripts/build-fuse.cjs (i)).
  fuse_native_ac_dir_empty (path: string, ino: number): boolean
  fuse_native_ac_stats (): [number, number, number, number, number]
}

/** The loaded addon's attribute cache, or null when it has none. */
export function attrCacheBinding (): AttrCacheBinding | null {
  return patchedFunctions<AttrCacheBinding>(['enable', 'disable', 'bump', 'bump_ino', 'put', 'stats'].map(n => `fuse_native_ac_${n}`))
}

/** Who asked for a FUSE operation (fuse_get_context()). */
export interface FuseCaller {
  uid: number
  gid: number
  pid: number
}

// The addon writes the caller of the operation it hands to JS into this
// view right before it calls the handler (scripts/build-fuse.cjs (p)); null:
// the addon cannot tell (stock addon).
let callerView: Uint32Array | null | undefined

/**
 * The caller of the FUSE operation whose handler is running now, read in
 * the handler's synchronous part (later, the view holds another
 * operation's). Null when the addon cannot tell.
 */
export function fuseCaller (): FuseCaller | null {
  if (callerView === undefined) {
    const b = patchedFunctions<{ fuse_native_caller (buf: Buffer): void }>(['fuse_native_caller'])
    callerView = null
    if (b !== null) {
      const view = new Uint32Array(3).fill(0xffffffff)
      b.fuse_native_caller(Buffer.from(view.buffer))
      callerView = view
    }
  }
  const v = callerView
  // Before the first operation: unknown (never a made-up owner).
  if (v === null || v[0] === 0xffffffff) return null
  return { uid: v[0], gid: v[1], pid: v[2] }
}
