// The server's side of one upgrade: the handshake checks, the user's callbacks (verify,
// selectProtocol) held to their contract and to the handshake deadline, the 101, and the
// server-side WebSocketStream it produces. Every socket handed in is answered exactly once.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { checkRefusal, checkUpgradeRequest, describe, isRefusal, refuse, switchingProtocolsHead, type Refusal } from './handshake/server.js';
import { resolveServerHandshake, type ResolvedServerHandshake, type ServerHandshakeOptions } from './options.js';
import { acceptClientOffers } from './protocol/permessage-deflate.js';
import { Session, type SessionOptions } from './session.js';
import { adoptSession, isAdopting, WebSocketStream } from './websocket-stream.js';

/** What the server knows of the request that opened a connection. */
export interface UpgradeRequestInfo {
  /** The request target: path and query, e.g. "/chat?room=1". */
  url: string;
  headers: IncomingHttpHeaders;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
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
export type BeforeAccept = () => Promise<Refusal | null>;

const TIMED_OUT = Symbol('timed out');
type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown } | typeof TIMED_OUT;

/** An accepted connection: the stream handed to the application, and the session behind it. */
export interface Accepted {
  stream: ServerWebSocketStream;
  session: Session;
}

/**
 * Accepts one upgrade request; resolves with the stream and its session, or null once the request
 * was refused (the refusal has then been sent). Never rejects: an unexpected failure destroys the
 * socket. `sessionOptions` overrides the options' own (a server adds its observer there).
 */
export async function accept(
  request: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  options: ResolvedServerHandshake,
  beforeAccept?: BeforeAccept,
  sessionOptions: SessionOptions = options.session,
): Promise<Accepted | null> {
  // A module-level function: a listener created here would keep this whole scope (the request
  // above all) alive for the life of the connection.
  socket.on('error', ignoreError);
  let timer: NodeJS.Timeout | undefined;
  // Every wait below races this deadline: a callback that never settles must not hold the
  // handshake (and its place under maxConnections) open.
  const expired = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(resolve, options.handshakeTimeout, TIMED_OUT);
  });
  try {
    const checked = checkUpgradeRequest(request);
    if (isRefusal(checked)) {
      refuse(socket, checked);
      return null;
    }
    const verify = options.verify;
    if (verify !== undefined) {
      const outcome = await settle(() => verify(request), expired);
      if (outcome === TIMED_OUT) return timedOut(socket, options, 'verify');
      const refusal = outcome.ok ? verdictRefusal(outcome.value, options) : callbackFailed(options, 'verify', outcome.error);
      if (refusal !== null) {
        refuse(socket, refusal);
        return null;
      }
    }
    let protocol: string;
    const selectProtocol = options.selectProtocol;
    if (selectProtocol !== undefined) {
      const outcome = await settle(() => selectProtocol([...checked.protocols], request), expired);
      if (outcome === TIMED_OUT) return timedOut(socket, options, 'selectProtocol');
      const selected = outcome.ok ? selectedProtocol(outcome.value, checked.protocols) : outcome.error;
      if (typeof selected !== 'string') {
        refuse(socket, callbackFailed(options, 'selectProtocol', selected));
        return null;
      }
      protocol = selected;
    } else {
      protocol = checked.protocols.find((offered) => options.protocols.includes(offered)) ?? '';
    }
    if (beforeAccept !== undefined) {
      const outcome = await settle(beforeAccept, expired);
      if (outcome === TIMED_OUT) {
        refuse(socket, { status: 503, headers: { 'Retry-After': '1' }, message: 'the server is busy: no room for the connection in time' });
        return null;
      }
      const refusal = outcome.ok ? outcome.value : { status: 500 };
      if (refusal !== null) {
        refuse(socket, refusal);
        return null;
      }
    }
    // The client may have gone while we waited: there is nobody left to answer.
    if (socket.destroyed || !socket.writable) {
      socket.destroy();
      return null;
    }
    const deflate = options.perMessageDeflate === null ? null : acceptClientOffers(request.headers['sec-websocket-extensions'], options.perMessageDeflate);
    const extensions = deflate?.response ?? '';
    // The HTTP server's idle timer has no say over a WebSocket (the heartbeat does).
    (socket as Duplex & { setTimeout?(ms: number): unknown }).setTimeout?.(0);
    socket.write(switchingProtocolsHead(checked.key, protocol, extensions));
    const session = new Session(sessionOptions);
    session.establish(socket, head, protocol, extensions, deflate?.params ?? null);
    return { stream: createServerStream(requestUrl(request, socket), session, requestInfo(request, socket)), session };
  } catch (error) {
    // A bug of ours: the socket is released rather than left hanging, and the error is shown.
    socket.destroy();
    warnOnce('accept', `an upgrade failed unexpectedly: ${String((error as Error)?.stack ?? error)}`);
    return null;
  } finally {
    clearTimeout(timer);
  }
}

/** Runs a step that may be the user's: its value, what it threw or rejected with, or TIMED_OUT. */
async function settle<T>(step: () => T | PromiseLike<T>, expired: Promise<typeof TIMED_OUT>): Promise<Outcome<Awaited<T>>> {
  const work = (async () => ({ ok: true as const, value: await step() }))().catch((error: unknown) => ({ ok: false as const, error }));
  return Promise.race([work, expired]);
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

function timedOut(socket: Duplex, options: ResolvedServerHandshake, callback: 'verify' | 'selectProtocol'): null {
  refuse(socket, { status: 503, headers: { 'Retry-After': '1' }, message: 'handshake timed out' });
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

function ignoreError(): void {}

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
