import { seal, open } from '../crypto/aead.js'
import { keyedHash } from '../crypto/keyed-hash.js'
import type { VolumeKeys } from '../crypto/volume-keys.js'
import { encodeInode, decodeInode, type InodeAttrs } from '../codec/inode-record.js'
import { encodeDirent, decodeDirent } from '../codec/dirent-record.js'
import { encodeBlockRef, decodeBlockRef, type BlockRef } from '../codec/block-record.js'
import { u64Key, readU64Key, pairKey, inodeAd } from '../codec/keys.js'
import { fail } from '../errors.js'
import type { LmdbStore } from '../store/lmdb-store.js'
import type { NamespaceCounters } from './namespace-counters.js'
import type { DirEntry } from './namespace.js'
import { DEFAULT_META_CACHE_ENTRIES } from './cache-bound.js'

// The tree's records one at a time: inodes, directory entries and block refs,
// sealed under the metadata key; directory entries are keyed by a keyed hash
// of the name, so the store reveals neither names nor sizes. Decoded inodes
// and lookups are cached: this process is the only writer of its store.
// Writes run inside the caller's transaction and move the counters.
export class SealedTree {
  private readonly attrCache = new Map<number, InodeAttrs>()
  private readonly lookupCache = new Map<string, number>()
  private readonly blockCache = new Map<string, BlockRef>() // ino/index -> block ref (a sequential read asks once per 128 KiB)

  // `inodeChanged`: told of every inode whose attributes a write set or removed.
  constructor (
    private readonly store: LmdbStore,
    private readonly keys: VolumeKeys,
    private readonly counters: NamespaceCounters,
    private readonly inodeChanged: (ino: number) => void,
    // Each cache's bound (config metaCacheEntries): a decoded inode, a
    // lookup or a block ref is 100-250 bytes, so the three hold about
    // 120 MB at most with the default, whatever the volume's size (#26).
    private readonly cacheEntries = DEFAULT_META_CACHE_ENTRIES
  ) {}

  // --- reads ---

  getAttrs (ino: number): InodeAttrs | undefined {
    const cached = this.attrCache.get(ino)
    if (cached) return cached
    const key = u64Key(ino)
    const raw = this.store.inodes.getBinary(key)
    if (!raw) return undefined
    const attrs = decodeInode(this.openMeta(raw, inodeAd(key), `inode ${ino}`))
    this.remember(this.attrCache, ino, attrs)
    return attrs
  }

  lookup (parent: number, name: string): number | undefined {
    const ck = parent + '/' + name
    const cached = this.lookupCache.get(ck)
    if (cached !== undefined) return cached
    const key = this.direntKey(parent, name)
    const raw = this.store.dirents.getBinary(key)
    if (!raw) return undefined
    const d = decodeDirent(this.openMeta(raw, key, `directory entry in ${parent}`))
    this.remember(this.lookupCache, ck, d.ino)
    return d.ino
  }

  readdir (dir: number): DirEntry[] {
    const out: DirEntry[] = []
    for (const { key, value } of this.store.dirents.getRange({ start: u64Key(dir), end: u64Key(dir + 1) })) {
      const d = decodeDirent(this.openMeta(value as Buffer, key as Buffer, `directory entry in ${dir}`))
      out.push({ name: d.name, ino: d.ino })
    }
    return out
  }

  isEmptyDir (dir: number): boolean {
    for (const _ of this.store.dirents.getKeys({ start: u64Key(dir), end: u64Key(dir + 1), limit: 1 })) return false
    return true
  }

  getBlock (ino: number, index: number): BlockRef | undefined {
    const ck = ino + '/' + index
    const cached = this.blockCache.get(ck)
    if (cached) return cached
    const key = pairKey(ino, index)
    const raw = this.store.blocks.getBinary(key)
    if (!raw) return undefined
    const ref = decodeBlockRef(this.openMeta(raw, key, `block ${index} of inode ${ino}`))
    this.remember(this.blockCache, ck, ownId(ref))
    return ref
  }

