import { readdir, stat, statfs } from 'node:fs/promises'
import { volumeStatFs } from './volume/space.js'
import { resolve } from 'node:path'
import { Volume } from './volume/volume.js'
import { readVolumeFile } from './volume/volume-file.js'
import { DataDirLock } from './volume/data-dir-lock.js'
import { Vfs } from './vfs/vfs.js'
import { isMounted } from './fuse/unmount.js'
import { MountSession } from './mount-session.js'
import { fail, isDisktroError } from './errors.js'
import type { Config } from './config.js'
import { ControlServer } from './api/control-server.js'
import { volumeStats } from './volume/stats.js'
import { storeStats } from './replication/chunk-service.js'
import { SwarmServices } from './swarm-services.js'
import { ReplicaState } from './replication/replica-state.js'
import { summaryOf } from './replication/replicator.js'
import { health } from './api/web/health.js'
import { readRevoked } from './volume/revoked.js'
import { spaceReport, type StatusReport } from './status-report.js'
import { Pinning } from './replication/pinning.js'
import { WebServer } from './api/web-server.js'
import { nodeBackend } from './api/web-backend.js'
import { Scrubber } from './replication/scrubber.js'
import { ChunkVerifier } from './chunks/chunk-verifier.js'
import { EventLoopStalls } from './event-loop-stalls.js'
import { Membership } from './membership.js'

export interface NodeOptions {
  dataDir: string
  offline?: boolean // no swarm (tests of the single-machine layers)
  web?: boolean // serve the dashboard (default true)
  password: () => Promise<string>
  newPassword: () => Promise<string>
  config: Config
  log: (line: string) => void
}

export interface MountOptions extends NodeOptions {
  mountpoint: string
  allowOther: boolean
}

// The composition root: unlocks the volume, builds the layers and owns
// start-up and shutdown. Nothing below this file knows about the others.
export class DisktroNode {
  private mounted: MountSession | null = null
  private closing: Promise<void> | null = null
  private readonly unmountedListeners: Array<() => void> = []
  private control: ControlServer | null = null
  private web: WebServer | null = null
  private webError = 'this daemon was started without a dashboard'
  private readonly started = Date.now()
  replicaCount = 3
  repairAfter = 0
  scrubber: Scrubber | null = null
  private ownState: ReplicaState | null = null // the replication counts of a node without a swarm
  private membership: Membership | null = null

  private constructor (
    readonly volume: Volume,
    private readonly vfsOrNull: Vfs | null,
    readonly swarm: SwarmServices | null,
    readonly pinning: Pinning | null,
    private readonly lock: DataDirLock,
    private readonly log: (line: string) => void
  ) {}

  get vfs (): Vfs {
    if (!this.vfsOrNull) throw fail('EPERM', 'a storage-only member has no filesystem to mount: run `disktro serve`')
    return this.vfsOrNull
  }

