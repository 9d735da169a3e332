import type { LmdbNamespace } from '../meta/lmdb-namespace.js'
import { ROOT_INO } from '../meta/namespace.js'
import type { LmdbStore } from '../store/lmdb-store.js'
import type { PinReport } from '../status-report.js'
import { Holders } from './holders.js'
import { PinStore, type Pin } from './pin-store.js'
import type { PinPolicy } from './replicator.js'

const S_IFMT = 0o170000
const S_IFDIR = 0o040000
const REBUILD_EVERY_MS = 1000

// Pins of files and folders to peers, and which chunks each pin covers. The
// replicator asks `pinnedTo(chunk)` for every chunk it places. The chunk map
// is rebuilt from the block maps after the tree changes, at most once a
// second: a chunk written meanwhile is pushed to its pinned peer by the
// replicator's look at pinned chunks every few seconds (`unplaced`).
export class Pinning implements PinPolicy {
  readonly pins: PinStore
  private readonly holders: Holders
  private byChunk = new Map<string, string[]>() // chunk hex -> pinned peers
  private byPin = new Map<string, Set<string>>() // ino/peer -> chunk hexes
  private dirty = true
  private builtAt = 0

  // readOnly: a reader beside the data dir (offline status) changes nothing.
  constructor (store: LmdbStore, private readonly ns: LmdbNamespace, private readonly log: (line: string) => void, private readonly readOnly = false) {
    this.pins = new PinStore(store)
    this.holders = new Holders(store)
    ns.onCommit(() => { this.dirty = true })
  }

  pinnedTo (chunkId: Buffer): string[] {
    if (this.dirty && Date.now() - this.builtAt >= REBUILD_EVERY_MS) this.rebuild()
    return this.byChunk.get(chunkId.toString('hex')) ?? []
  }

  // Pinned chunks some pinned peer is not listed as holding.
  unplaced (): Buffer[] {
    if (this.byChunk.size === 0 && !this.dirty) return []
    if (this.dirty && Date.now() - this.builtAt >= REBUILD_EVERY_MS) this.rebuild()
    const out: Buffer[] = []
    for (const [hex, peers] of this.byChunk) {
      const id = Buffer.from(hex, 'hex')
      const have = this.holders.get(id)
      if (peers.some(p => !have.includes(p))) out.push(id)
    }
    return out
  }

  // Returns false when the pin existed already.
  pin (ino: number, peer: string): boolean {
    const added = this.pins.add(ino, peer)
    if (added) this.rebuild()
    return added
  }

  unpin (ino: number, peer: string): boolean {
    const removed = this.pins.remove(ino, peer)
    if (removed) this.rebuild()
    return removed
  }

  // Every pin with its path and how many of its chunks the peer acknowledged.
  reports (online: (peer: string) => boolean): PinReport[] {
    if (this.dirty) this.rebuild()
    const pins = this.pins.list()
    const paths = pathsOf(this.ns, new Set(pins.map(p => p.ino)))
    return pins.map(p => {
      const chunks = this.byPin.get(pinId(p)) ?? new Set<string>()
      let held = 0
      for (const hex of chunks) if (this.holders.get(Buffer.from(hex, 'hex')).includes(p.peer)) held++
      return { path: paths.get(p.ino) ?? null, ino: p.ino, peer: p.peer, peerOnline: online(p.peer), chunks: chunks.size, held, created: p.created }
    })
  }

  // Pins of one inode (the Files view shows them per entry).
  pinsOf (ino: number): Pin[] {
    return this.pins.list().filter(p => p.ino === ino)
  }

  private rebuild (): void {
    this.dirty = false
    this.builtAt = Date.now()
    const byChunk = new Map<string, string[]>()
    const byPin = new Map<string, Set<string>>()
    for (const p of this.pins.list()) {
      if (!this.ns.getAttrs(p.ino)) {
        if (this.readOnly) continue
        // Inode numbers are never reused, so the pin of a deleted node is dead.
        this.pins.remove(p.ino, p.peer)
        this.log(`pin of inode ${p.ino} to ${p.peer.slice(0, 12)} removed: the file or folder is gone`)
        continue
      }
      const chunks = new Set<string>()
      this.collect(p.ino, chunks, new Set())
      byPin.set(pinId(p), chunks)
      for (const hex of chunks) {
        const peers = byChunk.get(hex)
        if (!peers) byChunk.set(hex, [p.peer])
        else if (!peers.includes(p.peer)) peers.push(p.peer)
      }
    }
    this.byChunk = byChunk
    this.byPin = byPin
  }

  private collect (ino: number, out: Set<string>, seen: Set<number>): void {
    if (seen.has(ino)) return
    seen.add(ino)
    const a = this.ns.getAttrs(ino)
    if (!a) return
    if ((a.mode & S_IFMT) === S_IFDIR) {
      for (const e of this.ns.readdir(ino)) this.collect(e.ino, out, seen)
      return
    }
    for (const index of this.ns.blockIndexes(ino)) {
      const ref = this.ns.getBlock(ino, index)
      if (ref) out.add(ref.id.toString('hex'))
    }
  }
}

function pinId (p: { ino: number, peer: string }): string {
  return `${p.ino}/${p.peer}`
}

// Paths of the given inodes, by walking the tree until all are found (the
// namespace keeps no parent links).
function pathsOf (ns: LmdbNamespace, wanted: Set<number>): Map<number, string> {
  const found = new Map<number, string>()
  if (wanted.has(ROOT_INO)) found.set(ROOT_INO, '/')
  const queue: Array<{ ino: number, path: string }> = [{ ino: ROOT_INO, path: '' }]
  for (let i = 0; i < queue.length && found.size < wanted.size; i++) {
    const { ino, path } = queue[i]
    for (const e of ns.readdir(ino)) {
      const p = `${path}/${e.name}`
      if (wanted.has(e.ino) && !found.has(e.ino)) found.set(e.ino, p)
      const a = ns.getAttrs(e.ino)
      if (a && (a.mode & S_IFMT) === S_IFDIR) queue.push({ ino: e.ino, path: p })
    }
  }
  return found
}
