'use strict';
// SharedArrayBuffers are shared, not copied (spec G2): the receiver's SharedArrayBuffer
// is over the sender's memory, across Workers too. (Identity, views, growth and
// BroadcastChannel are also compared with Node's own in differential.test.js.)
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { once } = require('node:events');
const { execFileSync, spawnSync } = require('node:child_process');
const { Worker } = require('node:worker_threads');
const {
  MessageChannel,
  PortCollection,
  bufferPoolStats,
  receiveMessageOnPort,
} = require('..');

const sharing = bufferPoolStats().backend === 'v8';
const skip = sharing ? false : 'SharedArrayBuffers are shared only through V8\'s API';

require('node:v8').setFlagsFromString('--expose-gc');
const gc = require('node:vm').runInNewContext('gc');

test('G2: a Worker and the main thread meet through Atomics on a posted SharedArrayBuffer', { skip }, async () => {
  const { port1, port2 } = new MessageChannel();
  const source = `
    const { workerData } = require('node:worker_threads');
    const { MessagePort } = require(${JSON.stringify(path.join(__dirname, '..'))});
    const port = MessagePort.importHandle(workerData.handle);
    port.once('message', ({ sab, rounds }) => {
      const cell = new Int32Array(sab);
      // ping-pong through the memory alone: wait for the main thread's odd numbers,
      // answer with the next even one
      for (let i = 1; i < rounds; i += 2) {
        Atomics.wait(cell, 0, i - 1);
        Atomics.store(cell, 0, i + 1);
        Atomics.notify(cell, 0);
      }
      port.postMessage('done');
      port.close();
    });
  `;
  const worker = new Worker(source, { eval: true, workerData: { handle: port2.exportHandle() } });
  const sab = new SharedArrayBuffer(4);
  const cell = new Int32Array(sab);
  const rounds = 200;
  port1.postMessage({ sab, rounds });
  for (let i = 0; i < rounds; i += 2) {
    Atomics.store(cell, 0, i + 1);
    Atomics.notify(cell, 0);
    // ('not-equal' when the Worker answered before this thread began to wait)
    assert.notStrictEqual(Atomics.wait(cell, 0, i + 1, 10_000), 'timed-out', `round ${i}`);
    assert.strictEqual(Atomics.load(cell, 0), i + 2);
  }
  const [done] = await once(port1, 'message');
  assert.strictEqual(done, 'done');
  assert.strictEqual(Atomics.load(cell, 0), rounds);
  port1.close();
  await worker.terminate();
});

test('G2: a PortCollection hands every member the same memory', { skip }, () => {
  const coll = new PortCollection();
  const receivers = [];
  for (let i = 0; i < 3; i++) {
    const { port1, port2 } = new MessageChannel();
    coll.add(port1);
    receivers.push(port2);
  }
  const sab = new SharedArrayBuffer(3);
  assert.strictEqual(coll.postMessage(sab), 3);
  receivers.forEach((p, i) => {
    const got = receiveMessageOnPort(p).message;
    assert.ok(got instanceof SharedArrayBuffer);
    new Uint8Array(got)[i] = 10 + i;
  });
  assert.deepStrictEqual(Array.from(new Uint8Array(sab)), [10, 11, 12]);
  coll.clear();
  for (const p of receivers) p.close();
});

test('G2: the memory outlives the sender\'s buffer while a message holds it', { skip }, () => {
  const { port1, port2 } = new MessageChannel();
  const before = bufferPoolStats().shared;
  (() => {
    const sab = new SharedArrayBuffer(1 << 16);
    new Uint8Array(sab).fill(0x5a);
    port1.postMessage(sab);
  })();
  gc(); // the sender's SharedArrayBuffer object is gone; the message still holds the memory
  assert.strictEqual(bufferPoolStats().shared, before + 1);
  const got = receiveMessageOnPort(port2).message;
  assert.strictEqual(got.byteLength, 1 << 16);
  assert.ok(new Uint8Array(got).every((b) => b === 0x5a));
  assert.strictEqual(bufferPoolStats().shared, before, 'taking the message gives the memory back');
  port1.close();
  port2.close();
});

