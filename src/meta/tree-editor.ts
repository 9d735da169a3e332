import type { InodeAttrs } from '../codec/inode-record.js'
import type { BlockRef } from '../codec/block-record.js'
import type { StampedChange } from '../codec/change-record.js'
import { fail } from '../errors.js'
import { HybridClock } from './hlc.js'
import type { SealedTree } from './sealed-tree.js'
import type { ChunkRefs } from './chunk-refs.js'

const S_IFMT = 0o170000
const S_IFDIR = 0o040000

// The tree's edits that span records: each kind of change applied (a local
// commit), and the merged view's block maps and purges (materialize). Inside
// the caller's transaction.
export class TreeEditor {
  // `created`: told of each inode number a change creates, before its parent is touched.
  constructor (private readonly tree: SealedTree, private readonly refs: ChunkRefs, private readonly created: (ino: number) => void) {}

  // Deterministic: the same change on the same tree gives the same tree.
  apply (c: StampedChange): void {
    const ms = HybridClock.millis(c.hlc)
    switch (c.op) {
      case 'mknode': {
        this.tree.putInode(c.ino, c.attrs)
        this.tree.putDirent(c.parent, c.name, c.ino)
        this.created(c.ino)
        // The new node's change time: what the FUSE layer showed for a create it answered (fuse/write-behind.ts).
        this.touchDir(c.parent, c.attrs.ctime, isDir(c.attrs.mode) ? 1 : 0)
        return
      }
      case 'link': {
        const a = this.mustAttrs(c.ino)
        this.tree.putDirent(c.parent, c.name, c.ino)
        this.tree.putInode(c.ino, { ...a, nlink: a.nlink + 1, ctime: c.ctime })
        this.touchDir(c.parent, ms, 0)
        return
      }
      case 'unlink': {
        const ino = this.tree.lookup(c.parent, c.name)
        if (ino === undefined) return
        this.tree.deleteDirent(c.parent, c.name)
        const dir = this.dropLink(ino, c.ctime)
        this.touchDir(c.parent, ms, dir ? -1 : 0)
        return
      }
      case 'rename': {
        const ino = this.tree.lookup(c.parent, c.name)
        if (ino === undefined) return
        const dir = isDir(this.mustAttrs(ino).mode)
        const replaced = this.tree.lookup(c.newParent, c.newName)
        if (replaced === ino) return
        this.tree.deleteDirent(c.parent, c.name)
        let delta = dir ? 1 : 0
        if (replaced !== undefined) {
          if (this.dropLink(replaced, c.ctime)) delta -= 1
        }
        this.tree.putDirent(c.newParent, c.newName, ino)
        const a = this.mustAttrs(ino)
        this.tree.putInode(ino, { ...a, ctime: c.ctime })
        if (c.parent === c.newParent) {
          this.touchDir(c.parent, ms, delta - (dir ? 1 : 0))
        } else {
          this.touchDir(c.parent, ms, dir ? -1 : 0)
          this.touchDir(c.newParent, ms, delta)
        }
        return
      }
      case 'setattr': {
        const a = this.tree.getAttrs(c.ino)
        if (!a) return
        this.tree.putInode(c.ino, { ...a, ...c.attrs })
        return
      }
      case 'blocks': {
        const a = this.tree.getAttrs(c.ino)
        if (!a) {
          // The file went away while its data was being sealed: release the
          // chunks that only this change would have referenced.
          for (const [, hex] of c.blocks) if (hex) this.refs.collectIfUnreferenced(Buffer.from(hex, 'hex'))
          return
        }
        let blocks = a.blocks
        for (const [index, hex, length] of c.blocks) {
          const old = this.tree.getBlock(c.ino, index)
          if (hex) {
            const id = Buffer.from(hex, 'hex')
            this.refs.incref(id, length)
            this.tree.putBlockRef(c.ino, index, { id, length }, old)
            if (!old) blocks++
          } else if (old) {
            this.tree.removeBlockRef(c.ino, index, old)
            blocks--
          }
          if (old) this.refs.decref(old.id)
        }
        // ctime never moves back: a block committed after an explicit (older) mtime keeps the later change time
        this.tree.putInode(c.ino, { ...a, ...c.attrs, size: c.size, blocks, mtime: c.mtime, ctime: Math.max(a.ctime, c.mtime, c.attrs?.ctime ?? 0) })
        return
      }
      case 'truncate': {
        const a = this.tree.getAttrs(c.ino)
        if (!a) return
        const blocks = this.truncateBlocks(c.ino, c.size, a.blocks)
        this.tree.putInode(c.ino, { ...a, size: c.size, blocks, mtime: c.mtime, ctime: c.mtime })
        return
      }
    }
  }

