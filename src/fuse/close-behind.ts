import { openSync, readFileSync, writeSync, closeSync, ftruncateSync, existsSync, accessSync, constants, lstatSync, fstatSync, mkdtempSync, writeFileSync, renameSync, rmSync } from 'node:fs'
import { join, dirname, basename, resolve } from 'node:path'
import { createDecipheriv, createHash, randomBytes } from 'node:crypto'
import sodium from 'sodium-native'
import type { Vfs, Owner } from '../vfs/vfs.js'
import { ANSWERED_FH_BASE } from '../vfs/vfs.js'
import type { CloseBehindBinding } from './native.js'

// Close behind (scripts/build-fuse.cjs (l), scripts/fuse-patches/close-behind.c):
// the addon answers FLUSH of a small file it created itself once a sealed
// copy of everything queued for the handle is in the redo log, so tar x does
// not wait for the event loop at each close. Here: the log's key and header,
// the marks of frames whose file JS has released (and so committed), and the
// replay at mount of frames that were never marked.
//
// Log: "DRL1" | 24-byte salt | frames (close-behind.c). The frames' key is
// derived from the volume's metadata key and the salt, so each log (a new
// salt at every mount) has its own key, and the addon's nonces (a counter)
// never repeat under one key.

export interface MarkStore {
  mark (seq: number): void // in the next commit
  markNow (seq: number): void // in a transaction of its own, now
  marked (seq: number): boolean
  clearMarks (upTo?: number): void
}

// The log is cut back to its header this often (in files released): then it
// holds at most about this many small files' data while JS keeps up.
const TRUNCATE_EVERY = 1000

// Below this much room, closes go to JS (watchRoom). What the addon may have
// acknowledged and JS not yet stored is bounded by its 512 copies of at most
// 60 KiB (close-behind.c): 30 MiB, and their records' pages.
const ROOM_MIN = 64 * 1024 * 1024
const ROOM_CHECK_MS = 200

export interface ReplayTarget {
  vfs: Vfs
  exists (ino: number): boolean
  reserveIno (ino: number): void
}

const MAGIC = Buffer.from('DRL1')
const SALT_BYTES = 24
const HEADER_BYTES = MAGIC.length + SALT_BYTES
const SHM = '/dev/shm'
const SHM_PREFIX = 'disktro-redo-'
// In the data dir: the name of its private directory in /dev/shm.
const DIR_RECORD = 'redo-dir'
const LOG_NAME = 'redo.log'

// Where a data dir's redo log lives: in memory (/dev/shm) where there is
// one. It must survive the daemon (kill -9), not the machine: what close
// acknowledged is on disk no sooner without close behind either (LMDB
// commits are not synced; fsync is, and goes through the event loop). On
// disk it doubled what tar x wrote, and a `sync` waited for it.
//
// /dev/shm is shared with every local user, so the log is never at a name
// another user can guess or take first (issue 28, item 9): it goes in a
// directory made with mkdtemp (mode 0700, a random name, and mkdir fails
// on anything already there, symlinks included), whose name is recorded in
// the data dir (itself 0700). A recorded directory is used only while it is
// still ours: a real directory (lstat, not a link), owned by us, closed to
// everyone else. Else a new one is made, and a log found in a directory
// that is not ours is never read. Where /dev/shm cannot be written, the log
// is in the data dir.
export function redoLogPath (dataDir: string): string {
  const dir = recordedDir(dataDir)
  return dir === null ? join(dataDir, LOG_NAME) : join(dir, LOG_NAME)
}

// The directory the record in the data dir names, or null (none, or not
// one of ours by its name).
function recordedDir (dataDir: string): string | null {
  let text: string
  try {
    text = readFileSync(join(dataDir, DIR_RECORD), 'utf8').trim()
  } catch {
    return null
  }
  return dirname(text) === SHM && basename(text).startsWith(SHM_PREFIX) ? text : null
}

