// Type definitions for channel-messaging (Node). Kept by hand; test/dts.test.js checks
// that every name declared here exists at runtime and vice versa.

/** An object that can be listed in a transfer list. */
export type Transferable = MessagePort | ArrayBuffer;

export interface StructuredSerializeOptions {
  transfer?: Iterable<Transferable>;
}

export interface PortLimits {
  /** At or above this many queued messages the partner sees pressure (null: none). */
  maxMessages?: number | null;
  /** At or above this many queued bytes the partner sees pressure (null: none). */
  maxBytes?: number | null;
}

export interface PortStats {
  queuedMessages: number;
  queuedBytes: number;
  closed: boolean;
  limits: { maxMessages: number | null; maxBytes: number | null };
}

/** The event of 'message' and 'messageerror'. */
export class MessageEvent<T = any> extends Event {
  constructor(
    type: string,
    init?: { data?: T; origin?: string; lastEventId?: string; source?: MessagePort | null; ports?: readonly MessagePort[] },
  );
  readonly data: T;
  readonly ports: readonly MessagePort[];
  /** '' for a delivered message; what `init` gave otherwise. */
  readonly origin: string;
  readonly lastEventId: string;
  /** null for a delivered message; what `init` gave otherwise. */
  readonly source: MessagePort | null;
}

interface NodeStyleTarget {
  on(type: string, listener: (...args: any[]) => void): this;
  addListener(type: string, listener: (...args: any[]) => void): this;
  once(type: string, listener: (...args: any[]) => void): this;
  off(type: string, listener: (...args: any[]) => void, options?: { capture?: boolean } | boolean): this;
  removeListener(type: string, listener: (...args: any[]) => void, options?: { capture?: boolean } | boolean): this;
  removeAllListeners(type?: string): this;
  emit(type: string, arg?: any): boolean;
  listenerCount(type: string): number;
  /** The listeners of `type` in the order they were added (what `events.getEventListeners` lists). */
  listeners(type: string): Array<((...args: any[]) => any) | { handleEvent(event: Event): any }>;
  eventNames(): string[];
  setMaxListeners(n: number): void;
  getMaxListeners(): number;
}

/** One end of a channel: a drop-in for worker_threads' MessagePort. */
export class MessagePort extends EventTarget implements NodeStyleTarget {
  private constructor();
  postMessage(value: any, transfer?: readonly Transferable[] | Iterable<Transferable>): void;
  postMessage(value: any, options?: StructuredSerializeOptions): void;
  start(): void;
  close(callback?: (event: Event) => void): void;
  ref(): void;
  unref(): void;
  hasRef(): boolean;
  onmessage: ((this: MessagePort, ev: MessageEvent) => any) | null;
  onmessageerror: ((this: MessagePort, ev: MessageEvent) => any) | null;
  onclose: ((this: MessagePort, ev: Event) => any) | null;
  /**
   * Detaches this port (as a transfer does) and returns a single-use handle that
   * `MessagePort.importHandle` adopts on any thread of this process, a Worker included.
   */
  exportHandle(): bigint;
  /** Adopts a port exported with `exportHandle`; throws for a used, stale or forged handle. */
  static importHandle(handle: bigint): MessagePort;
  /** Flow control: limits on this port's queue (its partner sees the pressure). */
  setLimits(limits?: PortLimits): void;
  /** Whether the partner's queue is below its limits. */
  isReady(): boolean;
  /**
   * Resolves once the partner's queue is below its limits (at once when it is, or when
   * either end closes or this port is transferred). Keeps the event loop alive while
   * pending. `for (...) { await port.ready(); port.postMessage(x); }` never overfills.
   */
  ready(): Promise<void>;
  stats(): PortStats;
  [Symbol.asyncIterator](): AsyncIterableIterator<any>;

  on(type: 'message', listener: (value: any) => void): this;
  on(type: 'messageerror', listener: (error: Error) => void): this;
  on(type: 'close', listener: (event: Event) => void): this;
  on(type: string, listener: (...args: any[]) => void): this;
  addListener(type: string, listener: (...args: any[]) => void): this;
  once(type: string, listener: (...args: any[]) => void): this;
  off(type: string, listener: (...args: any[]) => void, options?: { capture?: boolean } | boolean): this;
  removeListener(type: string, listener: (...args: any[]) => void, options?: { capture?: boolean } | boolean): this;
  removeAllListeners(type?: string): this;
  emit(type: string, arg?: any): boolean;
  listenerCount(type: string): number;
  listeners(type: string): Array<((...args: any[]) => any) | { handleEvent(event: Event): any }>;
  eventNames(): string[];
  setMaxListeners(n: number): void;
  getMaxListeners(): number;
}

/** Two entangled ports: a drop-in for worker_threads' MessageChannel. */
export class MessageChannel {
  constructor();
  readonly port1: MessagePort;
  readonly port2: MessagePort;
}

