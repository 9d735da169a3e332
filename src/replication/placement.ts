import { createHash } from 'node:crypto'

// Rendezvous (highest-random-weight) hashing: every member gets a score per
// chunk and the highest scores hold it. A member joining or leaving moves
// only the chunks it ranks first for, so placement stays stable.
export function rank<T extends { id: string }> (chunkId: Buffer, members: T[]): T[] {
  const scored = members.map(m => ({ m, score: createHash('sha256').update(chunkId).update(m.id, 'hex').digest() }))
  scored.sort((a, b) => Buffer.compare(b.score, a.score))
  return scored.map(s => s.m)
}
