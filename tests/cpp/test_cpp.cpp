// C++ tests of include/channel_messaging.hpp. Built and run by ci/test-c.sh (also under
// valgrind). The last line is "N passed, M failed".
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "channel_messaging.hpp"

namespace {

int failures_in_test = 0;

#define CHECK(cond)                                                                       \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);     \
      failures_in_test++;                                                                 \
    }                                                                                     \
  } while (0)

// Expects `body` to throw cm::Error with `status`.
template <class F>
bool throws_status(cm_status status, F body) {
  try {
    body();
  } catch (const cm::Error &e) {
    return e.status() == status && e.what()[0] != '\0';
  }
  return false;
}

cm::Value tick(int64_t seq) {
  cm::Value v = cm::Value::object();
  v.set("seq", cm::Value::integer(seq)).set("name", cm::Value::string("tick"));
  return v;
}

void a1_ping_pong_between_two_threads() {
  cm::MessageChannel ch;
  std::thread echo([p = std::move(ch.port2)]() mutable {
    try {
      for (;;) {
        cm::Value v = p.recv();
        p.post(v);
      }
    } catch (const cm::Error &e) {
      if (e.status() != CM_CLOSED) std::abort();
    }
  });
  for (int64_t i = 0; i < 1000; i++) {
    ch.port1.post(tick(i));
    cm::Value back = ch.port1.recv();
    CHECK(back["seq"].as_int() == i);
    CHECK(back["name"].as_string() == "tick");
  }
  ch.port1.close();
  CHECK(!ch.port1);
  echo.join();
}

void c10_ports_move_with_their_messages() {
  cm::MessageChannel main_ch, moving;
  moving.port1.post(cm::Value::integer(1));  // queued before the transfer
  cm::Value carrier = cm::Value::object();
  carrier.set("port", cm::Value::port(0));
  main_ch.port1.post(carrier, {moving.port2});
  CHECK(!moving.port2);  // moved out of this object
  moving.port1.post(cm::Value::integer(2));  // in flight
  std::thread third([rx = std::move(main_ch.port2)]() mutable {
    auto m = rx.recv_message(5000);
    if (!m || m->value()["port"].as_port_index() != 0) std::abort();
    cm::MessagePort p = m->take_port(0);
    if (p.recv().as_int() != 1 || p.recv().as_int() != 2) std::abort();
  });
  third.join();
  // The third thread's port was closed when it went out of scope: the sender sees it.
  CHECK(throws_status(CM_CLOSED, [&] { moving.port1.recv(); }));
}

void d1_close_wakes_a_blocked_receiver() {
  cm::MessageChannel ch;
  std::atomic<int> status{-1};
  std::thread blocked([&] {
    try {
      ch.port2.recv();
      status = 0;
    } catch (const cm::Error &e) {
      status = e.status();
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ch.port1.close();
  blocked.join();
  CHECK(status == CM_CLOSED);
  // close() is idempotent (spec D1): again, and on a moved-from port, it does nothing
  bool threw = false;
  try {
    ch.port1.close();
    cm::MessagePort moved = std::move(ch.port2);
    ch.port2.close();
    moved.close();
  } catch (const cm::Error &) {
    threw = true;
  }
  CHECK(!threw);
}

void g_values_build_copy_and_read() {
  cm::Value v = cm::Value::array();
  const uint8_t raw[] = {1, 2, 3};
  v.push(cm::Value::null())
      .push(cm::Value::boolean(true))
      .push(cm::Value::number(-0.0))
      .push(cm::Value::string(std::string("a\0b", 3)))
      .push(cm::Value::bytes(raw, 3))
      .push(cm::Value::date(1.5e12));
  cm::Value m = cm::Value::map();
  m.set(cm::Value::integer(1), cm::Value::string("one"));
  v.push(m);
  cm::Value copy = v;  // deep copy
  CHECK(copy.size() == 7);
  CHECK(copy[1].as_bool());
  CHECK(std::signbit(copy[2].as_number()));
  CHECK(copy[3].as_string() == std::string_view("a\0b", 3));
  CHECK(copy[4].as_bytes().second == 3 && copy[4].as_bytes().first[2] == 3);
  CHECK(copy[5].as_date() == 1.5e12);
  CHECK(copy[6].kind() == CM_KIND_MAP);
  std::vector<uint8_t> cbor = copy.to_cbor();
  cm::Value back = cm::Value::from_cbor(cbor.data(), cbor.size());
  CHECK(back.to_cbor() == cbor);
  cm::MessageChannel ch;
  ch.port1.post(v);
  std::optional<cm::Value> got = ch.port2.try_recv();
  CHECK(got.has_value() && got->to_cbor() == cbor);
  CHECK(!ch.port2.try_recv().has_value());
  CHECK(!ch.port2.recv_for(std::chrono::milliseconds(10)).has_value());
}

void errors_carry_their_status() {
  cm::MessageChannel ch;
  CHECK(throws_status(CM_ERR_WRONG_KIND, [] { cm::Value::integer(1).as_string(); }));
  CHECK(throws_status(CM_ERR_NOT_FOUND, [] { tick(1)["nope"]; }));
  CHECK(throws_status(CM_ERR_INVALID_ARGUMENT, [] { cm::Value::string("\xff"); }));
  CHECK(throws_status(CM_ERR_DATA_CLONE, [&] { ch.port1.post(cm::Value::port(0)); }));
  CHECK(throws_status(CM_ERR_DATA_CLONE, [&] { ch.port1.post(tick(1), {ch.port1}); }));
  CHECK(ch.port1);  // nothing was detached
  cm::MessagePort gone = std::move(ch.port2);
  CHECK(throws_status(CM_ERR_INVALID_HANDLE, [&] { ch.port2.start(); }));  // moved-from
  gone.close();
  CHECK(throws_status(CM_ERR_INVALID_HANDLE, [&] { gone.start(); }));
  CHECK(throws_status(CM_ERR_INVALID_HANDLE, [] { cm::MessagePort(12345).start(); }));
}

void flow_control_and_fd() {
  cm::MessageChannel ch;
  ch.port2.set_limits(1, 0);
  int fd = ch.port2.fd();
  CHECK(fd >= 0);
  ch.port1.post(tick(1));
  CHECK(!ch.port1.is_ready());
  CHECK(ch.port2.stats().queued_messages == 1);
  ch.port2.recv();
  CHECK(ch.port1.is_ready());
}

struct Test {
  const char *name;
  void (*run)();
};

}  // namespace

int main() {
  const Test tests[] = {
      {"a1_ping_pong_between_two_threads", a1_ping_pong_between_two_threads},
      {"c10_ports_move_with_their_messages", c10_ports_move_with_their_messages},
      {"d1_close_wakes_a_blocked_receiver", d1_close_wakes_a_blocked_receiver},
      {"g_values_build_copy_and_read", g_values_build_copy_and_read},
      {"errors_carry_their_status", errors_carry_their_status},
      {"flow_control_and_fd", flow_control_and_fd},
  };
  int passed = 0, failed = 0;
  for (const Test &t : tests) {
    failures_in_test = 0;
    try {
      t.run();
    } catch (const std::exception &e) {
      std::fprintf(stderr, "  uncaught exception: %s\n", e.what());
      failures_in_test++;
    }
    if (failures_in_test == 0) {
      passed++;
      std::printf("ok   %s\n", t.name);
    } else {
      failed++;
      std::printf("FAIL %s\n", t.name);
    }
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
