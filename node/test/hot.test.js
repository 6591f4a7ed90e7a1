'use strict';
// Hot-port polling (index.js drainStep): a port whose traffic is hot polls its queue
// briefly before returning to the event loop. It must neither lose nor reorder messages,
// nor keep timers and I/O from running.
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { once } = require('node:events');
const { Worker } = require('node:worker_threads');
const { MessageChannel } = require('..');

async function startEcho() {
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(path.join(__dirname, 'fixtures', 'worker-echo.js'), {
    workerData: { handle: port2.exportHandle() },
  });
  await once(worker, 'message');
  return { port: port1, worker };
}

test('a hot ping-pong with a Worker keeps order and lets timers fire', async () => {
  const { port, worker } = await startEcho();
  let timerFired = false;
  let roundTrips = 0;
  const started = Date.now();
  await new Promise((resolve, reject) => {
    setTimeout(() => {
      timerFired = true;
    }, 5);
    port.on('message', (m) => {
      if (m.seq !== roundTrips) reject(new Error(`expected ${roundTrips}, got ${m.seq}`));
      roundTrips++;
      // keep going until the timer has fired (and a little beyond), or fail after 10 s
      if ((timerFired && roundTrips > 2000) || Date.now() - started > 10_000) resolve();
      else port.postMessage({ seq: roundTrips });
    });
    port.postMessage({ seq: 0 });
  });
  assert.ok(timerFired, 'setTimeout fired while the ping-pong ran');
  assert.ok(roundTrips > 2000);
  port.close();
  await worker.terminate();
});

test('same-thread ping-pong (the partner can never answer during a poll) completes', async () => {
  const { port1, port2 } = new MessageChannel();
  port2.on('message', (m) => port2.postMessage(m));
  const n = 5000;
  try {
    const last = await new Promise((resolve) => {
      port1.on('message', (m) => (m >= n ? resolve(m) : port1.postMessage(m + 1)));
      port1.postMessage(0);
    });
    assert.strictEqual(last, n);
  } finally {
    port1.close();
  }
});

test('bursts with pauses between them arrive whole and in order', async () => {
  const { port, worker } = await startEcho();
  const got = [];
  port.on('message', (m) => got.push(m));
  let next = 0;
  for (let burst = 0; burst < 20; burst++) {
    for (let i = 0; i < 50; i++) port.postMessage(next++);
    await new Promise((resolve) => setTimeout(resolve, burst % 3));
  }
  while (got.length < next) await new Promise((resolve) => setTimeout(resolve, 1));
  assert.deepStrictEqual(got, Array.from({ length: next }, (_, i) => i));
  port.close();
  await worker.terminate();
});

test('a hot port wakes for a message that comes after polling gave up, and sees close', async () => {
  // while it polls, a hot port leaves its wake-up hook disarmed; the poll that gives up
  // re-arms it, so a message arriving later still wakes the port
  const { port, worker } = await startEcho();
  let n = 0;
  const next = () => new Promise((resolve) => port.once('message', resolve));
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 300; i++) {
      const reply = next();
      port.postMessage({ seq: n });
      assert.strictEqual((await reply).seq, n);
      n++;
    }
    await new Promise((resolve) => setTimeout(resolve, 20)); // well past any poll
  }
  const closed = once(port, 'close');
  port.on('message', () => {}); // keep receiving: the end of the queue fires 'close'
  await worker.terminate(); // the Worker's port goes away: the partner ends
  await closed;
});
