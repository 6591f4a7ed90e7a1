'use strict';
// The golden vectors of tests/vectors (docs/wire-format.md) decode to the expected
// values, and re-encoding gives the same bytes wherever JavaScript can tell the values
// apart.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { Encoder, Decoder, VIEW_NAMES } = require('../lib/codec.js');

const dir = path.join(__dirname, '..', '..', 'tests', 'vectors');
const { vectors } = JSON.parse(fs.readFileSync(path.join(dir, 'vectors.json'), 'utf8'));

const hexBytes = (h) => Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));
function bitsToNumber(hex) {
  const dv = new DataView(new ArrayBuffer(8));
  dv.setBigUint64(0, BigInt('0x' + hex));
  return dv.getFloat64(0);
}

/** The expected value, built from the README's notation (identity kept). */
function build(v, ports, shared = []) {
  const [kind] = Object.keys(v);
  const x = v[kind];
  switch (kind) {
    case 'undefined': return undefined;
    case 'null': return null;
    case 'bool': return x;
    case 'int': {
      const n = BigInt(x);
      return Number(n); // JS numbers: exact within 2^53, nearest double beyond
    }
    case 'float': return bitsToNumber(x);
    case 'bigint': {
      const m = x.magnitude === '' ? 0n : BigInt('0x' + x.magnitude);
      return x.negative ? -m : m;
    }
    case 'string': return x;
    case 'utf16': return String.fromCharCode(...x);
    case 'boxed': return Object(build(x, ports, shared));
    case 'buffer': return hexBytes(x).buffer;
    case 'view': {
      const buf = build(x.buffer, ports, shared);
      const Ctor = x.kind === 'DataView' ? DataView : VIEW_NAMES.get(x.kind);
      if (Ctor === undefined) return { unsupportedView: x.kind };
      return new Ctor(buf, x.byte_offset, x.length);
    }
    case 'array': {
      const arr = new Array(x.length);
      x.forEach((item, i) => {
        if (!('hole' in item)) arr[i] = build(item, ports, shared);
      });
      return arr;
    }
    case 'object': return Object.fromEntries(x.map(([k, item]) => [k, build(item, ports, shared)]));
    case 'map': return new Map(x.map(([k, item]) => [build(k, ports, shared), build(item, ports, shared)]));
    case 'set': return new Set(x.map((item) => build(item, ports, shared)));
    case 'date': return new Date(bitsToNumber(x));
    case 'regexp': return new RegExp(x.source, x.flags);
    case 'error': {
      const C = globalThis[x.name] ?? Error;
      const e = 'message' in x ? new C(x.message) : new C();
      if ('stack' in x) Object.defineProperty(e, 'stack', { value: x.stack, writable: true, configurable: true });
      else delete e.stack;
      if ('cause' in x) Object.defineProperty(e, 'cause', { value: build(x.cause, ports, shared), writable: true, configurable: true });
      return e;
    }
    case 'shared': {
      // containers are registered before their contents (cycles)
      const id = shared.length;
      shared.push(undefined);
      const placeholder = { __placeholder: id };
      shared[id] = placeholder;
      const value = build(x, ports, shared);
      shared[id] = value;
      return replacePlaceholder(value, placeholder, value);
    }
    case 'ref': return shared[x];
    case 'port': return ports[x];
    default: throw new Error(`unknown notation ${kind}`);
  }
}

function replacePlaceholder(v, placeholder, value, seen = new Set()) {
  if (v === null || typeof v !== 'object' || seen.has(v)) return v;
  seen.add(v);
  if (Array.isArray(v)) v.forEach((item, i) => { if (item === placeholder) v[i] = value; else replacePlaceholder(item, placeholder, value, seen); });
  else if (v instanceof Map) for (const [k, item] of v) { if (item === placeholder) v.set(k, value); else replacePlaceholder(item, placeholder, value, seen); }
  else if (Object.getPrototypeOf(v) === Object.prototype) for (const k of Object.keys(v)) { if (v[k] === placeholder) v[k] = value; else replacePlaceholder(v[k], placeholder, value, seen); }
  return v;
}

