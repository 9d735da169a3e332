// The network lab's links (test/helpers/net-lab.ts). This kernel has no
// netem, so delay, jitter and loss are made here, in user space: every lab
// host has a TUN device (created here, then moved into its namespace by the
// harness; the open descriptor keeps working there), and this process moves
// IPv4 packets between them.
//
// A host's link is its access line, as at home or in a rented rack: an
// uplink and a downlink of their own rates and queues, and a one-way delay
// to the core. A packet from s to d is serialised on s's uplink, lost with
// s's and d's loss probabilities, travels delay(s) + delay(d) (+ jitter, never
// reordering a path), then queues on d's downlink. A writer's replicas thus
// share its uplink, as they do on a real home line.
//
// usage: link-emulator NAME IP UP_BPS DOWN_BPS DELAY_US JITTER_US LOSS_PPM QUEUE_BYTES [...]
// (8 fields per host; rate 0: unlimited). Prints "ready" once the devices
// exist. Commands on stdin, one a line:
//   cut I J | heal I J          drop / carry traffic between hosts I and J
//   set I UP DOWN DELAY JITTER LOSS QUEUE   change host I's link
//   stats                       one line: {"sent":[..],"recv":[..],"lost":[..],"dropped":[..],"pair":[[..]]}
// EOF on stdin ends it.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define MAX_HOSTS 32
#define MTU 2048
#define MAX_EVENTS (1 << 20)

typedef struct {
  char name[IFNAMSIZ];
  uint32_t ip; // network order
  int fd;
  uint64_t up_bps, down_bps;
  int64_t delay_ns, jitter_ns;
  uint32_t loss_ppm;
  uint64_t queue_bytes;
  int64_t up_free, down_free; // when each line finishes what it already carries
  uint64_t sent, recv, lost, dropped;
} host_t;

typedef struct packet {
  int64_t at;
  uint64_t seq;
  int src, dst, stage; // stage 0: reaches d's downlink; 1: leaves it into d
  uint16_t len;
  unsigned char data[];
} packet_t;

static host_t hosts[MAX_HOSTS];
static int nhosts;
static int cut[MAX_HOSTS][MAX_HOSTS];
static int64_t path_last[MAX_HOSTS][MAX_HOSTS];
static uint64_t pair_bytes[MAX_HOSTS][MAX_HOSTS];
static packet_t *heap[MAX_EVENTS];
static int heap_n;
static uint64_t seq_counter;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static int64_t now_ns (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static uint64_t rnd (void) { // xorshift64*
  rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
  return rng * 2685821657736338717ull;
}

static int before (packet_t *a, packet_t *b) { return a->at < b->at || (a->at == b->at && a->seq < b->seq); }

static void heap_push (packet_t *p) {
  if (heap_n >= MAX_EVENTS) { free(p); return; }
  p->seq = seq_counter++;
  int i = heap_n++;
  heap[i] = p;
  while (i > 0) {
    int up = (i - 1) / 2;
    if (!before(heap[i], heap[up])) break;
    packet_t *t = heap[i]; heap[i] = heap[up]; heap[up] = t; i = up;
  }
}

static packet_t *heap_pop (void) {
  packet_t *top = heap[0];
  heap[0] = heap[--heap_n];
  int i = 0;
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < heap_n && before(heap[l], heap[m])) m = l;
    if (r < heap_n && before(heap[r], heap[m])) m = r;
    if (m == i) break;
    packet_t *t = heap[i]; heap[i] = heap[m]; heap[m] = t; i = m;
  }
  return top;
}

// Time to put len bytes on a line of bps (0: no limit).
static int64_t tx_ns (uint64_t bps, int len) { return bps == 0 ? 0 : (int64_t)((uint64_t)len * 8ull * 1000000000ull / bps); }

// Bytes a line still has queued at time t.
static uint64_t backlog (int64_t free_at, int64_t t, uint64_t bps) {
  if (bps == 0 || free_at <= t) return 0;
  return (uint64_t)((free_at - t) * (double)bps / 8e9);
}

