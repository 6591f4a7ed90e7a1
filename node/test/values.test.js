'use strict';
// DESIGN.md §3's value mapping, round trip through a real port.
const test = require('node:test');
const assert = require('node:assert');
const { MessageChannel, receiveMessageOnPort } = require('..');

function roundTrip(value, transfer) {
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(value, transfer);
  const r = receiveMessageOnPort(port2);
  port1.close();
  return r.message;
}

test('g1_primitives_keep_their_values', () => {
  for (const v of [undefined, null, true, false, 0, -0, 1, -1, 2 ** 53 - 1, -(2 ** 53), 1.5, NaN, Infinity, -Infinity,
    0.1, 1e300, 5e-324, 0n, -1n, 2n ** 200n, -(2n ** 70n), '', 'a', 'héllo wörld ✓', 'x'.repeat(5000), 'nul\0nul', '\ud800', 'a\udfffb']) {
    const back = roundTrip(v);
    assert.ok(Object.is(back, v), `${String(v).slice(0, 20)} round-trips`);
  }
});

test('g1_integers_and_lengths_at_every_head_size_boundary', () => {
  // CBOR heads of 0, 1, 2, 4 and 8 bytes; one port, warm, so that the encoder and the
  // decoder see the sizes grow mid-stream as a counter's do
  const { port1, port2 } = new MessageChannel();
  const edges = [0, 23, 24, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1];
  for (let round = 0; round < 200; round++) {
    for (const e of edges) {
      for (const v of [e, -e - 1]) {
        port1.postMessage(v);
        assert.strictEqual(receiveMessageOnPort(port2).message, v);
      }
    }
  }
  for (const n of [23, 24, 255, 256, 65535, 65536]) {
    const text = 'x'.repeat(n);
    const list = new Array(n).fill(1);
    port1.postMessage({ text, list });
    const back = receiveMessageOnPort(port2).message;
    assert.strictEqual(back.text, text);
    assert.strictEqual(back.list.length, n);
  }
  port1.close();
});

test('g2_objects_arrays_holes_maps_sets_dates_regexps_errors_boxed', () => {
  const v = {
    obj: { a: 1, b: { c: [1, 2, 3] } },
    holes: [1, , 3], // eslint-disable-line no-sparse-arrays
    map: new Map([[{ k: 1 }, 'v'], [2, new Set([1])]]),
    set: new Set(['x', 1, 2n]),
    date: new Date(1700000000123),
    invalid: new Date(NaN),
    re: /a+b/gi,
    err: new RangeError('out', { cause: new Error('inner') }),
    boxed: [Object(1), Object('s'), Object(true), Object(3n)],
    __proto__: null,
  };
  const back = roundTrip(v);
  assert.deepStrictEqual(back.obj, v.obj);
  assert.strictEqual(1 in back.holes, false);
  assert.strictEqual(back.holes.length, 3);
  assert.deepStrictEqual([...back.map.values()][1], new Set([1]));
  assert.deepStrictEqual([...back.set], ['x', 1, 2n]);
  assert.strictEqual(back.date.getTime(), 1700000000123);
  assert.ok(Number.isNaN(back.invalid.getTime()));
  assert.strictEqual(back.re.source, 'a+b');
  assert.strictEqual(back.re.flags, 'gi');
  assert.ok(back.err instanceof RangeError);
  assert.strictEqual(back.err.message, 'out');
  assert.strictEqual(back.err.stack, v.err.stack);
  assert.strictEqual(back.err.cause.message, 'inner');
  assert.deepStrictEqual(back.boxed.map((b) => b.valueOf()), [1, 's', true, 3n]);
  assert.strictEqual(Object.getPrototypeOf(back), Object.prototype);
});

test('g2_typed_arrays_and_dataview_share_one_buffer', () => {
  const ab = new ArrayBuffer(16);
  const u8 = new Uint8Array(ab, 1, 4);
  const f64 = new Float64Array(ab, 8, 1);
  const dv = new DataView(ab, 2, 6);
  u8[0] = 9;
  f64[0] = 2.5;
  const back = roundTrip({ u8, f64, dv, ab });
  assert.strictEqual(back.u8.buffer, back.ab);
  assert.strictEqual(back.f64.buffer, back.ab);
  assert.strictEqual(back.dv.buffer, back.ab);
  assert.strictEqual(back.u8[0], 9);
  assert.strictEqual(back.f64[0], 2.5);
  assert.strictEqual(back.dv.byteOffset, 2);
  assert.strictEqual(back.dv.byteLength, 6);
  // copied, not transferred: the original is intact
  assert.strictEqual(ab.byteLength, 16);
  for (const C of [Int8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, BigInt64Array, BigUint64Array]) {
    const t = new C(3);
    const b = roundTrip(t);
    assert.ok(b instanceof C);
    assert.strictEqual(b.length, 3);
  }
});

