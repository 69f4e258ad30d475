// Options: the public option types of both roles, and one resolver per role that converts, checks
// and defaults them once, so that nothing downstream re-reads or re-derives a user's option.
import type { IncomingMessage } from 'node:http';
import type * as http from 'node:http';
import type * as http2 from 'node:http2';
import type * as https from 'node:https';
import type * as tls from 'node:tls';
import type { HeartbeatOptions } from './connection.js';
import type { Http2Mode } from './handshake/h2-client.js';
import type { ExtendedConnectRequest } from './handshake/h2-server.js';
import { isToken, isValidHeaderValue } from './handshake/http.js';
import { resolveProxy, toProxySetting, type ProxyEndpoint, type ProxyOptions } from './handshake/proxy.js';
import type { Refusal } from './handshake/server.js';
import { isUnixSocketUrl, toCreateConnection, unixSocketTarget, type CreateConnection } from './handshake/transport.js';
import {
  DEFAULT_ACCEPT_BACKLOG,
  DEFAULT_CLOSE_TIMEOUT,
  DEFAULT_HANDSHAKE_TIMEOUT,
  DEFAULT_HTTP2_IDLE_TIMEOUT,
  DEFAULT_MAX_HANDSHAKE_HEAD,
  DEFAULT_MAX_PAYLOAD,
  DEFAULT_READABLE_HIGH_WATER_MARK,
  DEFAULT_SEND_BUFFER_SIZE,
} from './protocol/constants.js';
import { normalizeDeflateOptions, type PerMessageDeflateOptions } from './handshake/deflate-negotiation.js';
import type { SessionOptions } from './session.js';
import { toAbortSignal, toDictionary, toUSVString, toUSVStringSequence } from './webidl.js';

export type { HeartbeatOptions } from './connection.js';

/** setTimeout takes at most 2^31-1 ms; past that Node fires after 1 ms, so such values are refused. */
export const MAX_TIMEOUT = 2 ** 31 - 1;

/** A positive number (or zero, when allowed); `fallback` when undefined. */
export function positiveNumber(value: unknown, name: string, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value)) throw new TypeError(`${name} must be a number`);
  if (value < 0 || (!allowZero && value === 0)) throw new RangeError(`${name} must be ${allowZero ? 'at least 0' : 'positive'}`);
  return value;
}

/** A timer delay in milliseconds: positive, finite, at most MAX_TIMEOUT. */
export function timeoutOption(value: unknown, name: string, fallback: number): number {
  const ms = positiveNumber(value, name, fallback);
  if (!Number.isFinite(ms) || ms > MAX_TIMEOUT) {
    throw new RangeError(`${name} must be a finite number of milliseconds up to ${MAX_TIMEOUT}`);
  }
  return ms;
}

/** `heartbeat`: off when undefined or null; else an interval and an optional pong timeout, in ms. */
export function heartbeatOption(value: unknown): HeartbeatOptions | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object') throw new TypeError('heartbeat must be an object: { interval, timeout? }');
  const { interval, timeout } = value as { interval?: unknown; timeout?: unknown };
  if (interval === undefined) throw new TypeError('heartbeat.interval is required');
  const result: HeartbeatOptions = { interval: timeoutOption(interval, 'heartbeat.interval', 0) };
  if (timeout !== undefined) result.timeout = timeoutOption(timeout, 'heartbeat.timeout', 0);
  return result;
}

// ---- The client: new WebSocketStream(url, options) ----

export type HeadersInit = Headers | Iterable<readonly [string, string]> | Record<string, string>;

