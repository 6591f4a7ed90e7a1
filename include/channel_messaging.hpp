// channel-messaging: header-only C++17 wrapper over the C API (channel_messaging.h).
//
// RAII types: cm::MessagePort and cm::MessageChannel are move-only and close their ports
// when destroyed; cm::Value owns a message value (copying it makes a deep copy, buffers
// shared); cm::Message owns a received message. Failures throw cm::Error, which carries
// the cm_status and the library's explanation.
//
// Borrowed views (std::string_view, byte spans, cm::ValueRef) live as long as the Value
// or Message they come from. Taking one from a temporary Value or Message does not
// compile (`std::string_view s = port.recv().as_string();` would dangle): keep the owner
// in a variable (`cm::Value v = port.recv(); std::string_view s = v.as_string();`).
// Accessors that return values, not views (`port.recv().as_int()`), work on temporaries.
//
//   cm::MessageChannel ch;
//   std::thread worker([p = std::move(ch.port2)]() mutable {
//     cm::Value v = p.recv();                       // blocks; throws cm::Error on close
//     p.post(cm::Value::integer(v.as_int() * 2));
//   });
//   ch.port1.post(cm::Value::integer(21));
//   int64_t answer = ch.port1.recv().as_int();     // 42
//   worker.join();
#ifndef CHANNEL_MESSAGING_HPP
#define CHANNEL_MESSAGING_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "channel_messaging.h"

namespace cm {

/// A failed call: `status()` is the C API's status, `what()` its explanation.
class Error : public std::runtime_error {
 public:
  Error(cm_status status, const std::string &what) : std::runtime_error(what), status_(status) {}
  cm_status status() const noexcept { return status_; }

 private:
  cm_status status_;
};

/// Throws cm::Error unless `status` is CM_OK.
inline void check(cm_status status) {
  if (status != CM_OK) throw Error(status, cm_last_error_message());
}

/// Throws the calling thread's last failure: for the C functions that fail by returning
/// NULL (the cm_value_new_* constructors, cm_value_clone), right after the NULL.
[[noreturn]] inline void throw_last_error() {
  cm_status status = cm_last_error_status();
  if (status == CM_OK) throw Error(CM_ERR_NULL_POINTER, "NULL value (no failure recorded)");
  throw Error(status, cm_last_error_message());
}

class Value;
class ValueRef;

/// Read access shared by Value (owned) and ValueRef (borrowed).
template <class Derived>
class ValueReader {
 public:
  cm_kind kind() const {
    cm_kind k;
    check(cm_value_kind(ptr(), &k));
    return k;
  }
  bool is(cm_kind k) const { return kind() == k; }
  bool as_bool() const {
    bool b;
    check(cm_value_get_bool(ptr(), &b));
    return b;
  }
  int64_t as_int() const {
    int64_t i;
    check(cm_value_get_int(ptr(), &i));
    return i;
  }
  /// An integer or a double, as a double.
  double as_number() const {
    double d;
    check(cm_value_get_number(ptr(), &d));
    return d;
  }
  double as_date() const {
    double d;
    check(cm_value_get_date(ptr(), &d));
    return d;
  }
  /// The string's UTF-8 bytes, borrowed from the value.
  std::string_view as_string() const {
    const char *s;
    size_t len;
    check(cm_value_get_string(ptr(), &s, &len));
    return std::string_view(s, len);
  }
  /// An ArrayBuffer's bytes, borrowed from the value.
  std::pair<const uint8_t *, size_t> as_bytes() const {
    const uint8_t *p;
    size_t len;
    check(cm_value_get_buffer(ptr(), &p, &len));
    return {p, len};
  }
  /// The index of a port value in its message's ports.
  uint32_t as_port_index() const {
    uint32_t i;
    check(cm_value_get_port(ptr(), &i));
    return i;
  }
  /// Elements of an array or set, entries of an object or map.
  size_t size() const {
    size_t n;
    check(cm_value_len(ptr(), &n));
    return n;
  }
  /// Element `i` of an array or set.
  ValueRef operator[](size_t i) const;
  /// The value of `key` in an object (throws CM_ERR_NOT_FOUND when absent).
  ValueRef operator[](std::string_view key) const;
  /// Whether an object has `key`.
  bool has(std::string_view key) const {
    const cm_value *v;
    return cm_value_get(ptr(), key.data(), key.size(), &v) == CM_OK;
  }
  /// Key `i` of an object.
  std::string_view key(size_t i) const {
    const char *k;
    size_t len;
    const cm_value *v;
    check(cm_value_entry(ptr(), i, &k, &len, &v));
    return std::string_view(k, len);
  }
  /// Raw CBOR of the value (self-contained, docs/wire-format.md).
  std::vector<uint8_t> to_cbor() const {
    cm_buffer *b = nullptr;
    check(cm_value_to_cbor(ptr(), &b));
    struct Free {
      void operator()(cm_buffer *x) const noexcept { cm_buffer_free(x); }
    };
    std::unique_ptr<cm_buffer, Free> owned(b);  // freed even when the copy below throws
    const uint8_t *p;
    size_t len;
    check(cm_buffer_data(owned.get(), &p, &len));
    return std::vector<uint8_t>(p, p + len);
  }

