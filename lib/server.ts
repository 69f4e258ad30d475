// WebSocketStreamServer and handleUpgrade(): accepted connections as the same WebSocketStreams.
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { isToken } from './handshake/http.js';
import { checkUpgradeRequest, isRefusal, refuse, switchingProtocolsHead, type Refusal } from './handshake/server.js';
import { isValidWireCloseCode } from './protocol/close.js';
import { acceptClientOffers, normalizeDeflateOptions, type PerMessageDeflateOptions } from './protocol/permessage-deflate.js';
import {
  CloseCode,
  DEFAULT_ACCEPT_BACKLOG,
  DEFAULT_CLOSE_TIMEOUT,
  DEFAULT_HANDSHAKE_TIMEOUT,
  DEFAULT_MAX_HANDSHAKE_HEAD,
  DEFAULT_MAX_PAYLOAD,
  MAX_CLOSE_REASON_BYTES,
} from './protocol/constants.js';
import { heartbeatOption, positiveNumber, timeoutOption } from './options.js';
import { utf8ByteLength } from './protocol/utf8.js';
import { Session, type SessionOptions, type WebSocketClosedInfo } from './streams.js';
import { toDictionary, toUSVString } from './webidl.js';
import { kAccepted, WebSocketStream } from './websocket-stream.js';

/** What the server knows of the request that opened a connection. */
export interface UpgradeRequestInfo {
  /** The request target: path and query, e.g. "/chat?room=1". */
  url: string;
  headers: IncomingHttpHeaders;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
}

/** `verify`'s answer: true accepts; false refuses with 403; a Refusal picks the status. */
export type VerifyResult = boolean | Refusal;

export interface ServerHandshakeOptions {
  /** Subprotocols this server speaks; the first one the client offered that is listed here wins. */
  protocols?: readonly string[];
  /** Picks the subprotocol instead of `protocols`: return one of `offered`, or null for none. */
  selectProtocol?: (offered: string[], request: IncomingMessage) => string | null | undefined | Promise<string | null | undefined>;
  /** Accepts or refuses a request (authentication, Origin checks); may be async. */
  verify?: (request: IncomingMessage) => VerifyResult | Promise<VerifyResult>;
  /** Largest message accepted from a client, in bytes (1009 beyond it). Default 100 MiB. */
  maxPayload?: number;
  /** Milliseconds allowed for the upgrade (verify included); also the HTTP head timeout when listening. Default 30 000. */
  handshakeTimeout?: number;
  /** Milliseconds to wait for the client's close frame and TCP close. Default 5 000. */
  closeTimeout?: number;
  /** Bytes of messages a server-side readable queues before reading from the socket stops. Default 1 MiB. */
  readableHighWaterMark?: number;
  /** Accept permessage-deflate offers (RFC 7692). Off by default, like ws; true or an options object turns it on. */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /** Ping every client every `interval` ms; no pong within `timeout` ms drops it (1006). Off by default. */
  heartbeat?: { interval: number; timeout?: number };
}

export interface WebSocketStreamServerOptions extends ServerHandshakeOptions {
  /** Listen on this port (0 for any free port). */
  port?: number;
  /** Host to listen on; default all interfaces, like node:http. */
  host?: string;
  /** Listen on this Unix domain socket path instead of a port (Node only; clients use ws+unix: URLs). */
  socketPath?: string;
  /** Listen with TLS (wss://): options for https.createServer (key, cert, …). */
  tls?: tls.TlsOptions;
  /** Attach to an existing http or https server instead of listening. */
  server?: http.Server | https.Server;
  /** Handle only upgrade requests whose path (without the query) is exactly this. */
  path?: string;
  /** Open connections (and handshakes in progress) allowed at once; more get 503. Default unlimited. */
  maxConnections?: number;
  /** Largest HTTP request head, when the server listens itself. Default 16 KiB. */
  maxHandshakeHead?: number;
  /** Accepted connections queued in `connections` before further handshakes wait. Default 16. */
  acceptBacklog?: number;
}

export interface ServerCloseInfo {
  /** Default 1001 (going away). */
  closeCode?: number;
  reason?: string;
}


