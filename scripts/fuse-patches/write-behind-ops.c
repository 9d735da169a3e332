
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
  int big = len > WB_SLOT_BYTES;
  if (len <= WB_BIG_SLOT_BYTES && dwb.free_items[big] != NULL) {
    item = dwb.free_items[big];
    dwb.free_items[big] = item->next;
    dwb.free_count[big]--;
  }
  uv_mutex_unlock(&dwb.mut);
  if (item == NULL) {
    size_t cap = len > WB_BIG_SLOT_BYTES ? len : big ? WB_BIG_SLOT_BYTES : WB_SLOT_BYTES;
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
  disktro_clb_write(info->fh, (uint64_t) offset, buf, (uint32_t) len, now); /* (l): before it is queued, so a checkpoint goes ahead of it */
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
  dwb.writes++;
  if (len > dwb.largest) dwb.largest = len;
  uv_mutex_unlock(&dwb.mut);
  disktro_rc_bump(); /* after the write is outstanding: see (e) */
  if (!disktro_ac_write_predict(path, (uint64_t) offset + len, now)) disktro_ac_bump(); /* and (g) */
  uv_async_send(&dwb.async);
  return (int) len;
}

static int disktro_flush (const char *path, struct fuse_file_info *info) {
  if (disktro_clb_flush(info->fh)) { /* (l): in the redo log; a queued write's error still shows */
    uv_mutex_lock(&dwb.mut);
    int e = disktro_wb_take_err(info->fh);
    uv_mutex_unlock(&dwb.mut);
    return e;
  }
  int err = disktro_wb_barrier_err(info->fh);
  int res = fuse_native_flush(path, info);
  return err != 0 ? err : res;
}

static int disktro_fsync (const char *path, int datasync, struct fuse_file_info *info) {
  disktro_clb_fsync(info->fh); /* (l) */
  int err = disktro_wb_barrier_err(info->fh);
  int res = fuse_native_fsync(path, datasync, info);
  return err != 0 ? err : res;
}

static int disktro_release (const char *path, struct fuse_file_info *info) {
  disktro_rc_bump(); /* the handle's cached blocks go with it */
  if (disktro_clb_has_frame(info->fh) && dwb.attr_handler != NULL) {
    /* (l): queued like a write; JS releases the file and marks its frame */
    disktro_wb_item_t *item = calloc(1, sizeof(disktro_wb_item_t));
    char *p = strdup(path);
    int queued = 0;
    if (item != NULL && p != NULL) {
      disktro_clb_releasing(info->fh);
      item->kind = DISKTRO_WB_RELEASE;
      item->path = p;
      item->fh = info->fh;
      item->a = (uint32_t) info->fh;
      queued = disktro_wb_append_unless_draining(item);
    }
    if (queued) {
      uv_async_send(&dwb.async);
      return 0;
    }
    free(item);
    free(p);
  }
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
      /* (item, path, fh, mode, ino, time, uid, gid) */
      napi_get_reference_value(env, dcb.handler, &callback);
      napi_value argv[8];
      napi_create_external(env, item, NULL, NULL, &(argv[0]));
      napi_create_string_utf8(env, item->path, NAPI_AUTO_LENGTH, &(argv[1]));
      napi_create_uint32(env, (uint32_t) item->fh, &(argv[2]));
      napi_create_uint32(env, item->a, &(argv[3]));
      napi_create_double(env, (double) item->ino, &(argv[4]));
      napi_create_double(env, item->t3, &(argv[5]));
      napi_create_uint32(env, item->uid, &(argv[6]));
      napi_create_uint32(env, item->gid, &(argv[7]));
      NAPI_MAKE_CALLBACK(env, NULL, global, callback, 8, argv, NULL)
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
    if (res < 0 && (item->kind == DISKTRO_WB_CREATE || item->kind == DISKTRO_WB_CHECKPOINT)) {
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
  int big = item->cap == WB_BIG_SLOT_BYTES;
  int keep = big ? dwb.free_count[1] < WB_BIG_FREE_MAX : item->cap == WB_SLOT_BYTES && dwb.free_count[0] < WB_FREE_MAX;
  if (keep) {
    item->next = dwb.free_items[big];
    dwb.free_items[big] = item;
    dwb.free_count[big]++;
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

/* () -> [writes queued since the mount, the largest in bytes] */
NAPI_METHOD(fuse_native_wb_stats) {
  uv_mutex_lock(&dwb.mut);
  double writes = (double) dwb.writes, largest = (double) dwb.largest;
  uv_mutex_unlock(&dwb.mut);
  napi_value result, v;
  napi_create_array_with_length(env, 2, &result);
  napi_create_double(env, writes, &v);
  napi_set_element(env, result, 0, v);
  napi_create_double(env, largest, &v);
  napi_set_element(env, result, 1, v);
  return result;
}

/* (i): (create handler) after fuse_native_write_behind; new files are
   their creator's (p) */
NAPI_METHOD(fuse_native_cb_enable) {
  NAPI_ARGV(1)
  if (!dwb.enabled || dcb.enabled) return NULL;
  napi_create_reference(env, argv[0], 1, &dcb.handler);
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

