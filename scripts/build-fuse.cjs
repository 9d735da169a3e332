#!/usr/bin/env node
'use strict'
// postinstall: rebuild fuse-native's addon with two fixes and an rpath.
//   (a) utimens passed atime twice (argv 3-4 and 5-6); now atime then mtime.
//   (b) utimens timestamps encode UTIME_OMIT / UTIME_NOW distinctly:
//         UTIME_OMIT -> high 0xFFFFFFFF, low 0   (JS: 0xFFFFFFFF * 2^32)
//         UTIME_NOW  -> high 0xFFFFFFFE, low 0   (JS: 0xFFFFFFFE * 2^32)
//       real times stay milliseconds since the epoch.
//   (c) sets fuse_operations.flag_utime_omit_ok so libfuse delivers UTIME_NOW /
//       UTIME_OMIT at all (otherwise touch -m / touch -a never reach utimens).
//   (d) write-behind (opt-in from JS, fuse_native_write_behind): a FUSE write
//       is copied into a bounded queue (WB_MAX_BYTES) and answered at once; the
//       event loop applies queued writes in order. Every other operation first
//       waits until the queue is empty, so it sees every write before it (and
//       new writes wait behind it, so a long copy cannot starve `ls`); an
//       error of a queued write is returned by the next write, flush or fsync
//       of that file handle, as write-back errors are on any filesystem.
//   (e) read cache (opt-in from JS, fuse_native_rc_enable): a few whole
//       plaintext blocks that JS put there, keyed by (file handle, block),
//       serve FUSE reads on the FUSE thread without a round trip through the
//       event loop (the kernel asks 128 KiB at a time, so a 1 MiB block took
//       8 round trips). Correctness rests on one generation counter: every
//       write, truncate and release bumps it (a queued write after it is in
//       the queue), JS bumps it for changes that do not come through FUSE,
//       and an entry serves only while the generation it was filled under is
//       current. JS fills entries only while no queued write is outstanding.
//       The first read served from an entry is passed to JS as a hint, so it
//       keeps filling ahead of the reader.
//   (f) spin before sleeping (opt-in from JS, fuse_native_spin): a FUSE
//       thread that has handed an operation to JS polls for the answer for
//       up to a set time before it sleeps on the semaphore, one thread at a
//       time. It saves about 47 us per operation here (tar x of 2,000
//       files, ~38,000 operations: 5.7 -> 3.9 s with the event loop's own
//       spin, fuse/hot-loop.ts), against ~76 us of JavaScript per operation.
//   (g) attribute cache (opt-in from JS, fuse_native_ac_enable with the
//       mount's _thread buffer): getattr and fgetattr are answered on the
//       FUSE thread from attributes JS stored (fuse_native_ac_put, keyed by
//       path), while the global generation and the inode's generation they
//       were stored under are current. JS bumps an inode's for every inode a
//       change touches and the global one for renames and merges
//       (fuse/attr-cache.ts); a queued write updates its path's entry to the
//       write's outcome (size, times from this clock, passed on to JS), or
//       bumps the global generation when the entry is not current. A put is
//       refused while a queued write is outstanding.
//   (h) attribute changes behind (with (d) and (g), and a JS handler for
//       them): a chmod, chown or utimens of a path whose attributes the cache
//       holds under the current generation is queued like a write and
//       answered at once; the entry is updated to what the change leads to
//       (change time from this clock, passed on to JS) under a new inode
//       generation, which drops the file's other names. JS applies it
//       without bumping; a failure bumps. tar x of 2,000 files: all 3 per
//       file (utimens, chown, chmod) answered here.
//   (i) creates behind (with (d), (g) and a JS handler, fuse_native_cb_enable):
//       a create in a directory whose attributes the cache holds current is
//       answered at once with an inode number JS handed over ahead
//       (fuse_native_cb_inos) and a file handle from a range JS never uses;
//       the new file's entry (mode, owner JS gave, times from this clock) and
//       the directory's new mtime/ctime are stored, and the create is queued
//       like a write, for JS to apply with that inode, handle and time. A
//       failure bumps and fails the handle's next write, flush or fsync.
//       A directory JS just made (fuse_native_ac_dir_empty) is known whole
//       here while its entry's generations hold: the creates answered here
//       add their names, and a getattr of any other name in it is answered
//       ENOENT without JS (tar x looks up every name before creating it).
//       Any change to it through JS bumps its inode and ends that.
//   (j) loop end (opt-in from JS per mount, fuse_native_on_loop_end with
//       the mount's _thread buffer): when that mount's FUSE loop returns (the mount was unmounted from outside: `disktro
//       unmount`, fusermount -u, or the last user of a lazily unmounted
//       mount went away), JS is called once, so the daemon can stop instead
//       of holding its data dir with no mount to serve.
//   (k) directories' attributes held by the kernel (opt-in from JS,
//       fuse_native_dir_attr_timeout(seconds)): libfuse's high-level code
//       replies to LOOKUP and GETATTR with one attr_timeout for every node,
//       0 here (hard links: fuse/attr-cache.ts). With default_permissions
//       the kernel then re-fetches every ancestor directory's attributes on
//       every path it walks: ls -lR sent 8 requests per file, 6 of them a
//       GETATTR of a directory; tar x 5 of 13. libfuse calls fuse_reply_attr
//       and fuse_reply_entry through its PLT, and this addon, which loaded
//       it, comes first in its lookup scope: the addon's definitions raise
//       the timeout of replies that carry a directory, then call libfuse's.
//       Directories have one name, and the kernel drops a directory's
//       attributes itself after a create, mkdir, mknod, symlink, link,
//       unlink, rmdir or rename in it; a change made elsewhere (a peer's,
//       the dashboard's) shows after at most the timeout, as names already
//       do (entry_timeout, 1 s).
//   (l) close behind (from JS, fuse_native_clb_enable; on unless DISKTRO_CLOSE_BEHIND=0,
//       src/fuse/close-behind.ts): a handle from a create answered here (i)
//       keeps a copy of what was queued for it, up to 60 KiB of data; at
//       FLUSH the copy is sealed (ChaCha20-Poly1305, OpenSSL from node's
//       exports) and appended to a redo log (a private directory in /dev/shm) with one write(2),
//       and FLUSH is answered here; RELEASE is queued for JS, which commits
//       the file and marks the frame. A change the copy cannot show (a
//       truncate, an attribute change that went to JS) sends that handle's
//       FLUSH to JS as before, and when the copy already wrote a frame, a
//       checkpoint (queued item 6) goes ahead of the change: JS commits the
//       file and marks the frame. fsync of such a handle writes a new frame
//       first. While JS says room is low (fuse_native_clb_pause), every FLUSH
//       goes to JS. tar x stops waiting for the event loop at
//       each close: 2.67-3.90 s against 3.10-3.68 s, main thread 241-356
//       against 296-348 ticks (10,000 files, alternating, 5 each).
//   (m) the FUSE loop keeps its threads (scripts/fuse-patches/fuse-loop.c):
//       libfuse 2.9's fuse_loop_mt ends any thread that finds more than 10
//       idle and starts one whenever none is, so each burst of read-ahead
//       (up to max_background requests at once) created and ended threads:
//       244 for one cold 1 GiB read. Each new thread costs fuse-native a
//       round trip through the event loop and a uv_async handle that is
//       never closed, which every later wakeup of the event loop scans.
//       Threads now serve until the session ends, at most 64.
//   (n) reads of 1 MiB per request (scripts/fuse-patches/fuse-loop.c):
//       libfuse 2.9 predates FUSE_MAX_PAGES, so the kernel sent READs of at
//       most 32 pages. The loop wraps the channel's send hook; the thread
//       processing INIT, when the kernel offers FUSE_MAX_PAGES, sends the
//       reply at today's length (64 bytes; the shipped libfuse's header
//       knows 24) with the flag and max_pages (fuse_native_max_pages, from
//       JS). A cold 1 GiB read: 1.05-1.34 s against 1.26-1.50 s, 10% less
//       CPU. The read cache (e) answers reads that span blocks.
//   (o) writes of 1 MiB per request (fuse-loop.c, write-behind): the same
//       INIT reply raises max_write to fuse_native_max_write's bytes (at most
//       max_pages pages), and the loop's receive buffers are sized for it
//       (the kernel hands a request only to a read(2) that can hold the
//       headers and max_write). Write-behind keeps a second free list of
//       1 MiB items. A sequential 1 GiB write: one request per block instead
//       of eight (write-behind's unmount line counts them).
//   (p) the caller of each operation (scripts/fuse-patches/caller.c): the FUSE
//       thread copies fuse_get_context()'s uid, gid and pid into its locals,
//       and the event loop writes them into a buffer JS gave
//       (fuse_native_caller) right before it calls the handler, which reads
//       them in its synchronous part (src/fuse/native.ts fuseCaller). New
//       nodes are their creator's (issue 29: on a root --allow-other mount
//       they were root's). A create answered here (i) takes its owner from
//       the same context, and the group of a setgid directory, and passes
//       both to JS with the queued create.
//   (q) nanosecond times (scripts/fuse-patches/ns-times.c): a stat array
//       JS hands getattr, fgetattr or the attribute cache may carry two more
//       uint32s, the nanoseconds past the ms of atime and mtime (src/fuse/native.ts
//       replaces fuse-native's _op_getattr, _op_fgetattr and _op_utimens to
//       give and take them); utimens times carry theirs in bits 44-63. A
//       utimens finer than a ms is not answered here (h): JS keeps its
//       nanoseconds (touch -d '... .123456789' read back .123000000).
//   The addon gets rpath $ORIGIN (a libfuse.so.2 copy is placed beside it) and
//   the absolute lib dir of fuse-shared-library-linux, so no preload is needed.
// Must never fail `npm install`: any failure prints one warning line, exits 0
// and leaves the stock addon in place.

