// C++ tests of include/channel_messaging.hpp. Built and run by ci/test-c.sh (also under
// valgrind). The last line is "N passed, M failed".
#include <malloc.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "channel_messaging.hpp"

// The global operator new, replaced so that a test can make one allocation fail: the next
// one of exactly `fail_new_of_size` bytes on this thread throws std::bad_alloc.
static thread_local size_t fail_new_of_size = 0;

void *operator new(size_t n) {
  if (fail_new_of_size != 0 && n == fail_new_of_size) {
    fail_new_of_size = 0;
    throw std::bad_alloc();
  }
  if (void *p = std::malloc(n != 0 ? n : 1)) return p;
  throw std::bad_alloc();
}
// (Not inlined: GCC would otherwise see free() on a pointer from operator new.)
[[gnu::noinline]] void operator delete(void *p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void *p, size_t) noexcept { std::free(p); }

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
  CHECK(throws_status(CM_ERR_WRONG_KIND, [] {
    cm::Value one = cm::Value::integer(1);
    one.as_string();
  }));
  CHECK(throws_status(CM_ERR_NOT_FOUND, [] {
    cm::Value t = tick(1);
    t["nope"];
  }));
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

// The status a cm::Value constructor throws is the library's (cm_last_error_status()),
// whatever the C call failed with.
void value_constructors_throw_the_library_status() {
  CHECK(throws_status(CM_ERR_NULL_POINTER, [] { cm::Value::bytes(nullptr, 3); }));
  CHECK(throws_status(CM_ERR_INVALID_ARGUMENT, [] { cm::Value::string("\xff"); }));
  // (boxing null is refused: the explicit constructor reports why)
  CHECK(throws_status(CM_ERR_WRONG_KIND, [] {
    cm::Value(cm_value_new_boxed(cm_value_new_null()));
  }));
  try {
    cm::Value::bytes(nullptr, 3);
  } catch (const cm::Error &e) {
    CHECK(std::strstr(e.what(), "NULL") != nullptr);  // the library's own explanation
  }
}

// A moved-from Value is empty: copying it gives another empty Value, reading it throws
// CM_ERR_NULL_POINTER, assigning to it works.
void moved_from_values_copy_as_empty() {
  cm::Value a = cm::Value::integer(7);
  cm::Value b = std::move(a);
  CHECK(a.get() == nullptr);
  bool threw = false;
  try {
    cm::Value c = a;
    CHECK(c.get() == nullptr);
    CHECK(throws_status(CM_ERR_NULL_POINTER, [&] { c.kind(); }));
    cm::Value d = cm::Value::null();
    d = c;
    CHECK(d.get() == nullptr);
    d = b;
    CHECK(d.as_int() == 7);
  } catch (const cm::Error &) {
    threw = true;
  }
  CHECK(!threw);
  CHECK(throws_status(CM_ERR_NULL_POINTER, [&] { a.as_int(); }));
  a = b;
  CHECK(a.as_int() == 7 && b.as_int() == 7);
}

size_t heap_in_use() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

// Whether fail_new_of_size works here (valgrind puts its own operator new in place).
bool allocation_failures_can_be_injected() {
  fail_new_of_size = 4321;
  try {
    std::vector<uint8_t> probe(4321);
    volatile uint8_t sink = probe[0];
    (void)sink;
  } catch (const std::bad_alloc &) {
    return true;
  }
  fail_new_of_size = 0;
  return false;
}

// to_cbor() frees its cm_buffer when copying it into the vector throws. (Not under
// valgrind, where the failure cannot be injected: there it only checks to_cbor works.)
void to_cbor_frees_its_buffer_when_the_copy_throws() {
  // (under 16 KiB: the library pools the memory of larger buffers once freed)
  cm::Value v = cm::Value::string(std::string(8 * 1024, 'x'));
  const size_t n = v.to_cbor().size();
  if (allocation_failures_can_be_injected()) {
    const int rounds = 64;
    int caught = 0;
    const size_t before = heap_in_use();
    for (int i = 0; i < rounds; i++) {
      fail_new_of_size = n;
      try {
        (void)v.to_cbor();
      } catch (const std::bad_alloc &) {
        caught++;
      }
    }
    fail_new_of_size = 0;
    CHECK(caught == rounds);
    CHECK(heap_in_use() < before + n * rounds / 4);  // a leak keeps every round's n bytes
  }
  CHECK(v.to_cbor().size() == n);
}

