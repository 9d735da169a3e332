// What replication needs from one connected, authenticated peer. Kept
// narrow so replication does not depend on the wire format.
export interface PutResult {
  ok: boolean
  reason?: string
}

export interface PeerStats {
  chunks: number
  bytes: number
}

// A chunk record to push: the bytes, or a reader called (synchronously) when
// the request goes on the wire, whose result is copied at once and not kept;
// undefined from it means the chunk is gone and the push fails.
export type RecordSource = Buffer | (() => Buffer | undefined)

export interface PeerLink {
  readonly id: string // hex public key of the peer's node
  readonly role: 'full' | 'storage'
  putChunk (id: Buffer, record: RecordSource): Promise<PutResult>
  getChunk (id: Buffer): Promise<Buffer | null>
  stats (): Promise<PeerStats>
}
