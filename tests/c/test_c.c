/* C tests of the channel-messaging C API (include/channel_messaging.h).
 *
 * Built and run by ci/test-c.sh (also under valgrind). Test names carry the spec.md id
 * they check where there is one. The last line is "N passed, M failed". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "channel_messaging.h"

/* ---- a tiny harness ------------------------------------------------------------------ */

static int failures_in_test;

#define CHECK(cond)                                                                      \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "  %s:%d: CHECK(%s) failed (last error: %s)\n", __FILE__, __LINE__, \
              #cond, cm_last_error_message());                                           \
      failures_in_test++;                                                                \
    }                                                                                    \
  } while (0)

#define CHECK_STATUS(expr, want)                                                         \
  do {                                                                                   \
    cm_status got_ = (expr);                                                             \
    if (got_ != (want)) {                                                                \
      fprintf(stderr, "  %s:%d: %s returned %d, expected %d (%s) (last error: %s)\n",    \
              __FILE__, __LINE__, #expr, (int)got_, (int)(want), #want,                  \
              cm_last_error_message());                                                  \
      failures_in_test++;                                                                \
    }                                                                                    \
  } while (0)

#define OK(expr) CHECK_STATUS(expr, CM_OK)

/* ---- helpers ------------------------------------------------------------------------- */

static int64_t i64_from_bits(uint64_t u) {
  int64_t i;
  memcpy(&i, &u, sizeof i);
  return i;
}

