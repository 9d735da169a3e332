import type { LmdbStore } from '../store/lmdb-store.js'
import type { VolumeKeys } from '../crypto/volume-keys.js'
import type { ChunkVerifier } from '../chunks/chunk-verifier.js'
import { open, seal } from '../crypto/aead.js'
import { decodeInode, encodeInode, type InodeAttrs } from '../codec/inode-record.js'
import { decodeDirent } from '../codec/dirent-record.js'
import { decodeBlockRef } from '../codec/block-record.js'
import { readU64Key, u64Key, inodeAd } from '../codec/keys.js'
import { ROOT_INO } from '../meta/namespace.js'
import { zeroCounts, sameCounts, encodeCounts, decodeCounts, type NamespaceCounts } from '../codec/counters-record.js'
import { encodeRefs, refsCount, refsLength } from '../codec/refs-record.js'

const S_IFMT = 0o170000
const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const COUNTERS_KEY = Buffer.from('counters')

// Every kind of damage fsck knows, in the order it reports them; `repair`
// says what --repair does about it (null: nothing can be done offline).
export const PROBLEMS = {
  'inode-unreadable': { what: 'inode records that fail authentication', repair: null },
  'dirent-unreadable': { what: 'directory entries that fail authentication', repair: null },
  'dirent-dangling': { what: 'directory entries naming a missing inode', repair: 'removed' },
  'dirent-no-parent': { what: 'directory entries in a missing directory', repair: 'removed' },
  'inode-unreachable': { what: 'inodes no directory entry names', repair: null },
  'nlink-wrong': { what: 'wrong link counts', repair: 'fixed' },
  'block-unreadable': { what: 'block map entries that fail authentication', repair: null },
  'block-no-inode': { what: 'block map entries of a missing inode', repair: 'removed' },
  'blocks-wrong': { what: 'wrong stored-block counts in inodes', repair: 'fixed' },
  'refcount-wrong': { what: 'wrong chunk reference counts', repair: 'fixed' },
  'counters-wrong': { what: 'volume totals (status) that disagree with the tree', repair: 'fixed' },
  'chunk-leaked': { what: 'leaked chunks (no file references them, not held for a peer)', repair: 'dropped' },
  'chunk-corrupt': { what: 'corrupt chunks', repair: null },
  'chunk-missing': { what: 'missing chunks (stored here once, record gone)', repair: null },
  'sum-stale': { what: 'checksums of chunks no longer wanted', repair: 'removed' }
} as const

export const NOTES = {
  'chunk-unsummed': 'chunks stored before checksums existed (checksum recorded by --repair or the scrubber)',
  'counters-absent': 'a volume from before its totals were counted (counted at the next start of the daemon, or by --repair)',
  'chunk-remote': 'chunks files reference that are not held here (other members hold them; fetched on read)'
} as const

export type ProblemKind = keyof typeof PROBLEMS
export type NoteKind = keyof typeof NOTES

export interface FsckReport {
  role: 'full' | 'storage'
  checked: { inodes: number, dirents: number, blocks: number, chunks: number, bytes: number }
  problems: Array<{ kind: ProblemKind, what: string, count: number, fixed: number }>
  notes: Array<{ kind: NoteKind, what: string, count: number }>
  found: number // problems found
  remaining: number // of those, not fixed
}

// Checks a data dir that no daemon is using: every metadata record opens
// under the metadata key, the tree is consistent (entries point at inodes,
// link and block counts, reference counts match the block maps), and every
// chunk record is intact. A storage-only member, which holds no key, checks
// chunk checksums only. With `repair`, fixes what needs no other machine;
// corrupt or missing chunks are left for the daemon's scrubber, which
// fetches good copies from peers.
export class Fsck {
  private readonly found = new Map<ProblemKind, number>()
  private readonly fixed = new Map<ProblemKind, number>()
  private readonly noted = new Map<NoteKind, number>()
  private readonly checked = { inodes: 0, dirents: 0, blocks: 0, chunks: 0, bytes: 0 }

  constructor (private readonly store: LmdbStore, private readonly verifier: ChunkVerifier, private readonly keys: VolumeKeys | null) {}

  async run (repair: boolean): Promise<FsckReport> {
    const refs = this.keys ? this.checkTree(this.keys, repair) : null
    await this.checkChunks(refs, repair)
    const problems = (Object.keys(PROBLEMS) as ProblemKind[]).filter(k => this.found.has(k)).map(kind => ({
      kind, what: PROBLEMS[kind].what, count: this.found.get(kind) ?? 0, fixed: this.fixed.get(kind) ?? 0
    }))
    const notes = (Object.keys(NOTES) as NoteKind[]).filter(k => this.noted.has(k)).map(kind => ({ kind, what: NOTES[kind], count: this.noted.get(kind) ?? 0 }))
    const found = problems.reduce((n, p) => n + p.count, 0)
    return { role: this.keys ? 'full' : 'storage', checked: this.checked, problems, notes, found, remaining: found - problems.reduce((n, p) => n + p.fixed, 0) }
  }

