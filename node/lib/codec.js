'use strict';
// The wire format of docs/wire-format.md (version 1), written and read straight from
// JavaScript values. Walking values here (JIT-compiled) instead of through N-API (one
// native call per property) is what makes posting cheap; the native side only moves
// the bytes.

const { types } = require('node:util');
const v8 = require('node:v8');

const hasOwn = Object.hasOwn;
const MAX_DEPTH = 256;
const SIDE_TABLE_THRESHOLD = 1024;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

const T_DATE_S = 1;
const T_BIGPOS = 2;
const T_BIGNEG = 3;
const T_SHAREABLE = 28;
const T_SHARED_REF = 29;
const T_ABSENT = 31;
const T_SET = 258;
const T_MAP = 259;
const T_ENVELOPE = 0xcb01;
const T_PORT = 0xcb10;
const T_SIDE = 0xcb11;
const T_ERROR = 0xcb12;
const T_REGEXP = 0xcb13;
const T_UTF16 = 0xcb14;
const T_BOXED = 0xcb15;
const T_VIEW = 0xcb16;
const T_DATE_MS = 0xcb17;
const T_SHARED_MEMORY = 0xcb18;
const T_RESIZABLE = 0xcb19;
const T_LENGTH_TRACKING = 0xcb1a;
const T_SPARSE_ARRAY = 0xcb1b;
// A reference whose id is not known yet (Encoder#track): tag 29 over a 4-byte integer.
const REF_PLACEHOLDER = 7;
// Encoder#link copies messages up to this size into a scratch it keeps.
const LINK_SCRATCH_MAX = 64 * 1024;
// An array of at least this length is looked at for holes first: one with at least this
// many holes, and more holes than elements in some prefix, is written in sparse form
// (tag 0xCB1B: its elements and named properties by key), in time and space that grow
// with its elements rather than its length (`a[2 ** 32 - 2] = x` is one entry).
const SPARSE_MIN_HOLES = 1024;
// The largest array index plus one: the largest array length.
const MAX_ARRAY_LENGTH = 4294967295;

// '00' .. 'ff', by byte
const HEX_BYTES = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

const ERROR_NAMES = new Set([
  'Error', 'EvalError', 'RangeError', 'ReferenceError', 'SyntaxError', 'TypeError', 'URIError',
]);
const ERROR_CTORS = { Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError };

// view constructor -> RFC 8746 tag (little-endian family); DataView has none
const VIEW_TAGS = new Map([
  [Uint8Array, 64], [Uint8ClampedArray, 68], [Uint16Array, 69], [Uint32Array, 70],
  [BigUint64Array, 71], [Int8Array, 72], [Int16Array, 77], [Int32Array, 78],
  [BigInt64Array, 79], [Float32Array, 85], [Float64Array, 86],
]);
if (typeof globalThis.Float16Array === 'function') VIEW_TAGS.set(globalThis.Float16Array, 84);
const TAG_VIEWS = new Map([...VIEW_TAGS].map(([ctor, tag]) => [tag, ctor]));
const VIEW_NAMES = new Map([...VIEW_TAGS].map(([ctor]) => [ctor.name, ctor]));

// Intrinsics, taken once. Reading a value's internal state through them is what V8's
// serializer does, whatever the value's own properties or a patched prototype say (a
// Map's own Symbol.iterator, a Date's own getTime, a typed array's own length).
const uncurry = (f) => Function.prototype.call.bind(f);
const getterOf = (proto, key) => uncurry(Object.getOwnPropertyDescriptor(proto, key).get);
const TypedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype);
const typedArrayName = getterOf(TypedArrayPrototype, Symbol.toStringTag);
const typedArrayBuffer = getterOf(TypedArrayPrototype, 'buffer');
const typedArrayByteOffset = getterOf(TypedArrayPrototype, 'byteOffset');
const typedArrayLength = getterOf(TypedArrayPrototype, 'length');
const typedArrayAt = uncurry(TypedArrayPrototype.at);
const dataViewBuffer = getterOf(DataView.prototype, 'buffer');
const dataViewByteOffset = getterOf(DataView.prototype, 'byteOffset');
const dataViewByteLength = getterOf(DataView.prototype, 'byteLength');
const dateGetTime = uncurry(Date.prototype.getTime);
const arrayBufferResizable = getterOf(ArrayBuffer.prototype, 'resizable');
const arrayBufferMaxByteLength = getterOf(ArrayBuffer.prototype, 'maxByteLength');
const sharedArrayBufferGrowable = getterOf(SharedArrayBuffer.prototype, 'growable');
const regExpSource = getterOf(RegExp.prototype, 'source');
// each flag's own getter, in the order of RegExp.prototype.flags
const REGEXP_FLAGS = [
  ['hasIndices', 'd'], ['global', 'g'], ['ignoreCase', 'i'], ['multiline', 'm'], ['dotAll', 's'],
  ['unicode', 'u'], ['unicodeSets', 'v'], ['sticky', 'y'],
].filter(([key]) => Object.getOwnPropertyDescriptor(RegExp.prototype, key) !== undefined)
  .map(([key, flag]) => [getterOf(RegExp.prototype, key), flag]);
const mapEntries = uncurry(Map.prototype.entries);
const mapIteratorNext = uncurry(Object.getPrototypeOf(new Map().entries()).next);
const mapSet = uncurry(Map.prototype.set);
const setValues = uncurry(Set.prototype.values);
const setIteratorNext = uncurry(Object.getPrototypeOf(new Set().values()).next);
const setAdd = uncurry(Set.prototype.add);
const defineProperty = Object.defineProperty;
/** An array with no elements of its own: `i in PROTO_PROBE` says whether a prototype has `i`. */
const PROTO_PROBE = Object.freeze([]);

/**
 * `arr[i] = v` for the codec's own bookkeeping arrays, safe from an accessor that
 * Array.prototype (or Object.prototype) may have for index `i`.
 */
function put(arr, i, v) {
  if (i in PROTO_PROBE) defineData(arr, i, v);
  else arr[i] = v;
}

/** `arr.push(v)`, as `put`. */
function append(arr, v) {
  put(arr, arr.length, v);
}

/**
 * Makes `v` the own data property `k` of `obj` (what structured deserialization does,
 * CreateDataProperty): an accessor that Object.prototype or Array.prototype may have
 * for `k` is not run, and does not hide the property.
 */
function defineData(obj, k, v) {
  defineProperty(obj, k, { value: v, writable: true, enumerable: true, configurable: true });
}

/** Gives a decoded object its entry k: v, an own data property whatever the key
 * (`__proto__`, or a key Object.prototype has: an own property all the same). */
function putEntry(obj, k, v) {
  if (k in obj) defineData(obj, k, v);
  else obj[k] = v;
}
const numberValueOf = uncurry(Number.prototype.valueOf);
const stringValueOf = uncurry(String.prototype.valueOf);
const booleanValueOf = uncurry(Boolean.prototype.valueOf);
const bigIntValueOf = uncurry(BigInt.prototype.valueOf);

/** Whether an ArrayBuffer is resizable, or a SharedArrayBuffer growable. */
function resizable(ab) {
  return types.isSharedArrayBuffer(ab) ? sharedArrayBufferGrowable(ab) : arrayBufferResizable(ab);
}

/** A RegExp's flags, as RegExp.prototype.flags gives them from its internal state. */
function regExpFlags(r) {
  let flags = '';
  for (const [get, flag] of REGEXP_FLAGS) if (get(r)) flags += flag;
  return flags;
}

/** A boxed primitive's value (not a Symbol: those are refused before). */
function boxedValue(v) {
  if (types.isNumberObject(v)) return numberValueOf(v);
  if (types.isStringObject(v)) return stringValueOf(v);
  if (types.isBooleanObject(v)) return booleanValueOf(v);
  return bigIntValueOf(v);
}

function dataCloneError(message) {
  return new DOMException(message, 'DataCloneError');
}

