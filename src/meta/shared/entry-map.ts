import type { LmdbStore } from '../../store/lmdb-store.js'
import { u64Key, readU64Key } from '../../codec/keys.js'

const ENTRY = 0x65 // 'e' + entry id -> ino (u64) + materialized version (utf8)
const DIRTY = 0x64 // 'd' + ino -> empty: local content not yet in a write op
const UNBORN = 0x63 // 'c' + ino -> parent ino (u64): a local file not yet in a create op

export interface Binding { ino: number, version: string }

// Which local inode shows which entry of the merged view, and which version
// of a file's content the local inode holds (a write's `base`). Entry ids are
// node ids (`<member>:<n>`) or, for conflict copies, `<node>@<version>`: no
// names, nothing secret. Kept in `nsmap`, loaded whole at start-up; writes go
// through inside the caller's transaction.
export class EntryMap {
  private readonly byEntry = new Map<string, Binding>()
  private readonly byIno = new Map<number, Set<string>>()
  readonly dirty = new Set<number>()
  // Files created here whose create op waits for their content (ino ->
  // parent ino): SharedNamespace emits one create carrying the manifest.
  readonly unborn = new Map<number, number>()

  constructor (private readonly store: LmdbStore) {
    for (const { key, value } of store.nsmap.getRange({})) {
      const k = key as Buffer
      const v = value as Buffer
      if (k[0] === ENTRY) this.remember(k.subarray(1).toString('utf8'), { ino: readU64Key(v), version: v.subarray(8).toString('utf8') })
      else if (k[0] === DIRTY) this.dirty.add(readU64Key(k, 1))
      else if (k[0] === UNBORN) this.unborn.set(readU64Key(k, 1), readU64Key(v))
    }
  }

  get (entry: string): Binding | undefined {
    return this.byEntry.get(entry)
  }

  entriesOf (ino: number): string[] {
    return [...this.byIno.get(ino) ?? []]
  }

  bind (entry: string, ino: number, version: string): void {
    const old = this.byEntry.get(entry)
    if (old && old.ino !== ino) this.byIno.get(old.ino)?.delete(entry)
    this.remember(entry, { ino, version })
    this.store.nsmap.putSync(entryKey(entry), Buffer.concat([u64Key(ino), Buffer.from(version, 'utf8')]))
  }

  unbind (entry: string): void {
    const old = this.byEntry.get(entry)
    if (!old) return
    this.byEntry.delete(entry)
    const set = this.byIno.get(old.ino)
    set?.delete(entry)
    if (set?.size === 0) this.byIno.delete(old.ino)
    this.store.nsmap.removeSync(entryKey(entry))
  }

  markDirty (ino: number): void {
    if (this.dirty.has(ino)) return
    this.dirty.add(ino)
    this.store.nsmap.putSync(dirtyKey(ino), Buffer.alloc(0))
  }

  clean (ino: number): void {
    if (!this.dirty.delete(ino)) return
    this.store.nsmap.removeSync(dirtyKey(ino))
  }

  markUnborn (ino: number, parent: number): void {
    if (this.unborn.get(ino) === parent) return
    this.unborn.set(ino, parent)
    this.store.nsmap.putSync(unbornKey(ino), u64Key(parent))
  }

  born (ino: number): void {
    if (!this.unborn.delete(ino)) return
    this.store.nsmap.removeSync(unbornKey(ino))
  }

  private remember (entry: string, b: Binding): void {
    this.byEntry.set(entry, b)
    let set = this.byIno.get(b.ino)
    if (!set) this.byIno.set(b.ino, set = new Set())
    set.add(entry)
  }
}

function entryKey (entry: string): Buffer {
  return Buffer.concat([Buffer.from([ENTRY]), Buffer.from(entry, 'utf8')])
}

function dirtyKey (ino: number): Buffer {
  return Buffer.concat([Buffer.from([DIRTY]), u64Key(ino)])
}

function unbornKey (ino: number): Buffer {
  return Buffer.concat([Buffer.from([UNBORN]), u64Key(ino)])
}
