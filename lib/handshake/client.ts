// The client's opening handshake (RFC 6455 §4.1) over node:net or node:tls: directly, through a
// proxy tunnel, over a Unix domain socket, or over the user's own stream.
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import type { ConnectionSocket } from '../connection.js';
import { WEBSOCKET_VERSION } from '../protocol/constants.js';
import { type DeflateParams } from '../protocol/permessage-deflate.js';
import { acceptServerResponse, clientOffer, type PerMessageDeflateOptions } from './deflate-negotiation.js';
import { headerHasToken, HttpResponseHeadReader, type HttpResponseHead } from './http.js';
import { acceptKeyFor, generateKey } from './keys.js';
import { openTunnel, type ProxyEndpoint } from './proxy.js';
import { connectOptionsOf, connectTargetOf, UserConnection, type ConnectOptions, type ConnectTarget, type CreateConnection } from './transport.js';
import { ignoreError, type Tunnel, type TunnelFailure } from './tunnel.js';

export interface ClientHandshakeOptions {
  /** A ws:, wss:, ws+unix: or wss+unix: URL without a fragment. */
  url: URL;
  protocols: readonly string[];
  /** Extra request headers, already validated. */
  headers: ReadonlyArray<readonly [string, string]>;
  /** Options for tls.connect (wss: only). */
  tls?: tls.ConnectionOptions | undefined;
  handshakeTimeout: number;
  maxHandshakeHead: number;
  /** permessage-deflate to offer, or null for none. */
  perMessageDeflate: PerMessageDeflateOptions | null;
  /** Tunnel through this HTTP(S) proxy (CONNECT) or SOCKS5 proxy; null or absent: connect directly. */
  proxy?: ProxyEndpoint | null;
  /** The user's own transport; never given together with a proxy. */
  createConnection?: CreateConnection | null;
  /**
   * A connection to the target that is already open (a TLS connection on which ALPN chose
   * HTTP/1.1 when HTTP/2 was tried first): the handshake runs over it instead of connecting.
   */
  connected?: net.Socket | null;
}

export interface ClientHandshakeResult {
  /** The socket, or the HTTP/2 stream (RFC 8441), that carries the WebSocket. */
  socket: ConnectionSocket;
  /** Bytes that arrived after the response head: the first WebSocket frames. */
  head: Buffer;
  protocol: string;
  extensions: string;
  /** What permessage-deflate the server agreed to, or null. */
  deflate: DeflateParams | null;
  response: HttpResponseHead;
}

/**
 * Why an opening handshake failed; `statusCode` and `headers` are set for a non-101 reply (or, with
 * `proxy` set, for the proxy's refusal of CONNECT). `proxy` is the proxy's origin (never its
 * credentials) when the proxy was the one that failed; `socksReply` is a SOCKS5 proxy's reply code
 * (RFC 1928 §6) when it could not connect to the server.
 */
export class HandshakeError extends Error {
  statusCode?: number;
  headers?: Map<string, string[]>;
  proxy?: string;
  socksReply?: number;

  constructor(message: string, options?: { cause?: unknown; response?: HttpResponseHead | undefined; proxy?: string; socksReply?: number | undefined }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HandshakeError';
    if (options?.response !== undefined) {
      this.statusCode = options.response.statusCode;
      this.headers = options.response.headers;
    }
    if (options?.proxy !== undefined) this.proxy = options.proxy;
    if (options?.socksReply !== undefined) this.socksReply = options.socksReply;
  }
}

type Done = (error: Error | null, result?: ClientHandshakeResult) => void;

/**
 * Connects, sends the upgrade request and checks the response. Reports once through `done`,
 * synchronously from the socket event that decided it, so that the caller can take over the
 * socket before any other event of it is emitted.
 */
export class ClientHandshake {
  /** Null while a proxy tunnel is being opened, or createConnection's stream is awaited. */
  private socket: ConnectionSocket | null = null;
  private tunnel: Tunnel | null = null;
  private userConnection: UserConnection | null = null;
  private readonly target: ConnectTarget;
  private readonly timer: NodeJS.Timeout;
  private readonly reader: HttpResponseHeadReader;
  private readonly key = generateKey();
  private finished = false;

