
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

