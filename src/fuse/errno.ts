import { constants } from 'node:os'
import { DisktroError, type ErrorCode } from '../errors.js'

// The only errno table: DisktroError codes -> negative errno for FUSE.
const E = constants.errno
const TABLE: Partial<Record<ErrorCode, number>> = {
  ENOENT: E.ENOENT, EEXIST: E.EEXIST, ENOTDIR: E.ENOTDIR, EISDIR: E.EISDIR,
  ENOTEMPTY: E.ENOTEMPTY, EINVAL: E.EINVAL, EIO: E.EIO, ENOSPC: E.ENOSPC,
  EPERM: E.EPERM, EACCES: E.EACCES, EBADF: E.EBADF, ENAMETOOLONG: E.ENAMETOOLONG,
  ELOOP: E.ELOOP, EFBIG: E.EFBIG, ENODATA: E.ENODATA, ENOTSUP: E.EOPNOTSUPP,
  ERANGE: E.ERANGE, EMLINK: E.EMLINK, EBUSY: E.EBUSY, EXDEV: E.EXDEV, ENOSYS: E.ENOSYS,
  CORRUPT_CHUNK: E.EIO, CORRUPT_RECORD: E.EIO, UNSUPPORTED_VERSION: E.EIO
}

export function toErrno (e: unknown): number {
  if (e instanceof DisktroError) return -(TABLE[e.code] ?? E.EIO)
  return -E.EIO
}