  constructor(
    private readonly options: ClientHandshakeOptions,
    private readonly done: Done,
  ) {
    const { url } = options;
    this.target = connectTargetOf(url);
    this.reader = new HttpResponseHeadReader(options.maxHandshakeHead);
    // The handshake timeout covers everything before the 101: createConnection, the proxy, TLS.
    this.timer = setTimeout(() => {
      const message = `opening handshake timed out after ${options.handshakeTimeout} ms${this.viaProxy()}`;
      this.fail(new HandshakeError(message, this.tunnel === null ? undefined : { proxy: options.proxy!.origin }));
    }, options.handshakeTimeout);
    const connectOptions = connectOptionsOf(this.target, options.tls);
    const proxy = options.proxy ?? null;
    const createConnection = options.createConnection ?? null;
    const connected = options.connected ?? null;
    if (connected !== null) {
      this.start(connected);
    } else if (createConnection !== null) {
      this.userConnection = new UserConnection(createConnection, url, connectOptions, (failure, stream) => {
        this.userConnection = null;
        if (failure !== null) this.fail(new HandshakeError(`createConnection failed: ${describeFailure(failure.error)}`, { cause: failure.error }));
        else this.startOver(stream!, connectOptions, !(stream instanceof tls.TLSSocket));
      });
    } else if (proxy !== null) {
      this.tunnel = openTunnel(proxy, this.target, options.maxHandshakeHead, (failure, socket) => {
        this.tunnel = null;
        if (failure !== null) this.fail(proxyFailure(failure, proxy));
        else this.startOver(socket!, connectOptions, true);
      });
    } else {
      this.start(this.target.secure ? tls.connect(connectOptions) : net.connect(connectOptions));
    }
  }

  /** Abandons the handshake: the socket is destroyed and `done` is not called. */
  cancel(): void {
    if (this.finished) return;
    this.finished = true;
    this.cleanup();
    this.destroySocket();
  }

  private start(socket: ConnectionSocket): void {
    this.socket = socket;
    if (typeof socket.setNoDelay === 'function') socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('end', this.onClose);
    socket.on('close', this.onClose);
    socket.write(this.request());
  }

  /**
   * The handshake over a stream the library did not open: a proxy's tunnel (paused by it), or the
   * user's. For wss: TLS with the server runs over it, end to end, unless `addTls` is false (the
   * user's stream is a TLSSocket already). The TLS options carry the server's host name: the
   * certificate check would otherwise use the proxy's (the socket's) or 'localhost'.
   */
  private startOver(stream: Duplex, connectOptions: ConnectOptions, addTls: boolean): void {
    if (this.target.secure && addTls) {
      const { path: _path, ...tlsOptions } = connectOptions;
      this.start(tls.connect({ ...tlsOptions, socket: stream }));
      return;
    }
    this.start(stream);
    // A paused stream stays paused when a 'data' listener is added.
    stream.resume();
  }

  /** Connection-level failures say when they happened through a proxy. */
  private viaProxy(): string {
    if (this.userConnection !== null) return ' (waiting for createConnection)';
    const proxy = this.options.proxy ?? null;
    if (proxy === null) return '';
    return this.socket === null ? ` (connecting to proxy ${proxy.origin})` : ` (through proxy ${proxy.origin})`;
  }

  private destroySocket(): void {
    if (this.tunnel !== null) {
      this.tunnel.cancel();
      this.tunnel = null;
    }
    if (this.userConnection !== null) {
      this.userConnection.cancel();
      this.userConnection = null;
    }
    if (this.socket !== null) {
      this.socket.on('error', ignoreError);
      this.socket.destroy();
    }
  }

  private request(): string {
    const { protocols, headers } = this.options;
    const lines = [
      `GET ${this.target.requestTarget} HTTP/1.1`,
      `Host: ${this.target.hostHeader}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${this.key}`,
      `Sec-WebSocket-Version: ${WEBSOCKET_VERSION}`,
    ];
    if (protocols.length > 0) lines.push(`Sec-WebSocket-Protocol: ${protocols.join(', ')}`);
    if (this.options.perMessageDeflate !== null) lines.push(`Sec-WebSocket-Extensions: ${clientOffer(this.options.perMessageDeflate)}`);
    for (const [name, value] of headers) lines.push(`${name}: ${value}`);
    return lines.join('\r\n') + '\r\n\r\n';
  }

