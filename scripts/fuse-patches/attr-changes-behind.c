
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
    queued = disktro_wb_append_unless_draining(item);
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
  disktro_clb_attr(path, proto); /* (l) */
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
  disktro_clb_bad(path, 0); /* (l) */
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
  disktro_clb_bad(path, 0); /* (l) */
  return fuse_native_chown(path, uid, gid);
}

static double disktro_utime_ms (const struct timespec *ts, double now) {
  if (ts->tv_nsec == UTIME_OMIT) return -1;
  if (ts->tv_nsec == UTIME_NOW) return now;
  /* (q) a time finer than a ms: -2 too, JS keeps its nanoseconds */
  return ts->tv_sec < 0 || ts->tv_nsec % 1000000 != 0 ? -2 : (double) ts->tv_sec * 1000 + (double) (ts->tv_nsec / 1000000);
}

static int disktro_utimens (const char *path, const struct timespec tv[2]) {
  disktro_wb_item_t it;
  memset(&it, 0, sizeof(it));
  it.kind = DISKTRO_WB_UTIMENS;
  it.t3 = disktro_now_ms();
  it.t1 = disktro_utime_ms(&tv[0], it.t3);
  it.t2 = disktro_utime_ms(&tv[1], it.t3);
  /* a time before 1970, or finer than a ms (q), goes the long way */
  if (it.t1 != -2 && it.t2 != -2 && disktro_attr_behind(path, &it, disktro_predict_utimens)) return 0;
  disktro_clb_bad(path, 0); /* (l) */
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
  uint32_t uid = 0, gid = 0; /* the owner shown, for close behind's copy (l) */
  item->t3 = now;
  /* (p) the new file is its creator's; in a setgid directory, of the
     directory's group */
  struct fuse_context *cx = fuse_get_context();
  item->uid = (uint32_t) cx->uid;
  item->gid = (uint32_t) cx->gid;
  int queued = 0;
  disktro_ac_slot_t *ds = &dac.slots[disktro_ac_slot(parent)];
  disktro_ac_slot_t *fs = &dac.slots[disktro_ac_slot(path)];
  uv_mutex_lock(&dac.mut);
  uint64_t gen = __atomic_load_n(&dac.gen, __ATOMIC_SEQ_CST);
  disktro_ac_dir_t *whole = disktro_dir_find(parent, plen);
  if (disktro_ac_valid(ds, parent, gen) && S_ISDIR(ds->st.st_mode) && !disktro_ac_valid(fs, path, gen) && ds != fs &&
      (whole == NULL || !disktro_dir_has(whole, slash + 1))) {
    if (ds->st.st_mode & S_ISGID) item->gid = (uint32_t) ds->st.st_gid;
    uid = item->uid; /* item is the event loop's once queued */
    gid = item->gid;
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
      st.st_uid = uid;
      st.st_gid = gid;
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
  disktro_clb_start(fh, ino, path, (uint32_t) (mode & 07777), uid, gid, now); /* (l) */
  uv_async_send(&dwb.async);
  return 1;
}

static int disktro_create (const char *path, mode_t mode, struct fuse_file_info *info) {
  if (disktro_create_behind(path, mode, info)) return 0;
  return fuse_native_create(path, mode, info);
}