  private problem (kind: ProblemKind, fix?: () => void): void {
    this.found.set(kind, (this.found.get(kind) ?? 0) + 1)
    if (fix) {
      fix()
      this.fixed.set(kind, (this.fixed.get(kind) ?? 0) + 1)
    }
  }

  private note (kind: NoteKind): void {
    this.noted.set(kind, (this.noted.get(kind) ?? 0) + 1)
  }

  // The namespace, in one transaction (nothing else writes: the data dir is
  // locked). Returns the reference count each chunk should have.
  private checkTree (keys: VolumeKeys, repair: boolean): Map<string, number> {
    const s = this.store
    return s.txn(() => {
      const inodes = new Map<number, InodeAttrs>()
      const unreadable = new Set<number>()
      for (const { key, value } of s.inodes.getRange({})) {
        this.checked.inodes++
        const ino = readU64Key(key as Buffer)
        try {
          inodes.set(ino, decodeInode(open(keys.meta, value as Buffer, inodeAd(key as Buffer))))
        } catch {
          unreadable.add(ino)
          this.problem('inode-unreadable')
        }
      }
      const exists = (ino: number): boolean => inodes.has(ino) || unreadable.has(ino)
      const isDir = (a: InodeAttrs | undefined): boolean => a !== undefined && (a.mode & S_IFMT) === S_IFDIR
      const links = new Map<number, number>() // directory entries naming each inode
      const subdirs = new Map<number, number>()
      const drop: Buffer[] = []
      for (const { key, value } of s.dirents.getRange({})) {
        this.checked.dirents++
        const k = Buffer.from(key as Buffer)
        const parent = readU64Key(k)
        let ino: number
        try {
          ino = decodeDirent(open(keys.meta, value as Buffer, k)).ino
        } catch {
          this.problem('dirent-unreadable')
          continue
        }
        if (!exists(parent) || (inodes.has(parent) && !isDir(inodes.get(parent)))) {
          this.problem('dirent-no-parent', repair ? () => drop.push(k) : undefined)
        } else if (!exists(ino)) {
          this.problem('dirent-dangling', repair ? () => drop.push(k) : undefined)
        } else {
          links.set(ino, (links.get(ino) ?? 0) + 1)
          if (isDir(inodes.get(ino))) subdirs.set(parent, (subdirs.get(parent) ?? 0) + 1)
        }
      }
      for (const k of drop) s.dirents.removeSync(k)

      // The volume's totals as the namespace should have counted them
      // (meta/count-walk.ts), over the records the tree keeps: damage found
      // above is its own problem.
      const totals = zeroCounts()
      for (const a of inodes.values()) {
        const t = a.mode & S_IFMT
        if (t === S_IFDIR) totals.directories++
        else if (t === S_IFREG) { totals.files++; totals.logicalBytes += a.size }
      }
      const longest = new Map<string, number>() // chunk -> its longest reference
      const counts = new Map<string, number>()
      const blocksOf = new Map<number, number>()
      for (const { key, value } of s.blocks.getRange({})) {
        this.checked.blocks++
        const k = Buffer.from(key as Buffer)
        const ino = readU64Key(k)
        let id: Buffer
        let length: number
        try {
          ({ id, length } = decodeBlockRef(open(keys.meta, value as Buffer, k)))
        } catch {
          this.problem('block-unreadable')
          continue
        }
        if (!exists(ino)) {
          this.problem('block-no-inode', repair ? () => s.blocks.removeSync(k) : undefined)
          continue
        }
        blocksOf.set(ino, (blocksOf.get(ino) ?? 0) + 1)
        const hex = id.toString('hex')
        counts.set(hex, (counts.get(hex) ?? 0) + 1)
        longest.set(hex, Math.max(longest.get(hex) ?? 0, length))
        totals.referencedBytes += length
      }

      for (const [ino, a] of inodes) {
        const named = links.get(ino) ?? 0
        if (ino !== ROOT_INO && named === 0) { this.problem('inode-unreachable'); continue }
        const nlink = isDir(a) ? 2 + (subdirs.get(ino) ?? 0) : named
        const blocks = blocksOf.get(ino) ?? 0
        let fixed = a
        if (a.nlink !== nlink) this.problem('nlink-wrong', repair ? () => { fixed = { ...fixed, nlink } } : undefined)
        if (a.blocks !== blocks) this.problem('blocks-wrong', repair ? () => { fixed = { ...fixed, blocks } } : undefined)
        if (fixed !== a) {
          const key = u64Key(ino)
          s.inodes.putSync(key, seal(keys.meta, encodeInode(fixed), inodeAd(key)))
        }
      }

      // A refs record is its count and the bytes its chunk counts for in the
      // totals: at least its longest reference. Records from before the
      // counters carry the count alone; --repair adds the length.
      const storedRaw = s.sys.getBinary(COUNTERS_KEY)
      const legacy = storedRaw === undefined
      const lengthOf = new Map<string, number>()
      for (const { key, value } of s.refs.getRange({})) {
        const id = Buffer.from(key as Buffer)
        const hex = id.toString('hex')
        const want = counts.get(hex) ?? 0
        const v = value as Buffer
        if (want === 0) { this.problem('refcount-wrong', repair ? () => { s.refs.removeSync(id); s.markDirty(id) } : undefined); continue }
        const kept = v.length === 8 ? refsLength(v)! : undefined
        const length = Math.max(kept ?? 0, longest.get(hex)!)
        lengthOf.set(hex, length)
        const fix = repair ? () => s.refs.putSync(id, encodeRefs(want, length)) : undefined
        if ((v.length !== 4 && v.length !== 8) || refsCount(v) !== want) this.problem('refcount-wrong', fix)
        else if (kept === undefined && legacy) { if (repair) fix!() } else if (kept === undefined || kept < length) this.problem('counters-wrong', fix)
      }
      for (const [hex, n] of counts) {
        const id = Buffer.from(hex, 'hex')
        if (!lengthOf.has(hex)) {
          lengthOf.set(hex, longest.get(hex)!)
          this.problem('refcount-wrong', repair ? () => { s.refs.putSync(id, encodeRefs(n, longest.get(hex)!)); s.markDirty(id) } : undefined)
        }
      }
      for (const length of lengthOf.values()) totals.uniqueBytes += length
      this.checkTotals(totals, storedRaw, repair)
      return counts
    })
  }

