// One error type for the whole code base. POSIX-like codes are mapped to errno
// in exactly one place (src/fuse/errno.ts); the others are user-facing failures
// reported by the CLI as one line.
export type PosixCode =
  | 'ENOENT' | 'EEXIST' | 'ENOTDIR' | 'EISDIR' | 'ENOTEMPTY' | 'EINVAL' | 'EIO'
  | 'ENOSPC' | 'EPERM' | 'EACCES' | 'EBADF' | 'ENAMETOOLONG' | 'ELOOP' | 'EFBIG'
  | 'ENODATA' | 'ENOTSUP' | 'ERANGE' | 'EMLINK' | 'EBUSY' | 'EXDEV' | 'ENOSYS'

export type VolumeCode =
  | 'BAD_PASSWORD' | 'NO_VOLUME' | 'VOLUME_DAMAGED' | 'VOLUME_EXISTS' | 'CORRUPT_CHUNK'
  | 'CORRUPT_RECORD' | 'DATA_DIR_LOCKED' | 'MOUNTPOINT_MISSING' | 'ALREADY_MOUNTED'
  | 'BAD_CONFIG' | 'NO_PASSWORD' | 'FUSE_UNAVAILABLE' | 'UNSUPPORTED_VERSION' | 'MOUNT_FAILED'
  | 'UNMOUNT_FAILED' | 'MOUNTPOINT_NOT_EMPTY'

// Peer-to-peer failures (src/net): a malformed or hostile wire message, a peer
// that went away or did not answer in time, and an error reported by the peer.
export type NetCode = 'BAD_MESSAGE' | 'PEER_CLOSED' | 'PEER_TIMEOUT' | 'PEER_ERROR'

export type ErrorCode = PosixCode | VolumeCode | NetCode

export class DisktroError extends Error {
  readonly code: ErrorCode
  constructor (code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = 'DisktroError'
  }
}

export function fail (code: ErrorCode, message?: string, cause?: unknown): DisktroError {
  if (code === 'ENOENT' && cause === undefined) return quiet(code, message ?? code)
  return new DisktroError(code, message ?? code, cause === undefined ? undefined : { cause })
}

// Without a stack trace: a lookup of a name that does not exist yet is the
// everyday answer before every create (tar x: one per file), and capturing
// the stack was most of its cost.
function quiet (code: ErrorCode, message: string): DisktroError {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new DisktroError(code, message)
  } finally {
    Error.stackTraceLimit = limit
  }
}

export function isDisktroError (e: unknown, code?: ErrorCode): e is DisktroError {
  return e instanceof DisktroError && (code === undefined || e.code === code)
}

// Storage errors from LMDB or the OS that mean "no room": the only foreign
// errors that are not simply EIO.
export function wrapStorageError (e: unknown, what: string): DisktroError {
  if (e instanceof DisktroError) return e
  const msg = e instanceof Error ? e.message : String(e)
  if (/MDB_MAP_FULL|ENOSPC|No space left|MDB_TXN_FULL/i.test(msg)) {
    return fail('ENOSPC', `${what}: storage full (${msg})`, e)
  }
  return fail('EIO', `${what}: ${msg}`, e)
}
