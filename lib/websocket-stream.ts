// WebSocketStream, the client: WHATWG constructor semantics (docs/semantics.md#the-constructor) over node:net/tls.
import type * as http2 from 'node:http2';
import type * as tls from 'node:tls';
import { ClientHandshake, type ClientHandshakeResult } from './handshake/client.js';
import { H2ClientHandshake, type Http2Mode } from './handshake/h2-client.js';
import { isToken, isValidHeaderValue } from './handshake/http.js';
import { resolveProxy, toProxySetting, type ProxyOptions } from './handshake/proxy.js';
import { isUnixSocketUrl, toCreateConnection, unixSocketTarget, type CreateConnection } from './handshake/transport.js';
import {
  DEFAULT_CLOSE_TIMEOUT,
  DEFAULT_HANDSHAKE_TIMEOUT,
  DEFAULT_HTTP2_IDLE_TIMEOUT,
  DEFAULT_MAX_HANDSHAKE_HEAD,
  DEFAULT_MAX_PAYLOAD,
  DEFAULT_READABLE_HIGH_WATER_MARK,
} from './protocol/constants.js';
import { Session, type SessionOptions, type WebSocketClosedInfo, type WebSocketOpenInfo } from './session.js';
import { heartbeatOption, positiveNumber, timeoutOption, type HeartbeatOptions } from './options.js';
import { normalizeDeflateOptions, type PerMessageDeflateOptions } from './handshake/deflate-negotiation.js';
import { toAbortSignal, toDictionary, toUSVString, toUSVStringSequence } from './webidl.js';
import { validateCloseInfo, type WebSocketCloseInfo } from './websocket-error.js';

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

/** Headers the handshake itself sets; a user value would break or forge it. */
/** RFC 9113 §8.2.2: connection-specific fields, malformed in HTTP/2 (the others are reserved above). */
const HTTP1_ONLY_HEADERS = new Set(['keep-alive', 'proxy-connection', 'te']);

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

/**
 * Set only while `adoptSession` constructs a server-side stream: the constructor then wraps this
 * session instead of connecting. Module-private, so user code can never reach that path.
 */
let adopted: { url: string; session: Session } | null = null;

/** True while `adoptSession` runs: a server-side stream is being built. */
export function isAdopting(): boolean {
  return adopted !== null;
}

/** Builds a WebSocketStream (a server-side subclass) around a session the server accepted. */
export function adoptSession<T extends WebSocketStream>(url: string, session: Session, construct: () => T): T {
  adopted = { url, session };
  try {
    return construct();
  } finally {
    adopted = null;
  }
}

export class WebSocketStream {
  readonly #url: string;
  readonly #session: Session;

  constructor(url: string | URL, options?: WebSocketStreamOptions | null) {
    if (adopted !== null) {
      this.#url = adopted.url;
      this.#session = adopted.session;
      adopted = null;
      return;
    }
    if (arguments.length === 0) throw new TypeError('WebSocketStream needs a URL');
    // 1. Convert both arguments (TypeError), 2. check the URL, 3. the protocols (SyntaxError),
    // 4. only then look at the signal: the order browsers follow.
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
    this.#url = parsed.href;
    const session = new Session(sessionOptions);
    this.#session = session;

    if (signal?.aborted) {
      // Chrome: an already aborted signal opens no socket and leaves the stream closed.
      session.abortHandshake(signal.reason);
      return;
    }
    let onAbort: (() => void) | null = null;
    if (signal !== undefined) {
      onAbort = () => session.abortHandshake(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      // A reconnect loop sharing one long-lived signal must not collect listeners.
      session.whenSettled(() => signal.removeEventListener('abort', onAbort!));
    }
    const done = (error: Error | null, result?: ClientHandshakeResult): void => {
      if (error !== null) {
        // The cause is the system or TLS error itself when there is one, else the HandshakeError
        // (which carries the status and headers of a non-101 response).
        session.failHandshake(`WebSocket handshake with ${parsed.href} failed: ${error.message}`, error.cause ?? error);
      } else {
        session.establish(result!.socket, result!.head, result!.protocol, result!.extensions, result!.deflate);
      }
    };
    const startedAt = Date.now();
    let fellBack = false;
    const http1 = (connected: tls.TLSSocket | null = null): void => {
      fellBack = true;
      // After an HTTP/2 attempt, the HTTP/1.1 handshake has what is left of the same deadline.
      const timeout = Math.max(1, handshakeTimeout - (Date.now() - startedAt));
      const handshake = new ClientHandshake(
        { url: parsed, protocols, headers, tls: tlsOptions, handshakeTimeout: timeout, maxHandshakeHead, perMessageDeflate, proxy, createConnection, connected },
        done,
      );
      session.handshakeStarted(() => handshake.cancel());
    };
    if (http2Mode === null) {
      http1();
      return;
    }
    const handshake = new H2ClientHandshake(
      {
        url: parsed,
        protocols,
        headers,
        tls: tlsOptions,
        handshakeTimeout,
        perMessageDeflate,
        mode: http2Mode,
        idleTimeout: http2IdleTimeout,
        readableHighWaterMark: sessionOptions.readableHighWaterMark ?? DEFAULT_READABLE_HIGH_WATER_MARK,
      },
      done,
      http2Mode === 'prefer' ? http1 : null,
    );
    // A fallback (even one decided in the constructor) has registered its own handshake's cancel.
    if (!fellBack) session.handshakeStarted(() => handshake.cancel());
  }

  /** The URL, serialized after http: and https: became ws: and wss:. */
  get url(): string {
    return this.#url;
  }

  /** Resolves with the streams once the handshake succeeds; rejects with a WebSocketError if not. */
  get opened(): Promise<WebSocketOpenInfo> {
    return this.#session.opened;
  }

  /** Resolves with the close code and reason on a clean close; rejects with a WebSocketError otherwise. */
  get closed(): Promise<WebSocketClosedInfo> {
    return this.#session.closed;
  }

  /**
   * Starts the closing handshake. A client's code must be 1000 or 3000–4999; a server-side stream
   * may also send the other codes that are valid on the wire, such as 1001, 1008, 1011 or 1013
   * (InvalidAccessError otherwise). A reason holds at most 123 UTF-8 bytes (SyntaxError); a reason
   * alone sends 1000, nothing sends an empty close frame.
   */
  close(closeInfo?: WebSocketCloseInfo | null): void {
    const session = this.#session;
    const { closeCode, reason } = validateCloseInfo(closeInfo, 'closeInfo', (code) => session.isSendableCloseCode(code));
    session.close(closeCode, reason);
  }
}

Object.defineProperty(WebSocketStream.prototype, Symbol.toStringTag, { value: 'WebSocketStream', configurable: true });

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
