import type { Vfs, Stat, Owner, TimeArg } from '../vfs/vfs.js'
import { subMs } from '../codec/inode-record.js'
import type { FuseOperations, FuseStat } from './native.js'
import { decodeUtimensArg, fuseCaller } from './native.js'
import { toErrno } from './errno.js'
import { DisktroError } from '../errors.js'

type Log = (line: string) => void

// Entries of a listing whose attributes are handed over with it (a quarter of the addon's cache).
const LISTED_ATTRS_MAX = 4096
// A directory's entries are handed over once this many getattrs in it reached
// the event loop, and at least 1/SIBLINGS_SHARE of its entries: what a
// directory costs the event loop is then at most SIBLINGS_SHARE stats per
// getattr that reached it, however often its entries change.
const SIBLINGS_AFTER = 4
const SIBLINGS_SHARE = 8
const SIBLINGS_DIRS_MAX = 4096 // directories whose misses are counted

// Takes attributes read on the event loop just now (fuse/attr-cache.ts).
export interface AttrSink {
  seen (path: string, st: FuseStat): void
  emptyDir? (path: string, ino: number): void
}

// The op table: each op relays to the VFS and answers exactly once. A thrown
// error, a rejected promise or a bug all become an errno, never a hang.
// `onOperation` is called as each op but a read or write arrives (mount-session.ts:
// hot-loop.ts; data ops keep the event loop busy anyway, and spinning
// between them would take a core from the crypto workers).
// `attrs` gets every getattr's answer, and a path's attributes right after
// an operation that created or changed it: libfuse asks for them next.
// `onReleased` runs after a release, `beforeCommit` before a flush or fsync
// of the handle (close behind's marks).
export function fuseOps (vfs: Vfs, log: Log, onOperation: () => void = () => {}, attrs: AttrSink | null = null, onReleased: ((fh: number) => void) | null = null, beforeCommit: ((fh: number) => void | Promise<void>) | null = null): FuseOperations {
  const fail = (op: string, path: string, e: unknown): number => errnoOf(log, op, path, e)
  // Runs `fn` and answers `cb` with its value; `fn` may be sync or async.
  function relay<T> (op: string, path: string, fn: () => T | Promise<T>, answer: (v: T) => void, cb: (code: number) => void): void {
    if (op !== 'read' && op !== 'write') onOperation()
    let v: T | Promise<T>
    try {
      v = fn()
    } catch (e) {
      cb(fail(op, path, e))
      return
    }
    // A synchronous op is answered now, not from a microtask.
    if (!(v instanceof Promise)) {
      try { answer(v) } catch (e) { cb(fail(op, path, e)) }
      return
    }
    v.then(v => { try { answer(v) } catch (e) { cb(fail(op, path, e)) } }, e => cb(fail(op, path, e)))
  }
  const done = (cb: (code: number) => void) => () => cb(0)
  // A new node's owner: the caller of the operation being handled, read
  // while its handler runs synchronously (fuse/native.ts fuseCaller).
  const creator = (): Owner | undefined => {
    const c = fuseCaller()
    return c === null ? undefined : { uid: c.uid, gid: c.gid }
  }
  const stat = (path: string): FuseStat => {
    const st = toFuseStat(vfs.getattr(path))
    attrs?.seen(path, st)
    return st
  }
  // Answers 0 after handing over the path's new attributes.
  const changed = (path: string, cb: (code: number) => void) => () => {
    if (attrs) {
      try { stat(path) } catch {} // only a hint: a failure here must not fail the op
    }
    cb(0)
  }
  // A listing is usually followed by a lookup of each entry (ls -l, find,
  // rsync, git status): their attributes go over with it, up to a bound.
  // The kernel gets them too, for each entry's type (d_type): without it
  // find, git's untracked-file scan and fts must stat every name to learn
  // which are directories, a LOOKUP and a GETATTR each (libfuse 2 has no
  // READDIRPLUS, so the kernel takes nothing else from them: no attribute
  // is cached longer than before). Entries are stat'ed by inode number, as
  // listed, rather than by resolving each path again.
  const readdir = (dir: string): { names: string[], stats?: FuseStat[] } => {
    const { dir: ino, entries } = vfs.entries(dir)
    const names = ['.', '..', ...entries.map(e => e.name)]
    if (entries.length > LISTED_ATTRS_MAX) return { names }
    const prefix = dir === '/' ? '/' : dir + '/'
    const self = toFuseStat(vfs.statOf(ino))
    const stats: FuseStat[] = [self, dir === '/' ? self : toFuseStat(vfs.getattr(dirOf(dir)))]
    for (const e of entries) {
      let st: FuseStat
      try {
        st = toFuseStat(vfs.statOf(e.ino))
      } catch {
        return { names } // an inode gone under us: the names alone, as before
      }
      attrs?.seen(prefix + e.name, st)
      stats.push(st)
    }
    return { names, stats }
  }
  // A stat by name of an entry not listed since the mount (git status's
  // lstat of every file in its index before it reads a directory; du, cp
  // or tar c of a tree listed by nobody yet) reaches the event loop, a
  // thread hand-over each, where the addon would have answered had the
  // directory been listed. After a few such misses in a directory its
  // entries go over as a listing's do; the bound above keeps the cost of
  // a directory whose entries keep changing in proportion to the misses.
  const misses = new Map<string, { n: number, size: number }>() // directory path -> getattrs missed since its entries went over
  const missed = (path: string): void => {
    if (!attrs || path === '/') return
    try {
      const dir = dirOf(path)
      let m = misses.get(dir)
      if (m === undefined) {
        if (misses.size >= SIBLINGS_DIRS_MAX) misses.clear()
        misses.set(dir, m = { n: 0, size: 0 })
      }
      if (m.size > LISTED_ATTRS_MAX || ++m.n < Math.max(SIBLINGS_AFTER, m.size / SIBLINGS_SHARE)) return
      m.n = 0
      m.size = readdir(dir).names.length
    } catch {} // only a hint
  }
  // The same for a new name, and its directory (its mtime moved): the
  // kernel asks for the directory's again on the next path through it.
  const added = (path: string, cb: (code: number) => void) => () => {
    if (attrs) {
      try { stat(dirOf(path)) } catch {}
    }
    changed(path, cb)()
  }
  // A new directory: empty, so every lookup in it of a name not created
  // since can be answered by the addon.
  const madeDir = (path: string, cb: (code: number) => void) => () => {
    if (attrs) {
      try { stat(dirOf(path)) } catch {}
      try { attrs.emptyDir?.(path, stat(path).ino ?? 0) } catch {}
    }
    cb(0)
  }

  return {
    init: cb => cb(0),
    getattr: (path, cb) => relay('getattr', path, () => stat(path), st => { cb(0, st); missed(path) }, cb),
    fgetattr: (path, _fd, cb) => relay('fgetattr', path, () => stat(path), st => cb(0, st), cb),
    access: (path, _mode, cb) => relay('access', path, () => vfs.access(path), done(cb), cb),
    statfs: (path, cb) => relay('statfs', path, () => vfs.statfs(), s => cb(0, { ...s, fsid: 0x64697374, flag: 0 }), cb),
    readdir: (path, cb) => relay('readdir', path, () => readdir(path), l => cb(0, l.names, l.stats), cb),
    mkdir: (path, mode, cb) => relay('mkdir', path, () => vfs.mkdir(path, mode, creator()), madeDir(path, cb), cb),
    rmdir: (path, cb) => relay('rmdir', path, () => vfs.rmdir(path), done(cb), cb),
    create: (path, mode, cb) => relay('create', path, () => vfs.create(path, mode, creator()), fh => added(path, () => cb(0, fh))(), cb),
    mknod: (path, mode, dev, cb) => relay('mknod', path, () => vfs.mknod(path, mode, dev, creator()), added(path, cb), cb),
    open: (path, flags, cb) => relay('open', path, () => vfs.open(path, flags), fh => cb(0, fh), cb),
    opendir: (path, _flags, cb) => relay('opendir', path, () => vfs.directory(path), () => cb(0, 0), cb),
    releasedir: (_path, _fd, cb) => cb(0),
    read: (path, fd, buf, len, pos, cb) => relay('read', path, () => vfs.read(fd, buf, len, pos), n => cb(n), cb),
    write: (path, fd, buf, len, pos, cb) => relay('write', path, () => vfs.write(fd, buf, len, pos), n => cb(n), cb),
    flush: (path, fd, cb) => relay('flush', path, () => after(beforeCommit?.(fd), () => vfs.flush(fd)), done(cb), cb),
    fsync: (path, _datasync, fd, cb) => relay('fsync', path, () => after(beforeCommit?.(fd), () => vfs.fsync(fd)), done(cb), cb),
    fsyncdir: (path, _datasync, _fd, cb) => relay('fsyncdir', path, () => vfs.syncAll(), done(cb), cb),
    release: (path, fd, cb) => relay('release', path, () => released(vfs.release(fd), fd, onReleased), done(cb), cb),
    truncate: (path, size, cb) => relay('truncate', path, () => vfs.truncate(path, size), changed(path, cb), cb),
    ftruncate: (path, fd, size, cb) => relay('ftruncate', path, () => vfs.ftruncate(fd, size), changed(path, cb), cb),
    unlink: (path, cb) => relay('unlink', path, () => vfs.unlink(path), done(cb), cb),
    rename: (src, dest, cb) => relay('rename', src, () => vfs.rename(src, dest), done(cb), cb),
    link: (src, dest, cb) => relay('link', dest, () => vfs.link(src, dest), added(dest, cb), cb),
    symlink: (target, path, cb) => relay('symlink', path, () => vfs.symlink(target, path, creator()), added(path, cb), cb),
    readlink: (path, cb) => relay('readlink', path, () => vfs.readlink(path), t => cb(0, t), cb),
    chmod: (path, mode, cb) => relay('chmod', path, () => vfs.chmod(path, mode), changed(path, cb), cb),
    chown: (path, uid, gid, cb) => relay('chown', path, () => vfs.chown(path, uid, gid), changed(path, cb), cb),
    utimens: (path, atime, mtime, cb) => relay('utimens', path, () => {
      const a = decodeUtimensArg(atime)
      const m = decodeUtimensArg(mtime)
      const pick = (x: typeof a): TimeArg => x.kind === 'omit' ? undefined : x.kind === 'now' ? 'now' : x.ns === 0 ? x.ms : { ms: x.ms, ns: x.ns }
      vfs.utimens(path, pick(a), pick(m))
    }, changed(path, cb), cb)
  }
}

