
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

/* The most blocks one read may span and still be answered here (a READ is
   up to max_pages pages, patch (n): 1 MiB spans two 1 MiB blocks). */
#define RC_SPAN_MAX 8

static int disktro_read (const char *path, char *buf, size_t len, off_t offset, struct fuse_file_info *info) {
  uint64_t first = (uint64_t) offset / (drc.block ? drc.block : 1);
  if (drc.enabled && len > 0 && offset >= 0 && ((uint64_t) offset + len - 1) / drc.block - first < RC_SPAN_MAX) {
    disktro_rc_entry_t *hit[RC_SPAN_MAX];
    size_t from[RC_SPAN_MAX], take[RC_SPAN_MAX];
    int count = 0, found = 1;
    size_t n = 0;
    uint64_t hint = UINT64_MAX;
    uv_mutex_lock(&drc.mut);
    uint64_t gen = __atomic_load_n(&drc.gen, __ATOMIC_SEQ_CST);
    for (uint64_t block = first; n < len; block++) {
      disktro_rc_entry_t *e = NULL;
      for (int i = 0; i < drc.count; i++) {
        disktro_rc_entry_t *c = &drc.entries[i];
        if (c->state == RC_READY && c->fh == info->fh && c->block == block && c->gen == gen) {
          e = c;
          break;
        }
      }
      if (e == NULL) {
        found = 0;
        break;
      }
      size_t inner = block == first ? (size_t) ((uint64_t) offset - block * drc.block) : 0;
      size_t want = len - n < drc.block - inner ? len - n : drc.block - inner;
      size_t got = inner >= e->valid ? 0 : e->valid - inner < want ? e->valid - inner : want;
      hit[count] = e;
      from[count] = inner;
      take[count] = got;
      count++;
      n += got;
      if (got < want) break; /* the end of the file is in this block */
    }
    if (found) {
      for (int i = 0; i < count; i++) {
        hit[i]->pins++;
        hit[i]->used = ++drc.tick;
        if (!hit[i]->hinted) {
          hit[i]->hinted = 1;
          hint = hit[i]->block;
        }
      }
      drc.hits++;
    } else {
      drc.misses++;
    }
    uv_mutex_unlock(&drc.mut);
    if (found) {
      size_t at = 0;
      for (int i = 0; i < count; i++) {
        memcpy(buf + at, hit[i]->data + from[i], take[i]);
        at += take[i];
      }
      uv_mutex_lock(&drc.mut);
      for (int i = 0; i < count; i++) hit[i]->pins--;
      uv_mutex_unlock(&drc.mut);
      /* the furthest block first used: JS fills ahead of it */
      if (hint != UINT64_MAX) disktro_rc_hint(info->fh, hint * drc.block);
      return (int) n;
    }
  }
  return fuse_native_read(path, buf, len, offset, info);
}

static int disktro_truncate (const char *path, off_t size) {
  disktro_clb_bad(path, 0); /* (l) */
  disktro_rc_bump();
  int res = fuse_native_truncate(path, size);
  disktro_rc_bump();
  return res;
}

static int disktro_ftruncate (const char *path, off_t size, struct fuse_file_info *info) {
  disktro_clb_bad(NULL, info->fh); /* (l) */
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

