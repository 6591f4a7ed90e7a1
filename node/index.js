'use strict';
// channel-messaging for Node: a drop-in for worker_threads' MessageChannel, MessagePort,
// receiveMessageOnPort and BroadcastChannel, backed by the channel-messaging Rust core.
//
// Values are encoded here, in JavaScript, into the wire format (lib/codec.js); the
// native addon moves bytes, buffers and ports, and wakes this thread through a
// ThreadsafeFunction when a started port has something to read.

const native = require('./channel-messaging.node');

// post(endpoint, bytes, length), postOwn(endpoint, length) and recv(endpoint) over buffers
// registered once, without napi-rs' per-call class check (see node/src/fast.rs)
const fast = native.fastApi();
const { Encoder, Decoder, DecodeError, dataCloneError } = require('./lib/codec.js');
const { types, inspect } = require('node:util');
const EventEmitter = require('node:events');
const { AsyncResource } = require('node:async_hooks');
// Node's own structured clone (this module's `structuredClone` is the package's) and,
// from Node 21, its untransferable check: a transferred ArrayBuffer that is not a
// zero-copy block is detached through Node's transfer (detachTransferred)
const nodeStructuredClone = globalThis.structuredClone;
const { isMarkedAsUntransferable } = require('node:worker_threads');

const kCreate = Symbol('kCreate');
const kState = Symbol('kState');
const kListeners = Symbol('kListeners');
const kHandlers = Symbol('kHandlers');
const kTarget = Symbol('kTarget');
const kData = Symbol('kData');
const kPorts = Symbol('kPorts');
const kStop = Symbol('kStop');
const kLive = Symbol('kLive'); // an event of ours that is being dispatched
const kEtMessage = Symbol('kEtMessage'); // EventTarget-style 'message' listeners
const kInit = Symbol('kInit'); // a constructed MessageEvent's origin, lastEventId and source

// Where Node's EventTarget keeps its listener limit and whether it has warned: own
// properties of every EventTarget, ours included (super() sets them), under symbols Node
// does not export; found by their descriptions. `events.setMaxListeners(n, port)` writes
// them, as it does on Node's ports; without them (another runtime), slots of our own.
const [kMaxListeners, kMaxWarned] = (() => {
  const own = Object.getOwnPropertySymbols(new EventTarget());
  const find = (d) => own.find((sym) => sym.description === d) ?? Symbol(d);
  return [find('events.maxEventTargetListeners'), find('events.maxEventTargetListenersWarned')];
})();

/** Messages one wake-up delivers before yielding to the event loop (timers, I/O). */
const BATCH = 1000;

// Between two messages, as between two callbacks of Node's own MessagePort, every
// process.nextTick callback and microtask that the first one queued runs (so an
// events.once() loop loses nothing). The native delivery loop gets that from one
// napi_make_callback per message; this runs the same thing (Node's runNextTicks: the
// microtask queue, then the tick queue, as the callback scope does when it closes) so
// that one callback can deliver every message already queued, which costs a third less
// per message. What differs from one callback per message: async_hooks see one
// before/after pair per run of messages, not one per message. Without it (another
// runtime), one message per callback.
const RUN_TICKS = typeof process._tickCallback === 'function' ? process._tickCallback : null;

// Hot-port polling (see deliverStep): after delivering messages, a port whose messages
// have been arriving within SPIN_MAX_NS of it going idle polls its queue for a while
// before returning to the event loop, so that a reply arriving within microseconds is
// delivered without a kernel wake-up. Bounded: never more than SPIN_MAX_NS per idle
// transition, never once the current run of deliveries has held the thread for 1 ms
// (the native loop's HOT_SLICE: it then returns to the event loop), and only after a
// wake-up delivered something (a spurious wake-up never polls).
const SPIN_MAX_NS = 50_000;
const SPIN_MIN_NS = 5_000;
// after n polls in a row that timed out, the next 2^n - 1 idle spells do not poll
const SPIN_BACKOFF_MAX = 10;

const RECV_EMPTY = -1;
const RECV_ENDED = -2;

// why the native wake-up called (node/src/lib.rs; 0, a message, goes to the delivery
// loop directly: fast.watchReady)
const WAKE_CLOSE = 1;
const WAKE_SPACE = 2;

const noop = () => {};

// what a deliver function tells the native delivery loop (node/src/fast.rs)
const DELIVER_STOP = 0; // idle (or stopped): leave the loop until scheduled again
const DELIVER_NEXT = 1; // pop the next message and call again
const DELIVER_YIELD = 2; // the batch is done: continue on the next event-loop iteration
// the result's bits from here up: how long (ns) the loop may poll an empty queue
const DELIVER_SPIN_SHIFT = 3;
// the loop's argument after an exception escaped: deliver nothing
const DELIVER_FLUSH = -4;
// the loop's argument when polling timed out with the queue still empty
const RECV_SPUN = -5;

// ------------------------------------------------------------------------ errors

function nodeError(Base, code, message) {
  const e = new Base(message);
  e.code = code;
  return e;
}

