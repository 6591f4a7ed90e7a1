/* channel-messaging from C: a worker thread that squares numbers.
 *
 * The main thread creates a control channel, starts a worker on one end, then hands the
 * worker a fresh port (transferred inside a message) on which it sends jobs. It waits for
 * answers with poll(2) on the port's file descriptor, as an event loop would.
 *
 *   make demo-c      (or: cc worker.c $(pkg-config --cflags --libs channel_messaging))
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "channel_messaging.h"

#define TRY(expr)                                                                  \
  do {                                                                             \
    cm_status s_ = (expr);                                                         \
    if (s_ != CM_OK) {                                                             \
      fprintf(stderr, "%s: status %d: %s\n", #expr, (int)s_, cm_last_error_message()); \
      exit(1);                                                                     \
    }                                                                              \
  } while (0)

static void *worker(void *arg) {
  cm_port control = *(cm_port *)arg;
  /* The first message carries the port to work on: {"jobs": <port 0>}. */
  cm_message *m;
  TRY(cm_port_recv(control, -1, &m));
  cm_port jobs;
  TRY(cm_message_take_port(m, 0, &jobs));
  cm_message_free(m);
  for (;;) {
    cm_status s = cm_port_recv(jobs, -1, &m);
    if (s == CM_CLOSED) break; /* the main thread closed its end: done */
    TRY(s);
    const cm_value *v;
    int64_t n;
    TRY(cm_message_value(m, &v));
    TRY(cm_value_get_int(v, &n));
    cm_message_free(m);
    cm_value *answer = cm_value_new_int(n * n);
    TRY(cm_port_post(jobs, answer, NULL, 0));
    cm_value_free(answer);
  }
  printf("worker: the main thread closed the channel, exiting\n");
  cm_port_close(jobs);
  cm_port_close(control);
  return NULL;
}

int main(void) {
  printf("channel-messaging %s (C ABI %u)\n", cm_version(), cm_abi_version());
  cm_port control, worker_control;
  TRY(cm_channel_new(&control, &worker_control));
  pthread_t t;
  pthread_create(&t, NULL, worker, &worker_control);

  /* Hand the worker one end of a new channel; the handle we post becomes invalid. */
  cm_port mine, theirs;
  TRY(cm_channel_new(&mine, &theirs));
  cm_value *hello = cm_value_new_object();
  TRY(cm_value_set(hello, "jobs", 4, cm_value_new_port(0)));
  TRY(cm_port_post(control, hello, &theirs, 1));
  cm_value_free(hello);

  for (int64_t n = 1; n <= 5; n++) {
    cm_value *job = cm_value_new_int(n);
    TRY(cm_port_post(mine, job, NULL, 0));
    cm_value_free(job);
  }

  /* Wait for the five answers with poll(2), draining the port each time it is readable. */
  int fd;
  TRY(cm_port_fd(mine, &fd));
  int answers = 0;
  while (answers < 5) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) {
      fprintf(stderr, "no answer in time\n");
      return 1;
    }
    cm_message *m;
    cm_status s;
    while ((s = cm_port_recv(mine, 0, &m)) == CM_OK) {
      const cm_value *v;
      int64_t sq;
      TRY(cm_message_value(m, &v));
      TRY(cm_value_get_int(v, &sq));
      printf("main: answer %d = %lld\n", ++answers, (long long)sq);
      cm_message_free(m);
    }
    if (s != CM_EMPTY) TRY(s);
  }
  TRY(cm_port_close(mine)); /* the worker sees CM_CLOSED */
  pthread_join(t, NULL);
  TRY(cm_port_close(control));
  printf("done\n");
  return 0;
}
