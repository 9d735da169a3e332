
/* disktro patch: write-behind (see scripts/build-fuse.cjs) */
#include <errno.h>
#include <time.h>
#include <sys/mman.h>
#define WB_MAX_BYTES (4 * 1024 * 1024)
#define WB_SLOT_BYTES (128 * 1024) /* libfuse 2.9's largest write with big_writes */
#define WB_FREE_MAX 64
#define WB_BIG_SLOT_BYTES (1024 * 1024) /* the largest write (o) asks for */
#define WB_BIG_FREE_MAX 8

/* An item and its data are one allocation, reused through a free list of
   its size class (128 KiB or, for (o)'s larger writes, 1 MiB): a fresh
   128 KiB malloc per write is an mmap, and its free an munmap. */
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
  uint32_t uid, gid; /* create: the owner shown (p) */
  double t1, t2, t3; /* utimens: atime, mtime (ms, -1: leave it); all: ctime (ms) */
} disktro_wb_item_t;

#define DISKTRO_WB_WRITE 0
#define DISKTRO_WB_CHMOD 1
#define DISKTRO_WB_CHOWN 2
#define DISKTRO_WB_UTIMENS 3
#define DISKTRO_WB_CREATE 4
#define DISKTRO_WB_RELEASE 5 /* (l) */
#define DISKTRO_WB_CHECKPOINT 6 /* (l): commit the handle's file and mark its frame (t1) */

/* (i) creates behind */
#define CB_INOS 256
#define CB_FH_BASE 0x40000000u /* JS numbers its own handles from 1 */
static struct {
  int enabled;
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
  disktro_wb_item_t *free_items[2]; /* by size class: WB_SLOT_BYTES, WB_BIG_SLOT_BYTES */
  size_t free_count[2];
  uint64_t writes;  /* queued since the mount */
  size_t largest;   /* the largest of them, in bytes */
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

/* Queues an item answered at once, unless an operation waits for the queue
   to drain (then the caller goes to JS): 1 when queued. */
static int disktro_wb_append_unless_draining (disktro_wb_item_t *item) {
  int queued = 0;
  uv_mutex_lock(&dwb.mut);
  if (dwb.barrier_waiters == 0) {
    disktro_wb_append(item);
    queued = 1;
  }
  uv_mutex_unlock(&dwb.mut);
  return queued;
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