 private:
  const cm_value *ptr() const { return static_cast<const Derived *>(this)->get(); }
};

/// A borrowed value (an element of a Value or of a Message): valid as long as its owner.
class ValueRef : public ValueReader<ValueRef> {
 public:
  explicit ValueRef(const cm_value *v) : v_(v) {}
  const cm_value *get() const noexcept { return v_; }
  /// An owned deep copy.
  Value clone() const;

 private:
  const cm_value *v_;
};

template <class D>
ValueRef ValueReader<D>::operator[](size_t i) const {
  const cm_value *v;
  check(cm_value_at(ptr(), i, &v));
  return ValueRef(v);
}

template <class D>
ValueRef ValueReader<D>::operator[](std::string_view key) const {
  const cm_value *v;
  check(cm_value_get(ptr(), key.data(), key.size(), &v));
  return ValueRef(v);
}

/// An owned message value. Copies are deep (buffers shared, never copied).
///
/// A moved-from Value is empty: get() is NULL, reading it throws cm::Error with
/// CM_ERR_NULL_POINTER, copying it gives another empty Value, and assigning to it or
/// destroying it is fine.
///
/// Its borrowed views (as_string(), as_bytes(), key(), operator[]) are for lvalues only:
/// on a temporary they are deleted, because the view would outlive the value.
class Value : public ValueReader<Value> {
 public:
  /// Takes ownership of `owned`. NULL means the C call that made it failed: throws that
  /// failure (cm_last_error_status() and cm_last_error_message() of this thread).
  explicit Value(cm_value *owned) : v_(owned) {
    if (v_ == nullptr) throw_last_error();
  }
  Value(const Value &other) : v_(other.v_ == nullptr ? nullptr : cm_value_clone(other.v_)) {
    if (other.v_ != nullptr && v_ == nullptr) throw_last_error();
  }
  Value(Value &&other) noexcept : v_(std::exchange(other.v_, nullptr)) {}
  Value &operator=(Value other) noexcept {
    std::swap(v_, other.v_);
    return *this;
  }
  ~Value() { cm_value_free(v_); }