function uid (): number {
  return process.geteuid?.() ?? 0
}

// A directory of ours no one else can enter: not a link, owned by this
// user, no permission bits for group or others.
function ownDir (path: string): boolean {
  try {
    const st = lstatSync(path)
    return st.isDirectory() && st.uid === uid() && (st.mode & 0o077) === 0
  } catch {
    return false
  }
}

// Why an open redo log cannot be trusted, or null: it must be a regular
// file of ours with one name, readable and writable by us only.
function notOurs (fd: number): string | null {
  const st = fstatSync(fd)
  if (!st.isFile()) return 'not a regular file'
  if (st.uid !== uid()) return `owned by uid ${st.uid}`
  if (st.nlink !== 1) return `${st.nlink} links`
  if ((st.mode & 0o077) !== 0) return `mode ${(st.mode & 0o777).toString(8)}`
  return null
}

// The directory for this run's log: the recorded one while it is still
// ours, else a new one (recorded), else the data dir.
function logDir (dataDir: string, log: (line: string) => void): string {
  const recorded = recordedDir(dataDir)
  if (recorded !== null && ownDir(recorded)) return recorded
  if (recorded !== null && existsSync(recorded)) log(`redo log: ${recorded} is not a private directory of this user: not used`)
  try {
    accessSync(SHM, constants.W_OK)
    const dir = mkdtempSync(join(SHM, SHM_PREFIX))
    if (!ownDir(dir)) throw new Error(`${dir} is not private`)
    const tmp = join(dataDir, DIR_RECORD + '.tmp')
    writeFileSync(tmp, dir + '\n', { mode: 0o600 })
    renameSync(tmp, join(dataDir, DIR_RECORD))
    return dir
  } catch {
    rmSync(join(dataDir, DIR_RECORD), { force: true })
    return dataDir
  }
}

// Where a log the last run left may be: the recorded directory (while it
// is ours), the data dir (where /dev/shm could not be written), the name
// versions before issue 28 used.
function leftLogPaths (dataDir: string): string[] {
  const recorded = recordedDir(dataDir)
  return [...(recorded !== null && ownDir(recorded) ? [join(recorded, LOG_NAME)] : []), join(dataDir, LOG_NAME), legacyLogPath(dataDir)]
}

// The log at `file`, read without following a link, if it is ours (else
// null, and logged).
function readOurs (file: string, log: (line: string) => void): Buffer | null {
  let fd: number
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch {
    return null
  }
  try {
    const why = notOurs(fd)
    if (why !== null) {
      log(`redo log: ${file} ignored: ${why}`)
      return null
    }
    return readFileSync(fd)
  } finally {
    closeSync(fd)
  }
}

// Where versions before issue 28 kept the log, a name anyone could take
// first: read once after an upgrade, only if it passes notOurs (a file a
// daemon of this user made, not a link), so what an older daemon killed
// with -9 acknowledged is not lost.
function legacyLogPath (dataDir: string): string {
  return join(SHM, `${SHM_PREFIX}${createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 16)}.log`)
}

