// Where the client's bytes go when no proxy is in the way: TCP for ws: and wss:, a Unix domain
// socket for the Node-only ws+unix: and wss+unix: URLs, or whatever stream the user's
// `createConnection` brings.
import * as net from 'node:net';
import { Duplex } from 'node:stream';
import * as tls from 'node:tls';

/**
 * The options the library passes to net.connect (ws:, ws+unix:) or tls.connect (wss:, wss+unix:)
 * to reach the server; `createConnection` receives the same, so `net.connect` or `tls.connect` can
 * be the whole of it.
 */
export type ConnectOptions = net.NetConnectOpts & tls.ConnectionOptions;

/**
 * The `createConnection` option: returns a stream.Duplex, connected or still connecting, or a
 * promise of one; the opening handshake then runs over it.
 */
export type CreateConnection = (url: URL, options: ConnectOptions) => Duplex | PromiseLike<Duplex>;

/** The Node-only URL schemes that name a Unix domain socket (the grammar `ws` uses). */
export function isUnixSocketUrl(url: URL): boolean {
  return url.protocol === 'ws+unix:' || url.protocol === 'wss+unix:';
}

/** How the client reaches the server, and what its request line and Host header say. */
export interface ConnectTarget {
  /** TLS with the server (wss:, wss+unix:). */
  secure: boolean;
  /** The host name or IP literal (no brackets) for TCP, the TLS server name check and SNI. */
  host: string;
  /** The TCP port; 0 for a Unix socket. */
  port: number;
  /** The Unix socket's path, or null for TCP. */
  socketPath: string | null;
  /** The request target of the GET line: path and query. */
  requestTarget: string;
  /** The Host header. */
  hostHeader: string;
}

/**
 * Splits a ws+unix:/wss+unix: URL: `ws+unix:///path/to.sock:/request/path?query`. The socket's
 * path runs up to the first colon of the URL's path (percent-decoded, so `%20` is a space; a socket
 * path cannot hold a colon); the request path follows it ('/' when there is none), then the query.
 * A host in the URL (`ws+unix://example.com/path/to.sock:/`) goes in the Host header and is the
 * TLS server name of wss+unix:, 'localhost' when absent. Throws a SyntaxError DOMException.
 */
export function unixSocketTarget(url: URL): { socketPath: string; requestPath: string } {
  const colon = url.pathname.indexOf(':');
  const encodedPath = colon === -1 ? url.pathname : url.pathname.slice(0, colon);
  const requestPath = colon === -1 ? '/' : url.pathname.slice(colon + 1) || '/';
  let socketPath: string;
  try {
    socketPath = decodeURIComponent(encodedPath);
  } catch {
    throw new DOMException(`the socket path of ${url.protocol} URL ${JSON.stringify(url.href)} has malformed percent-encoding`, 'SyntaxError');
  }
  if (socketPath === '') {
    throw new DOMException(`a ${url.protocol} URL names a socket path: ${url.protocol}///path/to.sock:/request/path`, 'SyntaxError');
  }
  if (!requestPath.startsWith('/')) {
    throw new DOMException(`the request path after the socket path's ":" must start with "/" in ${JSON.stringify(url.href)}`, 'SyntaxError');
  }
  return { socketPath, requestPath };
}

/** Where a parsed ws:, wss:, ws+unix: or wss+unix: URL leads. */
export function connectTargetOf(url: URL): ConnectTarget {
  const secure = url.protocol === 'wss:' || url.protocol === 'wss+unix:';
  if (isUnixSocketUrl(url)) {
    const { socketPath, requestPath } = unixSocketTarget(url);
    const host = url.hostname === '' ? 'localhost' : url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    return { secure, host, port: 0, socketPath, requestTarget: `${requestPath}${url.search}`, hostHeader: url.host === '' ? 'localhost' : url.host };
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
  return { secure, host, port, socketPath: null, requestTarget: `${url.pathname}${url.search}`, hostHeader: url.host };
}

/**
 * What the library passes to net.connect or tls.connect for `target`, and so what
 * `createConnection` receives: `{ host, port }` or `{ path }`, plus for TLS the `tls` option with
 * `host` (the name the certificate must match) and `servername` (SNI, never an IP literal: RFC 6066
 * §3). rejectUnauthorized is there only if the user gave it: Node's default verifies.
 */
export function connectOptionsOf(target: ConnectTarget, userTls: tls.ConnectionOptions | undefined): ConnectOptions {
  const options: ConnectOptions =
    target.socketPath !== null ? { path: target.socketPath } : ({ host: target.host, port: target.port });
  if (!target.secure) return options;
  const secured: ConnectOptions = { ...userTls, ...options, host: target.host };
  if (secured.servername === undefined && net.isIP(target.host) === 0) secured.servername = target.host;
  return secured;
}

/** Converts the `createConnection` option: undefined or null → none; a function; anything else throws TypeError. */
export function toCreateConnection(value: unknown): CreateConnection | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'function') throw new TypeError('createConnection must be a function (url, options) returning a stream.Duplex');
  return value as CreateConnection;
}

/** Reports the outcome of createConnection: a failure (whatever was thrown, even undefined) or the stream. */
export type UserConnectionDone = (failure: { error: unknown } | null, stream?: Duplex) => void;

/**
 * Calls `createConnection` and reports its stream (or why there is none) through `done`, always
 * asynchronously, never more than once, and not at all after `cancel()` (a stream that arrives
 * later is destroyed). A throw, a rejection, a value that is not a stream.Duplex (TypeError), or a
 * destroyed stream are failures.
 */
export class UserConnection {
  private cancelled = false;

  constructor(create: CreateConnection, url: URL, options: ConnectOptions, done: UserConnectionDone) {
    let returned: unknown;
    try {
      returned = create(new URL(url.href), options);
    } catch (error) {
      queueMicrotask(() => this.report(done, error));
      return;
    }
    if (isThenable(returned)) {
      Promise.resolve(returned).then(
        (stream) => this.accept(stream, done),
        (error: unknown) => this.report(done, error),
      );
    } else {
      queueMicrotask(() => this.accept(returned, done));
    }
  }

  cancel(): void {
    this.cancelled = true;
  }

  private accept(value: unknown, done: UserConnectionDone): void {
    if (!(value instanceof Duplex)) {
      return this.report(done, new TypeError(`createConnection must return a stream.Duplex (or a promise of one), not ${describe(value)}`));
    }
    if (this.cancelled) {
      value.on('error', () => {});
      value.destroy();
      return;
    }
    if (value.destroyed) return this.report(done, new TypeError('createConnection returned a destroyed stream'));
    done(null, value);
  }

  private report(done: UserConnectionDone, error: unknown): void {
    if (!this.cancelled) done({ error });
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value !== 'object') return typeof value;
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === 'string' && name !== '' && name !== 'Object' ? `a ${name}` : 'a plain object';
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as PromiseLike<unknown>).then === 'function';
}
