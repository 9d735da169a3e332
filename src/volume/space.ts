// What statfs(2) (df) says of a mounted volume: its own space and inodes,
// not the host disk's (issue 29: df showed 76 GB free where the store's
// limit stopped writes at 50 MiB).

// The numbers of statvfs that come from the volume.
export interface VolumeStatFs {
  bsize: number
  blocks: number
  bfree: number
  bavail: number
  files: number
  ffree: number
}

export interface SpaceInputs {
  usedBytes: number // the store's pages in use (StoreRoom.usedBytes)
  roomLeft: number // bytes the store's limit (maxStoreBytes) still allows; Infinity without one
  diskAvail: number // bytes the data dir's disk still gives this user
  inodes: number // inodes the namespace holds
}

// A new empty file costs its inode record, directory entry, change log and
// namespace op records: 10,000 empty files (touch) took 14,483,456 bytes of
// LMDB pages, 1,448 each. Free inodes are what the free bytes would hold of those.
export const BYTES_PER_INODE = 1500

const UINT32_MAX = 0xffffffff // fuse-native hands statvfs over as uint32s

// Free: what both the limit and the disk still allow (writes stop at the
// first of the two); size: used plus free, so df's columns add up and a
// store whose limit is more than the disk can give shows the disk's room.
export function volumeStatFs (s: SpaceInputs): VolumeStatFs {
  const used = Math.max(0, s.usedBytes)
  const free = Math.max(0, Math.min(s.roomLeft, s.diskAvail))
  const size = used + free
  // Blocks of 4 KiB, larger when a uint32 could not count them.
  let bsize = 4096
  while (size / bsize > UINT32_MAX) bsize *= 2
  const bfree = Math.floor(free / bsize)
  const inodes = Math.min(Math.max(0, s.inodes), UINT32_MAX)
  const ffree = Math.min(Math.floor(free / BYTES_PER_INODE), UINT32_MAX - inodes)
  return { bsize, blocks: Math.ceil(size / bsize), bfree, bavail: bfree, files: inodes + ffree, ffree }
}