  blockIndexes (ino: number, from = 0): number[] {
    const out: number[] = []
    for (const key of this.store.blocks.getKeys({ start: pairKey(ino, from), end: u64Key(ino + 1) })) {
      out.push(readU64Key(key as Buffer, 8))
    }
    return out
  }

  // After a failed transaction: nothing cached may hold what the store does not.
  dropCaches (): void {
    this.attrCache.clear()
    this.lookupCache.clear()
    this.blockCache.clear()
  }

  // --- writes (inside the caller's transaction) ---

  putInode (ino: number, attrs: InodeAttrs): void {
    if (this.counters.counts !== null) {
      const old = this.getAttrs(ino)
      if (old) this.counters.countInode(old, -1)
      this.counters.countInode(attrs, 1)
    }
    const key = u64Key(ino)
    this.store.inodes.putSync(key, this.sealMeta(encodeInode(attrs), inodeAd(key)))
    this.remember(this.attrCache, ino, attrs)
    this.inodeChanged(ino)
  }

  removeInode (ino: number, a: InodeAttrs | undefined): void {
    this.store.inodes.removeSync(u64Key(ino))
    if (a) this.counters.countInode(a, -1)
    this.attrCache.delete(ino)
    this.inodeChanged(ino)
  }

  // `old`: the ref it replaces, if any.
  putBlockRef (ino: number, index: number, ref: BlockRef, old: BlockRef | undefined): void {
    this.counters.countBytes('referencedBytes', ref.length - (old?.length ?? 0))
    const key = pairKey(ino, index)
    this.store.blocks.putSync(key, this.sealMeta(encodeBlockRef(ref), key))
    this.remember(this.blockCache, ino + '/' + index, ownId(ref))
  }

  removeBlockRef (ino: number, index: number, old: BlockRef | undefined): void {
    if (old) this.counters.countBytes('referencedBytes', -old.length)
    this.store.blocks.removeSync(pairKey(ino, index))
    this.blockCache.delete(ino + '/' + index)
  }

  putDirent (parent: number, name: string, ino: number): void {
    const key = this.direntKey(parent, name)
    this.store.dirents.putSync(key, this.sealMeta(encodeDirent({ name, ino }), key))
    this.remember(this.lookupCache, parent + '/' + name, ino)
  }

  deleteDirent (parent: number, name: string): void {
    this.store.dirents.removeSync(this.direntKey(parent, name))
    this.lookupCache.delete(parent + '/' + name)
  }

  // The last key made is kept: a create looks its name up, then puts it
  // (one keyed hash instead of two). Keys are never written to.
  private lastDirent: { parent: number, name: string, key: Buffer } | null = null

  private direntKey (parent: number, name: string): Buffer {
    const last = this.lastDirent
    if (last !== null && last.parent === parent && last.name === name) return last.key
    const p = u64Key(parent)
    const h = keyedHash(this.keys.name, p, Buffer.from(name, 'utf8'))
    const key = Buffer.concat([p, h.subarray(0, 16)])
    this.lastDirent = { parent, name, key }
    return key
  }

  private sealMeta (plain: Buffer, ad: Buffer): Buffer {
    return seal(this.keys.meta, plain, ad)
  }

  private openMeta (sealed: Buffer, ad: Buffer, what: string): Buffer {
    try {
      return open(this.keys.meta, sealed, ad)
    } catch (e) {
      throw fail('EIO', `corrupt metadata: ${what}`, e)
    }
  }

  // Cleared whole at the bound: cheaper on the hot path than keeping an
  // order, and what is in use comes back at once.
  private remember<K, V> (m: Map<K, V>, k: K, v: V): void {
    if (m.size >= this.cacheEntries) m.clear()
    m.set(k, v)
  }
}

// A cached ref's id in memory of its own: an id cut from Node's shared 8 KiB
// allocation pool (Buffer.from, a decoded record) keeps the whole slab
// alive as long as the cache keeps the id, about 1 KB per cached block
// measured (#26).
function ownId (ref: BlockRef): BlockRef {
  if (ref.id.byteLength === ref.id.buffer.byteLength) return ref
  const id = Buffer.allocUnsafeSlow(ref.id.length)
  ref.id.copy(id)
  return { ...ref, id }
}