// The errno for `e`, logged when it is not an everyday answer (a bug, an
// I/O error, a full disk): the one place the op table and the queued
// operations below turn failures into answers.
function errnoOf (log: Log, op: string, path: string, e: unknown, always = false): number {
  if (always || !(e instanceof DisktroError) || e.code === 'EIO' || e.code === 'ENOSPC') {
    log(`${op} ${path}: ${e instanceof Error ? e.message : String(e)}`)
  }
  return toErrno(e)
}

// Applies the writes the patched addon answered already (fuse/write-behind.ts),
// with the mtime its attribute cache showed for them.
export function queuedWrites (vfs: Vfs, log: Log): (path: string, fh: number, buf: Buffer, offset: number, time: number, cb: (bytesOrErrno: number) => void) => void {
  return (path, fh, buf, offset, time, cb) => {
    vfs.write(fh, buf, buf.length, offset, time).then(cb, (e: unknown) => cb(errnoOf(log, 'write', path, e)))
  }
}

// The same, done at once when nothing has to be read first (OpenFile.writeNow);
// null when it has to wait.
export function queuedWritesNow (vfs: Vfs, log: Log): (path: string, fh: number, buf: Buffer, offset: number, time: number) => number | null {
  return (path, fh, buf, offset, time) => {
    try {
      return vfs.writeNow(fh, buf, buf.length, offset, time)
    } catch (e) {
      return errnoOf(log, 'write', path, e)
    }
  }
}

