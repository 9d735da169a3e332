
/* disktro patch (m): the FUSE loop keeps its threads (see scripts/build-fuse.cjs (m)).
   libfuse 2.9's fuse_loop_mt starts a thread whenever none is idle and ends
   any thread that finds more than 10 idle, so every burst of requests (the
   kernel's read-ahead sends up to max_background at once) creates and ends
   threads. Here each new thread also costs fuse-native a round trip through
   the event loop and a uv_async handle that is never closed (its thread
   locals have no destructor), and every wakeup of the event loop scans all
   of those handles. This loop is libfuse's, except that a thread, once
   started, serves until the session ends, and at most DISKTRO_LOOP_MAX are
   started. */
#include <signal.h>
#include <errno.h>
#include <semaphore.h>
#include <fuse_lowlevel.h>

#define DISKTRO_LOOP_MAX 64
#define DISKTRO_FUSE_FORGET 2
#define DISKTRO_FUSE_BATCH_FORGET 42

struct disktro_loop;
struct disktro_loop_worker { struct disktro_loop *lp; void *buf; pthread_t thread; };

struct disktro_loop {
  struct fuse_session *se;
  struct fuse_chan *ch;
  size_t bufsize;
  pthread_mutex_t lock;
  int workers; /* started */
  int idle;    /* waiting for a request */
  int exiting;
  sem_t finish;
  struct disktro_loop_worker w[DISKTRO_LOOP_MAX];
};

static uint32_t disktro_loop_threads_started = 0;

/* disktro patch (n): reads of up to max_pages pages per request. libfuse 2.9
   predates FUSE_MAX_PAGES (Linux 4.20), so the kernel sends at most 32 pages
   (128 KiB) per READ. The INIT reply goes out through the channel's send
   hook; the thread processing INIT asks for more there when the kernel
   offers it. (o): it raises max_write there too, up to max_pages pages,
   when the loop's receive buffers hold such a write. */
#define DISKTRO_FUSE_INIT 26
#define DISKTRO_FUSE_MAX_PAGES (1u << 22)
#define DISKTRO_INIT_IN_FLAGS (40 + 12)  /* fuse_in_header, then fuse_init_in's major, minor, max_readahead */
#define DISKTRO_INIT_OUT_FLAGS 12        /* fuse_init_out: major, minor, max_readahead, flags */
#define DISKTRO_INIT_OUT_MAX_WRITE 20    /* ..., max_background (u16), congestion_threshold (u16), max_write */
#define DISKTRO_INIT_OUT_MAX_PAGES 28    /* ..., max_background, congestion_threshold, max_write, time_gran, max_pages */
#define DISKTRO_INIT_OUT 64              /* sizeof(struct fuse_init_out) since protocol 7.23 */

static uint32_t disktro_max_pages_wanted = 0;  /* from JS before the mount; 0: libfuse's 32 */
static uint32_t disktro_max_pages_granted = 0; /* what the INIT reply asked for */
static uint32_t disktro_max_write_wanted = 0;  /* bytes, from JS before the mount; 0: libfuse's (128 KiB) */
static uint32_t disktro_max_write_granted = 0; /* what the INIT reply asked for; 0: libfuse's */
static size_t disktro_loop_bufsize = 0;        /* the running loop's receive buffers */
static __thread int disktro_init_offered = 0;  /* this thread processes an INIT that offers FUSE_MAX_PAGES */
static int (*disktro_chan_send) (struct fuse_chan *ch, const struct iovec iov[], size_t count) = NULL;

