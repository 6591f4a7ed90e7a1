// Node peer rows: worker_threads MessageChannel between the main thread and a Worker,
// received with 'message' events (mc-events) or by polling with receiveMessageOnPort
// (mc-poll), and BroadcastChannel (broadcast, W4 only).
//
// Usage: node --expose-gc bench/node/peers.mjs <mc-events|mc-poll|broadcast> <workload> <n>
//
// The main thread sends; Workers receive (or echo, for W2). Prints one line
// `RESULT {json}` (fields as in bench/src/lib.rs). Times come from
// process.hrtime.bigint(), one monotonic clock shared by all threads of the process.

import {
  BroadcastChannel,
  MessageChannel,
  Worker,
  isMainThread,
  parentPort,
  receiveMessageOnPort,
  workerData,
} from 'node:worker_threads';
import { serialize } from 'node:v8';
import { W3_BYTES, checkBuffer, checkTick, now, report, stamp, warmup } from './workload.mjs';

// ---------------------------------------------------------------- worker side

function workerMain() {
  const { role, n, port, name, kind } = workerData;
  const check = kind === 'buffer' ? checkBuffer : checkTick;
  const done = () => parentPort.postMessage({ end: now() });
  switch (role) {
    case 'recv-events': {
      let count = 0;
      port.on('message', (m) => {
        check(m, count);
        count += 1;
        if (count === n) {
          done();
          port.close();
        }
      });
      parentPort.postMessage('ready');
      break;
    }
    case 'recv-poll': {
      parentPort.postMessage('ready');
      for (let count = 0; count < n; ) {
        const r = receiveMessageOnPort(port);
        if (r !== undefined) {
          check(r.message, count);
          count += 1;
        }
      }
      done();
      break;
    }
    case 'echo-events':
      port.on('message', (m) => port.postMessage(m));
      parentPort.postMessage('ready');
      break;
    case 'echo-poll': {
      parentPort.postMessage('ready');
      for (let count = 0; count < n; ) {
        const r = receiveMessageOnPort(port);
        if (r !== undefined) {
          port.postMessage(r.message);
          count += 1;
        }
      }
      break;
    }
    case 'bc-recv': {
      const bc = new BroadcastChannel(name);
      let count = 0;
      bc.onmessage = (e) => {
        checkTick(e.data, count);
        count += 1;
        if (count === n) {
          done();
          bc.close();
        }
      };
      parentPort.postMessage('ready');
      break;
    }
    default:
      throw new Error(`unknown role ${role}`);
  }
}

// ------------------------------------------------------------------ main side

/** Starts a Worker running `role` and resolves once it says it is ready. */
function startWorker(data, transferList = []) {
  const worker = new Worker(new URL(import.meta.url), { workerData: data, transferList });
  worker.on('error', (e) => {
    console.error(e);
    process.exit(1);
  });
  const ready = new Promise((resolve) => worker.once('message', resolve));
  const ended = ready.then(
    () => new Promise((resolve) => worker.once('message', (m) => resolve(m.end))),
  );
  return { worker, ready, ended };
}

/** One receiving Worker per port; sends with `sendAll`; first send to last receive. */
async function timedReceivers(role, n, kind, count, sendAll) {
  const channels = [];
  const workers = [];
  for (let k = 0; k < count; k += 1) {
    const { port1, port2 } = new MessageChannel();
    channels.push(port1);
    workers.push(startWorker({ role, n, kind, port: port2 }, [port2]));
  }
  await Promise.all(workers.map((w) => w.ready));
  const start = now();
  sendAll(channels);
  const ends = await Promise.all(workers.map((w) => w.ended));
  const end = ends.reduce((a, b) => (a > b ? a : b));
  for (const w of workers) await w.worker.terminate();
  return Number(end - start) / 1e9;
}

function sendTicks(n) {
  return ([port]) => {
    for (let i = 0; i < n; i += 1) port.postMessage({ seq: i, name: 'tick' });
  };
}

async function w1(mech, n) {
  const role = mech === 'mc-poll' ? 'recv-poll' : 'recv-events';
  const secs = await timedReceivers(role, n, 'tick', 1, sendTicks(n));
  report(n / secs, 'msg/s', { n, secs });
}

