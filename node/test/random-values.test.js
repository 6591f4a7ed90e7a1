'use strict';
// Random values, 3000 seeds, each cloned by Node (structuredClone, V8's serializer),
// sent through a channel-messaging port and cloned by channel-messaging's
// structuredClone: what arrives and the clone must look the same to
// util.inspect with hidden properties shown (own non-enumerable properties such as an
// Error's `stack`, array lengths, typed array internals). The values keep to what both
// clone alike (node/README.md lists the differences): every primitive, nested arrays
// with holes, objects, Maps, Sets, Dates, RegExps, Errors with causes, boxed primitives,
// buffers and views sharing them, resizable buffers, shared references and cycles.
const test = require('node:test');
const assert = require('node:assert');
const util = require('node:util');
const cm = require('..');

const { MessageChannel, receiveMessageOnPort } = cm;

function viaPort(value) {
  const { port1, port2 } = new MessageChannel();
  try {
    port1.postMessage(value);
    return receiveMessageOnPort(port2).message;
  } finally {
    port1.close();
  }
}

/** A value from `rnd` (n => an integer in [0, n)). */
function randomValue(rnd, depth = 0) {
  const pick = (list) => list[rnd(list.length)];
  const more = () => randomValue(rnd, depth + 1);
  switch (rnd(depth > 3 ? 8 : 22)) {
    case 0:
      return pick([undefined, null, true, false]);
    case 1:
      return pick([0, -0, 1, -1, 2 ** 31, 2 ** 53, -(2 ** 53) - 2, 1.5, NaN, Infinity, -Infinity, 5e-324]);
    case 2:
      return pick(['', 'a', 'é', '\u{1f600}', 'x\0y', '\ud800', 'lone\udc00x']);
    case 3:
      return pick([0n, -1n, 2n ** 64n, -(2n ** 100n)]);
    case 4:
      return new Date(pick([0, -1, 8.64e15, NaN, 1.5]));
    case 5:
      return pick([/a/g, /(?<n>x)/dimsuy, new RegExp('\\/', 'v')]);
    case 6:
      return Object(pick([1, 'str', false, 3n]));
    case 7: {
      const ab = new ArrayBuffer(rnd(5));
      new Uint8Array(ab).forEach((_, i, a) => {
        a[i] = i;
      });
      return ab;
    }
    case 8:
    case 9: {
      const a = [];
      const n = rnd(5);
      for (let i = 0; i < n; i++) a.push(more());
      if (rnd(4) === 0) delete a[rnd(n + 1)];
      if (rnd(6) === 0) a.length += 2;
      return a;
    }
    case 10:
    case 11: {
      const o = {};
      const n = rnd(5);
      for (let i = 0; i < n; i++) o[pick(['a', 'b', '1', '0', '__proto__x', 'é', String(rnd(100))])] = more();
      return o;
    }
    case 12: {
      const m = new Map();
      for (let i = rnd(4); i > 0; i--) m.set(more(), more());
      return m;
    }
    case 13: {
      const s = new Set();
      for (let i = rnd(4); i > 0; i--) s.add(more());
      return s;
    }
    case 14: {
      const E = pick([Error, RangeError, TypeError, SyntaxError, EvalError, URIError, ReferenceError]);
      const e = rnd(2) ? new E(pick(['m', '', 'é'])) : new E();
      if (rnd(3) === 0) e.cause = more();
      if (rnd(4) === 0) delete e.stack;
      return e;
    }
    case 15: {
      const ab = new ArrayBuffer(16);
      const View = pick([Uint8Array, Int8Array, Uint16Array, Int32Array, Float32Array, Float64Array,
        BigInt64Array, Uint8ClampedArray, DataView]);
      const size = View.BYTES_PER_ELEMENT ?? 1;
      const offset = size * rnd(2);
      return View === DataView ? new DataView(ab, offset, rnd(8)) : new View(ab, offset, rnd(16 / size - 1));
    }
    case 16: {
      const shared = more();
      return [shared, shared];
    }
    case 17: {
      const a = [1];
      a.push(a);
      return a;
    }
    case 18: {
      const o = { k: 1 };
      o.self = o;
      return o;
    }
    case 19: {
      const ab = new ArrayBuffer(8);
      return [new Uint8Array(ab, 0, 4), new Float64Array(ab), ab];
    }
    case 20:
      return new ArrayBuffer(4, { maxByteLength: 4 + rnd(8) });
    default:
      return Object.create(null);
  }
}

/** util.inspect of `v` with hidden properties, stack frames left out (they name this file's lines). */
function look(v) {
  return util.inspect(v, { depth: 10, showHidden: true }).replace(/\n\s+at [^\n]*/g, '');
}

test('random values arrive, and structuredClone clones them, as Node clones them (3000 seeds)', () => {
  const differing = [];
  for (let seed = 1; seed <= 3000; seed++) {
    let x = seed;
    const rnd = (n) => {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      return x % n;
    };
    const value = randomValue(rnd);
    const node = look(structuredClone(value));
    const ours = look(viaPort(value));
    if (ours !== node) differing.push({ seed, node, ours });
    // this package's structuredClone clones as Node's does, too
    const cloned = look(cm.structuredClone(value));
    if (cloned !== node) differing.push({ seed, node, ours: cloned });
  }
  if (differing.length > 0) {
    const { seed, node, ours } = differing[0];
    assert.strictEqual(ours, node, `seed ${seed} (of ${differing.length} differing)`);
  }
});
