import type { LmdbStore } from './lmdb-store.js'
import { gcqKey } from './replica-keys.js'

// Copies held for other members (`foreign`), accounted per placing member
// and leased (docs/security.md, "Storage for others"). A `foreign` value:
//   v1: u8 1 · placer node id (32) · u32 LE record bytes · f64 LE lease stamp
//   v0: empty (before accounting): placer unknown, no lease yet (queued once
//       by replication/holding-leases.ts at the clock of that moment).
// The lease stamp is a time on the full-member clock (`presence`), which
// runs only while a proven full member is connected: see holding-leases.ts.
// Every change here goes in the caller's transaction, with the change to
// the copy itself, so the accounts never drift from the holdings.

const FORMAT = 1
const V1_BYTES = 1 + 32 + 4 + 8
const HELD_FOR = 'held-for:' // sys: + placer hex -> f64 LE bytes · f64 LE chunks
const PRESENCE = 'presence:full' // sys: f64 LE ms of the full-member clock
const EMPTY = Buffer.alloc(0)

export interface ForeignEntry { placer: Buffer | null, size: number, lease: number | null }

export function decodeForeign (v: Buffer | undefined): ForeignEntry | null {
  if (v === undefined) return null
  if (v.length === V1_BYTES && v[0] === FORMAT) return { placer: Buffer.from(v.subarray(1, 33)), size: v.readUInt32LE(33), lease: v.readDoubleLE(37) }
  return { placer: null, size: 0, lease: null } // v0, or a later format this version does not know: kept, unaccounted
}

function encodeForeign (placer: Buffer, size: number, lease: number): Buffer {
  const b = Buffer.allocUnsafe(V1_BYTES)
  b[0] = FORMAT
  placer.copy(b, 1)
  b.writeUInt32LE(size >>> 0, 33)
  b.writeDoubleLE(lease, 37)
  return b
}

export const leaseqKey = gcqKey // u64 BE clock ms · chunk id

// The full-member clock now (ms of full-member presence since this store began counting).
export function presenceClock (store: LmdbStore): number {
  return store.sysGet(PRESENCE)?.readDoubleLE(0) ?? 0
}

export function setPresenceClockSync (store: LmdbStore, ms: number): void {
  const b = Buffer.allocUnsafe(8)
  b.writeDoubleLE(ms)
  store.sysPut(PRESENCE, b)
}

function account (store: LmdbStore, placer: Buffer, bytes: number, chunks: number): void {
  const key = HELD_FOR + placer.toString('hex')
  const raw = store.sysGet(key)
  const b = Buffer.allocUnsafe(16)
  const nb = Math.max(0, (raw?.readDoubleLE(0) ?? 0) + bytes)
  const nc = Math.max(0, (raw?.readDoubleLE(8) ?? 0) + chunks)
  if (nc === 0) { store.sys.removeSync(Buffer.from(key)); return }
  b.writeDoubleLE(nb, 0)
  b.writeDoubleLE(nc, 8)
  store.sysPut(key, b)
}

// A copy newly held for `placer` (a proven full member), leased at `lease`.
// A copy already held for someone keeps its first placer (the one accounted).
export function holdForSync (store: LmdbStore, id: Buffer, placer: Buffer, size: number, lease: number): void {
  const old = decodeForeign(store.foreign.getBinary(id))
  if (old !== null && old.placer !== null) { renewSync(store, id, old, lease); return }
  if (old?.lease != null) store.leaseq.removeSync(leaseqKey(old.lease, id))
  store.foreign.putSync(id, encodeForeign(placer, size, lease))
  store.leaseq.putSync(leaseqKey(lease, id), EMPTY)
  account(store, placer, size, 1)
}

// A v0 entry gets its lease (no placer known: accounted to nobody).
export function leaseLegacySync (store: LmdbStore, id: Buffer, lease: number): void {
  store.foreign.putSync(id, encodeForeign(Buffer.alloc(32), 0, lease))
  store.leaseq.putSync(leaseqKey(lease, id), EMPTY)
}

function renewSync (store: LmdbStore, id: Buffer, e: ForeignEntry, lease: number): void {
  if (e.lease !== null) store.leaseq.removeSync(leaseqKey(e.lease, id))
  store.foreign.putSync(id, encodeForeign(e.placer ?? Buffer.alloc(32), e.size, lease))
  store.leaseq.putSync(leaseqKey(lease, id), EMPTY)
}

// Renews the lease of a copy held for others; false when it is not one, or
// its lease is younger than `fresh` (no write: a renewal costs a write only
// every so often per copy, however often full members ask).
export function renewLeaseSync (store: LmdbStore, id: Buffer, lease: number, fresh = lease): boolean {
  const e = decodeForeign(store.foreign.getBinary(id))
  if (e === null || (e.lease !== null && e.lease >= fresh)) return false
  renewSync(store, id, e, lease)
  return true
}

// The copy is no longer held for others (dropped, or collected): off the
// placer's account and out of the lease queue. Whether it was foreign.
export function unforeignSync (store: LmdbStore, id: Buffer): boolean {
  const e = decodeForeign(store.foreign.getBinary(id))
  if (e === null) return false
  if (e.lease !== null) store.leaseq.removeSync(leaseqKey(e.lease, id))
  if (e.placer !== null && e.size > 0) account(store, e.placer, -e.size, -1)
  store.foreign.removeSync(id)
  return true
}

// Bytes and chunks held here for one placing member.
export function heldFor (store: LmdbStore, placer: string): { bytes: number, chunks: number } {
  const raw = store.sysGet(HELD_FOR + placer)
  return { bytes: raw?.readDoubleLE(0) ?? 0, chunks: raw?.readDoubleLE(8) ?? 0 }
}

// Every placing member's account: one entry per member, a short range read.
export function heldForAll (store: LmdbStore): Array<{ member: string, bytes: number, chunks: number }> {
  const start = Buffer.from(HELD_FOR)
  const end = Buffer.from(HELD_FOR.slice(0, -1) + ';') // ':' + 1
  const out: Array<{ member: string, bytes: number, chunks: number }> = []
  for (const { key, value } of store.sys.getRange({ start, end })) {
    const v = value as Buffer
    out.push({ member: (key as Buffer).subarray(start.length).toString(), bytes: v.readDoubleLE(0), chunks: v.readDoubleLE(8) })
  }
  return out
}
