import {
  decodeSnapshotPart, decodeSnapshotState, encodeSnapshotHeader, encodeSnapshotPart, newSnapshotId, verifySnapshotPart,
  SNAPSHOT_V1, type PartedHeader, type SnapshotHeader
} from '../../codec/snapshot-record.js'
import { fail } from '../../errors.js'
import { HybridClock } from '../hlc.js'
import { MergeTree, type FrozenTree, type MergeTreeState } from '../merge/merge-tree.js'
import { smallStateOf, stateItems, TreeBuilder, type StateItem } from '../merge/tree-state.js'
import type { OpLog } from './op-log.js'

// Nodes per part: about 1.4 MB of JSON (some 400 KB sealed), 10-20 ms to
// encode; the event loop runs between two.
const PART_ITEMS = 2000
// No snapshot claims more of a member's log than this (u64 on the wire; far
// above any real log, far below where arithmetic on it goes wrong).
export const MAX_CLAIMED_SEQ = 2 ** 40
// How far past our clock a snapshot's horizon may be (clock skew).
const MAX_SKEW_MS = 10 * 60_000

export const pause = async (): Promise<void> => await new Promise(resolve => setImmediate(resolve))

// A frozen merge state as a version 2 snapshot: the header record and its
// parts, encoded a part at a time with the event loop running in between.
export async function writeSnapshot (f: FrozenTree, h: SnapshotHeader, metaKey: Buffer, secretKey: Buffer, between: () => Promise<void> = pause): Promise<{ record: Buffer, parts: Buffer[] }> {
  const id = newSnapshotId()
  const parts: Buffer[] = []
  let batch: StateItem[] = []
  for (const item of stateItems(f)) {
    batch.push(item)
    if (batch.length >= PART_ITEMS) {
      parts.push(encodeSnapshotPart(id, parts.length, batch, metaKey))
      batch = []
      await between()
    }
  }
  if (batch.length > 0) parts.push(encodeSnapshotPart(id, parts.length, batch, metaKey))
  return { record: encodeSnapshotHeader(h, id, parts, smallStateOf(f), metaKey, secretKey), parts }
}

// The snapshot this node keeps, at start-up (synchronous: nothing is served yet).
export function readSnapshot (record: Buffer, part: (index: number) => Buffer | null, metaKey: Buffer): { header: PartedHeader, tree: MergeTree } {
  const { header, state } = decodeSnapshotState(record, metaKey)
  if (header.version === SNAPSHOT_V1) return { header, tree: treeOfV1(state) }
  const b = new TreeBuilder()
  for (let i = 0; i < header.parts.length; i++) {
    const p = part(i)
    if (p === null) throw fail('CORRUPT_RECORD', `namespace snapshot part ${i} is missing`)
    b.add(decodeSnapshotPart(header, i, p, metaKey))
  }
  return { header, tree: b.finish(state) }
}

// A snapshot from a peer, its parts fetched and checked one at a time.
export async function fetchSnapshot (header: PartedHeader, small: unknown, fetch: (index: number) => Promise<Buffer | null>, metaKey: Buffer | null, between: () => Promise<void> = pause): Promise<{ tree: MergeTree | null, parts: Buffer[] }> {
  if (header.version === SNAPSHOT_V1) return { tree: metaKey === null ? null : treeOfV1(small), parts: [] }
  const b = metaKey === null ? null : new TreeBuilder()
  const parts: Buffer[] = []
  for (let i = 0; i < header.parts.length; i++) {
    const p = await fetch(i)
    if (p === null) throw fail('ENOENT', `the peer no longer holds part ${i} of that namespace snapshot`)
    if (b !== null && metaKey !== null) b.add(decodeSnapshotPart(header, i, p, metaKey))
    else verifySnapshotPart(header, i, p)
    parts.push(Buffer.from(p))
    await between()
  }
  return { tree: b === null ? null : b.finish(small), parts }
}

// Why a signed snapshot header is not to be believed, or null (#28): its
// creator must be a member we know, and it may not claim more than exists.
// `self`/`ownSeq`: this member's id and the last seq it wrote (null for a
// storage-only member, which writes no log).
export function snapshotRefusal (h: PartedHeader, log: OpLog, self: string | null, ownSeq: number, now = Date.now()): string | null {
  if (!log.mayMakeSnapshot(h.creator)) return `it is signed by ${h.creator.slice(0, 12)}, not a full member in good standing`
  let top = 0n
  for (const c of h.covered) {
    if (self !== null && c.member === self && c.seq > ownSeq) return `it claims ${c.seq} changes of ours; we wrote ${ownSeq}`
    if (c.seq > MAX_CLAIMED_SEQ) return `it claims ${c.seq} changes of ${c.member.slice(0, 12)}`
    if (c.hlc > top) top = c.hlc
  }
  for (const b of h.base) {
    const c = h.covered.find(x => x.member === b.member)
    if (c === undefined || b.seq > c.seq) return 'it folds records it does not cover'
  }
  if (h.horizon > top) return 'its horizon is past every change it covers'
  if (HybridClock.millis(h.horizon) > now + MAX_SKEW_MS) return 'its horizon is in the future'
  return null
}

// The highest `<self>:<n>` id in a tree: ids must never be reused.
export function idsCounter (tree: MergeTree, self: string): number {
  const f = tree.freeze()
  let n = 0
  const see = (id: string): void => { if (id.startsWith(self + ':')) n = Math.max(n, Number(id.slice(self.length + 1)) || 0) }
  for (const id of f.kinds.keys()) see(id)
  for (const m of f.versions.values()) for (const v of m.keys()) see(v)
  for (const v of f.superseded) see(v)
  return n
}

function treeOfV1 (state: unknown): MergeTree {
  try {
    return MergeTree.fromState(state as MergeTreeState)
  } catch (e) {
    throw fail('CORRUPT_RECORD', `namespace snapshot state is malformed: ${(e as Error).message}`)
  }
}
