import type { Namespace } from '../meta/namespace.js'
import { ROOT_INO, type DirEntry } from '../meta/namespace.js'
import type { InodeAttrs } from '../codec/inode-record.js'
import type { ChunkPipeline } from '../chunks/chunk-pipeline.js'
import type { ChunkStore, RemoteChunks } from '../chunks/chunk-store.js'
import { BlockReader } from '../chunks/block-reader.js'
import { BufferPool } from './buffer-pool.js'
import { OpenFile } from './open-file.js'
import { fail, isDisktroError } from '../errors.js'

// Handles from here up are the FUSE layer's own: the patched addon numbers
// the creates it answers itself from this base (scripts/build-fuse.cjs
// CB_FH_BASE, createAnswered below); the VFS numbers its handles below it.
export const ANSWERED_FH_BASE = 0x40000000

export const S_IFMT = 0o170000
export const S_IFREG = 0o100000
export const S_IFDIR = 0o040000
export const S_IFLNK = 0o120000
export const S_IFIFO = 0o010000
export const S_IFSOCK = 0o140000
export const S_IFCHR = 0o020000
export const S_IFBLK = 0o060000
export const S_ISGID = 0o2000

// Who a new node belongs to: its creator (the FUSE caller). Without one,
// the daemon's own user.
export interface Owner {
  uid: number
  gid: number
}

const NAME_MAX = 255
const O_RDWR = 2

// A time given to utimens: ms since the epoch, or ms and the nanoseconds past it.
export type TimeArg = number | { ms: number, ns: number } | 'now' | undefined

export interface Stat extends InodeAttrs {
  ino: number
  blksize: number
  blockCount512: number
}

export interface StatFs {
  bsize: number
  frsize: number
  blocks: number
  bfree: number
  bavail: number
  files: number
  ffree: number
  favail: number
  namemax: number
}

export interface VfsDeps {
  ns: Namespace
  chunks: ChunkStore
  pipeline: ChunkPipeline
  chunkSize: number
  uid: number
  gid: number
  statfs: () => Promise<{ bsize: number, blocks: number, bfree: number, bavail: number, files: number, ffree: number }>
  sync: () => Promise<void> // durable on disk, for fsync(2)
  remote?: RemoteChunks // peers to heal missing or corrupt chunks from
  log: (line: string) => void
}

interface Handle {
  ino: number
  file: OpenFile | null
  path: string
}

// POSIX semantics over the namespace and the chunk pipeline, by path, as
// FUSE's high-level API hands them in. It knows nothing of FUSE or the
// network; every failure is a DisktroError with a POSIX code.
export class Vfs {
  private readonly ns: Namespace
  private readonly files = new Map<number, OpenFile>()
  private readonly handles = new Map<number, Handle>()
  private nextFh = 1
  private readonly reader: BlockReader
  private readonly pool: BufferPool
  private readonly changeListeners: Array<(ino: number | null) => void> = []

  constructor (private readonly d: VfsDeps) {
    this.ns = d.ns
    this.reader = new BlockReader(d.chunks, d.pipeline)
    this.reader.remote = d.remote ?? null
    this.reader.log = d.log
    this.pool = new BufferPool(d.chunkSize)
  }

  // Called after an operation on a file that may have changed what getattr
  // shows of inode `ino` (null: of anything) beyond what the namespace
  // committed (LmdbNamespace.onInodeChange tells that): the state of an open
  // file (FUSE's attribute cache, fuse/attr-cache.ts, drops what it holds).
  // Also after one that failed: it may have changed an open file first.
  onChange (fn: (ino: number | null) => void): void {
    this.changeListeners.push(fn)
  }

  private changed (ino: number | null): void {
    for (const fn of this.changeListeners) fn(ino)
  }

  private mutate<T> (ino: number, fn: () => T): T {
    try {
      return fn()
    } finally {
      this.changed(ino)
    }
  }