  // Inside checkTree's transaction.
  private checkTotals (totals: NamespaceCounts, storedRaw: Buffer | undefined, repair: boolean): void {
    const fix = repair ? () => this.store.sys.putSync(COUNTERS_KEY, encodeCounts(totals)) : undefined
    if (storedRaw === undefined) {
      this.note('counters-absent')
      fix?.()
      return
    }
    let stored: NamespaceCounts | null = null
    try { stored = decodeCounts(storedRaw) } catch {}
    if (stored === null || !sameCounts(stored, totals)) this.problem('counters-wrong', fix)
  }

  // Every chunk record, read on lmdb's prefetch thread one at a time.
  private async checkChunks (refs: Map<string, number> | null, repair: boolean): Promise<void> {
    const s = this.store
    const ids = new Set<string>()
    for (const k of s.chunks.getKeys({})) ids.add((k as Buffer).toString('hex'))
    for (const hex of ids) {
      const id = Buffer.from(hex, 'hex')
      this.checked.chunks++
      if (refs && !refs.has(hex) && !s.foreign.doesExist(id)) {
        this.problem('chunk-leaked', repair ? () => s.txn(() => { s.removeChunkSync(id); s.clearHoldersSync(id) }) : undefined)
        continue
      }
      await s.prefetchChunks([id])
      const record = s.chunkCopy(id)
      if (!record) continue
      this.checked.bytes += record.length
      const v = await this.verifier.check(id, record, s.sums.getBinary(id))
      if (v.state === 'bad') this.problem('chunk-corrupt')
      if (v.state === 'adopt') {
        this.note('chunk-unsummed')
        if (repair) await s.sums.put(id, v.sum)
      }
    }
    const stale: Buffer[] = []
    for (const k of s.sums.getKeys({})) {
      const id = Buffer.from(k as Buffer)
      const hex = id.toString('hex')
      if (ids.has(hex)) continue
      if (refs && !refs.has(hex) && !s.foreign.doesExist(id)) this.problem('sum-stale', repair ? () => stale.push(id) : undefined)
      else this.problem('chunk-missing')
    }
    if (stale.length) s.txn(() => { for (const id of stale) s.sums.removeSync(id) })
    if (refs) {
      for (const hex of refs.keys()) {
        if (!ids.has(hex) && !s.sums.doesExist(Buffer.from(hex, 'hex'))) this.note('chunk-remote')
      }
    }
  }
}

