'use strict';
// What runs between two delivered messages, recorded the same way for every kind of
// channel (ports.test.js, broadcast.test.js run it on ours and on Node's own).

/**
 * Posts 0..n-1 through the channel that `open(onData)` makes ({ post(i), close() }),
 * and records each delivery (`m`) and what its handler queued: a nextTick (`t`) that
 * queues a microtask (`tp`), and a microtask chain (`p`, `pp`) that ends in a nextTick
 * (`pt`). Resolves with the order once the last message's queues have run.
 */
async function deliveryOrder(open, n) {
  const order = [];
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  const channel = open((m) => {
    order.push(`m${m}`);
    process.nextTick(() => {
      order.push(`t${m}`);
      Promise.resolve().then(() => order.push(`tp${m}`));
    });
    Promise.resolve()
      .then(() => order.push(`p${m}`))
      .then(() => order.push(`pp${m}`))
      .then(() => process.nextTick(() => order.push(`pt${m}`)));
    if (m === n - 1) setImmediate(done);
  });
  for (let i = 0; i < n; i++) channel.post(i);
  await finished;
  channel.close();
  return order;
}

module.exports = { deliveryOrder };