static double f64_from_bits(uint64_t u) {
  double d;
  memcpy(&d, &u, sizeof d);
  return d;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static cm_value *build_array(int n, ...) {
  va_list ap;
  cm_value *a = cm_value_new_array();
  va_start(ap, n);
  for (int i = 0; i < n; i++) cm_value_push(a, va_arg(ap, cm_value *));
  va_end(ap);
  return a;
}

static cm_value *build_set(int n, ...) {
  va_list ap;
  cm_value *a = cm_value_new_set();
  va_start(ap, n);
  for (int i = 0; i < n; i++) cm_value_push(a, va_arg(ap, cm_value *));
  va_end(ap);
  return a;
}

/* build_object(n, key, key_len, value, ...) */
static cm_value *build_object(int n, ...) {
  va_list ap;
  cm_value *o = cm_value_new_object();
  va_start(ap, n);
  for (int i = 0; i < n; i++) {
    const char *k = va_arg(ap, const char *);
    size_t klen = va_arg(ap, size_t);
    cm_value_set(o, k, klen, va_arg(ap, cm_value *));
  }
  va_end(ap);
  return o;
}

static cm_value *build_map(int n, ...) {
  va_list ap;
  cm_value *m = cm_value_new_map();
  va_start(ap, n);
  for (int i = 0; i < n; i++) {
    cm_value *k = va_arg(ap, cm_value *);
    cm_value_map_set(m, k, va_arg(ap, cm_value *));
  }
  va_end(ap);
  return m;
}

static cm_value *tick(int64_t seq) {
  return build_object(2, "seq", (size_t)3, cm_value_new_int(seq), "name", (size_t)4,
                      cm_value_new_string("tick", 4));
}

/* Reads {"seq": n, "name": "tick"}; returns n or -1. */
static int64_t read_tick(const cm_value *v) {
  const cm_value *seq, *name;
  int64_t n;
  const char *s;
  size_t len;
  if (cm_value_get(v, "seq", 3, &seq) != CM_OK) return -1;
  if (cm_value_get_int(seq, &n) != CM_OK) return -1;
  if (cm_value_get(v, "name", 4, &name) != CM_OK) return -1;
  if (cm_value_get_string(name, &s, &len) != CM_OK || len != 4 || memcmp(s, "tick", 4)) return -1;
  return n;
}

static int same_bytes(const void *a, size_t alen, const void *b, size_t blen) {
  return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* Deep, exact equality of two value trees (floats bit for bit). */
static int value_eq(const cm_value *a, const cm_value *b) {
  cm_kind ka, kb;
  if (cm_value_kind(a, &ka) != CM_OK || cm_value_kind(b, &kb) != CM_OK || ka != kb) return 0;
  switch (ka) {
    case CM_KIND_UNDEFINED:
    case CM_KIND_NULL:
    case CM_KIND_HOLE:
      return 1;
    case CM_KIND_BOOL: {
      bool x, y;
      cm_value_get_bool(a, &x);
      cm_value_get_bool(b, &y);
      return x == y;
    }
    case CM_KIND_INT: {
      int64_t x, y;
      cm_value_get_int(a, &x);
      cm_value_get_int(b, &y);
      return x == y;
    }
    case CM_KIND_FLOAT:
    case CM_KIND_DATE: {
      double x, y;
      if (ka == CM_KIND_FLOAT) {
        cm_value_get_float(a, &x);
        cm_value_get_float(b, &y);
      } else {
        cm_value_get_date(a, &x);
        cm_value_get_date(b, &y);
      }
      return memcmp(&x, &y, sizeof x) == 0;
    }
    case CM_KIND_BIGINT: {
      bool na, nb;
      const uint8_t *ma, *mb;
      size_t la, lb;
      cm_value_get_bigint(a, &na, &ma, &la);
      cm_value_get_bigint(b, &nb, &mb, &lb);
      return na == nb && same_bytes(ma, la, mb, lb);
    }
    case CM_KIND_STRING: {
      const char *sa, *sb;
      size_t la, lb;
      cm_value_get_string(a, &sa, &la);
      cm_value_get_string(b, &sb, &lb);
      return same_bytes(sa, la, sb, lb);
    }
    case CM_KIND_UTF16: {
      const uint16_t *ua, *ub;
      size_t la, lb;
      cm_value_get_utf16(a, &ua, &la);
      cm_value_get_utf16(b, &ub, &lb);
      return same_bytes(ua, la * 2, ub, lb * 2);
    }
    case CM_KIND_BUFFER: {
      const uint8_t *pa, *pb;
      size_t la, lb;
      cm_value_get_buffer(a, &pa, &la);
      cm_value_get_buffer(b, &pb, &lb);
      return same_bytes(pa, la, pb, lb);
    }
    case CM_KIND_BOXED:
    case CM_KIND_SHARED: {
      const cm_value *ia, *ib;
      cm_value_inner(a, &ia);
      cm_value_inner(b, &ib);
      return value_eq(ia, ib);
    }
    case CM_KIND_VIEW: {
      int32_t ka2, kb2;
      uint64_t oa, ob, la, lb;
      const cm_value *ba, *bb;
      cm_value_get_view(a, &ka2, &oa, &la, &ba);
      cm_value_get_view(b, &kb2, &ob, &lb, &bb);
      return ka2 == kb2 && oa == ob && la == lb && value_eq(ba, bb);
    }
    case CM_KIND_ARRAY:
    case CM_KIND_SET: {
      size_t la, lb;
      cm_value_len(a, &la);
      cm_value_len(b, &lb);
      if (la != lb) return 0;
      for (size_t i = 0; i < la; i++) {
        const cm_value *ia, *ib;
        cm_value_at(a, i, &ia);
        cm_value_at(b, i, &ib);
        if (!value_eq(ia, ib)) return 0;
      }
      return 1;
    }
    case CM_KIND_OBJECT: {
      size_t la, lb;
      cm_value_len(a, &la);
      cm_value_len(b, &lb);
      if (la != lb) return 0;
      for (size_t i = 0; i < la; i++) {
        const char *kaa, *kbb;
        size_t kla, klb;
        const cm_value *ia, *ib;
        cm_value_entry(a, i, &kaa, &kla, &ia);
        cm_value_entry(b, i, &kbb, &klb, &ib);
        if (!same_bytes(kaa, kla, kbb, klb) || !value_eq(ia, ib)) return 0;
      }
      return 1;
    }
    case CM_KIND_MAP: {
      size_t la, lb;
      cm_value_len(a, &la);
      cm_value_len(b, &lb);
      if (la != lb) return 0;
      for (size_t i = 0; i < la; i++) {
        const cm_value *kaa, *kbb, *ia, *ib;
        cm_value_map_entry(a, i, &kaa, &ia);
        cm_value_map_entry(b, i, &kbb, &ib);
        if (!value_eq(kaa, kbb) || !value_eq(ia, ib)) return 0;
      }
      return 1;
    }
    case CM_KIND_REGEXP: {
      const char *sa, *fa, *sb, *fb;
      size_t sla, fla, slb, flb;
      cm_value_get_regexp(a, &sa, &sla, &fa, &fla);
      cm_value_get_regexp(b, &sb, &slb, &fb, &flb);
      return same_bytes(sa, sla, sb, slb) && same_bytes(fa, fla, fb, flb);
    }
    case CM_KIND_ERROR: {
      int32_t na, nb;
      const char *ma, *mb, *sa, *sb;
      size_t mla, mlb, sla, slb;
      const cm_value *ca, *cb;
      cm_value_get_error(a, &na, &ma, &mla, &sa, &sla, &ca);
      cm_value_get_error(b, &nb, &mb, &mlb, &sb, &slb, &cb);
      if (na != nb || (ma == NULL) != (mb == NULL) || (sa == NULL) != (sb == NULL) ||
          (ca == NULL) != (cb == NULL))
        return 0;
      if (ma && !same_bytes(ma, mla, mb, mlb)) return 0;
      if (sa && !same_bytes(sa, sla, sb, slb)) return 0;
      return ca == NULL || value_eq(ca, cb);
    }
    case CM_KIND_REF:
    case CM_KIND_PORT: {
      uint32_t x, y;
      if (ka == CM_KIND_REF) {
        cm_value_get_ref(a, &x);
        cm_value_get_ref(b, &y);
      } else {
        cm_value_get_port(a, &x);
        cm_value_get_port(b, &y);
      }
      return x == y;
    }
  }
  return 0;
}

/* Receives one message (waiting at most 5 s) and returns its value, owned. */
static cm_value *recv_value(cm_port port) {
  cm_message *m = NULL;
  cm_value *v = NULL;
  if (cm_port_recv(port, 5000, &m) != CM_OK) return NULL;
  if (cm_message_take_value(m, &v) != CM_OK) v = NULL;
  cm_message_free(m);
  return v;
}

/* ---- version ------------------------------------------------------------------------- */

static void version_macros_and_abi_match_the_library(void) {
  char want[64];
  snprintf(want, sizeof want, "%d.%d.%d", CM_VERSION_MAJOR, CM_VERSION_MINOR, CM_VERSION_PATCH);
  CHECK(strcmp(want, CM_VERSION) == 0);
  CHECK(strcmp(cm_version(), CM_VERSION) == 0);
  CHECK(CM_VERSION_NUMBER == CM_VERSION_MAJOR * 10000 + CM_VERSION_MINOR * 100 + CM_VERSION_PATCH);
  CHECK(cm_version_number() == CM_VERSION_NUMBER);
  CHECK(cm_abi_version() == CM_ABI_VERSION);
  CHECK(CM_OK == 0 && CM_ERR_INVALID_HANDLE == 10 && CM_ERR_PANIC == 99);
}

/* ---- ping-pong between two pthreads ------------------------------------------------- */

#define PINGS 2000

static void *echo_thread(void *arg) {
  cm_port p = *(cm_port *)arg;
  for (;;) {
    cm_message *m;
    cm_status s = cm_port_recv(p, -1, &m);
    if (s == CM_CLOSED) break;
    if (s != CM_OK) return (void *)1;
    const cm_value *v;
    if (cm_message_value(m, &v) != CM_OK || cm_port_post(p, v, NULL, 0) != CM_OK) {
      cm_message_free(m);
      return (void *)2;
    }
    cm_message_free(m);
  }
  cm_port_close(p);
  return NULL;
}

static void a1_ping_pong_between_two_threads(void) {
  cm_port a, b;
  OK(cm_channel_new(&a, &b));
  CHECK(a != 0 && b != 0 && a != b);
  pthread_t t;
  pthread_create(&t, NULL, echo_thread, &b);
  for (int64_t i = 0; i < PINGS; i++) {
    cm_value *v = tick(i);
    OK(cm_port_post(a, v, NULL, 0));
    cm_value_free(v);
    cm_value *back = recv_value(a);
    CHECK(back != NULL && read_tick(back) == i);
    cm_value_free(back);
  }
  OK(cm_port_close(a));
  void *ret;
  pthread_join(t, &ret);
  CHECK(ret == NULL);
}

/* ---- transfer of a port to a third thread with messages in flight -------------------- */

#define IN_FLIGHT 500

struct third {
  cm_port inbox;
  int64_t received;
  int in_order;
};

static void *third_thread(void *arg) {
  struct third *t = arg;
  cm_message *m;
  if (cm_port_recv(t->inbox, 5000, &m) != CM_OK) return NULL;
  const cm_value *v, *pv;
  uint32_t index = 99;
  cm_port moved = 0;
  if (cm_message_value(m, &v) == CM_OK && cm_value_get(v, "port", 4, &pv) == CM_OK)
    cm_value_get_port(pv, &index);
  if (index == 0) cm_message_take_port(m, 0, &moved);
  cm_message_free(m);
  t->in_order = moved != 0;
  for (int64_t i = 0; moved && i < IN_FLIGHT; i++) {
    cm_value *x = recv_value(moved);
    if (x == NULL || read_tick(x) != i) t->in_order = 0;
    cm_value_free(x);
    t->received++;
  }
  /* Then the close of the sender arrives, in-band. */
  cm_message *end = NULL;
  if (moved && cm_port_recv(moved, 5000, &end) != CM_CLOSED) t->in_order = 0;
  cm_port_close(moved);
  cm_port_close(t->inbox);
  return NULL;
}

static void c10_messages_in_transit_reach_new_owner(void) {
  cm_port main_side, third_side, sender, moving;
  OK(cm_channel_new(&main_side, &third_side));
  OK(cm_channel_new(&sender, &moving));
  /* Half the messages are queued at `moving` before it is transferred ... */
  for (int64_t i = 0; i < IN_FLIGHT / 2; i++) {
    cm_value *v = tick(i);
    OK(cm_port_post(sender, v, NULL, 0));
    cm_value_free(v);
  }
  struct third t = {third_side, 0, 0};
  pthread_t th;
  pthread_create(&th, NULL, third_thread, &t);
  cm_value *carrier = build_object(1, "port", (size_t)4, cm_value_new_port(0));
  OK(cm_port_post(main_side, carrier, &moving, 1));
  cm_value_free(carrier);
  /* ... the handle is inert at once (C9) ... */
  CHECK_STATUS(cm_port_start(moving), CM_ERR_INVALID_HANDLE);
  /* ... and the rest are posted while it is in flight. */
  for (int64_t i = IN_FLIGHT / 2; i < IN_FLIGHT; i++) {
    cm_value *v = tick(i);
    OK(cm_port_post(sender, v, NULL, 0));
    cm_value_free(v);
  }
  OK(cm_port_close(sender));
  pthread_join(th, NULL);
  CHECK(t.received == IN_FLIGHT);
  CHECK(t.in_order);
  OK(cm_port_close(main_side));
}

/* ---- close while the partner is blocked in receive ----------------------------------- */

struct blocked {
  cm_port port;
  cm_status first, second;
  int64_t seq;
};

static void *blocked_thread(void *arg) {
  struct blocked *b = arg;
  cm_message *m = NULL;
  b->first = cm_port_recv(b->port, -1, &m);
  if (m) {
    const cm_value *v;
    if (cm_message_value(m, &v) == CM_OK) b->seq = read_tick(v);
    cm_message_free(m);
  }
  b->second = cm_port_recv(b->port, -1, &m);
  return NULL;
}

static void d1_close_wakes_a_partner_blocked_in_receive(void) {
  cm_port a, b;
  OK(cm_channel_new(&a, &b));
  struct blocked st = {b, -1, -1, -1};
  pthread_t t;
  pthread_create(&t, NULL, blocked_thread, &st);
  sleep_ms(50);
  cm_value *v = tick(7);
  OK(cm_port_post(a, v, NULL, 0));
  cm_value_free(v);
  sleep_ms(50); /* the receiver is blocked again */
  OK(cm_port_close(a));
  pthread_join(t, NULL);
  CHECK_STATUS(st.first, CM_OK);
  CHECK(st.seq == 7);
  CHECK_STATUS(st.second, CM_CLOSED);
  cm_message *m;
  CHECK_STATUS(cm_port_recv(b, 0, &m), CM_CLOSED); /* and again */
  CHECK(m == NULL);
  bool entangled = true;
  OK(cm_port_is_entangled(b, &entangled));
  CHECK(!entangled);
  OK(cm_port_close(b));
}

/* ---- every value kind round-tripped through a port ----------------------------------- */

static cm_value *every_kind(void) {
  static const uint8_t mag[] = {1, 0, 0, 0, 0, 0, 0, 0, 0};
  static const uint16_t lone[] = {0x61, 0xd800};
  cm_value *error =
      cm_value_new_error(CM_ERROR_TYPE, "bad", 3, "at f", 4, cm_value_new_string("why", 3));
  uint8_t raw[16];
  for (int i = 0; i < 16; i++) raw[i] = (uint8_t)i;
  return build_array(
      22, cm_value_new_undefined(), cm_value_new_null(), cm_value_new_bool(true),
      cm_value_new_int(INT64_MIN), cm_value_new_float(-0.0), cm_value_new_bigint(true, mag, 9),
      cm_value_new_string("h\0llo \xc3\xa9", 8), cm_value_new_utf16(lone, 2),
      cm_value_new_boxed(cm_value_new_int(1)), cm_value_new_buffer(raw, 16),
      cm_value_new_view(CM_VIEW_FLOAT64, 8, 1, cm_value_new_buffer(raw, 16)), cm_value_new_hole(),
      build_object(1, "k", (size_t)1, cm_value_new_null()),
      build_map(1, cm_value_new_int(1), cm_value_new_string("one", 3)),
      build_set(2, cm_value_new_int(1), cm_value_new_int(2)), cm_value_new_date(1.5e12),
      cm_value_new_regexp("a+b", 3, "gi", 2), error,
      cm_value_new_shared(build_array(1, cm_value_new_ref(0))), /* a cycle */
      cm_value_new_ref(0), cm_value_new_port(0),
      cm_value_new_date(f64_from_bits(UINT64_C(0x7ff8000000000000))));
}

static void g_every_value_kind_round_trips(void) {
  cm_port a, b, c, d;
  OK(cm_channel_new(&a, &b));
  OK(cm_channel_new(&c, &d));
  cm_value *v = every_kind();
  CHECK(v != NULL);
  size_t n = 0;
  OK(cm_value_len(v, &n));
  CHECK(n == 22);
  OK(cm_port_post(a, v, &d, 1));
  cm_message *m;
  OK(cm_port_recv(b, 1000, &m));
  const cm_value *got;
  OK(cm_message_value(m, &got));
  CHECK(value_eq(v, got));
  size_t ports = 0;
  OK(cm_message_port_count(m, &ports));
  CHECK(ports == 1);
  /* Every kind is reported as itself. */
  for (size_t i = 0; i < 21; i++) {
    const cm_value *item;
    cm_kind k;
    OK(cm_value_at(got, i, &item));
    OK(cm_value_kind(item, &k));
    CHECK(k == (cm_kind)(i <= 10 ? i : i + 1)); /* the hole comes where an array would */
  }
  /* The same value survives raw CBOR out and in. */
  cm_buffer *cbor;
  OK(cm_value_to_cbor(v, &cbor));
  const uint8_t *bytes;
  size_t len;
  OK(cm_buffer_data(cbor, &bytes, &len));
  cm_value *back;
  OK(cm_value_decode(bytes, len, NULL, 0, 1, &back));
  CHECK(value_eq(v, back));
  cm_value_free(back);
  cm_buffer_free(cbor);
  cm_value *copy = cm_value_clone(got);
  CHECK(value_eq(copy, v));
  cm_value_free(copy);
  cm_message_free(m); /* closes the port it carried: its partner sees the close */
  CHECK_STATUS(cm_port_recv(c, 1000, &m), CM_CLOSED);
  cm_value_free(v);
  OK(cm_port_close(a));
  OK(cm_port_close(b));
  OK(cm_port_close(c));
}

/* ---- the golden vectors -------------------------------------------------------------- */

/* A message of tests/vectors: its bytes, its side table and its port count. */
struct message {
  const char *name;
  const uint8_t *bytes;
  size_t len;
  const uint8_t **buffers;
  const size_t *buffer_lens;
  size_t buffer_count;
  uint32_t ports;
};

struct vector {
  struct message m;
  cm_value *(*expected)(void);
};

struct invalid_vector {
  struct message m;
  const char *error; /* what cm_last_error_message() names */
};

#include "vectors.h"

/* cm_value_decode over the message and its side table. */
static cm_status decode_message(const struct message *m, cm_value **out) {
  cm_buffer *side[4] = {0};
  for (size_t j = 0; j < m->buffer_count; j++)
    side[j] = cm_buffer_new(m->buffers[j], m->buffer_lens[j]);
  cm_status s = cm_value_decode(m->bytes, m->len, (const cm_buffer *const *)side, m->buffer_count,
                                m->ports, out);
  for (size_t j = 0; j < m->buffer_count; j++) cm_buffer_free(side[j]);
  return s;
}

static void golden_vectors_decode_and_encode(void) {
  for (size_t i = 0; i < VECTOR_COUNT; i++) {
    const struct message *m = &VECTORS[i].m;
    cm_value *got = NULL;
    cm_value *want = VECTORS[i].expected();
    cm_status s = decode_message(m, &got);
    if (s != CM_OK || want == NULL || !value_eq(got, want)) {
      fprintf(stderr, "  vector %s: decoded value differs (status %d: %s)\n", m->name, (int)s,
              cm_last_error_message());
      failures_in_test++;
    }
    if (m->buffer_count == 0 && want != NULL) {
      cm_buffer *enc = NULL;
      const uint8_t *p;
      size_t n;
      if (cm_value_to_cbor(want, &enc) != CM_OK || cm_buffer_data(enc, &p, &n) != CM_OK ||
          !same_bytes(p, n, m->bytes, m->len)) {
        fprintf(stderr, "  vector %s: encoding differs\n", m->name);
        failures_in_test++;
      }
      cm_buffer_free(enc);
    }
    cm_value_free(got);
    cm_value_free(want);
  }
  CHECK(VECTOR_COUNT > 50);
}

/* tests/vectors/invalid.json: each is CM_ERR_MESSAGE, naming its error kind */
static void invalid_vectors_are_message_errors(void) {
  for (size_t i = 0; i < INVALID_COUNT; i++) {
    const struct message *m = &INVALID[i].m;
    cm_value *got = NULL;
    cm_status s = decode_message(m, &got);
    const char *why = cm_last_error_message();
    const char *want = INVALID[i].error;
    if (s != CM_ERR_MESSAGE || got != NULL || why == NULL || strstr(why, want) == NULL) {
      fprintf(stderr, "  invalid vector %s: status %d (%s), want CM_ERR_MESSAGE naming \"%s\"\n",
              m->name, (int)s, why ? why : "no message", want);
      failures_in_test++;
    }
    cm_value_free(got);
  }
  CHECK(INVALID_COUNT > 30);
}

/* ---- misuse -------------------------------------------------------------------------- */

static void misuse_returns_errors_without_crashing(void) {
  cm_port a, b;
  cm_message *m;
  OK(cm_channel_new(&a, &b));
  cm_value *v = cm_value_new_int(1);

  /* NULL pointers */
  CHECK_STATUS(cm_channel_new(NULL, &a), CM_ERR_NULL_POINTER);
  CHECK_STATUS(cm_port_post(a, NULL, NULL, 0), CM_ERR_NULL_POINTER);
  CHECK_STATUS(cm_port_post(a, v, NULL, 2), CM_ERR_NULL_POINTER);
  CHECK_STATUS(cm_port_recv(a, 0, NULL), CM_ERR_NULL_POINTER);
  CHECK_STATUS(cm_port_fd(a, NULL), CM_ERR_NULL_POINTER);
  CHECK_STATUS(cm_value_kind(NULL, NULL), CM_ERR_NULL_POINTER);
  CHECK_STATUS(cm_value_push(NULL, cm_value_new_null()), CM_ERR_NULL_POINTER);
  CHECK_STATUS(cm_message_value(NULL, NULL), CM_ERR_NULL_POINTER);
  CHECK(cm_value_new_string(NULL, 3) == NULL);
  CHECK(strstr(cm_last_error_message(), "NULL") != NULL);
  cm_value_free(NULL);
  cm_message_free(NULL);
  cm_buffer_free(NULL);

  /* handle 0 and random handles */
  CHECK_STATUS(cm_port_post(0, v, NULL, 0), CM_ERR_INVALID_HANDLE);
  CHECK_STATUS(cm_port_close(0), CM_ERR_INVALID_HANDLE);
  CHECK_STATUS(cm_port_recv(0, 0, &m), CM_ERR_INVALID_HANDLE);
  uint64_t x = 0x9e3779b97f4a7c15u;
  for (int i = 0; i < 1000; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    if (x == a || x == b) continue;
    CHECK_STATUS(cm_port_start(x), CM_ERR_INVALID_HANDLE);
    CHECK_STATUS(cm_port_close(x), CM_ERR_INVALID_HANDLE);
  }
  CHECK_STATUS(cm_port_start(a + 1000), CM_ERR_INVALID_HANDLE);
  CHECK_STATUS(cm_port_start(a ^ (UINT64_C(1) << 40)), CM_ERR_INVALID_HANDLE);

  /* a handle of another kind */
  cm_collection coll;
  OK(cm_collection_new(&coll));
  CHECK_STATUS(cm_port_post(coll, v, NULL, 0), CM_ERR_INVALID_HANDLE);
  CHECK_STATUS(cm_port_close(coll), CM_ERR_INVALID_HANDLE);
  CHECK_STATUS(cm_collection_add(a, b), CM_ERR_INVALID_HANDLE);
  OK(cm_collection_free(coll));
  CHECK_STATUS(cm_collection_free(coll), CM_ERR_INVALID_HANDLE);

  /* transfer-list errors (C3, C5, C15): nothing is detached */
  CHECK_STATUS(cm_port_post(a, v, &a, 1), CM_ERR_DATA_CLONE);
  cm_port c, d;
  OK(cm_channel_new(&c, &d));
  cm_port twice[2] = {c, c};
  CHECK_STATUS(cm_port_post(a, v, twice, 2), CM_ERR_DATA_CLONE);
  cm_value *port_value = cm_value_new_port(0);
  CHECK_STATUS(cm_port_post(a, port_value, NULL, 0), CM_ERR_DATA_CLONE); /* C15 */
  CHECK(strstr(cm_last_error_message(), "DataCloneError") != NULL);
  cm_port bad_list[2] = {c, 12345};
  CHECK_STATUS(cm_port_post(a, port_value, bad_list, 2), CM_ERR_INVALID_HANDLE);
  OK(cm_port_start(c)); /* still ours */

  /* use after transfer */
  OK(cm_port_post(a, port_value, &c, 1));
  CHECK_STATUS(cm_port_post(c, v, NULL, 0), CM_ERR_INVALID_HANDLE);
  CHECK_STATUS(cm_port_close(c), CM_ERR_INVALID_HANDLE);
  CHECK_STATUS(cm_port_post(a, port_value, &c, 1), CM_ERR_INVALID_HANDLE);
  OK(cm_port_recv(b, 1000, &m));
  cm_port adopted;
  OK(cm_message_take_port(m, 0, &adopted));
  CHECK(adopted != c);
  CHECK_STATUS(cm_message_take_port(m, 0, &adopted), CM_ERR_INVALID_STATE);
  CHECK_STATUS(cm_message_take_port(m, 1, &adopted), CM_ERR_OUT_OF_RANGE);
  cm_message_free(m);

  /* double close */
  OK(cm_port_close(adopted));
  CHECK_STATUS(cm_port_close(adopted), CM_ERR_INVALID_HANDLE);

  /* wrong kinds and bad arguments in the value API */
  int64_t i64;
  CHECK_STATUS(cm_value_get_int(port_value, &i64), CM_ERR_WRONG_KIND);
  CHECK(strstr(cm_last_error_message(), "MessagePort") != NULL);
  CHECK_STATUS(cm_value_push(v, cm_value_new_null()), CM_ERR_WRONG_KIND);
  CHECK(cm_value_new_string("\xff", 1) == NULL);
  CHECK(cm_value_new_view(1234, 0, 0, cm_value_new_buffer(NULL, 0)) == NULL);
  CHECK(cm_value_new_error(-1, NULL, 0, NULL, 0, NULL) == NULL);
  const cm_value *item;
  cm_value *arr = build_array(1, cm_value_new_int(1));
  CHECK_STATUS(cm_value_at(arr, 1, &item), CM_ERR_OUT_OF_RANGE);
  cm_value *obj = tick(1);
  CHECK_STATUS(cm_value_get(obj, "nope", 4, &item), CM_ERR_NOT_FOUND);
  cm_value *hole = cm_value_new_hole(); /* a hole outside an array cannot be posted */
  CHECK_STATUS(cm_port_post(a, hole, NULL, 0), CM_ERR_DATA_CLONE);
  cm_value *dangling = cm_value_new_ref(3);
  CHECK_STATUS(cm_port_post(a, dangling, NULL, 0), CM_ERR_DATA_CLONE);

  /* an undecodable message is a messageerror; the next one goes on (E1) */
  static const uint8_t garbage[] = {0xd9, 0xcb, 0x01, 0xff};
  OK(cm_port_post_encoded(a, garbage, sizeof garbage, NULL, 0, NULL, 0));
  OK(cm_port_post(a, v, NULL, 0));
  CHECK_STATUS(cm_port_recv(b, 1000, &m), CM_ERR_MESSAGE);
  CHECK(m == NULL);
  cm_value *next = recv_value(b);
  CHECK(next != NULL && value_eq(next, v));
  cm_value_free(next);
  CHECK_STATUS(cm_port_recv(b, 0, &m), CM_EMPTY);
  CHECK_STATUS(cm_port_recv(b, 20, &m), CM_TIMEOUT);

  cm_value_free(v);
  cm_value_free(port_value);
  cm_value_free(arr);
  cm_value_free(obj);
  cm_value_free(hole);
  cm_value_free(dangling);
  OK(cm_port_close(a));
  OK(cm_port_close(b));
  OK(cm_port_close(d));
}

/* ---- the pollable fd ----------------------------------------------------------------- */

static int readable(int fd, int timeout_ms) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static void *post_later(void *arg) {
  cm_port a = *(cm_port *)arg;
  sleep_ms(30);
  cm_value *v = tick(1);
  cm_port_post(a, v, NULL, 0);
  cm_value_free(v);
  return NULL;
}

static void poll_fd_is_readable_while_messages_wait(void) {
  cm_port a, b;
  OK(cm_channel_new(&a, &b));
  int fd = -1, again = -1;
  OK(cm_port_fd(b, &fd));
  OK(cm_port_fd(b, &again));
  CHECK(fd >= 0 && fd == again);
  CHECK(!readable(fd, 0));
  /* A post from another thread wakes poll(2). */
  pthread_t t;
  pthread_create(&t, NULL, post_later, &a);
  CHECK(readable(fd, 5000));
  pthread_join(t, NULL);
  cm_value *v = tick(2);
  OK(cm_port_post(a, v, NULL, 0));
  cm_value_free(v);
  CHECK(readable(fd, 0)); /* still readable: two messages wait */
  cm_message *m;
  OK(cm_port_recv(b, 0, &m));
  cm_message_free(m);
  CHECK(readable(fd, 0)); /* one still waits */
  OK(cm_port_recv(b, 0, &m));
  cm_message_free(m);
  CHECK_STATUS(cm_port_recv(b, 0, &m), CM_EMPTY); /* drained: the fd resets */
  CHECK(!readable(fd, 0));
  /* The close is something to read too. */
  OK(cm_port_close(a));
  CHECK(readable(fd, 1000));
  CHECK_STATUS(cm_port_recv(b, 0, &m), CM_CLOSED);
  OK(cm_port_close(b));
}

/* Handles looked up on this thread are cached (ffi/src/port.rs); the cache must never
 * outlive the handle, keep a port alive, or hide a wake-up installed later. */
static void handle_lookups_stay_exact_after_close_reuse_transfer_and_fd(void) {
  cm_port a, b;
  OK(cm_channel_new(&a, &b));
  OK(cm_port_start(a)); /* looked up: cached */
  OK(cm_port_close(a));
  CHECK_STATUS(cm_port_start(a), CM_ERR_INVALID_HANDLE);
  cm_value *v = tick(1);
  CHECK_STATUS(cm_port_post(a, v, NULL, 0), CM_ERR_INVALID_HANDLE);
  cm_message *m;
  CHECK_STATUS(cm_port_recv(a, 0, &m), CM_ERR_INVALID_HANDLE);
  /* the freed slot is reused under a new generation: the old handle stays invalid */
  cm_port c, d;
  OK(cm_channel_new(&c, &d));
  CHECK(c != a && d != a);
  CHECK_STATUS(cm_port_start(a), CM_ERR_INVALID_HANDLE);
  OK(cm_port_post(c, v, NULL, 0));
  OK(cm_port_recv(d, 1000, &m));
  cm_message_free(m);

  /* a port looked up here, then transferred in a message that is discarded unread,
   * closes as if garbage-collected (F6): the cache holds no reference that keeps it */
  cm_port p, q, s, r;
  OK(cm_channel_new(&p, &q));
  OK(cm_channel_new(&s, &r));
  OK(cm_port_start(p));
  cm_value *carrier = cm_value_new_port(0);
  OK(cm_port_post(s, carrier, &p, 1));
  cm_value_free(carrier);
  CHECK_STATUS(cm_port_start(p), CM_ERR_INVALID_HANDLE);
  OK(cm_port_close(r)); /* the message with p in it is dropped */
  CHECK_STATUS(cm_port_recv(q, 2000, &m), CM_CLOSED);

  /* a wake-up installed after the port was cached is honoured: the fd resets once the
   * queue is drained */
  CHECK_STATUS(cm_port_recv(d, 0, &m), CM_EMPTY); /* cached, no fd yet */
  int fd = -1;
  OK(cm_port_fd(d, &fd));
  OK(cm_port_post(c, v, NULL, 0));
  CHECK(readable(fd, 1000));
  OK(cm_port_recv(d, 0, &m));
  cm_message_free(m);
  CHECK_STATUS(cm_port_recv(d, 0, &m), CM_EMPTY);
  CHECK(!readable(fd, 0));

  cm_value_free(v);
  OK(cm_port_close(b));
  OK(cm_port_close(c));
  OK(cm_port_close(d));
  OK(cm_port_close(q));
  OK(cm_port_close(s));
}

/* ---- the notify callback ------------------------------------------------------------- */

struct notified {
  atomic_int calls;
  atomic_int freed;
  cm_port port;
};

static void on_ready(void *ud, cm_port port) {
  struct notified *n = ud;
  if (port == n->port) atomic_fetch_add(&n->calls, 1);
}

static void on_free(void *ud) {
  struct notified *n = ud;
  atomic_fetch_add(&n->freed, 1);
}

static void b2_notify_callback_fires_and_frees_its_user_data(void) {
  cm_port a, b;
  OK(cm_channel_new(&a, &b));
  struct notified n;
  atomic_init(&n.calls, 0);
  atomic_init(&n.freed, 0);
  n.port = b;
  cm_value *v = tick(1);
  OK(cm_port_post(a, v, NULL, 0)); /* queued before: fires when the callback starts it */
  OK(cm_port_set_notify(b, on_ready, &n, on_free));
  CHECK(atomic_load(&n.calls) == 1);
  OK(cm_port_post(a, v, NULL, 0)); /* coalesced: no receive found the queue empty yet */
  CHECK(atomic_load(&n.calls) == 1);
  cm_message *m;
  while (cm_port_recv(b, 0, &m) == CM_OK) cm_message_free(m);
  OK(cm_port_post(a, v, NULL, 0));
  CHECK(atomic_load(&n.calls) == 2);
  /* Replacing the callback frees the old user data. */
  OK(cm_port_set_notify(b, on_ready, &n, on_free));
  CHECK(atomic_load(&n.freed) == 1);
  OK(cm_port_close(b));
  CHECK(atomic_load(&n.freed) == 2);
  /* On an invalid handle the free function still runs. */
  CHECK_STATUS(cm_port_set_notify(b, on_ready, &n, on_free), CM_ERR_INVALID_HANDLE);
  CHECK(atomic_load(&n.freed) == 3);
  cm_value_free(v);
  OK(cm_port_close(a));
}

/* A cm_port_set_notify or cm_port_fd that runs while the port is closed must leave
 * nothing installed: the callback never runs with the closed handle, its user data is
 * freed exactly once, the fd is closed. These trigger the close at the two points where
 * the library runs C code in the middle of those calls: the old user data's free
 * function (set_notify replacing a callback) and the callback itself (installing the
 * hook fires it at once when something is queued). */
struct closes_port {
  cm_port port;
  atomic_int arm;
  atomic_int calls;
  atomic_int freed;
  cm_status close_status;
};

static void free_and_close(void *ud) {
  struct closes_port *c = ud;
  c->close_status = cm_port_close(c->port);
  atomic_fetch_add(&c->freed, 1);
}

static void close_when_armed(void *ud, cm_port port) {
  struct closes_port *c = ud;
  atomic_fetch_add(&c->calls, 1);
  if (atomic_exchange(&c->arm, 0)) c->close_status = cm_port_close(port);
}

static void ignore_ready(void *ud, cm_port port) {
  (void)ud;
  (void)port;
}

static void b2_notify_or_fd_during_close_leaves_nothing_installed(void) {
  cm_port a, b;
  cm_message *m;
  cm_value *v = tick(1);
  /* set_notify: replacing the callback frees the old user data, which closes the port */
  OK(cm_channel_new(&a, &b));
  struct closes_port c = {.port = b, .close_status = -1};
  struct notified n;
  atomic_init(&n.calls, 0);
  atomic_init(&n.freed, 0);
  n.port = b;
  OK(cm_port_set_notify(b, ignore_ready, &c, free_and_close));
  OK(cm_port_post(a, v, NULL, 0));
  CHECK_STATUS(cm_port_set_notify(b, on_ready, &n, on_free), CM_ERR_INVALID_HANDLE);
  CHECK(c.close_status == CM_OK && atomic_load(&c.freed) == 1);
  CHECK(atomic_load(&n.freed) == 1); /* freed by the time set_notify returned */
  CHECK(atomic_load(&n.calls) == 0); /* never called with the closed handle */
  OK(cm_port_post(a, v, NULL, 0));
  OK(cm_port_close(a));
  CHECK(atomic_load(&n.calls) == 0 && atomic_load(&n.freed) == 1);
  CHECK_STATUS(cm_port_recv(b, 0, &m), CM_ERR_INVALID_HANDLE);

  /* cm_port_fd: installing the fd's hook fires the callback (a message waits), which
   * closes the port: no fd is handed out for the closed handle */
  OK(cm_channel_new(&a, &b));
  struct closes_port k = {.port = b, .close_status = -1};
  OK(cm_port_set_notify(b, close_when_armed, &k, NULL));
  OK(cm_port_post(a, v, NULL, 0));
  CHECK(atomic_load(&k.calls) == 1);
  atomic_store(&k.arm, 1);
  int fd = -1;
  CHECK_STATUS(cm_port_fd(b, &fd), CM_ERR_INVALID_HANDLE);
  CHECK(atomic_load(&k.calls) == 2 && k.close_status == CM_OK);
  CHECK(fd == -1);
  OK(cm_port_post(a, v, NULL, 0));
  CHECK(atomic_load(&k.calls) == 2);
  OK(cm_port_close(a));
  CHECK(atomic_load(&k.calls) == 2);
  cm_value_free(v);
}

/* The same race between threads, bounded (well under a second, valgrind included):
 * whatever the order, once cm_port_set_notify + cm_port_fd and cm_port_close have all
 * returned, the user data was freed exactly once and the fd is closed. */
struct race_round {
  cm_port port;
  atomic_int *go;
  struct notified *n;
  cm_status notify_status, fd_status, close_status;
  int fd;
};

static void *race_notify_and_fd(void *arg) {
  struct race_round *r = arg;
  while (!atomic_load(r->go)) {
  }
  r->notify_status = cm_port_set_notify(r->port, on_ready, r->n, on_free);
  r->fd_status = cm_port_fd(r->port, &r->fd);
  return NULL;
}

static void *race_close(void *arg) {
  struct race_round *r = arg;
  while (!atomic_load(r->go)) {
  }
  r->close_status = cm_port_close(r->port);
  return NULL;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void b2_notify_and_fd_racing_close_leave_nothing_installed(void) {
  double start = now_ms();
  int rounds = 0, bad = 0;
  while (rounds < 2000 && now_ms() - start < 150) {
    rounds++;
    cm_port a, b;
    OK(cm_channel_new(&a, &b));
    struct notified n;
    atomic_init(&n.calls, 0);
    atomic_init(&n.freed, 0);
    n.port = b;
    atomic_int go;
    atomic_init(&go, 0);
    struct race_round r = {b, &go, &n, -1, -1, -1, -1};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, race_notify_and_fd, &r);
    pthread_create(&t2, NULL, race_close, &r);
    atomic_store(&go, 1);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    int fd_open = r.fd_status == CM_OK && fcntl(r.fd, F_GETFD) != -1;
    if (r.close_status != CM_OK || atomic_load(&n.freed) != 1 || fd_open) {
      if (bad++ == 0)
        fprintf(stderr, "  round %d: set_notify %d, fd %d, close %d: freed %d, fd open %d\n",
                rounds, r.notify_status, r.fd_status, r.close_status, atomic_load(&n.freed),
                fd_open);
    }
    OK(cm_port_close(a));
  }
  CHECK(bad == 0);
}

/* Closing disentangles both ports at once (A8, D1): the partner is no longer entangled
 * while what was posted before the close is still queued there, and still received (D4). */
static void d4_partner_close_disentangles_at_once_queued_messages_still_arrive(void) {
  cm_port a, b, c, d;
  bool entangled = false;
  cm_stats st;
  cm_message *m;
  OK(cm_channel_new(&a, &b));
  OK(cm_port_is_entangled(b, &entangled));
  CHECK(entangled);
  cm_value *v = tick(1);
  OK(cm_port_post(a, v, NULL, 0));
  OK(cm_port_close(a));
  OK(cm_port_is_entangled(b, &entangled));
  CHECK(!entangled);
  OK(cm_port_stats(b, &st));
  CHECK(st.closed && st.queued_messages == 1);
  OK(cm_port_post(b, v, NULL, 0)); /* goes nowhere, as on the web */
  const cm_value *got = NULL;
  OK(cm_port_recv(b, 0, &m));
  OK(cm_message_value(m, &got));
  CHECK(got != NULL && read_tick(got) == 1);
  cm_message_free(m);
  OK(cm_port_is_entangled(b, &entangled));
  CHECK(!entangled);
  CHECK_STATUS(cm_port_recv(b, 0, &m), CM_CLOSED);
  OK(cm_port_is_entangled(b, &entangled));
  CHECK(!entangled);
  OK(cm_port_close(b));
  /* a transferred partner is still a partner */
  OK(cm_channel_new(&a, &b));
  OK(cm_channel_new(&c, &d));
  cm_value *carrier = cm_value_new_port(0);
  OK(cm_port_post(c, carrier, &b, 1));
  cm_value_free(carrier);
  OK(cm_port_is_entangled(a, &entangled));
  CHECK(entangled);
  OK(cm_port_close(d)); /* the message carrying b is dropped: b closes, a is alone */
  OK(cm_port_is_entangled(a, &entangled));
  CHECK(!entangled);
  CHECK_STATUS(cm_port_recv(a, 1000, &m), CM_CLOSED);
  OK(cm_port_close(a));
  OK(cm_port_close(c));
  cm_value_free(v);
}

/* cm_last_error_status(): the status of the failure cm_last_error_message() explains,
 * for the functions that fail with NULL; per thread, CM_OK before any failure. */
static void *last_status_of_a_fresh_thread(void *out) {
  *(cm_status *)out = cm_last_error_status();
  return NULL;
}

static void last_error_status_names_the_last_failure(void) {
  CHECK(cm_value_new_buffer(NULL, 3) == NULL);
  CHECK(cm_last_error_status() == CM_ERR_NULL_POINTER);
  CHECK(cm_value_new_string("\xff", 1) == NULL);
  CHECK(cm_last_error_status() == CM_ERR_INVALID_ARGUMENT);
  CHECK(strlen(cm_last_error_message()) > 0);
  CHECK(cm_last_error_status() == CM_ERR_INVALID_ARGUMENT); /* reading the message keeps it */
  cm_value *boxed = cm_value_new_boxed(cm_value_new_null());
  CHECK(boxed == NULL && cm_last_error_status() == CM_ERR_WRONG_KIND);
  cm_port a, b;
  cm_message *m;
  OK(cm_channel_new(&a, &b));
  CHECK(cm_last_error_status() == CM_ERR_WRONG_KIND); /* a success leaves it */
  CHECK_STATUS(cm_port_recv(b, 0, &m), CM_EMPTY);
  CHECK(cm_last_error_status() == CM_EMPTY);
  OK(cm_port_close(a));
  OK(cm_port_close(b));
  CHECK_STATUS(cm_port_close(b), CM_ERR_INVALID_HANDLE);
  CHECK(cm_last_error_status() == CM_ERR_INVALID_HANDLE);
  cm_status fresh = (cm_status)-1;
  pthread_t t;
  pthread_create(&t, NULL, last_status_of_a_fresh_thread, &fresh);
  pthread_join(t, NULL);
  CHECK(fresh == CM_OK);
}

/* ---- flow control and stats ---------------------------------------------------------- */

static void flow_control_limits_and_stats(void) {
  cm_port a, b;
  OK(cm_channel_new(&a, &b));
  OK(cm_port_set_limits(b, 2, 0));
  bool ready = false;
  OK(cm_port_is_ready(a, &ready));
  CHECK(ready);
  cm_value *v = tick(1);
  OK(cm_port_post(a, v, NULL, 0));
  OK(cm_port_post(a, v, NULL, 0));
  OK(cm_port_is_ready(a, &ready));
  CHECK(!ready);
  cm_stats st;
  OK(cm_port_stats(b, &st));
  CHECK(st.queued_messages == 2 && st.queued_bytes > 0 && !st.closed && st.max_messages == 2 &&
        st.max_bytes == 0);
  cm_message *m;
  OK(cm_port_recv(b, 0, &m));
  cm_message_free(m);
  OK(cm_port_is_ready(a, &ready));
  CHECK(ready);
  cm_value_free(v);
  OK(cm_port_close(a));
  OK(cm_port_recv(b, 0, &m)); /* the second message, then the close */
  cm_message_free(m);
  CHECK_STATUS(cm_port_recv(b, 0, &m), CM_CLOSED);
  OK(cm_port_stats(b, &st));
  CHECK(st.closed && st.queued_messages == 0);
  OK(cm_port_close(b));
}

/* ---- PortCollection and BroadcastChannel ---------------------------------------------- */

static void h_collection_posts_to_every_member(void) {
  cm_port a1, b1, a2, b2;
  OK(cm_channel_new(&a1, &b1));
  OK(cm_channel_new(&a2, &b2));
  cm_collection c;
  OK(cm_collection_new(&c));
  OK(cm_collection_add(c, a1));
  OK(cm_collection_add(c, a2));
  OK(cm_collection_add(c, a1)); /* once */
  size_t len = 0, delivered = 0;
  OK(cm_collection_len(c, &len));
  CHECK(len == 2);
  cm_value *v = tick(5);
  OK(cm_collection_post(c, v, &delivered));
  CHECK(delivered == 2);
  cm_value *r1 = recv_value(b1), *r2 = recv_value(b2);
  CHECK(read_tick(r1) == 5 && read_tick(r2) == 5);
  cm_value_free(r1);
  cm_value_free(r2);
  bool member = false;
  OK(cm_port_close(a1)); /* closed ports leave by themselves */
  OK(cm_collection_len(c, &len));
  CHECK(len == 1);
  OK(cm_collection_contains(c, a2, &member));
  CHECK(member);
  OK(cm_collection_remove(c, a2));
  OK(cm_collection_contains(c, a2, &member));
  CHECK(!member);
  cm_value *with_port = cm_value_new_port(0);
  CHECK_STATUS(cm_collection_post(c, with_port, NULL), CM_ERR_DATA_CLONE);
  cm_value_free(with_port);
  cm_value_free(v);
  OK(cm_collection_free(c));
  OK(cm_port_close(b1));
  OK(cm_port_close(a2));
  OK(cm_port_close(b2));
}

static void i1_broadcast_reaches_others_not_itself(void) {
  cm_broadcast x, y;
  OK(cm_broadcast_new("c-test", 6, &x));
  OK(cm_broadcast_new("c-test", 6, &y));
  cm_value *v = tick(9);
  size_t delivered = 0;
  OK(cm_broadcast_post(x, v, &delivered));
  CHECK(delivered == 1);
  cm_message *m;
  OK(cm_broadcast_recv(y, 1000, &m));
  const cm_value *got;
  OK(cm_message_value(m, &got));
  CHECK(read_tick(got) == 9);
  const uint8_t *bytes;
  size_t len;
  OK(cm_message_bytes(m, &bytes, &len));
  CHECK(len > 3 && bytes[0] == 0xd9);
  cm_message_free(m);
  CHECK_STATUS(cm_broadcast_recv(x, 0, &m), CM_EMPTY); /* no self-delivery */
  OK(cm_broadcast_close(x));
  CHECK_STATUS(cm_broadcast_post(x, v, NULL), CM_ERR_INVALID_HANDLE);
  CHECK_STATUS(cm_broadcast_close(x), CM_ERR_INVALID_HANDLE);
  OK(cm_broadcast_close(y));
  cm_value_free(v);
}

/* ---- raw CBOR and zero-copy buffers --------------------------------------------------- */

static atomic_int buffers_freed;

static void free_with_count(void *ud, uint8_t *ptr, size_t len) {
  (void)ud;
  (void)len;
  free(ptr);
  atomic_fetch_add(&buffers_freed, 1);
}

static void w3b_buffers_move_without_copy(void) {
  cm_port a, b;
  OK(cm_channel_new(&a, &b));
  atomic_init(&buffers_freed, 0);
  size_t size = 64 * 1024;
  uint8_t *mem = malloc(size);
  memset(mem, 7, size);
  cm_buffer *buf = cm_buffer_new_owned(mem, size, free_with_count, NULL);
  CHECK(buf != NULL);
  cm_value *v = cm_value_new_buffer_from(buf);
  cm_buffer_free(buf);
  OK(cm_port_post(a, v, NULL, 0));
  cm_value_free(v);
  CHECK(atomic_load(&buffers_freed) == 0); /* the message holds the bytes */
  cm_message *m;
  OK(cm_port_recv(b, 1000, &m));
  const cm_value *got;
  OK(cm_message_value(m, &got));
  cm_buffer *received;
  OK(cm_value_get_buffer_handle(got, &received));
  cm_message_free(m);
  const uint8_t *p;
  size_t n;
  OK(cm_buffer_data(received, &p, &n));
  CHECK(p == mem && n == size); /* the very same memory: no copy */
  CHECK(p[100] == 7);
  CHECK(atomic_load(&buffers_freed) == 0);
  cm_buffer_free(received);
  CHECK(atomic_load(&buffers_freed) == 1); /* freed once, by its free function */

  /* Raw CBOR in, raw CBOR and side table out. */
  uint8_t *big = malloc(4096);
  memset(big, 3, 4096);
  cm_buffer *side = cm_buffer_new_owned(big, 4096, free_with_count, NULL);
  cm_value *payload = cm_value_new_buffer_from(side);
  cm_buffer *enc;
  OK(cm_value_to_cbor(payload, &enc)); /* self-contained: inline */
  const uint8_t *eb;
  size_t elen;
  OK(cm_buffer_data(enc, &eb, &elen));
  CHECK(elen > 4096);
  OK(cm_port_post_encoded(a, eb, elen, NULL, 0, NULL, 0));
  OK(cm_port_post(a, payload, NULL, 0)); /* >= 1 KiB: travels in the side table */
  cm_message *raw1, *raw2;
  OK(cm_port_recv_raw(b, 1000, &raw1));
  OK(cm_port_recv_raw(b, 1000, &raw2));
  const uint8_t *rb;
  size_t rlen, count;
  OK(cm_message_bytes(raw1, &rb, &rlen));
  CHECK(same_bytes(rb, rlen, eb, elen));
  OK(cm_message_buffer_count(raw2, &count));
  CHECK(count == 1);
  cm_buffer *sb;
  OK(cm_message_buffer(raw2, 0, &sb));
  const uint8_t *sp;
  size_t slen;
  OK(cm_buffer_data(sb, &sp, &slen));
  CHECK(sp == big && slen == 4096);
  const cm_value *d1, *d2;
  OK(cm_message_value(raw1, &d1));
  OK(cm_message_value(raw2, &d2));
  CHECK(value_eq(d1, payload) && value_eq(d2, payload));
  cm_buffer_free(sb);
  cm_message_free(raw1);
  cm_message_free(raw2);
  cm_buffer_free(enc);
  cm_value_free(payload);
  CHECK(atomic_load(&buffers_freed) == 1);
  cm_buffer_free(side);
  CHECK(atomic_load(&buffers_freed) == 2);
  OK(cm_port_close(a));
  OK(cm_port_close(b));
}

/* ---- the streaming writer ------------------------------------------------------------ */

static cm_status write_tick(cm_writer *w, void *ud) {
  int64_t seq = *(int64_t *)ud;
  cm_status s = cm_writer_begin_object(w, 2);
  if (s == CM_OK) s = cm_writer_key(w, "seq", 3);
  if (s == CM_OK) s = cm_writer_int(w, seq);
  if (s == CM_OK) s = cm_writer_key(w, "name", 4);
  if (s == CM_OK) s = cm_writer_string(w, "tick", 4);
  return s;
}

static cm_status write_bad(cm_writer *w, void *ud) {
  (void)ud;
  return cm_writer_hole(w); /* a hole outside an array */
}

static cm_status write_port(cm_writer *w, void *ud) {
  (void)ud;
  cm_status s = cm_writer_begin_array(w, 2);
  if (s == CM_OK) s = cm_writer_port(w, 0);
  if (s == CM_OK) s = cm_writer_port(w, 1); /* not in the transfer list: C15 */
  return s;
}

static cm_status write_cancel(cm_writer *w, void *ud) {
  (void)w;
  (void)ud;
  return CM_ERR_INVALID_ARGUMENT;
}

static void writer_posts_without_a_value_tree(void) {
  cm_port a, b, c, d;
  OK(cm_channel_new(&a, &b));
  OK(cm_channel_new(&c, &d));
  for (int64_t i = 0; i < 10; i++) OK(cm_port_post_with(a, write_tick, &i, NULL, 0));
  for (int64_t i = 0; i < 10; i++) {
    cm_value *v = recv_value(b);
    CHECK(read_tick(v) == i);
    cm_value_free(v);
  }
  CHECK_STATUS(cm_port_post_with(a, write_bad, NULL, NULL, 0), CM_ERR_DATA_CLONE);
  CHECK_STATUS(cm_port_post_with(a, write_port, NULL, &d, 1), CM_ERR_DATA_CLONE);
  OK(cm_port_start(d)); /* not detached by the failed post */
  CHECK_STATUS(cm_port_post_with(a, write_cancel, NULL, NULL, 0), CM_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(cm_port_post_with(a, NULL, NULL, NULL, 0), CM_ERR_NULL_POINTER);
  cm_message *m;
  CHECK_STATUS(cm_port_recv(b, 0, &m), CM_EMPTY);
  OK(cm_port_close(a));
  OK(cm_port_close(b));
  OK(cm_port_close(c));
  OK(cm_port_close(d));
}

/* ---- the streaming reader ------------------------------------------------------------ */

struct read_state {
  int events;
  int64_t seq;
  int saw_tick;
  cm_port port;
  cm_status take_again;
};

static cm_status read_all(cm_reader *r, void *ud) {
  struct read_state *st = ud;
  cm_event e;
  cm_status s;
  while ((s = cm_reader_next(r, &e)) == CM_OK) {
    st->events++;
    if (e.type == CM_EVENT_INT) st->seq = e.i;
    if (e.type == CM_EVENT_STRING && e.len == 4 && memcmp(e.ptr, "tick", 4) == 0) st->saw_tick = 1;
    if (e.type == CM_EVENT_PORT) {
      if (cm_reader_take_port(r, (size_t)e.n, &st->port) != CM_OK) return CM_ERR_INVALID_STATE;
      st->take_again = cm_reader_take_port(r, (size_t)e.n, &st->port);
    }
  }
  return s == CM_ERR_INVALID_STATE ? CM_OK : s; /* read completely */
}

static cm_status read_skip(cm_reader *r, void *ud) {
  struct read_state *st = ud;
  cm_event e;
  cm_status s = cm_reader_next(r, &e); /* the array */
  if (s == CM_OK) s = cm_reader_skip(r); /* its first element, a whole object */
  if (s == CM_OK) s = cm_reader_next(r, &e);
  if (s == CM_OK && e.type == CM_EVENT_INT) st->seq = e.i;
  return s;
}

/* cm_event's pointers: UTF-16 units and BigInt magnitudes (a negative BigInt's is
 * computed, not borrowed) stay valid past later events; in cm_message_read until
 * cm_message_free, in cm_port_recv_with until the callback returns. */
static const uint16_t KEPT_U1[] = {0xD800, 'x', 'y'};
static const uint16_t KEPT_U2[] = {0xDC00, 'z', 'w', 'q'};
static const uint8_t KEPT_B1[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a};
static const uint8_t KEPT_B2[] = {0x05};

struct kept_events {
  const uint8_t *ptr[4];
  size_t bytes[4];
  int count;
  int intact_at_end; /* checked inside the callback, after the last event */
};

static int kept_intact(const struct kept_events *k) {
  if (k->count != 4) return 0;
  uint8_t u1[sizeof KEPT_U1], u2[sizeof KEPT_U2];
  for (size_t i = 0; i < 3; i++) u1[2 * i] = (uint8_t)(KEPT_U1[i] & 0xff), u1[2 * i + 1] = (uint8_t)(KEPT_U1[i] >> 8);
  for (size_t i = 0; i < 4; i++) u2[2 * i] = (uint8_t)(KEPT_U2[i] & 0xff), u2[2 * i + 1] = (uint8_t)(KEPT_U2[i] >> 8);
  return k->bytes[0] == sizeof u1 && memcmp(k->ptr[0], u1, sizeof u1) == 0 &&
         k->bytes[1] == sizeof KEPT_B1 && memcmp(k->ptr[1], KEPT_B1, sizeof KEPT_B1) == 0 &&
         k->bytes[2] == sizeof u2 && memcmp(k->ptr[2], u2, sizeof u2) == 0 &&
         k->bytes[3] == sizeof KEPT_B2 && memcmp(k->ptr[3], KEPT_B2, sizeof KEPT_B2) == 0;
}

static cm_status keep_event_pointers(cm_reader *r, void *ud) {
  struct kept_events *k = ud;
  cm_event e;
  cm_status s;
  while ((s = cm_reader_next(r, &e)) == CM_OK) {
    if ((e.type == CM_EVENT_UTF16 || e.type == CM_EVENT_BIGINT) && k->count < 4) {
      k->ptr[k->count] = e.ptr;
      k->bytes[k->count] = e.type == CM_EVENT_UTF16 ? 2 * e.len : e.len;
      k->count++;
    }
  }
  k->intact_at_end = kept_intact(k);
  return s == CM_ERR_INVALID_STATE ? CM_OK : s;
}

/* memory that cannot be had is a NULL buffer and an error, not the end of the process */
static void buffer_alloc_that_cannot_be_had_is_null(void) {
  uint8_t *data = (uint8_t *)1;
  CHECK(cm_buffer_alloc((size_t)1 << 46, 0, &data) == NULL);
  CHECK(strstr(cm_last_error_message(), "cannot allocate") != NULL);
  CHECK(cm_buffer_alloc((size_t)1 << 46, 7, &data) == NULL);
  cm_buffer *b = cm_buffer_alloc(16, 7, &data); /* and the next one works */
  CHECK(b != NULL && data[15] == 7);
  cm_buffer_free(b);
}

static void reader_event_pointers_outlive_later_events(void) {
  cm_port a, b;
  OK(cm_channel_new(&a, &b));
  cm_value *v = build_array(4, cm_value_new_utf16(KEPT_U1, 3), cm_value_new_bigint(true, KEPT_B1, sizeof KEPT_B1),
                            cm_value_new_utf16(KEPT_U2, 4), cm_value_new_bigint(true, KEPT_B2, sizeof KEPT_B2));
  OK(cm_port_post(a, v, NULL, 0));
  OK(cm_port_post(a, v, NULL, 0));
  cm_value_free(v);
  struct kept_events k1 = {{0}, {0}, 0, 0};
  OK(cm_port_recv_with(b, 1000, keep_event_pointers, &k1));
  CHECK(k1.intact_at_end);
  cm_message *m;
  OK(cm_port_recv_raw(b, 1000, &m));
  struct kept_events k2 = {{0}, {0}, 0, 0};
  OK(cm_message_read(m, keep_event_pointers, &k2));
  CHECK(k2.intact_at_end);
  CHECK(kept_intact(&k2)); /* after the read, while the message lives */
  cm_message_free(m);
  OK(cm_port_close(a));
  OK(cm_port_close(b));
}

/* skipping past the end is CM_ERR_INVALID_STATE, as a next is, and spoils nothing */
static cm_status read_then_skip(cm_reader *r, void *ud) {
  cm_status *skipped = ud;
  cm_event e;
  cm_status s = cm_reader_next(r, &e); /* the whole value: an integer */
  if (s != CM_OK) return s;
  *skipped = cm_reader_skip(r);
  return CM_OK;
}

static void reader_skip_past_the_end_is_invalid_state(void) {
  cm_port a, b;
  OK(cm_channel_new(&a, &b));
  cm_value *v = cm_value_new_int(5);
  OK(cm_port_post(a, v, NULL, 0));
  cm_value_free(v);
  cm_status skipped = CM_OK;
  OK(cm_port_recv_with(b, 1000, read_then_skip, &skipped));
  CHECK(skipped == CM_ERR_INVALID_STATE);
  OK(cm_port_close(a));
  OK(cm_port_close(b));
}

/* a callback returning a number that is no cm_status: CM_ERR_INVALID_ARGUMENT */
static cm_status read_returning(cm_reader *r, void *ud) {
  (void)r;
  return (cm_status)(*(int32_t *)ud);
}

static cm_status write_returning(cm_writer *w, void *ud) {
  (void)w;
  return (cm_status)(*(int32_t *)ud);
}

/* A value built by hand can nest far deeper than a message may (256 levels):
 * cm_value_clone and cm_value_free work at any depth, and so do the calls that take a
 * value over and fail (the value is freed). On a thread with a 1 MiB stack, where
 * recursion over 200,000 levels overflows it. */
#define DEEP_LEVELS 200000

static cm_value *deep_value(void) {
  cm_value *v = cm_value_new_int(42);
  for (int i = 0; i < DEEP_LEVELS; i++) {
    cm_value *outer;
    switch (i % 5) {
      case 0:
        outer = cm_value_new_array();
        cm_value_push(outer, v);
        break;
      case 1:
        outer = cm_value_new_object();
        cm_value_set(outer, "k", 1, v);
        break;
      case 2:
        outer = cm_value_new_map();
        cm_value_map_set(outer, v, cm_value_new_null());
        break;
      case 3:
        outer = cm_value_new_shared(v);
        break;
      default:
        outer = cm_value_new_error(CM_ERROR_ERROR, NULL, 0, NULL, 0, v);
        break;
    }
    if (outer == NULL) return NULL;
    v = outer;
  }
  return v;
}

static void *deep_values_work(void *unused) {
  (void)unused;
  cm_value *v = deep_value();
  CHECK(v != NULL);
  if (v == NULL) return NULL;
  cm_value *copy = cm_value_clone(v);
  CHECK(copy != NULL);
  /* the copy is as deep: walk down it */
  const cm_value *at = copy;
  int levels = 0;
  for (;;) {
    cm_kind kind;
    OK(cm_value_kind(at, &kind));
    const cm_value *next = NULL;
    const char *key;
    size_t key_len;
    const cm_value *item;
    if (kind == CM_KIND_ARRAY) {
      OK(cm_value_at(at, 0, &next));
    } else if (kind == CM_KIND_OBJECT) {
      OK(cm_value_entry(at, 0, &key, &key_len, &next));
    } else if (kind == CM_KIND_MAP) {
      OK(cm_value_map_entry(at, 0, &next, &item)); /* the deep part is the key */
    } else if (kind == CM_KIND_SHARED) {
      OK(cm_value_inner(at, &next));
    } else if (kind == CM_KIND_ERROR) {
      int32_t name;
      OK(cm_value_get_error(at, &name, NULL, NULL, NULL, NULL, &next));
    }
    if (next == NULL) break;
    at = next;
    levels++;
  }
  CHECK(levels == DEEP_LEVELS);
  /* a deep value posted is a DataCloneError (at most 256 levels), and stays the caller's */
  cm_port a, b;
  OK(cm_channel_new(&a, &b));
  CHECK_STATUS(cm_port_post(a, copy, NULL, 0), CM_ERR_DATA_CLONE);
  OK(cm_port_close(a));
  OK(cm_port_close(b));
  /* taken over by a call that fails: freed */
  CHECK(cm_value_new_boxed(copy) == NULL);
  /* replaced in an object: freed */
  cm_value *obj = cm_value_new_object();
  OK(cm_value_set(obj, "k", 1, v));
  OK(cm_value_set(obj, "k", 1, cm_value_new_null()));
  cm_value_free(obj);
  cm_value *again = deep_value();
  CHECK(again != NULL);
  cm_value_free(again);
  return NULL;
}

static void values_of_any_depth_clone_and_free(void) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 1 << 20);
  pthread_t t;
  CHECK(pthread_create(&t, &attr, deep_values_work, NULL) == 0);
  pthread_join(t, NULL);
  pthread_attr_destroy(&attr);
}

static void callbacks_returning_no_status_are_invalid_argument(void) {
  cm_port a, b;
  OK(cm_channel_new(&a, &b));
  int32_t odd[] = {-1, 1000};
  for (int i = 0; i < 2; i++) {
    CHECK_STATUS(cm_port_post_with(a, write_returning, &odd[i], NULL, 0), CM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cm_last_error_message(), "which is no cm_status") != NULL);
  }
  cm_message *m;
  CHECK_STATUS(cm_port_recv(b, 0, &m), CM_EMPTY); /* nothing was posted */
  int32_t cancel = CM_ERR_WRONG_KIND; /* a status: returned as is */
  CHECK_STATUS(cm_port_post_with(a, write_returning, &cancel, NULL, 0), CM_ERR_WRONG_KIND);
  cm_value *v = cm_value_new_int(1);
  for (int i = 0; i < 2; i++) OK(cm_port_post(a, v, NULL, 0));
  cm_value_free(v);
  CHECK_STATUS(cm_port_recv_with(b, 1000, read_returning, &odd[0]), CM_ERR_INVALID_ARGUMENT);
  OK(cm_port_recv_raw(b, 1000, &m));
  CHECK_STATUS(cm_message_read(m, read_returning, &odd[1]), CM_ERR_INVALID_ARGUMENT);
  cm_message_free(m);
  OK(cm_port_close(a));
  OK(cm_port_close(b));
}