export interface WebSocketStreamOptions {
  /** Subprotocols to offer (WHATWG). */
  protocols?: Iterable<string>;
  /** Aborts the opening handshake (WHATWG). */
  signal?: AbortSignal;
  /** Extra request headers (Node only). Handshake headers such as Upgrade are refused. */
  headers?: HeadersInit;
  /** Options for tls.connect on wss: URLs (Node only): ca, cert, key, servername, rejectUnauthorized… */
  tls?: tls.ConnectionOptions;
  /** Largest message accepted, in bytes; larger ones close the connection with 1009. Default 100 MiB. */
  maxPayload?: number;
  /** Milliseconds from connecting to the end of the 101 response. Default 30 000. */
  handshakeTimeout?: number;
  /** Milliseconds to wait for the peer's close frame, and then for its TCP close. Default 5 000. */
  closeTimeout?: number;
  /** Bytes of messages the readable queues before reading from the socket stops. Default 1 MiB. */
  readableHighWaterMark?: number;
  /**
   * The bounded send buffer, in bytes: a write resolves at once while the bytes not yet taken by
   * the kernel, its own included, stay at or under this; past it, once the socket has drained to
   * it. Default 16 KiB.
   */
  sendBufferSize?: number;
  /** Largest HTTP response head accepted, in bytes. Default 16 KiB. */
  maxHandshakeHead?: number;
  /**
   * Offer permessage-deflate (RFC 7692): on by default, like browsers, as
   * `permessage-deflate; client_max_window_bits`. false turns it off; an object sets parameters.
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /**
   * Find half-open connections: ping every `interval` ms; no pong within `timeout` ms (default:
   * the interval) drops the connection, and `closed` rejects with 1006. Off by default.
   */
  heartbeat?: HeartbeatOptions;
  /**
   * Connect through a proxy (Node only). An HTTP(S) proxy URL (`'http://user:pass@host:3128'`,
   * `https:` for TLS to the proxy; percent-encoded credentials are sent as Basic Proxy-Authorization)
   * for a CONNECT tunnel; a SOCKS5 proxy URL (`'socks5://user:pass@host:1080'` resolves the server's
   * name here, `socks5h://` lets the proxy resolve it; credentials are sent as RFC 1929
   * username/password); `'env'` to use `https_proxy`/`HTTPS_PROXY` (wss:) or `http_proxy`/`HTTP_PROXY`
   * (ws:), else `all_proxy`/`ALL_PROXY`, unless `no_proxy`/`NO_PROXY` matches; `{ url, tls }` to add
   * tls.connect options for an https: proxy. Default: no proxy (the environment is read only with
   * `'env'`). Invalid values throw TypeError.
   */
  proxy?: string | URL | false | null | ProxyOptions;
  /**
   * Bring your own transport (Node only): called once, from the constructor, with a copy of the URL
   * and the options the library would pass to net.connect or tls.connect; returns a stream.Duplex,
   * connected or connecting, or a promise of one. For wss: the library runs TLS over it unless it
   * is a tls.TLSSocket already. Cannot be combined with `proxy`.
   */
  createConnection?: CreateConnection;
  /**
   * WebSockets over HTTP/2 (RFC 8441, Node only). `false` (default): the HTTP/1.1 upgrade.
   * `true`: HTTP/2 only, as one stream of a session shared by the WebSockets to the same origin
   * (wss: negotiates h2 by ALPN; ws: speaks h2c with prior knowledge); the handshake fails if
   * the server does not speak HTTP/2 or does not enable extended CONNECT. `'prefer'`: the same
   * when the server allows it, else the HTTP/1.1 upgrade. A `ClientHttp2Session` (from
   * http2.connect): a stream on that session, which stays yours to close. Not with `proxy`,
   * `createConnection` or ws+unix: URLs.
   */
  http2?: boolean | 'prefer' | http2.ClientHttp2Session;
  /** Milliseconds a shared HTTP/2 session stays open once it carries no WebSocket. Default 5 000. */
  http2IdleTimeout?: number;
}

/** RFC 9113 §8.2.2: connection-specific fields, malformed in HTTP/2 (the others are reserved above). */
const HTTP1_ONLY_HEADERS = new Set(['keep-alive', 'proxy-connection', 'te']);

/** Headers the handshake itself sets; a user value would break or forge it. */
const RESERVED_HEADERS = new Set([
  'host',
  'upgrade',
  'connection',
  'content-length',
  'transfer-encoding',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-protocol',
  'sec-websocket-extensions',
  'sec-websocket-accept',
]);

/** The client's constructor arguments, converted, checked and defaulted once. */
export interface ResolvedClientOptions {
  /** The WebSocket URL, parsed (http: and https: mapped to ws: and wss:). */
  url: URL;
  protocols: string[];
  signal: AbortSignal | undefined;
  headers: Array<[string, string]>;
  tls: tls.ConnectionOptions | undefined;
  session: SessionOptions;
  handshakeTimeout: number;
  maxHandshakeHead: number;
  perMessageDeflate: PerMessageDeflateOptions | null;
  proxy: ProxyEndpoint | null;
  createConnection: CreateConnection | null;
  http2Mode: Http2Mode | null;
  http2IdleTimeout: number;
}

/**
 * Converts `new WebSocketStream(url, options)`'s arguments in the order browsers follow (WHATWG
 * WebSockets, docs/semantics.md#the-constructor): 1. both arguments (TypeError), 2. the URL, 3. the
 * protocols (SyntaxError); the signal is only looked at afterwards, by the caller.
 */