const sessions = new WeakMap<WebSocketStream, Session>();

/** A WebSocketStream accepted by a server: the client's facade plus the request it came with. */
export class ServerWebSocketStream extends WebSocketStream {
  readonly request: UpgradeRequestInfo;

  /** @internal */
  constructor(token: typeof kAccepted, init: { url: string; session: Session; request: UpgradeRequestInfo }) {
    super(token as unknown as string, init as never);
    this.request = init.request;
    sessions.set(this, init.session);
  }
}

/** Accepts one upgrade request; resolves with the stream, or null if it was refused. */
async function accept(
  request: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  options: ServerHandshakeOptions,
  beforeAccept?: () => Promise<Refusal | null>,
): Promise<ServerWebSocketStream | null> {
  socket.on('error', () => {});
  const handshakeTimeout = options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT;
  let timer: NodeJS.Timeout | undefined;
  // Every await below races this deadline: a verify() that never settles must not hold the
  // handshake (and its place under maxConnections) open.
  const expired = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => {
      refuse(socket, { status: 503, message: 'handshake timed out' });
      resolve(TIMED_OUT);
    }, handshakeTimeout);
  });
  const beforeDeadline = <T>(work: () => T | Promise<T>): Promise<T | typeof TIMED_OUT> =>
    Promise.race([Promise.resolve().then(work), expired]);
  try {
    const checked = checkUpgradeRequest(request);
    if (isRefusal(checked)) {
      refuse(socket, checked);
      return null;
    }
    if (options.verify !== undefined) {
      const verify = options.verify;
      const verdict = await beforeDeadline(() => verify(request)).catch((): VerifyResult => ({ status: 500, message: 'verify failed' }));
      if (verdict === TIMED_OUT) return null;
      if (verdict !== true) {
        refuse(socket, verdict === false ? { status: 403 } : verdict);
        return null;
      }
    }
    const protocol = await beforeDeadline(() => chooseProtocol(checked.protocols, request, options)).catch(() => null);
    if (protocol === TIMED_OUT) return null;
    if (protocol === null) {
      refuse(socket, { status: 500, message: 'selectProtocol failed' });
      return null;
    }
    const refusal = beforeAccept === undefined ? null : await beforeDeadline(beforeAccept);
    if (refusal === TIMED_OUT) return null;
    if (refusal !== null) {
      refuse(socket, refusal);
      return null;
    }
    if (socket.destroyed) return null;
    clearTimeout(timer);
    const deflateOptions = normalizeDeflateOptions(options.perMessageDeflate, 'perMessageDeflate');
    const deflate = deflateOptions === null ? null : acceptClientOffers(request.headers['sec-websocket-extensions'], deflateOptions);
    const extensions = deflate?.response ?? '';
    socket.write(switchingProtocolsHead(checked.key, protocol, extensions));
    const session = new Session(sessionOptionsOf(options));
    session.establish(socket, head, protocol, extensions, deflate?.params ?? null);
    return new ServerWebSocketStream(kAccepted, { url: requestUrl(request, socket), session, request: requestInfo(request, socket) });
  } finally {
    clearTimeout(timer);
  }
}

const TIMED_OUT = Symbol('timed out');

async function chooseProtocol(offered: string[], request: IncomingMessage, options: ServerHandshakeOptions): Promise<string> {
  if (options.selectProtocol !== undefined) {
    const chosen = await options.selectProtocol(offered, request);
    if (chosen === null || chosen === undefined || chosen === '') return '';
    // RFC 6455 §4.2.2: the server may only select a subprotocol the client offered.
    if (!offered.includes(chosen)) throw new Error(`selectProtocol returned ${JSON.stringify(chosen)}, which was not offered`);
    return chosen;
  }
  const supported = options.protocols ?? [];
  return offered.find((protocol) => supported.includes(protocol)) ?? '';
}