static void streaming_reader_reads_without_a_value_tree(void) {
  cm_port a, b, c, d;
  OK(cm_channel_new(&a, &b));
  OK(cm_channel_new(&c, &d));
  cm_value *v = tick(42);
  OK(cm_port_post(a, v, NULL, 0));
  struct read_state st = {0, -1, 0, 0, CM_OK};
  OK(cm_port_recv_with(b, 1000, read_all, &st));
  CHECK(st.events == 5 && st.seq == 42 && st.saw_tick);
  /* the same through a received message */
  OK(cm_port_post(a, v, NULL, 0));
  cm_message *m;
  OK(cm_port_recv_raw(b, 1000, &m));
  struct read_state st2 = {0, -1, 0, 0, CM_OK};
  OK(cm_message_read(m, read_all, &st2));
  CHECK(st2.events == 5 && st2.seq == 42);
  cm_message_free(m);
  /* skipping, and ports taken by the reader */
  cm_value *arr = build_array(3, tick(1), cm_value_new_int(7), cm_value_new_port(0));
  OK(cm_port_post(a, arr, &d, 1));
  struct read_state st3 = {0, -1, 0, 0, CM_OK};
  OK(cm_port_recv_with(b, 1000, read_skip, &st3));
  CHECK(st3.seq == 7); /* the port it did not take was closed */
  CHECK_STATUS(cm_port_recv(c, 1000, &m), CM_CLOSED);
  OK(cm_channel_new(&c, &d));
  OK(cm_port_post(a, arr, &d, 1));
  struct read_state st4 = {0, -1, 0, 0, CM_OK};
  OK(cm_port_recv_with(b, 1000, read_all, &st4));
  CHECK(st4.port != 0 && st4.take_again == CM_ERR_INVALID_STATE);
  OK(cm_port_post(c, v, NULL, 0));
  cm_value *got = recv_value(st4.port);
  CHECK(read_tick(got) == 42);
  cm_value_free(got);
  /* a malformed message is CM_ERR_MESSAGE; nothing queued is CM_EMPTY */
  static const uint8_t garbage[] = {0xd9, 0xcb, 0x01, 0x82, 0x01};
  OK(cm_port_post_encoded(a, garbage, sizeof garbage, NULL, 0, NULL, 0));
  struct read_state st5 = {0, -1, 0, 0, CM_OK};
  CHECK_STATUS(cm_port_recv_with(b, 1000, read_all, &st5), CM_ERR_MESSAGE);
  CHECK_STATUS(cm_port_recv_with(b, 0, read_all, &st5), CM_EMPTY);
  CHECK_STATUS(cm_port_recv_with(b, 0, NULL, NULL), CM_ERR_NULL_POINTER);
  cm_value_free(v);
  cm_value_free(arr);
  OK(cm_port_close(st4.port));
  OK(cm_port_close(a));
  OK(cm_port_close(b));
  OK(cm_port_close(c));
}

