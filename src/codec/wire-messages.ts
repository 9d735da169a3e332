// The messages peers exchange, as types: what each request and reply
// carries. Their bytes on the wire, and every bound checked when decoding,
// are in wire.ts (docs/format.md, docs/protocol.md).

export type Role = 'full' | 'storage'

export interface PutChunk { type: 'PUT_CHUNK', id: Buffer, record: Buffer }
export interface GetChunk { type: 'GET_CHUNK', id: Buffer }
export interface Has { type: 'HAS', ids: Buffer[] }
export interface Stats { type: 'STATS' }
// The shared namespace (docs/protocol.md, "Namespace sync"): `heads` says how
// much of each member's log the sender holds (a gapless prefix); the answer
// carries op records the sender lacks, `more` when a budget cut it short.
export interface NsHead { member: Buffer, seq: number }
// `frontier`: the sender's stability frontier (docs/consistency.md); 0 from a
// storage-only member, which cannot read stamps.
export interface NsSync { type: 'NS_SYNC', frontier: bigint, heads: NsHead[] }
export interface NsPush { type: 'NS_PUSH', records: Buffer[] }
// Garbage collection: chunks no version of the namespace references any more
// (sent by full members only; docs/protocol.md, "Garbage collection").
export interface DropChunks { type: 'DROP_CHUNKS', ids: Buffer[] }
// Surplus replicas: drop these copies held for others (replication/trimmer.ts).
export interface TrimChunks { type: 'TRIM_CHUNKS', ids: Buffer[] }
// A full member that compacted its log offers the snapshot to its peers, so
// storage-only members (which cannot compact) can drop the records too.
export interface NsSnapshot { type: 'NS_SNAPSHOT', snapshot: Buffer }
// One part of the sender's namespace snapshot (a version 2 snapshot names
// its parts by hash; docs/format.md, "Snapshots"), answered with CHUNK
// (`record` null when the sender no longer holds that snapshot).
export interface NsPart { type: 'NS_PART', snapshot: Buffer, index: number }
// Holder knowledge (replication/holder-audit.ts): the sender now holds
// `held` and no longer holds `dropped`. It speaks only for itself.
export interface Holding { type: 'HOLDING', held: Buffer[], dropped: Buffer[] }
// A challenge: prove holding each chunk by a keyed hash of its record under
// a fresh nonce (docs/protocol.md, "Holder proofs").
export interface Prove { type: 'PROVE', nonce: Buffer, ids: Buffer[] }
// The certified member set (volume/member-set.ts; docs/protocol.md,
// "Member certificates"): right after HELLO each side sends its own
// certificate (`cert`, empty when it has none) and the member records it
// holds; later offers carry new records only (`cert` empty). Answered with
// MEMBERS: the records the receiver holds (all of them for the first offer).
export interface MembersOffer { type: 'MEMBERS_OFFER', cert: Buffer, records: Buffer[] }
export type RequestBody = PutChunk | GetChunk | Has | Stats | NsSync | NsPush | DropChunks | TrimChunks | NsSnapshot | NsPart | Holding | Prove | MembersOffer

export interface PutAck { type: 'PUT_ACK', ok: boolean, reason?: string }
export interface ChunkReply { type: 'CHUNK', record: Buffer | null }
// `have[i]` answers `ids[i]` of the HAS it replies to; it travels as a bitmap.
export interface HasReply { type: 'HAS_REPLY', have: boolean[] }
export interface StatsReply { type: 'STATS_REPLY', chunks: number, bytes: number, role: Role }
export interface ErrorReply { type: 'ERROR', message: string }
// `snapshot`: sent when the asker's heads are below what the sender still
// keeps as records (compacted into that snapshot).
export interface NsRecords { type: 'NS_RECORDS', records: Buffer[], more: boolean, snapshot?: Buffer }
export interface NsAck { type: 'NS_ACK', accepted: number }
export interface DropAck { type: 'DROP_ACK', dropped: number }
// `proofs[i]` answers `ids[i]`: null for a chunk the sender does not hold.
export interface Proofs { type: 'PROOFS', proofs: Array<Buffer | null> }
export interface Members { type: 'MEMBERS', records: Buffer[] }
export type ReplyBody = PutAck | ChunkReply | HasReply | StatsReply | ErrorReply | NsRecords | NsAck | DropAck | Proofs | Members

export interface ReplyTypeOf { PUT_CHUNK: PutAck, GET_CHUNK: ChunkReply, HAS: HasReply, STATS: StatsReply, NS_SYNC: NsRecords, NS_PUSH: NsAck, DROP_CHUNKS: DropAck, TRIM_CHUNKS: DropAck, NS_SNAPSHOT: NsAck, NS_PART: ChunkReply, HOLDING: DropAck, PROVE: Proofs, MEMBERS_OFFER: Members }
export type ReplyFor<R extends RequestBody> = ReplyTypeOf[R['type']]

// `roleProof`: a full member's signature proving its role (net/capability.ts).
export interface Hello { type: 'HELLO', version: number, role: Role, proof: Buffer, roleProof?: Buffer }
// `time` is the sender's own clock, echoed back in the PONG, so clocks need not agree.
export interface Ping { type: 'PING', time: number }
export interface Pong { type: 'PONG', time: number }
export interface Request { type: 'REQUEST', id: number, body: RequestBody }
export interface Reply { type: 'REPLY', id: number, body: ReplyBody }
export type Message = Hello | Ping | Pong | Request | Reply
