import { open, type RootDatabase, type Database } from 'lmdb'
import { wrapStorageError } from '../errors.js'

type Db = Database<Buffer, Buffer>

// Transaction flags (lmdb-js TransactionFlags): commit synchronously so the
// change is visible and survives kill -9 at once, but let the fsync overlap;
// fsync(2) on a file awaits `flushed()` for power-loss durability.
const SYNC_COMMIT_NO_FLUSH_WAIT = 0x1 | 0x2 | 0x10000

export interface StoreOptions {
  mapSize?: number
  readOnly?: boolean
}

// The single LMDB environment of a volume and its databases (docs/format.md).
export class LmdbStore {
  readonly env: RootDatabase<Buffer, Buffer>
  readonly chunks: Db // chunk id -> sealed chunk record
  readonly refs: Db // chunk id -> u32 reference count
  readonly inodes: Db // ino -> sealed inode record
  readonly dirents: Db // parent ino + keyed hash of name -> sealed directory entry
  readonly blocks: Db // ino + block index -> sealed block ref
  readonly log: Db // hlc + node -> sealed change record
  readonly sys: Db // small plain bookkeeping: format, next inode, clean-shutdown flag
  private closed = false

  private constructor (env: RootDatabase<Buffer, Buffer>) {
    this.env = env
    const sub = (name: string): Db => env.openDB<Buffer, Buffer>({ name, encoding: 'binary', keyEncoding: 'binary', compression: false })
    this.chunks = sub('chunks')
    this.refs = sub('refs')
    this.inodes = sub('inodes')
    this.dirents = sub('dirents')
    this.blocks = sub('blocks')
    this.log = sub('log')
    this.sys = sub('sys')
  }

  static open (path: string, opts: StoreOptions = {}): LmdbStore {
    try {
      const env = open<Buffer, Buffer>({
        path,
        maxDbs: 12,
        encoding: 'binary',
        keyEncoding: 'binary',
        compression: false,
        mapSize: opts.mapSize,
        readOnly: opts.readOnly,
        noMemInit: false // never let freed pages leak stale bytes into the file
      })
      return new LmdbStore(env)
    } catch (e) {
      throw wrapStorageError(e, `cannot open store at ${path}`)
    }
  }

  // Runs `fn` in one write transaction and commits before returning.
  txn<T> (fn: () => T): T {
    try {
      return this.env.transactionSync(fn, SYNC_COMMIT_NO_FLUSH_WAIT as never)
    } catch (e) {
      throw wrapStorageError(e, 'store transaction failed')
    }
  }

  async flushed (): Promise<void> {
    await this.env.flushed
  }

  sysGet (key: string): Buffer | undefined {
    return this.sys.getBinary(Buffer.from(key))
  }

  sysPut (key: string, value: Buffer): void {
    this.sys.putSync(Buffer.from(key), value)
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.env.close()
  }
}
