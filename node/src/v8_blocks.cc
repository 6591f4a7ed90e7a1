// Zero-copy ArrayBuffers straight through V8's own API (see node/src/blocks.rs).
//
// napi_create_external_arraybuffer makes a Node Buffer (a Uint8Array, a weak handle, a
// cleanup hook and a finalizer deferred to the event loop) for every call, which costs
// more than a whole message does elsewhere. v8::ArrayBuffer::New over a BackingStore
// whose deleter gives the memory back is what Node's own transfer does.
//
// It also shares SharedArrayBuffers between threads the way Node's own messaging does:
// the sender's backing store (a std::shared_ptr) travels with the message, and each
// receiver makes a SharedArrayBuffer over that same store (node/src/shared.rs).
//
// This file uses V8's C++ API, whose ABI changes with Node's major version: it is
// compiled against the headers of the node that builds the addon, and blocks.rs calls
// it only when the running node has that same major version (else it keeps to N-API).

#include <cstddef>
#include <cstring>
#include <memory>

#include <js_native_api_types.h>
#include <node_version.h>
#include <v8.h>

namespace {

// A napi_value is a v8::Local<v8::Value> (Node's N-API converts with a bit copy).
v8::Local<v8::Value> FromNapi(napi_value v) {
  v8::Local<v8::Value> value;
  static_assert(sizeof(v) == sizeof(value), "napi_value is a v8::Local");
  std::memcpy(static_cast<void*>(&value), &v, sizeof(value));
  return value;
}

napi_value ToNapi(v8::Local<v8::Value> value) {
  napi_value out;
  std::memcpy(&out, &value, sizeof(out));
  return out;
}

using Store = std::shared_ptr<v8::BackingStore>;

}  // namespace

extern "C" {

// Defined in blocks.rs: gives the memory of a block back (any thread; never unwinds).
void cm_block_deleted(void* data, size_t length, void* hint);

// The Node major version these headers belong to.
int cm_v8_node_major(void) { return NODE_MAJOR_VERSION; }

// An ArrayBuffer over data[0..length) that owns it: when V8 drops the backing store
// (garbage collection, a detach, the isolate's teardown), cm_block_deleted(data, length,
// hint) runs, on whichever thread drops it. Null when there is no current isolate
// (the caller still owns the memory then). Called from a N-API callback:
// the result lives in that callback's handle scope, as a napi_value.
napi_value cm_v8_external_arraybuffer(void* data, size_t length, void* hint) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate == nullptr) return nullptr;
  // From here on V8 owns the memory (V8 aborts the process when it cannot allocate).
  std::unique_ptr<v8::BackingStore> store = v8::ArrayBuffer::NewBackingStore(
      data, length, [](void* d, size_t n, void* h) { cm_block_deleted(d, n, h); }, hint);
  return ToNapi(v8::ArrayBuffer::New(isolate, std::move(store)));
}

// When `v` is a SharedArrayBuffer: a new handle on its backing store (released with
// cm_v8_store_release), with *data / *length its memory now. Else null.
void* cm_v8_shared_store(napi_value v, void** data, size_t* length) {
  v8::Local<v8::Value> value = FromNapi(v);
  if (value.IsEmpty() || !value->IsSharedArrayBuffer()) return nullptr;
  Store store = value.As<v8::SharedArrayBuffer>()->GetBackingStore();
  *data = store->Data();
  *length = store->ByteLength();
  return new Store(std::move(store));
}

// Drops a handle from cm_v8_shared_store (any thread: the store's count is atomic,
// and the memory goes back to the allocator that made it when the last handle goes).
void cm_v8_store_release(void* handle) { delete static_cast<Store*>(handle); }

// A SharedArrayBuffer of the current isolate over the store `handle` holds (the same
// memory: writes on either side are seen on the other). Null without a current isolate.
napi_value cm_v8_shared_array_buffer(void* handle) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate == nullptr) return nullptr;
  v8::Local<v8::SharedArrayBuffer> sab =
      v8::SharedArrayBuffer::New(isolate, *static_cast<Store*>(handle));
  return ToNapi(sab);
}

}  // extern "C"
