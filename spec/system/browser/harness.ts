// Helpers for the browser interop spec: Debian's Chromium through playwright-core, and our
// WebSocketStreamServer attached to an http.Server that also serves the test page (or, for the
// HTTP/2 spec, to an http2 secure server with allowHTTP1 that serves it over HTTP/2).
import { createHash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { WebSocketStreamServer, type ServerWebSocketStream, type WebSocketStreamServerOptions } from '../../../lib/index.js';
import { testCert, testKey } from '../../helpers/raw-peer.js';
import { requireProgram } from '../support/services.js';
import { pageHtml, type ChunkInfo, type PageApi, type PageFeatures } from './page.js';

export const CHROMIUM_PATH = '/usr/bin/chromium';

/** These machines have no internet: keep Chromium from reaching for it. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-gpu',
  '--disable-quic',
];

/**
 * Starts headless Chromium. Fails (never skips) when it is missing, so a machine without it cannot
 * pass the browser spec by accident. playwright's launch() gives it a fresh, temporary
 * --user-data-dir of its own and removes it on close.
 */
export async function launchChromium(): Promise<Browser> {
  const executablePath = requireProgram(CHROMIUM_PATH, 'chromium', 'the browser interop spec');
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
}

/** What our side saw of one message. */
export interface ServerChunkInfo extends ChunkInfo {
  /** True when a binary chunk owns its whole buffer (byteOffset 0, buffer.byteLength === byteLength). */
  ownsBuffer?: boolean;
}

export function describeServerChunk(chunk: unknown): ServerChunkInfo {
  if (typeof chunk === 'string') {
    const bytes = Buffer.from(chunk, 'utf8');
    return { type: 'string', length: bytes.byteLength, digest: sha256(bytes), preview: chunk.slice(0, 200) };
  }
  if (chunk instanceof Uint8Array) {
    return {
      type: chunk.constructor.name,
      length: chunk.byteLength,
      digest: sha256(chunk),
      ownsBuffer: chunk.byteOffset === 0 && chunk.buffer.byteLength === chunk.byteLength,
    };
  }
  return { type: `unexpected ${Object.prototype.toString.call(chunk)}`, length: -1, digest: '' };
}

export function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** One accepted connection as our server sees it. */
export interface Accepted {
  stream: ServerWebSocketStream;
  /** The TCP socket under it, for wire byte counts. */
  socket: Socket;
}

export interface TestServerSetup {
  /**
   * Serve the page over HTTPS with HTTP/2 (and HTTP/1.1 by ALPN) from an http2 secure server, with
   * the test certificate. `attach: false` leaves the WebSocketStreamServer unattached, so that the
   * http2 server does not announce extended CONNECT; WebSockets then come as HTTP/1.1 upgrades,
   * handed to the server's handleUpgrade.
   */
  http2?: { attach: boolean };
}

/**
 * Our server on 127.0.0.1 port 0: an http.Server that serves the test page at `/` and a
 * WebSocketStreamServer attached to it at `/ws`.
 */
export class TestServer {
  readonly http: http.Server | http2.Http2SecureServer;
  readonly wss: WebSocketStreamServer;
  readonly #sockets = new Set<Socket>();
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  readonly #queue: ServerWebSocketStream[] = [];
  readonly #secure: boolean;
  #waiters: Array<(stream: ServerWebSocketStream) => void> = [];
  #port = 0;
  /** TCP connections accepted so far. */
  connectionCount = 0;

  constructor(options: Omit<WebSocketStreamServerOptions, 'server' | 'port' | 'host' | 'tls' | 'http2'> = {}, setup: TestServerSetup = {}) {
    const html = pageHtml();
    const handler = (request: http.IncomingMessage | http2.Http2ServerRequest, response: http.ServerResponse | http2.Http2ServerResponse): void => {
      if (request.method === 'GET' && request.url === '/') {
        (response as http.ServerResponse).writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
        response.end(html);
        return;
      }
      (response as http.ServerResponse).writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
      response.end('not found\n');
    };
    this.#secure = setup.http2 !== undefined;
    if (setup.http2 !== undefined) {
      const secure = http2.createSecureServer({ key: testKey, cert: testCert, allowHTTP1: true }, handler);
      secure.on('session', (session: http2.ServerHttp2Session) => {
        this.#sessions.add(session);
        session.once('close', () => this.#sessions.delete(session));
      });
      this.http = secure;
    } else {
      this.http = http.createServer(handler);
    }
    this.http.on('connection', (socket: Socket) => {
      this.connectionCount++;
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    if (setup.http2?.attach === false) {
      // Listening elsewhere (nobody connects there): it lends its options to handleUpgrade.
      const wss = new WebSocketStreamServer({ ...options, port: 0, host: '127.0.0.1' });
      this.http.on('upgrade', (request: http.IncomingMessage, socket, head: Buffer) => {
        void wss.handleUpgrade(request, socket, head).then((stream) => stream !== null && this.#deliver(stream));
      });
      this.wss = wss;
      return;
    }
    const wss = new WebSocketStreamServer({ ...options, server: this.http, path: '/ws' });
    this.wss = wss;
    void (async () => {
      const reader = wss.connections.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        this.#deliver(value);
      }
    })();
  }

  #deliver(stream: ServerWebSocketStream): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter(stream);
    else this.#queue.push(stream);
  }

  /** HTTP/2 sessions open now (the page's connection, when it came over HTTP/2). */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(0, '127.0.0.1', () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    this.#port = (this.http.address() as AddressInfo).port;
    return this;
  }

  get pageUrl(): string {
    return this.#secure ? `https://localhost:${this.#port}/` : `http://127.0.0.1:${this.#port}/`;
  }

  get wsUrl(): string {
    return this.#secure ? `wss://localhost:${this.#port}/ws` : `ws://127.0.0.1:${this.#port}/ws`;
  }

  /** The next accepted connection, with its TCP socket. */
  async next(): Promise<Accepted> {
    const queued = this.#queue.shift();
    const stream = queued ?? (await new Promise<ServerWebSocketStream>((resolve) => this.#waiters.push(resolve)));
    const port = stream.request.remotePort;
    const socket = [...this.#sockets].find((s) => s.remotePort === port);
    if (socket === undefined) throw new Error(`no TCP socket from port ${port}`);
    return { stream, socket };
  }

  /** Closes every WebSocket (1001) and the http server, with its keep-alive connections. */
  async close(): Promise<void> {
    await this.wss.close();
    for (const session of this.#sessions) session.destroy();
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }
}

/** Echoes every message back as it came, recording what our side received. */
export async function serverEcho(stream: ServerWebSocketStream, log: ServerChunkInfo[]): Promise<void> {
  const { readable, writable } = await stream.opened;
  const reader = readable.getReader();
  const writer = writable.getWriter();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      log.push(describeServerChunk(value));
      await writer.write(value);
    }
  } catch {
    // The connection ended under us; the test looks at `closed`.
  }
}

/** A fresh page on the test server's page, checked to have the browser's own WebSocketStream. */
export async function openTestPage(browser: Browser, server: TestServer): Promise<Page> {
  // The HTTPS page uses the test certificate, which this browser has no reason to trust.
  const page = await browser.newPage({ ignoreHTTPSErrors: true });
  page.on('pageerror', (error) => {
    console.error(`page error: ${error.message}`);
  });
  await page.goto(server.pageUrl);
  const features = await page.evaluate(() => (globalThis as unknown as { t: PageApi }).t.features());
  if (!features.hasWebSocketStream) {
    throw new Error(`this Chromium has no WebSocketStream (Chromium 124 or later has it): ${features.userAgent}`);
  }
  return page;
}

/** Runs one of the page driver's functions in the browser. */
export function inPage<K extends keyof PageApi>(page: Page, name: K, ...args: Parameters<PageApi[K]>): Promise<Awaited<ReturnType<PageApi[K]>>> {
  return page.evaluate(
    ([fn, fnArgs]) => {
      const t = (globalThis as unknown as { t: Record<string, (...a: unknown[]) => unknown> }).t;
      return t[fn]!(...fnArgs);
    },
    [name, args] as [string, unknown[]],
  ) as Promise<Awaited<ReturnType<PageApi[K]>>>;
}

export type { PageFeatures };
