// Helpers for the browser interop spec: Debian's Chromium through playwright-core, and our
// WebSocketStreamServer attached to an http.Server that also serves the test page.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { WebSocketStreamServer, type ServerWebSocketStream, type WebSocketStreamServerOptions } from '../../../lib/index.js';
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

/**
 * Our server on 127.0.0.1 port 0: an http.Server that serves the test page at `/` and a
 * WebSocketStreamServer attached to it at `/ws`.
 */
export class TestServer {
  readonly http: http.Server;
  readonly wss: WebSocketStreamServer;
  readonly #sockets = new Set<Socket>();
  readonly #queue: ServerWebSocketStream[] = [];
  #waiters: Array<(stream: ServerWebSocketStream) => void> = [];
  #port = 0;

  constructor(options: Omit<WebSocketStreamServerOptions, 'server' | 'port' | 'host' | 'tls'> = {}) {
    const html = pageHtml();
    this.http = http.createServer((request, response) => {
      if (request.method === 'GET' && request.url === '/') {
        response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
        response.end(html);
        return;
      }
      response.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
      response.end('not found\n');
    });
    this.http.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    const wss = new WebSocketStreamServer({ ...options, server: this.http, path: '/ws' });
    this.wss = wss;
    void (async () => {
      const reader = wss.connections.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        const waiter = this.#waiters.shift();
        if (waiter !== undefined) waiter(value);
        else this.#queue.push(value);
      }
    })();
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
    return `http://127.0.0.1:${this.#port}/`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.#port}/ws`;
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
    this.http.closeAllConnections();
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
  const page = await browser.newPage();
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
