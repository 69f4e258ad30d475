// The server's side of one opening handshake: the checks, the user's callbacks (verify,
// selectProtocol) held to their contract and to the handshake deadline, the acceptance, and the
// server-side WebSocketStream it produces. Every socket (or HTTP/2 stream) handed in is answered
// exactly once. The HTTP/1.1 upgrade is here; HTTP/2's extended CONNECT is in h2-accept.ts.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ConnectionSocket } from './connection.js';
import { checkRefusal, checkUpgradeRequest, describe, isRefusal, refuse, switchingProtocolsHead, type Refusal } from './handshake/server.js';
import { resolveServerHandshake, type HandshakeRequest, type ResolvedServerHandshake, type ServerHandshakeOptions } from './options.js';
import { acceptClientOffers } from './handshake/deflate-negotiation.js';
import { Session, type SessionOptions } from './session.js';
import { adoptSession, isAdopting, WebSocketStream } from './websocket-stream.js';

/** What the server knows of the request that opened a connection. */
export interface UpgradeRequestInfo {
  /** The request target: path and query, e.g. "/chat?room=1". */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  /** "1.1" for an HTTP/1.1 upgrade, "2.0" for an HTTP/2 extended CONNECT (RFC 8441). */
  readonly httpVersion: '1.1' | '2.0';
}

/**
 * UpgradeRequestInfo, with the peer's address read from the socket only when asked for (it costs
 * a system call, and most servers never look).
 */
export class RequestInfo implements UpgradeRequestInfo {
  readonly #socket: { readonly remoteAddress?: string | undefined; readonly remotePort?: number | undefined } | undefined;

  constructor(
    readonly url: string,
    readonly headers: IncomingHttpHeaders,
    readonly httpVersion: '1.1' | '2.0',
    socket: { readonly remoteAddress?: string | undefined; readonly remotePort?: number | undefined } | undefined,
  ) {
    this.#socket = socket;
  }

  get remoteAddress(): string | undefined {
    return this.#socket?.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.#socket?.remotePort;
  }

  toJSON(): UpgradeRequestInfo {
    return { url: this.url, headers: this.headers, remoteAddress: this.remoteAddress, remotePort: this.remotePort, httpVersion: this.httpVersion };
  }
}

let createServerStream: (url: string, session: Session, request: UpgradeRequestInfo) => ServerWebSocketStream;

/** A WebSocketStream accepted by a server: the client's facade plus the request it came with. */
export class ServerWebSocketStream extends WebSocketStream {
  readonly request: UpgradeRequestInfo;

  static {
    createServerStream = (url, session, request) => adoptSession(url, session, () => new ServerWebSocketStream(request));
  }

  /** Server-side streams come from a server (`connections`, `handleUpgrade`), never from `new`. */
  private constructor(request: UpgradeRequestInfo) {
    if (!isAdopting()) throw new TypeError('a ServerWebSocketStream is created by a server, not with new');
    super('');
    this.request = request;
  }
}

Object.defineProperty(ServerWebSocketStream.prototype, Symbol.toStringTag, { value: 'ServerWebSocketStream', configurable: true });

/** A step that may wait before the 101 (the server's accept queue): a refusal, or null to go on. */
export type BeforeAccept = () => Refusal | null | Promise<Refusal | null>;

const TIMED_OUT = Symbol('timed out');
type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown } | typeof TIMED_OUT;

/**
 * One opening handshake as the acceptance pipeline sees it, whatever carries it: an HTTP/1.1
 * upgrade (below) or an HTTP/2 extended CONNECT stream (h2-accept.ts). The pipeline (checks,
 * callbacks, deadline, accept queue) is the same for both; only the wire differs.
 */
