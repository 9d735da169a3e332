
/* disktro patch: close behind (see scripts/build-fuse.cjs (l); opt-in from JS).
   A handle from a create this addon answered (i) keeps a copy of what was
   queued for it: the create, its writes, and the attribute changes of its
   path. At FLUSH the copy is sealed into one frame (ChaCha20-Poly1305,
   OpenSSL as node exports it) and appended to the redo log with one
   write(2), and FLUSH is answered here: the data survives kill -9 from
   then on. RELEASE is queued for JS like a write (DISKTRO_WB_RELEASE); JS
   releases the file (which commits it) and marks the frame applied.
   When a copy with a frame stops following its file (a truncate, a write
   past CLB_MAX_BYTES, an attribute change that goes to JS: a descriptor
   closed while a dup of it stays open), a checkpoint is queued ahead of
   that change (DISKTRO_WB_CHECKPOINT): JS commits the file, marks the
   frame and drops the copy before it applies the change, so the frame can
   never be replayed over what came after it.
   Frame: u32 length of the rest | u64 seq | 12-byte nonce (4 zero bytes, seq:
   the key is new with each log, fuse/close-behind.ts) |
   ciphertext | 16-byte tag; associated data: the 8 seq bytes.
   Plaintext: "DCB2" | u64 fh | u64 ino | u32 mode | u32 uid | u32 gid (the
   new file's owner, (p); "DCB1" frames of older addons have none) | f64 time | u16 path
   length | path | records: 1 write (f64 time | u64 offset | u32 length |
   data), 2 attribute change (u8 kind | u32 a | u32 b | f64 t1 t2 t3). */
#include <openssl/evp.h>

#define CLB_SLOTS 512 /* handles between create and JS's release; past them closes go to JS */
#define CLB_MAX_BYTES (60 * 1024) /* data a handle may write and still close behind */

typedef struct {
  int used;
  int bad; /* something happened to it that the copy cannot show */
  int lost; /* bad because the copy could not grow: its frame still needs its checkpoint */
  uint64_t fh;
  uint64_t path_hash;
  char *path;
  uint8_t *buf;
  size_t len, cap;
  uint64_t written; /* bytes of data in the copy */
  uint64_t last_seq; /* its last frame, 0: none yet */
  int releasing; /* its RELEASE is queued: JS marks its last frame before anything else reaches JS */
} disktro_clb_slot_t;

static struct {
  int enabled;
  int fd;
  uint8_t key[32];
  uint64_t seq;
  uv_mutex_t mut;
  disktro_clb_slot_t slots[CLB_SLOTS];
  uint64_t frames, flushes_passed, checkpoints;
  int paused; /* little room left: closes go to JS, which reports ENOSPC */
  int test_no_grow; /* tests (DISKTRO_TEST_CLB_NO_GROW=1): a copy with a frame cannot grow, as when out of memory */
} dclb;

static uint64_t disktro_clb_hash (const char *s) {
  uint64_t h = 1469598103934665603ull;
  while (*s) h = (h ^ (uint8_t) *s++) * 1099511628211ull;
  return h;
}

/* Slots are probed from the handle's own: most finds look at one. */
static disktro_clb_slot_t *disktro_clb_find (uint64_t fh) {
  for (int k = 0; k < CLB_SLOTS; k++) {
    disktro_clb_slot_t *s = &dclb.slots[(fh + k) % CLB_SLOTS];
    if (s->used && s->fh == fh) return s;
  }
  return NULL;
}

static disktro_clb_slot_t *disktro_clb_find_path (const char *path) {
  uint64_t h = disktro_clb_hash(path);
  for (int i = 0; i < CLB_SLOTS; i++) {
    disktro_clb_slot_t *s = &dclb.slots[i];
    if (s->used && s->path_hash == h && strcmp(s->path, path) == 0) return s;
  }
  return NULL;
}

static int disktro_clb_put (disktro_clb_slot_t *s, const void *p, size_t n) {
  if (s->bad) return 0;
  if (s->len + n > s->cap) {
    size_t cap = s->cap * 2;
    while (cap < s->len + n) cap *= 2;
    uint8_t *b = dclb.test_no_grow && s->last_seq > 0 ? NULL : realloc(s->buf, cap);
    if (b == NULL) { /* the caller checkpoints a frame it wrote (disktro_clb_spoil) */
      s->bad = 1;
      s->lost = 1;
      return 0;
    }
    s->buf = b;
    s->cap = cap;
  }
  memcpy(s->buf + s->len, p, n);
  s->len += n;
  return 1;
}