  static Value undefined() { return Value(cm_value_new_undefined()); }
  static Value null() { return Value(cm_value_new_null()); }
  static Value boolean(bool b) { return Value(cm_value_new_bool(b)); }
  static Value integer(int64_t i) { return Value(cm_value_new_int(i)); }
  static Value number(double d) { return Value(cm_value_new_float(d)); }
  static Value string(std::string_view s) { return Value(cm_value_new_string(s.data(), s.size())); }
  static Value bytes(const void *p, size_t len) {
    return Value(cm_value_new_buffer(static_cast<const uint8_t *>(p), len));
  }
  static Value array() { return Value(cm_value_new_array()); }
  static Value object() { return Value(cm_value_new_object()); }
  static Value map() { return Value(cm_value_new_map()); }
  static Value set() { return Value(cm_value_new_set()); }
  static Value date(double ms) { return Value(cm_value_new_date(ms)); }
  /// The message's transfer-list port number `index`.
  static Value port(uint32_t index) { return Value(cm_value_new_port(index)); }
  /// Decodes self-contained CBOR.
  static Value from_cbor(const uint8_t *p, size_t len) {
    cm_value *v;
    check(cm_value_decode(p, len, nullptr, 0, UINT32_MAX, &v));
    return Value(v);
  }

  /// Appends to an array or set.
  Value &push(Value item) {
    check(cm_value_push(v_, item.release()));
    return *this;
  }
  /// Sets an object's key.
  Value &set(std::string_view key, Value item) {
    check(cm_value_set(v_, key.data(), key.size(), item.release()));
    return *this;
  }
  /// Appends a Map entry.
  Value &set(Value key, Value item) {
    cm_value *k = key.release();
    check(cm_value_map_set(v_, k, item.release()));
    return *this;
  }

  // The borrowed views of ValueReader, for lvalues only (see the class comment).
  std::string_view as_string() const & { return ValueReader::as_string(); }
  std::string_view as_string() const && = delete;
  std::pair<const uint8_t *, size_t> as_bytes() const & { return ValueReader::as_bytes(); }
  std::pair<const uint8_t *, size_t> as_bytes() const && = delete;
  std::string_view key(size_t i) const & { return ValueReader::key(i); }
  std::string_view key(size_t i) const && = delete;
  ValueRef operator[](size_t i) const & { return ValueReader::operator[](i); }
  ValueRef operator[](size_t i) const && = delete;
  ValueRef operator[](std::string_view key) const & { return ValueReader::operator[](key); }
  ValueRef operator[](std::string_view key) const && = delete;

  const cm_value *get() const noexcept { return v_; }
  /// Gives up ownership (for C functions that take it).
  cm_value *release() noexcept { return std::exchange(v_, nullptr); }

 private:
  cm_value *v_;
};

inline Value ValueRef::clone() const { return Value(cm_value_clone(v_)); }

class MessagePort;

/// A received message: its value and the ports it carried. Move-only.
class Message {
 public:
  explicit Message(cm_message *m) noexcept : m_(m) {}
  Message(Message &&other) noexcept : m_(std::exchange(other.m_, nullptr)) {}
  Message &operator=(Message other) noexcept {
    std::swap(m_, other.m_);
    return *this;
  }
  Message(const Message &) = delete;
  ~Message() { cm_message_free(m_); }

  /// The value, borrowed from the message (so not from a temporary Message: take_value()).
  ValueRef value() & {
    const cm_value *v;
    check(cm_message_value(m_, &v));
    return ValueRef(v);
  }
  ValueRef value() && = delete;
  /// The value, moved out.
  Value take_value() {
    cm_value *v;
    check(cm_message_take_value(m_, &v));
    return Value(v);
  }
  size_t port_count() const {
    size_t n;
    check(cm_message_port_count(m_, &n));
    return n;
  }
  /// Adopts port `index` (once).
  MessagePort take_port(size_t index);
  cm_message *get() noexcept { return m_; }

 private:
  cm_message *m_;
};

/// Queue statistics (cm_stats).
using Stats = cm_stats;

/// One end of a channel. Move-only; closes the port when destroyed.
class MessagePort {
 public:
  MessagePort() noexcept = default;
  /// Takes ownership of a port handle.
  explicit MessagePort(cm_port handle) noexcept : h_(handle) {}
  MessagePort(MessagePort &&other) noexcept : h_(std::exchange(other.h_, 0)) {}
  MessagePort &operator=(MessagePort &&other) noexcept {
    if (this != &other) {
      close_quietly();
      h_ = std::exchange(other.h_, 0);
    }
    return *this;
  }
  MessagePort(const MessagePort &) = delete;
  MessagePort &operator=(const MessagePort &) = delete;
  ~MessagePort() { close_quietly(); }