function sessionOptionsOf(options: ServerHandshakeOptions): SessionOptions {
  const sessionOptions: SessionOptions = {
    role: 'server',
    maxPayload: options.maxPayload ?? DEFAULT_MAX_PAYLOAD,
    closeTimeout: options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT,
  };
  if (options.readableHighWaterMark !== undefined) sessionOptions.readableHighWaterMark = options.readableHighWaterMark;
  const heartbeat = heartbeatOption(options.heartbeat);
  if (heartbeat !== null) sessionOptions.heartbeat = heartbeat;
  return sessionOptions;
}

function requestInfo(request: IncomingMessage, socket: Duplex): UpgradeRequestInfo {
  const netSocket = socket as Duplex & { remoteAddress?: string; remotePort?: number };
  return { url: request.url ?? '/', headers: request.headers, remoteAddress: netSocket.remoteAddress, remotePort: netSocket.remotePort };
}

function requestUrl(request: IncomingMessage, socket: Duplex): string {
  const scheme = (socket as Duplex & { encrypted?: boolean }).encrypted ? 'wss' : 'ws';
  try {
    return new URL(request.url ?? '/', `${scheme}://${request.headers.host ?? 'localhost'}`).href;
  } catch {
    return `${scheme}://localhost/`;
  }
}

/**
 * Accepts a WebSocket upgrade on a server you own (node:http, Express, Fastify): call it from the
 * server's 'upgrade' event. Resolves with the accepted stream, or null if the request was refused
 * (the refusal, with its HTTP status, has then been sent).
 */
export function handleUpgrade(
  request: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  options: ServerHandshakeOptions = {},
): Promise<ServerWebSocketStream | null> {
  return accept(request, socket, head, options);
}

/**
 * A WebSocket server whose accepted connections come out of `connections`, a ReadableStream (and
 * so an async iterable) of ServerWebSocketStreams. Listens itself (`port`, optional `tls`) or
 * attaches to an existing http/https server (`server`).
 */
export class WebSocketStreamServer {
  /** Accepted connections; when nobody takes them, new handshakes wait (backpressure). */
  readonly connections: ReadableStream<ServerWebSocketStream>;
  /** Resolves once the server listens (at once when attached to an existing server). */
  readonly listening: Promise<void>;

  readonly #options: WebSocketStreamServerOptions;
  readonly #httpServer: http.Server | https.Server;
  readonly #ownsServer: boolean;
  readonly #open = new Set<ServerWebSocketStream>();
  #handshakes = 0;
  #closing = false;
  #closedPromise: Promise<void> | null = null;
  #connectionsController!: ReadableStreamDefaultController<ServerWebSocketStream>;
  #connectionsDone = false;
  /** Handshakes waiting for room in `connections`. */
  #waitingForRoom: Array<() => void> = [];

