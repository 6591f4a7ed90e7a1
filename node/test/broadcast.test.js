'use strict';
// BroadcastChannel (spec I) on one thread and across Workers.
const test = require('node:test');
const assert = require('node:assert');
const { once } = require('node:events');
const { Worker } = require('node:worker_threads');
const { BroadcastChannel } = require('..');
const { deliveryOrder } = require('./order.js');

test('i2_name_and_missing_argument', () => {
  assert.throws(() => new BroadcastChannel(), { code: 'ERR_MISSING_ARGS' });
  const b = new BroadcastChannel(123);
  assert.strictEqual(b.name, '123');
  b.close();
});

test('i3_no_self_delivery_others_in_order', async () => {
  const a = new BroadcastChannel('t1');
  const b = new BroadcastChannel('t1');
  const c = new BroadcastChannel('t1');
  const got = { a: [], b: [], c: [] };
  a.onmessage = (e) => got.a.push(e.data);
  b.onmessage = (e) => {
    assert.strictEqual(e.target, b);
    got.b.push(e.data);
  };
  c.on('message', (d) => got.c.push(d));
  a.postMessage({ n: 1 });
  a.postMessage({ n: 2 });
  await new Promise((r) => setTimeout(r, 20));
  assert.deepStrictEqual(got.a, []);
  assert.deepStrictEqual(got.b, [{ n: 1 }, { n: 2 }]);
  assert.deepStrictEqual(got.c, [{ n: 1 }, { n: 2 }]);
  a.close();
  b.close();
  c.close();
});

test('i3_closed_channel_throws_InvalidStateError_before_serialization', () => {
  const a = new BroadcastChannel('t2');
  a.close();
  a.close(); // idempotent
  assert.throws(() => a.postMessage(() => 1), (e) => e instanceof DOMException && e.name === 'InvalidStateError' && e.code === 11);
});

test('g8_uncloneable_data_is_a_DataCloneError', () => {
  const a = new BroadcastChannel('t3');
  assert.throws(() => a.postMessage(Symbol('x')), (e) => e.name === 'DataCloneError' && e.code === 25);
  a.close();
});

test('i_broadcast_reaches_workers', async () => {
  const code = `
    const { parentPort } = require('node:worker_threads');
    const { BroadcastChannel } = require(${JSON.stringify(require.resolve('..'))});
    const bc = new BroadcastChannel('t4');
    bc.onmessage = (e) => { parentPort.postMessage(e.data); bc.close(); };
    parentPort.postMessage('ready');`;
  const workers = [0, 1].map(() => new Worker(code, { eval: true }));
  await Promise.all(workers.map((w) => once(w, 'message')));
  const bc = new BroadcastChannel('t4');
  const replies = Promise.all(workers.map((w) => once(w, 'message')));
  // listen for 'exit' now: a Worker exits as soon as it replied (listening later races)
  const exits = Promise.all(workers.map((w) => once(w, 'exit')));
  bc.postMessage({ hello: [1, 2n] });
  for (const [m] of await replies) assert.deepStrictEqual(m, { hello: [1, 2n] });
  bc.close();
  await exits;
});

// Run on Node's own BroadcastChannel too: the orders must match.
function broadcastPair(Channel, name) {
  return (onData) => {
    const sender = new Channel(name);
    const receiver = new Channel(name);
    receiver.onmessage = (e) => onData(e.data);
    return {
      post: (i) => sender.postMessage(i),
      close: () => {
        sender.close();
        receiver.close();
      },
    };
  };
}

test('a BroadcastChannel runs what each handler queued before the next message, as Node does', async () => {
  const ours = await deliveryOrder(broadcastPair(BroadcastChannel, 'order-ours'), 100);
  assert.deepStrictEqual(ours.slice(0, 6), ['m0', 't0', 'p0', 'tp0', 'pp0', 'pt0']);
  const { BroadcastChannel: NodeBroadcastChannel } = require('node:worker_threads');
  assert.deepStrictEqual(ours, await deliveryOrder(broadcastPair(NodeBroadcastChannel, 'order-node'), 100));
});

test('BroadcastChannel methods called on another object throw ERR_INVALID_THIS, as in Node', () => {
  const P = BroadcastChannel.prototype;
  const calls = [
    ['postMessage', (self) => P.postMessage.call(self, 1)],
    ['close', (self) => P.close.call(self)],
    ['ref', (self) => P.ref.call(self)],
    ['unref', (self) => P.unref.call(self)],
    ['name', (self) => Object.getOwnPropertyDescriptor(P, 'name').get.call(self)],
  ];
  for (const [name, call] of calls) {
    for (const self of [{}, null, Object.create(P), new EventTarget()]) {
      assert.throws(() => call(self), { name: 'TypeError', code: 'ERR_INVALID_THIS' }, name);
    }
  }
});