static void disktro_clb_drop (disktro_clb_slot_t *s) {
  free(s->path);
  free(s->buf);
  memset(s, 0, sizeof(*s));
}

/* (i) answered a create: its copy starts. */
static void disktro_clb_start (uint64_t fh, uint64_t ino, const char *path, uint32_t mode, uint32_t uid, uint32_t gid, double time) {
  if (!__atomic_load_n(&dclb.enabled, __ATOMIC_SEQ_CST)) return;
  uv_mutex_lock(&dclb.mut);
  disktro_clb_slot_t *s = NULL;
  for (int k = 0; k < CLB_SLOTS && s == NULL; k++) if (!dclb.slots[(fh + k) % CLB_SLOTS].used) s = &dclb.slots[(fh + k) % CLB_SLOTS];
  if (s != NULL) {
    s->used = 1;
    s->fh = fh;
    s->path_hash = disktro_clb_hash(path);
    s->path = strdup(path);
    s->cap = 4096;
    s->buf = malloc(s->cap);
    uint16_t plen = (uint16_t) strlen(path);
    if (s->path == NULL || s->buf == NULL) {
      s->bad = 1;
    } else {
      disktro_clb_put(s, "DCB2", 4);
      disktro_clb_put(s, &fh, 8);
      disktro_clb_put(s, &ino, 8);
      disktro_clb_put(s, &mode, 4);
      disktro_clb_put(s, &uid, 4);
      disktro_clb_put(s, &gid, 4);
      disktro_clb_put(s, &time, 8);
      disktro_clb_put(s, &plen, 2);
      disktro_clb_put(s, path, plen);
    }
  }
  uv_mutex_unlock(&dclb.mut);
}

static void disktro_clb_checkpoint (uint64_t fh, uint64_t seq, char *path);
static uint64_t disktro_clb_spoil (disktro_clb_slot_t *s, char **path);

/* A queued chmod, chown or utimens (h) of a path with a copy. (A checkpoint
   after a failed copy goes behind this change, ahead of any later one.) */
static void disktro_clb_attr (const char *path, const disktro_wb_item_t *it) {
  if (!__atomic_load_n(&dclb.enabled, __ATOMIC_SEQ_CST)) return;
  uv_mutex_lock(&dclb.mut);
  disktro_clb_slot_t *s = disktro_clb_find_path(path);
  char *p = NULL;
  uint64_t seq = 0, fh = 0;
  if (s != NULL && !s->bad) {
    uint8_t type = 2, kind = (uint8_t) it->kind;
    disktro_clb_put(s, &type, 1);
    disktro_clb_put(s, &kind, 1);
    disktro_clb_put(s, &it->a, 4);
    disktro_clb_put(s, &it->b, 4);
    disktro_clb_put(s, &it->t1, 8);
    disktro_clb_put(s, &it->t2, 8);
    disktro_clb_put(s, &it->t3, 8);
    if (s->lost) { /* out of memory: the change goes on without the copy */
      fh = s->fh;
      seq = disktro_clb_spoil(s, &p);
    }
  }
  uv_mutex_unlock(&dclb.mut);
  if (seq > 0) disktro_clb_checkpoint(fh, seq, p);
}

/* Queues a checkpoint of handle fh, whose frame seq its copy no longer
   follows, ahead of whatever the caller queues or sends to JS next (it
   waits for the queue). Past any operation waiting for the queue: one
   item, not a stream. JS applies it with the handle's (fh, seq). */
static void disktro_clb_checkpoint (uint64_t fh, uint64_t seq, char *path) {
  disktro_wb_item_t *item = calloc(1, sizeof(disktro_wb_item_t));
  if (item == NULL || path == NULL) { /* the frame stays unmarked until the release, as before */
    free(item);
    free(path);
    return;
  }
  item->kind = DISKTRO_WB_CHECKPOINT;
  item->path = path;
  item->fh = fh;
  item->a = (uint32_t) fh;
  item->t1 = (double) seq;
  uv_mutex_lock(&dwb.mut);
  disktro_wb_append(item);
  uv_mutex_unlock(&dwb.mut);
  uv_async_send(&dwb.async);
  __atomic_add_fetch(&dclb.checkpoints, 1, __ATOMIC_RELAXED);
}