  constructor(options: WebSocketStreamServerOptions = {}) {
    this.#options = checkServerOptions(options);
    this.connections = new ReadableStream<ServerWebSocketStream>(
      {
        start: (controller) => {
          this.#connectionsController = controller;
        },
        pull: () => this.#wakeWaiting(),
        cancel: () => {
          this.#connectionsDone = true;
          this.#wakeWaiting();
        },
      },
      { highWaterMark: options.acceptBacklog ?? DEFAULT_ACCEPT_BACKLOG },
    );
    if (options.server !== undefined) {
      this.#httpServer = options.server;
      this.#ownsServer = false;
      this.listening = Promise.resolve();
    } else {
      const handshakeTimeout = options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT;
      const serverOptions = {
        maxHeaderSize: options.maxHandshakeHead ?? DEFAULT_MAX_HANDSHAKE_HEAD,
        // node:http checks header and request timeouts only this often (30 s by default).
        connectionsCheckingInterval: Math.floor(Math.min(1000, Math.max(50, handshakeTimeout / 4))),
      };
      this.#httpServer = options.tls !== undefined ? https.createServer({ ...options.tls, ...serverOptions }) : http.createServer(serverOptions);
      this.#ownsServer = true;
      // Slow or never-finished request heads (slowloris) are cut off by node:http itself.
      this.#httpServer.headersTimeout = handshakeTimeout;
      this.#httpServer.requestTimeout = handshakeTimeout;
      this.#httpServer.on('request', (request, response) => {
        // node:http hands over as plain requests the upgrades whose Connection lacks "upgrade".
        if (/\bwebsocket\b/i.test(request.headers.upgrade ?? '')) {
          response.writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
          response.end('Connection header does not hold "upgrade"\n');
          return;
        }
        response.writeHead(426, { 'Content-Type': 'text/plain; charset=utf-8', Upgrade: 'websocket', Connection: 'Upgrade, close' });
        response.end('This is a WebSocket server: connect with a WebSocket client.\n');
      });
      this.listening = new Promise<void>((resolve, reject) => {
        this.#httpServer.once('error', reject);
        const onListening = (): void => {
          this.#httpServer.off('error', reject);
          resolve();
        };
        if (options.socketPath !== undefined) this.#httpServer.listen(options.socketPath, onListening);
        else this.#httpServer.listen(options.port ?? 0, options.host, onListening);
      });
      this.listening.catch(() => {});
    }
    this.#httpServer.on('upgrade', this.#onUpgrade);
  }

  /** The listening address (of the attached server, if any). */
  address(): AddressInfo | string | null {
    return this.#httpServer.address();
  }

  /** Open connections, plus handshakes in progress. */
  get connectionCount(): number {
    return this.#open.size + this.#handshakes;
  }

  /**
   * Accepts an upgrade request for this server (its options, limits and shutdown) from a server
   * you own. Resolves with the stream, or null if refused; the stream is not put in `connections`.
   */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<ServerWebSocketStream | null> {
    return this.#accept(request, socket, head, false);
  }

  /**
   * Stops accepting, closes every open connection (1001 "going away" unless told otherwise) and
   * resolves once every socket is closed (and the listener too, if the server listens itself).
   */
  close(closeInfo?: ServerCloseInfo | null): Promise<void> {
    const dictionary = toDictionary(closeInfo, 'closeInfo');
    const closeCode = dictionary.closeCode === undefined ? CloseCode.GOING_AWAY : Number(dictionary.closeCode);
    const reason = dictionary.reason === undefined ? '' : toUSVString(dictionary.reason);
    if (!Number.isInteger(closeCode) || !isValidWireCloseCode(closeCode)) {
      throw new RangeError(`closeCode ${closeCode} cannot be sent in a close frame`);
    }
    if (utf8ByteLength(reason) > MAX_CLOSE_REASON_BYTES) throw new RangeError(`reason is longer than ${MAX_CLOSE_REASON_BYTES} UTF-8 bytes`);
    if (this.#closedPromise !== null) return this.#closedPromise;
    this.#closing = true;
    this.#httpServer.off('upgrade', this.#onUpgrade);
    this.#wakeWaiting();
    if (!this.#connectionsDone) {
      this.#connectionsDone = true;
      this.#connectionsController.close();
    }
    const closing: Array<Promise<unknown>> = [];
    for (const stream of this.#open) {
      closing.push(settled(stream.closed));
      sessionOf(stream).close(closeCode, reason);
    }
    if (this.#ownsServer) {
      closing.push(
        new Promise<void>((resolve) => {
          this.#httpServer.close(() => resolve());
          // Keep-alive HTTP connections would hold close() open; WebSockets are closed above.
          this.#httpServer.closeIdleConnections();
        }),
      );
    }
    this.#closedPromise = Promise.all(closing).then(() => undefined);
    return this.#closedPromise;
  }

  readonly #onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const path = this.#options.path;
    if (path !== undefined && pathOf(request.url) !== path) {
      // Another upgrade listener on the same server may own this path.
      if (this.#httpServer.listenerCount('upgrade') > 1) return;
      refuse(socket, { status: 404, message: 'no WebSocket endpoint at this path' });
      return;
    }
    void this.#accept(request, socket, head, true).then((stream) => {
      if (stream === null) return;
      if (this.#connectionsDone) {
        sessionOf(stream).close(CloseCode.GOING_AWAY, '');
        return;
      }
      this.#connectionsController.enqueue(stream);
    });
  };

  async #accept(request: IncomingMessage, socket: Duplex, head: Buffer, queued: boolean): Promise<ServerWebSocketStream | null> {
    if (this.#closing) {
      refuse(socket, { status: 503, message: 'server is shutting down' });
      return null;
    }
    const max = this.#options.maxConnections;
    if (max !== undefined && this.connectionCount >= max) {
      refuse(socket, { status: 503, headers: { 'Retry-After': '1' }, message: 'too many connections' });
      return null;
    }
    this.#handshakes++;
    let stream: ServerWebSocketStream | null = null;
    try {
      stream = await accept(request, socket, head, this.#options, async () => {
        if (queued) await this.#roomInQueue();
        return this.#closing || (queued && this.#connectionsDone) ? { status: 503, message: 'server is shutting down' } : null;
      });
    } finally {
      this.#handshakes--;
    }
    if (stream !== null) {
      const accepted = stream;
      this.#open.add(accepted);
      // Removed in the same reaction that settles `closed`, so an awaiting user sees the new count.
      const remove = (): void => void this.#open.delete(accepted);
      accepted.closed.then(remove, remove);
      if (this.#closing) sessionOf(accepted).close(CloseCode.GOING_AWAY, '');
    }
    return stream;
  }

  #roomInQueue(): Promise<void> {
    if (this.#connectionsDone || (this.#connectionsController.desiredSize ?? 0) > 0) return Promise.resolve();
    return new Promise((resolve) => this.#waitingForRoom.push(resolve));
  }

  #wakeWaiting(): void {
    const waiting = this.#waitingForRoom;
    this.#waitingForRoom = [];
    for (const wake of waiting) wake();
  }
}

