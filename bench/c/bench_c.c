/* The C API rows of `make bench` (bench/cases.toml, face "c"): W1, W2, W3b through
 * include/channel_messaging.h, measured the same way as bench/src/bin/bench-core.rs.
 *
 *   bench_c <w1|w2|w3b> <n>
 *
 * Prints `RESULT {json}` last. Messages are written with the streaming writer
 * (cm_port_post_with) and read with the streaming reader (cm_port_recv_with): no value
 * tree on either side, the C counterpart of the core's serde rows (post / recv_as). */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel_messaging.h"

#define W3_BYTES (64 * 1024)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, cm_status s) {
  fprintf(stderr, "%s failed: status %d: %s\n", what, (int)s, cm_last_error_message());
  exit(1);
}

#define TRY(expr)                      \
  do {                                 \
    cm_status s_ = (expr);             \
    if (s_ != CM_OK) die(#expr, s_);   \
  } while (0)

/* ---- the W1 message ------------------------------------------------------------------ */

static cm_status write_tick(cm_writer *w, void *ud) {
  int64_t seq = *(const int64_t *)ud;
  cm_status s = cm_writer_begin_object(w, 2);
  if (s == CM_OK) s = cm_writer_key(w, "seq", 3);
  if (s == CM_OK) s = cm_writer_int(w, seq);
  if (s == CM_OK) s = cm_writer_key(w, "name", 4);
  if (s == CM_OK) s = cm_writer_string(w, "tick", 4);
  return s;
}

/* Reads a W1 message with the streaming reader: *(int64_t *)ud = its seq, or -1. */
static cm_status read_tick(cm_reader *r, void *ud) {
  int64_t *seq = ud;
  cm_event e;
  int ok = 1;
  *seq = -1;
  cm_status s = cm_reader_next(r, &e);
  if (s != CM_OK) return s;
  if (e.type != CM_EVENT_OBJECT || e.n != 2) return CM_ERR_WRONG_KIND;
  for (int i = 0; i < 2; i++) {
    cm_event key, value;
    if ((s = cm_reader_next(r, &key)) != CM_OK || (s = cm_reader_next(r, &value)) != CM_OK)
      return s;
    if (key.len == 3 && memcmp(key.ptr, "seq", 3) == 0 && value.type == CM_EVENT_INT)
      *seq = value.i;
    else if (key.len == 4 && memcmp(key.ptr, "name", 4) == 0)
      ok = value.type == CM_EVENT_STRING && value.len == 4 && memcmp(value.ptr, "tick", 4) == 0;
  }
  if (!ok) *seq = -1;
  return CM_OK;
}

/* Receives one W1 message, decodes it and checks it is message `seq`. */
static void recv_tick(cm_port port, int64_t seq) {
  int64_t got = -1;
  TRY(cm_port_recv_with(port, -1, read_tick, &got));
  if (got != seq) {
    fprintf(stderr, "message %" PRId64 " arrived as %" PRId64 "\n", seq, got);
    exit(1);
  }
}

/* ---- the receiver thread ------------------------------------------------------------- */

struct receiver {
  cm_port port;
  int64_t n;
  int workload; /* 1: W1, 3: W3b */
  pthread_barrier_t *barrier;
  double end;
};

static cm_status read_buffer(cm_reader *r, void *ud) {
  int64_t *stamp = ud;
  cm_event e;
  cm_status s = cm_reader_next(r, &e);
  if (s != CM_OK) return s;
  if (e.type != CM_EVENT_BUFFER || e.len != W3_BYTES) return CM_ERR_WRONG_KIND;
  memcpy(stamp, e.ptr, 8);
  return CM_OK;
}

/* Receives one W3b buffer and checks its length and stamp; the message goes right after
 * (the last reference to the bytes: their memory is freed here). */
static void recv_buffer(cm_port port, int64_t seq) {
  int64_t stamp = -1;
  TRY(cm_port_recv_with(port, -1, read_buffer, &stamp));
  if (stamp != seq) {
    fprintf(stderr, "buffer %" PRId64 " is wrong\n", seq);
    exit(1);
  }
}

static void *receiver_main(void *arg) {
  struct receiver *r = arg;
  pthread_barrier_wait(r->barrier);
  for (int64_t i = 0; i < r->n; i++) {
    if (r->workload == 1)
      recv_tick(r->port, i);
    else
      recv_buffer(r->port, i);
  }
  r->end = now_s();
  return NULL;
}

static cm_status write_buffer(cm_writer *w, void *ud) {
  return cm_writer_buffer_move(w, (cm_buffer **)ud);
}

/* W1 (workload 1) and W3b (workload 3): one sender, one receiver thread. */
static void pair(int workload, int64_t n) {
  cm_port tx, rx;
  TRY(cm_channel_new(&tx, &rx));
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, 2);
  struct receiver r = {rx, n, workload, &barrier, 0};
  pthread_t t;
  pthread_create(&t, NULL, receiver_main, &r);
  pthread_barrier_wait(&barrier);
  double start = now_s();
  for (int64_t i = 0; i < n; i++) {
    if (workload == 1) {
      TRY(cm_port_post_with(tx, write_tick, &i, NULL, 0));
    } else {
      /* A fresh buffer per message, allocated, filled and stamped by the sender, then
       * moved into the message (cm_buffer_alloc + cm_writer_buffer_move). */
      uint8_t *mem = NULL;
      cm_buffer *b = cm_buffer_alloc(W3_BYTES, (uint8_t)i, &mem);
      if (b == NULL) die("cm_buffer_alloc", CM_ERR_INVALID_ARGUMENT);
      uint64_t stamp = (uint64_t)i;
      memcpy(mem, &stamp, 8);
      TRY(cm_port_post_with(tx, write_buffer, &b, NULL, 0));
    }
  }
  pthread_join(t, NULL);
  double secs = r.end - start;
  if (workload == 1)
    printf("RESULT {\"value\": %.1f, \"unit\": \"msg/s\", \"n\": %" PRId64 ", \"secs\": %.6f}\n",
           (double)n / secs, n, secs);
  else
    printf("RESULT {\"value\": %.1f, \"unit\": \"MB/s\", \"n\": %" PRId64 ", \"secs\": %.6f}\n",
           (double)n * W3_BYTES / secs / 1e6, n, secs);
  cm_port_close(tx);
  cm_port_close(rx);
  pthread_barrier_destroy(&barrier);
}

