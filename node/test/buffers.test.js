'use strict';
// Zero-copy buffers: allocBuffer / allocBufferUnsafe / isZeroCopyBuffer, and ArrayBuffers
// over Rust-owned memory moving through transfers without a copy (node/src/blocks.rs).
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { once } = require('node:events');
const { Worker } = require('node:worker_threads');
const {
  MessageChannel,
  receiveMessageOnPort,
  allocBuffer,
  allocBufferUnsafe,
  isZeroCopyBuffer,
  releaseBuffer,
  bufferPoolStats,
} = require('..');

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('allocBuffer: a zero-filled ArrayBuffer of the size asked for, over Rust memory', () => {
  for (const size of [1, 100, 4096, 65536, 100_000, 3 << 20]) {
    const ab = allocBuffer(size);
    assert.ok(ab instanceof ArrayBuffer);
    assert.strictEqual(ab.byteLength, size);
    assert.ok(new Uint8Array(ab).every((b) => b === 0));
    assert.strictEqual(isZeroCopyBuffer(ab), true);
  }
  const empty = allocBuffer(0);
  assert.strictEqual(empty.byteLength, 0);
  assert.strictEqual(isZeroCopyBuffer(empty), false);
  assert.strictEqual(allocBufferUnsafe(65536).byteLength, 65536);
  assert.strictEqual(isZeroCopyBuffer(new ArrayBuffer(64)), false);
  assert.strictEqual(isZeroCopyBuffer('not a buffer'), false);
});

test('allocBuffer zero-fills recycled memory; allocBufferUnsafe need not', async () => {
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 200; i++) new Uint8Array(allocBufferUnsafe(65536)).fill(0xab);
    await tick(); // finalizers of collected buffers run on the event loop
    for (let i = 0; i < 50; i++) {
      assert.ok(new Uint8Array(allocBuffer(65536)).every((b) => b === 0));
    }
  }
});

test('allocBuffer: bad sizes throw Node-style errors', () => {
  for (const bad of ['1', 1n, null, undefined, {}]) {
    assert.throws(() => allocBuffer(bad), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => allocBufferUnsafe(bad), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  }
  for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 53]) {
    assert.throws(() => allocBuffer(bad), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
  }
});

test('a transferred allocBuffer detaches here and arrives with its bytes, zero-copy again', () => {
  const { port1, port2 } = new MessageChannel();
  const ab = allocBuffer(65536);
  const bytes = new Uint8Array(ab);
  bytes.fill(7);
  bytes[0] = 1;
  port1.postMessage({ ab, view: new Uint8Array(ab, 8, 4) }, [ab]);
  assert.strictEqual(ab.byteLength, 0);
  assert.strictEqual(bytes.length, 0);
  const { message } = receiveMessageOnPort(port2);
  assert.strictEqual(message.ab.byteLength, 65536);
  assert.strictEqual(message.view.buffer, message.ab);
  assert.deepStrictEqual([...message.view], [7, 7, 7, 7]);
  assert.strictEqual(new Uint8Array(message.ab)[0], 1);
  assert.strictEqual(isZeroCopyBuffer(message.ab), true);

  // and on again, through a second channel
  const other = new MessageChannel();
  other.port1.postMessage(message.ab, [message.ab]);
  assert.strictEqual(message.ab.byteLength, 0);
  const again = receiveMessageOnPort(other.port2).message;
  assert.strictEqual(new Uint8Array(again)[0], 1);
  assert.strictEqual(again.byteLength, 65536);
  port1.close();
  other.port1.close();
});

test('every ArrayBuffer a message delivers is zero-copy transferable', () => {
  const { port1, port2 } = new MessageChannel();
  const plain = new ArrayBuffer(5000);
  new Uint8Array(plain)[4999] = 9;
  port1.postMessage(plain, [plain]); // copied once on send (V8 owns it)
  assert.strictEqual(plain.byteLength, 0);
  const got = receiveMessageOnPort(port2).message;
  assert.strictEqual(new Uint8Array(got)[4999], 9);
  assert.strictEqual(isZeroCopyBuffer(got), true);
  port1.close();
});

test('cloning (no transfer) an allocBuffer copies it: later writes do not show', () => {
  const { port1, port2 } = new MessageChannel();
  const ab = allocBuffer(8192);
  new Uint8Array(ab)[0] = 5;
  port1.postMessage(ab);
  new Uint8Array(ab)[0] = 6;
  assert.strictEqual(ab.byteLength, 8192);
  const got = receiveMessageOnPort(port2).message;
  assert.strictEqual(new Uint8Array(got)[0], 5);
  assert.strictEqual(new Uint8Array(ab)[0], 6);
  port1.close();
});