// `fn` once `first` (sync or not) is done.
function after<T> (first: void | Promise<void>, fn: () => T | Promise<T>): T | Promise<T> {
  return first ? first.then(fn) : fn()
}

// After a release (sync or not) is done: `onReleased` (close behind's mark).
function released (r: void | Promise<void>, fh: number, onReleased: ((fh: number) => void) | null): void | Promise<void> {
  return onReleased === null ? r : after(r, () => onReleased(fh))
}

// Applies the chmod, chown and utimens calls the patched addon answered
// already (fuse/write-behind.ts): with the change time the caller was shown,
// as the attribute cache predicted it; with close behind (`cb`), the releases
// it answered too (kind 5) and the checkpoints it queued (kind 6). A failure
// cannot reach the caller any more, so it is always logged.
export interface QueuedCloseBehind {
  released: ((fh: number) => void) | null // after a release: the frame's mark
  checkpoint: (fh: number, seq: number) => void | Promise<void>
  holdReleases: boolean // tests: released files stay open, uncommitted, as if the daemon were slow
}

export function queuedAttrChanges (vfs: Vfs, log: Log, cb: QueuedCloseBehind | null = null): (kind: number, path: string, a: number, b: number, atime: number, mtime: number, ctime: number) => number {
  const ops = ['', 'chmod', 'chown', 'utimens', '', 'release', 'checkpoint']
  return (kind, path, a, b, atime, mtime, ctime) => {
    try {
      if (kind === 1) vfs.chmod(path, a, ctime)
      else if (kind === 2) vfs.chown(path, a, b, ctime)
      else if (kind === 3) vfs.utimens(path, atime < 0 ? undefined : atime, mtime < 0 ? undefined : mtime, ctime)
      else if (kind === 5 && cb) { // a release the addon answered
        if (cb.holdReleases) return 0
        const r = released(vfs.release(a), a, cb.released)
        if (r) r.catch(e => errnoOf(log, 'release', `${path} (answered already)`, e, true))
      } else if (kind === 6 && cb) { // a copy stopped following its file (atime: the frame's seq)
        const r = cb.checkpoint(a, atime)
        if (r) r.catch(e => errnoOf(log, 'checkpoint', `${path} (answered already)`, e, true))
      }
      else throw new DisktroError('EINVAL', `unknown queued change ${kind}`)
      return 0
    } catch (e) {
      return errnoOf(log, ops[kind] ?? 'change', `${path} (answered already)`, e, true)
    }
  }
}

// Applies a create the addon answered already (scripts/build-fuse.cjs (i)).
export function queuedCreates (vfs: Vfs, log: Log): (path: string, fh: number, mode: number, ino: number, time: number, owner: Owner) => number {
  return (path, fh, mode, ino, time, owner) => {
    try {
      vfs.createAnswered(path, mode, fh, ino, time, owner)
      return 0
    } catch (e) {
      return errnoOf(log, 'create', `${path} (answered already)`, e, true)
    }
  }
}

// The directory of a canonical path ('/' for a name in the root).
function dirOf (path: string): string {
  return path.slice(0, Math.max(1, path.lastIndexOf('/')))
}

function toFuseStat (s: Stat): FuseStat {
  return {
    mode: s.mode, uid: s.uid, gid: s.gid, size: s.size, nlink: s.nlink, ino: s.ino, rdev: s.rdev,
    blksize: s.blksize, blocks: s.blockCount512, atime: s.atime, mtime: s.mtime, ctime: s.ctime,
    atimeNs: subMs(s, 'atime'), mtimeNs: subMs(s, 'mtime')
  }
}