  static async open (o: NodeOptions): Promise<DisktroNode> {
    const dataDir = resolve(o.dataDir)
    EventLoopStalls.shared() // measures from here: start-up stalls count too
    let created = false
    try {
      await readVolumeFile(dataDir)
    } catch (e) {
      if (!isDisktroError(e, 'NO_VOLUME')) throw e
      await Volume.create(dataDir, await o.newPassword(), o.config.chunkSize)
      created = true
    }
    const lock = await DataDirLock.acquire(dataDir)
    try {
      const volume = await Volume.open(dataDir, await o.password(), { maxStoreBytes: o.config.maxStoreBytes, log: o.log, compactEvery: o.config.compactEvery, compactMargin: o.config.compactMargin, metaCacheEntries: o.config.metaCacheEntries })
      if (created) o.log(`created a new volume in ${dataDir}`)
      await volume.recoverIfUnclean(o.log)
      const alone = o.offline === true || (o.config.bootstrap !== null && o.config.bootstrap.length === 0)
      const revoked = await readRevoked(dataDir)
      for (const id of revoked) volume.access?.shared?.exclude(id)
      const swarm = alone ? null : new SwarmServices(volume, o.config, o.log, revoked)
      const vfs = !volume.access ? null : new Vfs({
        ns: volume.access.ns,
        chunks: volume.chunks,
        pipeline: volume.access.pipeline,
        remote: swarm?.remote,
        chunkSize: volume.file.chunkSize,
        uid: process.getuid?.() ?? 0,
        gid: process.getgid?.() ?? 0,
        sync: () => volume.store.flushed(),
        log: o.log,
        // The volume's space and inodes (volume/space.ts): LMDB's own
        // statistics, a few microseconds, no walk.
        statfs: async () => {
          const s = await statfs(dataDir)
          const space = volume.store.space()
          return volumeStatFs({
            usedBytes: space.used,
            roomLeft: space.left,
            diskAvail: s.bavail * s.bsize,
            inodes: (volume.store.inodes.getStats() as { entryCount: number }).entryCount
          })
        }
      })
      const pinning = volume.access ? new Pinning(volume.store, volume.access.ns, o.log) : null
      if (pinning) swarm?.replicator.usePins(pinning)
      const node: DisktroNode = new DisktroNode(volume, vfs, swarm, pinning, lock, o.log)
      node.membership = new Membership(volume, swarm, o.log)
      node.replicaCount = o.config.replicaCount
      node.repairAfter = o.config.repairAfter
      if (!swarm) {
        node.ownState = new ReplicaState(volume.store, o.config.replicaCount, volume.file.role === 'storage', o.log)
        node.ownState.start()
      }
      node.scrubber = new Scrubber({
        store: volume.store,
        verifier: new ChunkVerifier(volume.access?.pipeline ?? null),
        remote: swarm?.remote ?? null,
        rate: o.config.scrubRate,
        interval: o.config.scrubInterval,
        log: o.log
      })
      try {
        node.control = new ControlServer(dataDir, req => node.answer(req), o.log)
        await node.control.open()
        node.membership.prepare()
        await swarm?.start()
        node.membership.start(revoked)
        node.scrubber.start()
        if (o.web !== false) await node.serveWeb(o.config)
      } catch (e) {
        await node.close()
        throw e
      }
      return node
    } catch (e) {
      await lock.release()
      throw e
    }
  }

  // The dashboard is a convenience: when it cannot listen, the node still
  // runs, and says why.
  private async serveWeb (config: Config): Promise<void> {
    const backend = nodeBackend({ volume: this.volume, vfs: this.vfsOrNull, swarm: this.swarm, pinning: this.pinning, replicaCount: config.replicaCount, status: () => this.status() })
    const web = new WebServer({ host: config.webHost, port: config.port, backend, log: this.log })
    try {
      await web.open()
      this.web = web
    } catch (e) {
      this.webError = `no web dashboard: ${(e as Error).message}`
      this.log(this.webError)
    }
  }

  private async answer (req: { cmd: string, [k: string]: unknown }): Promise<unknown> {
    if (req.cmd === 'status') return await this.status()
    if (req.cmd === 'revoke' && typeof req.id === 'string') {
      const r = this.membership!.revoke(req.id)
      return { revoked: r.id, signed: r.signed }
    }
    if (req.cmd === 'web') {
      if (!this.web) throw new Error(this.webError)
      return { url: this.web.url, origin: this.web.origin, token: this.web.token }
    }
    throw new Error(`unknown command ${req.cmd}`)
  }