static int disktro_init_send (struct fuse_chan *ch, const struct iovec iov[], size_t count) {
  uint32_t pages = __atomic_load_n(&disktro_max_pages_wanted, __ATOMIC_RELAXED);
  int offered = disktro_init_offered;
  disktro_init_offered = 0;
  /* fuse_out_header (16 bytes: len, error, unique), then fuse_init_out as
     libfuse knows it: 24 bytes in the build fuse-shared-library ships (its
     kernel header predates max_pages). The kernel takes the longer reply of
     today's header, whose fields after max_write are zero unless a flag
     says otherwise. */
  if (offered && pages > 32 && count == 2 && iov[0].iov_len == 16 && iov[1].iov_len >= DISKTRO_INIT_OUT_FLAGS + 4 && iov[1].iov_len <= DISKTRO_INIT_OUT) {
    char head[16], out[DISKTRO_INIT_OUT];
    int32_t error;
    memcpy(head, iov[0].iov_base, 16);
    memcpy(&error, head + 4, 4);
    if (error == 0) {
      uint32_t len = 16 + DISKTRO_INIT_OUT, flags;
      uint16_t max_pages = (uint16_t) (pages > 65535 ? 65535 : pages);
      memset(out, 0, sizeof out);
      memcpy(out, iov[1].iov_base, iov[1].iov_len);
      memcpy(head, &len, 4);
      memcpy(&flags, out + DISKTRO_INIT_OUT_FLAGS, 4);
      flags |= DISKTRO_FUSE_MAX_PAGES;
      memcpy(out + DISKTRO_INIT_OUT_FLAGS, &flags, 4);
      memcpy(out + DISKTRO_INIT_OUT_MAX_PAGES, &max_pages, 2);
      /* (o) writes of up to max_pages pages: the kernel refuses to hand a
         request to a read(2) of less than the headers plus max_write. */
      uint32_t write = __atomic_load_n(&disktro_max_write_wanted, __ATOMIC_RELAXED), libfuse_write;
      memcpy(&libfuse_write, out + DISKTRO_INIT_OUT_MAX_WRITE, 4);
      if (write > (uint32_t) max_pages * 4096) write = (uint32_t) max_pages * 4096;
      if (write > libfuse_write && write + 4096 <= __atomic_load_n(&disktro_loop_bufsize, __ATOMIC_RELAXED)) {
        memcpy(out + DISKTRO_INIT_OUT_MAX_WRITE, &write, 4);
      } else {
        write = 0;
      }
      struct iovec longer[2] = { { head, 16 }, { out, DISKTRO_INIT_OUT } };
      int res = disktro_chan_send(ch, longer, 2);
      if (res == 0) {
        __atomic_store_n(&disktro_max_pages_granted, max_pages, __ATOMIC_RELAXED);
        __atomic_store_n(&disktro_max_write_granted, write, __ATOMIC_RELAXED);
      }
      return res;
    }
  }
  return disktro_chan_send(ch, iov, count);
}

/* libfuse 2.9's struct fuse_chan begins with its struct fuse_chan_ops (lib/fuse_session.c) */
static void disktro_hook_init (struct fuse_chan *ch) {
  struct fuse_chan_ops *ops = (struct fuse_chan_ops *) ch;
  if (ops->send == disktro_init_send) return;
  disktro_chan_send = ops->send;
  ops->send = disktro_init_send;
}

/* with the request in fbuf: note an INIT that offers FUSE_MAX_PAGES */
static void disktro_note_init (const struct fuse_buf *fbuf) {
  if (fbuf->flags & FUSE_BUF_IS_FD || fbuf->size < DISKTRO_INIT_IN_FLAGS + 4) return;
  uint32_t opcode, flags;
  memcpy(&opcode, (const char *) fbuf->mem + 4, 4);
  if (opcode != DISKTRO_FUSE_INIT) return;
  memcpy(&flags, (const char *) fbuf->mem + DISKTRO_INIT_IN_FLAGS, 4);
  disktro_init_offered = (flags & DISKTRO_FUSE_MAX_PAGES) != 0;
}

static void *disktro_loop_work (void *data);

/* with lp->lock held */
static int disktro_loop_start (struct disktro_loop *lp) {
  if (lp->workers >= DISKTRO_LOOP_MAX) return 0;
  struct disktro_loop_worker *w = &lp->w[lp->workers];
  w->lp = lp;
  w->buf = malloc(lp->bufsize);
  if (w->buf == NULL) return -1;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old); /* the new thread takes no signals: they are node's */
  int err = pthread_create(&w->thread, NULL, disktro_loop_work, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err != 0) {
    free(w->buf);
    w->buf = NULL;
    return -1;
  }
  lp->workers++;
  lp->idle++;
  __atomic_add_fetch(&disktro_loop_threads_started, 1, __ATOMIC_RELAXED);
  return 0;
}