/** Process-wide named one-to-many messaging: a drop-in for Node's BroadcastChannel. */
export class BroadcastChannel extends EventTarget implements NodeStyleTarget {
  constructor(name: string);
  readonly name: string;
  postMessage(message: any): void;
  close(): void;
  ref(): this;
  unref(): this;
  onmessage: ((this: BroadcastChannel, ev: MessageEvent) => any) | null;
  onmessageerror: ((this: BroadcastChannel, ev: MessageEvent) => any) | null;

  on(type: string, listener: (...args: any[]) => void): this;
  addListener(type: string, listener: (...args: any[]) => void): this;
  once(type: string, listener: (...args: any[]) => void): this;
  off(type: string, listener: (...args: any[]) => void, options?: { capture?: boolean } | boolean): this;
  removeListener(type: string, listener: (...args: any[]) => void, options?: { capture?: boolean } | boolean): this;
  removeAllListeners(type?: string): this;
  emit(type: string, arg?: any): boolean;
  listenerCount(type: string): number;
  listeners(type: string): Array<((...args: any[]) => any) | { handleEvent(event: Event): any }>;
  eventNames(): string[];
  setMaxListeners(n: number): void;
  getMaxListeners(): number;
}

/** A weak, insertion-ordered set of ports that broadcasts (encoding once). */
export class PortCollection implements Iterable<MessagePort> {
  constructor();
  add(port: MessagePort): void;
  remove(port: MessagePort): void;
  has(port: MessagePort): boolean;
  clear(): void;
  readonly size: number;
  iterate(callback: (port: MessagePort) => void): void;
  /** Posts to every member (clone only); returns how many ports it reached. */
  postMessage(value: any): number;
  [Symbol.iterator](): Iterator<MessagePort>;
}

/** Receives one queued message synchronously, whether or not the port was started. */
export function receiveMessageOnPort(port: MessagePort | BroadcastChannel): { message: any } | undefined;

/**
 * The clone a port would deliver had `value` been posted to it with `options.transfer`,
 * made at once: Node's global `structuredClone`, with this package's MessagePorts and
 * zero-copy buffers as transferables (a port's clone stays entangled with the original's
 * partner). Node's argument checks and errors.
 */
export function structuredClone<T = any>(value: T, options?: StructuredSerializeOptions | null): T;

/** Same as `MessagePort.importHandle`. */
export function importPort(handle: bigint): MessagePort;

/**
 * A zero-filled `ArrayBuffer` of `size` bytes whose memory channel-messaging owns.
 * Transferring it (`port.postMessage(ab, [ab])`) moves the memory into the message
 * without copying a byte (the buffer is detached here); the receiver gets an
 * `ArrayBuffer` over the same memory, which it can transfer on the same way. Once
 * garbage-collected, the memory goes back to a small process-wide pool.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `size` is not a number.
 * @throws {RangeError} `ERR_OUT_OF_RANGE` when `size` is not an integer in [0, 2^53 - 1];
 *   `ERR_MEMORY_ALLOCATION_FAILED` when the memory cannot be had.
 */
export function allocBuffer(size: number): ArrayBuffer;

/**
 * As `allocBuffer`, without zero-filling: the contents are unspecified (a recycled
 * buffer's old bytes), as with `Buffer.allocUnsafe`. For buffers that are overwritten whole.
 */
export function allocBufferUnsafe(size: number): ArrayBuffer;

/**
 * Whether `value` is a non-empty `ArrayBuffer` whose memory channel-messaging owns (made by
 * `allocBuffer`/`allocBufferUnsafe`, or received in a message), so that transferring it
 * copies nothing. Any other transferred `ArrayBuffer` is copied once on send.
 */
export function isZeroCopyBuffer(value: unknown): value is ArrayBuffer;

/**
 * Gives the memory of a zero-copy `ArrayBuffer` (see `isZeroCopyBuffer`) back at once
 * instead of at garbage collection: `buffer` is detached (`byteLength` 0) and its memory
 * returns to the pool `allocBuffer` draws from. Returns `false`, leaving `buffer` as it
 * is, for any other `ArrayBuffer`. Throws `ERR_INVALID_ARG_TYPE` for a non-`ArrayBuffer`.
 */
export function releaseBuffer(buffer: ArrayBuffer): boolean;

/** What `bufferPoolStats()` reports. */
export interface BufferPoolStats {
  /** Zero-copy buffers out in JavaScript (allocated or received, not yet given back). */
  live: number;
  /** Free memory the pool keeps for reuse, in bytes. */
  pooledBytes: number;
  /**
   * Requests for a buffer of a pooled size (16 KiB to 16 MiB) that found no free block
   * and took fresh memory, since the process started (fresh memory costs page faults).
   */
  fresh: number;
  /**
   * How zero-copy buffers are made in this process: `'v8'` (V8's API, when the addon was
   * built with the running node's headers) or `'napi'` (N-API, any Node version).
   */
  backend: 'v8' | 'napi';
  /**
   * `SharedArrayBuffer` memories that queued messages hold (each counted once, however
   * many messages carry it), until the last of them is received or dropped. Sharing
   * needs backend `'v8'`.
   */
  shared: number;
}

/** The state of the process-wide pool behind zero-copy buffers. */
export function bufferPoolStats(): BufferPoolStats;

/** The package version. */
export const version: string;