test('g2_large_buffers_travel_in_the_side_table_and_are_copied', () => {
  const big = new Uint8Array(64 * 1024).map((_, i) => i & 255);
  const back = roundTrip(big.buffer);
  assert.deepStrictEqual(new Uint8Array(back), big);
  assert.strictEqual(big.buffer.byteLength, 64 * 1024);
});

test('g4_cycles_and_shared_references', () => {
  const shared = { s: 1 };
  const a = [shared, shared];
  const cyc = { name: 'c' };
  cyc.self = cyc;
  const m = new Map();
  m.set('me', m);
  const back = roundTrip({ a, cyc, m, again: cyc });
  assert.strictEqual(back.a[0], back.a[1]);
  assert.notStrictEqual(back.a[0], shared);
  assert.strictEqual(back.cyc.self, back.cyc);
  assert.strictEqual(back.again, back.cyc);
  assert.strictEqual(back.m.get('me'), back.m);
  // a Date referenced twice is one Date (its content is not the shared value)
  const when = new Date(1001);
  const dates = roundTrip([when, when, { when }]);
  assert.ok(dates[0] instanceof Date && dates[0] === dates[1] && dates[2].when === dates[0]);
  assert.strictEqual(dates[0].getTime(), 1001);
  // references more than 23 objects apart (wider ids), in a message over 64 KiB
  const many = Array.from({ length: 300 }, (_, i) => ({ i, text: 'x'.repeat(300) }));
  const big = roundTrip({ many, again: [...many].reverse(), first: many[0] });
  assert.strictEqual(big.again[0], big.many[299]);
  assert.strictEqual(big.again[299], big.many[0]);
  assert.strictEqual(big.first, big.many[0]);
  assert.strictEqual(big.many[150].text.length, 300);
});

test('g_depth_limit_is_a_DataCloneError', () => {
  let deep = [];
  for (let i = 0; i < 300; i++) deep = [deep];
  assert.throws(() => roundTrip(deep), (e) => e.name === 'DataCloneError');
});

test('g_class_instances_clone_as_plain_objects', () => {
  class Point {
    constructor() {
      this.x = 1;
    }
  }
  const back = roundTrip(new Point());
  assert.deepStrictEqual(back, { x: 1 });
  assert.strictEqual(Object.getPrototypeOf(back), Object.prototype);
});