const fs = require('fs')
const path = require('path')
const crypto = require('crypto')
const { findNodeGyp, nodedirArgs, run, copyIfDifferent } = require('./gyp.cjs')

const MARKER_VERSION = 18 // 18: + nanosecond times; 17: + the caller of each operation, new files their creator's; 16: close behind's checkpoints and pause; 15: + the FUSE loop keeps its threads; 14: + close behind; 2: utimens fixes; 3: + write-behind; 4: + read cache; 5: + spin; 6: + attribute cache; 7: + attribute changes behind; 8: + creates behind; 9: + directories known whole; 10: queued items not read once queued; 11: + loop end; 12: read cache in huge pages; 13: + directories' attributes held
const started = Date.now()

function warn (msg) {
  const line = String(msg).split('\n').map(s => s.trim()).filter(Boolean).join(' | ')
  console.warn(`disktro: warning: fuse-native patch build skipped (${line.slice(0, 400)}); using stock addon`)
}

function elapsed () {
  return ((Date.now() - started) / 1000).toFixed(1) + 's'
}

function findNodeModules () {
  const local = path.join(__dirname, '..', 'node_modules')
  if (fs.existsSync(path.join(local, 'fuse-native', 'package.json'))) return local
  // fall back to wherever fuse-native resolves from
  const pkg = require.resolve('fuse-native/package.json', { paths: [path.join(__dirname, '..')] })
  return path.dirname(path.dirname(pkg))
}

