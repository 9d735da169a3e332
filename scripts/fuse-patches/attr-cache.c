
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
  /* A name over NAME_MAX is ENAMETOOLONG, JS's answer, not ENOENT. */
  if (slash == NULL || slash[1] == 0 || strlen(slash + 1) > 255) return 0;
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
    disktro_stat_ns(ints, ints_len, &st); /* (q) */
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