static int host_by_ip (uint32_t ip) {
  for (int i = 0; i < nhosts; i++) if (hosts[i].ip == ip) return i;
  return -1;
}

static int open_tun (const char *name) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) { perror("open /dev/net/tun"); exit(1); }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) { perror("TUNSETIFF"); exit(1); }
  return fd;
}

static void on_packet (int s, unsigned char *buf, int len, int64_t t) {
  hosts[s].sent += len;
  if (len < 20 || (buf[0] >> 4) != 4) return; // IPv4 only (the lab has no IPv6)
  uint32_t dst_ip;
  memcpy(&dst_ip, buf + 16, 4);
  int d = host_by_ip(dst_ip);
  if (d < 0 || d == s) return;
  host_t *h = &hosts[s];
  if (h->queue_bytes > 0 && backlog(h->up_free, t, h->up_bps) + len > h->queue_bytes) { h->dropped++; return; }
  int64_t leave = (h->up_free > t ? h->up_free : t) + tx_ns(h->up_bps, len);
  h->up_free = leave;
  pair_bytes[s][d] += len;
  if (cut[s][d]) { h->lost++; return; }
  // Each end's line loses its share: a path's loss is about the sum.
  if (h->loss_ppm > 0 && rnd() % 1000000 < h->loss_ppm) { h->lost++; return; }
  if (hosts[d].loss_ppm > 0 && rnd() % 1000000 < hosts[d].loss_ppm) { hosts[d].lost++; return; }
  int64_t jitter = 0;
  if (h->jitter_ns > 0) jitter += (int64_t)(rnd() % (uint64_t)h->jitter_ns);
  if (hosts[d].jitter_ns > 0) jitter += (int64_t)(rnd() % (uint64_t)hosts[d].jitter_ns);
  int64_t arrive = leave + h->delay_ns + hosts[d].delay_ns + jitter;
  if (arrive < path_last[s][d]) arrive = path_last[s][d]; // jitter delays, never reorders
  path_last[s][d] = arrive;
  packet_t *p = malloc(sizeof(packet_t) + len);
  if (!p) return;
  p->at = arrive; p->src = s; p->dst = d; p->stage = 0; p->len = len;
  memcpy(p->data, buf, len);
  heap_push(p);
}

static void on_event (packet_t *p) {
  host_t *d = &hosts[p->dst];
  if (p->stage == 0) {
    if (cut[p->src][p->dst]) { free(p); return; } // cut while in flight
    if (d->queue_bytes > 0 && backlog(d->down_free, p->at, d->down_bps) + p->len > d->queue_bytes) { d->dropped++; free(p); return; }
    int64_t out = (d->down_free > p->at ? d->down_free : p->at) + tx_ns(d->down_bps, p->len);
    d->down_free = out;
    p->at = out;
    p->stage = 1;
    heap_push(p);
    return;
  }
  if (write(d->fd, p->data, p->len) == p->len) d->recv += p->len;
  free(p);
}

static void print_list (const char *key, int which) {
  printf("\"%s\":[", key);
  for (int i = 0; i < nhosts; i++) {
    uint64_t v = which == 0 ? hosts[i].sent : which == 1 ? hosts[i].recv : which == 2 ? hosts[i].lost : hosts[i].dropped;
    printf("%s%llu", i ? "," : "", (unsigned long long)v);
  }
  printf("]");
}

static void stats (void) {
  printf("{");
  print_list("sent", 0); printf(",");
  print_list("recv", 1); printf(",");
  print_list("lost", 2); printf(",");
  print_list("dropped", 3); printf(",\"pair\":[");
  for (int i = 0; i < nhosts; i++) {
    printf("%s[", i ? "," : "");
    for (int j = 0; j < nhosts; j++) printf("%s%llu", j ? "," : "", (unsigned long long)pair_bytes[i][j]);
    printf("]");
  }
  printf("]}\n");
  fflush(stdout);
}

static void set_link (host_t *h, char **f) {
  h->up_bps = strtoull(f[0], NULL, 10);
  h->down_bps = strtoull(f[1], NULL, 10);
  h->delay_ns = strtoll(f[2], NULL, 10) * 1000;
  h->jitter_ns = strtoll(f[3], NULL, 10) * 1000;
  h->loss_ppm = (uint32_t)strtoul(f[4], NULL, 10);
  h->queue_bytes = strtoull(f[5], NULL, 10);
}

