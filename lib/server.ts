// WebSocketStreamServer: accepted connections as the same WebSocketStreams, handed out through a
// ReadableStream with backpressure on accepting.
import * as http from 'node:http';
import type { IncomingMessage } from 'node:http';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { accept, ignoreError, type Accepted, type BeforeAccept, type ServerWebSocketStream } from './accept.js';
import { acceptExtendedConnect } from './h2-accept.js';
import { http2Windows } from './h2-stream.js';
import { Http2SessionTracker } from './h2-sessions.js';
import { respondRefusal } from './handshake/h2-server.js';
import { refuse, type Refusal } from './handshake/server.js';
import { resolveServerOptions, type ResolvedServerOptions, type WebSocketStreamServerOptions } from './options.js';
import { isValidWireCloseCode } from './protocol/close.js';
import { CloseCode, DEFAULT_READABLE_HIGH_WATER_MARK, MAX_CLOSE_REASON_BYTES } from './protocol/constants.js';
import { utf8ByteLength } from './protocol/utf8.js';
import type { Session, SessionOptions, WebSocketClosedInfo } from './session.js';
import { addUpgradeRoute, type HttpServer, type UpgradeRoute } from './upgrade-router.js';
import { toDictionary, toUSVString } from './webidl.js';

export interface ServerCloseInfo {
  /** Default 1001 (going away). */
  closeCode?: number;
  reason?: string;
}

/**
 * accepting: connections go out through `connections`. stopped: the application left
 * `connections` (cancelled it, or broke out of a for-await loop): nothing new is accepted, and the
 * connections it already took stay open. closing: close() was called.
 */
type ServerState = 'accepting' | 'stopped' | 'closing';

const NOT_ACCEPTING: Refusal = { status: 503, message: 'the server is not accepting connections' };
const STOPPED_ACCEPTING = 'the server stopped accepting connections';

/**
 * A WebSocket server whose accepted connections come out of `connections`, a ReadableStream (and
 * so an async iterable) of ServerWebSocketStreams. Listens itself (`port`, optional `tls`, optional
 * `http2`) or attaches to an existing http, https or http2 server (`server`). Over HTTP/2, each
 * WebSocket is one stream of a connection (RFC 8441), accepted exactly as an HTTP/1.1 upgrade is.
 */
export class WebSocketStreamServer {
  /**
   * Accepted connections; when nobody takes them, new handshakes wait (backpressure). Typed as an
   * AsyncIterable too, so `for await` compiles for users whose `lib` has "DOM" without
   * "DOM.AsyncIterable" (DOM's ReadableStream type then lacks Symbol.asyncIterator).
   */
  readonly connections: ReadableStream<ServerWebSocketStream> & AsyncIterable<ServerWebSocketStream>;
  /** Resolves once the server listens (at once when attached to an existing server). */
  readonly listening: Promise<void>;

  readonly #options: ResolvedServerOptions;
  readonly #httpServer: HttpServer;
  readonly #ownsServer: boolean;
  readonly #removeRoute: () => void;
  /** This server's claim on the WebSocket requests of its http server. */
  readonly #route: UpgradeRoute;
  /** The HTTP/2 sessions of a server we own that speaks HTTP/2. */
  readonly #sessions: Http2SessionTracker | null = null;
  /** Open connections, by session (told when each ends through the sessions' observer). */
  readonly #open = new Map<Session, ServerWebSocketStream>();
  /** The session options of this server's connections: the resolved ones, plus the observer. */
  readonly #sessionOptions: SessionOptions;
  #handshakes = 0;
  #state: ServerState = 'accepting';
  #closeInfo: { closeCode: number; reason: string } = { closeCode: CloseCode.GOING_AWAY, reason: '' };
  #closedPromise: Promise<void> | null = null;
  /** Resolves once the listener of a server we own has closed. */
  #listenerClosed: Promise<void> | null = null;
  #connectionsController!: ReadableStreamDefaultController<ServerWebSocketStream>;
  /**
   * Accepted connections the application has not taken yet. `connections` itself queues nothing
   * (high-water mark 0), so that the server knows exactly which connections nobody has seen.
   */
  #backlog: ServerWebSocketStream[] = [];
  /** A read of `connections` waits for the next connection. */
  #readPending = false;
  /** Handshakes waiting for room in the backlog. */
  #waitingForRoom: Array<() => void> = [];