  private readonly onData = (chunk: Buffer): void => {
    let parsed;
    try {
      parsed = this.reader.push(chunk);
    } catch (error) {
      return this.fail(new HandshakeError(`invalid handshake response: ${(error as Error).message}`, { cause: error }));
    }
    if (parsed === null) return;
    const problem = this.checkResponse(parsed.head);
    if (problem !== null) return this.fail(problem);
    const extensions = parsed.head.headers.get('sec-websocket-extensions')?.join(', ') ?? '';
    let deflate: DeflateParams | null;
    try {
      deflate = acceptServerResponse(extensions, this.options.perMessageDeflate);
    } catch (error) {
      return this.fail(new HandshakeError((error as Error).message, { response: parsed.head }));
    }
    this.finished = true;
    this.cleanup();
    const socket = this.socket!;
    socket.pause();
    const protocol = parsed.head.headers.get('sec-websocket-protocol')?.[0] ?? '';
    this.done(null, { socket, head: parsed.rest, protocol, extensions, deflate, response: parsed.head });
  };

  private checkResponse(response: HttpResponseHead): HandshakeError | null {
    const header = (name: string): string[] => response.headers.get(name) ?? [];
    if (response.statusCode !== 101) {
      const redirect = response.statusCode >= 300 && response.statusCode < 400 ? ' (redirects are not followed)' : '';
      return new HandshakeError(`unexpected response status ${response.statusCode} ${response.statusMessage}${redirect}`.trimEnd(), {
        response,
      });
    }
    const upgrade = header('upgrade');
    if (upgrade.length !== 1 || upgrade[0]!.toLowerCase() !== 'websocket') {
      return new HandshakeError('response Upgrade header is not "websocket"', { response });
    }
    if (!header('connection').some((value) => headerHasToken(value, 'upgrade'))) {
      return new HandshakeError('response Connection header does not hold "upgrade"', { response });
    }
    const accept = header('sec-websocket-accept');
    if (accept.length !== 1 || accept[0] !== acceptKeyFor(this.key)) {
      return new HandshakeError('response Sec-WebSocket-Accept does not match the key', { response });
    }
    const protocols = header('sec-websocket-protocol');
    if (protocols.length > 1 || (protocols.length === 1 && !this.options.protocols.includes(protocols[0]!))) {
      return new HandshakeError(`server selected a subprotocol that was not offered: ${protocols.join(', ')}`, { response });
    }
    if (this.options.protocols.length > 0 && (protocols.length === 0 || protocols[0] === '')) {
      return new HandshakeError('server selected none of the offered subprotocols', { response });
    }
    return null;
  }

  private readonly onError = (error: Error): void => {
    this.fail(new HandshakeError(`connection failed: ${error.message}${this.viaProxy()}`, { cause: error }));
  };

  private readonly onClose = (): void => {
    this.fail(new HandshakeError(`connection closed before the handshake completed${this.viaProxy()}`));
  };

  private fail(error: HandshakeError): void {
    if (this.finished) return;
    this.finished = true;
    this.cleanup();
    this.destroySocket();
    this.done(error);
  }

  private cleanup(): void {
    clearTimeout(this.timer);
    if (this.socket === null) return;
    this.socket.off('data', this.onData);
    this.socket.off('error', this.onError);
    this.socket.off('end', this.onClose);
    this.socket.off('close', this.onClose);
  }
}

function proxyFailure(failure: TunnelFailure, proxy: ProxyEndpoint): HandshakeError {
  return new HandshakeError(failure.message, { cause: failure.cause, response: failure.response, proxy: proxy.origin, socksReply: failure.socksReply });
}

function describeFailure(error: unknown): string {
  if (error instanceof Error) return error.message;
  try {
    return String(error);
  } catch {
    return 'it threw a value that cannot be printed';
  }
}
