import type { Volume } from './volume/volume.js'
import type { SwarmServices } from './swarm-services.js'
import { Holders } from './replication/holders.js'
import type { MemberInfo } from './volume/member-set.js'

export interface MemberReport extends MemberInfo {
  self: boolean
  online: boolean
  lastSeen: number | null // ms since the epoch; null: not seen this run
}

// What a revocation does on this node, wherever it was made: the identity's
// connections are refused (the network bans it; a fresh identity has no
// certificate anyway), its later records are quarantined (member-set.ts
// signerOk), it no longer holds back compaction, and its copies stop
// counting, so repair starts. Key rotation (new swarm key and topic, new
// subkeys for what is written after) is not done yet: `rotateKeysAfter` is
// where it goes (docs/security.md, "Revoked member").
export class Membership {
  private readonly applied = new Set<string>()

  constructor (private readonly volume: Volume, private readonly swarm: SwarmServices | null, private readonly log: (line: string) => void) {
    volume.members.onRecord(r => { if (r.kind === 'revoke') this.apply(r.subject) })
  }

  // Before the network starts: a full member's first run with certificates
  // certifies itself (and remembers its storage-only holders, member-set.ts
  // migrate), so its first connections already carry its certificate.
  prepare (): void {
    if (!this.volume.store.readOnly && this.volume.members.migrate(() => new Holders(this.volume.store).peers())) this.log(`members: certified this node (${this.volume.file.nodeId.slice(0, 12)}) as a full member`)
  }

  // Once the swarm runs: bans a previous version recorded locally
  // (revoked.json) become signed revocations; every revocation held is applied.
  start (legacy: string[]): void {
    const m = this.volume.members
    for (const id of legacy) {
      if (m.canIssue && m.standing(id) !== 'revoked') m.revoke(id, this.volume.oplog.headOf(id))
      this.apply(id)
    }
    for (const info of m.members()) if (info.state === 'revoked') this.apply(info.id)
  }

  // `disktro revoke`: a signed revocation every member applies (full
  // members only; a storage-only member can only ban locally).
  revoke (idOrPrefix: string): { id: string, signed: boolean } {
    const m = this.volume.members
    const id = m.resolve(idOrPrefix)
    if (id === this.volume.file.nodeId) throw Object.assign(new Error('a member cannot revoke itself'), { code: 'EINVAL' })
    if (!m.canIssue) {
      this.apply(id)
      return { id, signed: false }
    }
    if (m.standing(id) !== 'revoked') m.revoke(id, this.volume.oplog.headOf(id))
    return { id, signed: true }
  }

  report (): MemberReport[] {
    const peers = new Map((this.swarm?.network.peers() ?? []).map(p => [p.id, p]))
    return this.volume.members.members().map(info => {
      const self = info.id === this.volume.file.nodeId
      const p = peers.get(info.id)
      return { ...info, self, online: self || (p?.online ?? false), lastSeen: self ? Date.now() : p?.lastSeen || null }
    })
  }

  private apply (id: string): void {
    if (id === this.volume.file.nodeId) {
      this.log('members: THIS NODE WAS REVOKED: the other members refuse its connections and its changes')
      return
    }
    if (this.applied.has(id)) return
    this.applied.add(id)
    this.swarm?.network.revoke(id)
    this.volume.access?.shared?.exclude(id)
    void this.swarm?.audit.dropAllOf(id).then(n => { if (n > 0) this.log(`revoked ${id.slice(0, 12)}: its ${n} copies no longer count`) })
    this.rotateKeysAfter(id)
  }

  // The seam for key rotation on revoke (issue #28): not done yet. The
  // revoked member keeps the keys it had; docs/security.md says what that
  // leaves open.
  private rotateKeysAfter (id: string): void {
    this.log(`members: ${id.slice(0, 12)} revoked; the volume's keys are not rotated yet (docs/security.md)`)
  }
}