function resolveDir (spec, from) {
  return path.dirname(require.resolve(spec, { paths: [from] }))
}

// The C code each patch adds, kept as C in scripts/fuse-patches/ (read as is).
function part (name) {
  return fs.readFileSync(path.join(__dirname, 'fuse-patches', name), 'utf8')
}

function replaceOnce (src, from, to, what) {
  const i = src.indexOf(from)
  if (i === -1) throw new Error(`patch target not found: ${what}`)
  if (src.indexOf(from, i + from.length) !== -1) throw new Error(`patch target ambiguous: ${what}`)
  return src.slice(0, i) + to + src.slice(i + from.length)
}

function patchSource (src) {
  // (b) helper that keeps UTIME_NOW / UTIME_OMIT distinguishable
  const tsFn = [
    'static uint64_t timespec_to_uint64 (const struct timespec* ts) {',
    '  uint64_t ms = (ts->tv_sec * 1000) + (ts->tv_nsec / 1000000);',
    '  return ms;',
    '}'
  ].join('\n')
  const helper = [
    '',
    '',
    '/* disktro patch: utimens encoding (see scripts/build-fuse.cjs) */',
    '#ifndef UTIME_NOW',
    '#define UTIME_NOW ((1l << 30) - 1l)',
    '#endif',
    '#ifndef UTIME_OMIT',
    '#define UTIME_OMIT ((1l << 30) - 2l)',
    '#endif',
    'static uint64_t disktro_utimens_to_uint64 (const struct timespec* ts) {',
    '  if (ts->tv_nsec == UTIME_OMIT) return ((uint64_t) 0xFFFFFFFFu) << 32;',
    '  if (ts->tv_nsec == UTIME_NOW) return ((uint64_t) 0xFFFFFFFEu) << 32;',
    '  /* (q) the nanoseconds past the ms in bits 44-63 (ms < 2^44: until the year 2527) */',
    '  return timespec_to_uint64(ts) | (((uint64_t) (ts->tv_nsec % 1000000)) << 44);',
    '}'
  ].join('\n')
  src = replaceOnce(src, tsFn, tsFn + helper, 'timespec_to_uint64 definition')

  src = replaceOnce(src,
    '  l->atime = timespec_to_uint64(&tv[0]);\n  l->mtime = timespec_to_uint64(&tv[1]);',
    '  l->atime = disktro_utimens_to_uint64(&tv[0]);\n  l->mtime = disktro_utimens_to_uint64(&tv[1]);',
    'utimens timespec conversion')

  // (a) mtime in argv 5-6
  src = replaceOnce(src,
    '  FUSE_UINT64_TO_INTS_ARGV(l->atime, 3)\n  FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)',
    '  FUSE_UINT64_TO_INTS_ARGV(l->atime, 3)\n  FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)',
    'utimens argv 5')

  // (c) without flag_utime_omit_ok, libfuse 2.9 never passes UTIME_NOW/UTIME_OMIT:
  // it silently drops atime-only / mtime-only updates (touch -m, touch -a) and
  // turns "now" into a clock reading. Ask for the real thing.
  src = replaceOnce(src,
    '  if (implemented[op_utimens]) ops.utimens = fuse_native_utimens;',
    '  if (implemented[op_utimens]) { ops.utimens = disktro_utimens; ops.flag_utime_omit_ok = 1; }',
    'utimens registration')
  // (d) write-behind
  const wbState = part('write-behind-state.c')
  src = replaceOnce(src, '#define FUSE_NATIVE_CALLBACK(fn, blk)\\\n', wbState + '#define FUSE_NATIVE_CALLBACK(fn, blk)\\\n', 'FUSE_NATIVE_CALLBACK definition')
  // (f) spin before sleeping: after the opcodes, which it reads
  const spinWait = part('spin.c')
  src = replaceOnce(src, 'static const uint32_t op_rmdir = 33;\n', 'static const uint32_t op_rmdir = 33;\n' + spinWait, 'opcode list end')
  src = replaceOnce(src,
    '#define FUSE_NATIVE_HANDLER(name, blk)\\\n  fuse_thread_locals_t *l = get_thread_locals();\\\n',
    '#define FUSE_NATIVE_HANDLER(name, blk)\\\n  disktro_wb_barrier();\\\n  fuse_thread_locals_t *l = get_thread_locals();\\\n' +
    '  { struct fuse_context *dc = fuse_get_context(); l->caller_uid = dc->uid; l->caller_gid = dc->gid; l->caller_pid = dc->pid; }\\\n',
    'FUSE_NATIVE_HANDLER barrier')
  // (q) nanosecond times: getattr's stat array may carry them
  src = replaceOnce(src, 'static void populate_statvfs (uint32_t *ints, struct statvfs* statvfs) {\n', part('ns-times.c') + 'static void populate_statvfs (uint32_t *ints, struct statvfs* statvfs) {\n', 'populate_statvfs (q)')
  {
    const from = '  populate_stat(ints, l->stat);\n'
    const n = src.split(from).length - 1
    if (n !== 2) throw new Error(`patch target not found twice: getattr and fgetattr populate_stat (${n})`)
    src = src.split(from).join(from + '  disktro_stat_ns(ints, ints_len, l->stat); /* (q) */\n')
  }
  // (p) the caller of each operation
  src = replaceOnce(src, '  // Internal bookkeeping\n', '  // disktro patch (p): the caller, from fuse_get_context()\n  uint32_t caller_uid, caller_gid, caller_pid;\n\n  // Internal bookkeeping\n', 'thread locals (p)')
  src = replaceOnce(src, 'static void fuse_native_dispatch (uv_async_t* handle) {\n', part('caller.c') + 'static void fuse_native_dispatch (uv_async_t* handle) {\n', 'dispatcher (p)')
  src = replaceOnce(src, '  fn(handle, l, ft);\n', '  disktro_caller_show(l);\n  fn(handle, l, ft);\n', 'dispatch call (p)')
  src = replaceOnce(src,
    '  uv_async_send(&(l->async));\\\n  uv_sem_wait(&(l->sem));\\\n  return l->res;',
    '  uv_async_send(&(l->async));\\\n  disktro_wait_answer(&(l->sem), l->op);\\\n  return l->res;',
    'FUSE_NATIVE_HANDLER wait')

  const wbOps = part('write-behind-ops.c')

  // (e) read cache
  const rcOps = part('read-cache.c')

  // (g) attribute cache
  const acOps = part('attr-cache.c')

  // (h) attribute changes behind
  const abOps = part('attr-changes-behind.c')
  src = replaceOnce(src, 'NAPI_METHOD(fuse_native_mount) {', part('close-behind.c') + wbOps + rcOps + acOps + abOps + 'NAPI_METHOD(fuse_native_mount) {', 'fuse_native_mount definition')
  // (k) directories' attributes held by the kernel
  const dirAttr = part('dir-attr-timeout.c')
  src = replaceOnce(src, 'NAPI_METHOD(fuse_native_mount) {', dirAttr + 'NAPI_METHOD(fuse_native_mount) {', 'fuse_native_mount definition (k)')
  src = '#define _GNU_SOURCE /* disktro patch (k): dlvsym, RTLD_NEXT */\n' + src

  // (j) loop end
  const loopEnd = part('loop-end.c')
  // (m) the FUSE loop keeps its threads
  const loop = part('fuse-loop.c')
  src = replaceOnce(src, 'static void* start_fuse_thread (void *data) {\n  fuse_thread_t *ft = (fuse_thread_t *) data;\n  fuse_loop_mt(ft->fuse);\n',
    loop + loopEnd + 'static void* start_fuse_thread (void *data) {\n  fuse_thread_t *ft = (fuse_thread_t *) data;\n  disktro_loop_mt(ft->fuse);\n' +
    '  napi_threadsafe_function end = disktro_loop_end_take(ft);\n' +
    '  if (end != NULL) {\n    napi_call_threadsafe_function(end, NULL, napi_tsfn_nonblocking);\n    napi_release_threadsafe_function(end, napi_tsfn_release);\n  }\n',
    'start_fuse_thread loop')
  src = replaceOnce(src, '  if (implemented[op_flush]) ops.flush = fuse_native_flush;', '  if (implemented[op_flush]) ops.flush = disktro_flush;', 'flush registration')
  src = replaceOnce(src, '  if (implemented[op_fsync]) ops.fsync = fuse_native_fsync;', '  if (implemented[op_fsync]) ops.fsync = disktro_fsync;', 'fsync registration')
  src = replaceOnce(src, '  if (implemented[op_write]) ops.write = fuse_native_write;', '  if (implemented[op_write]) ops.write = disktro_write;', 'write registration')
  src = replaceOnce(src, '  if (implemented[op_release]) ops.release = fuse_native_release;', '  if (implemented[op_release]) ops.release = disktro_release;', 'release registration')
  src = replaceOnce(src, '  if (implemented[op_open]) ops.open = fuse_native_open;', '  if (implemented[op_open]) ops.open = disktro_open;', 'open registration (l)')
  src = replaceOnce(src, '  if (implemented[op_unlink]) ops.unlink = fuse_native_unlink;', '  if (implemented[op_unlink]) ops.unlink = disktro_unlink;', 'unlink registration (l)')
  src = replaceOnce(src, '  if (implemented[op_rename]) ops.rename = fuse_native_rename;', '  if (implemented[op_rename]) ops.rename = disktro_rename;', 'rename registration (l)')
  src = replaceOnce(src, '  if (implemented[op_link]) ops.link = fuse_native_link;', '  if (implemented[op_link]) ops.link = disktro_link;', 'link registration (l)')
  src = replaceOnce(src, '  if (implemented[op_chmod]) ops.chmod = fuse_native_chmod;', '  if (implemented[op_chmod]) ops.chmod = disktro_chmod;', 'chmod registration')
  src = replaceOnce(src, '  if (implemented[op_chown]) ops.chown = fuse_native_chown;', '  if (implemented[op_chown]) ops.chown = disktro_chown;', 'chown registration')
  src = replaceOnce(src, '  if (implemented[op_getattr]) ops.getattr = fuse_native_getattr;', '  if (implemented[op_getattr]) ops.getattr = disktro_getattr;', 'getattr registration')
  src = replaceOnce(src, '  if (implemented[op_fgetattr]) ops.fgetattr = fuse_native_fgetattr;', '  if (implemented[op_fgetattr]) ops.fgetattr = disktro_fgetattr;', 'fgetattr registration')
  src = replaceOnce(src, '  if (implemented[op_read]) ops.read = fuse_native_read;', '  if (implemented[op_read]) ops.read = disktro_read;', 'read registration')
  src = replaceOnce(src, '  if (implemented[op_create]) ops.create = fuse_native_create;', '  if (implemented[op_create]) ops.create = disktro_create;', 'create registration')
  src = replaceOnce(src, '  if (implemented[op_truncate]) ops.truncate = fuse_native_truncate;', '  if (implemented[op_truncate]) ops.truncate = disktro_truncate;', 'truncate registration')
  src = replaceOnce(src, '  if (implemented[op_ftruncate]) ops.ftruncate = fuse_native_ftruncate;', '  if (implemented[op_ftruncate]) ops.ftruncate = disktro_ftruncate;', 'ftruncate registration')
  src = replaceOnce(src, '  NAPI_EXPORT_FUNCTION(fuse_native_unmount)\n',
    '  NAPI_EXPORT_FUNCTION(fuse_native_unmount)\n  NAPI_EXPORT_FUNCTION(fuse_native_write_behind)\n  NAPI_EXPORT_FUNCTION(fuse_native_signal_wb)\n  NAPI_EXPORT_FUNCTION(fuse_native_wb_outstanding)\n  NAPI_EXPORT_FUNCTION(fuse_native_wb_stats)\n  NAPI_EXPORT_FUNCTION(fuse_native_cb_enable)\n  NAPI_EXPORT_FUNCTION(fuse_native_cb_inos)\n' +
    '  NAPI_EXPORT_FUNCTION(fuse_native_rc_enable)\n  NAPI_EXPORT_FUNCTION(fuse_native_rc_gen)\n  NAPI_EXPORT_FUNCTION(fuse_native_rc_invalidate)\n' +
    '  NAPI_EXPORT_FUNCTION(fuse_native_rc_acquire)\n  NAPI_EXPORT_FUNCTION(fuse_native_rc_commit)\n  NAPI_EXPORT_FUNCTION(fuse_native_rc_stats)\n' +
    '  NAPI_EXPORT_FUNCTION(fuse_native_clb_enable)\n  NAPI_EXPORT_FUNCTION(fuse_native_clb_take)\n  NAPI_EXPORT_FUNCTION(fuse_native_clb_stats)\n  NAPI_EXPORT_FUNCTION(fuse_native_clb_truncate)\n  NAPI_EXPORT_FUNCTION(fuse_native_clb_pause)\n' +
    '  NAPI_EXPORT_FUNCTION(fuse_native_caller)\n  NAPI_EXPORT_FUNCTION(fuse_native_ns_times)\n  NAPI_EXPORT_FUNCTION(fuse_native_spin)\n  NAPI_EXPORT_FUNCTION(fuse_native_on_loop_end)\n  NAPI_EXPORT_FUNCTION(fuse_native_loop_threads)\n  NAPI_EXPORT_FUNCTION(fuse_native_max_pages)\n  NAPI_EXPORT_FUNCTION(fuse_native_max_write)\n  NAPI_EXPORT_FUNCTION(fuse_native_dir_attr_timeout)\n' +
    '  NAPI_EXPORT_FUNCTION(fuse_native_ac_enable)\n  NAPI_EXPORT_FUNCTION(fuse_native_ac_disable)\n  NAPI_EXPORT_FUNCTION(fuse_native_ac_bump)\n  NAPI_EXPORT_FUNCTION(fuse_native_ac_bump_ino)\n  NAPI_EXPORT_FUNCTION(fuse_native_ac_dir_empty)\n  NAPI_EXPORT_FUNCTION(fuse_native_ac_put)\n  NAPI_EXPORT_FUNCTION(fuse_native_ac_stats)\n',
    'exports')
  return src
}