  // Per-file detail (`status --files`) is read from disk by the CLI itself, streamed.
  async status (): Promise<StatusReport> {
    const v = this.volume
    // Changes of the last moments are counted first (they wait 20 ms for
    // their slice), for at most 300 ms: a status under a stream of changes
    // answers with what is counted and says how many wait.
    const state = this.swarm?.state ?? this.ownState
    await state?.settle(300)
    const replication = this.swarm?.replicator.summary() ?? summaryOf(this.ownState!)
    const peers = this.swarm ? await this.swarm.peerReports() : []
    const vs = v.access ? volumeStats(v) : null
    const report: StatusReport = {
      daemon: { running: true, pid: process.pid, uptimeSec: Math.round((Date.now() - this.started) / 1000) },
      dataDir: v.dataDir,
      node: { id: v.file.nodeId, role: v.file.role, ...(v.file.role === 'storage' && !v.roleKey.publicKey ? { trustsRoleClaims: true } : {}) },
      volume: vs ?? { volumeId: v.file.volumeId },
      store: storeStats(v.store),
      space: spaceReport(v.store.spaceStats(), vs?.logicalBytes ?? null),
      peers,
      replication,
      pins: this.pins(),
      repairAfter: this.repairAfter,
      health: health({ daemonRunning: true, role: v.file.role, replication, peers, repairAfterMs: this.repairAfter, machines: 1 + new Set([...peers.map(p => p.id), ...(this.swarm?.holderPeers() ?? [])]).size }),
      eventLoop: EventLoopStalls.shared().report()
    }
    if (this.swarm) report.audit = this.swarm.audit.report()
    if (this.swarm) report.storage = { quotaPerMember: v.store.quotaPerMember ?? Infinity, members: this.swarm.heldForOthers(), leases: this.swarm.leases.report() }
    if (this.scrubber) report.scrub = this.scrubber.report()
    const shared = v.access?.shared
    report.namespace = {
      members: v.oplog.allHeads().length,
      records: v.oplog.size,
      folded: v.oplog.folded,
      compactions: shared?.compactions ?? 0,
      lastCompaction: shared?.lastCompaction ?? null,
      compactionError: shared?.compactionError ?? null,
      conflicts: shared?.conflictsSeen ?? 0,
      peers: this.swarm?.nsSync.status() ?? [],
      quarantined: this.swarm?.nsSync.quarantine.held ?? 0,
      refused: this.swarm?.nsSync.quarantine.refused ?? 0
    }
    report.members = this.membership?.report() ?? []
    if (this.swarm) report.gc = this.swarm.gc.report()
    if (this.swarm?.evictor) report.cache = this.swarm.evictor.report()
    return report
  }

  private pins (): StatusReport['pins'] {
    const online = new Set(this.swarm?.network.connections().map(c => c.id) ?? [])
    return this.pinning?.reports(id => online.has(id)) ?? []
  }

  static async mount (o: MountOptions): Promise<DisktroNode> {
    const mountpoint = resolve(o.mountpoint)
    const st = await stat(mountpoint).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOTCONN') throw fail('ALREADY_MOUNTED', `${mountpoint} is a stale mount: run \`disktro unmount ${o.mountpoint}\` first`)
      throw fail('MOUNTPOINT_MISSING', `mountpoint ${mountpoint} does not exist`)
    })
    if (!st.isDirectory()) throw fail('MOUNTPOINT_MISSING', `mountpoint ${mountpoint} is not a directory`)
    if (await isMounted(mountpoint)) throw fail('ALREADY_MOUNTED', `${mountpoint} is already mounted`)
    // libfuse refuses too, but after the volume was opened, and in three lines of its own.
    if ((await readdir(mountpoint).catch(() => [])).length > 0) throw fail('MOUNTPOINT_NOT_EMPTY', `mountpoint ${mountpoint} is not empty: mount over an empty directory`)
    const file = await readVolumeFile(resolve(o.dataDir)).catch(() => null)
    if (file?.role === 'storage') throw fail('EPERM', 'this data dir is a storage-only member: it holds no key that reads the volume, so it cannot mount (run `disktro serve`)')
    const node = await DisktroNode.open(o)
    try {
      await node.attach(mountpoint, o.allowOther)
    } catch (e) {
      await node.close()
      throw e
    }
    return node
  }

  private async attach (mountpoint: string, allowOther: boolean): Promise<void> {
    this.mounted = new MountSession({
      volume: this.volume,
      vfs: this.vfs,
      scrubber: this.scrubber,
      log: this.log,
      closing: () => this.closing !== null,
      unmounted: () => { for (const fn of this.unmountedListeners) fn() }
    })
    await this.mounted.attach(mountpoint, allowOther)
  }

  // Called when the mount goes away without close(): unmounted from outside.
  onUnmounted (fn: () => void): void {
    this.unmountedListeners.push(fn)
  }

  close (): Promise<void> {
    if (!this.closing) this.closing = this.doClose()
    return this.closing
  }

  private async doClose (): Promise<void> {
    // First: uploads through the dashboard end while the VFS is still there.
    await this.web?.close().catch(e => this.log(`web dashboard: ${(e as Error).message}`))
    await this.mounted?.unmount()
    await this.vfsOrNull?.flushAll().then(() => { this.mounted?.finish() }, e => this.log(`flush: ${(e as Error).message}`))
    await this.control?.close()
    await this.scrubber?.close()
    this.ownState?.close()
    await this.swarm?.close()
    await this.volume.close()
    await this.lock.release()
  }
}
