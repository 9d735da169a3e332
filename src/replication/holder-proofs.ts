import sodium from 'sodium-native'
import type { LmdbStore } from '../store/lmdb-store.js'

// Holder proofs (docs/protocol.md, "Holder knowledge and proofs"): a holder
// proves a copy by a keyed hash of the stored record under a fresh nonce,
// which it can compute only from the record itself.

const PROVE_BATCH = 16 // chunks per PROVE (the answer hashes each record)

export interface Prover {
  prove: (nonce: Buffer, ids: Buffer[]) => Promise<Array<Buffer | null>>
}

// The answer to a challenge: BLAKE2b-256 of the record keyed with the
// nonce; null when the record is not here.
export function proofOf (store: LmdbStore, nonce: Buffer, id: Buffer): Buffer | null {
  const record = store.chunkView(id) // the stored record's bytes, inline or packed
  if (record === undefined) return null
  const out = Buffer.alloc(32)
  sodium.crypto_generichash(out, record, nonce)
  return out
}

// Challenges a peer for chunks we hold too, under a fresh nonce per batch:
// per chunk 'proven', 'failed' (a wrong or missing proof, or no answer at
// all), or 'unknown' (our own copy went meanwhile: nothing to compare).
export async function challenge (link: Prover, store: LmdbStore, ids: Buffer[]): Promise<Array<'proven' | 'failed' | 'unknown'>> {
  const out: Array<'proven' | 'failed' | 'unknown'> = []
  for (let i = 0; i < ids.length; i += PROVE_BATCH) {
    const batch = ids.slice(i, i + PROVE_BATCH)
    const nonce = Buffer.alloc(32)
    sodium.randombytes_buf(nonce)
    // No answer from an open connection (a timeout, an error) fails them
    // all; a connection that closed says nothing about the copies (a peer
    // gone offline is repairAfter's to judge).
    let closed = false
    const answers = await link.prove(nonce, batch).catch((e: { code?: string }) => {
      closed = e?.code === 'PEER_CLOSED'
      return batch.map(() => null)
    })
    if (closed) { out.push(...batch.map(() => 'unknown' as const)); continue }
    batch.forEach((id, j) => {
      const want = proofOf(store, nonce, id)
      const got = answers[j]
      out.push(want === null ? 'unknown' : got !== null && got.length === want.length && sodium.sodium_memcmp(got, want) ? 'proven' : 'failed')
    })
  }
  return out
}

// Whether a peer proves holding each chunk we hold too.
export async function proves (link: Prover, store: LmdbStore, ids: Buffer[]): Promise<boolean[]> {
  return (await challenge(link, store, ids)).map(o => o === 'proven')
}

// Answers a PROVE, a record per event-loop turn (each may be a megabyte).
export async function answerProve (store: LmdbStore, nonce: Buffer, ids: Buffer[]): Promise<Array<Buffer | null>> {
  const out: Array<Buffer | null> = []
  for (const id of ids) {
    await store.prefetchChunks([id])
    out.push(proofOf(store, nonce, id))
    await new Promise(resolve => setImmediate(resolve))
  }
  return out
}