/* With dclb.mut held: the slot's copy stops following its file. Returns the
   seq of its last frame when it has one (then *path is a copy of its path
   for the checkpoint), else 0. */
static uint64_t disktro_clb_spoil (disktro_clb_slot_t *s, char **path) {
  if (s == NULL || (s->bad && !s->lost) || s->releasing) return 0;
  s->bad = 1;
  s->lost = 0;
  if (s->last_seq == 0) return 0;
  *path = strdup(s->path);
  return s->last_seq;
}

/* A change the copy cannot show (goes to JS the long way): that handle's
   next FLUSH goes to JS too, and a frame it wrote is checkpointed first.
   By path or by handle. */
static void disktro_clb_bad (const char *path, uint64_t fh) {
  if (!__atomic_load_n(&dclb.enabled, __ATOMIC_SEQ_CST)) return;
  char *p = NULL;
  uv_mutex_lock(&dclb.mut);
  disktro_clb_slot_t *s = path != NULL ? disktro_clb_find_path(path) : disktro_clb_find(fh);
  uint64_t seq = disktro_clb_spoil(s, &p);
  uint64_t sfh = s != NULL ? s->fh : 0;
  uv_mutex_unlock(&dclb.mut);
  if (seq > 0) disktro_clb_checkpoint(sfh, seq, p);
}

/* Before a write of fh is queued: the copy takes it, or, past
   CLB_MAX_BYTES, stops following the file, with a checkpoint queued ahead
   of the write when it wrote a frame. One lock per write. */
static void disktro_clb_write (uint64_t fh, uint64_t offset, const char *data, uint32_t len, double time) {
  if (!__atomic_load_n(&dclb.enabled, __ATOMIC_SEQ_CST)) return;
  char *p = NULL;
  uint64_t seq = 0;
  uv_mutex_lock(&dclb.mut);
  disktro_clb_slot_t *s = disktro_clb_find(fh);
  if (s != NULL && !s->bad) {
    if (offset + len > CLB_MAX_BYTES || s->written + len > CLB_MAX_BYTES) {
      seq = disktro_clb_spoil(s, &p);
    } else {
      uint8_t type = 1;
      disktro_clb_put(s, &type, 1);
      disktro_clb_put(s, &time, 8);
      disktro_clb_put(s, &offset, 8);
      disktro_clb_put(s, &len, 4);
      disktro_clb_put(s, data, len);
      s->written += len;
      if (s->lost) seq = disktro_clb_spoil(s, &p); /* out of memory: as past CLB_MAX_BYTES */
    }
  }
  uv_mutex_unlock(&dclb.mut);
  if (seq > 0) disktro_clb_checkpoint(fh, seq, p);
}

/* With dclb.mut held: the slot's copy sealed and appended as a new frame;
   1 when written. */
static int disktro_clb_write_frame (disktro_clb_slot_t *s) {
  int done = 0;
  uint64_t seq = ++dclb.seq;
  size_t total = 4 + 8 + 12 + s->len + 16;
  uint8_t *frame = calloc(1, total);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (frame != NULL && ctx != NULL) {
    uint32_t rest = (uint32_t) (total - 4);
    memcpy(frame, &rest, 4);
    memcpy(frame + 4, &seq, 8);
    uint8_t *nonce = frame + 12; /* 4 zero bytes (calloc), then the seq */
    memcpy(nonce + 4, &seq, 8);
    int n = 0, m = 0;
    if (EVP_EncryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, dclb.key, nonce) == 1 &&
        EVP_EncryptUpdate(ctx, NULL, &n, (const uint8_t *) &seq, 8) == 1 &&
        EVP_EncryptUpdate(ctx, frame + 24, &n, s->buf, (int) s->len) == 1 &&
        EVP_EncryptFinal_ex(ctx, frame + 24 + n, &m) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, frame + 24 + s->len) == 1 &&
        write(dclb.fd, frame, total) == (ssize_t) total) {
      s->last_seq = seq;
      done = 1;
    }
  }
  if (ctx != NULL) EVP_CIPHER_CTX_free(ctx);
  free(frame);
  return done;
}

