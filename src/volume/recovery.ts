import type { LmdbStore } from '../store/lmdb-store.js'
import type { LmdbNamespace } from '../meta/lmdb-namespace.js'
import type { VolumeKeys } from '../crypto/volume-keys.js'
import { open } from '../crypto/aead.js'
import { decodeBlockRef } from '../codec/block-record.js'
import { decodeDirent } from '../codec/dirent-record.js'
import { readU64Key } from '../codec/keys.js'
import { encodeRefs, refsCount, refsLength } from '../codec/refs-record.js'

export interface RecoveryReport {
  refsFixed: number
  chunksDropped: number
  hiddenRemoved: number
}

// Rebuilds chunk reference counts from the block maps, the ground truth, and
// collects what a crash can leave behind: chunks stored ahead of the change
// that would have referenced them, and ".fuse_hidden" names of files that
// were unlinked while open. Runs in one transaction: all or nothing.
export class Recovery {
  constructor (private readonly store: LmdbStore, private readonly ns: LmdbNamespace, private readonly keys: VolumeKeys) {}

  run (): RecoveryReport {
    const report: RecoveryReport = { refsFixed: 0, chunksDropped: 0, hiddenRemoved: 0 }
    const hidden: Array<{ parent: number, name: string }> = []
    for (const { key, value } of this.store.dirents.getRange({})) {
      const d = decodeDirent(open(this.keys.meta, value as Buffer, key as Buffer))
      if (d.name.startsWith('.fuse_hidden')) hidden.push({ parent: readU64Key(key as Buffer), name: d.name })
    }
    for (const h of hidden) {
      this.ns.commit({ op: 'unlink', parent: h.parent, name: h.name, ctime: Date.now() })
      report.hiddenRemoved++
    }
    this.store.txn(() => {
      const counts = new Map<string, number>()
      for (const { key, value } of this.store.blocks.getRange({})) {
        const ref = decodeBlockRef(open(this.keys.meta, value as Buffer, key as Buffer))
        const hex = ref.id.toString('hex')
        counts.set(hex, (counts.get(hex) ?? 0) + 1)
      }
      for (const { key, value } of this.store.refs.getRange({})) {
        const want = counts.get((key as Buffer).toString('hex')) ?? 0
        if (want === 0) {
          report.refsFixed++
          this.store.refs.removeSync(key as Buffer)
          this.store.markDirty(key as Buffer) // its replication is recounted
        }
      }
      for (const [hex, n] of counts) {
        const id = Buffer.from(hex, 'hex')
        const cur = this.store.refs.getBinary(id)
        if (!cur || refsCount(cur) !== n) {
          report.refsFixed++
          if (!cur) this.store.markDirty(id)
          // The length it counts for is set again by the recount that follows (volume.ts).
          this.store.refs.putSync(id, encodeRefs(n, cur ? refsLength(cur) ?? 0 : 0))
        }
      }
      for (const key of this.store.chunks.getKeys({})) {
        if (!counts.has((key as Buffer).toString('hex')) && !this.store.foreign.doesExist(key as Buffer)) {
          this.store.removeChunkSync(key as Buffer)
          report.chunksDropped++
        }
      }
    })
    return report
  }
}
