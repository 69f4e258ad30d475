// Helpers for the limit and fault specs: a per-test leak guard (sockets, servers, timers), a
// scripted raw TCP server that controls a connection from its first byte, an efficient raw frame
// reader for large transfers, stall detection, a forced garbage collection for memory checks, and
// "pairs": our WebSocketStream (client or server side) against a raw peer. The raw side's framing
// is written independently of lib/ on purpose.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import dc from 'node:diagnostics_channel';
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import {
  WebSocketError,
  WebSocketStream,
  WebSocketStreamServer,
  type ServerWebSocketStream,
  type WebSocketStreamServerOptions,
} from '../../lib/index.js';
import { Acceptor, echo } from './server-helpers.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
export const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

// ---------------------------------------------------------------------------------------------
// Leak guard

/** The resource kinds the guard compares (process.getActiveResourcesInfo() names). */
const TRACKED_KINDS = ['TCPSocketWrap', 'TCPServerWrap', 'Timeout'] as const;
/** How long the guard waits for the close events of a test's sockets before it reports them. */
const CLOSE_WAIT_MS = 3000;

export function resourceCounts(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of TRACKED_KINDS) counts[kind] = 0;
  for (const kind of process.getActiveResourcesInfo()) if (kind in counts) counts[kind]!++;
  return counts;
}

/** Listener counts of every event a socket has listeners for. */
export function listenerSnapshot(socket: net.Socket): Record<string, number> {
  const snapshot: Record<string, number> = {};
  for (const name of socket.eventNames()) snapshot[String(name)] = socket.listenerCount(name);
  return snapshot;
}

function isClosed(socket: net.Socket): boolean {
  return (socket as net.Socket & { closed?: boolean }).closed === true;
}

/** Resolves once the socket has emitted 'close' (at once if it already has). */
export function closeOf(socket: net.Socket): Promise<void> {
  if (isClosed(socket)) return Promise.resolve();
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

function describeSocket(socket: net.Socket): string {
  return `${socket.localAddress}:${socket.localPort} -> ${socket.remoteAddress}:${socket.remotePort} (destroyed: ${socket.destroyed})`;
}

/**
 * One test's resources: every TCP socket opened while it runs (both ends, through Node's
 * diagnostics channels), cleanups to run at its end, and the counts of active sockets, servers
 * and timers it started with.
 */
export class Guard {
  readonly clientSockets: net.Socket[] = [];
  readonly serverSockets: net.Socket[] = [];
  private readonly cleanups: Array<() => unknown> = [];
  private readonly before = resourceCounts();
  private readonly onClient = (message: unknown): void => {
    this.clientSockets.push((message as { socket: net.Socket }).socket);
  };
  private readonly onServer = (message: unknown): void => {
    this.serverSockets.push((message as { socket: net.Socket }).socket);
  };

  constructor() {
    dc.subscribe('net.client.socket', this.onClient);
    dc.subscribe('net.server.socket', this.onServer);
  }

  /** Runs `cleanup` at the end of the test (last registered, first run), whatever happened. */
  defer(cleanup: () => unknown): void {
    this.cleanups.push(cleanup);
  }

  /** The client socket net.connect() made most recently (call it right after creating a client). */
  lastClientSocket(): net.Socket {
    const socket = this.clientSockets[this.clientSockets.length - 1];
    expect(socket, 'a client socket').to.not.equal(undefined);
    return socket!;
  }

  /** The server-side socket whose peer is `client` (by port), once the server has accepted it. */
  serverSocketOf(client: net.Socket): net.Socket {
    const socket = this.serverSockets.find((s) => s.remotePort === client.localPort && s.localPort === client.remotePort);
    expect(socket, `the server-side socket of ${describeSocket(client)}`).to.not.equal(undefined);
    return socket!;
  }

  /** Runs the cleanups; after a failed test, also destroys every socket still open. */
  async finish(failed: boolean): Promise<void> {
    while (this.cleanups.length > 0) {
      try {
        // A cleanup stuck on a broken connection (server.close() waiting for it) must not hang the run.
        await within(Promise.resolve(this.cleanups.pop()!()), 1000, 'a cleanup');
      } catch {
        // One failed cleanup must not keep the others from running.
      }
    }
    dc.unsubscribe('net.client.socket', this.onClient);
    dc.unsubscribe('net.server.socket', this.onServer);
    if (failed) for (const socket of this.sockets()) socket.destroy();
  }

  private sockets(): net.Socket[] {
    return [...this.clientSockets, ...this.serverSockets];
  }

  /**
   * Waits for the close event of every socket the test opened (bounded: a socket still open after
   * CLOSE_WAIT_MS is a leak), then checks that no socket, server or timer is left over.
   */
  async assertNoLeaks(): Promise<void> {
    const open = (): net.Socket[] => this.sockets().filter((socket) => !isClosed(socket));
    if (open().length > 0) {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, CLOSE_WAIT_MS);
      });
      await Promise.race([Promise.all(open().map(closeOf)), deadline]);
      clearTimeout(timer);
    }
    expect(open().map(describeSocket), 'sockets still open after the test').to.deep.equal([]);
    // A handle whose close has begun (a server after its close callback) still counts until libuv
    // runs its close callback, within an event loop turn or two.
    const settled = (): boolean => TRACKED_KINDS.every((kind) => resourceCounts()[kind]! <= this.before[kind]!);
    for (let i = 0; i < 20 && !settled(); i++) await turns();
    const after = resourceCounts();
    for (const kind of TRACKED_KINDS) {
      expect(after[kind], `active ${kind} handles after the test (before: ${this.before[kind]})`).to.be.at.most(this.before[kind]!);
    }
  }
}

