// `make demo` (demo-node): the main thread hands one port of a channel to each of two
// Workers as a single-use handle (port.exportHandle() -> MessagePort.importHandle()),
// then the Workers talk to each other directly over a channel the main thread sent
// them inside a message, and everybody listens on one BroadcastChannel. A
// SharedArrayBuffer sent along is shared, not copied: the Workers count in its memory.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { MessageChannel, MessagePort, BroadcastChannel, bufferPoolStats } = require('../index.js');

if (isMainThread) {
  const news = new BroadcastChannel('demo-news');
  // shared memory needs V8's API (bufferPoolStats().backend 'v8'); else null
  const tally = bufferPoolStats().backend === 'v8' ? new Int32Array(new SharedArrayBuffer(4)) : null;
  const workers = [];
  const ports = [];
  for (const name of ['left', 'right']) {
    const { port1, port2 } = new MessageChannel();
    workers.push(new Worker(new URL(import.meta.url), { workerData: { name, handle: port2.exportHandle() } }));
    ports.push(port1);
  }
  let ready = 0;
  let finished = 0;
  for (const port of ports) {
    port.on('message', (m) => {
      if (m.ready) {
        if (++ready < ports.length) return;
        news.postMessage({ headline: 'hello, workers', at: new Date(0) });
        // a channel between the two Workers, its ends transferred inside messages
        const between = new MessageChannel();
        ports[0].postMessage({ peer: between.port1, tally }, [between.port1]);
        ports[1].postMessage({ peer: between.port2, tally }, [between.port2]);
        return;
      }
      console.log(`main: ${m.from} says ${JSON.stringify(m.text)}`);
      if (m.done && ++finished === ports.length) {
        if (tally !== null) console.log(`main: the Workers counted ${Atomics.load(tally, 0)} in shared memory`);
        news.postMessage('goodbye');
        news.close();
        for (const p of ports) p.close();
      }
    });
  }
} else {
  const { name, handle } = workerData;
  const port = MessagePort.importHandle(handle);
  const news = new BroadcastChannel('demo-news');
  news.onmessage = ({ data }) => {
    if (data === 'goodbye') {
      news.close();
      return;
    }
    port.postMessage({ from: name, text: `news: ${data.headline} (${data.at.toISOString()})` });
  };
  port.on('message', ({ peer, tally }) => {
    if (tally !== null) Atomics.add(tally, 0, 1); // the main thread's own memory
    peer.on('message', (m) => {
      port.postMessage({ from: name, text: `peer sent ${m.n} and ${m.bytes.byteLength} bytes`, done: true });
      peer.close();
    });
    const bytes = new ArrayBuffer(4096);
    peer.postMessage({ n: name.length, bytes }, [bytes]);
  });
  port.on('close', () => port.close());
  port.postMessage({ ready: true });
}