/* ---- export / import: a port moves to another thread by number ----------------------- */

static void *import_thread(void *arg) {
  uint64_t token = *(uint64_t *)arg;
  cm_port p = 0;
  if (cm_port_import(token, &p) != CM_OK) return (void *)1;
  cm_value *v = recv_value(p);
  int ok = v != NULL && read_tick(v) == 3;
  cm_value_free(v);
  cm_port_close(p);
  return ok ? NULL : (void *)2;
}

static void c9_export_moves_a_port_to_another_thread(void) {
  cm_port a, b;
  OK(cm_channel_new(&a, &b));
  uint64_t token = 0;
  OK(cm_port_export(b, &token));
  CHECK(token != 0);
  CHECK_STATUS(cm_port_start(b), CM_ERR_INVALID_HANDLE);
  cm_value *v = tick(3);
  OK(cm_port_post(a, v, NULL, 0));
  cm_value_free(v);
  pthread_t t;
  void *ret = (void *)9;
  pthread_create(&t, NULL, import_thread, &token);
  pthread_join(t, &ret);
  CHECK(ret == NULL);
  cm_port again;
  CHECK_STATUS(cm_port_import(token, &again), CM_ERR_INVALID_HANDLE); /* single use */
  OK(cm_port_close(a));
}

/* cm_buffer_alloc + cm_writer_buffer_move: the library's own memory, filled in place and
 * moved into the message; the receiver reads the very same bytes. */