/** Structural equality that also checks identity (shared references, cycles). */
function same(a, b, pairs = new Map()) {
  if (typeof a !== typeof b) return false;
  if (typeof a === 'number') return Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
  if (a === null || typeof a !== 'object') return a === b;
  if (pairs.has(a)) return pairs.get(a) === b;
  pairs.set(a, b);
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (a instanceof ArrayBuffer) return Buffer.from(a).equals(Buffer.from(b));
  if (ArrayBuffer.isView(a)) return a.byteOffset === b.byteOffset && a.byteLength === b.byteLength && same(a.buffer, b.buffer, pairs);
  if (a instanceof Date) return same(a.getTime(), b.getTime());
  if (a instanceof RegExp) return a.source === b.source && a.flags === b.flags;
  if (a instanceof Error) return a.name === b.name && a.message === b.message && a.stack === b.stack && same(a.cause, b.cause, pairs);
  if (a instanceof Map) return a.size === b.size && [...a].every(([k, v], i) => { const [k2, v2] = [...b][i]; return same(k, k2, pairs) && same(v, v2, pairs); });
  if (a instanceof Set) return a.size === b.size && [...a].every((v, i) => same(v, [...b][i], pairs));
  if (a instanceof Number || a instanceof String || a instanceof Boolean || a instanceof BigInt) return same(a.valueOf(), b.valueOf());
  if (Array.isArray(a)) {
    return a.length === b.length && a.every((_, i) => (i in a) === (i in b)) && [...a.keys()].every((i) => same(a[i], b[i], pairs));
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && same(a[k], b[k], pairs));
}

// Vectors whose bytes JavaScript cannot reproduce, and why.
const NOT_REENCODED = {
  float_one: '1.0 is the number 1 in JS, which is written as an integer',
  int_max: 'i64::MAX is beyond 2^53: the JS number is not exact',
  int_min: 'i64::MIN is beyond 2^53: the JS number is not exact',
  float_nan_payload: 'V8 does not keep NaN payloads through arithmetic-free copies reliably',
  buffer_side_table: 'small buffers are written inline by encoders; the vector puts one in the side table',
  error_full: 'the stack of a decoded Error is kept, but JS errors add none beyond it',
};

const decoder = new Decoder();
const encoder = new Encoder();

for (const v of vectors) {
  test(`vector ${v.name}: ${v.description}`, () => {
    const bytes = fs.readFileSync(path.join(dir, v.file));
    assert.strictEqual(Buffer.from(bytes).toString('hex'), v.hex);
    const buffers = v.buffers.map((f) => {
      const b = fs.readFileSync(path.join(dir, f));
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.length);
    });
    const ports = Array.from({ length: v.ports }, (_, i) => ({ port: i }));
    const expected = build(v.value, ports);
    if (expected && expected.unsupportedView) {
      assert.throws(() => decoder.decode(new Uint8Array(bytes), 0, bytes.length, buffers, ports), /BadTag/);
      return;
    }
    const decoded = decoder.decode(new Uint8Array(bytes), 0, bytes.length, buffers, ports);
    assert.ok(same(expected, decoded), `decoded ${v.name} as expected`);
    if (v.name in NOT_REENCODED || v.ports > 0) return;
    const len = encoder.encode(decoded, null, null);
    assert.strictEqual(Buffer.from(encoder.buf.subarray(0, len)).toString('hex'), v.hex, `re-encoded ${v.name}`);
  });
}

// tests/vectors/invalid.json: messages every decoder refuses, each with its error kind
const { invalid } = JSON.parse(fs.readFileSync(path.join(dir, 'invalid.json'), 'utf8'));
const { DecodeError } = require('../lib/codec.js');

for (const v of invalid) {
  test(`invalid vector ${v.name} (${v.error}): ${v.description}`, () => {
    const bytes = hexBytes(v.hex);
    const buffers = v.buffers.map((h) => hexBytes(h).buffer);
    const ports = Array.from({ length: v.ports }, (_, i) => ({ port: i }));
    assert.throws(
      () => decoder.decode(bytes, 0, bytes.length, buffers, ports),
      (e) => e instanceof DecodeError && e.kind === v.error,
    );
  });
}