test('a refused transfer leaves an allocBuffer untouched (all-or-nothing)', () => {
  const { port1, port2 } = new MessageChannel();
  const ab = allocBuffer(65536);
  new Uint8Array(ab)[3] = 3;
  assert.throws(() => port1.postMessage(ab, [ab, port1]), { name: 'DataCloneError' });
  const closed = new MessageChannel();
  closed.port2.close();
  assert.throws(() => port1.postMessage(ab, [ab, closed.port2]), { name: 'DataCloneError' });
  assert.throws(() => port1.postMessage({ ab, f() {} }, [ab]), { name: 'DataCloneError' });
  assert.strictEqual(ab.byteLength, 65536);
  assert.strictEqual(new Uint8Array(ab)[3], 3);
  assert.strictEqual(isZeroCopyBuffer(ab), true);
  assert.strictEqual(receiveMessageOnPort(port2), undefined);
  port1.postMessage(ab, [ab]);
  assert.strictEqual(new Uint8Array(receiveMessageOnPort(port2).message)[3], 3);
  port1.close();
  closed.port1.close();
});

test('a transfer that also moves a port moves the buffer without a copy too', () => {
  const { port1, port2 } = new MessageChannel();
  const carried = new MessageChannel();
  const ab = allocBuffer(4096);
  new Uint8Array(ab)[0] = 42;
  port1.postMessage({ ab, port: carried.port2 }, [ab, carried.port2]);
  assert.strictEqual(ab.byteLength, 0);
  const { message } = receiveMessageOnPort(port2);
  assert.strictEqual(new Uint8Array(message.ab)[0], 42);
  carried.port1.postMessage('hi');
  assert.strictEqual(receiveMessageOnPort(message.port).message, 'hi');
  message.port.close();
  port1.close();
});

test('buffers go round a Worker and back many times, memory recycled on the way', async () => {
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(path.join(__dirname, 'fixtures', 'worker-buffer-echo.js'), {
    workerData: { handle: port2.exportHandle() },
  });
  await once(worker, 'message');
  for (let i = 0; i < 300; i++) {
    const ab = allocBufferUnsafe(65536);
    const bytes = new Uint8Array(ab);
    bytes[0] = i & 127;
    bytes[65535] = 200;
    port1.postMessage(ab, [ab]);
    const [{ ab: back, zeroCopy }] = await once(port1, 'message');
    assert.strictEqual(zeroCopy, true);
    assert.strictEqual(back.byteLength, 65536);
    const got = new Uint8Array(back);
    assert.strictEqual(got[0], (i & 127) + 1);
    assert.strictEqual(got[65535], 200);
  }
  port1.close();
  await worker.terminate();
});

test('releaseBuffer: detaches a zero-copy buffer and gives its memory back at once', () => {
  const ab = allocBuffer(65536);
  const view = new Uint8Array(ab);
  view.fill(7);
  assert.strictEqual(releaseBuffer(ab), true);
  assert.strictEqual(ab.byteLength, 0, 'detached');
  assert.strictEqual(view.length, 0, 'its views read as empty');
  assert.strictEqual(isZeroCopyBuffer(ab), false);
  assert.strictEqual(releaseBuffer(ab), false, 'a second release does nothing');
  // released memory is reused, and allocBuffer still zero-fills it
  for (let i = 0; i < 20; i++) {
    const again = allocBuffer(65536);
    assert.ok(new Uint8Array(again).every((b) => b === 0));
    assert.strictEqual(releaseBuffer(again), true);
  }
  // a released buffer is a detached ArrayBuffer: cloning or transferring it is a
  // DataCloneError (spec C5), and nothing is sent
  const { port1, port2 } = new MessageChannel();
  assert.throws(() => port1.postMessage(ab), { name: 'DataCloneError' });
  assert.throws(() => port1.postMessage(ab, [ab]), { name: 'DataCloneError' });
  assert.throws(() => port1.postMessage({ frame: ab }, [ab]), { name: 'DataCloneError' });
  assert.strictEqual(receiveMessageOnPort(port2), undefined);
  port1.close();
  port2.close();
});

test('releaseBuffer leaves other ArrayBuffers alone and checks its argument', () => {
  const plain = new ArrayBuffer(64);
  new Uint8Array(plain).fill(3);
  assert.strictEqual(releaseBuffer(plain), false);
  assert.strictEqual(plain.byteLength, 64);
  assert.strictEqual(new Uint8Array(plain)[63], 3);
  assert.strictEqual(releaseBuffer(new ArrayBuffer(0)), false);
  for (const bad of [undefined, null, 'x', 1, new Uint8Array(allocBuffer(16)), {}]) {
    assert.throws(() => releaseBuffer(bad), { code: 'ERR_INVALID_ARG_TYPE' });
  }
});