/** The session behind an accepted stream, for server-initiated closes with codes like 1001. */
function sessionOf(stream: ServerWebSocketStream): Session {
  return sessions.get(stream)!;
}

function settled(promise: Promise<WebSocketClosedInfo>): Promise<void> {
  return promise.then(
    () => undefined,
    () => undefined,
  );
}

function pathOf(url: string | undefined): string {
  const target = url ?? '/';
  const query = target.indexOf('?');
  return query === -1 ? target : target.slice(0, query);
}

/** `socketPath`: a non-empty string, instead of `port` and `host`. */
function checkSocketPath(options: WebSocketStreamServerOptions): void {
  if (options.socketPath === undefined) return;
  if (typeof options.socketPath !== 'string' || options.socketPath === '') throw new TypeError('socketPath must be a non-empty path');
  if (options.port !== undefined || options.host !== undefined) throw new TypeError('socketPath listens on a Unix domain socket: give it without port and host');
}

function checkServerOptions(options: WebSocketStreamServerOptions): WebSocketStreamServerOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  if (options.server === undefined && options.port === undefined && options.socketPath === undefined) {
    throw new TypeError('WebSocketStreamServer needs a port or a socketPath to listen on, or a server to attach to');
  }
  if (options.server !== undefined && (options.port !== undefined || options.tls !== undefined || options.socketPath !== undefined)) {
    throw new TypeError('port, socketPath and tls are for a server that listens itself; they cannot go with server');
  }
  checkSocketPath(options);
  for (const name of ['maxPayload', 'maxConnections', 'maxHandshakeHead', 'acceptBacklog'] as const) positiveNumber(options[name], name, 1);
  for (const name of ['handshakeTimeout', 'closeTimeout'] as const) timeoutOption(options[name], name, 1);
  if (options.readableHighWaterMark !== undefined) positiveNumber(options.readableHighWaterMark, 'readableHighWaterMark', 0, true);
  normalizeDeflateOptions(options.perMessageDeflate, 'perMessageDeflate');
  heartbeatOption(options.heartbeat);
  for (const protocol of options.protocols ?? []) {
    if (typeof protocol !== 'string' || !isToken(protocol)) throw new TypeError(`invalid subprotocol ${JSON.stringify(protocol)}`);
  }
  if (options.protocols !== undefined && options.selectProtocol !== undefined) {
    throw new TypeError('give either protocols or selectProtocol, not both');
  }
  return options;
}