/** Node's ERR_INVALID_ARG_TYPE for the argument (or, with `kind`, the property) `name`. */
function invalidArgType(name, expected, value, kind = 'argument') {
  let received;
  if (value === null || value === undefined) received = ` Received ${value}`;
  else if (typeof value === 'function') received = ` Received function ${value.name}`;
  else if (typeof value === 'object') {
    received = value.constructor?.name
      ? ` Received an instance of ${value.constructor.name}`
      : ` Received ${types.isProxy(value) ? 'a Proxy' : 'an object'}`;
  } else {
    // as Node prints it: inspected (strings quoted), cut to 25 characters past 28
    let shown = inspect(value, { colors: false });
    if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
    received = ` Received type ${typeof value} (${shown})`;
  }
  return nodeError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "${name}" ${kind} must be ${expected}.${received}`);
}

// -------------------------------------------------------------------- encoding

const encoders = [];
const decoder = new Decoder();
// receives land here (registered with the addon, re-registered when it grows)
let scratch = new Uint8Array(64 * 1024);
fast.setScratch(scratch);
// the buffer registered for postOwn: the outermost encoder's, while it does not grow
let postBuffer = null;

/** Posts the first `len` bytes of `enc.buf` to the endpoint: the error message or null. */
function postBytes(ep, enc, len) {
  if (enc.buf !== postBuffer) {
    if (enc !== encoders[0]) return fast.post(ep, enc.buf, len);
    postBuffer = enc.buf;
    fast.setPostBuffer(postBuffer);
  }
  return fast.postOwn(ep, len);
}

/**
 * As postBytes, to every member of a PortCollection: how many ports it reached, or -1
 * when `enc` is a nested encoder (its buffer is not the registered one).
 */
function postCollectionBytes(ep, enc, len) {
  if (enc.buf !== postBuffer) {
    if (enc !== encoders[0]) return -1;
    postBuffer = enc.buf;
    fast.setPostBuffer(postBuffer);
  }
  return fast.postCollection(ep, len);
}

function acquireEncoder() {
  // a getter in a message may post from inside an encode: each depth gets its own
  for (const e of encoders) {
    if (!e.busy) {
      e.busy = true;
      return e;
    }
  }
  const e = new Encoder();
  e.busy = true;
  encoders.push(e);
  return e;
}

// ------------------------------------------------------------------------ events

const NO_PORTS = Object.freeze([]);

/** MessageEvent's init.ports as an array, each a MessagePort (Node's check and error). */
function checkEventPorts(ports) {
  const list = [...ports];
  for (let i = 0; i < list.length; i++) {
    if (!(list[i] instanceof MessagePort)) {
      throw invalidArgType(`init.ports[${i}]`, 'an instance of MessagePort', list[i], 'property');
    }
  }
  return list;
}

/** The event of 'message' and 'messageerror' (spec J): data, ports, target. */
class MessageEvent extends Event {
  constructor(type, init = undefined) {
    super(type);
    // init's members read in Node's order: data, origin, lastEventId, source, ports
    this[kData] = init?.data ?? null;
    if (init !== undefined && init !== null) {
      const origin = init.origin;
      const lastEventId = init.lastEventId;
      const source = init.source;
      if (source !== undefined && source !== null && !(source instanceof MessagePort)) {
        throw invalidArgType('init.source', 'an instance of MessagePort', source, 'property');
      }
      if (origin !== undefined || lastEventId !== undefined || (source !== undefined && source !== null)) {
        // (only events made with these: the events of delivered messages have none)
        this[kInit] = {
          origin: origin === undefined ? '' : `${origin}`,
          lastEventId: lastEventId === undefined ? '' : `${lastEventId}`,
          source: source ?? null,
        };
      }
    }
    // (only a missing member is no ports: null, false or 0 are not iterable, a TypeError
    // as in Node and WebIDL)
    const ports = init?.ports;
    this[kPorts] = ports === undefined ? NO_PORTS : Object.freeze(checkEventPorts(ports));
    this[kTarget] = null;
    this[kStop] = false;
    this[kLive] = false;
  }

  get data() {
    return this[kData];
  }

  get ports() {
    return this[kPorts];
  }

  get origin() {
    return this[kInit]?.origin ?? '';
  }

  get lastEventId() {
    return this[kInit]?.lastEventId ?? '';
  }

  get source() {
    return this[kInit]?.source ?? null;
  }

  get target() {
    return this[kTarget] ?? super.target;
  }

  get currentTarget() {
    if (this[kTarget] === null) return super.currentTarget;
    return this[kLive] ? this[kTarget] : null;
  }

  get srcElement() {
    return this[kTarget] ?? super.srcElement;
  }

  get eventPhase() {
    if (this[kTarget] === null) return super.eventPhase;
    return this[kLive] ? Event.AT_TARGET : Event.NONE;
  }

  composedPath() {
    if (this[kTarget] === null) return super.composedPath();
    return this[kLive] ? [this[kTarget]] : [];
  }

  stopImmediatePropagation() {
    this[kStop] = true;
    super.stopImmediatePropagation();
  }
}
// `event instanceof MessageEvent` holds for Node's global MessageEvent too (its prototype
// has only the getters this class overrides); the constructor stays Event's
if (typeof globalThis.MessageEvent === 'function' && globalThis.MessageEvent.prototype instanceof Event) {
  Object.setPrototypeOf(MessageEvent.prototype, globalThis.MessageEvent.prototype);
}

/** A plain event fired by this package (close), with `target` set. */
class PortEvent extends Event {
  constructor(type, target) {
    super(type);
    this[kTarget] = target;
    this[kStop] = false;
    this[kLive] = false;
  }
}

/**
 * The event `emit(type, arg)` gives EventTarget-style listeners for a type other than
 * 'message' and 'messageerror': as Node's, a CustomEvent whose `detail` is `arg`, with
 * `target` set. (Named CustomEvent, as the class of Node's is.)
 */
const PortCustomEvent = typeof globalThis.CustomEvent === 'function'
  ? class CustomEvent extends globalThis.CustomEvent {
    constructor(type, target, detail) {
      super(type, { detail });
      this[kTarget] = target;
      this[kStop] = false;
      this[kLive] = false;
    }
  }
  : null;
// The target, phase and path members of the events this package dispatches are
// MessageEvent's: their fallbacks for a target-less event apply once dispatchEvent has
// retargeted one, and their `super` calls reach Event's own methods either way.
for (const key of ['target', 'currentTarget', 'srcElement', 'eventPhase', 'composedPath', 'stopImmediatePropagation']) {
  const d = Object.getOwnPropertyDescriptor(MessageEvent.prototype, key);
  Object.defineProperty(PortEvent.prototype, key, d);
  if (PortCustomEvent !== null) Object.defineProperty(PortCustomEvent.prototype, key, d);
}

function reportListenerError(err) {
  // as Node's EventTarget does: an uncaught exception, after this dispatch
  process.nextTick(() => {
    throw err;
  });
}

/**
 * As Node's EventTarget: when a listener returns a promise (an async listener), its
 * rejection is reported as the listener's exception would be, not as an unhandled
 * rejection.
 */
function catchRejection(result) {
  if (result !== undefined && result !== null) {
    const then = result.then;
    if (typeof then === 'function') then.call(result, undefined, reportListenerError);
  }
}

/**
 * Listener storage with EventTarget semantics (dedupe by listener and capture, once,
 * signal, handleEvent objects) and Node's on/once/off style, in one ordered list per
 * type. Lists are copy-on-write, so dispatch iterates without copying.
 */
class ListenerTarget extends EventTarget {
  constructor() {
    super();
    this[kListeners] = new Map(); // type -> array of entries
    this[kHandlers] = new Map(); // type -> event handler attribute entry
    this[kEtMessage] = 0;
    if (!Object.hasOwn(this, kMaxListeners)) {
      this[kMaxListeners] = EventEmitter.defaultMaxListeners;
      this[kMaxWarned] = false;
    }
  }

  /** Called when the count of listeners of `type` goes 0 -> 1 or 1 -> 0. */
  [Symbol.for('channel-messaging.listenerCountChanged')](_type, _count) {}

  addEventListener(type, listener, options = undefined) {
    checkThis(this, ET);
    if (arguments.length < 2) throw missingTypeAndListener();
    // in Node's order: the options (their getters run even for a null listener), the
    // listener, the type
    const { capture, once, signal } = listenerOptions(options);
    if (!isListener(listener)) {
      noEffect(this, type, listener);
      return;
    }
    const t = eventType(type);
    if (signal?.aborted) return;
    const entry = addEntry(this, t, { listener, capture, once, nodeStyle: false, removed: false, handler: false });
    if (entry !== null && signal !== undefined) {
      signal.addEventListener('abort', () => this.removeEventListener(t, listener, { capture }), { once: true });
    }
  }

  removeEventListener(type, listener, options = undefined) {
    checkThis(this, ET);
    if (arguments.length < 2) throw missingTypeAndListener();
    if (!isListener(listener)) return;
    const t = eventType(type);
    // (a boolean is the capture flag, as the DOM has it; Node 20 ignores it here)
    const capture = typeof options === 'boolean' ? options : Boolean(options?.capture);
    removeEntry(this, t, listener, capture, null);
  }

  /**
   * Node's EventTarget dispatches (it alone can set an event's target, phase and path),
   * to one listener of its own that runs this target's listeners.
   */
  dispatchEvent(event) {
    checkThis(this, ET);
    if (arguments.length === 0) {
      throw nodeError(TypeError, 'ERR_MISSING_ARGS', 'The "event" argument must be specified');
    }
    if (!(event instanceof Event)) throw invalidArgType('event', 'an instance of Event', event);
    const target = event[kTarget];
    if (target !== null && target !== undefined) {
      // an event this package dispatched (a message's, a close, an emit's): as Node's,
      // refused while its own dispatch runs, and retargeted (by Node's EventTarget,
      // below) when dispatched again afterwards
      if (event[kLive] === true) {
        throw nodeError(Error, 'ERR_EVENT_RECURSION', `The event "${event.type}" is already being dispatched`);
      }
      event[kTarget] = null;
    }
    const type = event.type;
    super.addEventListener(type, dispatchBridge);
    try {
      return super.dispatchEvent(event);
    } finally {
      super.removeEventListener(type, dispatchBridge);
    }
  }

  // ---- Node's EventEmitter-style methods (NodeEventTarget) ----

  on(type, listener) {
    checkThis(this, NET);
    return addNodeStyle(this, type, listener, false);
  }

  addListener(type, listener) {
    checkThis(this, NET);
    return this.on(type, listener);
  }

  once(type, listener) {
    checkThis(this, NET);
    return addNodeStyle(this, type, listener, true);
  }

  /** As Node's: removeEventListener with the same arguments (options too); the target. */
  off(type, listener, options = undefined) {
    checkThis(this, NET);
    this.removeEventListener(type, listener, options);
    return this;
  }

  removeListener(type, listener, options = undefined) {
    checkThis(this, NET);
    this.removeEventListener(type, listener, options);
    return this;
  }

  removeAllListeners(type = undefined) {
    checkThis(this, NET);
    const types = type === undefined ? [...this[kListeners].keys()] : [String(type)];
    for (const t of types) {
      for (const e of this[kListeners].get(t) ?? []) removeEntry(this, t, e.listener, e.capture, e);
    }
    return this;
  }

  emit(type, arg) {
    checkThis(this, NET);
    if (typeof type !== 'string') throw invalidArgType('type', 'of type string', type);
    const had = this.listenerCount(type) > 0;
    // EventTarget-style listeners get an event, as in Node: for 'message' and
    // 'messageerror' a MessageEvent whose data is the argument, for other types a
    // CustomEvent whose detail is
    const makeEvent = type === 'message' || type === 'messageerror'
      ? () => makeMessageEvent(type, this, arg, EMPTY)
      : PortCustomEvent !== null ? () => new PortCustomEvent(type, this, arg) : null;
    dispatch(this, type, null, arg, false, makeEvent);
    return had;
  }

  listenerCount(type) {
    return checkThis(this, NET).get(String(type))?.length ?? 0;
  }

  /**
   * The listeners of `type`, in the order they were added: functions, `handleEvent`
   * objects, and the `on<type>` handler's function. Node's ports have no such method;
   * `events.getEventListeners(port, type)` calls it, and so lists ours as it lists
   * Node's.
   */
  listeners(type) {
    return (checkThis(this, NET).get(String(type)) ?? []).map((e) => e.listener);
  }

  eventNames() {
    return [...checkThis(this, NET).keys()].filter((t) => this.listenerCount(t) > 0);
  }

  /** As Node's ports: `events.setMaxListeners(n, this)` (n validated, the warning re-armed). */
  setMaxListeners(n) {
    checkThis(this, NET);
    EventEmitter.setMaxListeners(n, this);
  }

  getMaxListeners() {
    checkThis(this, NET);
    return this[kMaxListeners];
  }
}

const ET = 'EventTarget';
const NET = 'NodeEventTarget';

/**
 * `target`'s listener map; Node's ERR_INVALID_THIS (naming `kind`, as Node's EventTarget
 * and NodeEventTarget methods do) when `target` is not a port or channel of this package.
 */
function checkThis(target, kind) {
  const map = target === null || target === undefined ? undefined : target[kListeners];
  if (map === undefined) throw nodeError(TypeError, 'ERR_INVALID_THIS', `Value of "this" must be of type ${kind}`);
  return map;
}

/** `target`'s event handler map; Node's ERR_INVALID_ARG_TYPE for an `on<type>` accessor's `this`. */
function handlerMap(target) {
  const map = typeof target === 'object' && target !== null ? target[kHandlers] : undefined;
  if (map === undefined) throw invalidArgType('this', 'an instance of EventTarget', target);
  return map;
}

/**
 * As Node's EventTarget, once per target: a MaxListenersExceededWarning when a type
 * gets more listeners than the target's limit (0: no limit; see setMaxListeners).
 */
function checkMaxListeners(target, type, size) {
  const max = target[kMaxListeners];
  if (!(max > 0) || size <= max || target[kMaxWarned]) return;
  target[kMaxWarned] = true;
  const w = new Error(
    `Possible EventTarget memory leak detected. ${size} ${type} listeners added to `
      + `${target instanceof MessagePort ? '[MessagePort [EventTarget]]' : inspect(target, { depth: -1 })}. MaxListeners is ${max}. Use events.setMaxListeners() to increase limit`,
  );
  w.name = 'MaxListenersExceededWarning';
  w.target = target;
  w.type = type;
  w.count = size;
  process.emitWarning(w);
}

/**
 * Node's test of a listener, for every style: a function or any object (its handleEvent
 * is looked up when called) is one; null and undefined are not, and adding them has no
 * effect but a warning (noEffect); anything else is ERR_INVALID_ARG_TYPE.
 */
function isListener(listener) {
  if (typeof listener === 'function' || (typeof listener === 'object' && listener !== null)) return true;
  if (listener === null || listener === undefined) return false;
  throw invalidArgType('listener', 'an instance of EventListener', listener);
}

/** on / once: adds a Node-style listener (null or undefined: only the warning); the target. */
function addNodeStyle(target, type, listener, once) {
  if (isListener(listener)) {
    addEntry(target, eventType(type), { listener, capture: false, once, nodeStyle: true, removed: false, handler: false });
  } else {
    noEffect(target, type, listener);
  }
  return target;
}

/** Node's AddEventListenerArgumentTypeWarning, for a null or undefined listener added. */
function noEffect(target, type, listener) {
  const w = new Error(`addEventListener called with ${listener} which has no effect.`);
  w.name = 'AddEventListenerArgumentTypeWarning';
  w.target = target;
  w.type = type;
  process.emitWarning(w);
}

const NO_OPTIONS = Object.freeze({ capture: false, once: false, signal: undefined });

/**
 * addEventListener's options as Node reads them: a boolean is `capture`; null and
 * undefined are none; any other primitive is ERR_INVALID_ARG_TYPE; an object's `once`,
 * `capture`, `passive` and `signal` are read in that order, and a signal must look like
 * an AbortSignal.
 */
function listenerOptions(options) {
  if (options === undefined || options === null) return NO_OPTIONS;
  if (typeof options === 'boolean') return { capture: options, once: false, signal: undefined };
  if (typeof options !== 'object' && typeof options !== 'function') {
    throw invalidArgType('options', 'of type object', options);
  }
  const once = Boolean(options.once);
  const capture = Boolean(options.capture);
  void Boolean(options.passive); // (read, as Node reads it; a passive listener is an ordinary one here)
  const signal = options.signal;
  if (signal !== undefined && (signal === null || typeof signal !== 'object' || !('aborted' in signal))) {
    throw invalidArgType('options.signal', 'an instance of AbortSignal', signal, 'property');
  }
  return { capture, once, signal };
}

/** An event type as Node converts it (WebIDL's DOMString): a Symbol is refused. */
function eventType(type) {
  if (typeof type === 'symbol') {
    throw nodeError(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument 'value' is invalid. Received ${String(type)}`);
  }
  return `${type}`;
}

