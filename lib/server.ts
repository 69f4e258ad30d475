// WebSocketStreamServer: accepted connections as the same WebSocketStreams, handed out through a
// ReadableStream with backpressure on accepting.
import * as http from 'node:http';
import type { IncomingMessage } from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { accept, type Accepted, type BeforeAccept, type ServerWebSocketStream } from './accept.js';
import { refuse, type Refusal } from './handshake/server.js';
import { resolveServerOptions, type ResolvedServerOptions, type WebSocketStreamServerOptions } from './options.js';
import { isValidWireCloseCode } from './protocol/close.js';
import { CloseCode, MAX_CLOSE_REASON_BYTES } from './protocol/constants.js';
import { utf8ByteLength } from './protocol/utf8.js';
import type { Session, SessionOptions, WebSocketClosedInfo } from './session.js';
import { addUpgradeRoute, type HttpServer } from './upgrade-router.js';
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
 * so an async iterable) of ServerWebSocketStreams. Listens itself (`port`, optional `tls`) or
 * attaches to an existing http/https server (`server`).
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
      this.#removeRoute = addUpgradeRoute(this.#httpServer, { path: resolved.path, handle: this.#onUpgrade });
      this.listening = Promise.resolve();
      return;
    }
    const handshakeTimeout = resolved.handshakeTimeout;
    const serverOptions = {
      maxHeaderSize: resolved.maxHandshakeHead,
      // node:http checks header and request timeouts only this often (30 s by default).
      connectionsCheckingInterval: Math.floor(Math.min(1000, Math.max(50, handshakeTimeout / 4))),
    };
    const httpServer = resolved.tls !== undefined ? https.createServer({ ...resolved.tls, ...serverOptions }) : http.createServer(serverOptions);
    this.#httpServer = httpServer;
    this.#ownsServer = true;
    // Slow or never-finished request heads (slowloris) are cut off by node:http itself.
    httpServer.headersTimeout = handshakeTimeout;
    httpServer.requestTimeout = handshakeTimeout;
    // A connection that never sends a request at all is dropped after the same time.
    httpServer.timeout = handshakeTimeout;
    httpServer.on('request', answerPlainRequest);
    this.#removeRoute = addUpgradeRoute(httpServer, { path: resolved.path, handle: this.#onUpgrade });
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
    return this.#handle(request, socket, head, false);
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
    if (this.#ownsServer) closing.push(this.#closeListener());
    this.#closedPromise = Promise.all(closing).then(() => this.#removeRoute());
    return this.#closedPromise;
  }

  /** A server we own stops listening (idempotent); upgraded sockets are not its to wait for. */
  #closeListener(): Promise<void> {
    this.#listenerClosed ??= new Promise<void>((resolve) => {
      this.#httpServer.close(() => resolve());
      // Connections still in plain HTTP (one that never sent a request, a keep-alive one) would
      // hold close() open. Upgraded sockets are no longer the HTTP server's: they close above.
      this.#httpServer.closeAllConnections();
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

  readonly #onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    void this.#handle(request, socket, head, true);
  };

  async #handle(request: IncomingMessage, socket: Duplex, head: Buffer, queued: boolean): Promise<ServerWebSocketStream | null> {
    if (this.#state !== 'accepting') {
      refuse(socket, NOT_ACCEPTING);
      return null;
    }
    if (this.connectionCount >= this.#options.maxConnections) {
      refuse(socket, { status: 503, headers: { 'Retry-After': '1' }, message: 'too many connections' });
      return null;
    }
    this.#handshakes++;
    let accepted: Accepted | null;
    try {
      accepted = await accept(request, socket, head, this.#options, queued ? this.#waitForRoom : this.#stillAccepting, this.#sessionOptions);
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
  readonly #waitForRoom: BeforeAccept = async () => {
    while (this.#state === 'accepting' && !this.#readPending && this.#backlog.length >= this.#options.acceptBacklog) {
      await new Promise<void>((resolve) => this.#waitingForRoom.push(resolve));
    }
    return this.#stillAccepting();
  };

  readonly #stillAccepting: BeforeAccept = () => Promise.resolve(this.#state === 'accepting' ? null : NOT_ACCEPTING);

  #wakeWaiting(): void {
    const waiting = this.#waitingForRoom;
    this.#waitingForRoom = [];
    for (const wake of waiting) wake();
  }
}

/** A server that listens itself answers plain HTTP requests: it serves WebSockets only. */
function answerPlainRequest(request: IncomingMessage, response: http.ServerResponse): void {
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