export function resolveClientOptions(url: unknown, options: unknown): ResolvedClientOptions {
  const urlString = toUSVString(url);
  const dictionary = toDictionary(options, 'options');
  // Each member is read once, in the WHATWG members' order, then the Node-only ones.
  const rawProtocols = dictionary.protocols;
  const protocols = rawProtocols === undefined ? [] : toUSVStringSequence(rawProtocols, 'protocols');
  const rawSignal = dictionary.signal;
  const signal = rawSignal === undefined ? undefined : toAbortSignal(rawSignal, 'signal');
  const rawHeaders = dictionary.headers;
  const headers = rawHeaders === undefined ? [] : toHeaderList(rawHeaders as HeadersInit);
  const tlsOptions = dictionary.tls as tls.ConnectionOptions | undefined;
  if (tlsOptions !== undefined && (typeof tlsOptions !== 'object' || tlsOptions === null)) {
    throw new TypeError('tls must be an object of tls.connect options');
  }
  const sessionOptions: SessionOptions = {
    role: 'client',
    maxPayload: positiveNumber(dictionary.maxPayload, 'maxPayload', DEFAULT_MAX_PAYLOAD),
    closeTimeout: timeoutOption(dictionary.closeTimeout, 'closeTimeout', DEFAULT_CLOSE_TIMEOUT),
  };
  const readableHighWaterMark = dictionary.readableHighWaterMark;
  if (readableHighWaterMark !== undefined) {
    sessionOptions.readableHighWaterMark = positiveNumber(readableHighWaterMark, 'readableHighWaterMark', 0, true);
  }
  const sendBufferSize = dictionary.sendBufferSize;
  if (sendBufferSize !== undefined) sessionOptions.sendBufferSize = positiveNumber(sendBufferSize, 'sendBufferSize', 0, true);
  const handshakeTimeout = timeoutOption(dictionary.handshakeTimeout, 'handshakeTimeout', DEFAULT_HANDSHAKE_TIMEOUT);
  const maxHandshakeHead = positiveNumber(dictionary.maxHandshakeHead, 'maxHandshakeHead', DEFAULT_MAX_HANDSHAKE_HEAD);
  const heartbeat = heartbeatOption(dictionary.heartbeat);
  if (heartbeat !== null) sessionOptions.heartbeat = heartbeat;
  const rawDeflate = dictionary.perMessageDeflate;
  const perMessageDeflate = normalizeDeflateOptions(rawDeflate === undefined ? true : rawDeflate, 'perMessageDeflate');
  const proxySetting = toProxySetting(dictionary.proxy);
  const createConnection = toCreateConnection(dictionary.createConnection);
  if (createConnection !== null && proxySetting !== null) throw new TypeError('createConnection cannot be combined with proxy: it brings the whole connection');
  const http2Mode = toHttp2Mode(dictionary.http2);
  const http2IdleTimeout = timeoutOption(dictionary.http2IdleTimeout, 'http2IdleTimeout', DEFAULT_HTTP2_IDLE_TIMEOUT);
  if (http2Mode !== null) {
    if (createConnection !== null) throw new TypeError('http2 cannot be combined with createConnection');
    if (typeof http2Mode === 'object' && tlsOptions !== undefined) {
      throw new TypeError('tls is for connections this library opens; the HTTP/2 session passed as http2 has its own');
    }
    for (const [name] of headers) {
      if (HTTP1_ONLY_HEADERS.has(name.toLowerCase())) throw new TypeError(`header ${name} is connection-specific: HTTP/2 does not allow it`);
    }
  }

  const parsed = parseWebSocketUrl(urlString);
  checkProtocols(protocols);
  // Needs the target (which variable, and NO_PROXY), so after the URL checks; a bad variable throws.
  const proxy = resolveProxy(proxySetting, parsed);
  if (http2Mode !== null && proxy !== null) {
    throw new TypeError('http2 cannot be combined with a proxy: WebSockets over HTTP/2 connect directly');
  }
  if (http2Mode !== null && isUnixSocketUrl(parsed)) throw new TypeError('http2 takes ws: and wss: URLs, not Unix domain sockets');
  return {
    url: parsed,
    protocols,
    signal,
    headers,
    tls: tlsOptions,
    session: sessionOptions,
    handshakeTimeout,
    maxHandshakeHead,
    perMessageDeflate,
    proxy,
    createConnection,
    http2Mode,
    http2IdleTimeout,
  };
}

