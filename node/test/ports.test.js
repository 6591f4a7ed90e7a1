'use strict';
// MessagePort semantics on one thread, named after spec.md ids where one applies.
const test = require('node:test');
const assert = require('node:assert');
const { once } = require('node:events');
const {
  MessageChannel, MessagePort, MessageEvent, receiveMessageOnPort, PortCollection,
} = require('..');

const { deliveryOrder } = require('./order.js');

const tick = () => new Promise((r) => setImmediate(r));
const isDataCloneError = (e) => e instanceof DOMException && e.name === 'DataCloneError' && e.code === 25;

test('ping-pong on the main thread', async () => {
  const { port1, port2 } = new MessageChannel();
  port2.on('message', (m) => port2.postMessage({ n: m.n + 1 }));
  let last = 0;
  for (let i = 0; i < 100; i++) {
    port1.postMessage({ n: last });
    [{ n: last }] = await once(port1, 'message');
  }
  assert.strictEqual(last, 100);
  port1.close();
});

test('a4_message_port_has_no_constructor', () => {
  assert.throws(() => new MessagePort(), { name: 'TypeError', code: 'ERR_CONSTRUCT_CALL_INVALID' });
});

test('a3_port1_port2_are_stable_objects', () => {
  const c = new MessageChannel();
  assert.strictEqual(c.port1, c.port1);
  assert.notStrictEqual(c.port1, c.port2);
});

test('b1_b8_messages_before_start_are_kept_in_order', async () => {
  const { port1, port2 } = new MessageChannel();
  for (let i = 0; i < 5; i++) port1.postMessage(i);
  await tick();
  const got = [];
  port2.on('message', (m) => got.push(m));
  await tick();
  await tick();
  assert.deepStrictEqual(got, [0, 1, 2, 3, 4]);
  port1.close();
});

test('b2_addEventListener_alone_does_not_start_but_on_does', async () => {
  // Node's rule: any 'message' listener starts the port (DESIGN.md §7.3)
  const { port1, port2 } = new MessageChannel();
  let got = null;
  port2.addEventListener('message', (e) => { got = e; });
  port1.postMessage('x');
  await tick();
  await tick();
  assert.ok(got instanceof MessageEvent);
  assert.strictEqual(got.data, 'x');
  assert.strictEqual(got.target, port2);
  assert.deepStrictEqual(got.ports, []);
  assert.ok(Object.isFrozen(got.ports));
  port1.close();
});

test('b5_delivery_is_asynchronous', async () => {
  const { port1, port2 } = new MessageChannel();
  let got = false;
  port2.on('message', () => { got = true; });
  port1.postMessage(1);
  assert.strictEqual(got, false);
  await tick();
  await tick();
  assert.strictEqual(got, true);
  port1.close();
});

test('onmessage receives a MessageEvent; onmessage = null stops and unrefs', async () => {
  const { port1, port2 } = new MessageChannel();
  const events = [];
  port2.onmessage = (e) => events.push(e);
  assert.strictEqual(port2.hasRef(), true);
  port1.postMessage({ a: 1 });
  await tick();
  await tick();
  assert.strictEqual(events.length, 1);
  assert.deepStrictEqual(events[0].data, { a: 1 });
  assert.strictEqual(events[0].target, port2);
  port2.onmessage = null;
  assert.strictEqual(port2.hasRef(), false);
  port1.postMessage(2);
  await tick();
  await tick();
  assert.strictEqual(events.length, 1);
  assert.strictEqual(receiveMessageOnPort(port2).message, 2);
  port1.close();
});

