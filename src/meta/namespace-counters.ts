import type { LmdbStore } from '../store/lmdb-store.js'
import type { InodeAttrs } from '../codec/inode-record.js'
import { encodeCounts, decodeCounts, zeroCounts, type NamespaceCounts } from '../codec/counters-record.js'
import { encodeRefs, refsCount, refsLength } from '../codec/refs-record.js'
import { walkCounts } from './count-walk.js'

const S_IFMT = 0o170000
const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const COUNTERS_KEY = Buffer.from('counters')

// The namespace's counters (codec/counters-record.ts).
//
// Files, directories and bytes move with each change, in its transaction:
// `status` reads them instead of walking the tree (JuiceFS keeps used space
// and inode counts the same way). null: this store has none yet (written
// before counters existed); nothing is counted until ensureCounters().
export class NamespaceCounters {
  counts: NamespaceCounts | null
  private countsDirty = false

  constructor (private readonly store: LmdbStore) {
    this.counts = this.storedCounts()
  }

  counters (): NamespaceCounts | null {
    return this.counts === null ? null : { ...this.counts }
  }

  // A store without a single inode is new: its counters start at zero.
  // Inside the transaction that creates the root.
  startIfNew (): void {
    if (this.counts === null && this.store.inodes.getKeysCount({ limit: 1 }) === 0) { this.counts = zeroCounts(); this.countsDirty = true }
  }

  // Counts again from the records (after recovery changed reference counts,
  // or fsck --repair), and records in each refs record the bytes its chunk
  // counts for. Inside the caller's transaction.
  recount (metaKey: Buffer): void {
    const walk = walkCounts(this.store, metaKey)
    for (const [hex, c] of walk.chunks) {
      const id = Buffer.from(hex, 'hex')
      const raw = this.store.refs.getBinary(id)
      if (!raw || refsCount(raw) !== c.refs || refsLength(raw) !== c.length) this.store.refs.putSync(id, encodeRefs(c.refs, c.length))
    }
    this.counts = walk.counts
    this.countsDirty = true
    this.storeCounts()
  }

  // After a failed transaction: back to what the store holds.
  reload (): void {
    this.counts = this.storedCounts()
    this.countsDirty = false
  }

  private storedCounts (): NamespaceCounts | null {
    const raw = this.store.sys.getBinary(COUNTERS_KEY)
    if (!raw) return null
    try {
      return decodeCounts(raw)
    } catch {
      return null // counted again at the next open
    }
  }

  // Inside the transaction of the change that moved them.
  storeCounts (): void {
    if (!this.countsDirty || this.counts === null) return
    this.store.sys.putSync(COUNTERS_KEY, encodeCounts(this.counts))
    this.countsDirty = false
  }

  countInode (a: InodeAttrs, sign: 1 | -1): void {
    const c = this.counts
    if (c === null) return
    const t = a.mode & S_IFMT
    if (t === S_IFDIR) c.directories += sign
    else if (t === S_IFREG) { c.files += sign; c.logicalBytes += sign * a.size } else return
    this.countsDirty = true
  }

  countBytes (field: 'referencedBytes' | 'uniqueBytes', delta: number): void {
    if (this.counts === null || delta === 0) return
    this.counts[field] += delta
    this.countsDirty = true
  }
}