// A new, empty log: made here (O_EXCL: never a file someone else made, and
// never through a link), checked all the same.
function newLog (file: string): number {
  rmSync(file, { force: true })
  const fd = openSync(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
  const why = notOurs(fd)
  if (why !== null) {
    closeSync(fd)
    throw new Error(`redo log ${file}: ${why}`)
  }
  return fd
}

// Removes a data dir's redo log, its directory and the record (after a
// clean unmount; tests, after a kill -9).
export function removeRedoLog (dataDir: string): void {
  const dir = recordedDir(dataDir)
  if (dir !== null && ownDir(dir)) rmSync(dir, { recursive: true, force: true })
  rmSync(join(dataDir, DIR_RECORD), { force: true })
  rmSync(join(dataDir, LOG_NAME), { force: true })
}

interface Frame {
  seq: number
  fh: number
  ino: number
  mode: number
  owner?: Owner // the new file's (frames of addons before issue 29 have none: the daemon's user)
  time: number
  path: string
  records: Array<{ type: 1, time: number, offset: number, data: Buffer } | { type: 2, kind: number, a: number, b: number, t1: number, t2: number, t3: number }>
}

function keyOf (metaKey: Buffer, salt: Buffer): Buffer {
  const out = Buffer.alloc(32)
  sodium.crypto_generichash(out, Buffer.concat([Buffer.from('disktro redo log 1'), salt]), metaKey)
  return out
}

// Every whole frame of a log, in order; a torn or foreign tail ends the list.
export function readFrames (log: Buffer, metaKey: Buffer): Frame[] {
  if (log.length < HEADER_BYTES || !log.subarray(0, MAGIC.length).equals(MAGIC)) return []
  const key = keyOf(metaKey, log.subarray(MAGIC.length, HEADER_BYTES))
  const frames: Frame[] = []
  let o = HEADER_BYTES
  while (o + 4 <= log.length) {
    const rest = log.readUInt32LE(o)
    if (rest < 8 + 12 + 16 || o + 4 + rest > log.length) break
    const seqBytes = log.subarray(o + 4, o + 12)
    const nonce = log.subarray(o + 12, o + 24)
    const body = log.subarray(o + 24, o + 4 + rest - 16)
    const tag = log.subarray(o + 4 + rest - 16, o + 4 + rest)
    let plain: Buffer
    try {
      const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 })
      d.setAAD(seqBytes, { plaintextLength: body.length })
      d.setAuthTag(tag)
      plain = Buffer.concat([d.update(body), d.final()])
    } catch {
      break
    }
    const f = parseFrame(plain, Number(seqBytes.readBigUInt64LE(0)))
    if (f === null) break
    frames.push(f)
    o += 4 + rest
  }
  return frames
}

function parseFrame (p: Buffer, seq: number): Frame | null {
  try {
    const magic = p.subarray(0, 4).toString('latin1')
    if (magic !== 'DCB1' && magic !== 'DCB2') return null
    let o = 4
    const fh = Number(p.readBigUInt64LE(o)); o += 8
    const ino = Number(p.readBigUInt64LE(o)); o += 8
    const mode = p.readUInt32LE(o); o += 4
    let owner: Owner | undefined
    if (magic === 'DCB2') {
      owner = { uid: p.readUInt32LE(o), gid: p.readUInt32LE(o + 4) }
      o += 8
    }
    const time = p.readDoubleLE(o); o += 8
    const plen = p.readUInt16LE(o); o += 2
    const path = p.subarray(o, o + plen).toString('utf8'); o += plen
    const records: Frame['records'] = []
    while (o < p.length) {
      const type = p[o++]
      if (type === 1) {
        const t = p.readDoubleLE(o); o += 8
        const offset = Number(p.readBigUInt64LE(o)); o += 8
        const len = p.readUInt32LE(o); o += 4
        if (o + len > p.length) return null
        records.push({ type: 1, time: t, offset, data: Buffer.from(p.subarray(o, o + len)) }); o += len
      } else if (type === 2) {
        const kind = p[o++]
        const a = p.readUInt32LE(o); o += 4
        const b = p.readUInt32LE(o); o += 4
        const t1 = p.readDoubleLE(o); o += 8
        const t2 = p.readDoubleLE(o); o += 8
        const t3 = p.readDoubleLE(o); o += 8
        records.push({ type: 2, kind, a, b, t1, t2, t3 })
      } else {
        return null
      }
    }
    return { seq, fh, ino, mode, ...(owner ? { owner } : {}), time, path, records }
  } catch {
    return null
  }
}