function missingTypeAndListener() {
  return nodeError(TypeError, 'ERR_MISSING_ARGS', 'The "type" and "listener" arguments must be specified');
}

/**
 * Calls a listener: a function with `this` the target; an object through its
 * `handleEvent`, looked up at each call (none: nothing happens), as Node does.
 */
function callListener(listener, target, arg) {
  if (typeof listener === 'function') return listener.call(target, arg);
  return listener.handleEvent ? Reflect.apply(listener.handleEvent, listener, [arg]) : undefined;
}

function addEntry(target, type, entry) {
  const map = target[kListeners];
  const list = map.get(type) ?? [];
  // (an event handler, onmessage and the like, is a listener of its own: it neither
  // dedupes against a listener of the same function nor is removed as one, as in Node)
  for (const e of list) {
    if (!e.handler && !entry.handler && e.listener === entry.listener && e.capture === entry.capture) return null;
  }
  map.set(type, [...list, entry]);
  if (type === 'message' && !entry.nodeStyle) target[kEtMessage]++;
  if (list.length === 0) target[Symbol.for('channel-messaging.listenerCountChanged')](type, 1);
  checkMaxListeners(target, type, list.length + 1);
  return entry;
}

function removeEntry(target, type, listener, capture, exact) {
  const map = target[kListeners];
  const list = map.get(type);
  if (list === undefined) return;
  const i = list.findIndex((e) => (exact !== null ? e === exact : !e.handler && e.listener === listener && e.capture === capture));
  if (i < 0) return;
  list[i].removed = true;
  if (type === 'message' && !list[i].nodeStyle) target[kEtMessage]--;
  const next = list.slice(0, i).concat(list.slice(i + 1));
  if (next.length === 0) {
    map.delete(type);
    target[Symbol.for('channel-messaging.listenerCountChanged')](type, 0);
  } else {
    map.set(type, next);
  }
}

/** The one listener dispatchEvent gives Node's EventTarget (see there). */
function dispatchBridge(event) {
  if (event[kStop] !== undefined) dispatch(this, event.type, event, undefined, true);
  else dispatchForeign(this, event);
}

/**
 * dispatchBridge for an event this package did not make (an Event, a CustomEvent, Node's
 * MessageEvent): where its stopImmediatePropagation() leaves its mark is internal to
 * Node's Event, so for the dispatch the method is wrapped on the instance (a
 * non-enumerable own property, removed afterwards) to set the kStop that dispatch
 * checks. An event that cannot take the property (frozen) dispatches unwrapped.
 */
function dispatchForeign(target, event) {
  const own = Object.getOwnPropertyDescriptor(event, 'stopImmediatePropagation');
  if (!Object.isExtensible(event) || (own !== undefined && !own.configurable)) {
    dispatch(target, event.type, event, undefined, true);
    return;
  }
  const original = event.stopImmediatePropagation;
  const hidden = { configurable: true, enumerable: false, writable: true };
  Object.defineProperty(event, kStop, { ...hidden, value: false });
  Object.defineProperty(event, 'stopImmediatePropagation', {
    ...hidden,
    value: function stopImmediatePropagation() {
      if (this === event) event[kStop] = true;
      return Reflect.apply(original, this, arguments);
    },
  });
  try {
    dispatch(target, event.type, event, undefined, true);
  } finally {
    delete event.stopImmediatePropagation;
    delete event[kStop];
    if (own !== undefined) Object.defineProperty(event, 'stopImmediatePropagation', own);
  }
}

/**
 * Calls the listeners of `type`: EventTarget-style ones with `event` (made lazily by
 * makeEvent when null), Node-style ones with `nodeValue` (or the event, for events
 * dispatched by dispatchEvent). Listener exceptions are reported, never propagated.
 */
function dispatch(target, type, event, nodeValue, fromDispatchEvent, makeEvent = null) {
  const list = target[kListeners].get(type);
  if (list === undefined) return;
  let made = false;
  for (let i = 0; i < list.length; i++) {
    const e = list[i];
    if (e.removed) continue;
    if (e.once) removeEntry(target, type, e.listener, e.capture, e);
    try {
      if (e.nodeStyle) {
        catchRejection(callListener(e.listener, target, fromDispatchEvent ? event : nodeValue));
      } else {
        if (event === null) {
          event = makeEvent !== null ? makeEvent() : new PortEvent(type, target);
          event[kLive] = made = true;
        }
        catchRejection(callListener(e.listener, target, event));
      }
    } catch (err) {
      reportListenerError(err);
    }
    if (event !== null && event[kStop] === true) break;
  }
  if (made) event[kLive] = false;
}