/**
 * WHATWG WebSockets "the WebSocket URL": ws/wss (http/https mapped), no fragment; plus, as a
 * Node-only extension, ws+unix: and wss+unix: for Unix domain sockets.
 */
function parseWebSocketUrl(input: string): URL {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new DOMException(`invalid URL ${JSON.stringify(input)}`, 'SyntaxError');
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:' && !isUnixSocketUrl(url)) {
    throw new DOMException(`URL scheme must be ws, wss, http or https (or ws+unix, wss+unix), not ${url.protocol.slice(0, -1)}`, 'SyntaxError');
  }
  // The serialization keeps even an empty fragment ("#"), which url.hash reports as "".
  if (url.href.includes('#')) throw new DOMException('a WebSocket URL cannot have a fragment', 'SyntaxError');
  if (isUnixSocketUrl(url)) unixSocketTarget(url);
  return url;
}

/** The `http2` option: null for HTTP/1.1 alone. */
function toHttp2Mode(value: unknown): Http2Mode | null {
  if (value === undefined || value === false) return null;
  if (value === true || value === 'prefer') return value;
  if (typeof value === 'object' && value !== null && typeof (value as http2.ClientHttp2Session).request === 'function' && 'remoteSettings' in value) {
    return value as http2.ClientHttp2Session;
  }
  throw new TypeError("http2 must be true, false, 'prefer' or an http2.ClientHttp2Session");
}

function checkProtocols(protocols: readonly string[]): void {
  const seen = new Set<string>();
  for (const protocol of protocols) {
    if (!isToken(protocol)) throw new DOMException(`invalid subprotocol ${JSON.stringify(protocol)}`, 'SyntaxError');
    const key = protocol.toLowerCase();
    if (seen.has(key)) throw new DOMException(`duplicate subprotocol ${JSON.stringify(protocol)}`, 'SyntaxError');
    seen.add(key);
  }
}