/** How V8's DataCloneError messages name a value: `#<Promise>`, `[object Generator]`, `Symbol(x)`, a function's source. */
function describe(v) {
  if (types.isProxy(v)) return describeProxy(v);
  if (typeof v === 'object' && v !== null) {
    if (types.isSymbolObject(v) || types.isGeneratorObject(v)) return Object.prototype.toString.call(v);
    return `#<${constructorName(v)}>`;
  }
  // (a function's source, as V8 gives it, whatever its own toString says)
  if (typeof v === 'function') return Function.prototype.toString.call(v);
  try {
    return typeof v === 'symbol' ? v.toString() : String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

/**
 * A Proxy as V8 names it, as far as that can be told without running the handler's
 * traps. V8 names the innermost target (an array's "[object Array]", a function's source,
 * "#<Map>"...), which JavaScript cannot reach without them: an array and a function are
 * told apart, anything else is "#<Object>".
 */
function describeProxy(v) {
  if (typeof v === 'function') return Function.prototype.toString.call(v); // (trap-free)
  try {
    return Array.isArray(v) ? '[object Array]' : '#<Object>';
  } catch {
    return '#<Object>'; // a revoked Proxy
  }
}

function constructorName(v) {
  try {
    for (let o = v; o !== null; o = Object.getPrototypeOf(o)) {
      const d = Object.getOwnPropertyDescriptor(o, 'constructor');
      if (d !== undefined && typeof d.value === 'function' && d.value.name !== '') return d.value.name;
    }
  } catch {
    // a Proxy's traps may throw: fall back below
  }
  return 'Object';
}

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
const f32 = new Float32Array(1);

/** The half-precision bits of `v` when the half reproduces all 64 bits exactly, else -1. */
function halfBits(hi, lo) {
  const sign = (hi >>> 31) << 15;
  const exp = (hi >>> 20) & 0x7ff;
  const mhi = hi & 0xfffff;
  if (exp === 0x7ff) {
    // infinities and NaNs: the low 42 mantissa bits must be zero
    if (lo !== 0 || (mhi & 0x3ff) !== 0) return -1;
    return sign | 0x7c00 | (mhi >>> 10);
  }
  if (exp === 0) return lo === 0 && mhi === 0 ? sign : -1; // zero (double subnormals: no)
  const e = exp - 1023;
  if (e >= -14 && e <= 15) {
    if (lo !== 0 || (mhi & 0x3ff) !== 0) return -1;
    return sign | ((e + 15) << 10) | (mhi >>> 10);
  }
  if (e >= -24 && e < -14) {
    // half subnormal: significand (1.m) * 2^e = k * 2^-24, k < 1024
    const shift = -14 - e; // 1..10: bits dropped from the 10-bit mantissa (+ implicit 1)
    if (lo !== 0) return -1;
    const sig = 0x100000 | mhi; // 21 bits: implicit 1 + top 20 mantissa bits
    const drop = 10 + shift; // bits of sig below the half subnormal's lsb
    if ((sig & ((1 << drop) - 1)) !== 0) return -1;
    return sign | (sig >>> drop);
  }
  return -1;
}

class Encoder {
  constructor() {
    this.buf = new Uint8Array(4096);
    this.dv = new DataView(this.buf.buffer);
    this.pos = 0;
    this.busy = false;
    this.utf8 = new TextEncoder();
    this.side = [];
    this.starts = [0]; // (see reset; element 0 is written for every message)
    this.refs = [];
    this.ids = []; // scratch of link
    this.marked = [];
    this.linkBuf = new Uint8Array(256);
    this.reset(null, null);
  }

  reset(ports, buffers) {
    this.ports = ports; // Map<port object, index> or null
    this.transferBuffers = buffers; // Set<ArrayBuffer> or null
    // per side-table entry: a Uint8Array, or a SharedArrayBuffer (shared); a new array
    // only when the last message had entries (the common message has none)
    if (this.side.length !== 0) this.side = [];
    this.depth = 0;
    // identity (track): objects in the order they were first written, each at starts[i]
    this.root = undefined; // the first one (no Map until a second one)
    this.seen = null; // Map<object, its index in that order>
    this.objects = 0;
    // per reference written: its position, the object's index (emptied by link, unless
    // an error ended the last encoding first)
    if (this.refs.length !== 0) this.refs.length = 0;
  }

  /** Ends a use of this encoder (acquireEncoder): it is free, and holds no buffer. */
  release() {
    this.busy = false;
    if (this.side.length !== 0) this.side = [];
  }

  /**
   * Encodes `value` (envelope included) into `this.buf[0..returned length]`; the side
   * table is in `this.side`. `ports` maps each transferred port object to its index,
   * `buffers` holds the transferred ArrayBuffers.
   *
   * One pass: every property is read once (spec G5: a getter runs once, and what it adds
   * or deletes later in the walk is seen as it happens). Identity (G4) is settled at the
   * end: a repeated object is written as a placeholder reference, and `link` then marks
   * the objects referenced again with tag 28 and gives the references their final ids.
   */
  encode(value, ports, buffers) {
    this.reset(ports, buffers);
    this.pos = 0;
    this.head(6, T_ENVELOPE);
    this.value(value);
    if (this.refs.length !== 0) this.link();
    this.seen = null;
    this.root = undefined;
    return this.pos;
  }

  grow(n) {
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }

  head(major, n) {
    if (this.pos + 9 > this.buf.length) this.grow(9);
    const b = this.buf;
    const m = major << 5;
    if (n < 24) {
      b[this.pos++] = m | n;
    } else if (n < 0x100) {
      b[this.pos++] = m | 24;
      b[this.pos++] = n;
    } else if (n < 0x10000) {
      b[this.pos++] = m | 25;
      b[this.pos++] = n >>> 8;
      b[this.pos++] = n & 0xff;
    } else if (n < 0x100000000) {
      b[this.pos++] = m | 26;
      this.dv.setUint32(this.pos, n);
      this.pos += 4;
    } else {
      b[this.pos++] = m | 27;
      this.dv.setUint32(this.pos, Math.floor(n / 0x100000000));
      this.dv.setUint32(this.pos + 4, n >>> 0);
      this.pos += 8;
    }
  }

  byte(x) {
    if (this.pos + 1 > this.buf.length) this.grow(1);
    this.buf[this.pos++] = x;
  }

  /** Writes src[from..to). */
  rawFrom(src, from, to) {
    const n = to - from;
    if (this.pos + n > this.buf.length) this.grow(n);
    copyBytes(this.buf, this.pos, src, from, to);
    this.pos += n;
  }

  raw(bytes) {
    if (this.pos + bytes.length > this.buf.length) this.grow(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  number(v) {
    if (Number.isInteger(v) && v <= MAX_SAFE && v >= -MAX_SAFE && !(v === 0 && 1 / v < 0)) {
      if (v >= 0) this.head(0, v);
      else this.head(1, -1 - v);
      return;
    }
    this.float(v);
  }

  float(v) {
    if (this.pos + 9 > this.buf.length) this.grow(9);
    f64[0] = v;
    const lo = u32[0];
    const hi = u32[1];
    const h = halfBits(hi, lo);
    if (h >= 0) {
      this.buf[this.pos++] = 0xf9;
      this.buf[this.pos++] = h >>> 8;
      this.buf[this.pos++] = h & 0xff;
      return;
    }
    f32[0] = v;
    if (Object.is(f32[0], v) && lo % 0x20000000 === 0) {
      this.buf[this.pos++] = 0xfa;
      if (v === v) {
        this.dv.setFloat32(this.pos, v);
      } else {
        // a NaN, narrowed bit for bit (setFloat32 would quiet a signaling one)
        this.dv.setUint32(this.pos, ((hi & 0x80000000) | 0x7f800000 | ((hi & 0xfffff) << 3) | (lo >>> 29)) >>> 0);
      }
      this.pos += 4;
      return;
    }
    this.buf[this.pos++] = 0xfb;
    this.dv.setUint32(this.pos, hi);
    this.dv.setUint32(this.pos + 4, lo);
    this.pos += 8;
  }

  text(s) {
    const len = s.length;
    if (len < 24) {
      // short ASCII fast path: byte length = length
      if (this.pos + 1 + len > this.buf.length) this.grow(1 + len);
      const b = this.buf;
      const start = this.pos;
      let p = start + 1;
      for (let i = 0; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) {
          p = -1;
          break;
        }
        b[p++] = c;
      }
      if (p >= 0) {
        b[start] = 0x60 | len;
        this.pos = p;
        return;
      }
    }
    if (!s.isWellFormed()) {
      this.utf16(s);
      return;
    }
    const max = len * 3;
    const hsize = max < 24 ? 1 : max < 0x100 ? 2 : max < 0x10000 ? 3 : max < 0x100000000 ? 5 : 9;
    if (this.pos + hsize + max > this.buf.length) this.grow(hsize + max);
    const start = this.pos;
    const { written } = this.utf8.encodeInto(s, this.buf.subarray(start + hsize));
    this.head(3, written);
    const h = this.pos - start;
    if (h !== hsize) this.buf.copyWithin(start + h, start + hsize, start + hsize + written);
    this.pos = start + h + written;
  }

  utf16(s) {
    this.head(6, T_UTF16);
    this.head(2, s.length * 2);
    if (this.pos + s.length * 2 > this.buf.length) this.grow(s.length * 2);
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      this.buf[this.pos++] = c & 0xff;
      this.buf[this.pos++] = c >>> 8;
    }
  }

  bigint(v) {
    let m = v;
    if (v < 0n) {
      this.head(6, T_BIGNEG);
      m = -1n - v;
    } else {
      this.head(6, T_BIGPOS);
    }
    if (m === 0n) {
      this.head(2, 0);
      return;
    }
    let hex = m.toString(16);
    if (hex.length % 2) hex = '0' + hex;
    const n = hex.length / 2;
    this.head(2, n);
    if (this.pos + n > this.buf.length) this.grow(n);
    for (let i = 0; i < n; i++) this.buf[this.pos++] = parseInt(hex.substr(i * 2, 2), 16);
  }

  enter() {
    if (++this.depth > MAX_DEPTH) throw dataCloneError('nesting deeper than the depth limit (256)');
  }

  /**
   * Identity: returns true when `obj` was written already, after writing a placeholder
   * reference to it (`d8 1d 1a` and its index as 4 bytes: the final id is not known yet,
   * see link); otherwise notes where it starts.
   */
  track(obj) {
    let seen = this.seen;
    if (seen === null) {
      if (this.objects === 0) {
        this.root = obj;
        this.starts[0] = this.pos; // (an own element from the start: no accessor runs)
        this.objects = 1;
        return false;
      }
      seen = new Map();
      seen.set(this.root, 0);
      this.seen = seen;
    }
    const index = seen.get(obj);
    if (index !== undefined) {
      if (this.pos + REF_PLACEHOLDER > this.buf.length) this.grow(REF_PLACEHOLDER);
      append(this.refs, this.pos);
      append(this.refs, index);
      const b = this.buf;
      b[this.pos] = 0xd8;
      b[this.pos + 1] = T_SHARED_REF;
      b[this.pos + 2] = 0x1a;
      this.dv.setUint32(this.pos + 3, index);
      this.pos += REF_PLACEHOLDER;
      return true;
    }
    seen.set(obj, this.objects);
    put(this.starts, this.objects++, this.pos);
    return false;
  }

  /**
   * Rewrites the message so that each object referenced again starts with tag 28 and
   * each placeholder reference (track) is tag 29 over its object's id: the objects marked
   * are numbered in the order they start, as the wire format asks (docs/wire-format.md,
   * section 4).
   */
  link() {
    const refs = this.refs;
    const starts = this.starts;
    // ids[k]: the id of object k when it is referenced again, else -1
    const ids = this.ids;
    for (let k = 0; k < this.objects; k++) put(ids, k, -1);
    for (let i = 1; i < refs.length; i += 2) ids[refs[i]] = 0;
    const marked = this.marked; // where the objects referenced again start
    marked.length = 0;
    for (let k = 0; k < this.objects; k++) {
      if (ids[k] === 0) {
        ids[k] = marked.length;
        append(marked, starts[k]);
      }
    }
    // the message so far, copied aside (into a scratch kept for next time when small)
    const end = this.pos;
    let src;
    if (end <= LINK_SCRATCH_MAX) {
      if (this.linkBuf.length < end) this.linkBuf = new Uint8Array(LINK_SCRATCH_MAX);
      src = this.linkBuf;
      copyBytes(src, 0, this.buf, 0, end);
    } else {
      src = this.buf.slice(0, end);
    }
    this.pos = 0;
    let from = 0;
    let m = 0;
    let r = 0;
    while (m < marked.length || r < refs.length) {
      const atMark = m < marked.length ? marked[m] : Infinity;
      const atRef = r < refs.length ? refs[r] : Infinity;
      const at = atMark < atRef ? atMark : atRef;
      this.rawFrom(src, from, at);
      if (atMark < atRef) {
        this.head(6, T_SHAREABLE);
        from = at;
        m++;
      } else {
        this.head(6, T_SHARED_REF);
        this.head(0, ids[refs[r + 1]]);
        from = at + REF_PLACEHOLDER;
        r += 2;
      }
    }
    this.rawFrom(src, from, end);
    refs.length = 0;
  }

  /** Moves the positions noted by track at or after `from` by `delta` bytes. */
  moveMarks(from, delta) {
    const starts = this.starts;
    for (let k = this.objects - 1; k >= 0 && starts[k] >= from; k--) starts[k] += delta;
    const refs = this.refs;
    for (let i = refs.length - 2; i >= 0 && refs[i] >= from; i -= 2) refs[i] += delta;
  }

  value(v) {
    switch (typeof v) {
      case 'number':
        this.number(v);
        return;
      case 'string':
        this.text(v);
        return;
      case 'boolean':
        this.byte(v ? 0xf5 : 0xf4);
        return;
      case 'undefined':
        this.byte(0xf7);
        return;
      case 'bigint':
        this.bigint(v);
        return;
      case 'object':
        if (v === null) {
          this.byte(0xf6);
          return;
        }
        this.object(v);
        return;
      default:
        throw dataCloneError(`${describe(v)} could not be cloned.`);
    }
  }

  object(v) {
    // first: anything else would run a Proxy's traps (V8 refuses a Proxy untouched)
    if (types.isProxy(v)) throw dataCloneError(`${describeProxy(v)} could not be cloned.`);
    const proto = Object.getPrototypeOf(v);
    if (proto === Object.prototype || proto === null) {
      this.plain(v);
      return;
    }
    if (Array.isArray(v)) {
      this.array(v);
      return;
    }
    if (this.ports !== null) {
      const index = this.ports.get(v);
      if (index !== undefined) {
        this.head(6, T_PORT);
        this.head(0, index);
        return;
      }
    }
    this.special(v);
  }

  plain(v) {
    if (this.track(v)) return;
    this.enter();
    const keys = Object.keys(v);
    const n = keys.length;
    const at = this.pos;
    this.head(5, n);
    const body = this.pos;
    let written = 0;
    for (let i = 0; i < n; i++) {
      const k = keys[i];
      if (!hasOwn(v, k)) continue;
      this.text(k);
      this.value(v[k]);
      written++;
    }
    if (written !== n) this.recount(at, body, written);
    this.depth--;
  }

  /** Rewrites the map head at `at` (its entries start at `body`) with `written` entries. */
  recount(at, body, written) {
    const end = this.pos;
    this.pos = at;
    this.head(5, written);
    const shift = body - this.pos; // the smaller count's head may be shorter
    if (shift !== 0) {
      this.buf.copyWithin(this.pos, body, end);
      this.moveMarks(body, -shift);
    }
    this.pos = end - shift;
  }

  array(v) {
    if (this.track(v)) return;
    this.enter();
    const n = v.length;
    if (n >= SPARSE_MIN_HOLES && isSparse(v, n)) {
      this.sparseArray(v, n);
      this.depth--;
      return;
    }
    this.head(4, n);
    for (let i = 0; i < n; i++) {
      // read first: only an undefined element can be a hole (a getter still runs once),
      // or one that Array.prototype (or Object.prototype) gives a value: serialization
      // takes own elements only (PROTO_PROBE has none of its own)
      const x = v[i];
      if ((x === undefined || i in PROTO_PROBE) && !hasOwn(v, i)) {
        this.byte(0xd8);
        this.byte(T_ABSENT);
        this.byte(0xf7);
      } else {
        this.value(x);
      }
    }
    this.depth--;
  }

  /**
   * `tag(0xCB1B, [length, {key: value, ...}])`: the array's own enumerable string keys in
   * their order (indices ascending, as unsigned integers, then other names, as text),
   * each with its value read when written; a missing index is a hole. This form keeps
   * the array's named properties too.
   */
  sparseArray(v, n) {
    this.head(6, T_SPARSE_ARRAY);
    this.head(4, 2);
    this.head(0, n);
    const keys = Object.keys(v);
    const m = keys.length;
    const at = this.pos;
    this.head(5, m);
    const body = this.pos;
    let written = 0;
    for (let i = 0; i < m; i++) {
      const k = keys[i];
      if (!hasOwn(v, k)) continue; // deleted by an earlier getter (spec G5)
      const index = arrayIndex(k);
      if (index >= 0) this.head(0, index);
      else this.text(k);
      this.value(v[k]);
      written++;
    }
    if (written !== m) this.recount(at, body, written);
  }

  special(v) {
    if (types.isAnyArrayBuffer(v)) {
      if (this.track(v)) return;
      this.buffer(v);
      return;
    }
    if (ArrayBuffer.isView(v)) {
      if (this.track(v)) return;
      this.view(v);
      return;
    }
    if (types.isDate(v)) {
      if (this.track(v)) return;
      this.date(dateGetTime(v));
      return;
    }
    if (types.isRegExp(v)) {
      if (this.track(v)) return;
      this.head(6, T_REGEXP);
      this.head(4, 2);
      this.text(regExpSource(v));
      this.text(regExpFlags(v));
      return;
    }
    if (types.isMap(v)) {
      if (this.track(v)) return;
      this.enter();
      this.head(6, T_MAP);
      const entries = [];
      const it = mapEntries(v);
      for (let r = mapIteratorNext(it); !r.done; r = mapIteratorNext(it)) entries.push(r.value);
      this.head(5, entries.length);
      for (const [k, val] of entries) {
        this.value(k);
        this.value(val);
      }
      this.depth--;
      return;
    }
    if (types.isSet(v)) {
      if (this.track(v)) return;
      this.enter();
      this.head(6, T_SET);
      const items = [];
      const it = setValues(v);
      for (let r = setIteratorNext(it); !r.done; r = setIteratorNext(it)) items.push(r.value);
      this.head(4, items.length);
      for (const item of items) this.value(item);
      this.depth--;
      return;
    }
    if (types.isNativeError(v)) {
      // (an object that merely inherits from Error.prototype clones as a plain object)
      if (this.track(v)) return;
      this.error(v);
      return;
    }
    if (types.isBoxedPrimitive(v)) {
      if (types.isSymbolObject(v)) throw dataCloneError(`${describe(v)} could not be cloned.`);
      if (this.track(v)) return;
      this.enter();
      this.head(6, T_BOXED);
      this.value(boxedValue(v));
      this.depth--;
      return;
    }
    if (Encoder.portClass !== null && v instanceof Encoder.portClass) {
      throw dataCloneError('A MessagePort in the message is not in the transfer list (ports must be transferred)');
    }
    if (
      types.isPromise(v) || types.isWeakMap(v) || types.isWeakSet(v) ||
      types.isExternal(v) || types.isModuleNamespaceObject(v) ||
      v instanceof WeakRef || types.isGeneratorObject(v) || isPlatformObject(v)
    ) {
      throw dataCloneError(`${describe(v)} could not be cloned.`);
    }
    // Any other object (class instances included) clones as a plain object.
    this.plain(v);
  }

  arrayBuffer(ab) {
    if (arrayBufferResizable(ab)) {
      // [max_byte_length, the bytes as any other buffer's]
      this.head(6, T_RESIZABLE);
      this.head(4, 2);
      this.head(0, arrayBufferMaxByteLength(ab));
    }
    if (this.transferBuffers !== null && this.transferBuffers.has(ab)) {
      let view;
      try {
        view = new Uint8Array(ab);
      } catch {
        // detached: postMessage's second pass reports it as a DataCloneError (spec C5);
        // write a placeholder meanwhile, never a TypeError from here
        this.head(2, 0);
        return;
      }
      this.head(6, T_SIDE);
      this.head(0, this.side.length);
      append(this.side, view);
      return;
    }
    let bytes;
    try {
      bytes = new Uint8Array(ab);
    } catch {
      throw dataCloneError('An ArrayBuffer is detached and could not be cloned.');
    }
    if (bytes.length >= SIDE_TABLE_THRESHOLD) {
      this.head(6, T_SIDE);
      this.head(0, this.side.length);
      append(this.side, bytes);
    } else {
      this.head(2, bytes.length);
      this.raw(bytes);
    }
  }

  /** An ArrayBuffer or a SharedArrayBuffer (not yet tracked). */
  buffer(ab) {
    if (types.isSharedArrayBuffer(ab)) this.sharedBuffer(ab);
    else this.arrayBuffer(ab);
  }

  /**
   * A SharedArrayBuffer: shared, not copied (spec G2). Its entry in the side table is the
   * buffer itself, whose memory the native side shares with every receiver.
   */
  sharedBuffer(sab) {
    if (!Encoder.sharedMemory) {
      throw dataCloneError(
        '#<SharedArrayBuffer> could not be cloned: sharing memory needs V8\'s API, ' +
          'which this process does not use (see bufferPoolStats().backend).',
      );
    }
    this.head(6, T_SHARED_MEMORY);
    this.head(0, this.side.length);
    append(this.side, sab);
  }

  view(v) {
    this.enter();
    let tag = 0;
    let length;
    let ab;
    let byteOffset;
    if (types.isDataView(v)) {
      ab = dataViewBuffer(v);
      try {
        length = dataViewByteLength(v); // (throws when out of bounds or detached)
      } catch {
        throw dataCloneError(outOfBounds(v));
      }
      byteOffset = dataViewByteOffset(v);
    } else {
      ab = typedArrayBuffer(v);
      tag = VIEW_TAGS.get(VIEW_NAMES.get(typedArrayName(v)));
      if (tag === undefined) throw dataCloneError(`${describe(v)} could not be cloned.`);
      if (resizable(ab) && isOutOfBounds(v)) throw dataCloneError(outOfBounds(v));
      length = typedArrayLength(v);
      byteOffset = typedArrayByteOffset(v);
    }
    if (resizable(ab) && isLengthTracking(v, ab)) {
      this.head(6, T_LENGTH_TRACKING);
    }
    this.head(6, T_VIEW);
    this.head(4, 3);
    this.head(0, byteOffset);
    this.head(0, length);
    if (tag !== 0) this.head(6, tag);
    if (!this.track(ab)) this.buffer(ab);
    this.depth--;
  }

  date(ms) {
    if (!Number.isNaN(ms)) {
      const s = ms / 1000;
      if (Object.is(s * 1000, ms)) {
        this.head(6, T_DATE_S);
        this.number(s);
        return;
      }
    }
    this.head(6, T_DATE_MS);
    this.float(ms);
  }

  error(e) {
    let name = 'Error';
    try {
      const n = e.name;
      if (ERROR_NAMES.has(n)) name = n;
    } catch {
      // a throwing getter: keep "Error"
    }
    const md = Object.getOwnPropertyDescriptor(e, 'message');
    const message = md !== undefined && 'value' in md ? String(md.value) : undefined;
    const st = e.stack;
    const stack = typeof st === 'string' ? st : undefined;
    // (as V8: a cause is an own data property; an accessor is not read)
    const cd = Object.getOwnPropertyDescriptor(e, 'cause');
    const hasCause = cd !== undefined && 'value' in cd;
    if (hasCause) this.enter();
    this.head(6, T_ERROR);
    this.head(5, 1 + (message !== undefined) + (stack !== undefined) + hasCause);
    this.text('name');
    this.text(name);
    if (message !== undefined) {
      this.text('message');
      this.text(message);
    }
    if (stack !== undefined) {
      this.text('stack');
      this.text(stack);
    }
    if (hasCause) {
      this.text('cause');
      this.value(cd.value);
      this.depth--;
    }
  }
}

/** The package's MessagePort class (set by index.js): such ports must be transferred. */
Encoder.portClass = null;
/** Whether SharedArrayBuffers can be posted (shared) in this process (set by index.js). */
Encoder.sharedMemory = false;

/** Copies src[from..to) to dst at `at` (a loop for short runs: no view is made). */
function copyBytes(dst, at, src, from, to) {
  if (to - from > 64) {
    dst.set(src.subarray(from, to), at);
  } else {
    for (let i = from; i < to; i++) dst[at++] = src[i];
  }
}

/**
 * Whether the array `v` of length `n` is sparse: at least SPARSE_MIN_HOLES holes, more of
 * them than elements before the last one counted. Stops there, so a huge sparse array
 * costs SPARSE_MIN_HOLES steps (or twice its elements when they come first), a dense
 * one a pass of `in` checks.
 */
function isSparse(v, n) {
  let holes = 0;
  for (let i = 0; i < n; i++) {
    if (!(i in v)) {
      holes++;
      if (holes >= SPARSE_MIN_HOLES && holes > i + 1 - holes) return true;
    }
  }
  return false;
}

/** The array index that the property key `k` names, or -1 when it names none. */
function arrayIndex(k) {
  const c = k.charCodeAt(0);
  if (!(c >= 48 && c <= 57)) return -1; // (also the empty key: NaN)
  const i = Number(k);
  return Number.isInteger(i) && i < MAX_ARRAY_LENGTH && String(i) === k ? i : -1;
}

function outOfBounds(v) {
  return `${describe(v)} could not be cloned: it is out of its buffer's bounds, or the buffer is detached.`;
}

/** Whether typed array `v` (over a resizable ArrayBuffer) is out of its buffer's bounds. */
function isOutOfBounds(v) {
  try {
    typedArrayAt(v, 0); // (validates the typed array first)
    return false;
  } catch {
    return true;
  }
}

/**
 * V8's own serializer, asked about one view: JavaScript cannot tell a length-tracking
 * view (made without a length, it follows its buffer's size) from a fixed one, but V8's
 * serialization of a view records it. The buffer is written as a reference (transferred
 * or shared, id 0), not copied, and nothing is detached.
 */
class ViewProbe extends v8.Serializer {
  _getSharedArrayBufferId() {
    return 0;
  }
}

/**
 * Whether view `v` over a resizable or growable buffer is length-tracking: the flags V8
 * writes after the view (`V`, its type, then offset, length and flags as varints, bit 0
 * of the flags: tracking). A layout other than that one (another V8) says: fixed.
 */
function isLengthTracking(v, ab) {
  let b;
  try {
    const s = new ViewProbe();
    s.writeHeader();
    if (!types.isSharedArrayBuffer(ab)) s.transferArrayBuffer(0, ab);
    s.writeValue(v);
    b = s.releaseBuffer();
  } catch {
    return false;
  }
  // header (0xff, version >= 14: views have flags), the buffer ('t' transferred / 'u'
  // shared, id 0), then 'V'
  if (b.length < 7 || b[0] !== 0xff || b[1] < 14 || (b[2] !== 0x74 && b[2] !== 0x75) || b[3] !== 0 || b[4] !== 0x56) {
    return false;
  }
  let pos = 6;
  let flags = 0;
  for (let n = 0; n < 3; n++) {
    let value = 0;
    let shift = 0;
    let byte;
    do {
      if (pos >= b.length || shift > 28) return false;
      byte = b[pos++];
      value += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    flags = value;
  }
  return pos === b.length && (flags & 1) === 1;
}

/**
 * Node's own transferable or cloneable host objects, which have no place in the wire
 * format: refused (DataCloneError) rather than cloned as an empty plain object.
 */
let platformCheck = null;
function isPlatformObject(v) {
  if (platformCheck === null) {
    const wt = require('node:worker_threads');
    const net = require('node:net');
    const crypto = require('node:crypto');
    const g = globalThis;
    const classes = [
      wt.MessagePort, wt.BroadcastChannel, g.EventTarget, g.Blob, g.File,
      net.BlockList, net.SocketAddress, crypto.KeyObject, crypto.X509Certificate, g.CryptoKey,
      g.ReadableStream, g.WritableStream, g.TransformStream,
      g.WebAssembly?.Module, g.WebAssembly?.Memory, g.WebAssembly?.Instance,
    ].filter((c) => typeof c === 'function');
    platformCheck = (x) => classes.some((c) => x instanceof c);
  }
  return platformCheck(v);
}

// -------------------------------------------------------------------- decoding

class DecodeError extends Error {
  constructor(kind, offset) {
    super(`the message could not be decoded: ${kind} at byte ${offset}`);
    this.name = 'DataCloneError';
    this.kind = kind;
    this.offset = offset;
  }
}

const HOLE = Symbol('hole');
const NO_SHARE = -1;

// A small cache of decoded object keys (most messages repeat the same keys).
const KEY_CACHE_SIZE = 4096;
const keyCacheBytes = new Array(KEY_CACHE_SIZE).fill(null);
const keyCacheStrings = new Array(KEY_CACHE_SIZE).fill('');

// (ignoreBOM: a string's leading U+FEFF is part of it, not a byte-order mark to drop)
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Object shapes: a tree of key sequences (root -> first key -> second key ...). A shape
 * seen often gets a factory, `(stack, base) => ({ k0: stack[base], k1: stack[base + 1] })`,
 * made once with `new Function`: each factory's object literal is monomorphic, where
 * `obj[k] = v` in a loop is a megamorphic keyed store (the main cost of decoding small
 * objects). Bounded in size; without code generation (--disallow-code-generation-from-
 * strings) every object takes the plain path.
 */
const SHAPE_MAX_KEYS = 16;
const SHAPE_MAX_NODES = 2048;
const SHAPE_HOT = 3;
let shapeNodes = 0;
let codegen = true;

class Shape {
  constructor(keys) {
    this.keys = keys; // the key sequence up to here
    this.k1 = undefined; // one-entry inline cache of the transitions
    this.n1 = null;
    this.k1Bytes = null; // k1 as encoded (head and UTF-8), compared in place of decoding
    // the last short text value seen after this key sequence, with its encoding
    this.vText = null;
    this.vBytes = null;
    this.vChanges = 0;
    this.more = null; // Map key -> Shape
    this.hits = 0;
    this.factory = null;
  }

  next(k) {
    if (this.k1 === k) return this.n1;
    const m = this.more?.get(k);
    if (m !== undefined) return m;
    if (shapeNodes >= SHAPE_MAX_NODES || k === '__proto__') return null;
    shapeNodes++;
    const n = new Shape([...this.keys, k]);
    if (this.n1 === null) {
      this.k1 = k;
      this.n1 = n;
      const utf = textEncoder.encode(k);
      // (a key with lone surrogates travels as UTF-16: its UTF-8 here would be U+FFFD's)
      if (utf.length < 24 && k.isWellFormed()) {
        this.k1Bytes = new Uint8Array(utf.length + 1);
        this.k1Bytes[0] = 0x60 | utf.length;
        this.k1Bytes.set(utf, 1);
      }
    } else {
      (this.more ??= new Map()).set(k, n);
    }
    return n;
  }

  make() {
    if (!codegen) return null;
    const body = this.keys.map((k, i) => `${JSON.stringify(k)}: s[b + ${i}]`).join(', ');
    try {
      // eslint-disable-next-line no-new-func
      this.factory = new Function('s', 'b', `'use strict'; return { ${body} };`);
    } catch {
      codegen = false;
    }
    return this.factory;
  }
}
const shapeRoot = new Shape([]);
const textEncoder = new TextEncoder();

/** Whether b[p..] starts with `want`. */
function bytesAt(b, p, want, end) {
  const n = want.length;
  if (end - p < n) return false;
  for (let i = 0; i < n; i++) if (b[p + i] !== want[i]) return false;
  return true;
}

class Decoder {
  constructor() {
    // every field decode() sets, in one order: one hidden class from the start
    this.b = null;
    this.pos = 0;
    this.end = 0;
    this.buffers = null;
    this.ports = null;
    this.shared = [];
    this.pendingShare = NO_SHARE;
    this.depth = 0;
    this.stack = [];
    this.sp = 0;
    this.arg = 0;
    this.bigArg = null;
    this.dv = null;
    this.dvOf = null;
  }

  decode(bytes, start, end, buffers, ports) {
    this.b = bytes;
    this.pos = start;
    this.end = end;
    this.buffers = buffers;
    this.ports = ports;
    if (this.shared.length !== 0) this.shared = []; // (an empty one is reused)
    this.pendingShare = NO_SHARE;
    this.depth = 0;
    this.sp = 0;
    // envelope
    const major = this.head();
    const arg = this.arg;
    if (major !== 6) this.fail('Malformed');
    if (arg !== T_ENVELOPE) {
      if (arg >= 0xcb00 && arg <= 0xcb0f) this.fail('UnsupportedVersion');
      this.fail('Malformed');
    }
    const v = this.value();
    if (v === HOLE) this.fail('BadTag');
    if (this.pos !== this.end) this.fail('TrailingBytes');
    return v;
  }

  fail(kind) {
    throw new DecodeError(kind, this.pos);
  }

  need(n) {
    if (this.end - this.pos < n) this.fail('Truncated');
  }

  dataView() {
    const b = this.b;
    if (this.dvOf !== b) {
      this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      this.dvOf = b;
    }
    return this.dv;
  }

  share(obj) {
    if (this.pendingShare !== NO_SHARE) {
      this.shared[this.pendingShare] = obj;
      this.pendingShare = NO_SHARE;
    }
    return obj;
  }

  enter() {
    if (++this.depth > MAX_DEPTH) this.fail('DepthLimit');
  }

  count(n, per) {
    if (this.bigArg !== null || n * per > this.end - this.pos) this.fail('Truncated');
    return n;
  }

  text(n) {
    this.count(n, 1);
    const b = this.b;
    const p = this.pos;
    if (n < 16) {
      let s = '';
      for (let i = 0; i < n; i++) {
        const c = b[p + i];
        if (c >= 0x80) {
          s = null;
          break;
        }
        s += String.fromCharCode(c);
      }
      if (s !== null) {
        this.pos += n;
        return s;
      }
    }
    let s;
    try {
      s = utf8.decode(b.subarray(p, p + n));
    } catch {
      this.fail('InvalidUtf8');
    }
    this.pos += n;
    return s;
  }

  key() {
    const at = this.pos;
    const major = this.head();
    if (major !== 3) {
      this.pos = at;
      return this.stringItem(); // a key with lone surrogates, or Malformed
    }
    const n = this.arg;
    this.count(n, 1);
    if (n > 0 && n <= 24) {
      const b = this.b;
      const p = this.pos;
      let h = n;
      for (let i = 0; i < n; i++) h = (h * 31 + b[p + i]) | 0;
      const slot = h & (KEY_CACHE_SIZE - 1);
      const cached = keyCacheBytes[slot];
      if (cached !== null && cached.length === n) {
        let same = true;
        for (let i = 0; i < n; i++) {
          if (cached[i] !== b[p + i]) {
            same = false;
            break;
          }
        }
        if (same) {
          this.pos += n;
          return keyCacheStrings[slot];
        }
      }
      const s = this.text(n);
      keyCacheBytes[slot] = b.slice(p, p + n);
      keyCacheStrings[slot] = s;
      return s;
    }
    return this.text(n);
  }

  array(n) {
    this.count(n, 1);
    this.enter();
    const arr = this.share(new Array(n));
    for (let i = 0; i < n; i++) {
      const v = this.value();
      if (v === HOLE) continue;
      // (an index found through the prototype chain: an own property all the same)
      if (i in arr) defineData(arr, i, v);
      else arr[i] = v;
    }
    this.depth--;
    return arr;
  }

  object(n) {
    this.count(n, 2);
    if (n <= SHAPE_MAX_KEYS && n > 0 && this.pendingShare === NO_SHARE && codegen) {
      // (a shareable object takes the plain path: it must exist before its children)
      return this.shaped(n);
    }
    this.enter();
    const obj = this.share({});
    for (let i = 0; i < n; i++) {
      const k = this.key();
      const v = this.value();
      if (v === HOLE) this.fail('BadTag');
      putEntry(obj, k, v);
    }
    this.depth--;
    return obj;
  }

  /**
   * Decodes the n entries onto this.stack and builds the object with its shape's factory,
   * or, when the shape has none yet (or the keys leave the shape tree), as a plain object
   * from what was decoded, decoding any entries left plainly. Every byte is read once: a
   * second pass would double the work at each level of nesting.
   */
  shaped(n) {
    const base = this.sp;
    const stack = this.stack;
    // (its slots are own elements: a write never reaches an Array.prototype accessor)
    for (let i = stack.length; i < base + n; i++) defineData(stack, i, undefined);
    let shape = shapeRoot;
    const b = this.b;
    this.enter();
    let i = 0;
    let key = ''; // the key read when the shape tree ends (next() gave null)
    for (; i < n; i++) {
      const kb = shape.k1Bytes;
      if (kb !== null && bytesAt(b, this.pos, kb, this.end)) {
        this.pos += kb.length; // the usual next key: no decoding, no lookup
        shape = shape.n1;
      } else {
        key = this.key();
        const next = shape.next(key);
        if (next === null) break;
        shape = next;
      }
      let v;
      const vb = shape.vBytes;
      if (vb !== null && bytesAt(b, this.pos, vb, this.end)) {
        this.pos += vb.length;
        v = shape.vText;
      } else {
        const at = this.pos;
        v = this.value();
        if (v === HOLE) this.fail('BadTag');
        if (typeof v === 'string' && this.pos - at <= 24 && b[at] >>> 5 === 3 && shape.vChanges < 16) {
          // remember it: the same field often carries the same short string (a field
          // whose strings keep changing stops being remembered)
          shape.vChanges++;
          shape.vText = v;
          shape.vBytes = b.slice(at, this.pos);
        }
      }
      stack[this.sp++] = v;
    }
    this.sp = base;
    let obj;
    if (i === n) {
      let f = shape.factory;
      if (f === null && ++shape.hits >= SHAPE_HOT) f = shape.make();
      if (f !== null) {
        obj = f(stack, base);
        for (let j = base; j < base + n; j++) stack[j] = undefined;
        this.depth--;
        return obj;
      }
    }
    obj = {};
    const keys = shape.keys;
    for (let j = 0; j < i; j++) {
      putEntry(obj, keys[j], stack[base + j]);
      stack[base + j] = undefined;
    }
    if (i < n) {
      // entry i's key is read; its value and the entries after it, plainly
      const v = this.value();
      if (v === HOLE) this.fail('BadTag');
      putEntry(obj, key, v);
      for (let j = i + 1; j < n; j++) {
        const k = this.key();
        const w = this.value();
        if (w === HOLE) this.fail('BadTag');
        putEntry(obj, k, w);
      }
    }
    this.depth--;
    return obj;
  }

  item() {
    const v = this.value();
    if (v === HOLE) this.fail('BadTag');
    return v;
  }

  tagged(tag) {
    switch (tag) {
      case T_SHAREABLE: {
        if (this.pendingShare !== NO_SHARE) this.fail('BadTag');
        const id = this.shared.length;
        defineData(this.shared, id, undefined);
        this.pendingShare = id;
        // tag 28 may not wrap tag 28, tag 29 or a hole (in any head width)
        const inner = this.peekTag();
        if (inner === T_SHAREABLE || inner === T_SHARED_REF || inner === T_ABSENT) this.fail('BadTag');
        const v = this.value();
        if (this.pendingShare === id) {
          this.shared[id] = v;
          this.pendingShare = NO_SHARE;
        }
        return v;
      }
      case T_SHARED_REF: {
        if (this.pendingShare !== NO_SHARE) this.fail('BadTag');
        if (this.head() !== 0) this.fail('Malformed');
        if (this.arg >= this.shared.length) this.fail('BadReference');
        return this.share(this.shared[this.arg]);
      }
      case T_ABSENT: {
        // `undefined` as the one byte f7 (f8 17 is Malformed, as every two-byte simple is)
        this.need(1);
        if (this.b[this.pos] !== 0xf7) this.fail('Malformed');
        this.pos++;
        if (this.pendingShare !== NO_SHARE) this.fail('BadTag');
        return HOLE;
      }
      case T_DATE_S: {
        const x = this.number();
        return this.share(new Date(x * 1000));
      }
      case T_DATE_MS: {
        const x = this.number();
        return this.share(new Date(x));
      }
      case T_BIGPOS:
      case T_BIGNEG: {
        const major = this.head();
        if (major !== 2) this.fail('Malformed');
        const n = this.count(this.arg, 1);
        let m = 0n;
        if (n <= 8) {
          for (let i = 0; i < n; i++) m = (m << 8n) | BigInt(this.b[this.pos + i]);
        } else {
          // through hex digits: linear, where shifting in byte by byte is quadratic
          let hex = '0x';
          for (let i = 0; i < n; i++) hex += HEX_BYTES[this.b[this.pos + i]];
          m = BigInt(hex);
        }
        this.pos += n;
        return this.share(tag === T_BIGPOS ? m : -1n - m);
      }
      case T_SET: {
        const major = this.head();
        if (major !== 4) this.fail('Malformed');
        const n = this.count(this.arg, 1);
        this.enter();
        const set = this.share(new Set());
        for (let i = 0; i < n; i++) setAdd(set, this.item());
        this.depth--;
        return set;
      }
      case T_MAP: {
        const major = this.head();
        if (major !== 5) this.fail('Malformed');
        const n = this.count(this.arg, 2);
        this.enter();
        const map = this.share(new Map());
        for (let i = 0; i < n; i++) {
          const k = this.item();
          mapSet(map, k, this.item());
        }
        this.depth--;
        return map;
      }
      case T_PORT: {
        if (this.head() !== 0) this.fail('Malformed');
        if (this.arg >= this.ports.length) this.fail('PortIndex');
        return this.share(this.ports[this.arg]);
      }
      case T_SIDE: {
        if (this.head() !== 0) this.fail('Malformed');
        if (this.arg >= this.buffers.length) this.fail('BufferIndex');
        return this.share(this.buffers[this.arg]);
      }
      case T_SHARED_MEMORY: {
        if (this.head() !== 0) this.fail('Malformed');
        if (this.arg >= this.buffers.length) this.fail('BufferIndex');
        let sab = this.buffers[this.arg];
        if (!types.isSharedArrayBuffer(sab)) {
          // an empty one has no memory to share: it arrives as an empty ArrayBuffer
          if (sab.byteLength !== 0) this.fail('BadTag');
          sab = new SharedArrayBuffer(0);
        }
        return this.share(sab);
      }
      case T_ERROR:
        return this.error();
      case T_REGEXP: {
        const major = this.head();
        if (major !== 4 || this.arg !== 2) this.fail('Malformed');
        const source = this.textItem();
        const flags = this.textItem();
        let re;
        try {
          re = new RegExp(source, flags);
        } catch {
          this.fail('Malformed');
        }
        return this.share(re);
      }
      case T_UTF16:
        return this.share(this.utf16());
      case T_BOXED: {
        this.enter();
        const innerTag = this.peekTag();
        if (innerTag === T_SHAREABLE) this.fail('BadTag');
        if (innerTag === T_SHARED_REF) this.fail('Malformed'); // a reference is no primitive
        const saved = this.pendingShare;
        this.pendingShare = NO_SHARE;
        const inner = this.item();
        this.pendingShare = saved;
        const t = typeof inner;
        if (t !== 'boolean' && t !== 'number' && t !== 'bigint' && t !== 'string') this.fail('Malformed');
        this.depth--;
        return this.share(Object(inner));
      }
      case T_VIEW:
        return this.view(false);
      case T_LENGTH_TRACKING: {
        const major = this.head();
        if (major !== 6 || this.arg !== T_VIEW) this.fail('Malformed');
        return this.view(true);
      }
      case T_RESIZABLE:
        return this.resizable();
      case T_SPARSE_ARRAY:
        return this.sparseArray();
      default:
        return this.fail('BadTag');
    }
  }

  /** The number of the tag whose head starts at this.pos (-1: no tag starts there). */
  peekTag() {
    this.need(1);
    if (this.b[this.pos] >>> 5 !== 6) return -1;
    const at = this.pos;
    this.head();
    this.pos = at;
    return this.bigArg !== null ? Infinity : this.arg;
  }

  textItem() {
    const major = this.head();
    if (major !== 3) this.fail('Malformed');
    return this.text(this.arg);
  }

  /** The content of tag 0xCB14: a string of UTF-16 code units (lone surrogates kept). */
  utf16() {
    const major = this.head();
    if (major !== 2 || this.arg % 2) this.fail('Malformed');
    const n = this.count(this.arg, 1);
    let s = '';
    for (let i = 0; i < n; i += 2) s += String.fromCharCode(this.b[this.pos + i] | (this.b[this.pos + i + 1] << 8));
    this.pos += n;
    return s;
  }

  /**
   * A string where the format asks for text but JavaScript may have a string with lone
   * surrogates (property names, an Error's message and stack): text, or tag 0xCB14.
   */
  stringItem() {
    const at = this.pos;
    const major = this.head();
    if (major === 3) return this.text(this.arg);
    if (major === 6 && this.arg === T_UTF16) return this.utf16();
    this.pos = at;
    return this.fail('Malformed');
  }

  /** The float of `n` bytes (2, 4 or 8) at this.pos (its initial byte read). */
  float(n) {
    this.need(n);
    const p = this.pos;
    this.pos += n;
    if (n === 2) return halfToNumber((this.b[p] << 8) | this.b[p + 1]);
    if (n === 8) return this.dataView().getFloat64(p);
    const bits = this.dataView().getUint32(p);
    if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) {
      // a NaN, widened bit for bit (getFloat32 would quiet a signaling one)
      u32[1] = (bits & 0x80000000) | 0x7ff00000 | ((bits & 0x7fffff) >>> 3);
      u32[0] = (bits & 7) << 29;
      return f64[0];
    }
    return this.dataView().getFloat32(p);
  }

  /**
   * A number item (a date's content): an integer or a float, else Malformed, judged by its
   * head as the core's reader does. Not through value(): that would take the date's
   * shared-value mark (tag 28) for the number.
   */
  number() {
    const at = this.pos;
    this.need(1);
    const ib = this.b[at];
    if (ib === 0xf9 || ib === 0xfa || ib === 0xfb) {
      const n = ib === 0xf9 ? 2 : ib === 0xfa ? 4 : 8;
      this.need(1 + n);
      this.pos++;
      return this.float(n);
    }
    const major = this.head();
    if (major === 0) return this.bigArg !== null ? Number(this.bigArg) : this.arg;
    if (major === 1) return this.bigArg !== null ? Number(-1n - this.bigArg) : -1 - this.arg;
    this.pos = at;
    return this.fail('Malformed');
  }

  error() {
    const major = this.head();
    if (major !== 5 || this.arg < 1 || this.arg > 4) this.fail('Malformed');
    const n = this.arg;
    const keys = ['name', 'message', 'stack', 'cause'];
    let k = 0;
    let name;
    let message;
    let stack;
    let hasCause = false;
    let cause;
    // the error object must exist before its cause (a cycle may point at it)
    let err = null;
    const pending = this.pendingShare;
    this.pendingShare = NO_SHARE;
    for (let i = 0; i < n; i++) {
      const key = this.textItem();
      let idx = keys.indexOf(key, k);
      if (idx < 0 || (i === 0 && idx !== 0) || (i > 0 && idx === 0)) this.fail('Malformed');
      k = idx + 1;
      if (key === 'name') name = this.textItem();
      else if (key === 'message') message = this.stringItem();
      else if (key === 'stack') stack = this.stringItem();
      else {
        if (i !== n - 1) this.fail('Malformed');
        err = makeError(name, message, stack);
        if (pending !== NO_SHARE) this.shared[pending] = err;
        this.enter();
        hasCause = true;
        cause = this.item();
        this.depth--;
      }
    }
    if (err === null) {
      err = makeError(name, message, stack);
      if (pending !== NO_SHARE) this.shared[pending] = err;
    }
    if (hasCause) {
      Object.defineProperty(err, 'cause', { value: cause, writable: true, enumerable: false, configurable: true });
    }
    return err;
  }

  view(tracking) {
    const major = this.head();
    if (major !== 4 || this.arg !== 3) this.fail('Malformed');
    this.enter();
    const pending = this.pendingShare;
    this.pendingShare = NO_SHARE;
    const offMajor = this.head();
    const offset = this.arg;
    // (an offset or length past 2^53 cannot be within any buffer: BadView, below)
    let huge = this.bigArg !== null;
    if (offMajor !== 0) this.fail('Malformed');
    const lenMajor = this.head();
    const length = this.arg;
    huge ||= this.bigArg !== null;
    if (lenMajor !== 0) this.fail('Malformed');
    let ctor = DataView;
    let size = 1;
    if (this.b[this.pos] !== undefined && this.b[this.pos] >>> 5 === 6) {
      // a typed-array tag, or a buffer form that is itself tagged (side, 28, 29)
      const save = this.pos;
      this.head();
      const t = this.arg;
      if (TAG_VIEWS.has(t)) {
        ctor = TAG_VIEWS.get(t);
        size = ctor.BYTES_PER_ELEMENT;
      } else if (t === 84 || (t >= 64 && t <= 87)) {
        this.fail('BadTag');
      } else {
        this.pos = save;
      }
    }
    const buf = this.viewBuffer();
    if (huge || offset + length * size > buf.byteLength) this.fail('BadView');
    let view;
    try {
      // a length-tracking view is made without a length (it then covers the rest of its
      // buffer, and follows its resizes)
      view = tracking ? new ctor(buf, offset) : new ctor(buf, offset, length);
    } catch {
      this.fail('BadView');
    }
    if (tracking) {
      // as long as when it was posted (a shared buffer may have grown since)
      const now = ctor === DataView ? view.byteLength : view.length;
      if (now < length || (now !== length && !types.isSharedArrayBuffer(buf))) this.fail('BadView');
    }
    if (pending !== NO_SHARE) this.shared[pending] = view;
    this.depth--;
    return view;
  }

  /** Tag 0xCB19's content, `[max_byte_length, buffer]`: a resizable copy of the buffer. */
  resizable() {
    const at = this.pos;
    const major = this.head();
    if (major !== 4 || this.arg !== 2) this.fail('Malformed');
    const maxMajor = this.head();
    const max = this.arg;
    if (maxMajor !== 0 || this.bigArg !== null) this.fail('Malformed');
    // its content is a byte string or a side-table buffer (tag 0xCB11), nothing else
    this.need(1);
    if (this.b[this.pos] >>> 5 !== 2 && this.peekTag() !== T_SIDE) this.fail('Malformed');
    // the inner buffer is not the shared value (tag 28 marks the resizable one)
    const pending = this.pendingShare;
    this.pendingShare = NO_SHARE;
    const inner = this.value();
    this.pendingShare = pending;
    if (!types.isArrayBuffer(inner) || inner.resizable) {
      this.pos = at;
      this.fail('Malformed');
    }
    if (inner.byteLength > max) this.fail('Malformed');
    let ab;
    try {
      ab = new ArrayBuffer(inner.byteLength, { maxByteLength: max });
    } catch {
      this.fail('Malformed'); // a maximum this engine cannot reserve
    }
    new Uint8Array(ab).set(new Uint8Array(inner));
    return this.share(ab);
  }

  /** The content of tag 0xCB1B (see Encoder#sparseArray): a new array. */
  sparseArray() {
    const major = this.head();
    if (major !== 4 || this.arg !== 2) this.fail('Malformed');
    const lengthMajor = this.head();
    const length = this.arg;
    if (lengthMajor !== 0 || length > MAX_ARRAY_LENGTH) this.fail('Malformed');
    const mapMajor = this.head();
    if (mapMajor !== 5) this.fail('Malformed');
    const m = this.count(this.arg, 2);
    this.enter();
    const arr = this.share([]);
    if (length > m) {
      // It has holes. Give it its length through its last index, then delete that: V8
      // then keeps the elements in a dictionary. `new Array(length)` (or setting
      // `length`) would reserve `length` slots below 2^25, 8 bytes each, for a message
      // of a few bytes.
      defineData(arr, length - 1, undefined);
      delete arr[length - 1];
    }
    let next = 0; // indices ascend: the next one is at least this
    for (let i = 0; i < m; i++) {
      const at = this.pos;
      const keyMajor = this.head();
      let key;
      if (keyMajor === 0) {
        key = this.arg;
        if (key < next || key >= length) {
          this.pos = at;
          this.fail('Malformed');
        }
        next = key + 1;
      } else {
        this.pos = at;
        key = this.stringItem();
        if (arrayIndex(key) >= 0 || key === 'length') {
          this.pos = at;
          this.fail('Malformed');
        }
      }
      const v = this.item();
      if (key in arr) defineData(arr, key, v);
      else arr[key] = v;
    }
    this.depth--;
    return arr;
  }

  viewBuffer() {
    const at = this.pos;
    const reference = this.peekTag() === T_SHARED_REF;
    const v = this.value();
    if (!types.isArrayBuffer(v) && !types.isSharedArrayBuffer(v)) {
      // a reference (tag 29) to something else is BadReference; anything else, BadView
      this.pos = at;
      this.fail(reference ? 'BadReference' : 'BadView');
    }
    return v;
  }
}

function makeError(name, message, stack) {
  // (own names only: "toString" or "constructor" must not find Object.prototype's)
  const Ctor = ERROR_NAMES.has(name) ? ERROR_CTORS[name] : Error;
  const err = message === undefined ? new Ctor() : new Ctor(message);
  // the message's stack, or (as V8 gives it) an own `stack` that is undefined: none is
  // invented at the receiver
  Object.defineProperty(err, 'stack', { value: stack, writable: true, enumerable: false, configurable: true });
  return err;
}

// value() and head() are defined here, after the class, to keep the hot paths together.
Decoder.prototype.value = function value() {
  this.need(1);
  const ib = this.b[this.pos];
  if (ib >>> 5 === 7) {
    this.pos++;
    switch (ib) {
      case 0xf4:
        return this.share(false);
      case 0xf5:
        return this.share(true);
      case 0xf6:
        return this.share(null);
      case 0xf7:
        return this.share(undefined);
      case 0xf9:
        return this.share(this.float(2));
      case 0xfa:
        return this.share(this.float(4));
      case 0xfb:
        return this.share(this.float(8));
      default:
        this.pos--;
        return this.fail('Malformed');
    }
  }
  const major = this.head();
  const arg = this.arg;
  switch (major) {
    case 0:
      if (this.bigArg !== null) {
        return this.share(this.bigArg > 0x7fffffffffffffffn ? this.bigArg : Number(this.bigArg));
      }
      return this.share(arg);
    case 1:
      if (this.bigArg !== null) {
        return this.share(this.bigArg > 0x7fffffffffffffffn ? -1n - this.bigArg : Number(-1n - this.bigArg));
      }
      return this.share(-1 - arg);
    case 2: {
      this.count(arg, 1);
      const ab = this.b.slice(this.pos, this.pos + arg).buffer;
      this.pos += arg;
      return this.share(ab);
    }
    case 3:
      return this.share(this.text(arg));
    case 4:
      return this.array(arg);
    case 5:
      return this.object(arg);
    default:
      return this.tagged(arg);
  }
};

function halfToNumber(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) {
    if (mant === 0) return sign * Infinity;
    // NaN with payload: widen exactly through the bit pattern
    u32[1] = ((h & 0x8000) << 16) | 0x7ff00000 | (mant << 10);
    u32[0] = 0;
    return f64[0];
  }
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Reads a head: the major type is returned, the argument left in this.arg (exact up to
 * 2^53) and, above that, in this.bigArg. */
Decoder.prototype.head = function head() {
  this.need(1);
  const b = this.b;
  const ib = b[this.pos++];
  const info = ib & 31;
  this.bigArg = null;
  if (info < 24) {
    this.arg = info;
  } else if (info === 24) {
    this.need(1);
    this.arg = b[this.pos++];
  } else if (info === 25) {
    this.need(2);
    this.arg = (b[this.pos] << 8) | b[this.pos + 1];
    this.pos += 2;
  } else if (info === 26) {
    this.need(4);
    const p = this.pos;
    this.arg = b[p] * 0x1000000 + ((b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]);
    this.pos += 4;
  } else if (info === 27) {
    this.need(8);
    const dv = this.dataView();
    const hi = dv.getUint32(this.pos);
    const lo = dv.getUint32(this.pos + 4);
    this.pos += 8;
    this.arg = hi * 0x100000000 + lo;
    if (hi >= 0x200000) this.bigArg = (BigInt(hi) << 32n) | BigInt(lo);
  } else {
    this.pos--;
    this.fail('Malformed');
  }
  return ib >>> 5;
};

/**
 * Gives the head writer and reader (and the integer paths around them) type feedback
 * for every argument size, once per thread, at load. A counter in a stream of messages
 * grows past 255, then 65535, long after the code that encodes and decodes it was
 * optimized; its first wider head would reach a branch that code has never run,
 * deoptimize it, and have it (and every function it was inlined into) compiled again,
 * in every thread. Priming costs a few microseconds. (Not with 8-byte heads: values
 * past 2^32 are not small integers, and feedback for them would make the argument a
 * double everywhere.)
 */
function primeHeads() {
  const encoder = new Encoder();
  const decoder = new Decoder();
  const none = [];
  for (let round = 0; round < 4; round++) {
    for (const magnitude of [0, 24, 0x100, 0x10000]) {
      for (const v of [magnitude, -1 - magnitude]) {
        const length = encoder.encode(v, null, null);
        if (decoder.decode(encoder.buf, 0, length, none, none) !== v) {
          throw new Error(`codec self-check failed for ${v}`);
        }
      }
    }
  }
}
primeHeads();

module.exports = {
  Encoder,
  Decoder,
  DecodeError,
  dataCloneError,
  VIEW_NAMES,
  SIDE_TABLE_THRESHOLD,
};