async function main () {
  if (process.platform !== 'linux') return console.log('disktro: fuse-native patch build: not linux, skipped')

  const nm = findNodeModules()
  const fnDir = path.join(nm, 'fuse-native')
  const libfuseDir = path.join(resolveDir('fuse-shared-library-linux/package.json', fnDir), 'libfuse')
  const libfuse = path.join(libfuseDir, 'lib', 'libfuse.so')
  const libfuseInclude = path.join(libfuseDir, 'include')
  const napiMacros = resolveDir('napi-macros/package.json', fnDir)
  for (const p of [libfuse, path.join(libfuseInclude, 'fuse.h'), path.join(napiMacros, 'napi-macros.h')]) {
    if (!fs.existsSync(p)) throw new Error(`missing ${p}`)
  }

  const cSrc = fs.readFileSync(path.join(fnDir, 'fuse-native.c'), 'utf8')
  const patched = patchSource(cSrc)
  const localHeaders = new Set(['semaphore.h'])
  for (const m of cSrc.matchAll(/^\s*#\s*include\s+"([^"]+)"/gm)) localHeaders.add(m[1])

  const libDir = path.dirname(libfuse)
  const gyp = {
    targets: [{
      target_name: 'fuse',
      include_dirs: [napiMacros, libfuseInclude],
      libraries: [libfuse],
      sources: ['fuse-native.c'],
      cflags: ['-g', '-O3', '-Wall'],
      ldflags: ['-Wl,-rpath,\\$$ORIGIN', '-Wl,-rpath,' + libDir]
    }]
  }
  const gypText = JSON.stringify(gyp, null, 2) + '\n'

  const releaseDir = path.join(fnDir, 'build', 'Release')
  const target = path.join(releaseDir, 'fuse.node')
  const markerPath = path.join(releaseDir, 'disktro-patched.json')

  const hash = crypto.createHash('sha256')
  hash.update(patched).update(gypText).update(process.version).update(process.arch)
  for (const h of localHeaders) {
    const p = path.join(fnDir, h)
    if (fs.existsSync(p)) hash.update(h).update(fs.readFileSync(p))
  }
  const sourceHash = hash.digest('hex')

  // idempotent fast path: already built from identical inputs
  try {
    const m = JSON.parse(fs.readFileSync(markerPath, 'utf8'))
    const nodeHash = crypto.createHash('sha256').update(fs.readFileSync(target)).digest('hex')
    if (m.utimens === MARKER_VERSION && m.sourceHash === sourceHash && m.addonHash === nodeHash &&
        fs.existsSync(path.join(releaseDir, 'libfuse.so.2'))) {
      console.log(`disktro: fuse-native already patched (v${MARKER_VERSION}), ${elapsed()}`)
      return
    }
  } catch {}

  const buildDir = path.join(nm, '.disktro-fuse-build')
  fs.mkdirSync(buildDir, { recursive: true })
  const writeIfChanged = (file, text) => {
    try { if (fs.readFileSync(file, 'utf8') === text) return } catch {}
    fs.writeFileSync(file, text)
  }
  writeIfChanged(path.join(buildDir, 'fuse-native.c'), patched)
  for (const h of localHeaders) {
    const p = path.join(fnDir, h)
    if (fs.existsSync(p)) writeIfChanged(path.join(buildDir, h), fs.readFileSync(p, 'utf8'))
  }
  writeIfChanged(path.join(buildDir, 'binding.gyp'), gypText)
  writeIfChanged(path.join(buildDir, 'package.json'), JSON.stringify({ name: 'disktro-fuse-build', private: true, gypfile: true }) + '\n')

  const nodeGyp = findNodeGyp()
  await run(process.execPath, [nodeGyp, 'rebuild', ...nodedirArgs()], buildDir)

  const built = path.join(buildDir, 'build', 'Release', 'fuse.node')
  if (!fs.existsSync(built)) throw new Error('node-gyp produced no fuse.node')

  // libfuse.so's SONAME is libfuse.so.2, which is the name the loader looks for on
  // the rpath: provide it next to the addon ($ORIGIN) and, best effort, in
  // fuse-shared-library-linux's lib dir (for the absolute rpath entry).
  copyIfDifferent(libfuse, path.join(buildDir, 'build', 'Release', 'libfuse.so.2'))
  try {
    const link = path.join(libDir, 'libfuse.so.2')
    if (!fs.existsSync(link)) fs.symlinkSync('libfuse.so', link)
  } catch {}

  // sanity: the new addon must load without preloading and export utimens
  await run(process.execPath, ['-e', `const b=require(${JSON.stringify(built)});if(typeof b.op_utimens!=='number'||typeof b.fuse_native_write_behind!=='function')process.exit(3)`], buildDir)
    .catch(() => { throw new Error('built addon failed to load') })

  fs.mkdirSync(releaseDir, { recursive: true })
  copyIfDifferent(libfuse, path.join(releaseDir, 'libfuse.so.2'))
  copyIfDifferent(built, target)
  const addonHash = crypto.createHash('sha256').update(fs.readFileSync(target)).digest('hex')
  fs.writeFileSync(markerPath, JSON.stringify({ utimens: MARKER_VERSION, sourceHash, addonHash, node: process.version }, null, 2) + '\n')
  console.log(`disktro: fuse-native rebuilt with utimens fixes, write-behind, read cache, spin, attribute cache, creates behind, close behind, loop end, a loop that keeps its threads, 1 MiB reads and 1 MiB writes in ${elapsed()}`)
}

process.on('uncaughtException', err => {
  warn(err && err.message ? err.message : err)
  process.exit(0)
})

main().catch(err => {
  warn(err && err.message ? err.message : err)
}).finally(() => {
  process.exitCode = 0
})
