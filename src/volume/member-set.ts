import type { LmdbStore } from '../store/lmdb-store.js'
import {
  decodeMemberRecord, encodeMemberRecord, verifyMemberRecord,
  type Issuer, type MemberCert, type MemberRecord, type MemberRevocation, type MemberRole
} from '../codec/member-record.js'
import { fail } from '../errors.js'

const CERT_PREFIX = 'mcert:'
const REVOKE_PREFIX = 'mrevk:'
// Storage-only members that held our chunks when this node first ran with
// certificates: a full member certifies them on first contact (migration).
const GRANDFATHERED = 'members:grandfathered'
// At most this many records are taken from one message (a set of members is
// small; this bounds what a hostile peer makes us verify).
export const MAX_MEMBER_RECORDS = 4096

export type Standing = 'active' | 'revoked' | 'unknown'

export interface MemberInfo {
  id: string
  role: MemberRole | null // null: only a revocation is known
  state: 'active' | 'revoked'
  issuer: string
  since: number // ms: when its certificate (or revocation) was issued
  upTo?: number // revoked: its records up to this seq count
}

interface Entry { cert?: MemberCert, certRaw?: Buffer, revoke?: MemberRevocation, revokeRaw?: Buffer }

// The volume's certified member set as this node holds it (docs/security.md,
// "Certified members"): certificates and revocations, each checked under the
// full-role public key, kept in the store's `sys` database (a few hundred
// bytes per member; the set is also held in memory, it is small) and
// gossiped to every peer (swarm-services.ts). A revocation is final and wins
// over any certificate of the same identity.
//
// A storage-only member whose join code predates role keys (version < 3)
// cannot check a record: `checking` is false, it accepts every signer, as
// before (docs/security.md says so).
export class MemberSet {
  private readonly entries = new Map<string, Entry>()
  private readonly listeners: Array<(r: MemberRecord, raw: Buffer) => void> = []
  private readonly grandfathered: Set<string>

  constructor (private readonly store: LmdbStore, private readonly o: { volumeId: string, rolePublicKey: Buffer | null, selfId: string, issuer?: Issuer | null }) {
    for (const prefix of [CERT_PREFIX, REVOKE_PREFIX]) {
      for (const { value } of store.sys.getRange({ start: Buffer.from(prefix), end: Buffer.from(prefix + '~') })) {
        try { this.note(decodeMemberRecord(value as Buffer), Buffer.from(value as Buffer)) } catch { /* a damaged entry: peers send it again */ }
      }
    }
    const g = store.sysGet(GRANDFATHERED)
    this.grandfathered = new Set(g ? JSON.parse(g.toString('utf8')) as string[] : [])
  }

  get checking (): boolean { return this.o.rolePublicKey !== null }
  get canIssue (): boolean { return this.o.issuer != null }

  // Called for every record new to this node (a certificate or a revocation).
  onRecord (fn: (r: MemberRecord, raw: Buffer) => void): void {
    this.listeners.push(fn)
  }

  standing (id: string): Standing {
    const e = this.entries.get(id)
    if (e?.revoke) return 'revoked'
    return e?.cert ? 'active' : 'unknown'
  }

  roleOf (id: string): MemberRole | null {
    const e = this.entries.get(id)
    return e?.revoke ? null : e?.cert?.role ?? null
  }

  // Whether a namespace record (member, seq) comes from a signer in good
  // standing: certified, or revoked after it (seq within the revocation's upTo).
  signerOk (member: string, seq: number): 'ok' | 'unknown' | 'revoked' {
    if (!this.checking) return 'ok'
    const e = this.entries.get(member)
    if (e?.revoke) return e.cert && seq <= e.revoke.upTo ? 'ok' : 'revoked'
    return e?.cert ? 'ok' : 'unknown'
  }

  // A snapshot may be made by a full member in good standing only.
  isActiveFull (id: string): boolean {
    if (!this.checking) return true
    return this.standing(id) === 'active' && this.roleOf(id) === 'full'
  }

  certOf (id: string): Buffer | null {
    return this.entries.get(id)?.certRaw ?? null
  }

  // Every record held (what a new peer is sent).
  all (): Buffer[] {
    const out: Buffer[] = []
    for (const e of this.entries.values()) {
      if (e.certRaw) out.push(e.certRaw)
      if (e.revokeRaw) out.push(e.revokeRaw)
    }
    return out
  }

  members (): MemberInfo[] {
    const out: MemberInfo[] = []
    for (const [id, e] of this.entries) {
      const made = e.revoke ?? e.cert!
      out.push({ id, role: e.cert?.role ?? null, state: e.revoke ? 'revoked' : 'active', issuer: made.issuer, since: made.issuedAt, ...(e.revoke ? { upTo: e.revoke.upTo } : {}) })
    }
    return out.sort((a, b) => a.since - b.since || a.id.localeCompare(b.id))
  }

