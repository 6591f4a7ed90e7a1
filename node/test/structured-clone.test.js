'use strict';
// structuredClone (spec G7): arguments read and refused as Node's global structuredClone
// reads and refuses them, and this package's transferables (ports, zero-copy buffers)
// moved as a post would move them. (random-values.test.js compares the clones of 3000
// random values with Node's.)
const test = require('node:test');
const assert = require('node:assert');
const util = require('node:util');
const cm = require('..');

/** What `f` returns or throws, as comparable text. */
function outcome(f) {
  try {
    return `returned ${util.inspect(f(), { showHidden: true })}`;
  } catch (e) {
    return `threw ${e?.constructor?.name} ${e?.name} ${e?.code} ${e?.message}`;
  }
}

test('G7: arguments are read and checked as Node reads and checks them', () => {
  const calls = [
    ['no arguments', (sc) => sc()],
    ['options a number', (sc) => sc(1, 5)],
    ['options a string', (sc) => sc(1, 'x')],
    ['options null', (sc) => sc(1, null)],
    ['options undefined', (sc) => sc(1, undefined)],
    ['options a function', (sc) => sc(1, () => {})],
    ['options an array', (sc) => sc(1, [])],
    ['transfer a number', (sc) => sc(1, { transfer: 5 })],
    ['transfer a string', (sc) => sc(1, { transfer: 'ab' })],
    ['transfer null', (sc) => sc(1, { transfer: null })],
    ['transfer an empty Set', (sc) => sc(1, { transfer: new Set() })],
    ['transfer an options object', (sc) => sc(1, { transfer: { transfer: [] } })],
    ['transfer holding a number', (sc) => sc(1, { transfer: [1] })],
    ['a getter that throws', (sc) => sc(1, { get transfer() { throw new RangeError('from the getter'); } })],
    ['a function', (sc) => sc(() => 1)],
    ['a symbol', (sc) => sc(Symbol('s'))],
    ['a duplicate buffer', (sc) => {
      const ab = new ArrayBuffer(4);
      return sc(ab, { transfer: [ab, ab] });
    }],
    ['a transferred buffer', (sc) => {
      const ab = new ArrayBuffer(8);
      new Uint8Array(ab).set([1, 2, 3]);
      const clone = sc({ ab }, { transfer: [ab] });
      return [ab.byteLength, clone];
    }],
    ['a value with cycles', (sc) => {
      const o = { list: [] };
      o.list.push(o, o.list);
      const c = sc(o);
      return [c !== o, c.list[0] === c, c.list[1] === c.list];
    }],
  ];
  for (const [what, call] of calls) {
    assert.strictEqual(outcome(() => call(cm.structuredClone)), outcome(() => call(structuredClone)), what);
  }
});

test('G7/C5: an already-detached buffer in the transfer list is refused (Node clones it empty)', () => {
  const ab = new ArrayBuffer(4);
  cm.structuredClone(ab, { transfer: [ab] });
  assert.throws(() => cm.structuredClone(ab, { transfer: [ab] }), { name: 'DataCloneError', code: 25 });
  // the difference from Node (node/README.md, "Differences from Node"), as a post has it
  assert.strictEqual(structuredClone(ab, { transfer: [ab] }).byteLength, 0);
});

test('G7/C15: a port in the value must be in the transfer list', () => {
  const { port1, port2 } = new cm.MessageChannel();
  assert.throws(() => cm.structuredClone({ port1 }), { name: 'DataCloneError', code: 25 });
  // nothing moved: the port still works
  port1.postMessage('still here');
  assert.deepStrictEqual(cm.receiveMessageOnPort(port2), { message: 'still here' });
  port1.close();
});

test('G7/D7: a transferred port moves: its clone stays entangled, and nobody hears close', async () => {
  const { port1, port2 } = new cm.MessageChannel();
  let closed = 0;
  port2.on('close', () => closed++);
  const clone = cm.structuredClone({ port: port1 }, { transfer: [port1] });
  assert.ok(clone.port instanceof cm.MessagePort);
  assert.notStrictEqual(clone.port, port1);
  // the original is detached, as after a post
  assert.strictEqual(port1.postMessage('lost'), undefined);
  clone.port.postMessage('through the clone');
  assert.deepStrictEqual(cm.receiveMessageOnPort(port2), { message: 'through the clone' });
  port2.postMessage('back');
  assert.deepStrictEqual(cm.receiveMessageOnPort(clone.port), { message: 'back' });
  await new Promise((resolve) => setImmediate(resolve));
  assert.strictEqual(closed, 0);
  clone.port.close();
  await new Promise((resolve) => port2.once('close', resolve));
});

test('G7: a zero-copy buffer keeps its memory; a refused transfer moves nothing', () => {
  const ab = cm.allocBuffer(1 << 16);
  new Uint8Array(ab)[0] = 42;
  assert.throws(() => cm.structuredClone([ab, () => 1], { transfer: [ab] }), { name: 'DataCloneError' });
  assert.strictEqual(ab.byteLength, 1 << 16);
  const clone = cm.structuredClone(ab, { transfer: [ab] });
  assert.strictEqual(ab.byteLength, 0);
  assert.strictEqual(clone.byteLength, 1 << 16);
  assert.strictEqual(new Uint8Array(clone)[0], 42);
  assert.ok(cm.isZeroCopyBuffer(clone));
  assert.strictEqual(cm.releaseBuffer(clone), true);
});

test('G7: a clone leaves nothing behind that keeps the process alive', async () => {
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  await turn();
  const before = process.getActiveResourcesInfo().length;
  for (let i = 0; i < 1000; i++) cm.structuredClone({ i, s: 'x'.repeat(i % 50) });
  // the channel of each clone closes as any port does (its 'close' is an immediate)
  await turn();
  await turn();
  assert.ok(process.getActiveResourcesInfo().length <= before, util.inspect(process.getActiveResourcesInfo()));
});