  /// Posts `value`, transferring `transfer` (those ports become empty on success).
  void post(const Value &value, std::initializer_list<std::reference_wrapper<MessagePort>> transfer = {}) {
    std::vector<cm_port> handles;
    handles.reserve(transfer.size());
    for (MessagePort &p : transfer) handles.push_back(p.h_);
    check(cm_port_post(h_, value.get(), handles.data(), handles.size()));
    for (MessagePort &p : transfer) p.h_ = 0;
  }

  /// Blocks for the next value; throws cm::Error (status CM_CLOSED) once the port ended.
  /// Ports the message carried are closed with it: to adopt them, use recv_message().
  Value recv() { return recv_message(-1)->take_value(); }
  /// The next value if one is queued (ports it carried are closed: see recv()).
  std::optional<Value> try_recv() { return value_of(recv_message(0)); }
  /// The next value, waiting at most `timeout` (ports it carried are closed: see recv()).
  std::optional<Value> recv_for(std::chrono::milliseconds timeout) {
    return value_of(recv_message(timeout.count() <= 0 ? 0 : timeout.count()));
  }
  /// The next message (with its ports): timeout_ms 0 = do not wait, negative = forever.
  /// Empty on CM_EMPTY/CM_TIMEOUT; throws on CM_CLOSED and errors.
  std::optional<Message> recv_message(int64_t timeout_ms) {
    cm_message *m = nullptr;
    cm_status s = cm_port_recv(h_, timeout_ms, &m);
    if (s == CM_EMPTY || s == CM_TIMEOUT) return std::nullopt;
    check(s);
    return Message(m);
  }

  void start() { check(cm_port_start(h_)); }
  /// Closes the port now (the destructor does it too). Idempotent, as the web's close():
  /// closing a closed, moved-from or transferred port does nothing.
  void close() {
    if (h_ != 0) check(cm_port_close(std::exchange(h_, 0)));
  }
  /// A file descriptor readable while messages wait (owned by the port).
  int fd() {
    int f;
    check(cm_port_fd(h_, &f));
    return f;
  }
  void set_limits(size_t max_messages, size_t max_bytes) {
    check(cm_port_set_limits(h_, max_messages, max_bytes));
  }
  bool is_ready() const {
    bool r;
    check(cm_port_is_ready(h_, &r));
    return r;
  }
  Stats stats() const {
    Stats s;
    check(cm_port_stats(h_, &s));
    return s;
  }
  cm_port handle() const noexcept { return h_; }
  explicit operator bool() const noexcept { return h_ != 0; }
  /// Gives up ownership of the handle.
  cm_port release() noexcept { return std::exchange(h_, 0); }

 private:
  static std::optional<Value> value_of(std::optional<Message> m) {
    if (!m) return std::nullopt;
    return m->take_value();
  }
  void close_quietly() noexcept {
    if (h_ != 0) cm_port_close(std::exchange(h_, 0));
  }
  cm_port h_ = 0;
};

inline MessagePort Message::take_port(size_t index) {
  cm_port p;
  check(cm_message_take_port(m_, index, &p));
  return MessagePort(p);
}

/// Two entangled ports. Move-only (the ports are members: move them out freely).
struct MessageChannel {
  MessagePort port1;
  MessagePort port2;

  MessageChannel() {
    cm_port a, b;
    check(cm_channel_new(&a, &b));
    port1 = MessagePort(a);
    port2 = MessagePort(b);
  }
};

}  // namespace cm

#endif  // CHANNEL_MESSAGING_HPP