/** Defines `on<type>` event handler attributes (one list entry, replaced in place). */
function defineHandler(proto, type) {
  Object.defineProperty(proto, `on${type}`, {
    configurable: true,
    enumerable: true,
    get() {
      return handlerMap(this).get(type)?.listener ?? null;
    },
    set(value) {
      const current = handlerMap(this).get(type);
      if (typeof value === 'function') {
        if (current !== undefined && !current.removed) {
          current.listener = value;
        } else {
          const entry = { listener: value, capture: false, once: false, nodeStyle: false, removed: false, handler: true };
          this[kHandlers].set(type, entry);
          addEntry(this, type, entry);
        }
      } else if (current !== undefined) {
        this[kHandlers].delete(type);
        removeEntry(this, type, current.listener, false, current);
      } else if (type === 'message' && this instanceof MessagePort) {
        // setting a port's onmessage starts it, even to null (spec B2, and as in Node);
        // removing a handler is removing a listener (the port stops, as in Node)
        startPort(this[kState]);
      }
    },
  });
}

// ------------------------------------------------------------------------- ports

/** Per-port state (kept off the object so that user code cannot trip over it). */
class PortState {
  constructor(port, handle) {
    this.native = handle;
    this.ep = handle.endpoint();
    this.port = port;
    this.receiving = false; // JS-level started (Node's start/stop)
    this.coreStarted = false;
    this.wakeInstalled = false;
    this.refed = false;
    this.ended = false; // the port ended (close seen) or was transferred
    this.closeEmitted = false;
    this.closing = false;
    this.detached = false;
    this.gate = false; // what fast.setGate last said: receiving && !ended && !detached
    this.batch = 0;
    this.hot = 0; // messages delivered since the port was last idle
    this.spin = 0; // the current polling budget (ns); 0 = cold
    this.spinFails = 0; // polls in a row that timed out (backoff exponent)
    this.spinSkips = 0; // idle spells still to pass without polling (backoff)
    this.idleAt = 0; // performance.now() when the port last went idle after deliveries
    this.closeWatched = false;
    this.readyWaiters = null; // resolvers of pending ready() promises
    // The port's async resource, made with the port, as Node's ports have one: its
    // listeners run in it, so they see the AsyncLocalStorage store of the port's
    // creation (and async_hooks see a 'MESSAGEPORT' resource).
    this.resource = new AsyncResource('MESSAGEPORT');
    // called by the native delivery loop (see deliverStep)
    this.deliver = (n, polled) => this.resource.runInAsyncScope(deliverStep, null, this, n, polled);
    // (messages wake the native delivery loop directly: ensureWake's fast.watchReady)
    this.wake = (kind) => {
      if (kind === WAKE_CLOSE) {
        partnerGone(this);
      } else if (kind === WAKE_SPACE) {
        spaceAvailable(this);
      }
    };
  }
}

/** `port`'s state; a TypeError, as Node's, when a MessagePort method gets another `this`. */
function portState(port) {
  const s = port === null || port === undefined ? undefined : port[kState];
  if (!(s instanceof PortState)) throw new TypeError('Illegal invocation');
  return s;
}

/** One end of a channel: a drop-in for worker_threads' MessagePort. */
class MessagePort extends ListenerTarget {
  constructor(token = undefined, handle = undefined) {
    if (token !== kCreate) {
      throw nodeError(TypeError, 'ERR_CONSTRUCT_CALL_INVALID', 'Constructor cannot be called');
    }
    super();
    this[kState] = new PortState(this, handle);
  }

  postMessage(value, transfer = undefined) {
    const s = portState(this); // (first, as Node's: a wrong `this` before a missing argument)
    if (arguments.length === 0) {
      throw nodeError(TypeError, 'ERR_MISSING_ARGS', 'Not enough arguments to MessagePort.postMessage');
    }
    // as Node's: true, or undefined from a port that is closed or transferred
    const open = s.closing || s.ended || s.detached ? undefined : true;
    if (transfer === undefined || transfer === null) {
      postSimple(s, value);
      return open;
    }
    postWithTransfer(s, value, transferList(transfer, s.port));
    return open;
  }

  start() {
    startPort(portState(this));
  }

  close(callback = undefined) {
    const s = portState(this);
    if (typeof callback === 'function') this.once('close', callback);
    closePort(s);
  }

  ref() {
    const s = portState(this);
    s.refed = true;
    applyRef(s);
  }

  unref() {
    const s = portState(this);
    s.refed = false;
    applyRef(s);
  }

  hasRef() {
    const s = portState(this);
    // as Node's: a closing port still counts until its 'close' (which holds the loop)
    return s.refed && !s.ended && !s.detached;
  }

  /**
   * Detaches this port, exactly as a transfer would, and returns a single-use BigInt
   * that `MessagePort.importHandle` adopts on any thread of this process (a Worker,
   * for example: post the BigInt through worker_threads). Messages queued or in
   * flight wait for the new owner.
   */
  exportHandle() {
    const s = portState(this);
    if (s.detached || s.native.isDetached()) throw dataCloneError('The MessagePort was already transferred.');
    if (s.native.isClosed()) throw dataCloneError('The MessagePort is closed and cannot be transferred.');
    const handle = s.native.exportHandle();
    if (handle === null || handle === undefined) throw dataCloneError('The MessagePort cannot be transferred.');
    markTransferred(s);
    return handle;
  }

  /** Adopts a port exported with `exportHandle` (single use). */
  static importHandle(handle) {
    return importPort(handle);
  }

