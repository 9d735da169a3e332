import { EventEmitter } from 'node:events'
import HyperDHT from 'hyperdht'
import Hyperswarm from 'hyperswarm'
import { fail } from '../errors.js'
import type { Role } from '../codec/wire.js'
import { topicFor } from './capability.js'
import { PeerConnection, type MemberGate } from './peer-connection.js'
import { widenSocketBuffers } from './socket-buffers.js'

export type { Role }

export interface PeerInfo {
  id: string // hex Noise public key
  role: Role
  address: string
  online: boolean
  lastSeen: number // ms since the epoch
  rttMs: number | null
}

export interface PeerNetworkOptions {
  swarmKey: Buffer // the volume's swarm subkey: topic and capability derive from it
  keySeed: Buffer // seed of this node's Noise key pair; the node id is its public key
  roleKey?: { publicKey: Buffer | null, secretKey: Buffer | null } // peer-connection.ts
  role: Role
  bootstrap?: Array<{ host: string, port: number }> // undefined: hyperdht's public bootstrap nodes
  dhtHost?: string // default 127.0.0.1 when every bootstrap node is loopback, else 0.0.0.0
  heartbeatInterval: number // ms
  log: (line: string) => void
  revoked?: Iterable<string> // node ids (hex public keys) never to talk to
  members?: MemberGate // peer-connection.ts: connections need a member certificate
}

// A node keeps looking for peers, backing off to 30 s: hyperswarm alone
// re-queries only every ~10 minutes, so two nodes whose first queries
// crossed, or a node that started offline, would otherwise stay apart that long.
const REDISCOVER_FIRST_MS = 1000
const REDISCOVER_MAX_MS = 30_000
// Leaving the DHT politely (unannouncing) can hang when it is unreachable.
// Peers notice a node that left without unannouncing by its silence
// (heartbeats), so Ctrl-C need not wait long for it: offline, `disktro mount`
// exits about this long after SIGTERM.
const CLOSE_GRACE_MS = 1000

// Finds the volume's peers on the Hyperswarm DHT and hands out authenticated
// PeerConnections. Events: 'peer' (conn: PeerConnection) when a peer has
// proved the swarm key, again if it reconnects; 'peer-closed' (id) when its
// connection ends or it falls silent for three heartbeats.
export class PeerNetwork extends EventEmitter {
  readonly id: string
  private readonly keyPair: HyperDHT.KeyPair
  private readonly topic: Buffer
  private swarm: Hyperswarm | null = null
  private discovery: Hyperswarm.Discovery | null = null
  private readonly open = new Map<string, PeerConnection>()
  private readonly handshaking = new Set<PeerConnection>()
  private readonly seen = new Map<string, PeerInfo>()
  // Keys that answered with a wrong proof: hyperswarm's firewall then refuses
  // them before any handshake, and stops redialling them, for this run.
  private readonly banned = new Set<string>()
  private rediscoverTimer: NodeJS.Timeout | null = null
  private rediscoverDelay = REDISCOVER_FIRST_MS
  private closing: Promise<void> | null = null

  constructor (private readonly opts: PeerNetworkOptions) {
    super()
    if (opts.swarmKey.length !== 32) throw fail('EINVAL', 'swarm key must be 32 bytes')
    if (opts.keySeed.length !== 32) throw fail('EINVAL', 'key seed must be 32 bytes')
    if (!(opts.heartbeatInterval > 0)) throw fail('EINVAL', 'heartbeat interval must be positive')
    this.keyPair = HyperDHT.keyPair(opts.keySeed)
    this.id = this.keyPair.publicKey.toString('hex')
    this.topic = topicFor(opts.swarmKey)
    for (const id of opts.revoked ?? []) this.banned.add(id.toLowerCase())
  }

  // Revokes a member: its connection closes now and it is never dialled or
  // accepted again by this node (Hyperswarm's firewall runs before the
  // handshake, so it gets nothing, not even our HELLO).
  revoke (id: string): void {
    this.banned.add(id.toLowerCase())
    this.open.get(id.toLowerCase())?.close('revoked')
    for (const c of this.handshaking) if (c.id === id.toLowerCase()) c.close('revoked')
  }

  // Resolves at once: discovery runs in the background and keeps retrying, so
  // a node with no reachable bootstrap simply runs alone until it finds peers.
  async start (): Promise<void> {
    if (this.swarm !== null || this.closing !== null) return
    const host = this.opts.dhtHost ?? defaultHost(this.opts.bootstrap)
    const dht = new HyperDHT({ bootstrap: this.opts.bootstrap, host, keyPair: this.keyPair })
    const swarm = new Hyperswarm({
      dht,
      keyPair: this.keyPair,
      firewall: (remotePublicKey: Buffer) => this.banned.has(remotePublicKey.toString('hex'))
    })
    this.swarm = swarm
    swarm.on('connection', conn => this.onconnection(conn))
    this.discovery = swarm.join(this.topic, { client: true, server: true, onerror: e => this.discoveryFailed(e) })
    this.scheduleRediscover()
    this.log(`node ${this.id.slice(0, 8)} (${this.opts.role}) joined topic ${this.topic.toString('hex').slice(0, 8)}, DHT on ${host}`)
  }

  connections (): PeerConnection[] {
    return [...this.open.values()]
  }

  peers (): PeerInfo[] {
    return [...this.seen.values()].map(p => {
      const c = this.open.get(p.id)
      return c ? { ...p, online: true, role: c.role, lastSeen: c.lastSeen, rttMs: c.rttMs } : { ...p }
    })
  }