// tests/vectors/random.txt (node/test/fixtures/random-messages.js): random messages that
// this encoder made; they decode and encode back to the same bytes, and the generator
// still writes exactly this file (the Rust core checks the same file).
test('random messages decode and re-encode to the same bytes', () => {
  const { execFileSync } = require('node:child_process');
  const text = fs.readFileSync(path.join(dir, 'random.txt'), 'utf8');
  const generated = execFileSync(process.execPath, [path.join(__dirname, 'fixtures', 'random-messages.js')], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  assert.ok(generated === text, 'random.txt is what random-messages.js writes (regenerate it)');
  const lines = text.trim().split('\n');
  assert.ok(lines.length >= 500);
  for (const [i, line] of lines.entries()) {
    const bytes = hexBytes(line);
    const value = decoder.decode(bytes, 0, bytes.length, [], []);
    const n = encoder.encode(value, null, null);
    assert.strictEqual(Buffer.from(encoder.buf.subarray(0, n)).toString('hex'), line, `line ${i + 1}`);
  }
});

test('a typed array at an unaligned byte offset (valid for the core) is BadView here', () => {
  // a Uint16Array at byte offset 1 of a 4-byte buffer: JavaScript cannot make it
  const bytes = hexBytes('d9cb01d9cb16830101d8454401020304');
  assert.throws(
    () => decoder.decode(bytes, 0, bytes.length, [], []),
    (e) => e instanceof DecodeError && e.kind === 'BadView',
  );
});

test('hostile input: truncations and bit flips of every vector never crash the decoder', () => {
  for (const v of vectors) {
    const bytes = new Uint8Array(fs.readFileSync(path.join(dir, v.file)));
    const ports = Array.from({ length: v.ports }, (_, i) => ({ port: i }));
    for (let cut = 0; cut < bytes.length; cut++) {
      assert.throws(() => decoder.decode(bytes, 0, cut, [], ports));
    }
    for (let i = 0; i < bytes.length; i++) {
      for (const bit of [1, 16, 128]) {
        const b = bytes.slice();
        b[i] ^= bit;
        try {
          decoder.decode(b, 0, b.length, [], ports);
        } catch (e) {
          assert.ok(e instanceof Error);
        }
      }
    }
  }
});

// tests/vectors/mutated.txt (core/tests/wire_vectors.rs): damaged messages, a line each,
// with what the core makes of them: `ok` (it encodes them back to the same bytes), `ok
// <hex>` (to these bytes), or the kind of its decode error. This decoder accepts what the
// core accepts and reads it as the same value, and refuses what the core refuses, except
// where docs/wire-format.md says a JavaScript decoder differs. The kinds of two refusals
// may differ: a damaged message often has several faults, and decoders meet them in
// different orders (docs/wire-format.md, 7).
const JS_ONLY_REFUSALS = [
  // a RegExp whose pattern or flags JavaScript rejects (3.6)
  { kind: 'Malformed', marker: 'd9cb13' },
  // a typed array at a byte offset its element size does not divide, or a length-tracking
  // view whose length its buffer does not give (3.4)
  { kind: 'BadView', marker: 'd9cb16' },
  // a Float16Array, where this Node has none
  ...(typeof Float16Array === 'undefined' ? [{ kind: 'BadTag', marker: 'd854' }] : []),
];
const JS_ONLY_ACCEPTANCES = [
  // a UTF-16 string (lone surrogates) as a key or an error's text (3.7)
  { kind: 'Malformed', marker: 'd9cb14' },
  // a sparse array (3.9)
  { kind: 'BadTag', marker: 'd9cb1b' },
];
const documented = (list, kind, hex) => list.some((d) => d.kind === kind && hex.includes(d.marker));

/** What this decoder makes of `hex`: ['ok', its re-encoding] or [the error kind]. */
function readHere(hex) {
  const bytes = hexBytes(hex);
  let value;
  try {
    value = decoder.decode(bytes, 0, bytes.length, [], []);
  } catch (e) {
    assert.ok(e instanceof DecodeError, `${hex}: ${e.stack}`);
    return [e.kind];
  }
  const n = encoder.encode(value, null, null);
  return ['ok', Buffer.from(encoder.buf.subarray(0, n)).toString('hex')];
}

test('damaged messages are accepted, read and refused as the core does', () => {
  const lines = fs.readFileSync(path.join(dir, 'mutated.txt'), 'utf8').trim().split('\n');
  assert.ok(lines.length >= 1000);
  let accepted = 0;
  // twice: the second pass meets shapes and keys the decoder has learnt (its fast paths)
  for (const pass of [1, 2]) {
    for (const [i, line] of lines.entries()) {
      const [hex, core, coreBytes = hex] = line.split(' ');
      const where = `mutated.txt line ${i + 1}, pass ${pass}`;
      const [kind, again] = readHere(hex);
      if (core === 'ok') {
        if (kind !== 'ok') {
          assert.ok(documented(JS_ONLY_REFUSALS, kind, hex), `${where}: the core accepts it, this decoder says ${kind}`);
          continue;
        }
        // the same value: what the core reads re-encodes here as what this decoder reads
        assert.strictEqual(again, readHere(coreBytes)[1], `${where}: read as another value`);
        accepted++;
      } else if (kind === 'ok') {
        assert.ok(documented(JS_ONLY_ACCEPTANCES, core, hex), `${where}: the core says ${core}, this decoder accepts it`);
      }
    }
  }
  assert.ok(accepted >= 100, `${accepted} accepted`);
});

// The decoder's cost grows with the message, never faster: every byte is read once.

/** How many values `decode` reads for the message `bytes` (calls of Decoder#value). */
function valuesRead(bytes) {
  const value = Decoder.prototype.value;
  let calls = 0;
  Decoder.prototype.value = function counted() {
    calls++;
    return value.call(this);
  };
  try {
    new Decoder().decode(bytes, 0, bytes.length, [], []);
  } finally {
    Decoder.prototype.value = value;
  }
  return calls;
}

test('nested objects are read once, whatever their keys (no second pass per level)', () => {
  const depth = 16;
  const cases = {
    // keys the shape tree does not follow (`__proto__`)
    proto: (d) => 'a26161'.repeat(d) + 'a0' + '695f5f70726f746f5f5f01'.repeat(d),
    // shapes seen for the first time (not yet given a factory): keys "k0" .. "k15"
    fresh: (d) => Array.from({ length: d }, (_, i) => `a2626b${(0x30 + (i % 10)).toString(16)}`).join('') + 'a0' + '617a01'.repeat(d),
  };
  for (const [name, body] of Object.entries(cases)) {
    const bytes = hexBytes('d9cb01' + body(depth));
    const reads = valuesRead(bytes);
    // one per value: the objects and their `1`s, and the innermost {}
    assert.strictEqual(reads, 2 * depth + 1, `${name}: ${reads} values read`);
  }
});

test('a large BigInt decodes exactly (its magnitude read in one pass)', () => {
  const big = (1n << 524288n) - 12345n; // 64 KiB
  for (const v of [big, -big]) {
    const n = encoder.encode(v, null, null);
    assert.strictEqual(decoder.decode(encoder.buf, 0, n, [], []), v);
  }
});

test('an Error named like an Object.prototype key arrives as an Error', () => {
  for (const name of ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf']) {
    const text = (t) => (0x60 + t.length).toString(16) + Buffer.from(t).toString('hex');
    // tag 0xCB12 over {"name": name, "message": "hi"}
    const bytes = hexBytes(`d9cb01d9cb12a2${text('name')}${text(name)}${text('message')}${text('hi')}`);
    const err = decoder.decode(bytes, 0, bytes.length, [], []);
    assert.ok(err instanceof Error, name);
    assert.strictEqual(Object.getPrototypeOf(err), Error.prototype, name);
    assert.strictEqual(err.message, 'hi', name);
  }
});
