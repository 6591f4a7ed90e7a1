'use strict';
// Ports across worker_threads Workers: single-use handles, ping-pong, ports moving
// between Workers with messages in flight.
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { once } = require('node:events');
const { Worker } = require('node:worker_threads');
const { MessageChannel, MessagePort } = require('..');

const echo = path.join(__dirname, 'fixtures', 'worker-echo.js');

async function startEcho() {
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(echo, { workerData: { handle: port2.exportHandle() } });
  await once(worker, 'message');
  return { port: port1, worker };
}

test('ping-pong with a Worker', async () => {
  const { port, worker } = await startEcho();
  for (let i = 0; i < 200; i++) {
    port.postMessage({ i, data: new Uint8Array([i & 255]) });
    const [m] = await once(port, 'message');
    assert.strictEqual(m.i, i);
    assert.strictEqual(m.data[0], i & 255);
  }
  port.close();
  await worker.terminate();
});

test('b5_export_handle_is_single_use: importing twice, stale or forged handles throw', async () => {
  const { port, worker } = await startEcho();
  port.postMessage('import-again');
  const [code] = await once(port, 'message');
  assert.strictEqual(code, 'ERR_INVALID_PORT_HANDLE');
  assert.throws(() => MessagePort.importHandle(12345n), { code: 'ERR_INVALID_PORT_HANDLE' });
  assert.throws(() => MessagePort.importHandle(-1n), { code: 'ERR_INVALID_PORT_HANDLE' });
  assert.throws(() => MessagePort.importHandle(1 << 40), { code: 'ERR_INVALID_ARG_TYPE' });
  port.close();
  await worker.terminate();
});

test('export_handle_detaches: the exported port is inert, closed ports cannot be exported', () => {
  const { port1, port2 } = new MessageChannel();
  const h = port2.exportHandle();
  assert.throws(() => port2.exportHandle(), (e) => e.name === 'DataCloneError');
  port1.postMessage('waits for the new owner');
  const adopted = MessagePort.importHandle(h);
  const { receiveMessageOnPort } = require('..');
  assert.strictEqual(receiveMessageOnPort(adopted).message, 'waits for the new owner');
  adopted.close();
  const c = new MessageChannel();
  c.port1.close();
  assert.throws(() => c.port1.exportHandle(), (e) => e.name === 'DataCloneError');
});

test('c10_ports_transferred_between_workers_with_messages_in_flight', async () => {
  const a = await startEcho();
  const b = await startEcho();
  const { port1: mine, port2: theirs } = new MessageChannel();
  // queue messages on `theirs` before and while it travels: main -> A -> (echo) ...
  mine.postMessage('first');
  a.port.postMessage({ forward: theirs }, [theirs]);
  for (let i = 0; i < 100; i++) mine.postMessage(i);
  mine.postMessage('last');
  const got = [];
  a.port.on('message', (m) => got.push(m.x));
  while (got.at(-1) !== 'last') await new Promise((r) => setTimeout(r, 5));
  assert.deepStrictEqual(got, ['first', ...Array(100).keys(), 'last']);
  // the Worker closed the moved port: its partner here sees 'close' (once started)
  mine.on('message', () => {});
  await once(mine, 'close');
  // and one more hop through a second Worker
  const c = new MessageChannel();
  b.port.postMessage({ forward: c.port2 }, [c.port2]);
  c.port1.postMessage('hop');
  c.port1.postMessage('last');
  const got2 = [];
  b.port.on('message', (m) => got2.push(m.x));
  while (got2.at(-1) !== 'last') await new Promise((r) => setTimeout(r, 5));
  assert.deepStrictEqual(got2, ['hop', 'last']);
  a.port.close();
  b.port.close();
  await a.worker.terminate();
  await b.worker.terminate();
});

test('terminating a Worker with undelivered messages neither hangs nor crashes (f7)', async () => {
  const { port, worker } = await startEcho();
  for (let i = 0; i < 10000; i++) port.postMessage(i);
  await worker.terminate();
  port.close();
});