  /** Flow control: limits on this port's queue; the partner sees the pressure. */
  setLimits(limits = {}) {
    const s = portState(this);
    if (limits === null || typeof limits !== 'object') throw invalidArgType('limits', 'of type object', limits);
    const n = (v, name) => {
      if (v === undefined || v === null) return -1;
      if (typeof v !== 'number' || !(v >= 0) || !Number.isFinite(v)) {
        throw nodeError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "limits.${name}" is out of range. It must be a non-negative number. Received ${v}`);
      }
      return Math.floor(v);
    };
    s.native.setLimits(n(limits.maxMessages, 'maxMessages'), n(limits.maxBytes, 'maxBytes'));
  }

  /** Whether the partner's queue is below its limits (posting adds no pressure). */
  isReady() {
    return portState(this).native.isReady();
  }

  /**
   * Resolves once the partner's queue is below its limits (at once when it is, or
   * when either end is closed or this port was transferred). A pending ready() keeps
   * the event loop alive.
   */
  ready() {
    const s = portState(this);
    if (s.detached || s.ended || s.closing) return Promise.resolve();
    if (s.readyWaiters !== null) return new Promise((resolve) => s.readyWaiters.push(resolve));
    ensureWake(s);
    if (!s.wakeInstalled || s.native.pollReady()) return Promise.resolve();
    watchClose(s); // a partner that closes resolves it too
    const p = new Promise((resolve) => {
      s.readyWaiters = [resolve];
    });
    applyRef(s);
    return p;
  }

  /** Queue statistics of this port. */
  stats() {
    const [queuedMessages, queuedBytes, closed, maxMessages, maxBytes] = portState(this).native.stats();
    return {
      queuedMessages,
      queuedBytes,
      closed: closed === 1,
      limits: { maxMessages: maxMessages < 0 ? null : maxMessages, maxBytes: maxBytes < 0 ? null : maxBytes },
    };
  }

  /** `for await (const data of port)`: each message's data, ending when the port closes. */
  [Symbol.asyncIterator]() {
    return messageIterator(this);
  }

  [Symbol.for('channel-messaging.listenerCountChanged')](type, count) {
    const s = portState(this);
    if (type === 'close') {
      // Node fires 'close' when the partner goes away even on a port never started
      if (count === 1) watchClose(s);
      return;
    }
    if (type !== 'message') return;
    // Node's rules: the first 'message' listener refs and starts; the last one leaving
    // unrefs and stops.
    if (count === 1) {
      s.refed = true;
      applyRef(s);
      startPort(s);
    } else {
      s.receiving = false;
      syncGate(s);
      s.refed = false;
      applyRef(s);
    }
  }

  get [Symbol.toStringTag]() {
    return 'MessagePort';
  }
}
defineHandler(MessagePort.prototype, 'message');
defineHandler(MessagePort.prototype, 'messageerror');
defineHandler(MessagePort.prototype, 'close');

Encoder.portClass = MessagePort;
// SharedArrayBuffers are shared through V8's API, as zero-copy buffers are made
Encoder.sharedMemory = native.bufferPoolStats().backend === 'v8';

function wrapPort(handle) {
  return new MessagePort(kCreate, handle);
}

/**
 * A new entangled pair: a drop-in for worker_threads' MessageChannel. A function rather
 * than a class so that, as Node's, a call without `new` is ERR_CONSTRUCT_CALL_REQUIRED.
 */
function MessageChannel() {
  if (new.target === undefined) {
    throw nodeError(TypeError, 'ERR_CONSTRUCT_CALL_REQUIRED', 'Cannot call constructor without `new`');
  }
  const [a, b] = native.createChannel();
  Object.defineProperty(this, 'port1', { value: wrapPort(a), enumerable: true });
  Object.defineProperty(this, 'port2', { value: wrapPort(b), enumerable: true });
}

function importPort(handle) {
  if (typeof handle !== 'bigint') throw invalidArgType('handle', 'of type bigint', handle);
  const adopted = native.importHandle(handle);
  if (adopted === null || adopted === undefined) {
    throw nodeError(TypeError, 'ERR_INVALID_PORT_HANDLE', 'The port handle is unknown or was already imported');
  }
  return wrapPort(adopted);
}

// ---- posting ----

/**
 * The items of a transfer list, checked one by one in list order as Node checks them
 * (spec C3 step 1, C5): each must be a MessagePort or an ArrayBuffer
 * (ERR_INVALID_TRANSFER_OBJECT), not `source` (the posting port) and not listed before
 * (DataCloneError); the first item that fails decides the error.
 */
function transferList(transfer, source = null) {
  if (typeof transfer !== 'object' && typeof transfer !== 'function') {
    throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE', 'Optional transferList argument must be an iterable');
  }
  let items = listItems(transfer);
  if (items === null) {
    const list = transfer.transfer;
    if (list === undefined) return [];
    if ((items = listItems(list)) === null) {
      throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE', 'Optional options.transfer argument must be an iterable');
    }
  }
  const n = items.length;
  // (duplicates: a scan of the items before for short lists, a set for long ones)
  const seen = n > 16 ? new Set() : null;
  for (let i = 0; i < n; i++) {
    const item = items[i];
    const port = item instanceof MessagePort;
    if (!port && !types.isArrayBuffer(item)) {
      throw nodeError(TypeError, 'ERR_INVALID_TRANSFER_OBJECT', 'Found invalid object in transferList');
    }
    if (port && item === source) throw dataCloneError('Transfer list contains source port');
    if (seen === null ? i > 0 && items.indexOf(item) !== i : seen.size === seen.add(item).size) {
      throw dataCloneError(`Transfer list contains duplicate ${port ? 'MessagePort' : 'ArrayBuffer'}`);
    }
  }
  return items;
}

/**
 * The items of a transfer list as Node reads them: an array (not a Proxy) by index,
 * its length read once, without its iterator; any other object through its iterator;
 * null when it has none (a primitive, or an object that is not iterable).
 */
function listItems(list) {
  if (list === null || (typeof list !== 'object' && typeof list !== 'function')) return null;
  if (Array.isArray(list) && !types.isProxy(list)) {
    const n = list.length;
    const items = new Array(n);
    for (let i = 0; i < n; i++) items[i] = list[i];
    return items;
  }
  return typeof list[Symbol.iterator] === 'function' ? [...list] : null;
}

function postSimple(s, value) {
  const enc = acquireEncoder();
  try {
    const len = enc.encode(value, null, null);
    const err = enc.side.length === 0
      ? postBytes(s.ep, enc, len)
      : s.native.postFull(enc.buf.subarray(0, len), enc.side, [], []);
    if (err !== null && err !== undefined) throw dataCloneError(err);
  } finally {
    enc.release();
  }
}

function postWithTransfer(s, value, items) {
  // `postMessage(ab, [ab])` with a zero-copy buffer (allocBuffer, or received): once the
  // list has been read and checked (transferList), nothing of the general path below is
  // observable for it (no port, no duplicate, no getter to run, not detached), so the
  // native side takes the block, detaches `ab` and posts the fixed encoding at once.
  // `false`: not a block (or detached): the general path decides, with its errors.
  if (items.length === 1 && items[0] === value && blockMessageReady()) {
    const r = fast.postBlock(s.ep, value);
    if (r === true) return;
    if (r !== false) throw dataCloneError(r);
  }
  const ports = [];
  const buffers = [];
  for (const item of items) (item instanceof MessagePort ? ports : buffers).push(item);
  // (transferList checked the source port and duplicates; spec C3 step 1, C5)
  const natives = ports.map((p) => p[kState].native);
  if (ports.length > 0) {
    const err = s.native.checkTransfer(natives);
    if (err !== null && err !== undefined) throw dataCloneError(err);
  }
  if (isMarkedAsUntransferable !== undefined) {
    // Node 21 and later refuse an ArrayBuffer marked untransferable (a Buffer pool's,
    // markAsUntransferable): the same error, before anything is taken
    for (const ab of buffers) {
      if (isMarkedAsUntransferable(ab)) {
        nodeStructuredClone(undefined, { transfer: [ab] });
        throw dataCloneError('An ArrayBuffer is marked as untransferable.');
      }
    }
  }
  const portIndex = ports.length > 0 ? new Map(ports.map((p, i) => [p, i])) : null;
  const bufferSet = buffers.length > 0 ? new Set(buffers) : null;
  const enc = acquireEncoder();
  try {
    const len = enc.encode(value, portIndex, bufferSet);
    // second pass: detached buffers (ports are checked by the core, all-or-nothing)
    for (const ab of buffers) {
      if (isDetached(ab)) throw dataCloneError('An ArrayBuffer is detached and could not be cloned.');
    }
    // transferred buffers not referenced by the message still move (and detach)
    const err = s.native.postFull(enc.buf.subarray(0, len), enc.side, buffers, natives);
    if (err !== null && err !== undefined) throw dataCloneError(err);
  } finally {
    enc.release();
  }
  for (const p of ports) markTransferred(p[kState]);
  detachTransferred(buffers);
}

function isDetached(ab) {
  try {
    new Uint8Array(ab); // eslint-disable-line no-new
    return false;
  } catch {
    return true;
  }
}

/**
 * Detaches the transferred ArrayBuffers a post did not take (zero-copy blocks are taken,
 * and detached, natively), through Node's own transfer: one that Node marks
 * untransferable (the pool behind small Buffers, markAsUntransferable) or cannot detach
 * (a WebAssembly.Memory's) stays attached, as with Node 20's postMessage; its bytes were
 * copied into the message. Never throws: the message is posted already.
 */
function detachTransferred(buffers) {
  for (const ab of buffers) {
    if (isDetached(ab)) continue;
    try {
      nodeStructuredClone(undefined, { transfer: [ab] });
    } catch {
      // (left attached, as Node leaves it)
    }
  }
}

let blockMessage = false;

/**
 * Registers with the native side, once, the encoding of a message that is one
 * transferred ArrayBuffer (what postBlock posts), made by the encoder itself so that the
 * two paths cannot disagree. True once registered.
 */
function blockMessageReady() {
  if (blockMessage) return true;
  const probe = new ArrayBuffer(1);
  const enc = acquireEncoder();
  try {
    const len = enc.encode(probe, null, new Set([probe]));
    if (enc.side.length !== 1 || enc.side[0].buffer !== probe) return false;
    fast.setBlockMessage(enc.buf.slice(0, len));
  } finally {
    enc.release();
  }
  blockMessage = true;
  return true;
}

/** The transferred-away object: inert; Node fires 'close' on it. */
function markTransferred(s) {
  s.detached = true;
  s.receiving = false;
  s.refed = false;
  s.wakeInstalled = false;
  s.ended = true;
  fast.unwatchReady(s.ep);
  syncGate(s);
  settleReady(s);
  setImmediate(emitClose, s);
}

// ---- receiving ----

function ensureWake(s) {
  if (s.wakeInstalled || s.ended || s.detached) return;
  s.wakeInstalled = true;
  s.native.setWake(s.wake);
  fast.watchReady(s.ep, s.deliver);
}

function applyRef(s) {
  if (s.refed) ensureWake(s);
  if (!s.wakeInstalled) return;
  const keepAlive = (s.refed && !s.closing && !s.ended) || s.readyWaiters !== null;
  s.native.setRef(keepAlive);
  // a port that keeps the process alive hears its partner close even when it does not
  // receive (ref() alone, or a port that was stopped): it then ends, and lets go, as
  // Node's does (a receiving port hears it from its queue; partnerGone)
  if (keepAlive) watchClose(s);
}

function watchClose(s) {
  if (s.closeWatched || s.ended || s.detached) return;
  ensureWake(s);
  s.closeWatched = s.wakeInstalled && s.native.watchClose();
}

/**
 * The partner went away. A receiving port learns it from its queue (the drain fires
 * 'close' after the last message); a port that is not receiving fires 'close' now if
 * nothing is queued before the end, as Node's does (otherwise the receive that reaches
 * the end, e.g. receiveMessageOnPort, fires it).
 */
function partnerGone(s) {
  // the core does not wake space waiters when the partner closes without draining
  spaceAvailable(s);
  if (s.ended || s.detached || s.receiving || s.closing) return;
  if (s.native.stats()[0] !== 0) return;
  portEnded(s, true);
}

function spaceAvailable(s) {
  if (s.readyWaiters === null) return;
  if (!s.detached && !s.ended && !s.native.pollReady()) return; // woken early: waits again
  settleReady(s);
}

function settleReady(s) {
  const waiters = s.readyWaiters;
  if (waiters === null) return;
  s.readyWaiters = null;
  if (s.wakeInstalled) applyRef(s);
  for (const resolve of waiters) resolve();
}

function startPort(s) {
  if (s.detached || s.ended) return;
  s.receiving = true;
  ensureWake(s);
  if (!s.coreStarted) {
    s.coreStarted = true;
    s.native.start();
  }
  syncGate(s);
  // messages may already wait (and the coalesced hook may have fired while stopped)
  fast.schedule(s.ep, s.deliver);
}

/** Tells the native delivery loop whether it may pop messages for this port. */
function syncGate(s) {
  const open = s.receiving && !s.ended && !s.detached;
  if (open !== s.gate) {
    s.gate = open;
    fast.setGate(s.ep, open);
  }
}

/**
 * Delivers messages: called by the native delivery loop (node/src/fast.rs) in a callback
 * scope with what it popped from the port's queue (`n`: a length of bytes in the
 * scratch, or RECV_EMPTY, RECV_ENDED, RECV_PENDING), then goes on to the messages already
 * queued (deliverRun). As with Node's MessagePort, every microtask and nextTick a handler
 * queued has run before the next message is delivered (so code awaiting events.once()
 * between messages loses nothing). Messages are popped only while the port receives
 * (its gate, see syncGate), checked before every pop, so a handler that stops, closes or
 * transfers its port loses no message. The result tells the loop what next (DELIVER_*):
 * after BATCH messages it yields to the event loop (timers and I/O run), and it stops
 * when the queue is empty.
 *
 * When the queue runs dry after deliveries on a hot port (the previous idle spell ended
 * within SPIN_MAX_NS), the loop first polls the queue for up to `s.spin` ns (returned to
 * it with each result; `polled` says a message came that way, RECV_SPUN that none did):
 * a ping-pong partner's reply usually arrives within microseconds, and catching it there
 * saves a kernel wake-up on each side (tens of µs on a busy host). The polling happens
 * after the delivery's microtask checkpoint, so a reply posted from a microtask is not
 * delayed by it. A poll that times out makes the port cold again, and the next 2^k - 1
 * idle spells do not poll after k such timeouts in a row (k <= SPIN_BACKOFF_MAX), so a
 * partner on the same thread, or one that answers slowly, costs a poll only rarely. The
 * price is CPU: a thread polls for at most SPIN_MAX_NS each time its port goes idle
 * while traffic is hot.
 */
function deliverStep(s, n, polled) {
  return deliverRun(s, n, polled, deliverOne);
}

/**
 * Delivers `n` with `one(s, n, polled)`, then, while `one` says go on and the endpoint's
 * gate is open, the messages already queued, in this same callback (see RUN_TICKS):
 * first what the callback scope would run between two calls, then a look at the queue.
 * An empty queue is left to the native loop, which pops (and polls) itself.
 */
function deliverRun(s, n, polled, one) {
  let code = one(s, n, polled);
  while (RUN_TICKS !== null && (code & 3) === DELIVER_NEXT && s.gate) {
    try {
      RUN_TICKS();
    } catch (err) {
      // a nextTick callback threw (a listener's error, see reportListenerError): report
      // it as Node does, now, and leave the rest to the next callback (fast.uncaught)
      fast.uncaught(err);
      return DELIVER_YIELD;
    }
    if (!s.gate) break;
    const next = fast.next(s.ep);
    if (next === RECV_EMPTY) break;
    code = one(s, next, false);
  }
  return code;
}

/** deliverStep for one message (or the loop's other arguments). */
function deliverOne(s, n, polled) {
  if (n >= 0) {
    // the common case: a message without buffers or ports, in the scratch
    receiveResult(s, n, true);
    return delivered(s, polled);
  }
  if (n === DELIVER_FLUSH) return DELIVER_STOP;
  if (n === RECV_SPUN) {
    // polling timed out (the partner may even share this thread): cold, and back off
    // exponentially before polling again
    s.spin = 0;
    if (s.spinFails < SPIN_BACKOFF_MAX) s.spinFails++;
    s.spinSkips = (1 << s.spinFails) - 1;
  } else if (n !== RECV_EMPTY && receiveResult(s, n, true) !== undefined) {
    return delivered(s, polled); // a message with buffers or ports, or a large one
  }
  // idle (or the port ended)
  if (s.hot > 0) s.idleAt = performance.now();
  s.hot = 0;
  s.batch = 0;
  return DELIVER_STOP;
}

/**
 * deliverStep's bookkeeping after a delivery: what the native loop does next, and how
 * long it may poll the queue if it finds it empty (DELIVER_SPIN_SHIFT).
 */
function delivered(s, polled) {
  if (polled === true) s.spinFails = 0;
  if (s.hot++ === 0) {
    // the first delivery after an idle spell: learn how long the spell was
    if (s.idleAt !== 0) {
      const gap = (performance.now() - s.idleAt) * 1e6;
      if (s.spinSkips > 0) {
        s.spinSkips--;
        s.spin = 0;
      } else {
        s.spin = gap <= SPIN_MAX_NS ? Math.min(SPIN_MAX_NS, Math.max(SPIN_MIN_NS, 2 * gap)) : 0;
      }
    }
  }
  if (++s.batch >= BATCH) {
    s.batch = 0;
    return DELIVER_YIELD | (s.spin << DELIVER_SPIN_SHIFT);
  }
  return DELIVER_NEXT | (s.spin << DELIVER_SPIN_SHIFT);
}

/**
 * Receives one message. With `dispatch`, fires its event and returns true; without,
 * returns `{ message }`. Returns undefined when nothing is queued or the port ended.
 */
function receiveOne(s, dispatchIt) {
  if (s.detached) return undefined;
  return receiveResult(s, fast.recv(s.ep), dispatchIt);
}

/** As receiveOne, for the result `n` of a receive already made. */
function receiveResult(s, n, dispatchIt) {
  if (n >= 0) {
    let data;
    try {
      data = decoder.decode(scratch, 0, n, EMPTY, EMPTY);
    } catch (err) {
      return messageError(s, err, dispatchIt);
    }
    if (!dispatchIt) return { message: data };
    deliverMessage(s, data, EMPTY);
    return true;
  }
  if (n === RECV_EMPTY) return undefined;
  if (n === RECV_ENDED) {
    // receiveMessageOnPort reaching the end: 'close' follows asynchronously, as in Node;
    // so does the end of a port whose partner closed, so that (as in Node) the closing
    // port, whose 'close' waits for an immediate (finishClose), hears it first
    portEnded(s, !dispatchIt || !s.closing);
    return undefined;
  }
  const parked = takeParked(s.ep, s.native);
  if (parked === undefined) return undefined;
  if (parked.bytes === null) {
    if (!dispatchIt) return { message: parked.message };
    deliverMessage(s, parked.message, EMPTY);
    return true;
  }
  const ports = parked.ports.length > 0 ? parked.ports.map(wrapPort) : EMPTY;
  let data;
  try {
    data = decoder.decode(parked.bytes, 0, parked.length, parked.buffers, ports);
  } catch (err) {
    // ports carried by a message that cannot be decoded are closed (DESIGN.md §7.6)
    for (const p of ports) p[kState].native.close();
    return messageError(s, err, dispatchIt);
  }
  if (!dispatchIt) return { message: data };
  deliverMessage(s, data, ports);
  return true;
}

const EMPTY = Object.freeze([]);

/**
 * The message parked by a `recv` that returned -3 (it carries buffers or ports, or does
 * not fit the scratch): `{ bytes, length, buffers, ports }` (ports still native), or
 * undefined; for a message that is one transferred ArrayBuffer and nothing else,
 * `{ bytes: null, message }` with that buffer (nothing to decode). Its buffers arrive
 * as ArrayBuffers over Rust-owned memory (a transferred one without a copy, see
 * allocBuffer).
 */
function takeParked(ep, nativeEndpoint) {
  if (!blockMessage) blockMessageReady(); // (lets take() recognize a lone buffer)
  const got = fast.take(ep);
  if (got === undefined || got === null) return undefined;
  // a message that is one transferred ArrayBuffer and nothing else: the buffer itself
  if (!Array.isArray(got)) return { bytes: null, length: 0, buffers: EMPTY, ports: EMPTY, message: got };
  const buffers = got.length > 2 ? got.slice(2) : EMPTY;
  if (got[0] >= 0 && got[1] === 0) return { bytes: scratch, length: got[0], buffers, ports: EMPTY };
  // ports, or bytes too large for the scratch: the rest comes through napi-rs
  const pending = nativeEndpoint.takePending();
  if (pending === null || pending === undefined) return undefined;
  const bytes = pending.bytes;
  if (bytes.length > scratch.length && bytes.length <= 16 * 1024 * 1024) {
    scratch = new Uint8Array(Math.max(bytes.length, scratch.length * 2));
    fast.setScratch(scratch);
  }
  return { bytes, length: bytes.length, buffers, ports: pending.ports ?? EMPTY };
}

function messageError(s, err, dispatchIt) {
  const error = err instanceof DecodeError ? dataCloneError(err.message) : err;
  if (dispatchIt) {
    const port = s.port;
    dispatch(port, 'messageerror', null, error, false, () => makeMessageEvent('messageerror', port, error, EMPTY));
    return true;
  }
  // receiveMessageOnPort: the message is consumed; report it as Node reports errors
  throw error;
}

function makeMessageEvent(type, target, data, ports) {
  const ev = new MessageEvent(type);
  ev[kData] = data;
  if (ports.length > 0) ev[kPorts] = Object.freeze([...ports]);
  ev[kTarget] = target;
  return ev;
}

function deliverMessage(s, data, ports) {
  const port = s.port;
  if (port[kEtMessage] === 0) {
    // fast path: only Node-style listeners, which receive the data itself
    const list = port[kListeners].get('message');
    if (list === undefined) return;
    if (list.length === 1) {
      const e = list[0];
      if (e.once) removeEntry(port, 'message', e.listener, e.capture, e);
      try {
        catchRejection(callListener(e.listener, port, data));
      } catch (err) {
        reportListenerError(err);
      }
      return;
    }
    dispatch(port, 'message', null, data, false);
    return;
  }
  dispatchMessage(port, data, ports);
}

/**
 * Dispatches a 'message' event with `data` and `ports`. The usual receiver, an onmessage
 * handler alone, is called directly: no closure, no listener loop (a handler's listener
 * is always a function, see defineHandler).
 */
function dispatchMessage(target, data, ports) {
  const list = target[kListeners].get('message');
  if (list === undefined) return;
  const e = list[0];
  if (list.length === 1 && e.handler === true) {
    const event = makeMessageEvent('message', target, data, ports);
    event[kLive] = true;
    try {
      catchRejection(e.listener.call(target, event));
    } catch (err) {
      reportListenerError(err);
    }
    event[kLive] = false;
    return;
  }
  dispatch(target, 'message', null, data, false, () => makeMessageEvent('message', target, data, ports));
}

function portEnded(s, later = false) {
  if (s.ended && (s.closeEmitted || later)) return;
  s.ended = true;
  s.receiving = false;
  syncGate(s);
  settleReady(s);
  if (s.wakeInstalled) {
    s.wakeInstalled = false;
    s.native.clearWake();
    fast.unwatchReady(s.ep);
  }
  if (later) setImmediate(emitClose, s);
  else emitClose(s);
}

function emitClose(s) {
  if (s.closeEmitted) return;
  s.closeEmitted = true;
  const port = s.port;
  if (port[kListeners].get('close') === undefined) return;
  // every listener gets the close event, Node-style ones (on, once, close(cb),
  // events.once) too, as Node's dispatchEvent gives it to them
  const event = new PortEvent('close', port);
  event[kLive] = true;
  dispatch(port, 'close', event, event, false);
  event[kLive] = false;
}

function closePort(s) {
  if (s.closing || s.detached) return;
  s.closing = true;
  s.native.close();
  settleReady(s);
  if (s.wakeInstalled) s.native.setRef(false);
  // Messages already queued here are still delivered (DESIGN.md §7.2), then 'close'.
  // The immediate keeps the event loop alive until then, as Node's handle close does.
  setImmediate(finishClose, s);
}

function finishClose(s) {
  if (s.receiving && !s.ended) {
    // drain what is left (bounded per turn), then the end marker fires 'close'; between
    // two messages, what the first one's listeners queued runs, as in delivery
    // (deliverRun), so that an events.once() loop loses nothing, and a port whose
    // listeners went away stops (what it still holds is discarded below)
    for (let i = 0; i < BATCH && s.receiving && !s.ended; i++) {
      if (receiveOne(s, true) === undefined) break;
      if (RUN_TICKS === null) continue;
      try {
        RUN_TICKS();
      } catch (err) {
        fast.uncaught(err);
        break;
      }
    }
    if (!s.ended) {
      setImmediate(finishClose, s);
      return;
    }
  } else if (!s.ended) {
    // Node discards what a port that is not receiving still holds when it closes; the
    // ports inside those messages close, so their partners see 'close' now (not at GC)
    s.native.discardQueued();
  }
  portEnded(s);
}

function messageIterator(port) {
  const queue = [];
  const waiters = [];
  let done = false;
  const onMessage = (data) => {
    if (waiters.length > 0) waiters.shift().resolve({ value: data, done: false });
    else queue.push(data);
  };
  const finish = () => {
    done = true;
    port.off('message', onMessage);
    port.off('close', finish);
    for (const w of waiters.splice(0)) w.resolve({ value: undefined, done: true });
  };
  port.on('message', onMessage);
  port.on('close', finish);
  return {
    next() {
      if (queue.length > 0) return Promise.resolve({ value: queue.shift(), done: false });
      if (done) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => waiters.push({ resolve }));
    },
    return() {
      queue.length = 0;
      finish();
      return Promise.resolve({ value: undefined, done: true });
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/** Receives one queued message synchronously: `{ message }`, or undefined. */
function receiveMessageOnPort(port) {
  const s = port === null || port === undefined ? undefined : port[kState];
  if (s instanceof PortState) return receiveOne(s, false);
  // as Node: a BroadcastChannel too, while it is open
  if (s !== undefined && port instanceof BroadcastChannel && !s.closed) return receiveBroadcast(s);
  throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "port" argument must be a MessagePort instance');
}

/**
 * structuredClone(value[, options]): the clone a port would deliver had `value` been
 * posted to it with `options.transfer`, made at once (spec G7), as Node's global
 * structuredClone makes it, with this package's transferables: its MessagePorts move (a
 * port's clone is a new port still entangled with the original's partner) and its
 * zero-copy buffers keep their memory. Arguments are read and checked as Node's are
 * (`options.transfer` as postMessage's second argument), with Node's errors. Goes
 * through a channel of its own: the very rules of a post and a receive.
 */
function structuredClone(value, options = undefined) {
  if (arguments.length === 0) {
    throw nodeError(TypeError, 'ERR_MISSING_ARGS', 'The value argument must be specified');
  }
  if (options !== undefined && options !== null && typeof options !== 'object' && typeof options !== 'function') {
    throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE', 'The options argument must be either an object or undefined');
  }
  const transfer = options === undefined || options === null ? undefined : options.transfer;
  const [a, b] = native.createChannel();
  const from = wrapPort(a)[kState];
  const to = wrapPort(b)[kState];
  try {
    if (transfer === undefined || transfer === null) postSimple(from, value);
    else postWithTransfer(from, value, transferList(transfer));
    const got = receiveOne(to, false);
    if (got === undefined) throw dataCloneError('The clone could not be read back.');
    return got.message;
  } finally {
    closePort(from);
    closePort(to);
  }
}

/** receiveMessageOnPort for an open BroadcastChannel (as in Node): its next message, if any. */
function receiveBroadcast(s) {
  const n = fast.recv(s.ep);
  if (n === RECV_EMPTY || n === RECV_ENDED) return undefined;
  try {
    const data = broadcastData(s, n);
    return data === NOT_PARKED ? undefined : { message: data };
  } catch (err) {
    // consumed, and reported as receiveMessageOnPort reports a port's (messageError)
    throw err instanceof DecodeError ? dataCloneError(err.message) : err;
  }
}

// ---------------------------------------------------------- zero-copy buffers

/** V8's own limit on an ArrayBuffer's length, here and in allocBuffer's checks. */
const MAX_BUFFER_LENGTH = 2 ** 53 - 1;

function checkSize(size) {
  if (typeof size !== 'number') throw invalidArgType('size', 'of type number', size);
  if (!Number.isInteger(size) || size < 0 || size > MAX_BUFFER_LENGTH) {
    throw nodeError(RangeError, 'ERR_OUT_OF_RANGE',
      `The value of "size" is out of range. It must be an integer >= 0 && <= ${MAX_BUFFER_LENGTH}. Received ${String(size)}`);
  }
}

function allocated(ab, size) {
  if (ab === null || ab === undefined) {
    throw nodeError(RangeError, 'ERR_MEMORY_ALLOCATION_FAILED', `Array buffer allocation of ${size} bytes failed`);
  }
  return ab;
}

/**
 * A zero-filled ArrayBuffer of `size` bytes whose memory channel-messaging owns.
 * Transferring it (`port.postMessage(ab, [ab])`) moves the memory into the message
 * without copying a byte; the receiver gets an ArrayBuffer over the same memory (and can
 * transfer it on, again without a copy). Once garbage-collected, the memory returns to a
 * small process-wide pool that later allocBuffer calls reuse.
 */
function allocBuffer(size) {
  checkSize(size);
  return allocated(fast.alloc(size, true), size);
}

/**
 * As allocBuffer, without zero-filling: the contents are unspecified (a recycled buffer's
 * old bytes), as with Node's Buffer.allocUnsafe. For buffers that are overwritten whole.
 */
function allocBufferUnsafe(size) {
  checkSize(size);
  return allocated(fast.alloc(size, false), size);
}

/**
 * Whether `ab` is an ArrayBuffer whose memory channel-messaging owns (made by
 * allocBuffer, or delivered in a message), so that transferring it copies nothing.
 */
function isZeroCopyBuffer(ab) {
  return types.isArrayBuffer(ab) && ab.byteLength > 0 && native.isBlock(ab);
}

/**
 * Gives the memory of a zero-copy ArrayBuffer (see isZeroCopyBuffer) back at once,
 * instead of when the garbage collector finalizes it: `ab` is detached (byteLength 0,
 * its views empty) and its memory goes to the pool that allocBuffer draws from. Returns
 * true; returns false, leaving `ab` as it is, for any other ArrayBuffer. For receivers
 * that are done with a buffer: a steady stream of transferred buffers then reuses warm
 * memory instead of waiting for garbage collections.
 */
function releaseBuffer(ab) {
  if (!types.isArrayBuffer(ab)) {
    throw invalidArgType('buffer', 'an instance of ArrayBuffer', ab);
  }
  return ab.byteLength > 0 && fast.release(ab);
}

// ----------------------------------------------------------------- broadcast

/** A BroadcastChannel's state; Node's ERR_INVALID_THIS when `this` is not a channel. */
function channelState(channel) {
  const s = channel instanceof BroadcastChannel ? channel[kState] : undefined;
  if (s === undefined) {
    throw nodeError(TypeError, 'ERR_INVALID_THIS', 'Value of "this" must be of type BroadcastChannel');
  }
  return s;
}

/** Process-wide named one-to-many messaging: a drop-in for Node's BroadcastChannel. */
class BroadcastChannel extends ListenerTarget {
  constructor(name) {
    if (arguments.length === 0) {
      throw nodeError(TypeError, 'ERR_MISSING_ARGS', 'The "name" argument must be specified');
    }
    super();
    const n = `${name}`;
    const s = {
      name: n,
      native: new native.NativeBroadcast(n),
      ep: null,
      closed: false,
      refed: true,
      batch: 0,
      target: this,
      gate: true, // receiving: open until closed (deliverRun's test, as a port's)
    };
    s.resource = new AsyncResource('MESSAGEPORT'); // (as a port's, see PortState)
    s.deliver = (n) => s.resource.runInAsyncScope(deliverRun, null, s, n, false, bcDeliverOne);
    this[kState] = s;
    s.ep = s.native.endpoint();
    fast.setGate(s.ep, true);
    // messages wake the native delivery loop directly (watchReady); the threadsafe
    // function only keeps the event loop alive while the channel is referenced
    s.native.setWake(noop);
    fast.watchReady(s.ep, s.deliver);
    s.native.setRef(true);
    s.native.start();
  }

  get name() {
    return channelState(this).name;
  }

  postMessage(message) {
    const s = channelState(this);
    if (arguments.length === 0) {
      throw nodeError(TypeError, 'ERR_MISSING_ARGS', 'The "message" argument must be specified');
    }
    if (s.closed) throw new DOMException('BroadcastChannel is closed.', 'InvalidStateError');
    const enc = acquireEncoder();
    try {
      const len = enc.encode(message, null, null);
      const err = enc.side.length === 0
        ? postBytes(s.ep, enc, len)
        : s.native.post(enc.buf.subarray(0, len), enc.side);
      if (err !== null && err !== undefined) {
        if (err.startsWith('InvalidStateError')) throw new DOMException('BroadcastChannel is closed.', 'InvalidStateError');
        throw dataCloneError(err);
      }
    } finally {
      enc.release();
    }
  }

  close() {
    const s = channelState(this);
    if (s.closed) return;
    s.closed = true;
    s.gate = false;
    fast.setGate(s.ep, false);
    fast.unwatchReady(s.ep);
    s.native.close();
  }

  ref() {
    const s = channelState(this);
    s.refed = true;
    if (!s.closed) s.native.setRef(true);
    return this;
  }

  unref() {
    const s = channelState(this);
    s.refed = false;
    if (!s.closed) s.native.setRef(false);
    return this;
  }

  get [Symbol.toStringTag]() {
    return 'BroadcastChannel';
  }

  /** As Node's: `BroadcastChannel { name: 'x', active: true }` (active: not closed). */
  [inspect.custom](depth, options) {
    const s = this instanceof BroadcastChannel ? this[kState] : undefined;
    if (s === undefined) return this; // (the prototype: inspected as an object)
    if (depth < 0) return 'BroadcastChannel';
    const opts = { ...options, depth: options.depth === null || options.depth === undefined ? null : options.depth - 1 };
    return `BroadcastChannel ${inspect({ name: s.name, active: !s.closed }, opts)}`;
  }
}
defineHandler(BroadcastChannel.prototype, 'message');
defineHandler(BroadcastChannel.prototype, 'messageerror');

const NOT_PARKED = Symbol('not parked');

/**
 * The data of the message that a BroadcastChannel receive returned `n` for: in the
 * scratch (n >= 0) or parked (takeParked); NOT_PARKED when nothing was. A DecodeError
 * when the bytes are malformed.
 */
function broadcastData(s, n) {
  if (n >= 0) return decoder.decode(scratch, 0, n, EMPTY, EMPTY);
  const p = takeParked(s.ep, s.native);
  if (p === undefined) return NOT_PARKED;
  return p.bytes === null ? p.message : decoder.decode(p.bytes, 0, p.length, p.buffers, EMPTY);
}

/** As deliverOne, for a BroadcastChannel (no polling, no ports). */
function bcDeliverOne(s, n) {
  if (n === RECV_EMPTY || n === RECV_ENDED || n === DELIVER_FLUSH) {
    s.batch = 0;
    return DELIVER_STOP;
  }
  const target = s.target;
  try {
    const data = broadcastData(s, n);
    dispatchMessage(target, data === NOT_PARKED ? undefined : data, EMPTY);
  } catch (err) {
    const error = err instanceof DecodeError ? dataCloneError(err.message) : err;
    dispatch(target, 'messageerror', null, error, false, () => makeMessageEvent('messageerror', target, error, EMPTY));
  }
  if (++s.batch >= BATCH) {
    s.batch = 0;
    return DELIVER_YIELD;
  }
  return DELIVER_NEXT;
}

// ------------------------------------------------------------- PortCollection

/**
 * A weak, insertion-ordered set of ports that broadcasts: `postMessage` encodes once
 * and every member's queue shares the payload. Closed and transferred ports leave it
 * by themselves; a port that is garbage-collected leaves it too.
 */
class PortCollection {
  constructor() {
    const n = new native.NativeCollection();
    this[kState] = { native: n, ep: n.endpoint(), members: [] };
  }

  add(port) {
    checkPort(port);
    const s = this[kState];
    if (!liveMembers(s).includes(port)) s.members.push(new WeakRef(port));
    s.native.add(port[kState].native);
  }

  remove(port) {
    checkPort(port);
    const s = this[kState];
    s.members = s.members.filter((w) => w.deref() !== port);
    s.native.remove(port[kState].native);
  }

  has(port) {
    return port instanceof MessagePort && liveMembers(this[kState]).includes(port);
  }

  clear() {
    const s = this[kState];
    s.members = [];
    s.native.clear();
  }

  get size() {
    return liveMembers(this[kState]).length;
  }

  /** Calls `callback(port)` for each live member, oldest first. */
  iterate(callback) {
    if (typeof callback !== 'function') throw invalidArgType('callback', 'of type function', callback);
    for (const port of liveMembers(this[kState])) callback(port);
  }

  /** Posts `value` to every member (clone only); returns how many ports it reached. */
  postMessage(value) {
    if (arguments.length === 0) {
      throw nodeError(TypeError, 'ERR_MISSING_ARGS', 'The "value" argument must be specified');
    }
    const s = this[kState];
    const enc = acquireEncoder();
    try {
      const len = enc.encode(value, null, null);
      if (enc.side.length === 0) {
        const reached = postCollectionBytes(s.ep, enc, len);
        if (reached >= 0) return reached;
      }
      return s.native.post(enc.buf.subarray(0, len), enc.side);
    } finally {
      enc.release();
    }
  }

  [Symbol.iterator]() {
    return liveMembers(this[kState])[Symbol.iterator]();
  }
}

function checkPort(port) {
  if (!(port instanceof MessagePort)) throw invalidArgType('port', 'an instance of MessagePort', port);
}

function liveMembers(s) {
  const live = [];
  const keep = [];
  for (const w of s.members) {
    const p = w.deref();
    if (p !== undefined && s.native.contains(p[kState].native)) {
      live.push(p);
      keep.push(w);
    }
  }
  s.members = keep;
  return live;
}

module.exports = {
  MessageChannel,
  MessagePort,
  MessageEvent,
  BroadcastChannel,
  PortCollection,
  receiveMessageOnPort,
  structuredClone,
  importPort,
  allocBuffer,
  allocBufferUnsafe,
  isZeroCopyBuffer,
  releaseBuffer,
  bufferPoolStats: () => native.bufferPoolStats(),
  version: native.version(),
};
