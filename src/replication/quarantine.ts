import type { LmdbStore } from '../store/lmdb-store.js'

const PREFIX = 'quar:'
// Kept aside at most: a hostile member cannot fill the disk through it.
export const QUARANTINE_MAX_RECORDS = 4096
export const QUARANTINE_MAX_BYTES = 64 * 1024 * 1024

// Namespace records whose signer is not a member in good standing here
// (uncertified, or revoked before them): refused, not applied, not relayed,
// and kept aside in the store's `sys` database, bounded. A record of an
// identity whose certificate had not reached us yet (it travels beside the
// records, not with them) is taken back when the certificate comes.
export class Quarantine {
  private count = 0
  private bytes = 0
  refused = 0 // records refused this run (kept or not)
  overflow = 0 // refused and not kept: the quarantine was full

  constructor (private readonly store: LmdbStore) {
    for (const { value } of store.sys.getRange({ start: Buffer.from(PREFIX), end: Buffer.from(PREFIX + '~') })) {
      this.count++
      this.bytes += (value as Buffer).length
    }
  }

  get held (): number { return this.count }

  // Call inside a transaction.
  put (member: string, seq: number, record: Buffer): void {
    this.refused++
    const key = keyOf(member, seq)
    if (this.store.sys.getBinary(key) !== undefined) return
    if (this.count >= QUARANTINE_MAX_RECORDS || this.bytes + record.length > QUARANTINE_MAX_BYTES) { this.overflow++; return }
    this.store.sys.putSync(key, record)
    this.count++
    this.bytes += record.length
  }

  // Takes out every record kept of `member` (its certificate came).
  release (member: string): Buffer[] {
    const out: Buffer[] = []
    this.store.txn(() => {
      for (const { key, value } of this.store.sys.getRange({ start: keyOf(member, 0), end: keyOf(member, Number.MAX_SAFE_INTEGER) })) {
        out.push(Buffer.from(value as Buffer))
        this.store.sys.removeSync(key as Buffer)
        this.count--
        this.bytes -= (value as Buffer).length
      }
    })
    return out
  }
}

function keyOf (member: string, seq: number): Buffer {
  return Buffer.from(`${PREFIX}${member}:${seq.toString(16).padStart(16, '0')}`)
}