/* FLUSH: 1 when the copy is in the redo log (answer here), 0: go to JS. */
static int disktro_clb_flush (uint64_t fh) {
  if (!__atomic_load_n(&dclb.enabled, __ATOMIC_SEQ_CST)) return 0;
  int done = 0;
  uv_mutex_lock(&dclb.mut);
  disktro_clb_slot_t *s = disktro_clb_find(fh);
  if (s != NULL && !s->bad && !dclb.paused) done = disktro_clb_write_frame(s);
  if (done) dclb.frames++;
  else if (s != NULL) dclb.flushes_passed++;
  uv_mutex_unlock(&dclb.mut);
  return done;
}

/* fsync of a handle: a copy with a frame writes a new one first, so what
   fsync stores is never older than the frame a crash would replay. */
static void disktro_clb_fsync (uint64_t fh) {
  if (!__atomic_load_n(&dclb.enabled, __ATOMIC_SEQ_CST)) return;
  int failed = 0;
  uv_mutex_lock(&dclb.mut);
  disktro_clb_slot_t *s = disktro_clb_find(fh);
  if (s != NULL && !s->bad && !s->releasing && s->last_seq > 0 && !disktro_clb_write_frame(s)) failed = 1;
  uv_mutex_unlock(&dclb.mut);
  /* A failed write leaves the last frame older than this fsync: checkpoint it. */
  if (failed) disktro_clb_bad(NULL, fh);
}

/* Its RELEASE is about to be queued: nothing spoils it from now on. */
static void disktro_clb_releasing (uint64_t fh) {
  uv_mutex_lock(&dclb.mut);
  disktro_clb_slot_t *s = disktro_clb_find(fh);
  if (s != NULL) s->releasing = 1;
  uv_mutex_unlock(&dclb.mut);
}

/* Operations that go to JS and name a path whose copy wrote a frame (a
   descriptor closed while a dup of it stays open): the frame is
   checkpointed before the operation reaches JS, which waits for the queue. */
static int disktro_open (const char *path, struct fuse_file_info *info) {
  disktro_clb_bad(path, 0);
  return fuse_native_open(path, info);
}

static int disktro_unlink (const char *path) {
  disktro_clb_bad(path, 0);
  return fuse_native_unlink(path);
}

static int disktro_rename (const char *path, const char *dest) {
  disktro_clb_bad(path, 0);
  disktro_clb_bad(dest, 0);
  return fuse_native_rename(path, dest);
}

static int disktro_link (const char *path, const char *dest) {
  disktro_clb_bad(path, 0);
  return fuse_native_link(path, dest);
}

/* The last frame of the handle's copy (0: none), and the copy is dropped.
   JS calls it when it releases a handle (fuse_native_clb_take). */
static uint64_t disktro_clb_take (uint64_t fh) {
  uint64_t seq = 0;
  uv_mutex_lock(&dclb.mut);
  disktro_clb_slot_t *s = disktro_clb_find(fh);
  if (s != NULL) {
    seq = s->last_seq;
    disktro_clb_drop(s);
  }
  uv_mutex_unlock(&dclb.mut);
  return seq;
}

/* Whether the handle has a frame in the log (its RELEASE must reach JS's marking). */
static int disktro_clb_has_frame (uint64_t fh) {
  int has = 0;
  if (!__atomic_load_n(&dclb.enabled, __ATOMIC_SEQ_CST)) return 0;
  uv_mutex_lock(&dclb.mut);
  disktro_clb_slot_t *s = disktro_clb_find(fh);
  if (s != NULL && s->last_seq > 0) has = 1;
  uv_mutex_unlock(&dclb.mut);
  return has;
}