/** Rejects after `ms` unless `promise` settles first; the timer is cleared either way. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Time kept back from mocha's timeout so that a stuck test still cleans up after itself. */
const CLEANUP_RESERVE_MS = 2500;

/**
 * A test that must leave nothing behind: its cleanups run whatever happens (even when its body
 * hangs: the body gets mocha's timeout minus a reserve), then, if it passed, every socket it
 * opened must close and the active socket, server and timer counts must be back where they were.
 */
export function leakFree(title: string, body: (guard: Guard) => Promise<void>, options: { timeout?: number } = {}): Mocha.Test {
  const test = it(title, async function () {
    // Mocha starts the test's own timeout timer once this function has returned its promise:
    // count from then on.
    await null;
    const guard = new Guard();
    let failed = true;
    try {
      await within(body(guard), Math.max(1000, this.timeout() - CLEANUP_RESERVE_MS), 'the test');
      failed = false;
    } finally {
      await guard.finish(failed);
    }
    await guard.assertNoLeaks();
  });
  if (options.timeout !== undefined) test.timeout(options.timeout);
  return test;
}

// ---------------------------------------------------------------------------------------------
// Promises and errors

/** Awaits `promise`, expecting a rejection, and returns the reason. */
export { rejectionOf as rejection } from './conn.js';

/** A real WebSocketError with this code (and reason, if given); returns it. */
export function expectWebSocketError(error: unknown, closeCode: number | null, reason?: string): WebSocketError {
  expect(error, 'a WebSocketError').to.be.instanceOf(WebSocketError);
  expect((error as WebSocketError).constructor).to.equal(WebSocketError);
  expect((error as WebSocketError).closeCode).to.equal(closeCode);
  if (reason !== undefined) expect((error as WebSocketError).reason).to.equal(reason);
  return error as WebSocketError;
}

/** Tracks whether a promise settled, while handling it. */
export function track<T>(promise: Promise<T>): { readonly settled: boolean; readonly promise: Promise<T> } {
  const state = { settled: false, promise };
  promise.then(
    () => void (state.settled = true),
    () => void (state.settled = true),
  );
  return state;
}

/** One event loop turn (setImmediate), `count` times. */
export async function turns(count = 1): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * Waits until `sample()` has not changed for `quiet` event loop turns in a row. On loopback the
 * kernel hands over bytes within a poll phase or two, so a transfer that shows no progress for
 * that many turns is held back by flow control, not by the clock. Fails after `maxTurns`.
 */
export async function untilStalled(sample: () => unknown, quiet = 100, maxTurns = 200_000): Promise<void> {
  let last = JSON.stringify(sample());
  let still = 0;
  for (let i = 0; i < maxTurns; i++) {
    await turns();
    const now = JSON.stringify(sample());
    if (now === last) {
      if (++still >= quiet) return;
    } else {
      still = 0;
      last = now;
    }
  }
  throw new Error('the transfer never stalled');
}