test('a received buffer can be released by the receiver', () => {
  const { port1, port2 } = new MessageChannel();
  const ab = allocBufferUnsafe(65536);
  new Uint8Array(ab).fill(9);
  port1.postMessage(ab, [ab]);
  const got = receiveMessageOnPort(port2).message;
  assert.strictEqual(got.byteLength, 65536);
  assert.strictEqual(new Uint8Array(got)[100], 9);
  assert.strictEqual(isZeroCopyBuffer(got), true);
  assert.strictEqual(releaseBuffer(got), true);
  assert.strictEqual(got.byteLength, 0);
  port1.close();
  port2.close();
});

test('postMessage(ab, [ab]) with a zero-copy buffer: the fast path keeps every rule', () => {
  const { port1, port2 } = new MessageChannel();
  // a block: detached here, same bytes there, zero-copy again, and the same as the
  // general path's result (the same encoding)
  const ab = allocBufferUnsafe(65536);
  new Uint8Array(ab).fill(4);
  const view = new Uint8Array(ab);
  port1.postMessage(ab, [ab]);
  assert.strictEqual(ab.byteLength, 0);
  assert.strictEqual(view.length, 0);
  const got = receiveMessageOnPort(port2).message;
  assert.ok(got instanceof ArrayBuffer);
  assert.strictEqual(got.byteLength, 65536);
  assert.strictEqual(new Uint8Array(got)[65535], 4);
  assert.strictEqual(isZeroCopyBuffer(got), true);
  // any iterable of one, an options bag
  port1.postMessage(got, new Set([got]));
  assert.strictEqual(got.byteLength, 0);
  const again = receiveMessageOnPort(port2).message;
  port1.postMessage(again, { transfer: [again] });
  assert.strictEqual(again.byteLength, 0);
  const third = receiveMessageOnPort(port2).message;
  assert.strictEqual(new Uint8Array(third)[0], 4);
  // a detached (released) buffer: a DataCloneError, nothing posted
  releaseBuffer(third);
  assert.throws(() => port1.postMessage(third, [third]), { name: 'DataCloneError' });
  assert.strictEqual(receiveMessageOnPort(port2), undefined);
  // duplicates and bad lists: the general path's errors, nothing detached
  const dup = allocBuffer(4096);
  assert.throws(() => port1.postMessage(dup, [dup, dup]), { name: 'DataCloneError' });
  assert.throws(() => port1.postMessage(dup, [dup, {}]), { code: 'ERR_INVALID_TRANSFER_OBJECT' });
  assert.strictEqual(dup.byteLength, 4096);
  // a V8-owned ArrayBuffer of the same shape: copied, still detached
  const plain = new ArrayBuffer(16);
  new Uint8Array(plain)[15] = 8;
  port1.postMessage(plain, [plain]);
  assert.strictEqual(plain.byteLength, 0);
  assert.strictEqual(new Uint8Array(receiveMessageOnPort(port2).message)[15], 8);
  // the list is read once, as the general path reads it
  let reads = 0;
  const block = allocBuffer(4096);
  const list = { *[Symbol.iterator]() { reads += 1; yield block; } };
  port1.postMessage(block, list);
  assert.strictEqual(reads, 1);
  assert.strictEqual(block.byteLength, 0);
  assert.strictEqual(receiveMessageOnPort(port2).message.byteLength, 4096);
  // a closed sender: no error, as with the general path
  port2.close();
  const late = allocBuffer(4096);
  port1.postMessage(late, [late]);
  port1.close();
});

test('postMessage(ab, [ab]) with a zero-copy buffer from inside an encode (a getter)', () => {
  const { port1, port2 } = new MessageChannel();
  const inner = allocBuffer(8192);
  new Uint8Array(inner)[1] = 11;
  const outer = {
    get x() {
      port1.postMessage(inner, [inner]);
      return 'x';
    },
  };
  port1.postMessage(outer);
  assert.strictEqual(inner.byteLength, 0);
  const first = receiveMessageOnPort(port2).message;
  assert.strictEqual(new Uint8Array(first)[1], 11);
  assert.deepStrictEqual(receiveMessageOnPort(port2).message, { x: 'x' });
  port1.close();
});