/* (fd of a new redo log, open for appending; key: 32 bytes, new with the log) */
NAPI_METHOD(fuse_native_clb_enable) {
  NAPI_ARGV(2)
  NAPI_ARGV_INT32(fd, 0)
  NAPI_ARGV_BUFFER(key, 1)
  if (key_len != 32 || fd < 0) return NULL;
  if (!__atomic_load_n(&dclb.enabled, __ATOMIC_SEQ_CST)) uv_mutex_init(&dclb.mut);
  uv_mutex_lock(&dclb.mut);
  dclb.fd = fd;
  memcpy(dclb.key, key, 32);
  dclb.seq = 0;
  const char *no_grow = getenv("DISKTRO_TEST_CLB_NO_GROW");
  dclb.test_no_grow = no_grow != NULL && strcmp(no_grow, "1") == 0;
  uv_mutex_unlock(&dclb.mut);
  __atomic_store_n(&dclb.enabled, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

/* (fh) -> the handle's last frame's seq, 0 when none; the copy is dropped */
NAPI_METHOD(fuse_native_clb_take) {
  NAPI_ARGV(1)
  double fh = 0;
  napi_get_value_double(env, argv[0], &fh);
  uint64_t seq = __atomic_load_n(&dclb.enabled, __ATOMIC_SEQ_CST) ? disktro_clb_take((uint64_t) fh) : 0;
  napi_value out;
  napi_create_double(env, (double) seq, &out);
  return out;
}

/* (header bytes to keep) -> the last seq before the cut when the log was
   cut back to its header, -1 when it was not. A handle still open whose
   frame JS has not taken gets its copy written again after the header (a
   descriptor closed while a dup of it stays open); one whose copy stopped
   following the file (bad) keeps the log as it is until its checkpoint is
   applied. Frames after the cut carry higher seqs. A copy that cannot be
   written again is spoilt, and its file checkpointed at once. */
NAPI_METHOD(fuse_native_clb_truncate) {
  NAPI_ARGV(1)
  NAPI_ARGV_INT32(header, 0)
  double out = -1;
  struct { uint64_t fh, seq; char *path; } lost[CLB_SLOTS];
  int nlost = 0;
  if (__atomic_load_n(&dclb.enabled, __ATOMIC_SEQ_CST)) {
    uv_mutex_lock(&dclb.mut);
    int stuck = 0;
    for (int i = 0; i < CLB_SLOTS && !stuck; i++) if (dclb.slots[i].used && dclb.slots[i].last_seq > 0 && dclb.slots[i].bad) stuck = 1;
    if (!stuck && ftruncate(dclb.fd, header) == 0) {
      out = (double) dclb.seq;
      for (int i = 0; i < CLB_SLOTS; i++) {
        disktro_clb_slot_t *s = &dclb.slots[i];
        if (s->used && s->last_seq > 0 && !disktro_clb_write_frame(s)) {
          char *p = NULL;
          uint64_t seq = disktro_clb_spoil(s, &p);
          if (seq > 0) {
            lost[nlost].fh = s->fh;
            lost[nlost].seq = seq;
            lost[nlost].path = p;
            nlost++;
          }
        }
      }
    }
    uv_mutex_unlock(&dclb.mut);
  }
  for (int i = 0; i < nlost; i++) disktro_clb_checkpoint(lost[i].fh, lost[i].seq, lost[i].path);
  napi_value v;
  napi_create_double(env, out, &v);
  return v;
}

/* [frames written at FLUSH, flushes of copied handles passed to JS, checkpoints queued] */
NAPI_METHOD(fuse_native_clb_stats) {
  napi_value out, v;
  napi_create_array(env, &out);
  napi_create_double(env, (double) dclb.frames, &v);
  napi_set_element(env, out, 0, v);
  napi_create_double(env, (double) dclb.flushes_passed, &v);
  napi_set_element(env, out, 1, v);
  napi_create_double(env, (double) __atomic_load_n(&dclb.checkpoints, __ATOMIC_RELAXED), &v);
  napi_set_element(env, out, 2, v);
  return out;
}

/* (paused: boolean) while the volume has little room left, every FLUSH goes
   to JS, so a close that cannot be stored fails with ENOSPC instead of being
   acknowledged here */
NAPI_METHOD(fuse_native_clb_pause) {
  NAPI_ARGV(1)
  bool paused = false;
  napi_get_value_bool(env, argv[0], &paused);
  if (__atomic_load_n(&dclb.enabled, __ATOMIC_SEQ_CST)) {
    uv_mutex_lock(&dclb.mut);
    dclb.paused = paused ? 1 : 0;
    uv_mutex_unlock(&dclb.mut);
  }
  return NULL;
}