static cm_status write_moved(cm_writer *w, void *ud) {
  return cm_writer_buffer_move(w, (cm_buffer **)ud);
}

static cm_status write_moved_after_failure(cm_writer *w, void *ud) {
  (void)cm_writer_begin_array(w, 0);
  (void)cm_writer_int(w, 1); /* too many elements: the writer fails */
  return cm_writer_buffer_move(w, (cm_buffer **)ud);
}

static void w3b_allocated_buffers_move_into_the_message(void) {
  cm_port a, b;
  OK(cm_channel_new(&a, &b));
  uint8_t *data = NULL;
  cm_buffer *buf = cm_buffer_alloc(64 * 1024, 0, &data);
  CHECK(buf != NULL && data != NULL);
  CHECK(data[0] == 0 && data[64 * 1024 - 1] == 0); /* zero-filled */
  memset(data, 9, 64 * 1024);
  OK(cm_port_post_with(a, write_moved, &buf, NULL, 0));
  CHECK(buf == NULL); /* consumed */
  cm_message *m;
  OK(cm_port_recv_raw(b, 1000, &m));
  cm_buffer *got;
  OK(cm_message_buffer(m, 0, &got));
  const uint8_t *p;
  size_t n;
  OK(cm_buffer_data(got, &p, &n));
  CHECK(p == data && n == 64 * 1024); /* the very same memory */
  CHECK(p[12345] == 9);
  cm_buffer_free(got);
  cm_message_free(m);

  /* Consumed on failure too; a NULL buffer is an error. */
  buf = cm_buffer_alloc(16, 5, &data);
  CHECK(buf != NULL && data[0] == 5 && data[15] == 5); /* filled */
  CHECK_STATUS(cm_port_post_with(a, write_moved_after_failure, &buf, NULL, 0), CM_ERR_DATA_CLONE);
  CHECK(buf == NULL);
  CHECK_STATUS(cm_port_post_with(a, write_moved, &buf, NULL, 0), CM_ERR_DATA_CLONE);
  CHECK_STATUS(cm_port_recv_raw(b, 0, &m), CM_EMPTY); /* nothing was sent */
  OK(cm_port_close(a));
  OK(cm_port_close(b));
}