  constructor(options: WebSocketStreamServerOptions) {
    const resolved = resolveServerOptions(options);
    this.#options = resolved;
    const open = this.#open;
    // One observer per server: a connection that ends leaves the count in the same call that
    // settles its `closed`, so an application that awaits it sees the new count.
    this.#sessionOptions = { ...resolved.session, observer: { sessionEnded: (session) => void open.delete(session) } };
    this.#route = {
      path: resolved.path,
      handle: (request, socket, head) => void this.#handleUpgrade(request, socket, head, true),
      handleStream: (stream, headers, rawHeaders) => void this.#handleStream(stream, headers, rawHeaders, true),
    };
    this.connections = new ReadableStream<ServerWebSocketStream>(
      {
        start: (controller) => {
          this.#connectionsController = controller;
        },
        pull: () => this.#onPull(),
        cancel: () => this.#stopAccepting(),
      },
      { highWaterMark: 0 },
    );
    if (resolved.server !== undefined) {
      this.#httpServer = resolved.server;
      this.#ownsServer = false;
      // Throws if another server already serves this path here: before anything else is set up.
      this.#removeRoute = addUpgradeRoute(this.#httpServer, this.#route);
      this.listening = Promise.resolve();
      return;
    }
    const handshakeTimeout = resolved.handshakeTimeout;
    // node:http checks header and request timeouts only this often (30 s by default).
    const connectionsCheckingInterval = Math.floor(Math.min(1000, Math.max(50, handshakeTimeout / 4)));
    let httpServer: HttpServer;
    if (resolved.http2) {
      // RFC 8441 §3 from the first SETTINGS frame; HTTP/2 has no head size limit of node:http's
      // kind, the header list size (uncompressed) stands for it.
      const windows = http2Windows(resolved.session.readableHighWaterMark ?? DEFAULT_READABLE_HIGH_WATER_MARK);
      const settings: http2.Settings = { enableConnectProtocol: true, maxHeaderListSize: resolved.maxHandshakeHead, initialWindowSize: windows.stream };
      httpServer =
        resolved.tls !== undefined
          ? http2.createSecureServer({ ...resolved.tls, allowHTTP1: true, settings, maxHeaderSize: resolved.maxHandshakeHead } as http2.SecureServerOptions)
          : http2.createServer({ settings, maxHeaderSize: resolved.maxHandshakeHead } as http2.ServerOptions);
      (httpServer as { connectionsCheckingInterval?: number }).connectionsCheckingInterval = connectionsCheckingInterval;
      this.#sessions = new Http2SessionTracker(httpServer, handshakeTimeout, windows.session);
    } else {
      const serverOptions = { maxHeaderSize: resolved.maxHandshakeHead, connectionsCheckingInterval };
      httpServer = resolved.tls !== undefined ? https.createServer({ ...resolved.tls, ...serverOptions }) : http.createServer(serverOptions);
    }
    this.#httpServer = httpServer;
    this.#ownsServer = true;
    // Slow or never-finished request heads (slowloris) are cut off by node:http itself (for
    // HTTP/1.1 on an HTTP/2 server too).
    const timeouts = httpServer as { headersTimeout?: number; requestTimeout?: number; timeout?: number };
    timeouts.headersTimeout = handshakeTimeout;
    timeouts.requestTimeout = handshakeTimeout;
    // A connection that never sends a request at all is dropped after the same time. (An HTTP/2
    // session gets this as an idle timeout too: the session tracker takes it over.)
    timeouts.timeout = handshakeTimeout;
    httpServer.on('request', answerPlainRequest);
    this.#removeRoute = addUpgradeRoute(httpServer, this.#route);
    this.listening = new Promise<void>((resolve, reject) => {
      httpServer.once('error', reject);
      const onListening = (): void => {
        httpServer.off('error', reject);
        resolve();
      };
      if (resolved.socketPath !== undefined) httpServer.listen(resolved.socketPath, onListening);
      else httpServer.listen(resolved.port ?? 0, resolved.host, onListening);
    });
    this.listening.catch(() => {});
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
    return this.#handleUpgrade(request, socket, head, false);
  }

  /**
   * The same for a WebSocket over HTTP/2 (RFC 8441): accepts an extended CONNECT stream from an
   * http2 server you route yourself ('stream' event: pass its stream, headers and raw headers).
   * Your server must have `settings: { enableConnectProtocol: true }`.
   */
  handleHttp2Stream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: string[] = []): Promise<ServerWebSocketStream | null> {
    return this.#handleStream(stream, headers, rawHeaders, false);
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
    const wasAccepting = this.#state === 'accepting';
    this.#state = 'closing';
    this.#closeInfo = { closeCode, reason };
    this.#wakeWaiting();
    if (wasAccepting) {
      // The loop over `connections` still sees every connection that was accepted, then ends.
      const controller = this.#connectionsController;
      for (const stream of this.#backlog) controller.enqueue(stream);
      this.#backlog = [];
      controller.close();
    }
    const closing: Array<Promise<unknown>> = [];
    for (const [session, stream] of this.#open) {
      closing.push(settled(stream.closed));
      session.close(closeCode, reason);
    }
    if (this.#ownsServer) {
      const streamsClosed = Promise.all(closing);
      closing.push(this.#closeListener());
      // An HTTP/2 session outlives its WebSockets only by what its client keeps open.
      if (this.#sessions !== null) void streamsClosed.then(() => this.#sessions?.destroyAll());
    }
    this.#closedPromise = Promise.all(closing).then(() => this.#removeRoute());
    return this.#closedPromise;
  }

  /** A server we own stops listening (idempotent); upgraded sockets are not its to wait for. */
  #closeListener(): Promise<void> {
    this.#listenerClosed ??= new Promise<void>((resolve) => {
      this.#httpServer.close(() => resolve());
      const sessions = this.#sessions;
      if (sessions !== null) {
        // GOAWAY (RFC 9113 §6.8): no new streams; the WebSockets under way finish their closing
        // handshakes, then each session ends. HTTP/1.1 connections left idle are closed by
        // close() itself.
        sessions.closeAll();
        return;
      }
      // Connections still in plain HTTP (one that never sent a request, a keep-alive one) would
      // hold close() open. Upgraded sockets are no longer the HTTP server's: they close above.
      (this.#httpServer as http.Server).closeAllConnections();
    });
    return this.#listenerClosed;
  }

  /** The application left `connections`: it takes no more, so none are accepted any longer. */
  #stopAccepting(): void {
    if (this.#state !== 'accepting') return;
    this.#state = 'stopped';
    const backlog = this.#backlog;
    this.#backlog = [];
    // Nobody will ever read these: their clients are told the server went away.
    for (const stream of backlog) stream.close({ closeCode: CloseCode.GOING_AWAY, reason: STOPPED_ACCEPTING });
    this.#wakeWaiting();
    // Stop listening, so that clients are refused at once rather than by a 503 after connecting.
    if (this.#ownsServer) void this.#closeListener();
  }

  #onPull(): void {
    const next = this.#backlog.shift();
    if (next === undefined) {
      this.#readPending = true;
      return;
    }
    this.#connectionsController.enqueue(next);
    this.#wakeWaiting();
  }

  #handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, queued: boolean): Promise<ServerWebSocketStream | null> {
    return this.#admit(
      (refusal) => {
        socket.on('error', ignoreError);
        refuse(socket, refusal);
      },
      (beforeAccept) => accept(request, socket, head, this.#options, beforeAccept, this.#sessionOptions),
      queued,
    );
  }

  #handleStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: string[], queued: boolean): Promise<ServerWebSocketStream | null> {
    return this.#admit(
      (refusal) => respondRefusal(stream, refusal),
      (beforeAccept) => acceptExtendedConnect(stream, headers, rawHeaders, this.#options, beforeAccept, this.#sessionOptions),
      queued,
    );
  }

  /** The server's own limits before a handshake, then the handshake; the same for both transports. */
  async #admit(
    refuseWith: (refusal: Refusal) => void,
    run: (beforeAccept: BeforeAccept) => Promise<Accepted | null>,
    queued: boolean,
  ): Promise<ServerWebSocketStream | null> {
    if (this.#state !== 'accepting') {
      refuseWith(NOT_ACCEPTING);
      return null;
    }
    if (this.connectionCount >= this.#options.maxConnections) {
      refuseWith({ status: 503, headers: { 'Retry-After': '1' }, message: 'too many connections' });
      return null;
    }
    this.#handshakes++;
    let accepted: Accepted | null;
    try {
      accepted = await run(queued ? this.#waitForRoom : this.#stillAccepting);
    } finally {
      this.#handshakes--;
    }
    if (accepted === null) return null;
    const { stream, session } = accepted;
    if (session.state !== 'closed') this.#open.set(session, stream);
    // The state may have changed while the handshake ran.
    const state = this.#state as ServerState;
    if (state === 'closing') session.close(this.#closeInfo.closeCode, this.#closeInfo.reason);
    else if (state === 'stopped') session.close(CloseCode.GOING_AWAY, STOPPED_ACCEPTING);
    else if (queued) this.#deliver(stream);
    return stream;
  }

  #deliver(stream: ServerWebSocketStream): void {
    if (this.#readPending) {
      this.#readPending = false;
      this.#connectionsController.enqueue(stream);
    } else {
      this.#backlog.push(stream);
    }
  }

  /** Before the 101 of a queued connection: wait while the backlog is full and nobody reads. */
  readonly #waitForRoom: BeforeAccept = () => (this.#hasRoom() ? this.#stillAccepting() : this.#roomLater());

  #hasRoom(): boolean {
    return this.#state !== 'accepting' || this.#readPending || this.#backlog.length < this.#options.acceptBacklog;
  }

  async #roomLater(): Promise<Refusal | null> {
    while (!this.#hasRoom()) await new Promise<void>((resolve) => this.#waitingForRoom.push(resolve));
    return this.#stillAccepting();
  }

  readonly #stillAccepting = (): Refusal | null => (this.#state === 'accepting' ? null : NOT_ACCEPTING);

  #wakeWaiting(): void {
    const waiting = this.#waitingForRoom;
    this.#waitingForRoom = [];
    for (const wake of waiting) wake();
  }
}