// Borrowed views of an owner (Value, Message) are not available on a temporary, where
// they would dangle once the full expression ends: `std::string_view s =
// port.recv().as_string();` does not compile. Views through a ValueRef, which borrows
// from an owner that outlives it, and accessors that return values still work on
// temporaries.
template <class T, class = void>
struct has_as_string : std::false_type {};
template <class T>
struct has_as_string<T, std::void_t<decltype(std::declval<T>().as_string())>> : std::true_type {};
template <class T, class = void>
struct has_as_bytes : std::false_type {};
template <class T>
struct has_as_bytes<T, std::void_t<decltype(std::declval<T>().as_bytes())>> : std::true_type {};
template <class T, class = void>
struct has_key : std::false_type {};
template <class T>
struct has_key<T, std::void_t<decltype(std::declval<T>().key(size_t{0}))>> : std::true_type {};
template <class T, class = void>
struct has_index : std::false_type {};
template <class T>
struct has_index<T, std::void_t<decltype(std::declval<T>()[size_t{0}])>> : std::true_type {};
template <class T, class = void>
struct has_member : std::false_type {};
template <class T>
struct has_member<T, std::void_t<decltype(std::declval<T>()[std::string_view("k")])>>
    : std::true_type {};
template <class T, class = void>
struct has_as_int : std::false_type {};
template <class T>
struct has_as_int<T, std::void_t<decltype(std::declval<T>().as_int())>> : std::true_type {};
template <class T, class = void>
struct has_message_value : std::false_type {};
template <class T>
struct has_message_value<T, std::void_t<decltype(std::declval<T>().value())>> : std::true_type {};

static_assert(has_as_string<cm::Value &>::value && has_as_string<const cm::Value &>::value);
static_assert(!has_as_string<cm::Value>::value && !has_as_string<const cm::Value>::value);
static_assert(has_as_bytes<cm::Value &>::value && !has_as_bytes<cm::Value>::value);
static_assert(has_key<const cm::Value &>::value && !has_key<cm::Value>::value);
static_assert(has_index<cm::Value &>::value && !has_index<cm::Value>::value);
static_assert(has_member<cm::Value &>::value && !has_member<cm::Value>::value);
static_assert(has_message_value<cm::Message &>::value && !has_message_value<cm::Message>::value);
// still fine on temporaries
static_assert(has_as_int<cm::Value>::value);
static_assert(has_as_string<cm::ValueRef>::value && has_index<cm::ValueRef>::value);
static_assert(has_member<cm::ValueRef>::value && has_key<cm::ValueRef>::value);

void borrowed_views_come_from_lvalues() {
  cm::MessageChannel ch;
  ch.port1.post(tick(3));
  cm::Value v = ch.port2.recv();
  std::string_view name = v["name"].as_string();  // `v` owns what the view shows
  CHECK(name == "tick");
  ch.port1.post(cm::Value::integer(4));
  CHECK(ch.port2.recv().as_int() == 4);  // a value, not a view: fine on the temporary
  auto m = ch.port2.recv_message(0);
  CHECK(!m);
  ch.port1.post(tick(5));
  m = ch.port2.recv_message(1000);
  CHECK(m && m->value()["seq"].as_int() == 5);  // the Message lives in `m`
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
      {"value_constructors_throw_the_library_status", value_constructors_throw_the_library_status},
      {"moved_from_values_copy_as_empty", moved_from_values_copy_as_empty},
      {"to_cbor_frees_its_buffer_when_the_copy_throws",
       to_cbor_frees_its_buffer_when_the_copy_throws},
      {"borrowed_views_come_from_lvalues", borrowed_views_come_from_lvalues},
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
