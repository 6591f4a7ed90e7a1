// channel-messaging (Node) rows: the workloads of bench/node/peers.mjs (same messages,
// same checks, same timing: first send to last receive, process.hrtime.bigint()), with
// channel-messaging's MessageChannel / BroadcastChannel between the main thread and
// Workers. Ports reach the Workers as single-use handles (port.exportHandle() in the
// main thread, MessagePort.importHandle() in the Worker).
//
// Usage: node --expose-gc bench/node/channel_messaging_rows.mjs <w1|w2|w3a|w3b|w4|bc-w4|w5|poll-w1|poll-w2> <n>
// Prints one line `RESULT {json}`. The poll-* rows receive with receiveMessageOnPort in a
// spin loop on both sides, as peers.mjs' mc-poll rows do with Node's.

import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { serialize } from 'node:v8';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { W3_BYTES, checkBuffer, checkTick, now, report, stamp, warmup } from './workload.mjs';

const require = createRequire(import.meta.url);
const root = new URL('../../', import.meta.url);
if (isMainThread && !existsSync(new URL('node/channel-messaging.node', root))) {
  // the addon is a build output (`make node`); build it once, quietly, if missing
  execFileSync('make', ['--no-print-directory', 'node'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
}
const cm = require('../../node/index.js');

// ---------------------------------------------------------------- worker side

function workerMain() {
  const { role, n, handle, name, kind } = workerData;
  // a buffer receiver gives each buffer's memory back once checked (releaseBuffer: the
  // documented way to recycle zero-copy memory without waiting for the GC)
  const check = kind === 'buffer'
    ? (ab, seq) => {
      checkBuffer(ab, seq);
      cm.releaseBuffer(ab);
    }
    : checkTick;
  const done = () => parentPort.postMessage({ end: now() });
  switch (role) {
    case 'recv-events': {
      const port = cm.MessagePort.importHandle(handle);
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
      const port = cm.MessagePort.importHandle(handle);
      parentPort.postMessage('ready');
      for (let count = 0; count < n; ) {
        const r = cm.receiveMessageOnPort(port);
        if (r !== undefined) {
          check(r.message, count);
          count += 1;
        }
      }
      done();
      break;
    }
    case 'echo-poll': {
      const port = cm.MessagePort.importHandle(handle);
      parentPort.postMessage('ready');
      for (let count = 0; count < n; ) {
        const r = cm.receiveMessageOnPort(port);
        if (r !== undefined) {
          port.postMessage(r.message);
          count += 1;
        }
      }
      break;
    }
    case 'echo-events': {
      const port = cm.MessagePort.importHandle(handle);
      port.on('message', (m) => port.postMessage(m));
      parentPort.postMessage('ready');
      break;
    }
    case 'bc-recv': {
      const bc = new cm.BroadcastChannel(name);
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

function startWorker(data) {
  const worker = new Worker(new URL(import.meta.url), { workerData: data });
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

async function timedReceivers(n, kind, count, sendAll, role = 'recv-events') {
  const ports = [];
  const workers = [];
  for (let k = 0; k < count; k += 1) {
    const { port1, port2 } = new cm.MessageChannel();
    ports.push(port1);
    workers.push(startWorker({ role, n, kind, handle: port2.exportHandle() }));
  }
  await Promise.all(workers.map((w) => w.ready));
  const start = now();
  sendAll(ports);
  const ends = await Promise.all(workers.map((w) => w.ended));
  const end = ends.reduce((a, b) => (a > b ? a : b));
  for (const w of workers) await w.worker.terminate();
  return Number(end - start) / 1e9;
}

async function w1(n, poll = false) {
  const secs = await timedReceivers(n, 'tick', 1, ([port]) => {
    for (let i = 0; i < n; i += 1) port.postMessage({ seq: i, name: 'tick' });
  }, poll ? 'recv-poll' : 'recv-events');
  report(n / secs, 'msg/s', { n, secs });
}

async function w2(n, poll = false) {
  const { port1, port2 } = new cm.MessageChannel();
  const total = n + warmup(n);
  const w = startWorker({ role: poll ? 'echo-poll' : 'echo-events', n: total, handle: port2.exportHandle() });
  await w.ready;
  const samples = new Float64Array(n);
  if (poll) {
    for (let i = 0; i < total; i += 1) {
      const t0 = now();
      port1.postMessage({ seq: i, name: 'tick' });
      while (cm.receiveMessageOnPort(port1) === undefined);
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
  port1.close();
  await w.worker.terminate();
  samples.sort();
  const pick = (q) => samples[Math.min(Math.max(Math.ceil(n * q), 1), n) - 1] / 1000;
  const mean = samples.reduce((a, b) => a + b, 0) / n / 1000;
  report(pick(0.5), 'us', { p50: pick(0.5), p99: pick(0.99), mean, max: samples[n - 1] / 1000, n });
}

async function w3(n, transfer) {
  const secs = await timedReceivers(n, 'buffer', 1, ([port]) => {
    const src = new ArrayBuffer(W3_BYTES);
    new Uint8Array(src).forEach((_, i, a) => (a[i] = i & 255));
    for (let i = 0; i < n; i += 1) {
      if (transfer) {
        // the documented zero-copy way: a buffer whose memory channel-messaging owns
        // (allocBufferUnsafe: overwritten whole just below) moves without a copy
        const ab = cm.allocBufferUnsafe(W3_BYTES);
        new Uint8Array(ab).fill(i & 255);
        stamp(ab, i);
        port.postMessage(ab, [ab]);
      } else {
        stamp(src, i);
        port.postMessage(src);
      }
    }
  });
  report((n * W3_BYTES) / secs / 1e6, 'MB/s', { n, secs });
}

async function w4(n) {
  // one sender, four Workers: a PortCollection encodes each message once and queues it
  // on every member port (each Worker holds the other end, receiving 'message' events)
  const receivers = 4;
  const collection = new cm.PortCollection();
  const secs = await timedReceivers(n, 'tick', receivers, (ports) => {
    for (const p of ports) collection.add(p);
    for (let i = 0; i < n; i += 1) collection.postMessage({ seq: i, name: 'tick' });
  });
  report((receivers * n) / secs, 'msg/s', { n: receivers * n, secs });
}

async function w4Broadcast(n) {
  const receivers = 4;
  const name = `bench-w4-${process.pid}`;
  const workers = [];
  for (let k = 0; k < receivers; k += 1) workers.push(startWorker({ role: 'bc-recv', n, name }));
  await Promise.all(workers.map((w) => w.ready));
  const bc = new cm.BroadcastChannel(name);
  const start = now();
  for (let i = 0; i < n; i += 1) bc.postMessage({ seq: i, name: 'tick' });
  const ends = await Promise.all(workers.map((w) => w.ended));
  const end = ends.reduce((a, b) => (a > b ? a : b));
  bc.close();
  for (const w of workers) await w.worker.terminate();
  const secs = Number(end - start) / 1e9;
  report((receivers * n) / secs, 'msg/s', { n: receivers * n, secs });
}

function w5(n) {
  const { port1, port2 } = new cm.MessageChannel();
  const gc = globalThis.gc ?? (() => {});
  gc();
  const before = process.memoryUsage().rss;
  for (let i = 0; i < n; i += 1) port1.postMessage({ seq: i, name: 'tick' });
  gc();
  const after = process.memoryUsage().rss;
  // the same payload measure as the peer row (V8's serializer), for a like-for-like overhead
  const payload = serialize({ seq: n - 1, name: 'tick' }).length;
  const per = Math.max(0, after - before) / n;
  report(per, 'B/msg', { payload, overhead: per - payload, n, rss_before: before, rss_after: after });
  port2.close();
}

async function main() {
  const [workload, nText] = process.argv.slice(2);
  const n = Number.parseInt((nText ?? '').replaceAll('_', ''), 10);
  const table = {
    w1: (k) => w1(k),
    w2: (k) => w2(k),
    w3a: (k) => w3(k, false),
    w3b: (k) => w3(k, true),
    w4,
    'bc-w4': w4Broadcast,
    w5,
    'poll-w1': (k) => w1(k, true),
    'poll-w2': (k) => w2(k, true),
  };
  const run = table[workload];
  if (!run || !(n > 0)) {
    console.error('usage: node --expose-gc bench/node/channel_messaging_rows.mjs <w1|w2|w3a|w3b|w4|bc-w4|w5|poll-w1|poll-w2> <n>');
    process.exit(2);
  }
  await run(n);
  process.exit(0);
}

if (isMainThread) {
  await main();
} else {
  workerMain();
}