  private async mutateAsync<T> (ino: number | null, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } finally {
      this.changed(ino)
    }
  }

  // --- path resolution ---

  resolve (path: string): number {
    let ino = ROOT_INO
    if (path === '/') return ino
    const parts = path.split('/')
    for (let i = 1; i < parts.length; i++) {
      const name = parts[i]
      if (name === '') continue
      // Every lookup says a name is too long, not that it is absent (the
      // kernel passes names up to 1,024 bytes). A UTF-16 unit is at most 3
      // UTF-8 bytes, so only long names are measured.
      if (name.length > NAME_MAX / 3 && Buffer.byteLength(name) > NAME_MAX) throw fail('ENAMETOOLONG', `${path}: name too long`)
      const a = this.ns.getAttrs(ino)
      if (!a || (a.mode & S_IFMT) !== S_IFDIR) throw fail('ENOTDIR', `${path}: not a directory`)
      const next = this.ns.lookup(ino, name)
      if (next === undefined) throw fail('ENOENT', `${path}: no such file or directory`)
      ino = next
    }
    return ino
  }

  private parentOf (path: string): { parent: number, name: string } {
    const i = path.lastIndexOf('/')
    const name = path.slice(i + 1)
    if (Buffer.byteLength(name) > NAME_MAX) throw fail('ENAMETOOLONG', `${path}: name too long`)
    const parent = this.resolve(i <= 0 ? '/' : path.slice(0, i))
    const a = this.attrsOf(parent)
    if ((a.mode & S_IFMT) !== S_IFDIR) throw fail('ENOTDIR', `${path}: parent is not a directory`)
    return { parent, name }
  }

  private attrsOf (ino: number): InodeAttrs {
    const a = this.ns.getAttrs(ino)
    if (!a) throw fail('ENOENT', `inode ${ino} is gone`)
    return a
  }

  // --- attributes ---

  getattr (path: string): Stat {
    return this.statOf(this.resolve(path))
  }

  statOf (ino: number): Stat {
    const a = this.attrsOf(ino)
    const f = this.files.get(ino)
    const size = f ? f.size : a.size
    const mtime = f && f.isDirty ? f.mtime : a.mtime
    const ctime = f && f.isDirty ? Math.max(f.ctime, a.ctime) : a.ctime
    const type = a.mode & S_IFMT
    // st_blocks counts stored chunks (holes are free); buffered data counts in full.
    const allocated = f && f.isDirty ? size : Math.min(size, a.blocks * this.d.chunkSize)
    return {
      ...a, ...f?.heldAttrs, size, mtime, ctime, ino, blksize: 4096,
      blockCount512: type === S_IFREG ? Math.ceil(allocated / 512) : type === S_IFDIR ? 8 : 0
    }
  }

  // `ctime` (here and in chown and utimens): the time of the change, when
  // the caller already told someone (FUSE's queued changes, fuse/write-behind.ts).
  chmod (path: string, mode: number, ctime = Date.now()): void {
    const ino = this.resolve(path)
    this.mutate(ino, () => this.chmodNow(ino, mode, ctime))
  }

  private chmodNow (ino: number, mode: number, ctime: number): void {
    const a = this.attrsOf(ino)
    const attrs = { mode: (a.mode & S_IFMT) | (mode & 0o7777), ctime }
    if (this.files.get(ino)?.hold(attrs)) return
    this.ns.commit({ op: 'setattr', ino, attrs })
  }

  chown (path: string, uid: number, gid: number, ctime = Date.now()): void {
    const ino = this.resolve(path)
    this.mutate(ino, () => this.chownNow(ino, uid, gid, ctime))
  }

  private chownNow (ino: number, uid: number, gid: number, ctime: number): void {
    const attrs: Partial<InodeAttrs> = { ctime }
    // (uid_t)-1 and (gid_t)-1 mean "leave unchanged".
    if (uid !== 0xffffffff && uid !== -1) attrs.uid = uid
    if (gid !== 0xffffffff && gid !== -1) attrs.gid = gid
    if (attrs.uid !== undefined || attrs.gid !== undefined) attrs.mode = this.statOf(ino).mode
    if (this.files.get(ino)?.hold(attrs)) return
    this.ns.commit({ op: 'setattr', ino, attrs })
  }

  // atime/mtime: a time in ms (or ms and the ns past it), 'now', or
  // undefined to leave it unchanged.
  utimens (path: string, atime: TimeArg, mtime: TimeArg, now = Date.now()): void {
    const ino = this.resolve(path)
    this.mutate(ino, () => this.utimensNow(ino, atime, mtime, now))
  }

  private utimensNow (ino: number, atime: TimeArg, mtime: TimeArg, now: number): void {
    const attrs: Partial<InodeAttrs> = { ctime: now }
    const fine: NonNullable<InodeAttrs['fine']> = { ...this.attrsOf(ino).fine }
    for (const [k, v] of [['atime', atime], ['mtime', mtime]] as const) {
      if (v === undefined) continue
      const t = typeof v === 'object' ? v : { ms: v === 'now' ? now : v, ns: 0 }
      attrs[k] = t.ms
      if (t.ns !== 0) fine[k] = [t.ms, t.ns]
      else delete fine[k]
    }
    if (fine.atime !== undefined || fine.mtime !== undefined) attrs.fine = fine
    else if (this.attrsOf(ino).fine !== undefined) attrs.fine = {}
    const f = this.files.get(ino)
    if (f?.hold(attrs)) return
    if (f && attrs.mtime !== undefined) f.mtime = attrs.mtime
    if (f) f.ctime = now
    this.ns.commit({ op: 'setattr', ino, attrs })
  }

  async truncate (path: string, size: number): Promise<void> {
    const ino = this.resolve(path)
    await this.mutateAsync(ino, () => this.truncateIno(ino, size, path))
  }

  async ftruncate (fh: number, size: number): Promise<void> {
    const h = this.handle(fh)
    await this.mutateAsync(h.ino, () => this.truncateIno(h.ino, size, h.path))
  }

  private async truncateIno (ino: number, size: number, path: string): Promise<void> {
    const a = this.attrsOf(ino)
    if ((a.mode & S_IFMT) === S_IFDIR) throw fail('EISDIR', `${path}: is a directory`)
    if ((a.mode & S_IFMT) !== S_IFREG) throw fail('EINVAL', `${path}: not a regular file`)
    if (size < 0 || !Number.isSafeInteger(size)) throw fail('EINVAL', `${path}: bad size`)
    const f = this.files.get(ino)
    if (f) {
      await f.truncate(size)
    } else {
      this.ns.commit({ op: 'truncate', ino, size, mtime: Date.now() })
    }
  }

  // --- directories ---

  readdir (path: string): string[] {
    return ['.', '..', ...this.ns.readdir(this.directory(path)).map(e => e.name)]
  }

  // The directory at `path` and its entries with their inode numbers, so a
  // listing can give each entry's attributes without resolving its path again.
  entries (path: string): { dir: number, entries: DirEntry[] } {
    const dir = this.directory(path)
    return { dir, entries: this.ns.readdir(dir) }
  }

  // The inode of the directory at `path`: ENOENT or ENOTDIR otherwise.
  directory (path: string): number {
    const ino = this.resolve(path)
    if ((this.attrsOf(ino).mode & S_IFMT) !== S_IFDIR) throw fail('ENOTDIR', `${path}: not a directory`)
    return ino
  }

  mkdir (path: string, mode: number, owner?: Owner): void {
    this.mknode(path, S_IFDIR | (mode & 0o7777), 0, owner)
  }

  rmdir (path: string): void {
    this.rmdirNow(path)
  }

  // Directory entries change only through the namespace, which tells of the
  // inodes it touched: rmdir, link, unlink, rename and mknode tell nothing more.
  private rmdirNow (path: string): void {
    const { parent, name } = this.parentOf(path)
    const ino = this.ns.lookup(parent, name)
    if (ino === undefined) throw fail('ENOENT', `${path}: no such directory`)
    if ((this.attrsOf(ino).mode & S_IFMT) !== S_IFDIR) throw fail('ENOTDIR', `${path}: not a directory`)
    if (!this.ns.isEmptyDir(ino)) throw fail('ENOTEMPTY', `${path}: directory not empty`)
    this.ns.commit({ op: 'unlink', parent, name, ctime: Date.now() })
  }

  // --- files and other nodes ---

  mknod (path: string, mode: number, rdev: number, owner?: Owner): void {
    const type = mode & S_IFMT
    if (type !== S_IFREG && type !== S_IFIFO && type !== S_IFSOCK && type !== S_IFCHR && type !== S_IFBLK) {
      throw fail('EINVAL', `${path}: unsupported node type`)
    }
    this.mknode(path, mode, rdev, owner)
  }

  create (path: string, mode: number, owner?: Owner): number {
    const ino = this.mknode(path, S_IFREG | (mode & 0o7777), 0, owner)
    return this.openIno(ino, path, O_RDWR)
  }

  // A create the FUSE layer answered already, showing this inode number,
  // handle and time (fuse/write-behind.ts): made exactly so.
  createAnswered (path: string, mode: number, fh: number, ino: number, time: number, owner?: Owner): void {
    this.handleFree(fh, path)
    this.mknodeNow(path, S_IFREG | (mode & 0o7777), 0, owner, undefined, { ino, time })
    this.openIno(ino, path, O_RDWR, fh)
  }

  // A handle the FUSE layer chose must not be one in use.
  private handleFree (fh: number, path: string): void {
    if (this.handles.has(fh)) throw fail('EINVAL', `${path}: file handle ${fh} is in use`)
  }

  // The inode at `path`, or undefined when there is none.
  inoOf (path: string): number | undefined {
    try {
      return this.resolve(path)
    } catch {
      return undefined
    }
  }

  // The inode opened under handle `fh`, one of the FUSE layer's (the redo
  // log's replay, fuse/close-behind.ts).
  reopen (ino: number, path: string, fh: number): number {
    this.handleFree(fh, path)
    return this.openIno(ino, path, O_RDWR, fh)
  }

  symlink (target: string, path: string, owner?: Owner): void {
    this.mknode(path, S_IFLNK | 0o777, 0, owner, target)
  }

  readlink (path: string): string {
    const a = this.attrsOf(this.resolve(path))
    if ((a.mode & S_IFMT) !== S_IFLNK || a.target === undefined) throw fail('EINVAL', `${path}: not a symbolic link`)
    return a.target
  }

  link (existing: string, path: string): void {
    this.linkNow(existing, path)
  }

  private linkNow (existing: string, path: string): void {
    const ino = this.resolve(existing)
    if ((this.attrsOf(ino).mode & S_IFMT) === S_IFDIR) throw fail('EPERM', `${existing}: cannot hard-link a directory`)
    const { parent, name } = this.parentOf(path)
    if (this.ns.lookup(parent, name) !== undefined) throw fail('EEXIST', `${path}: file exists`)
    this.ns.commit({ op: 'link', parent, name, ino, ctime: Date.now() })
  }

  unlink (path: string): void {
    this.unlinkNow(path)
  }

  private unlinkNow (path: string): void {
    const { parent, name } = this.parentOf(path)
    const ino = this.ns.lookup(parent, name)
    if (ino === undefined) throw fail('ENOENT', `${path}: no such file`)
    if ((this.attrsOf(ino).mode & S_IFMT) === S_IFDIR) throw fail('EISDIR', `${path}: is a directory`)
    this.ns.commit({ op: 'unlink', parent, name, ctime: Date.now() })
  }

  rename (from: string, to: string): void {
    this.renameNow(from, to)
  }

  private renameNow (from: string, to: string): void {
    const src = this.parentOf(from)
    const dst = this.parentOf(to)
    const ino = this.ns.lookup(src.parent, src.name)
    if (ino === undefined) throw fail('ENOENT', `${from}: no such file or directory`)
    const a = this.attrsOf(ino)
    const isDir = (a.mode & S_IFMT) === S_IFDIR
    // FUSE hands in canonical paths, so a move into the own subtree shows in the path.
    if (isDir && to.startsWith(from + '/')) throw fail('EINVAL', `${from}: cannot move a directory into itself`)
    const existing = this.ns.lookup(dst.parent, dst.name)
    if (existing === ino) return
    if (existing !== undefined) {
      const ea = this.attrsOf(existing)
      const targetIsDir = (ea.mode & S_IFMT) === S_IFDIR
      if (isDir && !targetIsDir) throw fail('ENOTDIR', `${to}: not a directory`)
      if (!isDir && targetIsDir) throw fail('EISDIR', `${to}: is a directory`)
      if (targetIsDir && !this.ns.isEmptyDir(existing)) throw fail('ENOTEMPTY', `${to}: directory not empty`)
    }
    this.ns.commit({ op: 'rename', parent: src.parent, name: src.name, newParent: dst.parent, newName: dst.name, ctime: Date.now() })
  }

  private mknode (path: string, mode: number, rdev: number, owner?: Owner, target?: string): number {
    return this.mknodeNow(path, mode, rdev, owner, target)
  }

  private mknodeNow (path: string, mode: number, rdev: number, owner?: Owner, target?: string, as?: { ino: number, time: number }): number {
    const { parent, name } = this.parentOf(path)
    const uid = owner?.uid ?? this.d.uid
    let gid = owner?.gid ?? this.d.gid
    // A setgid directory gives its group to what is made in it, and its
    // setgid bit to new directories (POSIX; what ext4 does).
    const pa = this.attrsOf(parent)
    if ((pa.mode & S_ISGID) !== 0) {
      gid = pa.gid
      if ((mode & S_IFMT) === S_IFDIR) mode |= S_ISGID
    }
    if (name === '' || name === '.' || name === '..') throw fail('EEXIST', `${path}: exists`)
    if (this.ns.lookup(parent, name) !== undefined) throw fail('EEXIST', `${path}: file exists`)
    if (as && this.ns.getAttrs(as.ino)) throw fail('EEXIST', `${path}: inode ${as.ino} is in use`)
    const now = as?.time ?? Date.now()
    const ino = as?.ino ?? this.ns.allocIno()
    const dir = (mode & S_IFMT) === S_IFDIR
    const attrs: InodeAttrs = {
      mode, uid, gid, nlink: dir ? 2 : 1, rdev,
      size: target !== undefined ? Buffer.byteLength(target) : 0, blocks: 0, atime: now, mtime: now, ctime: now
    }
    if (target !== undefined) attrs.target = target
    this.ns.commit({ op: 'mknode', parent, name, ino, attrs })
    return ino
  }

  // --- open files ---

  open (path: string, flags: number): number {
    const ino = this.resolve(path)
    return this.openIno(ino, path, flags)
  }

  // Access modes are checked by the kernel (default_permissions); O_TRUNC
  // arrives as a separate truncate.
  private openIno (ino: number, path: string, _flags: number, given?: number): number {
    const a = this.attrsOf(ino)
    let file: OpenFile | null = null
    if ((a.mode & S_IFMT) === S_IFREG) {
      file = this.files.get(ino) ?? null
      if (!file) {
        file = new OpenFile(ino, a.size, a.mtime, {
          ns: this.ns, chunks: this.d.chunks, pipeline: this.d.pipeline, reader: this.reader, pool: this.pool, chunkSize: this.d.chunkSize
        })
        this.files.set(ino, file)
      }
      file.handles++
    }
    const fh = given ?? this.nextFh++
    if (this.nextFh >= ANSWERED_FH_BASE) this.nextFh = 1
    this.handles.set(fh, { ino, file, path })
    return fh
  }

  private handle (fh: number): Handle {
    const h = this.handles.get(fh)
    if (!h) throw fail('EBADF', `bad file handle ${fh}`)
    return h
  }

  private fileOf (fh: number): OpenFile {
    const h = this.handle(fh)
    if (!h.file) throw fail('EISDIR', `${h.path}: not a regular file`)
    return h.file
  }

  async read (fh: number, buf: Buffer, length: number, offset: number): Promise<number> {
    const h = this.handle(fh)
    try {
      return await this.fileOf(fh).read(buf, length, offset)
    } catch (e) {
      if (isDisktroError(e, 'CORRUPT_CHUNK')) {
        this.d.log(`read error: ${h.path}: ${e.message} (offset ${offset}, ${length} bytes)`)
        throw fail('EIO', e.message, e)
      }
      throw e
    }
  }

  // `announcedAt`: the caller told the writer already what the write leads
  // to, with this time as its mtime (FUSE's queued writes, whose outcome the
  // addon's attribute cache shows at once): the write takes that time, and
  // change listeners are not told.
  async write (fh: number, buf: Buffer, length: number, offset: number, announcedAt?: number): Promise<number> {
    const f = this.fileOf(fh)
    if (offset + length > Number.MAX_SAFE_INTEGER) throw fail('EFBIG', 'file too large')
    const data = length === buf.length ? buf : buf.subarray(0, length)
    if (announcedAt !== undefined) return await f.write(data, offset, announcedAt)
    return await this.mutateAsync(f.ino, () => f.write(data, offset))
  }

  // A queued write (see write()) done at once, or null when it has to wait
  // for something (then call write()).
  writeNow (fh: number, buf: Buffer, length: number, offset: number, announcedAt: number): number | null {
    const f = this.fileOf(fh)
    if (offset + length > Number.MAX_SAFE_INTEGER) throw fail('EFBIG', 'file too large')
    return f.writeNow(length === buf.length ? buf : buf.subarray(0, length), offset, announcedAt)
  }

  // Done before returning when it can be (OpenFile.flushNow): a small
  // file's close then costs no promise.
  flush (fh: number): void | Promise<void> {
    const f = this.handle(fh).file
    if (!f) return
    let later: Promise<void> | undefined
    try {
      if (!f.flushNow()) later = this.mutateAsync(f.ino, () => f.flush())
    } finally {
      if (!later) this.changed(f.ino)
    }
    return later
  }

  async fsync (fh: number): Promise<void> {
    await this.flush(fh)
    await this.d.sync()
  }

  async syncAll (): Promise<void> {
    await this.flushAll()
    await this.d.sync()
  }

  // Like flush(), done before returning when it can be.
  release (fh: number): void | Promise<void> {
    const h = this.handle(fh)
    this.handles.delete(fh)
    const f = h.file
    if (!f) return
    f.handles--
    const finish = (): void => {
      if (f.handles === 0 && this.files.get(f.ino) === f && !f.isDirty) this.files.delete(f.ino)
      this.changed(f.ino)
    }
    let later: Promise<void> | undefined
    try {
      if (!f.flushNow()) later = f.flush().finally(finish)
    } finally {
      if (!later) finish()
    }
    return later
  }

  // Flushes every open file (unmount, shutdown).
  async flushAll (): Promise<void> {
    await this.mutateAsync(null, async () => { for (const f of this.files.values()) await f.flush() })
  }

  async statfs (): Promise<StatFs> {
    const s = await this.d.statfs()
    return {
      bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail,
      files: s.files, ffree: s.ffree, favail: s.ffree, namemax: NAME_MAX
    }
  }

  access (path: string): void {
    this.resolve(path)
  }
}