/* The memory of a buffer read with cm_port_recv_with (or freed unshared) goes back to the
 * block pool, and the next cm_buffer_alloc of its size reuses it, filled as asked. */
static cm_status read_buffer_ptr(cm_reader *r, void *ud) {
  cm_event e;
  cm_status s = cm_reader_next(r, &e);
  if (s != CM_OK) return s;
  if (e.type != CM_EVENT_BUFFER) return CM_ERR_WRONG_KIND;
  *(const uint8_t **)ud = e.ptr;
  return CM_OK;
}

static void allocated_buffers_are_reused_once_read(void) {
  cm_port a, b;
  OK(cm_channel_new(&a, &b));
  uint8_t *data = NULL;
  cm_buffer *buf = cm_buffer_alloc(64 * 1024, 0, &data);
  CHECK(buf != NULL);
  memset(data, 0xaa, 64 * 1024);
  OK(cm_port_post_with(a, write_moved, &buf, NULL, 0));
  const uint8_t *seen = NULL;
  OK(cm_port_recv_with(b, 1000, read_buffer_ptr, &seen));
  CHECK(seen == data);
  uint8_t *again = NULL;
  cm_buffer *next = cm_buffer_alloc(64 * 1024, 3, &again);
  CHECK(again == data); /* the same memory, warm */
  CHECK(again[0] == 3 && again[40000] == 3 && again[64 * 1024 - 1] == 3);
  cm_buffer_free(next); /* unshared: its memory goes back too */
  uint8_t *third = NULL;
  cm_buffer *zeroed = cm_buffer_alloc(64 * 1024, 0, &third);
  CHECK(third == data);
  CHECK(third[0] == 0 && third[100] == 0 && third[64 * 1024 - 1] == 0);
  /* a buffer still shared (a value holds it) is not taken back by cm_buffer_free */
  cm_value *holder = cm_value_new_buffer_from(zeroed);
  CHECK(holder != NULL);
  cm_buffer_free(zeroed);
  uint8_t *fourth = NULL;
  cm_buffer *other = cm_buffer_alloc(64 * 1024, 1, &fourth);
  CHECK(fourth != third);
  CHECK(third[5] == 0); /* still the value's, untouched */
  cm_buffer_free(other);
  cm_value_free(holder);
  OK(cm_port_close(a));
  OK(cm_port_close(b));
}