test('c1_transfer_list_argument_matrix', () => {
  const { port1, port2 } = new MessageChannel();
  // undefined / null: no transfer
  port1.postMessage(1, undefined);
  port1.postMessage(2, null);
  // a primitive: TypeError
  assert.throws(() => port1.postMessage(3, 1), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  // options objects: {}, {length: 1}, {transfer: undefined}
  port1.postMessage(4, {});
  port1.postMessage(5, { length: 1 });
  port1.postMessage(6, { transfer: undefined });
  // options.transfer null or not iterable: TypeError
  assert.throws(() => port1.postMessage(7, { transfer: null }), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => port1.postMessage(7, { transfer: 1 }), { code: 'ERR_INVALID_ARG_TYPE' });
  // non-transferable items: TypeError
  assert.throws(() => port1.postMessage(7, [1]), { code: 'ERR_INVALID_TRANSFER_OBJECT' });
  assert.throws(() => port1.postMessage(7, [null]), { code: 'ERR_INVALID_TRANSFER_OBJECT' });
  assert.throws(() => port1.postMessage(7, [{}]), { code: 'ERR_INVALID_TRANSFER_OBJECT' });
  assert.throws(() => port1.postMessage(7, [new Uint8Array(2)]), { code: 'ERR_INVALID_TRANSFER_OBJECT' });
  // no argument at all
  assert.throws(() => port1.postMessage(), { code: 'ERR_MISSING_ARGS' });
  // iterables other than arrays
  const ab = new ArrayBuffer(4);
  port1.postMessage(8, new Set([ab]));
  assert.strictEqual(ab.byteLength, 0);
  const got = [];
  for (let r; (r = receiveMessageOnPort(port2)) !== undefined;) got.push(r.message);
  assert.deepStrictEqual(got, [1, 2, 4, 5, 6, 8]);
  port1.close();
});

test('c1_transfer_list_arrays_are_read_by_index_as_node_reads_them', () => {
  // Node reads an array transfer list by index (its length once, holes as undefined)
  // and never calls its iterator; a Proxy, or any other object, goes through its
  // iterator. Each case runs on Node's MessageChannel too, so the two cannot drift.
  const worker = require('node:worker_threads');
  const impls = [
    ['node', worker.MessageChannel, worker.receiveMessageOnPort],
    ['channel-messaging', MessageChannel, receiveMessageOnPort],
  ];
  for (const [impl, Channel, receive] of impls) {
    const { port1, port2 } = new Channel();
    // an array with its own iterator: the iterator is not called, the buffer moves
    const ab = new ArrayBuffer(4);
    const list = [ab];
    let iterated = 0;
    list[Symbol.iterator] = function* iterate() { iterated += 1; };
    port1.postMessage(1, list);
    assert.strictEqual(ab.byteLength, 0, impl);
    assert.strictEqual(iterated, 0, impl);
    // the same inside options.transfer
    const ab2 = new ArrayBuffer(4);
    const list2 = [ab2];
    list2[Symbol.iterator] = function* iterate() { iterated += 1; };
    port1.postMessage(2, { transfer: list2 });
    assert.strictEqual(ab2.byteLength, 0, impl);
    assert.strictEqual(iterated, 0, impl);
    // a hole is read as undefined: not transferable
    assert.throws(() => port1.postMessage(3, [, new ArrayBuffer(1)]), { code: 'ERR_INVALID_TRANSFER_OBJECT' }, impl); // eslint-disable-line no-sparse-arrays
    // a Proxy of an array goes through its iterator
    const ab3 = new ArrayBuffer(4);
    const seen = [];
    const proxy = new Proxy([ab3], { get(target, key) { seen.push(key); return target[key]; } });
    port1.postMessage(4, proxy);
    assert.strictEqual(ab3.byteLength, 0, impl);
    assert.ok(seen.includes(Symbol.iterator), impl);
    const got = [];
    for (let r; (r = receive(port2)) !== undefined;) got.push(r.message);
    assert.deepStrictEqual(got, [1, 2, 4], impl);
    port1.close();
  }
});

test('an_onmessage_that_is_not_a_function_is_null', async () => {
  // node/README.md, "Differences from Node": a non-function handler is no handler (the
  // getter gives null, no listener is kept, the port does not keep the process alive);
  // setting it still starts a fresh port (B2), which then drops what arrives (B3)
  for (const value of [{ handleEvent() { throw new Error('not called'); } }, 'code', 5, undefined]) {
    const { port1, port2 } = new MessageChannel();
    port2.onmessage = value;
    assert.strictEqual(port2.onmessage, null);
    assert.strictEqual(port2.listenerCount('message'), 0);
    assert.strictEqual(port2.hasRef(), false);
    port1.postMessage('dropped');
    await tick();
    await tick();
    assert.strictEqual(receiveMessageOnPort(port2), undefined);
    // a function handler set before is removed by it
    const { port1: a, port2: b } = new MessageChannel();
    b.onmessage = () => {};
    assert.strictEqual(b.hasRef(), true);
    b.onmessage = value;
    assert.strictEqual(b.onmessage, null);
    assert.strictEqual(b.hasRef(), false);
    port1.close();
    a.close();
  }
});

test('removeEventListener_with_a_boolean_third_argument_takes_it_as_capture', () => {
  // the DOM's rule (node/README.md, "Differences from Node": Node 20 ignores a boolean
  // there, so the listener stays)
  const { port1, port2 } = new MessageChannel();
  const f = () => {};
  port2.addEventListener('message', f, true);
  port2.addEventListener('message', f, false);
  assert.strictEqual(port2.listenerCount('message'), 2);
  port2.removeEventListener('message', f, true);
  assert.strictEqual(port2.listenerCount('message'), 1);
  port2.removeEventListener('message', f, true);
  assert.strictEqual(port2.listenerCount('message'), 1);
  port2.removeEventListener('message', f, false);
  assert.strictEqual(port2.listenerCount('message'), 0);
  port1.close();
});

test('c3_transfer_of_the_source_port_is_a_DataCloneError_checked_first', () => {
  const { port1 } = new MessageChannel();
  const getter = { get x() { throw new Error('serialization must not run'); } };
  assert.throws(() => port1.postMessage(getter, [port1]), isDataCloneError);
  port1.close();
});

test('c5_duplicate_ports_and_buffers_are_DataCloneErrors_and_nothing_detaches', () => {
  const { port1 } = new MessageChannel();
  const other = new MessageChannel();
  const ab = new ArrayBuffer(8);
  assert.throws(() => port1.postMessage(0, [other.port1, other.port1]), isDataCloneError);
  assert.throws(() => port1.postMessage(0, [ab, ab]), isDataCloneError);
  assert.strictEqual(ab.byteLength, 8);
  // other.port1 is still usable
  other.port1.postMessage('alive');
  assert.strictEqual(receiveMessageOnPort(other.port2).message, 'alive');
  port1.close();
  other.port1.close();
});

test('c5_closed_port_in_transfer_list_fails_all_or_nothing', () => {
  const { port1, port2 } = new MessageChannel();
  const fresh = new MessageChannel();
  const closed = new MessageChannel();
  closed.port1.close();
  const ab = new ArrayBuffer(16);
  assert.throws(() => port1.postMessage({ ab }, [ab, fresh.port1, closed.port1]), isDataCloneError);
  assert.strictEqual(ab.byteLength, 16, 'the buffer was not detached');
  fresh.port1.postMessage('still mine');
  assert.strictEqual(receiveMessageOnPort(fresh.port2).message, 'still mine');
  assert.strictEqual(receiveMessageOnPort(port2), undefined);
  port1.close();
  fresh.port1.close();
});

test('c9_transferred_port_is_inert_and_cannot_be_transferred_again', () => {
  const { port1, port2 } = new MessageChannel();
  const c = new MessageChannel();
  port1.postMessage({ p: c.port1 }, [c.port1]);
  c.port1.postMessage('ignored'); // inert: no throw
  assert.throws(() => port1.postMessage(0, [c.port1]), isDataCloneError);
  const { message } = receiveMessageOnPort(port2);
  assert.ok(message.p instanceof MessagePort);
  assert.notStrictEqual(message.p, c.port1);
  message.p.postMessage('from the new owner');
  assert.strictEqual(receiveMessageOnPort(c.port2).message, 'from the new owner');
  port1.close();
  message.p.close();
});

test('c8_transferred_port_in_data_is_the_same_object_as_in_event_ports', async () => {
  const { port1, port2 } = new MessageChannel();
  const c = new MessageChannel();
  const got = new Promise((resolve) => { port2.onmessage = resolve; });
  port1.postMessage({ a: c.port1, b: [c.port1] }, { transfer: [c.port1] });
  const ev = await got;
  assert.strictEqual(ev.ports.length, 1);
  assert.strictEqual(ev.data.a, ev.ports[0]);
  assert.strictEqual(ev.data.b[0], ev.ports[0]);
  assert.strictEqual(ev.ports, ev.ports);
  port1.close();
  ev.ports[0].close();
});

test('c10_messages_in_transit_reach_new_owner', async () => {
  const { port1, port2 } = new MessageChannel();
  const c = new MessageChannel();
  c.port2.postMessage('before');
  port1.postMessage(c.port1, [c.port1]);
  c.port2.postMessage('after');
  const moved = receiveMessageOnPort(port2).message;
  c.port2.postMessage('later');
  const got = [];
  for (let r; (r = receiveMessageOnPort(moved)) !== undefined;) got.push(r.message);
  assert.deepStrictEqual(got, ['before', 'after', 'later']);
  port1.close();
  moved.close();
});

test('c11_transferring_the_target_port_is_doomed_but_no_error', () => {
  const { port1, port2 } = new MessageChannel();
  port1.postMessage('lost', [port2]);
  assert.strictEqual(receiveMessageOnPort(port2), undefined);
  port1.close();
});

test('c13_transferred_arraybuffer_is_detached_and_arrives_whole', () => {
  const { port1, port2 } = new MessageChannel();
  const ab = new ArrayBuffer(100000);
  new Uint8Array(ab)[99999] = 7;
  const view = new Uint16Array(ab, 2, 3);
  port1.postMessage({ ab, view }, [ab]);
  assert.strictEqual(ab.byteLength, 0);
  assert.strictEqual(view.length, 0);
  const { message } = receiveMessageOnPort(port2);
  assert.strictEqual(message.ab.byteLength, 100000);
  assert.strictEqual(new Uint8Array(message.ab)[99999], 7);
  assert.strictEqual(message.view.buffer, message.ab);
  port1.close();
});

test('c15_port_in_data_but_not_in_transfer_list_is_a_DataCloneError', () => {
  const { port1 } = new MessageChannel();
  const c = new MessageChannel();
  assert.throws(() => port1.postMessage({ p: c.port1 }), isDataCloneError);
  port1.close();
  c.port1.close();
});

test('g3_functions_and_symbols_are_DataCloneErrors', () => {
  const { port1 } = new MessageChannel();
  assert.throws(() => port1.postMessage(() => 1), isDataCloneError);
  assert.throws(() => port1.postMessage({ f() {} }), isDataCloneError);
  assert.throws(() => port1.postMessage(Symbol('s')), isDataCloneError);
  assert.throws(() => port1.postMessage(new WeakMap()), isDataCloneError);
  assert.throws(() => port1.postMessage(Promise.resolve()), isDataCloneError);
  port1.close();
});

test('g5_getter_exceptions_propagate_unchanged', () => {
  const { port1 } = new MessageChannel();
  const boom = new Error('boom');
  assert.throws(() => port1.postMessage({ get x() { throw boom; } }), (e) => e === boom);
  port1.close();
});

test('d_close_while_receiving_delivers_queued_then_close_once', async () => {
  const { port1, port2 } = new MessageChannel();
  const got = [];
  let closes = 0;
  port2.on('close', () => closes++);
  port2.on('message', (m) => {
    got.push(m);
    if (m === 1) port2.close();
  });
  port1.postMessage(1);
  port1.postMessage(2);
  await once(port2, 'close');
  await tick();
  assert.deepStrictEqual(got, [1, 2]);
  assert.strictEqual(closes, 1);
  port1.close();
});

test('d5_close_fires_at_both_ends', async () => {
  const { port1, port2 } = new MessageChannel();
  port2.on('message', () => {});
  const both = Promise.all([once(port1, 'close'), once(port2, 'close')]);
  port1.close();
  await both;
  assert.strictEqual(port2.hasRef(), false);
});

test('d_two_messages_then_close_10000_times_always_both_delivered', async () => {
  for (let i = 0; i < 10000; i++) {
    const { port1, port2 } = new MessageChannel();
    const got = [];
    port2.on('message', (m) => got.push(m));
    const closed = once(port2, 'close');
    port1.postMessage('a');
    port1.postMessage('b');
    port1.close();
    await closed;
    assert.deepStrictEqual(got, ['a', 'b'], `iteration ${i}`);
  }
});

test('b4_infinite_repost_loop_still_lets_setTimeout_fire', async () => {
  const { port1, port2 } = new MessageChannel();
  let count = 0;
  port2.on('message', () => {
    count++;
    port1.postMessage(0);
  });
  port1.postMessage(0);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(count > 10, `the loop ran (${count} messages)`);
  port1.close();
});

test('microtasks_run_between_messages_so_events_once_loops_lose_nothing', async () => {
  const { port1, port2 } = new MessageChannel();
  for (let i = 0; i < 50; i++) port1.postMessage(i);
  const got = [];
  for (let i = 0; i < 50; i++) {
    const [m] = await once(port2, 'message');
    got.push(m);
  }
  assert.deepStrictEqual(got, [...Array(50).keys()]);
  // and a microtask queued by a handler runs before the next message
  const order = [];
  port2.on('message', (m) => {
    order.push(`m${m}`);
    Promise.resolve().then(() => order.push(`p${m}`));
  });
  port1.postMessage(0);
  port1.postMessage(1);
  await tick();
  await tick();
  assert.deepStrictEqual(order, ['m0', 'p0', 'm1', 'p1']);
  port1.close();
});

// The two scenarios below run on Node's own MessageChannel too: the orders must match.
const nodeChannel = () => new (require('node:worker_threads').MessageChannel)();

function portPair(channel) {
  return (onData) => {
    const { port1, port2 } = channel();
    port2.on('message', onData);
    return {
      post: (i) => port1.postMessage(i),
      close: () => {
        port1.close();
        port2.close();
      },
    };
  };
}

test('everything a handler queues (ticks, microtask chains) runs before the next message, as in Node', async () => {
  // many messages queued at once: they are delivered in runs, and each still sees the
  // tick and microtask queues of the one before drained
  const ours = await deliveryOrder(portPair(() => new MessageChannel()), 200);
  assert.strictEqual(ours.length, 200 * 6);
  assert.deepStrictEqual(ours.slice(0, 6), ['m0', 't0', 'p0', 'tp0', 'pp0', 'pt0']);
  assert.deepStrictEqual(ours, await deliveryOrder(portPair(nodeChannel), 200));
});

async function listenerRemovedMidRun(channel) {
  const { port1, port2 } = channel();
  const got = [];
  const f = (m) => {
    got.push(m);
    if (m === 3) port2.off('message', f);
  };
  port2.on('message', f);
  for (let i = 0; i < 10; i++) port1.postMessage(i);
  await new Promise((resolve) => setTimeout(resolve, 30));
  const before = got.slice();
  port2.on('message', (m) => got.push(`late${m}`));
  await new Promise((resolve) => setTimeout(resolve, 30));
  // the same from a microtask queued by the handler
  const c = channel();
  const seen = [];
  const g = (m) => {
    seen.push(m);
    if (m === 5) queueMicrotask(() => c.port2.off('message', g));
  };
  c.port2.on('message', g);
  for (let i = 0; i < 10; i++) c.port1.postMessage(i);
  await new Promise((resolve) => setTimeout(resolve, 30));
  for (const p of [port1, port2, c.port1, c.port2]) p.close();
  return { before, got, seen };
}

test('a listener removed in the middle of a run (or by a microtask) gets nothing more, as in Node', async () => {
  const ours = await listenerRemovedMidRun(() => new MessageChannel());
  assert.deepStrictEqual(ours.before, [0, 1, 2, 3]);
  assert.deepStrictEqual(ours.seen, [0, 1, 2, 3, 4, 5]);
  assert.deepStrictEqual(ours, await listenerRemovedMidRun(nodeChannel));
});

test('hasRef_transitions', async () => {
  const { port1, port2 } = new MessageChannel();
  assert.strictEqual(port2.hasRef(), false);
  const f = () => {};
  port2.on('message', f);
  assert.strictEqual(port2.hasRef(), true);
  port2.unref();
  assert.strictEqual(port2.hasRef(), false);
  port2.ref();
  assert.strictEqual(port2.hasRef(), true);
  port2.off('message', f);
  assert.strictEqual(port2.hasRef(), false);
  port2.ref();
  assert.strictEqual(port2.hasRef(), true);
  port2.close();
  // as in Node: still true while closing, false once closed
  assert.strictEqual(port2.hasRef(), true);
  await once(port2, 'close');
  assert.strictEqual(port2.hasRef(), false);
  port1.close();
});

test('e_messageerror_for_a_message_that_cannot_be_decoded', async () => {
  // A Float16Array view cannot be built on Node 20: the receiver fires messageerror
  // (the raw CBOR is sent through the internal fast post)
  const { port1, port2 } = new MessageChannel();
  const errors = [];
  const data = [];
  port2.on('messageerror', (e) => errors.push(e));
  port2.on('message', (m) => data.push(m));
  const native = require('../channel-messaging.node');
  const fast = native.fastApi();
  void fast;
  // a malformed message: the envelope only
  const bad = Uint8Array.from([0xd9, 0xcb, 0x01]);
  const ep = port1[Object.getOwnPropertySymbols(port1).find((s) => s.description === 'kState')].ep;
  fast.post(ep, bad, bad.length);
  port1.postMessage('next');
  await tick();
  await tick();
  await tick();
  assert.strictEqual(errors.length, 1);
  assert.strictEqual(errors[0].name, 'DataCloneError');
  assert.deepStrictEqual(data, ['next']);
  port1.close();
});

test('for_await_of_a_port_ends_at_close', async () => {
  const { port1, port2 } = new MessageChannel();
  for (let i = 0; i < 3; i++) port1.postMessage(i);
  port1.close();
  const got = [];
  for await (const m of port2) got.push(m);
  assert.deepStrictEqual(got, [0, 1, 2]);
});

test('flow_control_limits_and_stats', () => {
  const { port1, port2 } = new MessageChannel();
  port2.setLimits({ maxMessages: 2 });
  assert.strictEqual(port1.isReady(), true);
  port1.postMessage(1);
  port1.postMessage(2);
  assert.strictEqual(port1.isReady(), false);
  const s = port2.stats();
  assert.strictEqual(s.queuedMessages, 2);
  assert.ok(s.queuedBytes > 0);
  assert.deepStrictEqual(s.limits, { maxMessages: 2, maxBytes: null });
  receiveMessageOnPort(port2);
  receiveMessageOnPort(port2);
  assert.strictEqual(port1.isReady(), true);
  assert.throws(() => port2.setLimits({ maxMessages: -1 }), { code: 'ERR_OUT_OF_RANGE' });
  port1.close();
});

test('h_port_collection_broadcasts_and_forgets_closed_ports', () => {
  const coll = new PortCollection();
  const channels = [new MessageChannel(), new MessageChannel(), new MessageChannel()];
  for (const c of channels) coll.add(c.port1);
  coll.add(channels[0].port1); // duplicate ignored
  assert.strictEqual(coll.size, 3);
  assert.strictEqual(coll.postMessage({ hello: 'all' }), 3);
  for (const c of channels) assert.deepStrictEqual(receiveMessageOnPort(c.port2).message, { hello: 'all' });
  channels[1].port1.close();
  const seen = [];
  coll.iterate((p) => seen.push(p));
  assert.deepStrictEqual(seen, [channels[0].port1, channels[2].port1]);
  coll.remove(channels[0].port1);
  assert.strictEqual(coll.postMessage(1), 1);
  coll.clear();
  assert.strictEqual(coll.size, 0);
  for (const c of channels) c.port1.close();
});

test('port_collection_posts_through_every_encoder_path_in_order', () => {
  // the fast path (the registered post buffer), a message with side-table buffers (the
  // napi path), and a post made from inside an encode (a getter: a nested encoder)
  const coll = new PortCollection();
  const channels = [new MessageChannel(), new MessageChannel()];
  for (const c of channels) coll.add(c.port1);
  const big = 'x'.repeat(200_000); // grows the outermost encoder's buffer
  let nested = -1;
  const withGetter = {
    get inner() {
      nested = coll.postMessage({ nested: true });
      return 'outer';
    },
  };
  assert.strictEqual(coll.postMessage({ seq: 0 }), 2);
  assert.strictEqual(coll.postMessage(new Uint8Array([1, 2, 3])), 2);
  assert.strictEqual(coll.postMessage(withGetter), 2);
  assert.strictEqual(nested, 2);
  assert.strictEqual(coll.postMessage(big), 2);
  assert.strictEqual(coll.postMessage({ seq: 1 }), 2);
  for (const c of channels) {
    const got = [];
    for (let r; (r = receiveMessageOnPort(c.port2)) !== undefined; ) got.push(r.message);
    assert.deepStrictEqual(got, [
      { seq: 0 }, new Uint8Array([1, 2, 3]), { nested: true }, { inner: 'outer' }, big, { seq: 1 },
    ]);
  }
  coll.clear();
  assert.strictEqual(coll.postMessage('nobody'), 0);
  for (const c of channels) c.port1.close();
});

test('receiveMessageOnPort_validates_its_argument', () => {
  assert.throws(() => receiveMessageOnPort({}), { code: 'ERR_INVALID_ARG_TYPE' });
});

test('eventtarget_semantics: once, signal, handleEvent, dedupe, dispatchEvent', async () => {
  const { port1, port2 } = new MessageChannel();
  const calls = [];
  const f = (e) => calls.push(['f', e.data]);
  port2.addEventListener('message', f);
  port2.addEventListener('message', f); // deduplicated
  port2.addEventListener('message', { handleEvent: (e) => calls.push(['h', e.data]) }, { once: true });
  const ac = new AbortController();
  port2.addEventListener('message', (e) => calls.push(['s', e.data]), { signal: ac.signal });
  port1.postMessage(1);
  await tick();
  await tick();
  ac.abort();
  port1.postMessage(2);
  await tick();
  await tick();
  assert.deepStrictEqual(calls, [['f', 1], ['h', 1], ['s', 1], ['f', 2]]);
  const ev = new MessageEvent('message', { data: 3 });
  assert.strictEqual(port2.dispatchEvent(ev), true);
  assert.deepStrictEqual(calls.at(-1), ['f', 3]);
  port1.close();
});

/**
 * Runs `body` while a timer keeps the event loop alive: as with Node's own ports, a port
 * without a 'message' listener does not (awaiting its 'close' alone would end the test).
 */
async function keepingAlive(body) {
  const keep = setInterval(() => {}, 1000);
  try {
    await body();
  } finally {
    clearInterval(keep);
  }
}

test('d_close_fires_on_a_never_started_port_with_only_a_close_listener', () => keepingAlive(async () => {
  const { port1, port2 } = new MessageChannel();
  let closes = 0;
  port2.on('close', () => closes++);
  port1.close();
  await once(port2, 'close');
  await tick();
  assert.strictEqual(closes, 1);
  assert.strictEqual(port2.hasRef(), false);
  // a listener added after the partner closed still gets it, once (Node's port would
  // already have fired it to nobody, when the event loop got to it)
  const c = new MessageChannel();
  c.port1.close();
  await tick();
  const late = new Promise((resolve) => { c.port2.onclose = resolve; });
  await late;
}));

test('d_close_on_an_unstarted_port_waits_for_queued_messages_as_in_node', () => keepingAlive(async () => {
  const { port1, port2 } = new MessageChannel();
  const events = [];
  port2.on('close', () => events.push('close'));
  port1.postMessage('a');
  port1.close();
  await tick();
  await tick();
  assert.deepStrictEqual(events, [], 'a queued message comes before the close');
  assert.deepStrictEqual(receiveMessageOnPort(port2), { message: 'a' });
  assert.strictEqual(receiveMessageOnPort(port2), undefined);
  assert.deepStrictEqual(events, [], "'close' is asynchronous");
  await tick();
  assert.deepStrictEqual(events, ['close']);
}));

test('d_close_on_an_unstarted_port_when_the_partner_is_dropped_in_an_undelivered_message', () => keepingAlive(async () => {
  const carrier = new MessageChannel();
  const { port1, port2 } = new MessageChannel();
  const closed = once(port2, 'close');
  carrier.port1.postMessage(port1, [port1]);
  carrier.port2.close(); // the message carrying port1 is never received
  carrier.port1.close();
  await closed;
}));

test('ready_resolves_at_once_without_limits_and_after_the_partner_drains', async () => {
  const { port1, port2 } = new MessageChannel();
  assert.strictEqual(port1.isReady(), true);
  await port1.ready();
  port2.setLimits({ maxMessages: 2 });
  port1.postMessage(1);
  port1.postMessage(2);
  assert.strictEqual(port1.isReady(), false);
  let resolved = false;
  const both = Promise.all([port1.ready(), port1.ready()]).then(() => { resolved = true; });
  await tick();
  await tick();
  assert.strictEqual(resolved, false, 'still full');
  assert.deepStrictEqual(receiveMessageOnPort(port2), { message: 1 });
  await both;
  assert.strictEqual(port1.isReady(), true);
  port1.close();
});

test('ready_resolves_when_either_end_closes', () => keepingAlive(async () => {
  for (const closer of ['partner', 'self']) {
    const { port1, port2 } = new MessageChannel();
    port2.setLimits({ maxMessages: 1 });
    port1.postMessage(1);
    const ready = port1.ready();
    if (closer === 'partner') port2.close();
    else port1.close();
    await ready;
  }
}));

test('ready_gives_backpressure_to_a_sender_loop', async () => {
  const { port1, port2 } = new MessageChannel();
  port2.setLimits({ maxMessages: 8 });
  const got = [];
  let maxQueued = 0;
  port2.on('message', (m) => {
    maxQueued = Math.max(maxQueued, port2.stats().queuedMessages + 1);
    got.push(m);
  });
  for (let i = 0; i < 200; i++) {
    await port1.ready();
    port1.postMessage(i);
  }
  while (got.length < 200) await tick();
  assert.deepStrictEqual(got, [...Array(200).keys()]);
  assert.ok(maxQueued <= 8, `at most the limit queued (${maxQueued})`);
  port1.close();
});

test('every MessagePort method called on another object throws Illegal invocation', () => {
  const methods = ['postMessage', 'start', 'close', 'ref', 'unref', 'hasRef', 'exportHandle', 'setLimits', 'isReady', 'stats', 'ready'];
  for (const name of methods) {
    for (const self of [{}, null, undefined, new EventTarget()]) {
      assert.throws(() => MessagePort.prototype[name].call(self, 1), { name: 'TypeError', message: 'Illegal invocation' }, name);
    }
  }
});