  close (): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  private async shutdown (): Promise<void> {
    if (this.rediscoverTimer) clearTimeout(this.rediscoverTimer)
    for (const c of [...this.handshaking, ...this.open.values()]) c.close('network closing')
    const swarm = this.swarm
    if (swarm === null) return
    // No DHT node ever answered (offline, a node on its own): nobody to
    // unannounce to, so no grace period (it cost every offline stop 1 s).
    const alone = (swarm.dht as unknown as { table?: { size?: number } }).table?.size === 0
    const polite = swarm.destroy().then(() => true, () => false)
    if (!alone && await within(polite, CLOSE_GRACE_MS)) return
    // Hyperswarm waits for its announce to finish before closing, and offline
    // that waits out every query's retries (seconds). Destroying the DHT under
    // it fails those queries at once; destroy({ force }) alone does not.
    if (!alone) this.log('DHT did not close in time; forcing')
    await swarm.dht.destroy({ force: true }).catch(() => {})
    if (!await within(polite, CLOSE_GRACE_MS)) this.log('swarm still closing; giving up on it')
  }

  private onconnection (stream: HyperDHT.SecretStream): void {
    if (this.closing !== null) {
      stream.on('error', () => {})
      return stream.destroy()
    }
    widenSocketBuffers(stream)
    this.discoveryError = null // a peer found us or we it: log the next lookup failure
    let conn: PeerConnection
    try {
      conn = new PeerConnection(stream, { swarmKey: this.opts.swarmKey, role: this.opts.role, roleKey: this.opts.roleKey, members: this.opts.members, heartbeatInterval: this.opts.heartbeatInterval, log: this.opts.log })
    } catch (e) {
      this.log(`dropping connection: ${e instanceof Error ? e.message : String(e)}`)
      stream.on('error', () => {})
      return stream.destroy()
    }
    this.handshaking.add(conn)
    conn.on('rejected', () => this.banned.add(conn.id))
    conn.on('open', () => this.onopen(conn))
    conn.on('close', () => this.onclose(conn))
  }

  private onopen (conn: PeerConnection): void {
    this.handshaking.delete(conn)
    // Hyperswarm keeps one connection per peer, but while it swaps a stale
    // one for a fresh one both can be seen briefly: the newer wins.
    const old = this.open.get(conn.id)
    this.open.set(conn.id, conn)
    if (old !== undefined) old.close('replaced by a newer connection')
    this.seen.set(conn.id, { id: conn.id, role: conn.role, address: conn.address, online: true, lastSeen: conn.lastSeen, rttMs: conn.rttMs })
    this.rediscoverDelay = REDISCOVER_FIRST_MS
    this.scheduleRediscover()
    this.log(`peer ${conn.id.slice(0, 8)} (${conn.role}, ${conn.address}) authenticated`)
    this.emit('peer', conn)
  }

  private onclose (conn: PeerConnection): void {
    this.handshaking.delete(conn)
    const info = this.seen.get(conn.id)
    if (info !== undefined && conn.lastSeen > 0) Object.assign(info, { lastSeen: conn.lastSeen, rttMs: conn.rttMs })
    if (this.open.get(conn.id) !== conn) return
    this.open.delete(conn.id)
    if (info !== undefined) info.online = false
    this.emit('peer-closed', conn.id)
    if (this.open.size === 0) this.scheduleRediscover()
  }

  private scheduleRediscover (): void {
    if (this.closing !== null || this.rediscoverTimer !== null) return
    this.rediscoverTimer = setTimeout(() => {
      this.rediscoverTimer = null
      // Keep looking even with peers: nodes that start together can miss each
      // other's first announce, and Hyperswarm alone searches again only
      // every ~10 minutes. A lookup every <= 30 s is cheap.
      if (this.closing !== null || this.discovery === null) return
      this.discovery.refresh().catch(e => this.discoveryFailed(e))
      this.rediscoverDelay = Math.min(this.rediscoverDelay * 2, REDISCOVER_MAX_MS)
      this.scheduleRediscover()
    }, this.rediscoverDelay)
    this.rediscoverTimer.unref()
  }

  // A failing lookup is logged once, not every round: offline, a single
  // node is a valid volume, and its log filled with the same line every
  // 10 s. A different error is logged, and so is the same one again once a
  // peer connected in between (onconnection).
  private discoveryError: string | null = null
  discoveryRepeats = 0 // failures not logged, for tests

  private discoveryFailed (e: unknown): void {
    if (this.closing !== null) return // lookups cut short by close()
    const why = String(e)
    if (why === this.discoveryError) {
      this.discoveryRepeats++
      return
    }
    this.discoveryError = why
    this.log(`discovery: ${why} (logged once while it repeats)`)
  }

  private log (line: string): void {
    this.opts.log(`net: ${line}`)
  }

  override on (event: 'peer', listener: (conn: PeerConnection) => void): this
  override on (event: 'peer-closed', listener: (id: string) => void): this
  override on (event: string | symbol, listener: (...args: any[]) => void): this {
    return super.on(event, listener)
  }
}

async function within (p: Promise<boolean>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<boolean>(resolve => { timer = setTimeout(() => resolve(false), ms) })
  try {
    return await Promise.race([p, late])
  } finally {
    clearTimeout(timer)
  }
}

function defaultHost (bootstrap: PeerNetworkOptions['bootstrap']): string {
  const loopback = (h: string): boolean => h === 'localhost' || h === '::1' || /^127\./.test(h)
  return bootstrap !== undefined && bootstrap.length > 0 && bootstrap.every(n => loopback(n.host)) ? '127.0.0.1' : '0.0.0.0'
}