/* ---- main ---------------------------------------------------------------------------- */

struct test {
  const char *name;
  void (*run)(void);
};

#define T(f) {#f, f}
static const struct test TESTS[] = {
    T(version_macros_and_abi_match_the_library),
    T(a1_ping_pong_between_two_threads),
    T(c10_messages_in_transit_reach_new_owner),
    T(d1_close_wakes_a_partner_blocked_in_receive),
    T(g_every_value_kind_round_trips),
    T(golden_vectors_decode_and_encode),
    T(invalid_vectors_are_message_errors),
    T(misuse_returns_errors_without_crashing),
    T(last_error_status_names_the_last_failure),
    T(poll_fd_is_readable_while_messages_wait),
    T(handle_lookups_stay_exact_after_close_reuse_transfer_and_fd),
    T(allocated_buffers_are_reused_once_read),
    T(b2_notify_callback_fires_and_frees_its_user_data),
    T(b2_notify_or_fd_during_close_leaves_nothing_installed),
    T(b2_notify_and_fd_racing_close_leave_nothing_installed),
    T(d4_partner_close_disentangles_at_once_queued_messages_still_arrive),
    T(flow_control_limits_and_stats),
    T(h_collection_posts_to_every_member),
    T(i1_broadcast_reaches_others_not_itself),
    T(w3b_buffers_move_without_copy),
    T(w3b_allocated_buffers_move_into_the_message),
    T(writer_posts_without_a_value_tree),
    T(streaming_reader_reads_without_a_value_tree),
    T(reader_event_pointers_outlive_later_events),
    T(buffer_alloc_that_cannot_be_had_is_null),
    T(reader_skip_past_the_end_is_invalid_state),
    T(callbacks_returning_no_status_are_invalid_argument),
    T(values_of_any_depth_clone_and_free),
    T(c9_export_moves_a_port_to_another_thread),
};

int main(int argc, char **argv) {
  int passed = 0, failed = 0;
  const char *only = argc > 1 ? argv[1] : NULL;
  if (cm_abi_version() != CM_ABI_VERSION) {
    fprintf(stderr, "ABI mismatch: library %u, header %u\n", cm_abi_version(), CM_ABI_VERSION);
    return 1;
  }
  for (size_t i = 0; i < sizeof TESTS / sizeof TESTS[0]; i++) {
    if (only && !strstr(TESTS[i].name, only)) continue;
    failures_in_test = 0;
    TESTS[i].run();
    if (failures_in_test == 0) {
      passed++;
      printf("ok   %s\n", TESTS[i].name);
    } else {
      failed++;
      printf("FAIL %s\n", TESTS[i].name);
    }
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
