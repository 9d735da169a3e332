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

export interface PeerLink {
  readonly id: string // hex public key of the peer's node
  readonly role: 'full' | 'storage'
  putChunk (id: Buffer, record: Buffer): Promise<PutResult>
  getChunk (id: Buffer): Promise<Buffer | null>
  stats (): Promise<PeerStats>
}
