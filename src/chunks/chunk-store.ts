// Where sealed chunk records live. Records are opaque here: the store can
// hold and serve them without any key (a storage-only peer's view).
export interface ChunkStore {
  // `small`: the record, if there, is small (a block under 64 KiB): a cheaper check.
  has (id: Buffer, small?: boolean): boolean
  get (id: Buffer): Promise<Buffer | undefined>
  put (id: Buffer, record: Buffer, sum?: Buffer): Promise<void> // sum: codec/chunk-sum.ts, when known
  noteUse (id: Buffer): void // read here without get(): counts for least-recently-used eviction
  checkRoom (bytes: number): void // throws ENOSPC when `bytes` more would not fit
  warm (ids: Buffer[]): void // starts reading these records from disk in the background, so a later read finds them in memory
}

// Somewhere else a chunk can be had from (peers), for healing a chunk that is
// missing or corrupt here. `accept` verifies a candidate record; a record it
// rejects is not returned and the next source is tried.
export interface RemoteChunks {
  fetch (id: Buffer, accept: (record: Buffer) => Promise<boolean>): Promise<{ record: Buffer, from: string } | null>
}