/** Waits (in event loop turns, bounded) until `condition()` holds. */
export async function until(condition: () => boolean, what: string, maxTurns = 200_000): Promise<void> {
  for (let i = 0; i < maxTurns; i++) {
    if (condition()) return;
    await turns();
  }
  throw new Error(`gave up waiting until ${what}`);
}

/**
 * Resolves once `socket` has read at least `count` bytes in total, checked on its 'data' events
 * (so only for a socket whose data flows through JavaScript). Rejects if it closes first.
 */
export function untilBytesRead(socket: net.Socket, count: number): Promise<void> {
  if (socket.bytesRead >= count) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onData = (): void => {
      // Checked after the chunk's other listeners (the library's) have handled it.
      queueMicrotask(() => {
        if (socket.bytesRead >= count) done();
      });
    };
    const onClose = (): void => {
      done();
      if (socket.bytesRead < count) reject(new Error(`socket closed after ${socket.bytesRead} of ${count} bytes`));
    };
    const done = (): void => {
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve();
    };
    socket.on('data', onData);
    socket.on('close', onClose);
  });
}

// ---------------------------------------------------------------------------------------------
// Memory

let gcFunction: (() => void) | null = null;

/** A full garbage collection (V8's gc(), exposed at run time if mocha was not started with it). */
export function collectGarbage(): void {
  if (gcFunction === null) {
    const global = globalThis as { gc?: () => void };
    if (typeof global.gc === 'function') {
      gcFunction = global.gc;
    } else {
      v8.setFlagsFromString('--expose-gc');
      gcFunction = vm.runInNewContext('gc') as () => void;
    }
  }
  gcFunction();
}

/** Bytes held after a full collection: ArrayBuffer backing stores and the JavaScript heap. */
export function retainedMemory(): { arrayBuffers: number; heapUsed: number } {
  collectGarbage();
  const usage = process.memoryUsage();
  return { arrayBuffers: usage.arrayBuffers, heapUsed: usage.heapUsed };
}

/**
 * Bytes held, as retainedMemory(), once the collector has caught up: V8 frees ArrayBuffer backing
 * stores on background threads, which on a loaded machine lag behind the collection that found
 * them dead. The smallest of a few readings a few event loop turns apart is what is really held.
 */
export async function settledMemory(readings = 4): Promise<{ arrayBuffers: number; heapUsed: number }> {
  let least = retainedMemory();
  for (let i = 1; i < readings; i++) {
    await turns(3);
    const next = retainedMemory();
    least = { arrayBuffers: Math.min(least.arrayBuffers, next.arrayBuffers), heapUsed: Math.min(least.heapUsed, next.heapUsed) };
  }
  return least;
}

// ---------------------------------------------------------------------------------------------
// Frames (the tests' own encoder, independent of lib/protocol)

export interface FrameOptions {
  fin?: boolean;
  /** RSV bits as a 3-bit number (4 = RSV1). */
  rsv?: number;
  /** Mask with this key (a client frame). */
  mask?: Buffer;
}

export const TEST_MASK = Buffer.from([0x6b, 0x1d, 0xe2, 0x90]);

/** XORs `data[start, end)` with `key` in place, the key's first byte at `start`. */
export function xorMask(data: Buffer, key: Buffer, start = 0, end = data.length): void {
  for (let i = start; i < end; i++) data[i] = data[i]! ^ key[(i - start) & 3]!;
}