/** A server that listens itself answers plain HTTP requests: it serves WebSockets only. */
function answerPlainRequest(request: IncomingMessage | http2.Http2ServerRequest, response: http.ServerResponse | http2.Http2ServerResponse): void {
  if (request.httpVersionMajor === 2) {
    // HTTP/2 has no Upgrade (RFC 9113 §8.2.2), so no 426: WebSockets come as extended CONNECT.
    (response as http2.Http2ServerResponse).writeHead(405, { 'content-type': 'text/plain; charset=utf-8', allow: 'CONNECT' });
    response.end('This is a WebSocket server: connect with a WebSocket client (over HTTP/2: extended CONNECT, RFC 8441).\n');
    return;
  }
  // node:http hands over as plain requests the upgrades whose Connection lacks "upgrade".
  if (/\bwebsocket\b/i.test(request.headers.upgrade ?? '')) {
    response.writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
    response.end('Connection header does not hold "upgrade"\n');
    return;
  }
  response.writeHead(426, { 'Content-Type': 'text/plain; charset=utf-8', Upgrade: 'websocket', Connection: 'Upgrade, close' });
  response.end('This is a WebSocket server: connect with a WebSocket client.\n');
}

function settled(promise: Promise<WebSocketClosedInfo>): Promise<void> {
  return promise.then(
    () => undefined,
    () => undefined,
  );
}