test('g3_host_objects_are_refused_not_emptied', () => {
  // Node's own cloneable or transferable objects have no place in the wire format: a
  // DataCloneError naming the class, never a silent empty object
  const { BlockList, SocketAddress } = require('node:net');
  const { createSecretKey } = require('node:crypto');
  const wasm = new WebAssembly.Module(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
  const cases = [
    [new BlockList(), '#<BlockList> could not be cloned.'],
    [new SocketAddress(), '#<SocketAddress> could not be cloned.'],
    [createSecretKey(Buffer.alloc(4)), '#<SecretKeyObject> could not be cloned.'],
    [wasm, '#<Module> could not be cloned.'],
    [{ inner: [new Blob(['x'])] }, '#<Blob> could not be cloned.'],
  ];
  for (const [value, message] of cases) {
    assert.throws(() => roundTrip(value), { name: 'DataCloneError', code: 25, message });
  }
});

test('g3_messages_name_the_value_as_v8_does', () => {
  const cases = [
    [Promise.resolve(), '#<Promise> could not be cloned.'],
    [new WeakMap(), '#<WeakMap> could not be cloned.'],
    [new Proxy({}, {}), '#<Object> could not be cloned.'],
    [new Proxy([], {}), '[object Array] could not be cloned.'],
    [Object.assign(() => {}, { toString: () => 'not this' }), '() => {} could not be cloned.'],
    [Object(Symbol('s')), '[object Symbol] could not be cloned.'],
    [(function* gen() {})(), '[object Generator] could not be cloned.'],
    [Symbol('s'), 'Symbol(s) could not be cloned.'],
  ];
  for (const [value, message] of cases) {
    assert.throws(() => roundTrip(value), { name: 'DataCloneError', message });
  }
});

test('g3_a_proxy_is_refused_without_running_its_traps', () => {
  // as V8 does: whatever its handler would do, a Proxy is a DataCloneError
  const calls = [];
  const handler = {};
  for (const trap of ['get', 'has', 'ownKeys', 'getPrototypeOf', 'getOwnPropertyDescriptor', 'apply']) {
    handler[trap] = () => {
      calls.push(trap);
      throw new Error(`the ${trap} trap ran`);
    };
  }
  const { proxy: revoked, revoke } = Proxy.revocable({}, {});
  revoke();
  for (const v of [new Proxy({}, handler), new Proxy([], handler), { nested: [new Proxy(new Map(), handler)] },
    new Proxy(() => {}, handler), revoked]) {
    assert.throws(() => roundTrip(v), { name: 'DataCloneError', code: 25 });
  }
  assert.deepStrictEqual(calls, []);
});

test('g2_only_native_errors_clone_as_errors', () => {
  const fake = Object.create(Error.prototype);
  fake.x = 1;
  const back = roundTrip([fake, new RangeError('r')]);
  assert.strictEqual(Object.getPrototypeOf(back[0]), Object.prototype);
  assert.deepStrictEqual(back[0], { x: 1 });
  assert.ok(back[1] instanceof RangeError);
  assert.strictEqual(back[1].message, 'r');
});

test('g2_a_property_deleted_by_an_earlier_getter_is_skipped', () => {
  // keys are listed first, then read: one that a getter deleted meanwhile is not sent
  const v = {
    get a() {
      delete this.b;
      return 1;
    },
    b: 2,
    c: 3,
  };
  assert.deepStrictEqual(roundTrip(v), { a: 1, c: 3 });
  // the head's count shrinks across its size classes (24 keys: a one-byte count after)
  const many = {};
  Object.defineProperty(many, 'first', {
    enumerable: true,
    get() {
      for (let i = 0; i < 20; i++) delete this[`k${i}`];
      return 0;
    },
  });
  for (let i = 0; i < 23; i++) many[`k${i}`] = i;
  const expected = { first: 0, k20: 20, k21: 21, k22: 22 };
  assert.deepStrictEqual(roundTrip({ many, after: 'x' }), { many: expected, after: 'x' });
});

// G2: "Arrays: length is kept, holes stay holes, and own enumerable non-index properties
// are copied". A sparse array (wire tag 0xCB1B) is written by its entries, not its length.
test('g2_sparse_arrays_keep_length_holes_named_properties_and_identity', () => {
  const huge = [];
  huge[2 ** 32 - 2] = 'last'; // 4294967295 elements long: written densely it never ends
  huge[7] = 'seven';
  huge.label = 'named';
  huge['4294967295'] = 'not an index'; // (2^32 - 1 is a property name)
  const shared = { s: 1 };
  const wide = new Array(100000);
  wide[3] = shared;
  wide[99999] = shared;
  wide.self = wide;
  const back = roundTrip({ huge, wide, shared });
  assert.strictEqual(back.huge.length, 2 ** 32 - 1);
  assert.deepStrictEqual(Object.keys(back.huge), ['7', '4294967294', 'label', '4294967295']);
  assert.strictEqual(back.huge[2 ** 32 - 2], 'last');
  assert.strictEqual(back.huge.label, 'named');
  assert.strictEqual(0 in back.huge, false, 'holes stay holes');
  assert.strictEqual(back.wide.length, 100000);
  assert.deepStrictEqual(Object.keys(back.wide), ['3', '99999', 'self']);
  assert.strictEqual(back.wide.self, back.wide, 'a cycle through a sparse array');
  assert.strictEqual(back.wide[3], back.shared, 'shared references into a sparse array');
  assert.strictEqual(back.wide[99999], back.shared);
  // a getter that deletes a later element: that element is skipped (G5), as in Node
  const g = new Array(2000);
  g[0] = 1;
  Object.defineProperty(g, 5, {
    enumerable: true,
    get() {
      delete g[1999];
      return 'g';
    },
  });
  g[1999] = 'z';
  const gb = roundTrip(g);
  assert.deepStrictEqual(Object.keys(gb), ['0', '5']);
  assert.strictEqual(gb[5], 'g');
  assert.strictEqual(gb.length, 2000);
  // a holey array that is mostly elements stays an ordinary array, holes and all
  const holey = Array.from({ length: 3000 }, (_, i) => i);
  for (let i = 0; i < 3000; i += 3) delete holey[i];
  const hb = roundTrip(holey);
  assert.strictEqual(hb.length, 3000);
  assert.strictEqual(0 in hb, false);
  assert.strictEqual(hb[2999], 2999);
  assert.strictEqual(Object.keys(hb).length, 2000);
});

test('g2_malformed_sparse_arrays_are_decode_errors', () => {
  const { Decoder, DecodeError } = require('../lib/codec.js');
  // envelope, tag 0xCB1B, [length, {entries}]
  const msg = (...body) => Uint8Array.from([0xd9, 0xcb, 0x01, 0xd9, 0xcb, 0x1b, ...body]);
  const decode = (bytes) => new Decoder().decode(bytes, 0, bytes.length, [], []);
  // [4, {1: "a", "n": 2}]
  const ok = decode(msg(0x82, 0x04, 0xa2, 0x01, 0x61, 0x61, 0x61, 0x6e, 0x02));
  assert.strictEqual(ok.length, 4);
  assert.deepStrictEqual(Object.keys(ok), ['1', 'n']);
  const bad = {
    'an index past the length': msg(0x82, 0x02, 0xa1, 0x02, 0xf6),
    'indices out of order': msg(0x82, 0x04, 0xa2, 0x02, 0xf6, 0x01, 0xf6),
    'an index twice': msg(0x82, 0x04, 0xa2, 0x01, 0xf6, 0x01, 0xf6),
    'an index as text': msg(0x82, 0x04, 0xa1, 0x61, 0x31, 0xf6),
    'a length key': msg(0x82, 0x04, 0xa1, 0x66, ...Buffer.from('length'), 0x00),
    'a length past 2^32 - 1': msg(0x82, 0x1b, 0, 0, 0, 1, 0, 0, 0, 0, 0xa0),
    'a key of another type': msg(0x82, 0x04, 0xa1, 0xf6, 0xf6),
    'a hole as a value': msg(0x82, 0x04, 0xa1, 0x00, 0xd8, 0x1f, 0xf7),
    'not a pair': msg(0x81, 0x04),
    'entries that are not a map': msg(0x82, 0x04, 0x80),
    'more entries than bytes': msg(0x82, 0x04, 0xb8, 0xff),
  };
  for (const [what, bytes] of Object.entries(bad)) {
    assert.throws(() => decode(bytes), DecodeError, what);
  }
  // a length the bytes do not back reserves nothing: [30000000, {}] is 12 bytes (as
  // `new Array(30000000)` V8 would hold 240 MB of holes)
  const v8 = require('node:v8');
  const before = v8.getHeapStatistics().used_heap_size;
  const empty = decode(msg(0x82, 0x1a, 0x01, 0xc9, 0xc3, 0x80, 0xa0));
  const grown = v8.getHeapStatistics().used_heap_size - before;
  assert.strictEqual(empty.length, 30000000);
  assert.strictEqual(Object.keys(empty).length, 0);
  assert.ok(grown < 16 * 1024 * 1024, `the heap grew by ${grown} bytes`);
});

// G4/G5 against V8's own structured clone: random graphs with shared references, cycles,
// sparse arrays and getters that delete later keys (which shrinks a map's head and moves
// what follows), built twice from one seed; both clones must have the same shape,
// identity included, and each getter must have run once per clone.
test('g4_g5_random_graphs_clone_as_structuredClone_does', () => {
  const describe = (v, seen = new Map()) => {
    if (v === null || typeof v !== 'object') return v;
    if (seen.has(v)) return { ref: seen.get(v) };
    seen.set(v, seen.size);
    if (v instanceof Map) return { map: [...v].map(([k, x]) => [describe(k, seen), describe(x, seen)]) };
    if (v instanceof Set) return { set: [...v].map((x) => describe(x, seen)) };
    if (v instanceof Date) return { date: v.getTime() };
    if (v instanceof RegExp) return { regexp: String(v) };
    if (v instanceof Error) return { error: [v.name, v.message, describe(v.cause, seen)] };
    if (v instanceof ArrayBuffer) return { bytes: [...new Uint8Array(v)] };
    if (ArrayBuffer.isView(v)) return { view: [v.constructor.name, v.byteOffset, v.byteLength, describe(v.buffer, seen)] };
    if (v instanceof Number || v instanceof String || v instanceof BigInt) return { boxed: String(v.valueOf()) };
    const out = { array: Array.isArray(v), length: Array.isArray(v) ? v.length : undefined };
    out.entries = Object.keys(v).map((k) => [k, describe(v[k], seen)]);
    return out;
  };
  for (let seed = 1; seed <= 300; seed++) {
    const build = () => {
      let x = seed;
      const rand = (n) => {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        return (x >>> 0) % n;
      };
      const pool = [];
      let getterRuns = 0;
      const leaf = (r) => {
        // objects that are not containers, shareable all the same
        let v;
        if (r === 10) v = new Date(rand(2) ? rand(1e6) : rand(1e6) + 0.5);
        else if (r === 11) v = [Object(rand(9)), Object(`s${rand(9)}`), Object(BigInt(rand(9))), /a+/g][rand(4)];
        else if (r === 12) {
          const ab = new ArrayBuffer(8);
          new Uint8Array(ab)[rand(8)] = rand(256);
          v = rand(2) ? ab : new [Uint8Array, Int16Array, DataView][rand(3)](ab, 2, 2);
        } else {
          // (a cause never leads back to its error: V8's structuredClone cannot read that)
          v = new RangeError(`e${rand(9)}`, rand(2) ? { cause: [rand(9), new Date(rand(9))] } : undefined);
        }
        pool.push(v);
        return v;
      };
      const make = (depth) => {
        const r = rand(14);
        if (pool.length > 0 && r < 3) return pool[rand(pool.length)];
        if (r >= 10) return leaf(r);
        if (depth > 3 || r === 3) return rand(1000);
        if (r === 4) {
          const m = new Map();
          pool.push(m);
          for (let i = rand(3); i > 0; i--) m.set(make(depth + 1), make(depth + 1));
          return m;
        }
        if (r === 5) {
          const a = rand(2) ? [] : new Array(1500 + rand(3000));
          pool.push(a);
          for (let i = rand(4); i > 0; i--) a[rand(a.length + 2)] = make(depth + 1);
          return a;
        }
        const o = {};
        pool.push(o);
        const keys = rand(3) ? rand(4) : 24 + rand(10);
        if (keys > 20) {
          Object.defineProperty(o, 'first', {
            enumerable: true,
            get() {
              getterRuns++;
              for (let i = 0; i < 10; i++) delete o[`k${i}`];
              return getterRuns;
            },
          });
        }
        for (let i = 0; i < keys; i++) o[`k${i}`] = make(depth + 1);
        return o;
      };
      const root = { a: make(0), b: make(0), c: make(0) };
      root.self = pool.length ? pool[rand(pool.length)] : root;
      return { root, runs: () => getterRuns };
    };
    const ours = build();
    const theirs = build();
    const expected = describe(structuredClone(theirs.root));
    assert.deepStrictEqual(describe(roundTrip(ours.root)), expected, `seed ${seed}`);
    assert.strictEqual(ours.runs(), theirs.runs(), `getters ran as often (seed ${seed})`);
  }
});

// Property names and an Error's message and stack may hold lone surrogates (wire tag
// 0xCB14 where text is asked for); a hot object shape keyed by one must not match the
// key U+FFFD, which its UTF-8 would be.
test('g1_lone_surrogates_in_property_names_and_error_texts_arrive_whole', () => {
  for (let i = 0; i < 10; i++) {
    const back = roundTrip([{ '\ud800': i, b: 'x' }, { '\ufffd': i, b: 'x' }]);
    assert.deepStrictEqual(Object.keys(back[0]), ['\ud800', 'b']);
    assert.deepStrictEqual(Object.keys(back[1]), ['\ufffd', 'b']);
    assert.strictEqual(back[0]['\ud800'], i);
  }
  const e = new TypeError('bad \udc00');
  e.stack = 'at \ud800';
  const back = roundTrip(e);
  assert.strictEqual(back.message, 'bad \udc00');
  assert.strictEqual(back.stack, 'at \ud800');
  const sparse = [];
  sparse[2000] = 1;
  sparse['\udbff'] = 2;
  assert.deepStrictEqual(Object.keys(roundTrip(sparse)), ['2000', '\udbff']);
  // in a fresh process, where the lone surrogate is the first key the decoder's shape
  // cache ever sees (its one-entry fast path)
  const { execFileSync } = require('node:child_process');
  const script = `
    const { MessageChannel, receiveMessageOnPort } = require(${JSON.stringify(require.resolve('..'))});
    const { port1, port2 } = new MessageChannel();
    const keys = [];
    for (const k of ['\\ud800', '\\ud800', '\\ud800', '\\ufffd', '\\ufffd']) {
      port1.postMessage({ [k]: 1 });
      keys.push(Object.keys(receiveMessageOnPort(port2).message)[0].charCodeAt(0));
    }
    port1.close();
    console.log(JSON.stringify(keys));`;
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  assert.deepStrictEqual(JSON.parse(out), [0xd800, 0xd800, 0xd800, 0xfffd, 0xfffd]);
});

test('g_proto_key_is_an_own_property', () => {
  const v = JSON.parse('{"__proto__": {"polluted": true}}');
  const back = roundTrip(v);
  assert.strictEqual(Object.getPrototypeOf(back), Object.prototype);
  assert.deepStrictEqual(back.__proto__, { polluted: true }); // eslint-disable-line no-proto
  assert.strictEqual({}.polluted, undefined);
});

// The decoder builds objects of frequent key sequences with a generated factory (lib/
// codec.js, Shape): the same results as the plain path, whatever the mix.
test('g_object_shapes_decode_like_the_plain_path_cold_and_hot', () => {
  const shared = { s: 'same' };
  const make = (i) => ({
    seq: i,
    name: i % 3 === 0 ? 'tick' : `t${i}`, // a field whose string changes (value hint)
    nested: { a: i, b: [i, { c: 'x' }] },
    ref1: shared,
    ref2: shared, // a shared reference inside a hot shape
    tag: i % 2 ? 'odd' : 'even',
    ['__proto__']: undefined,
  });
  for (let i = 0; i < 40; i++) {
    const v = make(i);
    Object.defineProperty(v, '__proto__', { value: { p: i }, enumerable: true, writable: true, configurable: true });
    const back = roundTrip(v);
    assert.strictEqual(back.seq, i);
    assert.strictEqual(back.name, v.name);
    assert.deepStrictEqual(back.nested, v.nested);
    assert.strictEqual(back.ref1, back.ref2, `shared reference kept (${i})`);
    assert.deepStrictEqual(back.ref1, shared);
    assert.deepStrictEqual(Object.keys(back), Object.keys(v));
    assert.ok(Object.hasOwn(back, '__proto__'), 'an own __proto__ key stays an own property');
    assert.strictEqual(Object.getPrototypeOf(back), Object.prototype);
  }
  // a cycle through a (by now hot) shape, and the same string shared by identity
  for (let i = 0; i < 10; i++) {
    const o = { seq: i, name: 'tick' };
    o.self = o;
    const back = roundTrip(o);
    assert.strictEqual(back.self, back);
    assert.strictEqual(back.name, 'tick');
  }
  // integer-like and non-ASCII keys keep their order and values
  for (let i = 0; i < 10; i++) {
    const o = { z: 1, 10: 'ten', 2: 'two', ü: 'u', '': 'empty', [`k${i % 2}`]: i };
    assert.deepStrictEqual(roundTrip(o), o);
    assert.deepStrictEqual(Object.keys(roundTrip(o)), Object.keys(o));
  }
});

test('g_objects_decode_without_code_generation_too', () => {
  const { execFileSync } = require('node:child_process');
  const out = execFileSync(process.execPath, ['--disallow-code-generation-from-strings', '-e', `
    const { MessageChannel, receiveMessageOnPort } = require(${JSON.stringify(require.resolve('..'))});
    const { port1, port2 } = new MessageChannel();
    const got = [];
    for (let i = 0; i < 20; i++) {
      port1.postMessage({ seq: i, name: 'tick' });
      got.push(receiveMessageOnPort(port2).message);
    }
    port1.close();
    console.log(JSON.stringify(got.slice(-2)));
  `], { encoding: 'utf8' });
  assert.strictEqual(out.trim(), '[{"seq":18,"name":"tick"},{"seq":19,"name":"tick"}]');
});