function toHeaderList(init: HeadersInit): Array<[string, string]> {
  if (typeof init !== 'object' || init === null) throw new TypeError('headers must be an object or an iterable of pairs');
  const pairs: Array<[string, string]> = [];
  if (Symbol.iterator in init) {
    for (const pair of init as Iterable<readonly [string, string]>) {
      if (pair === null || typeof pair !== 'object' || pair.length !== 2) throw new TypeError('each header must be a [name, value] pair');
      pairs.push([`${pair[0]}`, `${pair[1]}`]);
    }
  } else {
    for (const [name, value] of Object.entries(init)) pairs.push([name, `${value}`]);
  }
  for (const [name, value] of pairs) {
    if (!isToken(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
    if (!isValidHeaderValue(value)) throw new TypeError(`header ${name} has CR, LF, NUL or a non-Latin-1 character in its value`);
    if (RESERVED_HEADERS.has(name.toLowerCase())) {
      throw new TypeError(`header ${name} is set by the WebSocket handshake itself${name.toLowerCase() === 'sec-websocket-protocol' ? ' (use the protocols option)' : ''}`);
    }
  }
  return pairs;
}

// ---- The server ----

/**
 * `verify`'s answer: `true` accepts; `false`, `undefined` or `null` refuse with 403; a Refusal
 * refuses with its status (3xx, 4xx or 5xx), headers and message.
 */
export type VerifyResult = boolean | Refusal | null | undefined;

/**
 * The request a handshake callback sees: the `http.IncomingMessage` of an HTTP/1.1 upgrade, or for
 * a WebSocket over HTTP/2 (RFC 8441) an ExtendedConnectRequest (`httpVersionMajor === 2`).
 */
export type HandshakeRequest = IncomingMessage | ExtendedConnectRequest;

/** The servers a WebSocketStreamServer attaches to; HTTP/2 ones carry RFC 8441 WebSockets too. */
export type AttachableServer = http.Server | https.Server | http2.Http2Server | http2.Http2SecureServer;

export interface ServerHandshakeOptions {
  /** Subprotocols this server speaks; the first one the client offered that is listed here wins. */
  protocols?: readonly string[];
  /**
   * Picks the subprotocol instead of `protocols`: return one of `offered`, or null, undefined or ""
   * for none; may be async. Anything else (or a throw) refuses the upgrade with 500.
   */
  selectProtocol?(offered: string[], request: HandshakeRequest): string | null | undefined | Promise<string | null | undefined>;
  /**
   * Accepts or refuses a request (authentication, Origin checks); may be async. See VerifyResult;
   * any other result, a throw or a rejection refuses with 500, and one that never settles is cut
   * off by `handshakeTimeout` (503). Over HTTP/2 `request` is an ExtendedConnectRequest.
   */
  // Method syntax on purpose: a callback written for `http.IncomingMessage` alone still type-checks.
  verify?(request: HandshakeRequest): VerifyResult | Promise<VerifyResult>;
  /**
   * Receives what goes wrong in your callbacks (`verify`, `selectProtocol`): what they threw, or a
   * TypeError describing a result they may not return. The upgrade has been refused with 500.
   * Default: a process warning, once per callback (later ones are not printed).
   */
  onError?: (error: Error) => void;
  /** Largest message accepted from a client, in bytes (1009 beyond it). Default 100 MiB. */
  maxPayload?: number;
  /** Milliseconds allowed for the upgrade (verify included); also the HTTP head timeout when listening. Default 30 000. */
  handshakeTimeout?: number;
  /** Milliseconds to wait for the client's close frame and TCP close. Default 5 000. */
  closeTimeout?: number;
  /** Bytes of messages a server-side readable queues before reading from the socket stops. Default 1 MiB. */
  readableHighWaterMark?: number;
  /**
   * The bounded send buffer, in bytes: a write resolves at once while the bytes not yet taken by
   * the kernel, its own included, stay at or under this; past it, once the socket has drained to
   * it. Default 16 KiB (DEFAULT_SEND_BUFFER_SIZE).
   */
  sendBufferSize?: number;
  /** Accept permessage-deflate offers (RFC 7692). Off by default, like ws; true or an options object turns it on. */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /** Ping every client every `interval` ms; no pong within `timeout` ms drops it (1006). Off by default. */
  heartbeat?: HeartbeatOptions;
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
  /**
   * Listen with HTTP/2 as well, for WebSockets over HTTP/2 (RFC 8441). With `tls`: one port that
   * serves HTTP/2 and HTTP/1.1 (chosen by ALPN). Without: HTTP/2 only, without TLS (h2c, prior
   * knowledge), which HTTP/1.1 clients cannot reach. Default false.
   */
  http2?: boolean;
  /**
   * Attach to an existing server instead of listening: http, https, or http2 (`createServer` for
   * h2c, `createSecureServer` with or without `allowHTTP1`), whose HTTP/2 clients can then open
   * WebSockets with extended CONNECT (RFC 8441).
   */
  server?: AttachableServer;
  /**
   * Handle only upgrade requests whose path (without the query) is exactly this. Servers attached
   * to one http.Server share its upgrades: an exact path wins over a server without `path`.
   */
  path?: string;
  /** Open connections (and handshakes in progress) allowed at once; more get 503. Default unlimited. */
  maxConnections?: number;
  /** Largest HTTP request head, when the server listens itself. Default 16 KiB. */
  maxHandshakeHead?: number;
  /** Accepted connections waiting in `connections` before further handshakes wait. Default 16. */
  acceptBacklog?: number;
}

/** Server handshake options after conversion and defaults: what `accept` works from. */
export interface ResolvedServerHandshake {
  readonly protocols: readonly string[];
  readonly selectProtocol: ServerHandshakeOptions['selectProtocol'];
  readonly verify: ServerHandshakeOptions['verify'];
  readonly onError: ServerHandshakeOptions['onError'];
  readonly handshakeTimeout: number;
  readonly perMessageDeflate: PerMessageDeflateOptions | null;
  readonly session: SessionOptions;
}

export interface ResolvedServerOptions extends ResolvedServerHandshake {
  readonly port: number | undefined;
  readonly host: string | undefined;
  readonly socketPath: string | undefined;
  readonly tls: tls.TlsOptions | undefined;
  readonly http2: boolean;
  readonly server: AttachableServer | undefined;
  readonly path: string | undefined;
  readonly maxConnections: number;
  readonly maxHandshakeHead: number;
  readonly acceptBacklog: number;
}

function optionalFunction<T>(value: unknown, name: string): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') throw new TypeError(`${name} must be a function`);
  return value as T;
}

/** Reads, checks and defaults the handshake options of a server or of `handleUpgrade`, once. */
export function resolveServerHandshake(options: unknown): ResolvedServerHandshake {
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object') throw new TypeError('options must be an object');
  const given = options as Record<keyof ServerHandshakeOptions, unknown>;
  const rawProtocols = given.protocols;
  const selectProtocol = optionalFunction<ServerHandshakeOptions['selectProtocol']>(given.selectProtocol, 'selectProtocol');
  let protocols: string[] = [];
  if (rawProtocols !== undefined) {
    if (typeof rawProtocols !== 'object' || rawProtocols === null || !(Symbol.iterator in rawProtocols)) {
      throw new TypeError('protocols must be an array of strings');
    }
    protocols = [...(rawProtocols as Iterable<unknown>)].map((protocol) => {
      if (typeof protocol !== 'string' || !isToken(protocol)) throw new TypeError(`invalid subprotocol ${JSON.stringify(protocol)}`);
      return protocol;
    });
    if (selectProtocol !== undefined) throw new TypeError('give either protocols or selectProtocol, not both');
  }
  const session: SessionOptions = {
    role: 'server',
    maxPayload: positiveNumber(given.maxPayload, 'maxPayload', DEFAULT_MAX_PAYLOAD),
    closeTimeout: timeoutOption(given.closeTimeout, 'closeTimeout', DEFAULT_CLOSE_TIMEOUT),
    readableHighWaterMark: positiveNumber(given.readableHighWaterMark, 'readableHighWaterMark', DEFAULT_READABLE_HIGH_WATER_MARK, true),
    sendBufferSize: positiveNumber(given.sendBufferSize, 'sendBufferSize', DEFAULT_SEND_BUFFER_SIZE, true),
  };
  const heartbeat = heartbeatOption(given.heartbeat);
  if (heartbeat !== null) session.heartbeat = heartbeat;
  return {
    protocols,
    selectProtocol,
    verify: optionalFunction<ServerHandshakeOptions['verify']>(given.verify, 'verify'),
    onError: optionalFunction<ServerHandshakeOptions['onError']>(given.onError, 'onError'),
    handshakeTimeout: timeoutOption(given.handshakeTimeout, 'handshakeTimeout', DEFAULT_HANDSHAKE_TIMEOUT),
    perMessageDeflate: normalizeDeflateOptions(given.perMessageDeflate, 'perMessageDeflate'),
    session,
  };
}

/** Reads, checks and defaults a WebSocketStreamServer's options, once. */
export function resolveServerOptions(options: unknown): ResolvedServerOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const given = options as Record<keyof WebSocketStreamServerOptions, unknown>;
  const handshake = resolveServerHandshake(options);
  const server = given.server as AttachableServer | undefined;
  const port = given.port as number | undefined;
  const tlsOptions = given.tls as tls.TlsOptions | undefined;
  const path = given.path;
  const socketPath = given.socketPath;
  const host = given.host as string | undefined;
  if (server === undefined && port === undefined && socketPath === undefined) {
    throw new TypeError('WebSocketStreamServer needs a port or a socketPath to listen on, or a server to attach to');
  }
  const useHttp2 = given.http2;
  if (useHttp2 !== undefined && typeof useHttp2 !== 'boolean') throw new TypeError('http2 must be a boolean');
  if (server !== undefined && (port !== undefined || tlsOptions !== undefined || socketPath !== undefined || useHttp2 !== undefined)) {
    throw new TypeError('port, socketPath, tls and http2 are for a server that listens itself; they cannot go with server');
  }
  if (socketPath !== undefined) {
    if (typeof socketPath !== 'string' || socketPath === '') throw new TypeError('socketPath must be a non-empty path');
    if (port !== undefined || host !== undefined) throw new TypeError('socketPath listens on a Unix domain socket: give it without port and host');
  }
  if (server !== undefined && (typeof server !== 'object' || server === null || typeof server.on !== 'function')) {
    throw new TypeError('server must be an http.Server, https.Server or an http2 server');
  }
  if (path !== undefined && (typeof path !== 'string' || !path.startsWith('/'))) throw new TypeError('path must be a string that starts with "/"');
  return {
    ...handshake,
    port,
    host,
    socketPath,
    tls: tlsOptions,
    http2: useHttp2 === true,
    server,
    path,
    maxConnections: positiveNumber(given.maxConnections, 'maxConnections', Infinity),
    maxHandshakeHead: positiveNumber(given.maxHandshakeHead, 'maxHandshakeHead', DEFAULT_MAX_HANDSHAKE_HEAD),
    acceptBacklog: positiveNumber(given.acceptBacklog, 'acceptBacklog', DEFAULT_ACCEPT_BACKLOG),
  };
}