test('G2: messages dropped unreceived give the memory back', { skip }, async () => {
  const before = bufferPoolStats().shared;
  const { port1, port2 } = new MessageChannel();
  const sab = new SharedArrayBuffer(8);
  port1.postMessage([sab, new Uint8Array(sab)]);
  port1.postMessage(sab);
  port1.postMessage(new SharedArrayBuffer(8));
  assert.strictEqual(bufferPoolStats().shared, before + 2, 'each memory counted once');
  port2.close(); // the messages queued for it go with it
  for (let i = 0; i < 100 && bufferPoolStats().shared !== before; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.strictEqual(bufferPoolStats().shared, before);
  assert.strictEqual(new Uint8Array(sab).length, 8, 'the sender\'s buffer is untouched');
});

test('F7: shared memory outlives a terminated Worker, both ways', { skip }, async () => {
  const before = bufferPoolStats().shared;
  const fromWorker = new MessageChannel();
  const toWorker = new MessageChannel();
  const source = `
    const { workerData, parentPort } = require('node:worker_threads');
    const { MessagePort } = require(${JSON.stringify(path.join(__dirname, '..'))});
    const out = MessagePort.importHandle(workerData.out);
    MessagePort.importHandle(workerData.in); // never read
    for (let i = 0; i < 50; i++) {
      const sab = new SharedArrayBuffer(1024 + i);
      new Uint8Array(sab)[0] = i;
      out.postMessage(sab);
    }
    parentPort.postMessage('posted');
    setInterval(() => {}, 1000);
  `;
  const worker = new Worker(source, {
    eval: true,
    workerData: { out: fromWorker.port2.exportHandle(), in: toWorker.port2.exportHandle() },
  });
  await once(worker, 'message');
  for (let i = 0; i < 50; i++) toWorker.port1.postMessage(new SharedArrayBuffer(64));
  await worker.terminate();
  // what the Worker made is still there, after its isolate is gone
  for (let i = 0; i < 50; i++) {
    const sab = receiveMessageOnPort(fromWorker.port1).message;
    assert.strictEqual(sab.byteLength, 1024 + i);
    const bytes = new Uint8Array(sab);
    assert.strictEqual(bytes[0], i);
    bytes[1] = 1;
  }
  assert.strictEqual(receiveMessageOnPort(fromWorker.port1), undefined);
  fromWorker.port1.close();
  toWorker.port1.close();
  // and what it never read was given back with its ports
  for (let i = 0; i < 100 && bufferPoolStats().shared !== before; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.strictEqual(bufferPoolStats().shared, before);
});

test('G2: without V8\'s API a SharedArrayBuffer is a DataCloneError, and nothing is posted', () => {
  const script = `
    const { MessageChannel, bufferPoolStats, receiveMessageOnPort } = require(${JSON.stringify(path.join(__dirname, '..'))});
    const { port1, port2 } = new MessageChannel();
    const out = { backend: bufferPoolStats().backend };
    for (const value of [new SharedArrayBuffer(4), { v: new Uint8Array(new SharedArrayBuffer(4)) }]) {
      try {
        port1.postMessage(value);
        out.posted = true;
      } catch (e) {
        out.error = { name: e.name, code: e.code, message: e.message };
      }
    }
    out.queued = receiveMessageOnPort(port2) !== undefined;
    port1.close();
    console.log(JSON.stringify(out));
  `;
  const out = JSON.parse(execFileSync(process.execPath, ['-e', script], {
    env: { ...process.env, CHANNEL_MESSAGING_NAPI_BLOCKS: '1' },
    encoding: 'utf8',
  }));
  assert.deepStrictEqual(out, {
    backend: 'napi',
    error: {
      name: 'DataCloneError',
      code: 25,
      message: '#<SharedArrayBuffer> could not be cloned: sharing memory needs V8\'s API, ' +
        'which this process does not use (see bufferPoolStats().backend).',
    },
    queued: false,
  });
});

test('G2: shared memory under churn, across three Workers, with the GC running (stress)', { skip }, () => {
  // fixtures/shared-stress.js: fresh buffers shared out and shared back from the Workers,
  // one buffer shared by every message at once; each must stay findable by every
  // receiver while any message holds it (a receiver that cannot find it gets a
  // messageerror, which the fixture reports)
  for (let round = 0; round < 3; round++) {
    const run = spawnSync(process.execPath, ['--expose-gc', path.join(__dirname, 'fixtures', 'shared-stress.js')], {
      encoding: 'utf8',
      timeout: 60000,
    });
    assert.strictEqual(run.signal, null, `round ${round}: killed by ${run.signal} ${run.stderr}`);
    assert.strictEqual(run.status, 0, `round ${round}: ${run.stdout} ${run.stderr}`);
    assert.deepStrictEqual(JSON.parse(run.stdout), {
      counter: 6000, back: 6000, unanswered: 0, shared: 0, errors: [],
    }, `round ${round}`);
  }
});