  // Drops one name of an inode; purges it when no name is left. Returns
  // whether it was a directory.
  private dropLink (ino: number, ctime: number): boolean {
    const a = this.mustAttrs(ino)
    const dir = isDir(a.mode)
    const nlink = dir ? 0 : a.nlink - 1
    if (nlink > 0) {
      this.tree.putInode(ino, { ...a, nlink, ctime })
    } else {
      this.truncateBlocks(ino, 0, a.blocks)
      this.tree.removeInode(ino, a)
    }
    return dir
  }

  // Drops the block map entries past `size` and shortens a partial last block
  // so bytes cut off never come back when the file grows again.
  private truncateBlocks (ino: number, size: number, blocks: number): number {
    const cs = this.chunkSizeOf()
    const keep = Math.ceil(size / cs)
    for (const index of this.tree.blockIndexes(ino, keep)) {
      const old = this.tree.getBlock(ino, index)
      this.tree.removeBlockRef(ino, index, old)
      if (old) { this.refs.decref(old.id); blocks-- }
    }
    if (size % cs !== 0) {
      const index = keep - 1
      const last = this.tree.getBlock(ino, index)
      const within = size - index * cs
      if (last && last.length > within) {
        this.tree.putBlockRef(ino, index, { id: last.id, length: within }, last)
      }
    }
    return Math.max(0, blocks)
  }

  private chunkSize = 0
  setChunkSize (n: number): void { this.chunkSize = n }
  private chunkSizeOf (): number {
    if (!this.chunkSize) throw fail('EINVAL', 'chunk size not set')
    return this.chunkSize
  }

  // Sets a file's whole block map; returns the number of stored blocks.
  replaceBlocks (ino: number, blocks: Array<{ index: number, id: Buffer, length: number }>): number {
    const old = new Map<number, BlockRef>()
    for (const index of this.tree.blockIndexes(ino)) {
      const b = this.tree.getBlock(ino, index)
      if (b) old.set(index, b)
    }
    for (const b of blocks) {
      this.refs.incref(b.id, b.length)
      this.tree.putBlockRef(ino, b.index, { id: b.id, length: b.length }, old.get(b.index))
    }
    const keep = new Set(blocks.map(b => b.index))
    for (const [index, b] of old) {
      if (!keep.has(index)) this.tree.removeBlockRef(ino, index, b)
      this.refs.decref(b.id)
    }
    return blocks.length
  }

  // Removes an inode with its block map (the merged view no longer has it).
  purge (ino: number): void {
    const a = this.tree.getAttrs(ino)
    if (a) this.truncateBlocks(ino, 0, a.blocks)
    this.tree.removeInode(ino, a)
  }

  private touchDir (dir: number, ms: number, nlinkDelta: number): void {
    const a = this.tree.getAttrs(dir)
    if (!a) return
    this.tree.putInode(dir, { ...a, nlink: a.nlink + nlinkDelta, mtime: ms, ctime: ms })
  }

  private mustAttrs (ino: number): InodeAttrs {
    const a = this.tree.getAttrs(ino)
    if (!a) throw fail('ENOENT', `inode ${ino} is missing`)
    return a
  }
}

export function isDir (mode: number): boolean {
  return (mode & S_IFMT) === S_IFDIR
}
