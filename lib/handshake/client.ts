// The client's opening handshake (RFC 6455 §4.1) over node:net or node:tls.
import net from 'node:net';
import tls from 'node:tls';
import { WEBSOCKET_VERSION } from '../protocol/constants.js';
import { acceptServerResponse, clientOffer, type DeflateParams, type PerMessageDeflateOptions } from '../protocol/permessage-deflate.js';
import { headerHasToken, HttpResponseHeadReader, type HttpResponseHead } from './http.js';
import { acceptKeyFor, generateKey } from './keys.js';

export interface ClientHandshakeOptions {
  /** A ws: or wss: URL without a fragment. */
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
}

export interface ClientHandshakeResult {
  socket: net.Socket;
  /** Bytes that arrived after the response head: the first WebSocket frames. */
  head: Buffer;
  protocol: string;
  extensions: string;
  /** What permessage-deflate the server agreed to, or null. */
  deflate: DeflateParams | null;
  response: HttpResponseHead;
}

/** Why an opening handshake failed; `statusCode` and `headers` are set for a non-101 reply. */
export class HandshakeError extends Error {
  statusCode?: number;
  headers?: Map<string, string[]>;

  constructor(message: string, options?: { cause?: unknown; response?: HttpResponseHead }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HandshakeError';
    if (options?.response !== undefined) {
      this.statusCode = options.response.statusCode;
      this.headers = options.response.headers;
    }
  }
}

type Done = (error: Error | null, result?: ClientHandshakeResult) => void;

/**
 * Connects, sends the upgrade request and checks the response. Reports once through `done`,
 * synchronously from the socket event that decided it, so that the caller can take over the
 * socket before any other event of it is emitted.
 */
export class ClientHandshake {
  private readonly socket: net.Socket;
  private readonly timer: NodeJS.Timeout;
  private readonly reader: HttpResponseHeadReader;
  private readonly key = generateKey();
  private finished = false;

  constructor(
    private readonly options: ClientHandshakeOptions,
    private readonly done: Done,
  ) {
    const { url } = options;
    const secure = url.protocol === 'wss:';
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
    this.reader = new HttpResponseHeadReader(options.maxHandshakeHead);
    if (secure) {
      const tlsOptions: tls.ConnectionOptions = { ...options.tls, host, port };
      // SNI carries host names only (RFC 6066 §3), never IP literals.
      if (tlsOptions.servername === undefined && net.isIP(host) === 0) tlsOptions.servername = host;
      this.socket = tls.connect(tlsOptions);
    } else {
      this.socket = net.connect({ host, port });
    }
    this.socket.setNoDelay(true);
    this.socket.on('data', this.onData);
    this.socket.on('error', this.onError);
    this.socket.on('close', this.onClose);
    this.timer = setTimeout(() => {
      this.fail(new HandshakeError(`opening handshake timed out after ${options.handshakeTimeout} ms`));
    }, options.handshakeTimeout);
    this.socket.write(this.request());
  }

  /** Abandons the handshake: the socket is destroyed and `done` is not called. */
  cancel(): void {
    if (this.finished) return;
    this.finished = true;
    this.cleanup();
    this.socket.on('error', ignoreError);
    this.socket.destroy();
  }

  private request(): string {
    const { url, protocols, headers } = this.options;
    const lines = [
      `GET ${url.pathname}${url.search} HTTP/1.1`,
      `Host: ${url.host}`,
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
    this.socket.pause();
    const protocol = parsed.head.headers.get('sec-websocket-protocol')?.[0] ?? '';
    this.done(null, { socket: this.socket, head: parsed.rest, protocol, extensions, deflate, response: parsed.head });
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
    this.fail(new HandshakeError(`connection failed: ${error.message}`, { cause: error }));
  };

  private readonly onClose = (): void => {
    this.fail(new HandshakeError('connection closed before the handshake completed'));
  };

  private fail(error: HandshakeError): void {
    if (this.finished) return;
    this.finished = true;
    this.cleanup();
    this.socket.on('error', ignoreError);
    this.socket.destroy();
    this.done(error);
  }

  private cleanup(): void {
    clearTimeout(this.timer);
    this.socket.off('data', this.onData);
    this.socket.off('error', this.onError);
    this.socket.off('close', this.onClose);
  }
}

/** A destroyed socket may still report a late error; it must never become an uncaught one. */
function ignoreError(): void {}