export interface HandshakeTransport {
  /** What `verify` and `selectProtocol` receive. */
  readonly request: HandshakeRequest;
  /** The transport's own checks: the subprotocols offered, or the refusal to send. */
  check(): { protocols: string[] } | Refusal;
  /** The client's Sec-WebSocket-Extensions offer, if any. */
  readonly offeredExtensions: string | undefined;
  /** Sends an HTTP refusal and releases the transport. */
  refuse(refusal: Refusal): void;
  /** The client went away (or can no longer be answered) while we waited. */
  readonly gone: boolean;
  /** Sends the acceptance; returns what the connection runs over and the bytes that came with it. */
  open(protocol: string, extensions: string): { socket: ConnectionSocket; head: Buffer };
  /** Releases the transport without an answer (a bug of ours, or nobody left to answer). */
  destroy(): void;
  /** The request as the accepted stream keeps it, and the stream's URL. */
  info(): UpgradeRequestInfo;
  url(): string;
}

/**
 * Accepts one upgrade request; resolves with the stream, or null once the request was refused (the
 * refusal has then been sent). Never rejects: an unexpected failure destroys the socket.
 */
export function accept(
  request: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  options: ResolvedServerHandshake,
  beforeAccept?: BeforeAccept,
  sessionOptions?: SessionOptions,
): Promise<Accepted | null> {
  // A module-level function: a listener created here would keep this whole scope (the request
  // above all) alive for the life of the connection.
  socket.on('error', ignoreError);
  return runHandshake(new UpgradeTransport(request, socket, head), options, beforeAccept, sessionOptions);
}

/** An HTTP/1.1 upgrade (RFC 6455 §4.2): checks, the 101, refusals as HTTP/1.1 responses. */
class UpgradeTransport implements HandshakeTransport {
  #key = '';

  constructor(
    readonly request: IncomingMessage,
    private readonly socket: Duplex,
    private readonly head: Buffer,
  ) {}

  check(): { protocols: string[] } | Refusal {
    const checked = checkUpgradeRequest(this.request);
    if (isRefusal(checked)) return checked;
    this.#key = checked.key;
    return checked;
  }

  get offeredExtensions(): string | undefined {
    return this.request.headers['sec-websocket-extensions'];
  }

  refuse(refusal: Refusal): void {
    refuse(this.socket, refusal);
  }

  get gone(): boolean {
    return this.socket.destroyed || !this.socket.writable;
  }

