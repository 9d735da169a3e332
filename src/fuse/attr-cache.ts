import type { AttrCacheBinding, FuseStat } from './native.js'
import { statInts } from './native.js'

// The attribute cache of the patched addon (scripts/build-fuse.cjs (g)):
// FUSE threads answer getattr from attributes JS handed over, without a
// round trip through the event loop. With attr_timeout=0 the kernel asks for
// them before nearly every operation, and libfuse again after each change
// (tar x: 11 getattrs per file).
//
// Stale attributes are ruled out by generations: an entry serves only while
// the global generation and its inode's (by hash of st_ino) are those it was
// stored under. Whatever can change what getattr shows bumps one of them:
// every inode the namespace sets or removes (LmdbNamespace.onInodeChange),
// every open file the VFS changes in memory (Vfs.onChange), and globally a
// rename, a merge of other members' changes or a failed commit
// (onWideChange); in the addon, every write queued by write-behind (or it
// updates the entry to the write's outcome, (h)). An entry is stored on the
// event loop right after JS read the attributes, so nothing in JS can change
// them between the reading and the storing; the addon refuses it while a
// queued write is still to be applied. Invalidating by inode drops every
// name of a hard-linked file at once.
export class AttrCache {
  private readonly ints = new Uint32Array(20) // fuse-native's 18, and the nanoseconds (scripts/build-fuse.cjs (q))
  private readonly bytes = Buffer.from(this.ints.buffer)

  private enabled = false

  constructor (private readonly binding: AttrCacheBinding) {}

  // Starts answering the getattrs of `fuse`, a mounted fuse-native instance;
  // false when it cannot (the addon's cache serves another mount).
  enable (fuse: object): boolean {
    const thread = (fuse as { _thread?: unknown })._thread
    this.enabled = Buffer.isBuffer(thread) && this.binding.fuse_native_ac_enable(thread)
    return this.enabled
  }

  // Before unmounting: nothing is answered from the cache after this.
  disable (): void {
    if (this.enabled) this.binding.fuse_native_ac_disable()
    this.enabled = false
  }

  // `path` has attributes `st`, read just now on the event loop.
  seen (path: string, st: FuseStat): void {
    if (!this.enabled) return
    statInts(st, this.ints)
    this.binding.fuse_native_ac_put(path, this.bytes)
  }

  // Something changed: no entry stored before now serves again.
  invalidate (): void {
    if (this.enabled && !this.predicted) this.binding.fuse_native_ac_bump()
  }

  // Inode `ino` changed: the entries of its names serve no more.
  invalidateInode (ino: number): void {
    if (this.enabled && !this.predicted) this.binding.fuse_native_ac_bump_ino(ino)
  }

  private predicted = false

  // Runs `apply`, a change the addon queued and whose outcome it already
  // stored (scripts/build-fuse.cjs (h)), without dropping what the cache
  // holds: the entries the change affects were dropped when it was queued,
  // and the one stored then shows what `apply` leads to. The addon drops
  // everything if it fails.
  applyPredicted<T> (apply: () => T): T {
    this.predicted = true
    try {
      return apply()
    } finally {
      this.predicted = false
    }
  }

  // `path` is a directory made just now, with inode number `ino`: the addon
  // knows it whole, and answers lookups of names not created in it since
  // (scripts/build-fuse.cjs (i)) until anything bumps its inode.
  emptyDir (path: string, ino: number): void {
    if (this.enabled) this.binding.fuse_native_ac_dir_empty(path, ino)
  }

  // [getattrs answered by the addon, getattrs passed to JS, chmod/chown/utimens it answered at once,
  //  creates it answered at once, getattrs it answered ENOENT]
  stats (): [number, number, number, number, number] {
    return this.binding.fuse_native_ac_stats()
  }
}
