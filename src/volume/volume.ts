import { join } from 'node:path'
import { LmdbStore } from '../store/lmdb-store.js'
import { privateDataDir, privateStore } from './private-dir.js'
import { LmdbNamespace } from '../meta/lmdb-namespace.js'
import { ChunkPipeline } from '../chunks/chunk-pipeline.js'
import { CryptoWorkers } from '../chunks/crypto-workers.js'
import { LmdbChunkStore } from '../chunks/lmdb-chunk-store.js'
import { deriveVolumeKeys, roleKeyOf, type VolumeKeys, type RoleKey } from '../crypto/volume-keys.js'
import { readVolumeFile, createVolumeFile, unlockVolumeFile, chunkIdHashOf, type VolumeFile, type NewVolume } from './volume-file.js'
import { Recovery } from './recovery.js'
import { fail } from '../errors.js'
import { OpLog } from '../meta/shared/op-log.js'
import { SharedNamespace } from '../meta/shared/shared-namespace.js'
import { MemberSet } from './member-set.js'
import { signingKeyOfSeed } from '../codec/op-record.js'

export interface VolumeOptions {
  maxStoreBytes: number
  readOnly?: boolean // a reader beside a running daemon (status)
  log?: (line: string) => void
  compactEvery?: number
  compactMargin?: number
  metaCacheEntries?: number
}

// What only a full member has: the keys that read data and names.
export interface FullAccess {
  keys: VolumeKeys
  ns: LmdbNamespace
  pipeline: ChunkPipeline
  shared: SharedNamespace | null // null for a read-only view beside a daemon
}

// An unlocked volume on this node: its store and chunk store, the swarm key,
// node seed, and for a full member the namespace and chunk pipeline.
export class Volume {
  private closed = false
  master: Buffer | null = null // full members: the key an invite passes on
  // The full-member role key: both halves on a full member, the public half
  // on a storage-only one (null when its join code predates it).
  roleKey: { publicKey: Buffer | null, secretKey: Buffer | null } = { publicKey: null, secretKey: null }
  private constructor (
    readonly dataDir: string,
    readonly file: VolumeFile,
    readonly swarmKey: Buffer,
    readonly seed: Buffer,
    readonly store: LmdbStore,
    readonly chunks: LmdbChunkStore,
    readonly access: FullAccess | null,
    private readonly readOnly: boolean,
    readonly oplog: OpLog, // every member's namespace log, as held here
    readonly members: MemberSet // the certified member set, as held here
  ) {
    oplog.signers = members
  }

  static async create (dataDir: string, password: string, chunkSize: number, join?: NewVolume): Promise<VolumeFile> {
    return await createVolumeFile(dataDir, password, chunkSize, join)
  }

  static async open (dataDir: string, password: string, opts: VolumeOptions): Promise<Volume> {
    await privateDataDir(dataDir, { create: false })
    const file = await readVolumeFile(dataDir)
    const secrets = await unlockVolumeFile(file, password)
    const store = LmdbStore.open(join(dataDir, 'store'), { mapSize: opts.maxStoreBytes })
    await privateStore(store.path)
    const chunks = new LmdbChunkStore(store)
    if (file.role === 'storage') {
      const rolePublicKey = file.fullRoleKey ? Buffer.from(file.fullRoleKey, 'hex') : null
      const members = new MemberSet(store, { volumeId: file.volumeId, rolePublicKey, selfId: file.nodeId })
      const v = new Volume(dataDir, file, secrets.key, secrets.seed, store, chunks, null, !!opts.readOnly, new OpLog(store), members)
      v.roleKey = { publicKey: rolePublicKey, secretKey: null }
      v.takeJoinCert()
      return v
    }
    const keys = deriveVolumeKeys(secrets.key)
    const ns = new LmdbNamespace(store, keys, file.nodeId, opts.metaCacheEntries)
    ns.setChunkSize(file.chunkSize)
    if (!opts.readOnly) ns.initRoot(process.getuid?.() ?? 0, process.getgid?.() ?? 0)
    const shared = opts.readOnly ? null : new SharedNamespace({ store, ns, keys, seed: secrets.seed, memberId: file.nodeId, chunkSize: file.chunkSize, log: opts.log ?? (() => {}), compactEvery: opts.compactEvery, compactMargin: opts.compactMargin, metaCacheEntries: opts.metaCacheEntries })
    const access = { keys, ns, pipeline: new ChunkPipeline(keys.data, keys.chunkId, new CryptoWorkers({ dataKey: keys.data, idKey: keys.chunkId, idHash: chunkIdHashOf(file) }, undefined, { path: store.path, readOnly: store.readOnly, plainBytes: file.chunkSize })), shared }
    const rk: RoleKey = roleKeyOf(secrets.key)
    const members = new MemberSet(store, { volumeId: file.volumeId, rolePublicKey: rk.publicKey, selfId: file.nodeId, issuer: { roleSecretKey: rk.secretKey!, nodeSecretKey: signingKeyOfSeed(secrets.seed).secretKey, nodeId: file.nodeId } })
    const v = new Volume(dataDir, file, keys.swarm, secrets.seed, store, chunks, access, !!opts.readOnly, shared?.log ?? new OpLog(store), members)
    v.master = secrets.key
    v.roleKey = rk
    v.takeJoinCert()
    return v
  }

  // The certificate the join code carried (volume.json) goes into the set
  // the first time the volume opens (a read-only view leaves it for later).
  private takeJoinCert (): void {
    if (this.readOnly || !this.file.memberCert || this.members.certOf(this.file.nodeId) !== null) return
    const { invalid } = this.members.addAll([Buffer.from(this.file.memberCert, 'hex')])
    if (invalid > 0) throw fail('VOLUME_DAMAGED', 'the member certificate from the join code does not verify')
  }

  get full (): FullAccess {
    if (!this.access) throw fail('EPERM', 'this node is a storage-only member: it holds no key that reads the volume')
    return this.access
  }

  // After an unclean shutdown: fix reference counts, drop chunks nothing
  // references and entries FUSE left for files unlinked while open.
  async recoverIfUnclean (log: (line: string) => void): Promise<void> {
    const clean = this.store.sysGet('clean')
    let refsFixed = 0
    if (this.access && (clean === undefined || clean[0] !== 1)) {
      const r = new Recovery(this.store, this.access.ns, this.access.keys).run()
      refsFixed = r.refsFixed
      if (clean !== undefined) {
        log(`recovered after unclean shutdown: ${r.refsFixed} reference counts fixed, ${r.chunksDropped} unreferenced chunks dropped, ${r.hiddenRemoved} stale hidden files removed`)
      }
    }
    // The volume's totals (status): counted once for a volume from before
    // them, and again when recovery changed reference counts.
    if (this.access) {
      const ns = this.access.ns
      const t0 = Date.now()
      let walked = true
      if (refsFixed > 0) ns.recount()
      else walked = ns.ensureCounters()
      if (walked) log(`volume totals counted in ${Date.now() - t0} ms`)
    }
    this.store.txn(() => this.store.sysPut('clean', Buffer.from([0])))
    this.access?.shared?.start()
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.access?.shared?.close()
    await this.access?.pipeline.close()
    if (!this.readOnly) this.store.txn(() => this.store.sysPut('clean', Buffer.from([1])))
    await this.store.flushed()
    await this.store.close()
  }
}