async function w2(mech, n) {
  const { port1, port2 } = new MessageChannel();
  const total = n + warmup(n);
  const poll = mech === 'mc-poll';
  const w = startWorker({ role: poll ? 'echo-poll' : 'echo-events', n: total, port: port2 }, [
    port2,
  ]);
  await w.ready;
  const samples = new Float64Array(n);
  if (poll) {
    for (let i = 0; i < total; i += 1) {
      const t0 = now();
      port1.postMessage({ seq: i, name: 'tick' });
      while (receiveMessageOnPort(port1) === undefined);
      if (i >= total - n) samples[i - (total - n)] = Number(now() - t0);
    }
  } else {
    await new Promise((resolve) => {
      let i = 0;
      let t0 = now();
      port1.on('message', () => {
        if (i >= total - n) samples[i - (total - n)] = Number(now() - t0);
        i += 1;
        if (i === total) {
          resolve();
          return;
        }
        t0 = now();
        port1.postMessage({ seq: i, name: 'tick' });
      });
      port1.postMessage({ seq: 0, name: 'tick' });
    });
  }
  await w.worker.terminate();
  samples.sort();
  const pick = (q) => samples[Math.min(Math.max(Math.ceil(n * q), 1), n) - 1] / 1000;
  const mean = samples.reduce((a, b) => a + b, 0) / n / 1000;
  report(pick(0.5), 'us', { p50: pick(0.5), p99: pick(0.99), mean, max: samples[n - 1] / 1000, n });
}

async function w3(mech, n, transfer) {
  const role = mech === 'mc-poll' ? 'recv-poll' : 'recv-events';
  const secs = await timedReceivers(role, n, 'buffer', 1, ([port]) => {
    const src = new ArrayBuffer(W3_BYTES);
    new Uint8Array(src).forEach((_, i, a) => (a[i] = i & 255));
    for (let i = 0; i < n; i += 1) {
      if (transfer) {
        // a fresh buffer made by the sender, transferred (detached here)
        const ab = new ArrayBuffer(W3_BYTES);
        new Uint8Array(ab).fill(i & 255);
        stamp(ab, i);
        port.postMessage(ab, [ab]);
      } else {
        stamp(src, i);
        port.postMessage(src); // structured clone copies it
      }
    }
  });
  report((n * W3_BYTES) / secs / 1e6, 'MB/s', { n, secs });
}

async function w4(mech, n) {
  const receivers = 4;
  let secs;
  if (mech === 'broadcast') {
    const name = `bench-w4-${process.pid}`;
    const workers = [];
    for (let k = 0; k < receivers; k += 1) workers.push(startWorker({ role: 'bc-recv', n, name }));
    await Promise.all(workers.map((w) => w.ready));
    const bc = new BroadcastChannel(name);
    const start = now();
    for (let i = 0; i < n; i += 1) bc.postMessage({ seq: i, name: 'tick' });
    const ends = await Promise.all(workers.map((w) => w.ended));
    const end = ends.reduce((a, b) => (a > b ? a : b));
    bc.close();
    for (const w of workers) await w.worker.terminate();
    secs = Number(end - start) / 1e9;
  } else {
    const role = mech === 'mc-poll' ? 'recv-poll' : 'recv-events';
    secs = await timedReceivers(role, n, 'tick', receivers, (ports) => {
      for (let i = 0; i < n; i += 1) {
        const m = { seq: i, name: 'tick' };
        for (const p of ports) p.postMessage(m);
      }
    });
  }
  report((receivers * n) / secs, 'msg/s', { n: receivers * n, secs });
}

/** W5: messages posted to a port nobody reads (they queue at port2). */
function w5(n) {
  const { port1, port2 } = new MessageChannel();
  const gc = globalThis.gc ?? (() => {});
  gc();
  const before = process.memoryUsage().rss;
  for (let i = 0; i < n; i += 1) port1.postMessage({ seq: i, name: 'tick' });
  gc();
  const after = process.memoryUsage().rss;
  const payload = serialize({ seq: n - 1, name: 'tick' }).length;
  const per = Math.max(0, after - before) / n;
  report(per, 'B/msg', { payload, overhead: per - payload, n, rss_before: before, rss_after: after });
  port2.close();
}

async function main() {
  const [mech, workload, nText] = process.argv.slice(2);
  const n = Number.parseInt((nText ?? '').replaceAll('_', ''), 10);
  if (!mech || !workload || !(n > 0)) {
    console.error('usage: node --expose-gc bench/node/peers.mjs <mc-events|mc-poll|broadcast> <workload> <n>');
    process.exit(2);
  }
  const table = {
    'mc-events': { w1, w2, w3a: (m, k) => w3(m, k, false), w3b: (m, k) => w3(m, k, true), w4, w5: (m, k) => w5(k) },
    'mc-poll': { w1, w2, w3a: (m, k) => w3(m, k, false), w3b: (m, k) => w3(m, k, true) },
    broadcast: { w4 },
  };
  const run = table[mech]?.[workload];
  if (!run) {
    console.error(`mechanism ${mech} has no workload ${workload}`);
    process.exit(2);
  }
  await run(mech, n);
  process.exit(0);
}

if (isMainThread) {
  await main();
} else {
  workerMain();
}