  // Checks and stores records from anywhere (a peer, a join code); returns
  // those new to us. Invalid ones are counted, never thrown: the carrier may
  // be relaying in good faith (a record is checked on its own signatures).
  addAll (records: Buffer[]): { added: Buffer[], invalid: number } {
    const added: Buffer[] = []
    let invalid = 0
    if (!this.checking) return { added, invalid }
    const fresh: Array<{ r: MemberRecord, raw: Buffer }> = []
    this.store.txn(() => {
      for (const b of records.slice(0, MAX_MEMBER_RECORDS)) {
        let r: MemberRecord
        try { r = verifyMemberRecord(b, this.o.rolePublicKey!, this.o.volumeId) } catch { invalid++; continue }
        const raw = Buffer.from(b)
        if (!this.note(r, raw)) continue
        this.store.sysPut((r.kind === 'cert' ? CERT_PREFIX : REVOKE_PREFIX) + r.subject, raw)
        added.push(raw)
        fresh.push({ r, raw })
      }
    })
    for (const { r, raw } of fresh) for (const fn of this.listeners) fn(r, raw)
    return { added, invalid }
  }

  // --- issuing (full members: they hold the role secret key) ---

  // A certificate made without storing it (`disktro invite` beside a
  // running daemon: the new member presents it, and it spreads from there).
  certificateFor (subject: string, role: MemberRole): Buffer {
    return encodeMemberRecord({ kind: 'cert', role, volumeId: this.o.volumeId, subject, issuer: this.issuer.nodeId, issuedAt: Date.now() }, this.issuer)
  }

  issueCert (subject: string, role: MemberRole): Buffer {
    const raw = encodeMemberRecord({ kind: 'cert', role, volumeId: this.o.volumeId, subject, issuer: this.issuer.nodeId, issuedAt: Date.now() }, this.issuer)
    this.addAll([raw])
    return raw
  }

  // `upTo`: the revoker's head of the subject's log: records it already has
  // stay valid everywhere, so every member converges on the same tree.
  revoke (subject: string, upTo: number): Buffer {
    const raw = encodeMemberRecord({ kind: 'revoke', volumeId: this.o.volumeId, subject, issuer: this.issuer.nodeId, issuedAt: Date.now(), upTo }, this.issuer)
    this.addAll([raw])
    return raw
  }

  // A full member's first run with certificates: it certifies itself, and
  // remembers the storage-only peers that held its chunks, to certify them
  // when they connect (they cannot certify themselves).
  migrate (holderPeers: () => string[]): boolean {
    if (!this.canIssue || this.certOf(this.o.selfId) !== null) return false
    if (this.store.sysGet(GRANDFATHERED) === undefined) {
      const peers = holderPeers().filter(p => p !== this.o.selfId)
      for (const p of peers) this.grandfathered.add(p)
      this.store.txn(() => this.store.sysPut(GRANDFATHERED, Buffer.from(JSON.stringify(peers), 'utf8')))
    }
    this.issueCert(this.o.selfId, 'full')
    return true
  }

  // A storage-only peer without a certificate that we certify now
  // (migration), or null.
  certifyGrandfathered (id: string): Buffer | null {
    if (!this.canIssue || !this.grandfathered.has(id) || this.standing(id) !== 'unknown') return null
    return this.issueCert(id, 'storage')
  }

  // Resolves a node id or a unique prefix of one (8 hex characters at least).
  resolve (idOrPrefix: string): string {
    const p = idOrPrefix.trim().toLowerCase()
    if (/^[0-9a-f]{64}$/.test(p)) return p
    if (!/^[0-9a-f]{8,63}$/.test(p)) throw fail('EINVAL', 'name a member by its node id or a prefix of at least 8 hex characters (see `disktro status`)')
    const hits = [...this.entries.keys()].filter(id => id.startsWith(p))
    if (hits.length === 0) throw fail('ENOENT', `no member ${p}`)
    if (hits.length > 1) throw fail('EINVAL', `${p} names ${hits.length} members; give more of the id`)
    return hits[0]
  }

  private get issuer (): Issuer {
    if (!this.o.issuer) throw fail('EPERM', 'only a full member can certify or revoke members')
    return this.o.issuer
  }

  // Whether the record changes what we know: the first certificate of an
  // identity, or its first (or a stricter) revocation.
  private note (r: MemberRecord, raw: Buffer): boolean {
    let e = this.entries.get(r.subject)
    if (!e) this.entries.set(r.subject, e = {})
    if (r.kind === 'cert') {
      // Two certificates of one identity (two members certified it): the
      // earliest wins everywhere, so every member agrees on its role.
      if (e.cert && (e.cert.issuedAt < r.issuedAt || (e.cert.issuedAt === r.issuedAt && Buffer.compare(e.certRaw!, raw) <= 0))) return false
      e.cert = r
      e.certRaw = raw
      return true
    }
    // Several members may revoke the same identity: the lowest `upTo` wins,
    // whatever the order they arrive in, so every member agrees.
    if (e.revoke && e.revoke.upTo <= r.upTo) return false
    e.revoke = r
    e.revokeRaw = raw
    return true
  }
}