test('a message that is one transferred buffer arrives as that buffer, by every way of receiving', async () => {
  const { port1, port2 } = new MessageChannel();
  const send = (fill, transfer) => {
    const ab = transfer === 'block' ? allocBufferUnsafe(4096) : new ArrayBuffer(4096);
    new Uint8Array(ab).fill(fill);
    port1.postMessage(ab, [ab]);
    assert.strictEqual(ab.byteLength, 0);
  };
  send(1, 'block');
  send(2, 'plain'); // the general path, the same encoding
  for (const fill of [1, 2]) {
    const got = receiveMessageOnPort(port2).message;
    assert.ok(got instanceof ArrayBuffer);
    assert.strictEqual(isZeroCopyBuffer(got), true);
    assert.ok(new Uint8Array(got).every((b) => b === fill));
  }
  // the same shape inside something else is decoded as usual
  const ab = allocBuffer(16);
  port1.postMessage([ab], [ab]);
  const [inner] = receiveMessageOnPort(port2).message;
  assert.strictEqual(inner.byteLength, 16);
  // 'message' events
  send(3, 'block');
  const [ev] = await once(port2, 'message');
  assert.strictEqual(new Uint8Array(ev)[0], 3);
  port1.close();
  port2.close();
});

/**
 * Collects garbage a few times, letting the event loop run in between (N-API finalizers
 * run there), so that collected buffers have been given back.
 */
async function settle() {
  require('node:v8').setFlagsFromString('--expose-gc');
  const gc = require('node:vm').runInNewContext('gc');
  for (let i = 0; i < 5; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('bufferPoolStats: live buffers and pooled memory, across release and garbage collection', async () => {
  await settle(); // what earlier tests left behind goes first
  const before = bufferPoolStats();
  assert.strictEqual(typeof before.live, 'number');
  assert.strictEqual(typeof before.pooledBytes, 'number');
  assert.strictEqual(typeof before.fresh, 'number');
  assert.ok(before.backend === 'v8' || before.backend === 'napi');
  let held = [];
  for (let i = 0; i < 40; i++) held.push(allocBufferUnsafe(65536));
  assert.strictEqual(bufferPoolStats().live, before.live + 40);
  for (const ab of held.splice(0, 20)) assert.strictEqual(releaseBuffer(ab), true);
  const released = bufferPoolStats();
  assert.strictEqual(released.live, before.live + 20);
  assert.ok(released.pooledBytes >= 20 * 65536 || released.pooledBytes >= 16 * 1024 * 1024);
  // released memory is what the next allocations get: nothing fresh
  const fresh = released.fresh;
  for (let i = 0; i < 10; i++) releaseBuffer(allocBufferUnsafe(65536));
  assert.strictEqual(bufferPoolStats().fresh, fresh);
  // the other 20 go back once collected (V8 frees them; N-API finalizers run on the loop)
  held = null;
  for (let i = 0; i < 40 && bufferPoolStats().live > before.live; i++) await settle();
  assert.ok(bufferPoolStats().live <= before.live, 'collected buffers are given back');
});

test('buffers in flight when a Worker is terminated are all given back', async () => {
  await settle();
  const before = bufferPoolStats().live;
  for (let round = 0; round < 6; round++) {
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(path.join(__dirname, 'fixtures', 'worker-buffer-echo.js'), {
      workerData: { handle: port2.exportHandle() },
    });
    await once(worker, 'message');
    port1.on('message', ({ ab }) => {
      if (round % 2 === 0) releaseBuffer(ab);
    });
    for (let i = 0; i < 300; i++) {
      const ab = allocBufferUnsafe(65536);
      port1.postMessage(ab, [ab]);
      if (i === 100 + round * 30) worker.terminate(); // mid-stream, not awaited
    }
    await worker.terminate();
    port1.close();
  }
  for (let i = 0; i < 40 && bufferPoolStats().live > before; i++) await settle();
  assert.ok(bufferPoolStats().live <= before, `live ${bufferPoolStats().live}, was ${before}`);
});

test('zero-copy buffers are made with V8\'s API where the addon was built for this node', () => {
  const { execFileSync } = require('node:child_process');
  const fs = require('node:fs');
  const probe = "process.stdout.write(require('" + path.join(__dirname, '..').replaceAll('\\', '/') + "').bufferPoolStats().backend)";
  const env = { ...process.env };
  delete env.CHANNEL_MESSAGING_NAPI_BLOCKS;
  // as node/build.rs decides
  const include = process.env.NODE_INCLUDE_DIR ?? path.join(path.dirname(process.execPath), '..', 'include', 'node');
  const config = path.join(include, 'config.gypi');
  const sandbox = fs.existsSync(config) && fs.readFileSync(config, 'utf8').includes("'v8_enable_sandbox': 1");
  const expected = fs.existsSync(path.join(include, 'v8.h')) && !sandbox ? 'v8' : 'napi';
  assert.strictEqual(execFileSync(process.execPath, ['-e', probe], { env, encoding: 'utf8' }), expected);
  env.CHANNEL_MESSAGING_NAPI_BLOCKS = '1';
  assert.strictEqual(execFileSync(process.execPath, ['-e', probe], { env, encoding: 'utf8' }), 'napi');
});