  open(protocol: string, extensions: string): { socket: ConnectionSocket; head: Buffer } {
    // The HTTP server's idle timer has no say over a WebSocket (the heartbeat does).
    (this.socket as Duplex & { setTimeout?(ms: number): unknown }).setTimeout?.(0);
    this.socket.write(switchingProtocolsHead(this.#key, protocol, extensions));
    return { socket: this.socket, head: this.head };
  }

  destroy(): void {
    this.socket.destroy();
  }

  info(): UpgradeRequestInfo {
    return new RequestInfo(this.request.url ?? '/', this.request.headers, '1.1', this.socket as Duplex & { remoteAddress?: string; remotePort?: number });
  }

  url(): string {
    const scheme = (this.socket as Duplex & { encrypted?: boolean }).encrypted ? 'wss' : 'ws';
    return targetUrl(scheme, this.request.headers.host, this.request.url);
  }
}

/** The absolute URL of a request target, or the scheme's root when its parts do not make one. */
export function targetUrl(scheme: 'ws' | 'wss', authority: string | undefined, target: string | undefined): string {
  try {
    return new URL(target ?? '/', `${scheme}://${authority ?? 'localhost'}`).href;
  } catch {
    return `${scheme}://localhost/`;
  }
}

/** An accepted connection: the stream handed to the application, and the session behind it. */
export interface Accepted {
  stream: ServerWebSocketStream;
  session: Session;
}

/**
 * The acceptance pipeline: the transport's checks, `verify`, the subprotocol, the accept queue,
 * then the acceptance. Resolves with the stream and its session, or null once the request was
 * refused. Never rejects: an unexpected failure releases the transport. `sessionOptions`
 * overrides the options' own (a server adds its observer there).
 */
export async function runHandshake(
  transport: HandshakeTransport,
  options: ResolvedServerHandshake,
  beforeAccept?: BeforeAccept,
  sessionOptions: SessionOptions = options.session,
): Promise<Accepted | null> {
  const request = transport.request;
  // Every wait below races this deadline: a callback that never settles must not hold the
  // handshake (and its place under maxConnections) open.
  const deadline = new Deadline(options.handshakeTimeout);
  try {
    const checked = transport.check();
    if (isRefusal(checked)) {
      transport.refuse(checked);
      return null;
    }
    const verify = options.verify;
    if (verify !== undefined) {
      const outcome = await settle(() => verify(request), deadline);
      if (outcome === TIMED_OUT) return timedOut(transport, options, 'verify');
      const refusal = outcome.ok ? verdictRefusal(outcome.value, options) : callbackFailed(options, 'verify', outcome.error);
      if (refusal !== null) {
        transport.refuse(refusal);
        return null;
      }
    }
    let protocol: string;
    const selectProtocol = options.selectProtocol;
    if (selectProtocol !== undefined) {
      const outcome = await settle(() => selectProtocol([...checked.protocols], request), deadline);
      if (outcome === TIMED_OUT) return timedOut(transport, options, 'selectProtocol');
      const selected = outcome.ok ? selectedProtocol(outcome.value, checked.protocols) : outcome.error;
      if (typeof selected !== 'string') {
        transport.refuse(callbackFailed(options, 'selectProtocol', selected));
        return null;
      }
      protocol = selected;
    } else {
      protocol = checked.protocols.find((offered) => options.protocols.includes(offered)) ?? '';
    }
    if (beforeAccept !== undefined) {
      const outcome = await settle(beforeAccept, deadline);
      if (outcome === TIMED_OUT) {
        transport.refuse({ status: 503, headers: { 'Retry-After': '1' }, message: 'the server is busy: no room for the connection in time' });
        return null;
      }
      const refusal = outcome.ok ? outcome.value : { status: 500 };
      if (refusal !== null) {
        transport.refuse(refusal);
        return null;
      }
    }
    // The client may have gone while we waited: there is nobody left to answer.
    if (transport.gone) {
      transport.destroy();
      return null;
    }
    const deflate = options.perMessageDeflate === null ? null : acceptClientOffers(transport.offeredExtensions, options.perMessageDeflate);
    const extensions = deflate?.response ?? '';
    const { socket, head } = transport.open(protocol, extensions);
    const session = new Session(sessionOptions);
    session.establish(socket, head, protocol, extensions, deflate?.params ?? null);
    return { stream: createServerStream(transport.url(), session, transport.info()), session };
  } catch (error) {
    // A bug of ours: the transport is released rather than left hanging, and the error is shown.
    transport.destroy();
    warnOnce('accept', `an upgrade failed unexpectedly: ${String((error as Error)?.stack ?? error)}`);
    return null;
  } finally {
    deadline.clear();
  }
}

/** A handshake's deadline: its timer is armed only once a step has to be waited for. */
class Deadline {
  #timer: NodeJS.Timeout | undefined;
  #expired: Promise<typeof TIMED_OUT> | null = null;

  constructor(private readonly ms: number) {}

  get expired(): Promise<typeof TIMED_OUT> {
    return (this.#expired ??= new Promise<typeof TIMED_OUT>((resolve) => {
      this.#timer = setTimeout(resolve, this.ms, TIMED_OUT);
    }));
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}

/** Runs a step that may be the user's: its value, what it threw or rejected with, or TIMED_OUT. */
function settle<T>(step: () => T | PromiseLike<T>, deadline: Deadline): Outcome<Awaited<T>> | Promise<Outcome<Awaited<T>>> {
  let result: T | PromiseLike<T>;
  try {
    result = step();
    // A result that is not a thenable needs no wait (and no timer): the common case.
    if (!isThenable(result)) return { ok: true, value: result as Awaited<T> };
  } catch (error) {
    return { ok: false, error };
  }
  const work = Promise.resolve(result).then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
  return Promise.race([work, deadline.expired]);
}

/** Reading `then` is user code too (a getter may throw): the caller catches. */
function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/** `verify`'s result as a refusal, or null to accept (the contract is in VerifyResult). */
function verdictRefusal(verdict: unknown, options: ResolvedServerHandshake): Refusal | null {
  if (verdict === true) return null;
  if (verdict === false || verdict === undefined || verdict === null) return { status: 403 };
  if (typeof verdict === 'object') {
    let refusal: Refusal | TypeError;
    try {
      refusal = checkRefusal(verdict);
    } catch (error) {
      // A refusal read through getters is user code too.
      return callbackFailed(options, 'verify', error);
    }
    return isRefusalResult(refusal) ? refusal : callbackFailed(options, 'verify', refusal);
  }
  return callbackFailed(
    options,
    'verify',
    new TypeError(`verify returned ${describe(verdict)}: return true to accept, false (or nothing) to refuse with 403, or { status, headers, message }`),
  );
}

function isRefusalResult(value: Refusal | TypeError): value is Refusal {
  return !(value instanceof Error);
}

/** `selectProtocol`'s result: the protocol ("" for none), or the TypeError that refuses the upgrade. */
function selectedProtocol(value: unknown, offered: readonly string[]): string | TypeError {
  if (value === null || value === undefined || value === '') return '';
  if (typeof value !== 'string') return new TypeError(`selectProtocol returned ${describe(value)}: return one of the offered protocols, or null`);
  // RFC 6455 §4.2.2: the server may only select a subprotocol the client offered.
  if (!offered.includes(value)) return new TypeError(`selectProtocol returned ${JSON.stringify(value)}, which the client did not offer`);
  return value;
}

function timedOut(transport: HandshakeTransport, options: ResolvedServerHandshake, callback: 'verify' | 'selectProtocol'): null {
  transport.refuse({ status: 503, headers: { 'Retry-After': '1' }, message: 'handshake timed out' });
  report(options, callback, new Error(`${callback} did not settle within handshakeTimeout (${options.handshakeTimeout} ms); the upgrade was refused with 503`));
  return null;
}

/** A callback threw or broke its contract: the upgrade gets 500, and the error is reported. */
function callbackFailed(options: ResolvedServerHandshake, callback: 'verify' | 'selectProtocol', error: unknown): Refusal {
  report(options, callback, error instanceof Error ? error : new Error(`${callback} threw ${describe(error)}`, { cause: error }));
  return { status: 500, message: `${callback} failed` };
}

function report(options: ResolvedServerHandshake, callback: string, error: Error): void {
  const onError = options.onError;
  if (onError !== undefined) {
    try {
      onError(error);
      return;
    } catch (thrown) {
      warnOnce('onError', `onError threw: ${String((thrown as Error)?.message ?? thrown)}`);
    }
  }
  warnOnce(callback, `${callback} failed and the upgrade was refused: ${error.message} (later failures of ${callback} are not printed; pass onError to see each)`);
}

/** Warnings already printed, process-wide: a callback that fails on every request is shown once. */
const warned = new Set<string>();

function warnOnce(key: string, message: string): void {
  if (warned.has(key)) return;
  warned.add(key);
  process.emitWarning(message, 'WebSocketStreamServerWarning');
}

export function ignoreError(): void {}

/**
 * Accepts a WebSocket upgrade on a server you own (node:http, Express, Fastify): call it from the
 * server's 'upgrade' event. Resolves with the accepted stream, or null if the request was refused
 * (the refusal, with its HTTP status, has then been sent). Invalid options reject with a TypeError
 * or RangeError after the socket was answered with 500.
 */
export async function handleUpgrade(
  request: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  options: ServerHandshakeOptions = {},
): Promise<ServerWebSocketStream | null> {
  let resolved: ResolvedServerHandshake;
  try {
    resolved = resolveServerHandshake(options);
  } catch (error) {
    socket.on('error', ignoreError);
    refuse(socket, { status: 500, message: 'the WebSocket endpoint is misconfigured' });
    throw error;
  }
  return (await accept(request, socket, head, resolved))?.stream ?? null;
}
