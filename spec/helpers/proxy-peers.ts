// What the proxy specs share: an echoing ws target (plain or TLS), clients registered for
// cleanup, and checks of a failed opening handshake. Every server and client made here is closed
// by runCleanups(), which each spec calls after each test.
import { expect } from 'chai';
import { once } from 'node:events';
import https from 'node:https';
import type net from 'node:net';
import type { AddressInfo } from 'node:net';
import type tls from 'node:tls';
import { WebSocketServer, type WebSocket as WsSocket } from 'ws';
import { WebSocketError, WebSocketStream, type WebSocketStreamOptions } from '../../lib/index.js';
import { rejectionOf } from './conn.js';
import { testCert, testKey } from './raw-peer.js';

export const cleanups: Array<() => Promise<void> | void> = [];

/** Closes everything the last test opened, newest first. */
export async function runCleanups(): Promise<void> {
  while (cleanups.length > 0) await cleanups.pop()!();
}


/** Resolves when the socket has closed, whatever happened to it. */
export function closedSocket(socket: net.Socket): Promise<void> {
  if (socket.destroyed && socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

/** The proxy environment variables, saved and cleared around the tests that set them. */
export const PROXY_VARIABLES = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy', 'NO_PROXY', 'no_proxy'] as const;

/** Call inside a describe(): each test starts with no proxy variable set, and the old values come back after it. */
export function isolateProxyEnvironment(): void {
  const saved = new Map<string, string | undefined>();
  beforeEach(() => {
    for (const name of PROXY_VARIABLES) {
      saved.set(name, process.env[name]);
      delete process.env[name];
    }
  });
  afterEach(() => {
    for (const name of PROXY_VARIABLES) {
      const value = saved.get(name);
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
}

// The target: a ws server that echoes, plain or over TLS.

export interface Target {
  port: number;
  /** The upgrade requests it accepted: Host header and the SNI of a TLS connection. */
  upgrades: Array<{ host: string | undefined; servername: string | false | undefined }>;
}

export async function startTarget(secure = false): Promise<Target> {
  const upgrades: Target['upgrades'] = [];
  let wss: WebSocketServer;
  let httpsServer: https.Server | null = null;
  if (secure) {
    httpsServer = https.createServer({ cert: testCert, key: testKey });
    wss = new WebSocketServer({ server: httpsServer });
    httpsServer.listen(0, '127.0.0.1');
    await once(httpsServer, 'listening');
  } else {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
  }
  wss.on('connection', (socket: WsSocket, request) => {
    upgrades.push({ host: request.headers.host, servername: (request.socket as tls.TLSSocket).servername ?? undefined });
    socket.on('error', () => {});
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
  });
  cleanups.push(async () => {
    for (const client of wss.clients) client.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
    if (httpsServer !== null) {
      httpsServer.closeAllConnections();
      await new Promise<void>((resolve) => httpsServer!.close(() => resolve()));
    }
  });
  const { port } = (httpsServer ?? wss).address() as AddressInfo;
  return { port, upgrades };
}

export function connect(url: string, options: WebSocketStreamOptions): WebSocketStream {
  const stream = new WebSocketStream(url, options);
  cleanups.push(async () => {
    stream.close();
    await stream.closed.catch(() => {});
  });
  return stream;
}

/** Opens, echoes a text and a binary message, and closes cleanly. */
export async function echoThrough(stream: WebSocketStream): Promise<void> {
  const { readable, writable } = await stream.opened;
  const reader = readable.getReader();
  const writer = writable.getWriter();
  await writer.write('hello through the proxy');
  expect((await reader.read()).value).to.equal('hello through the proxy');
  await writer.write(new Uint8Array([0, 1, 2, 254, 255]));
  const binary = (await reader.read()).value as Uint8Array;
  expect(binary).to.be.an.instanceOf(Uint8Array);
  expect([...binary]).to.deep.equal([0, 1, 2, 254, 255]);
  stream.close({ closeCode: 1000, reason: 'done' });
  expect(await stream.closed).to.deep.equal({ closeCode: 1000, reason: 'done' });
}

/**
 * Constructs while catching the handshake timer (the one set with `delay` ms), so that a test can
 * fire it at the moment it chooses instead of racing a clock. The real timer is still set (with a
 * no-op), so clearing it works as before.
 */
export function withHandshakeTimer<T>(delay: number, construct: () => T): { value: T; fire: () => void } {
  const original = globalThis.setTimeout;
  let captured: (() => void) | null = null;
  const replacement = (callback: () => void, ms?: number, ...args: unknown[]): unknown => {
    if (ms === delay && captured === null) {
      captured = callback;
      return original(() => {}, ms);
    }
    return original(callback, ms, ...args);
  };
  globalThis.setTimeout = replacement as unknown as typeof setTimeout;
  let value: T;
  try {
    value = construct();
  } finally {
    globalThis.setTimeout = original;
  }
  expect(captured, 'the handshake timer').to.not.equal(null);
  return { value, fire: () => captured!() };
}

/** The WebSocketError of a failed opening handshake: `opened` rejects with closeCode null, `closed` with 1006. */
export async function handshakeFailure(stream: WebSocketStream): Promise<WebSocketError> {
  const error = await rejectionOf(stream.opened);
  expect(error).to.be.an.instanceOf(WebSocketError);
  expect((error as WebSocketError).closeCode).to.equal(null);
  const closed = await rejectionOf(stream.closed);
  expect((closed as WebSocketError).closeCode).to.equal(1006);
  return error as WebSocketError;
}
