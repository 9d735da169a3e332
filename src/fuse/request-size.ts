import { release as osRelease } from 'node:os'

// How large the kernel's READ and WRITE requests to the mount may be: the
// patched FUSE loop's INIT reply asks for these (scripts/build-fuse.cjs (n),
// (o); src/fuse/native.ts fuseMaxPages, fuseMaxWrite).

// Pages per READ request (FUSE_MAX_PAGES, scripts/build-fuse.cjs (n)): 256
// lets the kernel ask a 1 MiB block in one request instead of eight of
// 128 KiB (libfuse 2.9's limit), so a sequential read costs an eighth of
// the requests, thread wakeups and read-cache lookups.
// DISKTRO_FUSE_MAX_PAGES=32 keeps libfuse's.
const MAX_PAGES = 256

export function maxPages (): number {
  const n = Number(process.env.DISKTRO_FUSE_MAX_PAGES ?? MAX_PAGES)
  return Number.isInteger(n) && n >= 1 && n <= 65535 ? n : MAX_PAGES
}

// Bytes per WRITE request (scripts/build-fuse.cjs (o)): 1 MiB, a whole block,
// where the kernel takes max_pages (it caps max_write at max_pages pages).
// libfuse 2.9's 128 KiB made a 1 MiB write eight requests, eight wakeups of
// a FUSE thread and eight trips through write-behind and the event loop
// (a 1 GiB dd: 2-5% less CPU, the same wall time on this 2-core VM).
// DISKTRO_FUSE_MAX_WRITE_KIB=128 keeps libfuse's.
const MAX_WRITE_KIB = 1024

export function maxWriteBytes (): number {
  const n = Number(process.env.DISKTRO_FUSE_MAX_WRITE_KIB ?? MAX_WRITE_KIB)
  return Number.isInteger(n) && n >= 4 && n <= 1024 ? n * 1024 : MAX_WRITE_KIB * 1024
}

// Whether READ requests will be larger than 128 KiB: the kernel has taken
// FUSE_MAX_PAGES since Linux 4.20.
export function bigReads (release = osRelease()): boolean {
  const [major, minor] = release.split('.').map(Number)
  return maxPages() > 32 && (major > 4 || (major === 4 && minor >= 20))
}