/* ---- W2 ------------------------------------------------------------------------------ */

struct echo {
  cm_port port;
  int64_t total;
};

static void *echo_main(void *arg) {
  struct echo *e = arg;
  for (int64_t i = 0; i < e->total; i++) {
    int64_t seq = -1;
    TRY(cm_port_recv_with(e->port, -1, read_tick, &seq));
    TRY(cm_port_post_with(e->port, write_tick, &seq, NULL, 0));
  }
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The sample at quantile q of sorted samples (as bench/src/lib.rs picks it). */
static double pick(const double *sorted, int64_t n, double q) {
  int64_t idx = (int64_t)ceil((double)n * q);
  if (idx < 1) idx = 1;
  if (idx > n) idx = n;
  return sorted[idx - 1];
}

static void w2(int64_t n) {
  int64_t warmup = n / 100;
  if (warmup < 10) warmup = 10;
  if (warmup > 1000) warmup = 1000;
  cm_port a, b;
  TRY(cm_channel_new(&a, &b));
  struct echo e = {b, n + warmup};
  pthread_t t;
  pthread_create(&t, NULL, echo_main, &e);
  for (int64_t i = 0; i < warmup; i++) {
    TRY(cm_port_post_with(a, write_tick, &i, NULL, 0));
    recv_tick(a, i);
  }
  double *us = malloc((size_t)n * sizeof *us);
  double sum = 0;
  for (int64_t i = 0; i < n; i++) {
    double t0 = now_s();
    TRY(cm_port_post_with(a, write_tick, &i, NULL, 0));
    recv_tick(a, i);
    us[i] = (now_s() - t0) * 1e6;
    sum += us[i];
  }
  pthread_join(t, NULL);
  qsort(us, (size_t)n, sizeof *us, cmp_double);
  double p50 = pick(us, n, 0.50), p99 = pick(us, n, 0.99);
  printf("RESULT {\"value\": %.4f, \"unit\": \"us\", \"p50\": %.4f, \"p99\": %.4f, \"mean\": %.4f, "
         "\"max\": %.4f, \"n\": %" PRId64 "}\n",
         p50, p50, p99, sum / (double)n, us[n - 1], n);
  free(us);
  cm_port_close(a);
  cm_port_close(b);
}

int main(int argc, char **argv) {
  if (argc != 3 || atoll(argv[2]) <= 0) {
    fprintf(stderr, "usage: bench_c <w1|w2|w3b> <n>\n");
    return 2;
  }
  int64_t n = atoll(argv[2]);
  if (strcmp(argv[1], "w1") == 0)
    pair(1, n);
  else if (strcmp(argv[1], "w2") == 0)
    w2(n);
  else if (strcmp(argv[1], "w3b") == 0)
    pair(3, n);
  else {
    fprintf(stderr, "unknown workload %s\n", argv[1]);
    return 2;
  }
  return 0;
}
