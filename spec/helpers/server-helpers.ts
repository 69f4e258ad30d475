// Helpers for the server specs: hand-written HTTP requests over raw TCP, a raw WebSocket client
// for our server, a collector of accepted connections, and promise-state probes.
import { expect } from 'chai';
import http from 'node:http';
import net from 'node:net';
import { acceptFor, rawFrame, RawPeer } from './raw-peer.js';
import type { ServerWebSocketStream, WebSocketStreamServer } from '../../lib/index.js';

/** RFC 6455 §1.3's sample nonce (16 bytes once decoded). */
export const SAMPLE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

export interface UpgradeRequestParts {
  method?: string;
  path?: string;
  httpVersion?: string;
  /** Header lines in order; a null value leaves the header out. Defaults give a valid upgrade. */
  headers?: Record<string, string | null>;
}

/** A hand-written upgrade request: valid unless `parts` override or remove something. */
export function upgradeRequest(parts: UpgradeRequestParts = {}): string {
  const headers: Record<string, string | null> = {
    Host: 'localhost',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': SAMPLE_KEY,
    'Sec-WebSocket-Version': '13',
    ...parts.headers,
  };
  const lines = [`${parts.method ?? 'GET'} ${parts.path ?? '/'} HTTP/${parts.httpVersion ?? '1.1'}`];
  for (const [name, value] of Object.entries(headers)) if (value !== null) lines.push(`${name}: ${value}`);
  return lines.join('\r\n') + '\r\n\r\n';
}

export interface ParsedResponse {
  status: number;
  statusText: string;
  /** Lower-cased names. */
  headers: Map<string, string>;
  body: string;
}

export function parseResponse(text: string): ParsedResponse {
  const end = text.indexOf('\r\n\r\n');
  expect(end, `a complete HTTP response head in ${JSON.stringify(text.slice(0, 200))}`).to.be.greaterThan(-1);
  const lines = text.slice(0, end).split('\r\n');
  const match = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0] ?? '');
  expect(match, `status line ${JSON.stringify(lines[0])}`).to.not.equal(null);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: Number(match![1]), statusText: match![2] ?? '', headers, body: text.slice(end + 4) };
}

export interface RawExchange {
  /** Everything the server sent, as latin1 text. */
  text: string;
  /** Socket errors seen (a reset after a refusal is allowed; the test decides). */
  errors: Error[];
  /** True if the server ended its side (FIN) before the socket closed. */
  serverEnded: boolean;
}

/** Connects, sends `bytes`, and collects everything until the server closes the connection. */
export function rawExchange(port: number, bytes: string | Buffer, host = '127.0.0.1'): Promise<RawExchange> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    const chunks: Buffer[] = [];
    const errors: Error[] = [];
    let serverEnded = false;
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error) => errors.push(error));
    socket.on('end', () => {
      serverEnded = true;
    });
    socket.on('close', () => resolve({ text: Buffer.concat(chunks).toString('latin1'), errors, serverEnded }));
    socket.write(bytes);
  });
}

/**
 * Sends an upgrade request and collects everything the server sends until it closes the
 * connection. A 101 is answered with a masked close frame, so that an accepted connection ends
 * too; anything after the first response head (a second head, above all) is in `text`.
 */
export function upgradeExchange(port: number, request: string): Promise<RawExchange> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const errors: Error[] = [];
    let serverEnded = false;
    let answered = false;
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const text = Buffer.concat(chunks).toString('latin1');
      if (!answered && text.includes('\r\n\r\n')) {
        answered = true;
        if (text.startsWith('HTTP/1.1 101 ')) socket.write(rawFrame(0x8, Buffer.alloc(0), { mask: true }));
      }
    });
    socket.on('error', (error) => errors.push(error));
    socket.on('end', () => {
      serverEnded = true;
    });
    socket.on('close', () => resolve({ text: Buffer.concat(chunks).toString('latin1'), errors, serverEnded }));
    socket.write(request);
  });
}