static void command (char *line) {
  char *f[8];
  int n = 0;
  for (char *tok = strtok(line, " \t\n"); tok && n < 8; tok = strtok(NULL, " \t\n")) f[n++] = tok;
  if (n == 0) return;
  if (strcmp(f[0], "stats") == 0) { stats(); return; }
  if ((strcmp(f[0], "cut") == 0 || strcmp(f[0], "heal") == 0) && n == 3) {
    int i = atoi(f[1]), j = atoi(f[2]);
    if (i < 0 || j < 0 || i >= nhosts || j >= nhosts) return;
    cut[i][j] = cut[j][i] = f[0][0] == 'c';
    printf("ok\n"); fflush(stdout);
    return;
  }
  if (strcmp(f[0], "set") == 0 && n == 8) {
    int i = atoi(f[1]);
    if (i < 0 || i >= nhosts) return;
    set_link(&hosts[i], f + 2);
    printf("ok\n"); fflush(stdout);
    return;
  }
  printf("error: %s\n", f[0]); fflush(stdout);
}

int main (int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if ((argc - 1) % 8 != 0 || argc < 9) { fprintf(stderr, "usage: link-emulator NAME IP UP DOWN DELAY_US JITTER_US LOSS_PPM QUEUE [...]\n"); return 2; }
  rng ^= (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32);
  nhosts = (argc - 1) / 8;
  if (nhosts > MAX_HOSTS) { fprintf(stderr, "at most %d hosts\n", MAX_HOSTS); return 2; }
  for (int i = 0; i < nhosts; i++) {
    char **f = argv + 1 + i * 8;
    host_t *h = &hosts[i];
    snprintf(h->name, IFNAMSIZ, "%s", f[0]);
    if (inet_pton(AF_INET, f[1], &h->ip) != 1) { fprintf(stderr, "bad address %s\n", f[1]); return 2; }
    set_link(h, f + 2);
    h->fd = open_tun(h->name);
  }
  printf("ready\n");
  fflush(stdout);
  struct pollfd pfd[MAX_HOSTS + 1];
  for (int i = 0; i < nhosts; i++) { pfd[i].fd = hosts[i].fd; pfd[i].events = POLLIN; }
  pfd[nhosts].fd = 0; pfd[nhosts].events = POLLIN;
  char line[512];
  size_t line_len = 0;
  unsigned char buf[MTU];
  for (;;) {
    int64_t t = now_ns();
    while (heap_n > 0 && heap[0]->at <= t) on_event(heap_pop());
    struct timespec timeout, *tp = NULL;
    if (heap_n > 0) {
      int64_t wait = heap[0]->at - t;
      timeout.tv_sec = wait / 1000000000ll;
      timeout.tv_nsec = wait % 1000000000ll;
      tp = &timeout;
    }
    int r = ppoll(pfd, nhosts + 1, tp, NULL);
    if (r < 0 && errno != EINTR) { perror("ppoll"); return 1; }
    if (r <= 0) continue;
    t = now_ns();
    for (int i = 0; i < nhosts; i++) {
      if (!(pfd[i].revents & POLLIN)) continue;
      for (int k = 0; k < 64; k++) {
        int len = read(hosts[i].fd, buf, sizeof buf);
        if (len <= 0) break;
        on_packet(i, buf, len, t);
      }
    }
    if (pfd[nhosts].revents & (POLLIN | POLLHUP)) {
      ssize_t got = read(0, line + line_len, sizeof line - 1 - line_len);
      if (got <= 0) return 0;
      line_len += (size_t)got;
      char *nl;
      while ((nl = memchr(line, '\n', line_len)) != NULL) {
        *nl = 0;
        command(line);
        size_t rest = line_len - (size_t)(nl + 1 - line);
        memmove(line, nl + 1, rest);
        line_len = rest;
      }
      if (line_len == sizeof line - 1) line_len = 0;
    }
  }
}
