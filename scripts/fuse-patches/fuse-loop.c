
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