/** Sends a request and parses the one response; the server must close the connection afterwards. */
export async function rawRequest(port: number, bytes: string | Buffer): Promise<ParsedResponse> {
  const { text } = await rawExchange(port, bytes);
  return parseResponse(text);
}

export interface RawClient {
  peer: RawPeer;
  socket: net.Socket;
  response: ParsedResponse;
}

/** A hand-made WebSocket client: sends the upgrade request, checks the 101, returns a RawPeer. */
export function rawConnect(port: number, parts: UpgradeRequestParts = {}): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    const onError = (error: Error): void => reject(error);
    const onClose = (): void => reject(new Error(`closed during the handshake: ${received.toString('latin1')}`));
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      const response = parseResponse(received.subarray(0, end + 4).toString('latin1'));
      if (response.status !== 101) {
        socket.destroy();
        reject(new Error(`expected 101, got ${response.status}`));
        return;
      }
      const key = parts.headers?.['Sec-WebSocket-Key'] ?? SAMPLE_KEY;
      expect(response.headers.get('sec-websocket-accept')).to.equal(acceptFor(key));
      resolve({ peer: new RawPeer(socket, received.subarray(end + 4)), socket, response });
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.write(upgradeRequest(parts));
  });
}

/** Collects `server.connections` with a for-await loop, handing them out in order. */
export class Acceptor {
  private readonly queue: ServerWebSocketStream[] = [];
  private waiters: Array<(stream: ServerWebSocketStream) => void> = [];
  /** Every stream taken so far. */
  readonly all: ServerWebSocketStream[] = [];
  /** Resolves when the for-await loop over `connections` finishes. */
  readonly done: Promise<void>;

  constructor(server: WebSocketStreamServer, onStream?: (stream: ServerWebSocketStream) => void) {
    this.done = (async () => {
      for await (const stream of server.connections as unknown as AsyncIterable<ServerWebSocketStream>) {
        this.all.push(stream);
        onStream?.(stream);
        const waiter = this.waiters.shift();
        if (waiter !== undefined) waiter(stream);
        else this.queue.push(stream);
      }
    })();
  }

  next(): Promise<ServerWebSocketStream> {
    const stream = this.queue.shift();
    if (stream !== undefined) return Promise.resolve(stream);
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

/** Server side echo: every message goes back as it came. */
export async function echo(stream: ServerWebSocketStream): Promise<void> {
  try {
    const { readable, writable } = await stream.opened;
    await readable.pipeTo(writable);
  } catch {
    // The peer's close errors the writable; pipeTo then rejects. Nothing to do.
  }
}

export type PromiseState = 'pending' | 'fulfilled' | 'rejected';

/** The state of a promise once the current microtasks have run. */
export async function stateOf(promise: Promise<unknown>): Promise<PromiseState> {
  const pending = Symbol('pending');
  try {
    const value = await Promise.race([promise, new Promise((resolve) => setImmediate(() => resolve(pending)))]);
    return value === pending ? 'pending' : 'fulfilled';
  } catch {
    return 'rejected';
  }
}

/**
 * Resolves once `port` has refused `n` upgrade requests (version 7): n round trips through the
 * server's event loop, each ending with the server closing the connection.
 */
export async function httpRoundTrips(port: number, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const exchange = await rawExchange(port, upgradeRequest({ path: '/probe', headers: { 'Sec-WebSocket-Version': '7' } }));
    expect(parseResponse(exchange.text).status).to.equal(426);
  }
}

export async function listen(server: http.Server | net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

export function closeServer(server: http.Server | net.Server): Promise<void> {
  if (server instanceof http.Server) server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** The port a WebSocketStreamServer listens on. */
export function portOf(server: WebSocketStreamServer): number {
  return (server.address() as net.AddressInfo).port;
}

/** Deterministic pseudo-random bytes (xorshift32), so a garbage test is the same on every run. */
export function pseudoRandomBytes(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

export function bytesOf(length: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}
