// Where sealed chunk records live. Records are opaque here: the store can
// hold and serve them without any key (a storage-only peer's view).
export interface ChunkStore {
  has (id: Buffer): boolean
  get (id: Buffer): Promise<Buffer | undefined>
  put (id: Buffer, record: Buffer): Promise<void>
}