export function frameHeader(opcode: number, length: number, options: FrameOptions = {}): Buffer {
  const fin = options.fin ?? true;
  const maskBit = options.mask ? 0x80 : 0;
  const bytes: number[] = [(fin ? 0x80 : 0) | ((options.rsv ?? 0) << 4) | opcode];
  if (length < 126) bytes.push(maskBit | length);
  else if (length < 65536) bytes.push(maskBit | 126, length >> 8, length & 0xff);
  else {
    bytes.push(maskBit | 127, 0, 0);
    const high = Math.floor(length / 2 ** 32);
    bytes.push((high >> 8) & 0xff, high & 0xff, (length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
  }
  if (options.mask) bytes.push(...options.mask);
  return Buffer.from(bytes);
}

/** One whole frame (masked if `options.mask`). */
export function frame(opcode: number, payload: Buffer | string = Buffer.alloc(0), options: FrameOptions = {}): Buffer {
  const data = Buffer.from(typeof payload === 'string' ? Buffer.from(payload) : payload);
  if (options.mask) xorMask(data, options.mask);
  return Buffer.concat([frameHeader(opcode, data.length, options), data]);
}

export function closeFrame(code?: number, reason = '', options: FrameOptions = {}): Buffer {
  if (code === undefined) return frame(OP.CLOSE, Buffer.alloc(0), options);
  const body = Buffer.alloc(2 + Buffer.byteLength(reason));
  body.writeUInt16BE(code, 0);
  body.write(reason, 2);
  return frame(OP.CLOSE, body, options);
}

export interface ReadFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  /** Unmasked payload. */
  payload: Buffer;
}

/**
 * Reads frames from a raw socket without quadratic copying: a payload is kept as the pieces that
 * arrived (so a large frame costs only what was received so far) and joined when it is complete.
 * Starts with `initial`, the bytes that came after the head.
 */
export class FrameReader {
  readonly frames: ReadFrame[] = [];
  /** Bytes received (after the head). */
  bytes = 0;
  ended = false;
  readonly closed: Promise<void>;
  /** Count frames of these opcodes without keeping them. */
  readonly discard = new Set<number>();
  readonly counts = new Map<number, number>();
  private readonly header = Buffer.alloc(14);
  private headerFilled = 0;
  private current: { fin: boolean; rsv: number; opcode: number; masked: boolean; key: Buffer; length: number; pieces: Buffer[]; filled: number } | null =
    null;
  private waiters: Array<() => void> = [];

  constructor(
    readonly socket: net.Socket,
    initial: Buffer = Buffer.alloc(0),
  ) {
    socket.on('error', () => {});
    this.closed = closeOf(socket);
    socket.on('data', (chunk: Buffer) => this.push(chunk));
    const onEnd = (): void => {
      this.ended = true;
      this.wake();
    };
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    if (initial.length > 0) this.push(initial);
    socket.resume();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }

  private headerNeeded(): number {
    const h = this.header;
    if (this.headerFilled < 2) return 2;
    const len7 = h[1]! & 0x7f;
    const masked = (h[1]! & 0x80) !== 0;
    return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
  }

  private push(chunk: Buffer): void {
    this.bytes += chunk.length;
    let pos = 0;
    while (pos < chunk.length) {
      if (this.current === null) {
        // Gather the header byte by byte until its announced size is known and complete.
        while (pos < chunk.length && this.headerFilled < this.headerNeeded()) this.header[this.headerFilled++] = chunk[pos++]!;
        if (this.headerFilled < this.headerNeeded()) break;
        this.startFrame();
        continue;
      }
      const frame = this.current;
      const take = Math.min(frame.length - frame.filled, chunk.length - pos);
      frame.pieces.push(Buffer.from(chunk.subarray(pos, pos + take)));
      frame.filled += take;
      pos += take;
      if (frame.filled === frame.length) this.endFrame();
    }
    this.wake();
  }

  private startFrame(): void {
    const h = this.header;
    const len7 = h[1]! & 0x7f;
    let length = len7;
    let at = 2;
    if (len7 === 126) {
      length = h.readUInt16BE(2);
      at = 4;
    } else if (len7 === 127) {
      length = Number(h.readBigUInt64BE(2));
      at = 10;
    }
    const masked = (h[1]! & 0x80) !== 0;
    const key = masked ? Buffer.from(h.subarray(at, at + 4)) : Buffer.alloc(0);
    this.current = { fin: (h[0]! & 0x80) !== 0, rsv: (h[0]! >> 4) & 7, opcode: h[0]! & 0x0f, masked, key, length, pieces: [], filled: 0 };
    this.headerFilled = 0;
    if (length === 0) this.endFrame();
  }

  private endFrame(): void {
    const frame = this.current!;
    this.current = null;
    this.counts.set(frame.opcode, (this.counts.get(frame.opcode) ?? 0) + 1);
    if (this.discard.has(frame.opcode)) return;
    const payload = frame.pieces.length === 1 ? frame.pieces[0]! : Buffer.concat(frame.pieces, frame.length);
    if (frame.masked) xorMask(payload, frame.key);
    this.frames.push({ fin: frame.fin, rsv: frame.rsv, opcode: frame.opcode, masked: frame.masked, payload });
  }

  /** The next frame kept; rejects if the connection ends first. */
  async nextFrame(): Promise<ReadFrame> {
    for (;;) {
      const frame = this.frames.shift();
      if (frame !== undefined) return frame;
      if (this.ended) throw new Error('connection ended before the next frame');
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** The next frame that is not a pong (pongs are counted, then dropped). */
  async nextNonPong(): Promise<ReadFrame> {
    for (;;) {
      const frame = await this.nextFrame();
      if (frame.opcode !== OP.PONG) return frame;
    }
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }
}

/** A close frame's code and reason (null code for an empty body). */
export function parseClose(payload: Buffer): { code: number | null; reason: string } {
  if (payload.length === 0) return { code: null, reason: '' };
  return { code: payload.readUInt16BE(0), reason: payload.subarray(2).toString('utf8') };
}

// ---------------------------------------------------------------------------------------------
// A scripted raw server: the test owns each connection from its first byte

export interface HttpRequestHead {
  method: string;
  path: string;
  /** Lower-cased names. */
  headers: Record<string, string>;
}

export function acceptKey(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64');
}

/** A correct 101 for `request`, with extra header lines. */
export function switchingProtocols(request: HttpRequestHead, extra: string[] = []): string {
  return [
    'HTTP/1.1 101 Switching Protocols',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Accept: ${acceptKey(request.headers['sec-websocket-key'] ?? '')}`,
    ...extra,
  ].join('\r\n') + '\r\n\r\n';
}

/**
 * Reads an HTTP head from a socket. Resolves with it and the bytes after it; the socket is left
 * paused with no data listener of ours, so the next reader (a FrameReader) loses nothing.
 */
export function readHead(socket: net.Socket): Promise<{ head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.pause();
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve({ head: received.subarray(0, end + 4).toString('latin1'), rest: received.subarray(end + 4) });
    };
    const onClose = (): void => {
      socket.off('data', onData);
      reject(new Error(`closed before a complete head: ${JSON.stringify(received.toString('latin1').slice(0, 200))}`));
    };
    socket.on('data', onData);
    socket.on('close', onClose);
  });
}

export function parseRequestHead(head: string): HttpRequestHead {
  const lines = head.split('\r\n').filter((line) => line !== '');
  const [method = '', path = ''] = (lines[0] ?? '').split(' ');
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { method, path, headers };
}

export interface ScriptedServer {
  port: number;
  url: string;
  /** Connections accepted so far, in order. */
  readonly sockets: net.Socket[];
  /** The next connection (resolves at once for one already accepted and not yet taken). */
  next(): Promise<net.Socket>;
  close(): Promise<void>;
}

/** A TCP server that hands each raw connection to the test. Close it (the guard does, via defer). */
export async function scriptedServer(guard: Guard, onSocket?: (socket: net.Socket) => void): Promise<ScriptedServer> {
  const sockets: net.Socket[] = [];
  const pending: net.Socket[] = [];
  const waiting: Array<(socket: net.Socket) => void> = [];
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    sockets.push(socket);
    onSocket?.(socket);
    const waiter = waiting.shift();
    if (waiter !== undefined) waiter(socket);
    else pending.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const close = async (): Promise<void> => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  guard.defer(close);
  return {
    port,
    url: `ws://127.0.0.1:${port}/`,
    sockets,
    next: () => {
      const socket = pending.shift();
      if (socket !== undefined) return Promise.resolve(socket);
      return new Promise((resolve) => waiting.push(resolve));
    },
    close,
  };
}

/** Server side of a scripted connection: reads the request, answers 101, returns a FrameReader. */
export async function accept101(socket: net.Socket, extra: string[] = []): Promise<{ reader: FrameReader; request: HttpRequestHead; response: string }> {
  const { head, rest } = await readHead(socket);
  const request = parseRequestHead(head);
  const response = switchingProtocols(request, extra);
  socket.write(response);
  return { reader: new FrameReader(socket, rest), request, response };
}

// ---------------------------------------------------------------------------------------------
// A raw client for our server

export const SAMPLE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/** A valid upgrade request with extra header lines. */
export function upgradeHead(extra: string[] = [], path = '/'): string {
  return (
    [`GET ${path} HTTP/1.1`, 'Host: localhost', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Key: ${SAMPLE_KEY}`, 'Sec-WebSocket-Version: 13', ...extra].join(
      '\r\n',
    ) + '\r\n\r\n'
  );
}

export interface RawClient {
  socket: net.Socket;
  reader: FrameReader;
  /** The 101 head. */
  response: string;
  /** Bytes of the request head (what the server-side socket read before the first frame). */
  requestBytes: number;
}

/** Connects, upgrades (expecting 101) and returns a FrameReader on the connection. */
export async function rawUpgrade(port: number, extra: string[] = []): Promise<RawClient> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  const request = upgradeHead(extra);
  socket.write(request);
  const { head, rest } = await readHead(socket);
  expect(head.split('\r\n')[0]).to.match(/^HTTP\/1\.1 101 /);
  expect(head).to.include(`Sec-WebSocket-Accept: ${acceptKey(SAMPLE_KEY)}`);
  return { socket, reader: new FrameReader(socket, rest), response: head, requestBytes: Buffer.byteLength(request) };
}

/** Connects, sends `bytes` and collects everything until the server closes the connection. */
export function rawExchange(port: number, bytes: string | Buffer): Promise<{ text: string; error: Error | null }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let error: Error | null = null;
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (e) => (error = e));
    socket.on('close', () => resolve({ text: Buffer.concat(chunks).toString('latin1'), error }));
    socket.write(bytes);
  });
}

export function statusOf(text: string): number {
  const match = /^HTTP\/1\.1 (\d{3})/.exec(text);
  expect(match, `an HTTP status line in ${JSON.stringify(text.slice(0, 120))}`).to.not.equal(null);
  return Number(match![1]);
}

// ---------------------------------------------------------------------------------------------
// Our endpoint against a raw peer, on either side

export type Side = 'client' | 'server';
export const SIDES: readonly Side[] = ['client', 'server'];

export interface PairOptions {
  maxPayload?: number;
  closeTimeout?: number;
  readableHighWaterMark?: number;
  heartbeat?: { interval: number; timeout?: number };
  /** Negotiate permessage-deflate (default: off on both sides). */
  deflate?: boolean;
}

/** Our WebSocketStream (client or server side) and the raw peer at the other end. */
export interface Pair {
  side: Side;
  stream: WebSocketStream;
  readable: ReadableStream<string | Uint8Array>;
  writable: WritableStream<unknown>;
  peer: FrameReader;
  /** Our end's TCP socket. */
  ours: net.Socket;
  /** What our socket read before the first frame: the 101 head (client) or the request head (server). */
  headBytes: number;
  /** The masking key the peer must use (it is a client when we are the server). */
  mask: Buffer | undefined;
  /** The server and its acceptor, when we are the server. */
  server: WebSocketStreamServer | null;
  acceptor: Acceptor | null;
  url: string;
}

/** A frame as the raw peer of `pair` must send it (masked when the peer is a client). */
export function peerFrame(pair: Pair, opcode: number, payload: Buffer | string = Buffer.alloc(0), options: FrameOptions = {}): Buffer {
  return frame(opcode, payload, { ...options, mask: pair.mask });
}

export function peerClose(pair: Pair, code?: number, reason = ''): Buffer {
  return closeFrame(code, reason, { mask: pair.mask });
}

export interface StartedServer {
  server: WebSocketStreamServer;
  port: number;
  url: string;
  acceptor: Acceptor;
}

/** A WebSocketStreamServer on 127.0.0.1 with an acceptor; closed at the end of the test. */
export async function startServer(guard: Guard, options: Partial<WebSocketStreamServerOptions> = {}): Promise<StartedServer> {
  const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', ...options } as WebSocketStreamServerOptions);
  guard.defer(() => server.close());
  await server.listening;
  const port = (server.address() as net.AddressInfo).port;
  return { server, port, url: `ws://127.0.0.1:${port}/`, acceptor: new Acceptor(server) };
}

const DEFLATE_HEADER = 'Sec-WebSocket-Extensions: permessage-deflate';

export async function openPair(guard: Guard, side: Side, options: PairOptions = {}): Promise<Pair> {
  const { deflate = false, ...limits } = options;
  if (side === 'client') {
    const server = await scriptedServer(guard);
    const stream = new WebSocketStream(server.url, { ...limits, perMessageDeflate: deflate });
    const ours = guard.lastClientSocket();
    const { reader, response } = await accept101(await server.next(), deflate ? [DEFLATE_HEADER] : []);
    const { readable, writable } = await stream.opened;
    if (deflate) expect((await stream.opened).extensions).to.equal('permessage-deflate');
    return {
      side,
      stream,
      readable,
      writable,
      peer: reader,
      ours,
      headBytes: Buffer.byteLength(response),
      mask: undefined,
      server: null,
      acceptor: null,
      url: server.url,
    };
  }
  const started = await startServer(guard, { ...limits, perMessageDeflate: deflate });
  const raw = await rawUpgrade(started.port, deflate ? [DEFLATE_HEADER] : []);
  if (deflate) expect(raw.response).to.include(`\r\n${DEFLATE_HEADER}\r\n`);
  const stream = await started.acceptor.next();
  const { readable, writable } = await stream.opened;
  return {
    side,
    stream,
    readable,
    writable,
    peer: raw.reader,
    ours: guard.serverSocketOf(raw.socket),
    headBytes: raw.requestBytes,
    mask: TEST_MASK,
    server: started.server,
    acceptor: started.acceptor,
    url: started.url,
  };
}

/**
 * The clean closing handshake, started by us: our close frame (1000), the peer's echo, TCP closed
 * by the server first. `closed` must resolve.
 */
export async function closeCleanly(pair: Pair): Promise<void> {
  pair.stream.close({ closeCode: 1000 });
  const close = await pair.peer.nextNonPong();
  expect(close.opcode).to.equal(OP.CLOSE);
  expect(parseClose(close.payload)).to.deep.equal({ code: 1000, reason: '' });
  pair.peer.send(peerClose(pair, 1000));
  if (pair.side === 'client') pair.peer.socket.end();
  expect(await pair.stream.closed).to.deep.equal({ closeCode: 1000, reason: '' });
  await pair.peer.closed;
}

/** The next frame the peer got is a close frame with this code; returns its reason. */
export async function expectCloseFrame(peer: FrameReader, code: number | null): Promise<string> {
  const close = await peer.nextNonPong();
  expect(close.opcode, 'a close frame').to.equal(OP.CLOSE);
  const parsed = parseClose(close.payload);
  expect(parsed.code).to.equal(code);
  return parsed.reason;
}

// ---------------------------------------------------------------------------------------------
// Another connection on the same server, which a fault elsewhere must not disturb

export interface Survivor {
  client: WebSocketStream;
  clientSocket: net.Socket;
  serverSocket: net.Socket;
  serverStream: ServerWebSocketStream;
  reader: ReadableStreamDefaultReader<string | Uint8Array>;
  writer: WritableStreamDefaultWriter<unknown>;
  listeners: { client: Record<string, number>; server: Record<string, number> };
}

/** Opens our client to `url`, echoed by the server side; takes its stream from `acceptor`. */
export async function openSurvivor(guard: Guard, url: string, acceptor: Acceptor, deflate = false): Promise<Survivor> {
  const client = new WebSocketStream(url, { perMessageDeflate: deflate });
  const clientSocket = guard.lastClientSocket();
  const serverStream = await acceptor.next();
  void echo(serverStream);
  const { readable, writable } = await client.opened;
  const reader = readable.getReader();
  const writer = writable.getWriter();
  await writer.write('hello');
  expect(await reader.read()).to.deep.equal({ value: 'hello', done: false });
  const serverSocket = guard.serverSocketOf(clientSocket);
  return {
    client,
    clientSocket,
    serverSocket,
    serverStream,
    reader,
    writer,
    listeners: { client: listenerSnapshot(clientSocket), server: listenerSnapshot(serverSocket) },
  };
}

/** The survivor still echoes, gained no listeners, and closes cleanly. */
export async function checkSurvivor(survivor: Survivor): Promise<void> {
  for (let i = 0; i < 3; i++) {
    // Long enough to be compressed when permessage-deflate is on (the default threshold is 1 KiB).
    const text = `still here ${i} `.repeat(200);
    await survivor.writer.write(text);
    expect(await survivor.reader.read()).to.deep.equal({ value: text, done: false });
  }
  expect(listenerSnapshot(survivor.clientSocket), 'listeners on the survivor client socket').to.deep.equal(survivor.listeners.client);
  expect(listenerSnapshot(survivor.serverSocket), 'listeners on the survivor server socket').to.deep.equal(survivor.listeners.server);
  survivor.client.close({ closeCode: 1000 });
  expect(await survivor.client.closed).to.deep.equal({ closeCode: 1000, reason: '' });
  expect(await survivor.serverStream.closed).to.deep.equal({ closeCode: 1000, reason: '' });
}