// Applies the last frame of every handle that was never marked released;
// returns how many files it applied.
export async function replay (frames: Frame[], marks: MarkStore, t: ReplayTarget, log: (line: string) => void): Promise<number> {
  const last = new Map<number, Frame>()
  for (const f of frames) last.set(f.fh, f)
  let applied = 0
  let n = 0
  for (const f of [...last.values()].sort((x, y) => x.seq - y.seq)) {
    if (marks.marked(f.seq)) continue
    t.reserveIno(f.ino)
    const fh = ANSWERED_FH_BASE + (++n)
    try {
      if (!t.exists(f.ino)) t.vfs.createAnswered(f.path, f.mode, fh, f.ino, f.time, f.owner)
      else t.vfs.reopen(f.ino, f.path, fh)
      for (const r of f.records) {
        if (r.type === 1) {
          await t.vfs.write(fh, r.data, r.data.length, r.offset, r.time)
        } else if (t.vfs.inoOf(f.path) === f.ino) { // not a file that took the name since
          try {
            if (r.kind === 1) t.vfs.chmod(f.path, r.a, r.t3)
            else if (r.kind === 2) t.vfs.chown(f.path, r.a, r.b, r.t3)
            else if (r.kind === 3) t.vfs.utimens(f.path, r.t1 < 0 ? undefined : r.t1, r.t2 < 0 ? undefined : r.t2, r.t3)
          } catch {}
        }
      }
      await t.vfs.release(fh)
      applied++
    } catch (e) {
      log(`redo log: ${f.path} (inode ${f.ino}) could not be replayed: ${(e as Error).message}`)
    }
  }
  return applied
}

// At mount, before the addon serves anything: replays the log left by the
// last run, starts a new one, and hands it to the addon.
export class CloseBehind {
  private constructor (private readonly binding: CloseBehindBinding, private readonly marks: MarkStore, private readonly fd: number, private readonly dataDir: string) {}

  static async start (binding: CloseBehindBinding, dataDir: string, metaKey: Buffer, marks: MarkStore, target: ReplayTarget, log: (line: string) => void): Promise<CloseBehind> {
    // The first log found is the last run's; any other of ours is older
    // still, and goes unread: replayed later, it would undo newer changes.
    let replayed = false
    for (const file of leftLogPaths(dataDir)) {
      const bytes = readOurs(file, log)
      if (bytes === null) continue
      const frames = replayed ? [] : readFrames(bytes, metaKey)
      replayed = true
      if (frames.length > 0) {
        const applied = await replay(frames, marks, target, log)
        log(`redo log: ${frames.length} frames read, ${applied} files applied that the last run had acknowledged and not committed`)
      }
      rmSync(file, { force: true })
    }
    const file = join(logDir(dataDir, log), LOG_NAME)
    const fd = newLog(file)
    const salt = randomBytes(SALT_BYTES)
    writeSync(fd, Buffer.concat([MAGIC, salt]))
    marks.clearMarks()
    binding.fuse_native_clb_enable(fd, keyOf(metaKey, salt))
    return new CloseBehind(binding, marks, fd, dataDir)
  }

  // JS released `fh` (its file is committed): its frame is not replayed.
  released (fh: number): void {
    this.unsettled.delete(fh)
    const seq = this.binding.fuse_native_clb_take(fh)
    if (seq <= 0) return
    this.marks.mark(seq)
    if (++this.sinceCut >= TRUNCATE_EVERY) this.cut()
  }

  // The addon's copy of `fh` stopped following its file after it wrote frame
  // `seq` (close-behind.c, disktro_clb_checkpoint: a descriptor closed while
  // a dup of it stays open, then a truncate, a large write, an attribute
  // change JS applies, or an open, unlink, rename or link of its path). This
  // runs before that change is applied: the file is
  // committed as it is, which holds all the frame holds, then the frame is
  // marked (in the next commit, that of the change or a later one) and the
  // copy dropped, so the frame is never replayed over what followed it.
  // When that commit fails (a full disk), the frame stays unmarked, the only
  // stored copy of what its close acknowledged, until the handle's next
  // flush or fsync (settle) or its release commits the file.
  checkpoint (fh: number, seq: number, flush: () => void | Promise<void>): void | Promise<void> {
    return this.commitThenMark(fh, seq, flush, () => this.marks.mark(seq))
  }

