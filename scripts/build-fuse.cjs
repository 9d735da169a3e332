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
//   The addon gets rpath $ORIGIN (a libfuse.so.2 copy is placed beside it) and
//   the absolute lib dir of fuse-shared-library-linux, so no preload is needed.
// Must never fail `npm install`: any failure prints one warning line, exits 0
// and leaves the stock addon in place.

const fs = require('fs')
const path = require('path')
const crypto = require('crypto')
const { findNodeGyp, nodedirArgs, run, copyIfDifferent } = require('./gyp.cjs')

const MARKER_VERSION = 13 // 2: utimens fixes; 3: + write-behind; 4: + read cache; 5: + spin; 6: + attribute cache; 7: + attribute changes behind; 8: + creates behind; 9: + directories known whole; 10: queued items not read once queued; 11: + loop end; 12: read cache in huge pages; 13: + directories' attributes held
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
    '  return timespec_to_uint64(ts);',
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
  const wbState = String.raw`
/* disktro patch: write-behind (see scripts/build-fuse.cjs) */
#include <errno.h>
#include <time.h>
#include <sys/mman.h>
#define WB_MAX_BYTES (4 * 1024 * 1024)
#define WB_SLOT_BYTES (128 * 1024) /* FUSE's largest write with big_writes */
#define WB_FREE_MAX 64

/* An item and its data are one allocation, reused through a free list:
   a fresh 128 KiB malloc per write is an mmap, and its free an munmap. */
typedef struct disktro_wb_item {
  struct disktro_wb_item *next;
  int kind; /* DISKTRO_WB_WRITE, or an attribute change queued by (h) */
  char *path;
  uint64_t fh;
  char *data;
  size_t cap;
  size_t len;
  off_t offset;
  uint32_t a, b; /* chmod: mode; chown: uid, gid; create: mode */
  uint64_t ino; /* create: the inode number shown */
  double t1, t2, t3; /* utimens: atime, mtime (ms, -1: leave it); all: ctime (ms) */
} disktro_wb_item_t;

#define DISKTRO_WB_WRITE 0
#define DISKTRO_WB_CHMOD 1
#define DISKTRO_WB_CHOWN 2
#define DISKTRO_WB_UTIMENS 3
#define DISKTRO_WB_CREATE 4

/* (i) creates behind */
#define CB_INOS 256
#define CB_FH_BASE 0x40000000u /* JS numbers its own handles from 1 */
static struct {
  int enabled;
  uint32_t uid, gid; /* the owner JS gives new files */
  uint64_t inos[CB_INOS]; /* handed over by JS, with dwb.mut held */
  int count;
  uint32_t next_fh; /* atomic */
  uint64_t behind; /* with dac.mut held */
  napi_ref handler;
} dcb;

typedef struct disktro_wb_err {
  struct disktro_wb_err *next;
  uint64_t fh;
  int err;
} disktro_wb_err_t;

static struct {
  int enabled;
  uv_mutex_t mut;
  uv_cond_t cond;
  disktro_wb_item_t *head;
  disktro_wb_item_t *tail;
  size_t outstanding; /* queued or being applied */
  size_t outstanding_bytes;
  size_t barrier_waiters; /* operations waiting for the queue to drain: new writes wait behind them */
  size_t writers_waiting; /* FUSE threads waiting for room in the queue */
  disktro_wb_item_t *free_items;
  size_t free_count;
  disktro_wb_err_t *errs;
  uv_async_t async;
  napi_env env;
  napi_ref handler;
  napi_ref attr_handler; /* NULL: attribute changes are not queued */
} dwb;

/* With dwb.mut held: the first error of a queued write on fh, cleared. */
static int disktro_wb_take_err (uint64_t fh) {
  disktro_wb_err_t **p = &dwb.errs;
  while (*p != NULL) {
    if ((*p)->fh == fh) {
      disktro_wb_err_t *e = *p;
      int err = e->err;
      *p = e->next;
      free(e);
      return err;
    }
    p = &((*p)->next);
  }
  return 0;
}

/* With dwb.mut held: a queued attribute change or create, for JS to apply in order. */
static void disktro_wb_append (disktro_wb_item_t *item) {
  if (dwb.tail != NULL) dwb.tail->next = item; else dwb.head = item;
  dwb.tail = item;
  dwb.outstanding++;
}

/* Every operation but a queued write waits here for the writes before it. */
/* With dwb.mut held. New writes queue behind a waiting operation, so a
   stream of writes cannot starve it. */
static void disktro_wb_drain (void) {
  dwb.barrier_waiters++;
  while (dwb.outstanding > 0) uv_cond_wait(&dwb.cond, &dwb.mut);
  dwb.barrier_waiters--;
  uv_cond_broadcast(&dwb.cond);
}

static void disktro_wb_barrier (void) {
  if (!dwb.enabled) return;
  uv_mutex_lock(&dwb.mut);
  disktro_wb_drain();
  uv_mutex_unlock(&dwb.mut);
}

static int disktro_wb_barrier_err (uint64_t fh) {
  if (!dwb.enabled) return 0;
  uv_mutex_lock(&dwb.mut);
  disktro_wb_drain();
  int err = disktro_wb_take_err(fh);
  uv_mutex_unlock(&dwb.mut);
  return err;
}

/* disktro patch: read cache state (see scripts/build-fuse.cjs (e)) */
#define RC_MAX_ENTRIES 64
#define RC_HINTS 64
#define RC_FREE 0
#define RC_FILLING 1
#define RC_READY 2

typedef struct {
  uint64_t fh;
  uint64_t block;
  uint64_t gen; /* the generation it was filled under */
  size_t valid; /* bytes of the block that exist (less only at the end of the file) */
  int state;
  int pins; /* FUSE threads copying out of it now */
  int hinted;
  uint64_t used;
  char *data;
} disktro_rc_entry_t;

static struct {
  int enabled;
  uv_mutex_t mut;
  uint64_t gen; /* atomic */
  size_t block;
  int count;
  uint64_t tick;
  disktro_rc_entry_t entries[RC_MAX_ENTRIES];
  uint64_t hint_fh[RC_HINTS];
  uint64_t hint_off[RC_HINTS];
  int hints;
  uint64_t hits;
  uint64_t misses;
  uv_async_t async;
  napi_env env;
  napi_ref handler;
} drc;

/* A JS array of n numbers (the caches' counters). */
static napi_value disktro_numbers (napi_env env, const double *v, uint32_t n) {
  napi_value result, x;
  napi_create_array_with_length(env, n, &result);
  for (uint32_t i = 0; i < n; i++) {
    napi_create_double(env, v[i], &x);
    napi_set_element(env, result, i, x);
  }
  return result;
}

static void disktro_rc_bump (void) {
  __atomic_fetch_add(&drc.gen, 1, __ATOMIC_SEQ_CST);
}

/* disktro patch: attribute cache state (see scripts/build-fuse.cjs (g)) */
#define AC_SLOTS 16384 /* a power of two */

#define AC_INOS 4096 /* inode generations, by a hash of the inode number */
#define AC_DIRS 8 /* directories known whole, (i) */
#define AC_DIR_NAMES 4096 /* names a directory known whole may hold */

typedef struct {
  char *path; /* NULL: unused */
  uint64_t ino;
  uint64_t gen; /* the global generation it was known under */
  uint64_t igen; /* and its inode's */
  uint32_t count;
  uint32_t cap; /* a power of two, or 0 */
  char **names; /* open addressing */
  uint64_t used;
} disktro_ac_dir_t;

typedef struct {
  char *path; /* NULL: empty */
  uint64_t gen; /* the global generation it was stored under */
  uint64_t igen; /* and its inode's */
  struct stat st;
} disktro_ac_slot_t;

static struct {
  int enabled;
  void *owner; /* the mount it answers for: its fuse_thread_t (fuse-native's _thread) */
  uv_mutex_t mut;
  uint64_t gen; /* atomic */
  uint64_t hits;
  uint64_t misses;
  uint64_t behind; /* attribute changes answered at once, (h) */
  uint64_t igen[AC_INOS]; /* with mut held */
  disktro_ac_slot_t slots[AC_SLOTS];
  disktro_ac_dir_t dirs[AC_DIRS];
  uint64_t dir_tick;
  uint64_t absent; /* getattrs answered ENOENT from a directory known whole */
} dac;

static uint64_t *disktro_ac_igen (uint64_t ino) {
  return &dac.igen[(ino * 0x9E3779B97F4A7C15ull) >> 52];
}

/* With dac.mut held: whether the slot holds path's attributes, current. */
static int disktro_ac_valid (disktro_ac_slot_t *s, const char *path, uint64_t gen) {
  return s->path != NULL && s->gen == gen && s->igen == *disktro_ac_igen((uint64_t) s->st.st_ino) && strcmp(s->path, path) == 0;
}

static void disktro_ac_bump (void) {
  __atomic_fetch_add(&dac.gen, 1, __ATOMIC_SEQ_CST);
}

/* Directories known whole (i); all with dac.mut held. */
static uint32_t disktro_name_hash (const char *name, size_t len) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char) name[i]) * 16777619u;
  return h;
}

static void disktro_dir_drop (disktro_ac_dir_t *d) {
  for (uint32_t i = 0; i < d->cap; i++) free(d->names[i]);
  free(d->names);
  free(d->path);
  memset(d, 0, sizeof(*d));
}

/* The directory at path[0..plen) while it is known whole, or NULL. */
static disktro_ac_dir_t *disktro_dir_find (const char *path, size_t plen) {
  uint64_t gen = __atomic_load_n(&dac.gen, __ATOMIC_SEQ_CST);
  for (int i = 0; i < AC_DIRS; i++) {
    disktro_ac_dir_t *d = &dac.dirs[i];
    if (d->path == NULL || strncmp(d->path, path, plen) != 0 || d->path[plen] != 0) continue;
    if (d->gen != gen || d->igen != *disktro_ac_igen(d->ino)) {
      disktro_dir_drop(d);
      return NULL;
    }
    return d;
  }
  return NULL;
}

static int disktro_dir_has (disktro_ac_dir_t *d, const char *name) {
  if (d->cap == 0) return 0;
  size_t len = strlen(name);
  for (uint32_t i = disktro_name_hash(name, len) & (d->cap - 1);; i = (i + 1) & (d->cap - 1)) {
    if (d->names[i] == NULL) return 0;
    if (strcmp(d->names[i], name) == 0) return 1;
  }
}

/* 0 when it cannot: the directory is then no longer known whole. */
static int disktro_dir_add (disktro_ac_dir_t *d, const char *name) {
  if (d->count >= AC_DIR_NAMES) return 0;
  if ((d->count + 1) * 4 > d->cap * 3) {
    uint32_t cap = d->cap == 0 ? 64 : d->cap * 2;
    char **names = calloc(cap, sizeof(char *));
    if (names == NULL) return 0;
    for (uint32_t i = 0; i < d->cap; i++) {
      char *n = d->names[i];
      if (n == NULL) continue;
      uint32_t j = disktro_name_hash(n, strlen(n)) & (cap - 1);
      while (names[j] != NULL) j = (j + 1) & (cap - 1);
      names[j] = n;
    }
    free(d->names);
    d->names = names;
    d->cap = cap;
  }
  char *copy = strdup(name);
  if (copy == NULL) return 0;
  uint32_t j = disktro_name_hash(name, strlen(name)) & (d->cap - 1);
  while (d->names[j] != NULL) j = (j + 1) & (d->cap - 1);
  d->names[j] = copy;
  d->count++;
  return 1;
}

static double disktro_now_ms (void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double) ts.tv_sec * 1000 + (double) (ts.tv_nsec / 1000000);
}

static int disktro_ac_write_predict (const char *path, uint64_t end, double now);

/* As populate_stat reads JS's milliseconds. */
static void disktro_set_ms (struct timespec *ts, double ms) {
  uint64_t m = (uint64_t) ms;
  ts->tv_sec = (time_t) (m / 1000);
  ts->tv_nsec = (long) (m % 1000) * 1000000;
}


`
  src = replaceOnce(src, '#define FUSE_NATIVE_CALLBACK(fn, blk)\\\n', wbState + '#define FUSE_NATIVE_CALLBACK(fn, blk)\\\n', 'FUSE_NATIVE_CALLBACK definition')
  // (f) spin before sleeping: after the opcodes, which it reads
  const spinWait = String.raw`
/* disktro patch: a short spin before sleeping on JS's answer (see (f)) */
#if defined(__x86_64__) || defined(__i386__)
#define DISKTRO_PAUSE() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define DISKTRO_PAUSE() __asm__ __volatile__("yield")
#else
#define DISKTRO_PAUSE() do {} while (0)
#endif
static long disktro_spin_ns = 0; /* set from JS: fuse_native_spin */
static int disktro_spinning = 0; /* atomic: at most one FUSE thread spins at a time */

/* 1 when the answer came within budget_ns */
static int disktro_spin (uv_sem_t *sem, long budget_ns) {
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (uv_sem_trywait(sem) == 0) return 1;
      DISKTRO_PAUSE();
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) > budget_ns) return 0;
  }
}

/* Not for reads and writes: the event loop is busy with data then, and a
   spinning thread would take a core from the crypto workers. */
static void disktro_wait_answer (uv_sem_t *sem, uint32_t op) {
  long budget = __atomic_load_n(&disktro_spin_ns, __ATOMIC_RELAXED);
  if (budget > 0 && op != op_read && op != op_write && __atomic_exchange_n(&disktro_spinning, 1, __ATOMIC_ACQUIRE) == 0) {
    int answered = disktro_spin(sem, budget);
    __atomic_store_n(&disktro_spinning, 0, __ATOMIC_RELEASE);
    if (answered) return;
  }
  uv_sem_wait(sem);
}

`
  src = replaceOnce(src, 'static const uint32_t op_rmdir = 33;\n', 'static const uint32_t op_rmdir = 33;\n' + spinWait, 'opcode list end')
  src = replaceOnce(src,
    '#define FUSE_NATIVE_HANDLER(name, blk)\\\n  fuse_thread_locals_t *l = get_thread_locals();\\\n',
    '#define FUSE_NATIVE_HANDLER(name, blk)\\\n  disktro_wb_barrier();\\\n  fuse_thread_locals_t *l = get_thread_locals();\\\n',
    'FUSE_NATIVE_HANDLER barrier')
  src = replaceOnce(src,
    '  uv_async_send(&(l->async));\\\n  uv_sem_wait(&(l->sem));\\\n  return l->res;',
    '  uv_async_send(&(l->async));\\\n  disktro_wait_answer(&(l->sem), l->op);\\\n  return l->res;',
    'FUSE_NATIVE_HANDLER wait')

  const wbOps = String.raw`
/* disktro patch: write-behind operations */
static int disktro_write (const char *path, const char *buf, size_t len, off_t offset, struct fuse_file_info *info) {
  if (!dwb.enabled) {
    disktro_rc_bump();
    int res = fuse_native_write(path, buf, len, offset, info);
    disktro_rc_bump();
    return res;
  }
  uv_mutex_lock(&dwb.mut);
  dwb.writers_waiting++;
  while (dwb.outstanding_bytes > WB_MAX_BYTES || dwb.barrier_waiters > 0) uv_cond_wait(&dwb.cond, &dwb.mut);
  dwb.writers_waiting--;
  int err = disktro_wb_take_err(info->fh);
  if (err != 0) {
    uv_mutex_unlock(&dwb.mut);
    return err;
  }
  disktro_wb_item_t *item = NULL;
  if (len <= WB_SLOT_BYTES && dwb.free_items != NULL) {
    item = dwb.free_items;
    dwb.free_items = item->next;
    dwb.free_count--;
  }
  uv_mutex_unlock(&dwb.mut);
  if (item == NULL) {
    size_t cap = len > WB_SLOT_BYTES ? len : WB_SLOT_BYTES;
    item = malloc(sizeof(disktro_wb_item_t) + cap);
    if (item == NULL) return -ENOMEM;
    item->cap = cap;
    item->data = (char *) (item + 1);
  }
  char *p = strdup(path);
  if (p == NULL) {
    free(item);
    return -ENOMEM;
  }
  memcpy(item->data, buf, len);
  double now = disktro_now_ms();
  item->t3 = now; /* the write's mtime, shown by (g) at once and passed on to JS */
  item->next = NULL;
  item->kind = DISKTRO_WB_WRITE;
  item->path = p;
  item->fh = info->fh;
  item->len = len;
  item->offset = offset;
  uv_mutex_lock(&dwb.mut);
  if (dwb.tail != NULL) dwb.tail->next = item; else dwb.head = item;
  dwb.tail = item;
  dwb.outstanding++;
  dwb.outstanding_bytes += len;
  uv_mutex_unlock(&dwb.mut);
  disktro_rc_bump(); /* after the write is outstanding: see (e) */
  if (!disktro_ac_write_predict(path, (uint64_t) offset + len, now)) disktro_ac_bump(); /* and (g) */
  uv_async_send(&dwb.async);
  return (int) len;
}

static int disktro_flush (const char *path, struct fuse_file_info *info) {
  int err = disktro_wb_barrier_err(info->fh);
  int res = fuse_native_flush(path, info);
  return err != 0 ? err : res;
}

static int disktro_fsync (const char *path, int datasync, struct fuse_file_info *info) {
  int err = disktro_wb_barrier_err(info->fh);
  int res = fuse_native_fsync(path, datasync, info);
  return err != 0 ? err : res;
}

static int disktro_release (const char *path, struct fuse_file_info *info) {
  disktro_rc_bump(); /* the handle's cached blocks go with it */
  disktro_wb_barrier_err(info->fh); /* an error nobody asked for goes with the handle */
  return fuse_native_release(path, info);
}

/* Event loop: hands each queued write to JS, which answers with fuse_native_signal_wb. */
static void disktro_wb_dispatch (uv_async_t *handle) {
  uv_mutex_lock(&dwb.mut);
  disktro_wb_item_t *item = dwb.head;
  dwb.head = NULL;
  dwb.tail = NULL;
  uv_mutex_unlock(&dwb.mut);
  napi_env env = dwb.env;
  while (item != NULL) {
    disktro_wb_item_t *next = item->next;
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    napi_value callback;
    napi_value global;
    napi_get_global(env, &global);
    if (item->kind == DISKTRO_WB_WRITE) {
      napi_get_reference_value(env, dwb.handler, &callback);
      napi_value argv[6];
      napi_create_external(env, item, NULL, NULL, &(argv[0]));
      napi_create_string_utf8(env, item->path, NAPI_AUTO_LENGTH, &(argv[1]));
      napi_create_uint32(env, (uint32_t) item->fh, &(argv[2]));
      napi_create_external_buffer(env, item->len, item->data, NULL, NULL, &(argv[3]));
      napi_create_double(env, (double) item->offset, &(argv[4]));
      napi_create_double(env, item->t3, &(argv[5]));
      NAPI_MAKE_CALLBACK(env, NULL, global, callback, 6, argv, NULL)
    } else if (item->kind == DISKTRO_WB_CREATE) {
      /* (item, path, fh, mode, ino, time) */
      napi_get_reference_value(env, dcb.handler, &callback);
      napi_value argv[6];
      napi_create_external(env, item, NULL, NULL, &(argv[0]));
      napi_create_string_utf8(env, item->path, NAPI_AUTO_LENGTH, &(argv[1]));
      napi_create_uint32(env, (uint32_t) item->fh, &(argv[2]));
      napi_create_uint32(env, item->a, &(argv[3]));
      napi_create_double(env, (double) item->ino, &(argv[4]));
      napi_create_double(env, item->t3, &(argv[5]));
      NAPI_MAKE_CALLBACK(env, NULL, global, callback, 6, argv, NULL)
    } else {
      /* (item, path, kind, a, b, atime, mtime, ctime) */
      napi_get_reference_value(env, dwb.attr_handler, &callback);
      napi_value argv[8];
      napi_create_external(env, item, NULL, NULL, &(argv[0]));
      napi_create_string_utf8(env, item->path, NAPI_AUTO_LENGTH, &(argv[1]));
      napi_create_uint32(env, (uint32_t) item->kind, &(argv[2]));
      napi_create_uint32(env, item->a, &(argv[3]));
      napi_create_uint32(env, item->b, &(argv[4]));
      napi_create_double(env, item->t1, &(argv[5]));
      napi_create_double(env, item->t2, &(argv[6]));
      napi_create_double(env, item->t3, &(argv[7]));
      NAPI_MAKE_CALLBACK(env, NULL, global, callback, 8, argv, NULL)
    }
    napi_close_handle_scope(env, scope);
    item = next;
  }
}

/* (write handler, attribute-change handler or undefined) */
NAPI_METHOD(fuse_native_write_behind) {
  NAPI_ARGV(2)
  if (dwb.enabled) return NULL;
  uv_mutex_init(&dwb.mut);
  uv_cond_init(&dwb.cond);
  dwb.env = env;
  napi_create_reference(env, argv[0], 1, &dwb.handler);
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  if (t == napi_function) napi_create_reference(env, argv[1], 1, &dwb.attr_handler);
  uv_async_init(uv_default_loop(), &dwb.async, (uv_async_cb) disktro_wb_dispatch);
  uv_unref((uv_handle_t *) &dwb.async);
  dwb.enabled = 1;
  return NULL;
}

/* (item, result: bytes written or -errno, the data's ArrayBuffer) */
NAPI_METHOD(fuse_native_signal_wb) {
  NAPI_ARGV(3)
  disktro_wb_item_t *item = NULL;
  napi_get_value_external(env, argv[0], (void **) &item);
  NAPI_ARGV_INT32(res, 1);
  if (item == NULL) return NULL;
  int write = item->kind == DISKTRO_WB_WRITE;
  if (write && IS_ARRAY_BUFFER_DETACH_SUPPORTED == 1) napi_detach_arraybuffer(env, argv[2]);
  free(item->path);
  item->path = NULL;
  uv_mutex_lock(&dwb.mut);
  if (!write) {
    /* JS applied an attribute change or a create as (h) or (i) predicted
       it: no bump, the entry stored then stays true. A failure bumps: it
       did not happen. A failed create fails its handle's next write, flush
       or fsync. */
    if (res < 0) disktro_ac_bump();
    if (res < 0 && item->kind == DISKTRO_WB_CREATE) {
      disktro_wb_err_t *e = malloc(sizeof(disktro_wb_err_t));
      if (e != NULL) {
        e->fh = item->fh;
        e->err = res;
        e->next = dwb.errs;
        dwb.errs = e;
      }
    }
    dwb.outstanding--;
    if (dwb.barrier_waiters > 0 && dwb.outstanding == 0) uv_cond_broadcast(&dwb.cond);
    uv_mutex_unlock(&dwb.mut);
    free(item);
    return NULL;
  }
  if (res < 0 || (size_t) res != item->len) {
    int known = 0;
    for (disktro_wb_err_t *e = dwb.errs; e != NULL; e = e->next) if (e->fh == item->fh) known = 1;
    disktro_wb_err_t *e = known ? NULL : malloc(sizeof(disktro_wb_err_t));
    if (e != NULL) {
      e->fh = item->fh;
      e->err = res < 0 ? res : -EIO;
      e->next = dwb.errs;
      dwb.errs = e;
    }
  }
  /* No bump once JS applied it: no entry was stored while it was outstanding (fuse_native_ac_put). A failed write bumps: (g) may show it. */
  if (res < 0 || (size_t) res != item->len) disktro_ac_bump();
  dwb.outstanding--;
  dwb.outstanding_bytes -= item->len;
  int keep = item->cap == WB_SLOT_BYTES && dwb.free_count < WB_FREE_MAX;
  if (keep) {
    item->next = dwb.free_items;
    dwb.free_items = item;
    dwb.free_count++;
  }
  /* Wake waiters only when it lets them go: a drained queue for a waiting
     operation, half the queue free for waiting writers (not one wake-up,
     and one context switch, per write). */
  if ((dwb.barrier_waiters > 0 && dwb.outstanding == 0) ||
      (dwb.writers_waiting > 0 && dwb.barrier_waiters == 0 && dwb.outstanding_bytes <= WB_MAX_BYTES / 2)) {
    uv_cond_broadcast(&dwb.cond);
  }
  uv_mutex_unlock(&dwb.mut);
  if (!keep) free(item);
  return NULL;
}

NAPI_METHOD(fuse_native_wb_outstanding) {
  uv_mutex_lock(&dwb.mut);
  uint32_t n = dwb.enabled ? (uint32_t) dwb.outstanding : 0;
  uv_mutex_unlock(&dwb.mut);
  NAPI_RETURN_UINT32(n)
}

/* (i): (create handler, uid, gid) after fuse_native_write_behind */
NAPI_METHOD(fuse_native_cb_enable) {
  NAPI_ARGV(3)
  NAPI_ARGV_UINT32(uid, 1)
  NAPI_ARGV_UINT32(gid, 2)
  if (!dwb.enabled || dcb.enabled) return NULL;
  napi_create_reference(env, argv[0], 1, &dcb.handler);
  dcb.uid = uid;
  dcb.gid = gid;
  __atomic_store_n(&dcb.next_fh, CB_FH_BASE, __ATOMIC_SEQ_CST);
  __atomic_store_n(&dcb.enabled, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

/* (i): (inode numbers for creates answered here) -> how many it holds now */
NAPI_METHOD(fuse_native_cb_inos) {
  NAPI_ARGV(1)
  uint32_t n = 0;
  napi_get_array_length(env, argv[0], &n);
  uv_mutex_lock(&dwb.mut);
  for (uint32_t i = 0; i < n && dcb.count < CB_INOS; i++) {
    napi_value v;
    double ino = 0;
    napi_get_element(env, argv[0], i, &v);
    napi_get_value_double(env, v, &ino);
    if (ino >= 1) dcb.inos[dcb.count++] = (uint64_t) ino;
  }
  uint32_t held = (uint32_t) dcb.count;
  uv_mutex_unlock(&dwb.mut);
  NAPI_RETURN_UINT32(held)
}

`

  // (e) read cache
  const rcOps = String.raw`
/* disktro patch: read cache operations */
static void disktro_rc_hint (uint64_t fh, uint64_t offset) {
  uv_mutex_lock(&drc.mut);
  int send = drc.hints < RC_HINTS;
  if (send) {
    drc.hint_fh[drc.hints] = fh;
    drc.hint_off[drc.hints] = offset;
    drc.hints++;
  }
  uv_mutex_unlock(&drc.mut);
  if (send) uv_async_send(&drc.async);
}

static int disktro_read (const char *path, char *buf, size_t len, off_t offset, struct fuse_file_info *info) {
  if (drc.enabled && len > 0 && offset >= 0) {
    uint64_t block = (uint64_t) offset / drc.block;
    size_t inner = (size_t) ((uint64_t) offset - block * drc.block);
    disktro_rc_entry_t *hit = NULL;
    size_t n = 0;
    int hint = 0;
    uv_mutex_lock(&drc.mut);
    uint64_t gen = __atomic_load_n(&drc.gen, __ATOMIC_SEQ_CST);
    for (int i = 0; i < drc.count; i++) {
      disktro_rc_entry_t *e = &drc.entries[i];
      if (e->state == RC_READY && e->fh == info->fh && e->block == block && e->gen == gen) {
        hit = e;
        break;
      }
    }
    if (hit != NULL) {
      if (inner + len <= hit->valid) n = len;
      else if (hit->valid < drc.block) n = inner < hit->valid ? hit->valid - inner : 0; /* the end of the file is in this block */
      else hit = NULL; /* runs into the next block: JS answers */
    }
    if (hit != NULL) {
      hit->pins++;
      hit->used = ++drc.tick;
      if (!hit->hinted) hint = hit->hinted = 1;
      drc.hits++;
    } else {
      drc.misses++;
    }
    uv_mutex_unlock(&drc.mut);
    if (hit != NULL) {
      memcpy(buf, hit->data + inner, n);
      uv_mutex_lock(&drc.mut);
      hit->pins--;
      uv_mutex_unlock(&drc.mut);
      if (hint) disktro_rc_hint(info->fh, (uint64_t) offset);
      return (int) n;
    }
  }
  return fuse_native_read(path, buf, len, offset, info);
}

static int disktro_truncate (const char *path, off_t size) {
  disktro_rc_bump();
  int res = fuse_native_truncate(path, size);
  disktro_rc_bump();
  return res;
}

static int disktro_ftruncate (const char *path, off_t size, struct fuse_file_info *info) {
  disktro_rc_bump();
  int res = fuse_native_ftruncate(path, size, info);
  disktro_rc_bump();
  return res;
}

/* Event loop: hands the hints gathered so far to JS, as (fh, offset) calls. */
static void disktro_rc_dispatch (uv_async_t *handle) {
  uint64_t fh[RC_HINTS], off[RC_HINTS];
  uv_mutex_lock(&drc.mut);
  int n = drc.hints;
  memcpy(fh, drc.hint_fh, sizeof(uint64_t) * n);
  memcpy(off, drc.hint_off, sizeof(uint64_t) * n);
  drc.hints = 0;
  uv_mutex_unlock(&drc.mut);
  napi_env env = drc.env;
  for (int i = 0; i < n; i++) {
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    napi_value callback, global, argv[2];
    napi_get_reference_value(env, drc.handler, &callback);
    napi_get_global(env, &global);
    napi_create_double(env, (double) fh[i], &(argv[0]));
    napi_create_double(env, (double) off[i], &(argv[1]));
    NAPI_MAKE_CALLBACK(env, NULL, global, callback, 2, argv, NULL)
    napi_close_handle_scope(env, scope);
  }
}

/* (blockSize, entries, hint handler) -> an array of the entries' memory, as Buffers */
NAPI_METHOD(fuse_native_rc_enable) {
  NAPI_ARGV(3)
  NAPI_ARGV_UINT32(block, 0)
  NAPI_ARGV_UINT32(count, 1)
  napi_value result;
  if (drc.enabled || block == 0 || count == 0 || count > RC_MAX_ENTRIES) {
    napi_get_null(env, &result);
    return result;
  }
  /* One region, 2 MiB-aligned and advised for transparent huge pages: the
     entries fill as they are used, and a huge page costs one page fault
     where 4 KiB pages cost 512 (each a host exit on this project's VMs). */
  char *region = NULL;
  if (posix_memalign((void **) &region, 2 * 1024 * 1024, (size_t) block * count) != 0 || region == NULL) {
    napi_throw_error(env, NULL, "read cache: out of memory");
    return NULL;
  }
#ifdef MADV_HUGEPAGE
  madvise(region, (size_t) block * count, MADV_HUGEPAGE);
#endif
  napi_create_array_with_length(env, count, &result);
  for (uint32_t i = 0; i < count; i++) {
    char *data = region + (size_t) block * i;
    drc.entries[i].data = data;
    napi_value buf;
    napi_create_external_buffer(env, block, data, NULL, NULL, &buf);
    napi_set_element(env, result, i, buf);
  }
  uv_mutex_init(&drc.mut);
  drc.block = block;
  drc.count = (int) count;
  drc.env = env;
  napi_create_reference(env, argv[2], 1, &drc.handler);
  uv_async_init(uv_default_loop(), &drc.async, (uv_async_cb) disktro_rc_dispatch);
  uv_unref((uv_handle_t *) &drc.async);
  drc.enabled = 1;
  return result;
}

NAPI_METHOD(fuse_native_rc_gen) {
  napi_value result;
  napi_create_double(env, (double) __atomic_load_n(&drc.gen, __ATOMIC_SEQ_CST), &result);
  return result;
}

NAPI_METHOD(fuse_native_rc_invalidate) {
  disktro_rc_bump();
  return NULL;
}

/* (fh, block) -> the index of an entry now being filled by JS for them, or
   -1 when one is already there (or being filled), or none can be taken. */
NAPI_METHOD(fuse_native_rc_acquire) {
  NAPI_ARGV(2)
  NAPI_ARGV_UINT32(fh, 0)
  NAPI_ARGV_UINT32(block, 1)
  int32_t pick = -1;
  uv_mutex_lock(&drc.mut);
  uint64_t gen = __atomic_load_n(&drc.gen, __ATOMIC_SEQ_CST);
  uint64_t oldest = UINT64_MAX;
  int present = 0;
  for (int i = 0; i < drc.count; i++) {
    disktro_rc_entry_t *e = &drc.entries[i];
    if (e->fh == fh && e->block == block && (e->state == RC_FILLING || (e->state == RC_READY && e->gen == gen))) present = 1;
    if (e->state == RC_FILLING || e->pins > 0) continue;
    /* free or stale entries first, then the least recently used */
    uint64_t age = e->state == RC_FREE || e->gen != gen ? 0 : e->used + 1;
    if (age < oldest) {
      oldest = age;
      pick = i;
    }
  }
  if (present) pick = -1;
  if (pick >= 0) {
    disktro_rc_entry_t *e = &drc.entries[pick];
    e->state = RC_FILLING;
    e->fh = fh;
    e->block = block;
    e->hinted = 0;
  }
  uv_mutex_unlock(&drc.mut);
  NAPI_RETURN_INT32(pick)
}

/* (index, bytes filled or -1, generation read before filling) -> whether it
   now serves reads: not when anything bumped the generation meanwhile. */
NAPI_METHOD(fuse_native_rc_commit) {
  NAPI_ARGV(3)
  NAPI_ARGV_INT32(index, 0)
  NAPI_ARGV_INT32(n, 1)
  double gen;
  napi_get_value_double(env, argv[2], &gen);
  int ok = 0;
  if (index >= 0 && index < drc.count) {
    uv_mutex_lock(&drc.mut);
    disktro_rc_entry_t *e = &drc.entries[index];
    if (e->state == RC_FILLING) {
      ok = n >= 0 && (size_t) n <= drc.block && (uint64_t) gen == __atomic_load_n(&drc.gen, __ATOMIC_SEQ_CST);
      e->state = ok ? RC_READY : RC_FREE;
      e->gen = (uint64_t) gen;
      e->valid = ok ? (size_t) n : 0;
      e->used = ++drc.tick;
    }
    uv_mutex_unlock(&drc.mut);
  }
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

/* (ns): how long a FUSE thread spins for JS's answer before it sleeps; 0: never */
NAPI_METHOD(fuse_native_spin) {
  NAPI_ARGV(1)
  NAPI_ARGV_UINT32(ns, 0)
  __atomic_store_n(&disktro_spin_ns, (long) ns, __ATOMIC_RELAXED);
  return NULL;
}

/* -> [reads served here, reads passed to JS] */
NAPI_METHOD(fuse_native_rc_stats) {
  uv_mutex_lock(&drc.mut);
  double counts[2] = { (double) drc.hits, (double) drc.misses };
  uv_mutex_unlock(&drc.mut);
  return disktro_numbers(env, counts, 2);
}

`

  // (g) attribute cache
  const acOps = String.raw`
/* disktro patch: attribute cache operations */
static uint32_t disktro_ac_slot (const char *path) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const unsigned char *c = (const unsigned char *) path; *c != 0; c++) h = (h ^ *c) * 16777619u;
  return h & (AC_SLOTS - 1);
}

/* 1 and *st filled when path has attributes stored under the current generation */
static int disktro_ac_get (const char *path, struct stat *st) {
  if (!__atomic_load_n(&dac.enabled, __ATOMIC_SEQ_CST) || fuse_get_context()->private_data != dac.owner) return 0;
  disktro_ac_slot_t *s = &dac.slots[disktro_ac_slot(path)];
  int hit = 0;
  uv_mutex_lock(&dac.mut);
  if (disktro_ac_valid(s, path, __atomic_load_n(&dac.gen, __ATOMIC_SEQ_CST))) {
    *st = s->st;
    hit = 1;
    dac.hits++;
  }
  uv_mutex_unlock(&dac.mut);
  return hit;
}

/* A queued write of a regular file ending at "end": when the path's entry is
   current, it now shows the write (size, mtime and ctime "now", st_blocks as
   the VFS counts buffered data) under a new generation, which drops every
   other entry; 1 then. 0: nothing stored, the caller bumps. */
static int disktro_ac_write_predict (const char *path, uint64_t end, double now) {
  if (!__atomic_load_n(&dac.enabled, __ATOMIC_SEQ_CST) || fuse_get_context()->private_data != dac.owner) return 0;
  disktro_ac_slot_t *s = &dac.slots[disktro_ac_slot(path)];
  int done = 0;
  uv_mutex_lock(&dac.mut);
  uint64_t gen = __atomic_load_n(&dac.gen, __ATOMIC_SEQ_CST);
  if (disktro_ac_valid(s, path, gen) && S_ISREG(s->st.st_mode)) {
    /* The file's other names drop what they hold; this one shows the write.
       A global bump meanwhile leaves it stored under an old generation. */
    uint64_t *ig = disktro_ac_igen((uint64_t) s->st.st_ino);
    (*ig)++;
    if ((uint64_t) s->st.st_size < end) s->st.st_size = (off_t) end;
    disktro_set_ms(&s->st.st_mtim, now);
    disktro_set_ms(&s->st.st_ctim, now);
    s->st.st_blocks = (s->st.st_size + 511) / 512;
    s->gen = gen;
    s->igen = *ig;
    done = 1;
  }
  uv_mutex_unlock(&dac.mut);
  return done;
}

/* No write-behind barrier on a hit: a queued write bumped the generation
   before its write(2) returned, so no entry from before it is current. */
/* 1 when path's directory is known whole and holds no such name (i). */
static int disktro_ac_absent (const char *path) {
  if (!__atomic_load_n(&dac.enabled, __ATOMIC_SEQ_CST) || fuse_get_context()->private_data != dac.owner) return 0;
  const char *slash = strrchr(path, '/');
  if (slash == NULL || slash[1] == 0) return 0;
  size_t plen = slash == path ? 1 : (size_t) (slash - path);
  int absent = 0;
  uv_mutex_lock(&dac.mut);
  disktro_ac_dir_t *d = disktro_dir_find(path, plen);
  if (d != NULL && !disktro_dir_has(d, slash + 1)) {
    absent = 1;
    d->used = ++dac.dir_tick;
    dac.absent++;
  }
  uv_mutex_unlock(&dac.mut);
  return absent;
}

static int disktro_getattr (const char *path, struct stat *stat) {
  if (disktro_ac_get(path, stat)) return 0;
  if (disktro_ac_absent(path)) return -ENOENT;
  if (dac.enabled) __atomic_fetch_add(&dac.misses, 1, __ATOMIC_RELAXED);
  return fuse_native_getattr(path, stat);
}

static int disktro_fgetattr (const char *path, struct stat *stat, struct fuse_file_info *info) {
  if (disktro_ac_get(path, stat)) return 0;
  if (dac.enabled) __atomic_fetch_add(&dac.misses, 1, __ATOMIC_RELAXED);
  return fuse_native_fgetattr(path, stat, info);
}

static int dac_initialised = 0;

/* (the mount's fuse-native _thread buffer) -> whether the cache now answers
   its getattrs: not while it answers another mount's. */
NAPI_METHOD(fuse_native_ac_enable) {
  NAPI_ARGV(1)
  NAPI_ARGV_BUFFER(owner, 0)
  int ok = !dac.enabled && owner_len > 0;
  if (ok) {
    if (!dac_initialised) uv_mutex_init(&dac.mut);
    dac_initialised = 1;
    disktro_ac_bump(); /* nothing from an earlier mount serves this one */
    dac.owner = owner;
    __atomic_store_n(&dac.enabled, 1, __ATOMIC_SEQ_CST);
  }
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

/* Before the mount goes: no getattr is answered from the cache after this. */
NAPI_METHOD(fuse_native_ac_disable) {
  __atomic_store_n(&dac.enabled, 0, __ATOMIC_SEQ_CST);
  disktro_ac_bump();
  return NULL;
}

NAPI_METHOD(fuse_native_ac_bump) {
  disktro_ac_bump();
  return NULL;
}

/* (ino): the entries of that inode's names are dropped */
NAPI_METHOD(fuse_native_ac_bump_ino) {
  NAPI_ARGV(1)
  double ino;
  napi_get_value_double(env, argv[0], &ino);
  if (!dac_initialised) return NULL;
  uv_mutex_lock(&dac.mut);
  (*disktro_ac_igen((uint64_t) ino))++;
  uv_mutex_unlock(&dac.mut);
  return NULL;
}

/* (path, inode number) of a directory JS just made, before answering the
   mkdir: known whole, and empty, until its inode or everything is bumped.
   Refused while a queued operation is outstanding, as fuse_native_ac_put. */
NAPI_METHOD(fuse_native_ac_dir_empty) {
  NAPI_ARGV(2)
  NAPI_ARGV_UTF8_MALLOC(path, 0)
  double ino;
  napi_get_value_double(env, argv[1], &ino);
  int ok = dac.enabled;
  if (ok && dwb.enabled) {
    uv_mutex_lock(&dwb.mut);
    ok = dwb.outstanding == 0;
    uv_mutex_unlock(&dwb.mut);
  }
  if (ok) {
    uv_mutex_lock(&dac.mut);
    disktro_ac_dir_t *pick = NULL;
    for (int i = 0; i < AC_DIRS; i++) {
      disktro_ac_dir_t *d = &dac.dirs[i];
      if (d->path != NULL && strcmp(d->path, path) == 0) { pick = d; break; }
      if (pick == NULL || (pick->path != NULL && (d->path == NULL || d->used < pick->used))) pick = d;
    }
    disktro_dir_drop(pick);
    pick->path = path;
    path = NULL;
    pick->ino = (uint64_t) ino;
    pick->gen = __atomic_load_n(&dac.gen, __ATOMIC_SEQ_CST);
    pick->igen = *disktro_ac_igen((uint64_t) ino);
    pick->used = ++dac.dir_tick;
    uv_mutex_unlock(&dac.mut);
  }
  free(path);
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

/* (path, Uint32Array of 18 in fuse-native's getattr layout) -> whether it
   was stored: not while a queued write is still to be applied, as JS's
   attributes do not show it yet (the write bumps the generation again once
   applied, but this entry would be stored under the bumped one). Called on
   the event loop right after JS read the attributes, so no JS change can
   come between the reading and the storing. */
NAPI_METHOD(fuse_native_ac_put) {
  NAPI_ARGV(2)
  NAPI_ARGV_BUFFER_CAST(uint32_t *, ints, 1)
  NAPI_ARGV_UTF8_MALLOC(path, 0)
  int ok = dac.enabled && ints_len >= 18 * sizeof(uint32_t);
  if (ok && dwb.enabled) {
    uv_mutex_lock(&dwb.mut);
    ok = dwb.outstanding == 0;
    uv_mutex_unlock(&dwb.mut);
  }
  if (ok) {
    struct stat st;
    memset(&st, 0, sizeof(st));
    populate_stat(ints, &st);
    disktro_ac_slot_t *s = &dac.slots[disktro_ac_slot(path)];
    uv_mutex_lock(&dac.mut);
    if (s->path != NULL && strcmp(s->path, path) == 0) {
      free(path);
    } else {
      free(s->path);
      s->path = path;
    }
    path = NULL;
    s->st = st;
    s->gen = __atomic_load_n(&dac.gen, __ATOMIC_SEQ_CST);
    s->igen = *disktro_ac_igen((uint64_t) st.st_ino);
    uv_mutex_unlock(&dac.mut);
  }
  free(path);
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

/* -> [getattrs answered here, getattrs passed to JS, attribute changes answered at once, creates answered at once, getattrs answered ENOENT] */
NAPI_METHOD(fuse_native_ac_stats) {
  if (dac_initialised) uv_mutex_lock(&dac.mut);
  double counts[5] = { (double) dac.hits, (double) dac.misses, (double) dac.behind, (double) dcb.behind, (double) dac.absent };
  if (dac_initialised) uv_mutex_unlock(&dac.mut);
  return disktro_numbers(env, counts, 5);
}

`

  // (h) attribute changes behind
  const abOps = String.raw`
/* disktro patch: chmod, chown and utimens answered at once (see (h)) */


typedef void (*disktro_predict_t) (struct stat *st, const disktro_wb_item_t *it);

/* 1 when the change is queued for JS and the path's attribute-cache entry
   now shows it; 0 when the caller must hand it to JS and wait, as before:
   the entry is not current (so what the change leads to is not known here),
   or an operation is waiting for the queue to drain. */
static int disktro_attr_behind (const char *path, const disktro_wb_item_t *proto, disktro_predict_t predict) {
  if (!dwb.enabled || dwb.attr_handler == NULL || !__atomic_load_n(&dac.enabled, __ATOMIC_SEQ_CST) || fuse_get_context()->private_data != dac.owner) return 0;
  char *p = strdup(path);
  disktro_wb_item_t *item = malloc(sizeof(disktro_wb_item_t));
  if (p == NULL || item == NULL) {
    free(p);
    free(item);
    return 0;
  }
  *item = *proto;
  item->next = NULL;
  item->path = p;
  disktro_ac_slot_t *s = &dac.slots[disktro_ac_slot(path)];
  int queued = 0;
  uv_mutex_lock(&dac.mut);
  uint64_t gen = __atomic_load_n(&dac.gen, __ATOMIC_SEQ_CST);
  if (disktro_ac_valid(s, path, gen)) {
    uv_mutex_lock(&dwb.mut);
    if (dwb.barrier_waiters == 0) {
      disktro_wb_append(item);
      queued = 1;
    }
    uv_mutex_unlock(&dwb.mut);
    if (queued) {
      /* The file's other names (hard links) drop what they hold; this one
         shows the change. A global bump meanwhile leaves it stored under an
         old generation. */
      uint64_t *ig = disktro_ac_igen((uint64_t) s->st.st_ino);
      (*ig)++;
      predict(&s->st, proto); /* not item: once queued it is the event loop's, maybe freed already */
      s->gen = gen;
      s->igen = *ig;
      dac.behind++;
    }
  }
  uv_mutex_unlock(&dac.mut);
  if (!queued) {
    free(p);
    free(item);
    return 0;
  }
  uv_async_send(&dwb.async);
  return 1;
}

static void disktro_predict_chmod (struct stat *st, const disktro_wb_item_t *it) {
  st->st_mode = (st->st_mode & S_IFMT) | (it->a & 07777);
  disktro_set_ms(&st->st_ctim, it->t3);
}

static void disktro_predict_chown (struct stat *st, const disktro_wb_item_t *it) {
  if (it->a != 0xFFFFFFFFu) st->st_uid = it->a;
  if (it->b != 0xFFFFFFFFu) st->st_gid = it->b;
  disktro_set_ms(&st->st_ctim, it->t3);
}

static void disktro_predict_utimens (struct stat *st, const disktro_wb_item_t *it) {
  if (it->t1 >= 0) disktro_set_ms(&st->st_atim, it->t1);
  if (it->t2 >= 0) disktro_set_ms(&st->st_mtim, it->t2);
  disktro_set_ms(&st->st_ctim, it->t3);
}

static int disktro_chmod (const char *path, mode_t mode) {
  disktro_wb_item_t it;
  memset(&it, 0, sizeof(it));
  it.kind = DISKTRO_WB_CHMOD;
  it.a = (uint32_t) mode;
  it.t3 = disktro_now_ms();
  if (disktro_attr_behind(path, &it, disktro_predict_chmod)) return 0;
  return fuse_native_chmod(path, mode);
}

static int disktro_chown (const char *path, uid_t uid, gid_t gid) {
  disktro_wb_item_t it;
  memset(&it, 0, sizeof(it));
  it.kind = DISKTRO_WB_CHOWN;
  it.a = (uint32_t) uid;
  it.b = (uint32_t) gid;
  it.t3 = disktro_now_ms();
  if (disktro_attr_behind(path, &it, disktro_predict_chown)) return 0;
  return fuse_native_chown(path, uid, gid);
}

static double disktro_utime_ms (const struct timespec *ts, double now) {
  if (ts->tv_nsec == UTIME_OMIT) return -1;
  if (ts->tv_nsec == UTIME_NOW) return now;
  return ts->tv_sec < 0 ? -2 : (double) ts->tv_sec * 1000 + (double) (ts->tv_nsec / 1000000);
}

static int disktro_utimens (const char *path, const struct timespec tv[2]) {
  disktro_wb_item_t it;
  memset(&it, 0, sizeof(it));
  it.kind = DISKTRO_WB_UTIMENS;
  it.t3 = disktro_now_ms();
  it.t1 = disktro_utime_ms(&tv[0], it.t3);
  it.t2 = disktro_utime_ms(&tv[1], it.t3);
  /* a time before 1970 goes the long way */
  if (it.t1 != -2 && it.t2 != -2 && disktro_attr_behind(path, &it, disktro_predict_utimens)) return 0;
  return fuse_native_utimens(path, tv);
}

/* (i) 1 when the create is queued for JS and answered here: its directory's
   entry is current (so it exists, is a directory, and its new times are
   known), the path has no current entry, an inode number is at hand, and no
   operation waits for the queue to drain. 0: the caller goes to JS. */
static int disktro_create_behind (const char *path, mode_t mode, struct fuse_file_info *info) {
  if (!dwb.enabled || !__atomic_load_n(&dcb.enabled, __ATOMIC_SEQ_CST) || !__atomic_load_n(&dac.enabled, __ATOMIC_SEQ_CST) || fuse_get_context()->private_data != dac.owner) return 0;
  const char *slash = strrchr(path, '/');
  if (slash == NULL || slash[1] == 0 || strlen(slash + 1) > 255) return 0;
  size_t plen = slash == path ? 1 : (size_t) (slash - path);
  char *parent = malloc(plen + 1);
  char *p = strdup(path);
  char *q = strdup(path);
  disktro_wb_item_t *item = malloc(sizeof(disktro_wb_item_t));
  if (parent == NULL || p == NULL || q == NULL || item == NULL) {
    free(parent);
    free(p);
    free(q);
    free(item);
    return 0;
  }
  memcpy(parent, path, plen);
  parent[plen] = 0;
  memset(item, 0, sizeof(disktro_wb_item_t));
  item->kind = DISKTRO_WB_CREATE;
  item->path = p;
  item->a = (uint32_t) (mode & 07777);
  /* Once queued, the item is the event loop's: it may be applied and freed
     before this thread goes on, so nothing below reads it. */
  double now = disktro_now_ms();
  uint64_t ino = 0, fh = 0;
  item->t3 = now;
  int queued = 0;
  disktro_ac_slot_t *ds = &dac.slots[disktro_ac_slot(parent)];
  disktro_ac_slot_t *fs = &dac.slots[disktro_ac_slot(path)];
  uv_mutex_lock(&dac.mut);
  uint64_t gen = __atomic_load_n(&dac.gen, __ATOMIC_SEQ_CST);
  disktro_ac_dir_t *whole = disktro_dir_find(parent, plen);
  if (disktro_ac_valid(ds, parent, gen) && S_ISDIR(ds->st.st_mode) && !disktro_ac_valid(fs, path, gen) && ds != fs &&
      (whole == NULL || !disktro_dir_has(whole, slash + 1))) {
    uv_mutex_lock(&dwb.mut);
    if (dwb.barrier_waiters == 0 && dcb.count > 0) {
      item->ino = ino = dcb.inos[--dcb.count];
      item->fh = fh = CB_FH_BASE | (__atomic_add_fetch(&dcb.next_fh, 1, __ATOMIC_SEQ_CST) & 0x3FFFFFFFu);
      disktro_wb_append(item);
      queued = 1;
    }
    uv_mutex_unlock(&dwb.mut);
    if (queued) {
      /* The directory shows the new entry's times (JS stores the same). */
      disktro_set_ms(&ds->st.st_mtim, now);
      disktro_set_ms(&ds->st.st_ctim, now);
      /* The new file, as JS's getattr would show it once applied. */
      struct stat st;
      memset(&st, 0, sizeof(st));
      st.st_mode = S_IFREG | (mode & 07777);
      st.st_uid = dcb.uid;
      st.st_gid = dcb.gid;
      st.st_nlink = 1;
      st.st_ino = (uint32_t) ino; /* as fuse-native's getattr layout carries it */
      st.st_blksize = 4096;
      disktro_set_ms(&st.st_atim, now);
      disktro_set_ms(&st.st_mtim, now);
      disktro_set_ms(&st.st_ctim, now);
      free(fs->path);
      fs->path = q;
      q = NULL;
      fs->st = st;
      fs->gen = gen;
      fs->igen = *disktro_ac_igen((uint64_t) st.st_ino);
      dcb.behind++;
      if (whole != NULL && !disktro_dir_add(whole, slash + 1)) disktro_dir_drop(whole);
    }
  }
  uv_mutex_unlock(&dac.mut);
  free(parent);
  free(q);
  if (!queued) {
    free(p);
    free(item);
    return 0;
  }
  info->fh = fh;
  uv_async_send(&dwb.async);
  return 1;
}

static int disktro_create (const char *path, mode_t mode, struct fuse_file_info *info) {
  if (disktro_create_behind(path, mode, info)) return 0;
  return fuse_native_create(path, mode, info);
}

`
  src = replaceOnce(src, 'NAPI_METHOD(fuse_native_mount) {', wbOps + rcOps + acOps + abOps + 'NAPI_METHOD(fuse_native_mount) {', 'fuse_native_mount definition')
  // (k) directories' attributes held by the kernel
  const dirAttr = String.raw`
/* disktro patch: directories' attributes held by the kernel (see scripts/build-fuse.cjs (k)) */
#include <dlfcn.h>
#include <sys/stat.h>
static double disktro_dir_attr_timeout = 0; /* seconds; set by JS before the mount */
static uint64_t disktro_dir_attr_held = 0; /* atomic: replies given it */
static int (*disktro_real_reply_attr) (fuse_req_t, const struct stat *, double);
static int (*disktro_real_reply_entry) (fuse_req_t, const struct fuse_entry_param *);

/* libfuse's own definition, under the version the high-level code binds to. */
static void *disktro_libfuse_fn (const char *name, const char *version) {
  void *f = NULL;
  void *h = dlopen("libfuse.so.2", RTLD_LAZY | RTLD_NOLOAD);
  if (h != NULL) {
    f = dlvsym(h, name, version);
    if (f == NULL) f = dlsym(h, name);
    dlclose(h);
  }
  if (f == NULL) f = dlvsym(RTLD_NEXT, name, version);
  if (f == NULL) f = dlsym(RTLD_NEXT, name);
  if (f == NULL) abort(); /* the addon is linked against libfuse: it is loaded */
  return f;
}

__attribute__((visibility("default"))) int fuse_reply_attr (fuse_req_t req, const struct stat *attr, double attr_timeout) {
  if (disktro_real_reply_attr == NULL) disktro_real_reply_attr = disktro_libfuse_fn("fuse_reply_attr", "FUSE_2.4");
  double held = disktro_dir_attr_timeout;
  if (attr != NULL && S_ISDIR(attr->st_mode) && held > attr_timeout) {
    attr_timeout = held;
    __atomic_add_fetch(&disktro_dir_attr_held, 1, __ATOMIC_RELAXED);
  }
  return disktro_real_reply_attr(req, attr, attr_timeout);
}

__attribute__((visibility("default"))) int fuse_reply_entry (fuse_req_t req, const struct fuse_entry_param *e) {
  if (disktro_real_reply_entry == NULL) disktro_real_reply_entry = disktro_libfuse_fn("fuse_reply_entry", "FUSE_2.4");
  double held = disktro_dir_attr_timeout;
  if (e != NULL && e->ino != 0 && S_ISDIR(e->attr.st_mode) && held > e->attr_timeout) {
    struct fuse_entry_param c = *e;
    c.attr_timeout = held;
    __atomic_add_fetch(&disktro_dir_attr_held, 1, __ATOMIC_RELAXED);
    return disktro_real_reply_entry(req, &c);
  }
  return disktro_real_reply_entry(req, e);
}

/* (seconds; a negative number leaves it) -> replies given the longer timeout so far */
NAPI_METHOD(fuse_native_dir_attr_timeout) {
  NAPI_ARGV(1)
  double seconds = 0;
  napi_get_value_double(env, argv[0], &seconds);
  if (seconds >= 0) disktro_dir_attr_timeout = seconds;
  napi_value out;
  napi_create_double(env, (double) __atomic_load_n(&disktro_dir_attr_held, __ATOMIC_RELAXED), &out);
  return out;
}
`
  src = replaceOnce(src, 'NAPI_METHOD(fuse_native_mount) {', dirAttr + 'NAPI_METHOD(fuse_native_mount) {', 'fuse_native_mount definition (k)')
  src = '#define _GNU_SOURCE /* disktro patch (k): dlvsym, RTLD_NEXT */\n' + src

  // (j) loop end
  const loopEnd = `
/* disktro patch: JS is told when the FUSE loop returns (see scripts/build-fuse.cjs (j)) */
#define DISKTRO_LOOP_END_MAX 16
static struct { void *owner; napi_threadsafe_function fn; } disktro_loop_end[DISKTRO_LOOP_END_MAX];
static uv_mutex_t disktro_loop_end_mut;
static uv_once_t disktro_loop_end_once = UV_ONCE_INIT;
static void disktro_loop_end_init (void) { uv_mutex_init(&disktro_loop_end_mut); }

static void disktro_loop_end_call (napi_env env, napi_value js_cb, void *context, void *data) {
  (void) context; (void) data;
  if (env == NULL || js_cb == NULL) return;
  napi_value global;
  napi_get_global(env, &global);
  napi_call_function(env, global, js_cb, 0, NULL, NULL);
}

/* The callback registered for this mount (its fuse_thread_t), taken out; NULL if none. */
static napi_threadsafe_function disktro_loop_end_take (void *owner) {
  napi_threadsafe_function fn = NULL;
  uv_once(&disktro_loop_end_once, disktro_loop_end_init);
  uv_mutex_lock(&disktro_loop_end_mut);
  for (int i = 0; i < DISKTRO_LOOP_END_MAX; i++) {
    if (disktro_loop_end[i].owner == owner && disktro_loop_end[i].fn != NULL) {
      fn = disktro_loop_end[i].fn;
      disktro_loop_end[i].fn = NULL;
      disktro_loop_end[i].owner = NULL;
      break;
    }
  }
  uv_mutex_unlock(&disktro_loop_end_mut);
  return fn;
}

/* (mount's _thread buffer, callback) -> whether registered: the callback is
   called once on the event loop after that mount's FUSE loop has returned */
NAPI_METHOD(fuse_native_on_loop_end) {
  NAPI_ARGV(2)
  NAPI_ARGV_BUFFER(owner, 0)
  napi_value name;
  napi_threadsafe_function tsfn;
  int ok = 0;
  napi_create_string_utf8(env, "disktro loop end", NAPI_AUTO_LENGTH, &name);
  if (owner_len > 0 && napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, NULL, disktro_loop_end_call, &tsfn) == napi_ok) {
    napi_unref_threadsafe_function(env, tsfn); /* never keeps the process alive */
    napi_threadsafe_function old = disktro_loop_end_take(owner);
    if (old != NULL) napi_release_threadsafe_function(old, napi_tsfn_release);
    uv_mutex_lock(&disktro_loop_end_mut);
    for (int i = 0; i < DISKTRO_LOOP_END_MAX && !ok; i++) {
      if (disktro_loop_end[i].fn == NULL) {
        disktro_loop_end[i].owner = owner;
        disktro_loop_end[i].fn = tsfn;
        ok = 1;
      }
    }
    uv_mutex_unlock(&disktro_loop_end_mut);
    if (!ok) napi_release_threadsafe_function(tsfn, napi_tsfn_release);
  }
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

`
  src = replaceOnce(src, 'static void* start_fuse_thread (void *data) {\n  fuse_thread_t *ft = (fuse_thread_t *) data;\n  fuse_loop_mt(ft->fuse);\n',
    loopEnd + 'static void* start_fuse_thread (void *data) {\n  fuse_thread_t *ft = (fuse_thread_t *) data;\n  fuse_loop_mt(ft->fuse);\n' +
    '  napi_threadsafe_function end = disktro_loop_end_take(ft);\n' +
    '  if (end != NULL) {\n    napi_call_threadsafe_function(end, NULL, napi_tsfn_nonblocking);\n    napi_release_threadsafe_function(end, napi_tsfn_release);\n  }\n',
    'start_fuse_thread loop')
  src = replaceOnce(src, '  if (implemented[op_flush]) ops.flush = fuse_native_flush;', '  if (implemented[op_flush]) ops.flush = disktro_flush;', 'flush registration')
  src = replaceOnce(src, '  if (implemented[op_fsync]) ops.fsync = fuse_native_fsync;', '  if (implemented[op_fsync]) ops.fsync = disktro_fsync;', 'fsync registration')
  src = replaceOnce(src, '  if (implemented[op_write]) ops.write = fuse_native_write;', '  if (implemented[op_write]) ops.write = disktro_write;', 'write registration')
  src = replaceOnce(src, '  if (implemented[op_release]) ops.release = fuse_native_release;', '  if (implemented[op_release]) ops.release = disktro_release;', 'release registration')
  src = replaceOnce(src, '  if (implemented[op_chmod]) ops.chmod = fuse_native_chmod;', '  if (implemented[op_chmod]) ops.chmod = disktro_chmod;', 'chmod registration')
  src = replaceOnce(src, '  if (implemented[op_chown]) ops.chown = fuse_native_chown;', '  if (implemented[op_chown]) ops.chown = disktro_chown;', 'chown registration')
  src = replaceOnce(src, '  if (implemented[op_getattr]) ops.getattr = fuse_native_getattr;', '  if (implemented[op_getattr]) ops.getattr = disktro_getattr;', 'getattr registration')
  src = replaceOnce(src, '  if (implemented[op_fgetattr]) ops.fgetattr = fuse_native_fgetattr;', '  if (implemented[op_fgetattr]) ops.fgetattr = disktro_fgetattr;', 'fgetattr registration')
  src = replaceOnce(src, '  if (implemented[op_read]) ops.read = fuse_native_read;', '  if (implemented[op_read]) ops.read = disktro_read;', 'read registration')
  src = replaceOnce(src, '  if (implemented[op_create]) ops.create = fuse_native_create;', '  if (implemented[op_create]) ops.create = disktro_create;', 'create registration')
  src = replaceOnce(src, '  if (implemented[op_truncate]) ops.truncate = fuse_native_truncate;', '  if (implemented[op_truncate]) ops.truncate = disktro_truncate;', 'truncate registration')
  src = replaceOnce(src, '  if (implemented[op_ftruncate]) ops.ftruncate = fuse_native_ftruncate;', '  if (implemented[op_ftruncate]) ops.ftruncate = disktro_ftruncate;', 'ftruncate registration')
  src = replaceOnce(src, '  NAPI_EXPORT_FUNCTION(fuse_native_unmount)\n',
    '  NAPI_EXPORT_FUNCTION(fuse_native_unmount)\n  NAPI_EXPORT_FUNCTION(fuse_native_write_behind)\n  NAPI_EXPORT_FUNCTION(fuse_native_signal_wb)\n  NAPI_EXPORT_FUNCTION(fuse_native_wb_outstanding)\n  NAPI_EXPORT_FUNCTION(fuse_native_cb_enable)\n  NAPI_EXPORT_FUNCTION(fuse_native_cb_inos)\n' +
    '  NAPI_EXPORT_FUNCTION(fuse_native_rc_enable)\n  NAPI_EXPORT_FUNCTION(fuse_native_rc_gen)\n  NAPI_EXPORT_FUNCTION(fuse_native_rc_invalidate)\n' +
    '  NAPI_EXPORT_FUNCTION(fuse_native_rc_acquire)\n  NAPI_EXPORT_FUNCTION(fuse_native_rc_commit)\n  NAPI_EXPORT_FUNCTION(fuse_native_rc_stats)\n' +
    '  NAPI_EXPORT_FUNCTION(fuse_native_spin)\n  NAPI_EXPORT_FUNCTION(fuse_native_on_loop_end)\n  NAPI_EXPORT_FUNCTION(fuse_native_dir_attr_timeout)\n' +
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
  console.log(`disktro: fuse-native rebuilt with utimens fixes, write-behind, read cache, spin, attribute cache, creates behind and loop end in ${elapsed()}`)
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