static void *disktro_loop_work (void *data) {
  struct disktro_loop_worker *w = (struct disktro_loop_worker *) data;
  struct disktro_loop *lp = w->lp;
  void *mem = w->buf;

  while (!fuse_session_exited(lp->se)) {
    struct fuse_chan *ch = lp->ch;
    struct fuse_buf fbuf = { .size = lp->bufsize, .flags = 0, .mem = mem, .fd = -1, .pos = 0 };
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
    int res = fuse_session_receive_buf(lp->se, &fbuf, &ch);
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    if (res == -EINTR) continue;
    if (res <= 0) {
      if (res < 0) fuse_session_exit(lp->se);
      break;
    }
    int forget = 0;
    disktro_note_init(&fbuf);
    if (!(fbuf.flags & FUSE_BUF_IS_FD)) {
      uint32_t opcode = ((uint32_t *) fbuf.mem)[1]; /* struct fuse_in_header: len, opcode, ... */
      forget = opcode == DISKTRO_FUSE_FORGET || opcode == DISKTRO_FUSE_BATCH_FORGET;
    }
    pthread_mutex_lock(&lp->lock);
    if (lp->exiting) {
      pthread_mutex_unlock(&lp->lock);
      break;
    }
    if (!forget) lp->idle--;
    if (lp->idle == 0) disktro_loop_start(lp); /* a failure only means fewer threads */
    pthread_mutex_unlock(&lp->lock);

    fuse_session_process_buf(lp->se, &fbuf, ch);

    pthread_mutex_lock(&lp->lock);
    if (!forget) lp->idle++;
    pthread_mutex_unlock(&lp->lock);
  }
  sem_post(&lp->finish);
  return NULL;
}

/* fuse_loop_mt's replacement: returns when the session ends (unmounted) */
static int disktro_loop_mt (struct fuse *f) {
  if (f == NULL) return -1;
  if (fuse_start_cleanup_thread(f) != 0) return -1;
  struct disktro_loop *lp = calloc(1, sizeof(struct disktro_loop));
  if (lp == NULL) return -1;
  lp->se = fuse_get_session(f);
  lp->ch = fuse_session_next_chan(lp->se, NULL);
  lp->bufsize = fuse_chan_bufsize(lp->ch);
  /* (o) room for a write of max_write_wanted bytes and its headers */
  size_t big = (size_t) __atomic_load_n(&disktro_max_write_wanted, __ATOMIC_RELAXED) + 4096;
  if (big > lp->bufsize) lp->bufsize = big;
  __atomic_store_n(&disktro_loop_bufsize, lp->bufsize, __ATOMIC_RELAXED);
  disktro_hook_init(lp->ch);
  pthread_mutex_init(&lp->lock, NULL);
  sem_init(&lp->finish, 0, 0);

  pthread_mutex_lock(&lp->lock);
  int err = disktro_loop_start(lp);
  pthread_mutex_unlock(&lp->lock);
  if (err == 0) {
    while (!fuse_session_exited(lp->se)) sem_wait(&lp->finish);
    pthread_mutex_lock(&lp->lock);
    lp->exiting = 1;
    int n = lp->workers;
    for (int i = 0; i < n; i++) pthread_cancel(lp->w[i].thread);
    pthread_mutex_unlock(&lp->lock);
    for (int i = 0; i < n; i++) {
      pthread_join(lp->w[i].thread, NULL);
      free(lp->w[i].buf);
    }
  }
  fuse_session_reset(lp->se);
  sem_destroy(&lp->finish);
  pthread_mutex_destroy(&lp->lock);
  free(lp);
  fuse_stop_cleanup_thread(f);
  return err;
}

/* () -> how many FUSE threads this process has started (all mounts) */
NAPI_METHOD(fuse_native_loop_threads) {
  napi_value result;
  napi_create_uint32(env, __atomic_load_n(&disktro_loop_threads_started, __ATOMIC_RELAXED), &result);
  return result;
}

/* (value?) -> *granted; with a value, *wanted = value first */
static napi_value disktro_loop_setting (napi_env env, napi_callback_info info, uint32_t *wanted, uint32_t *granted) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= 1) {
    uint32_t value = 0;
    if (napi_get_value_uint32(env, argv[0], &value) == napi_ok) __atomic_store_n(wanted, value, __ATOMIC_RELAXED);
  }
  napi_value result;
  napi_create_uint32(env, __atomic_load_n(granted, __ATOMIC_RELAXED), &result);
  return result;
}

/* (bytes?) -> the bytes per WRITE the INIT reply asked for (0: libfuse's
   128 KiB). With bytes, sets what the next mount asks for (at most its
   max_pages pages; only where the kernel offers FUSE_MAX_PAGES). (o) */
NAPI_METHOD(fuse_native_max_write) {
  return disktro_loop_setting(env, info, &disktro_max_write_wanted, &disktro_max_write_granted);
}

/* (pages?) -> the pages per READ the INIT reply asked for (0: libfuse's
   default). With pages, sets what the next mount asks for first. */
NAPI_METHOD(fuse_native_max_pages) {
  return disktro_loop_setting(env, info, &disktro_max_pages_wanted, &disktro_max_pages_granted);
}