  // Checkpoints whose commit failed: handle -> its frame's seq.
  private readonly unsettled = new Map<number, number>()

  // Before a flush or fsync of `fh` goes on: a checkpoint of it that failed
  // is done first, its mark in a transaction of its own, so that what the
  // flush or fsync acknowledges never has the frame replayed over it after
  // kill -9. A failure fails the flush or fsync.
  settle (fh: number, flush: () => void | Promise<void>): void | Promise<void> {
    const seq = this.unsettled.get(fh)
    if (seq === undefined) return
    return this.commitThenMark(fh, seq, flush, () => this.marks.markNow(seq))
  }

  // flush(), then `mark` and the copy dropped; a failed flush leaves the
  // frame unsettled (unmarked) and fails the caller.
  private commitThenMark (fh: number, seq: number, flush: () => void | Promise<void>, mark: () => void): void | Promise<void> {
    const done = (): void => {
      mark()
      this.binding.fuse_native_clb_take(fh)
      this.unsettled.delete(fh)
    }
    const failed = (e: unknown): never => {
      this.unsettled.set(fh, seq)
      throw e
    }
    let r: void | Promise<void>
    try {
      r = flush()
    } catch (e) {
      return failed(e)
    }
    if (r) return r.then(done, failed)
    done()
  }

  private sinceCut = 0
  private truncations = 0

  // Every frame in the log belongs to a file JS committed (the addon checks
  // under its lock): the log starts again after its header, and the marks of
  // the frames it dropped go.
  private cut (): void {
    const upTo = this.binding.fuse_native_clb_truncate(HEADER_BYTES)
    if (upTo < 0) return
    this.sinceCut = 0
    this.truncations++
    this.marks.clearMarks(upTo)
  }

  // Closes answered from the log, those of copied handles passed to JS,
  // checkpoints, cuts, and how often it paused for room.
  stats (): { frames: number, passed: number, checkpoints: number, truncations: number, pauses: number } {
    const [frames, passed, checkpoints] = this.binding.fuse_native_clb_stats()
    return { frames, passed, checkpoints, truncations: this.truncations, pauses: this.pauses }
  }

  // While the volume has less than ROOM_MIN bytes of room (`room`: the
  // store's limit or the disk, whichever is nearer), every close goes to JS,
  // which commits before it answers: a close that cannot be stored then fails
  // with ENOSPC instead of being acknowledged and failing later, unseen.
  // Checked every ROOM_CHECK_MS, and at once.
  watchRoom (room: () => Promise<number>, log: (line: string) => void): void {
    let paused = false
    let busy = false
    const check = (): void => {
      if (busy) return
      busy = true
      room().then(bytes => {
        const low = bytes < ROOM_MIN
        if (low !== paused) {
          paused = low
          this.binding.fuse_native_clb_pause(low)
          if (low) this.pauses++
          log(low ? `close behind paused: ${Math.floor(bytes / 1048576)} MiB of room left` : 'close behind resumed')
        }
      }).catch(() => {}).finally(() => { busy = false })
    }
    check()
    this.roomTimer = setInterval(check, ROOM_CHECK_MS)
    this.roomTimer.unref()
  }

  private pauses = 0
  private roomTimer: NodeJS.Timeout | null = null

  // After a clean unmount: every file is committed, nothing is to be replayed.
  finish (): void {
    if (this.roomTimer) clearInterval(this.roomTimer)
    try { ftruncateSync(this.fd, 0) } catch {}
    try { closeSync(this.fd) } catch {}
    try { removeRedoLog(this.dataDir) } catch {}
  }
}
