// Where a W4 run's CPU goes, thread by thread: the W4 workload (one sender, four Workers
// each receiving every message of a BroadcastChannel) with channel-messaging's
// BroadcastChannel or Node's, reporting per-thread CPU time (Linux: the first field of
// /proc/thread-self/schedstat, in ns):
//
// - each receiving thread's CPU from its first message to message k, for k = 1,000,
//   10,000, 50,000, ... (how the cost per message falls as V8 optimizes that thread's
//   code; node/README.md, "The first messages on a thread are slower");
// - the sender's CPU while posting;
// - every other thread of the process (V8's compiler and GC helpers) over the run.
//
// Usage: node bench/node/warmup.mjs [cm|node] [n] [runs]
// Not a benchmark row (make bench times W4 itself): a tool for looking into one.

import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as workerThreads from 'node:worker_threads';
import { createRequire } from 'node:module';
import { readFileSync, readdirSync, readlinkSync, existsSync } from 'node:fs';
import { checkTick, now } from './workload.mjs';

const RECEIVERS = 4;
const MARKS = [1000, 10000, 50000, 100000, 200000, 500000, 1000000];

/** This thread's CPU time so far, in ms. */
function threadCpu() {
  return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e6;
}

/** CPU time so far of every live thread of the process, in ms, by thread id. */
function allThreadsCpu() {
  const out = new Map();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      out.set(tid, Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6);
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

const threadId = () => readlinkSync('/proc/thread-self').split('/').pop();

function channelClass(impl) {
  if (impl === 'node') return workerThreads.BroadcastChannel;
  const require = createRequire(import.meta.url);
  const root = new URL('../../', import.meta.url);
  if (!existsSync(new URL('node/channel-messaging.node', root))) {
    throw new Error('build the addon first: make node');
  }
  return require('../../node/index.js').BroadcastChannel;
}

function receiver() {
  const { impl, n, name } = workerData;
  const bc = new (channelClass(impl))(name);
  const marks = MARKS.filter((k) => k < n).concat([n]);
  const cpu = [];
  let count = 0;
  let first = 0;
  bc.onmessage = (e) => {
    checkTick(e.data, count);
    if (count === 0) first = threadCpu();
    count += 1;
    if (count === marks[cpu.length]) cpu.push(threadCpu() - first);
    if (count === n) {
      parentPort.postMessage({ cpu, marks, tid: threadId(), end: now() });
      bc.close();
    }
  };
  parentPort.postMessage('ready');
}

async function run(impl, n) {
  const name = `warmup-${process.pid}-${Math.random()}`;
  const workers = [];
  for (let k = 0; k < RECEIVERS; k += 1) {
    workers.push(new Worker(new URL(import.meta.url), { workerData: { impl, n, name } }));
  }
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once('message', resolve))));
  const results = workers.map((w) => new Promise((resolve) => w.once('message', resolve)));
  const bc = new (channelClass(impl))(name);
  const before = allThreadsCpu();
  const sender0 = threadCpu();
  const start = now();
  for (let i = 0; i < n; i += 1) bc.postMessage({ seq: i, name: 'tick' });
  const sender = threadCpu() - sender0;
  const got = await Promise.all(results);
  const after = allThreadsCpu();
  bc.close();
  for (const w of workers) await w.terminate();
  const end = got.reduce((a, r) => (r.end > a ? r.end : a), 0n);
  const skip = new Set([threadId(), ...got.map((r) => r.tid)]);
  let helpers = 0;
  for (const [tid, ms] of after) if (!skip.has(tid)) helpers += ms - (before.get(tid) ?? 0);
  return { secs: Number(end - start) / 1e9, sender, helpers, receivers: got };
}

async function main() {
  const [impl = 'cm', nText = '100000', runsText = '3'] = process.argv.slice(2);
  const n = Number.parseInt(nText.replaceAll('_', ''), 10);
  const runs = Number.parseInt(runsText, 10);
  if (!['cm', 'node'].includes(impl) || !(n > 0) || !(runs > 0)) {
    console.error('usage: node bench/node/warmup.mjs [cm|node] [n] [runs]');
    process.exit(2);
  }
  if (!existsSync('/proc/thread-self/schedstat')) {
    console.error('warmup.mjs reads per-thread CPU time from /proc/thread-self/schedstat (Linux)');
    process.exit(2);
  }
  for (let r = 0; r < runs; r += 1) {
    const res = await run(impl, n);
    const rate = (RECEIVERS * n) / res.secs;
    console.log(`${impl} n=${n}: ${(rate / 1e6).toFixed(2)} M delivered/s in ${(res.secs * 1e3).toFixed(0)} ms; ` +
      `CPU ms: sender ${res.sender.toFixed(0)}, compiler/GC threads ${res.helpers.toFixed(0)}`);
    for (const w of res.receivers) {
      let prevMark = 0;
      let prevCpu = 0;
      const steps = w.cpu.map((ms, i) => {
        const k = w.marks[i];
        const per = ((ms - prevCpu) * 1e3) / (k - prevMark); // µs per message in this step
        prevMark = k;
        prevCpu = ms;
        return `${k}: ${ms.toFixed(1)} ms (${per.toFixed(2)} µs/msg)`;
      });
      console.log(`  receiver CPU at message ${steps.join(', ')}`);
    }
  }
  process.exit(0);
}

if (isMainThread) {
  await main();
} else {
  receiver();
}
