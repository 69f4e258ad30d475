// The client's opening handshake over HTTP/2 (RFC 8441): an extended CONNECT stream on a session
// to the origin (shared through the pool, or the application's own), once the server's SETTINGS
// allow it. The accepted stream carries the WebSocket as RFC 6455's TCP connection.
import * as http2 from 'node:http2';
import type * as tls from 'node:tls';
import { WEBSOCKET_VERSION } from '../protocol/constants.js';
import { type DeflateParams } from '../protocol/permessage-deflate.js';
import { acceptServerResponse, clientOffer, type PerMessageDeflateOptions } from './deflate-negotiation.js';
import { asWebSocketTransport, http2Windows } from '../h2-stream.js';
import { HandshakeError, type ClientHandshakeResult } from './client.js';
import { WEBSOCKET_PROTOCOL } from './h2-server.js';
import type { HttpResponseHead } from './http.js';
import { sessionFor, type PooledSession } from './h2-pool.js';

/** `http2` client option: HTTP/2 only, HTTP/2 when the server allows it, or the caller's session. */
export type Http2Mode = true | 'prefer' | http2.ClientHttp2Session;

export interface H2ClientHandshakeOptions {
  /** A ws: or wss: URL without a fragment. */
  url: URL;
  protocols: readonly string[];
  /** Extra request headers, already validated (none of them connection-specific). */
  headers: ReadonlyArray<readonly [string, string]>;
  tls?: tls.ConnectionOptions | undefined;
  handshakeTimeout: number;
  perMessageDeflate: PerMessageDeflateOptions | null;
  mode: Http2Mode;
  /** How long a pooled session may stay open without WebSockets. */
  idleTimeout: number;
  /** The WebSocket's readable high-water mark: the stream window of a session set up for it. */
  readableHighWaterMark: number;
}

/**
 * The server does not take WebSockets over HTTP/2 and the caller allowed HTTP/1.1: go on with an
 * HTTP/1.1 handshake, over `socket` when the TLS connection that ALPN turned to HTTP/1.1 is open.
 */
export type Http1Fallback = (socket: tls.TLSSocket | null) => void;

type Done = (error: Error | null, result?: ClientHandshakeResult) => void;

/** Settings our sessions announce: no server push (RFC 9113 §8.4), which a WebSocket never uses. */
const CLIENT_SETTINGS: http2.Settings = { enablePush: false };

/**
 * Opens the stream and checks the response. Reports once, through `done` or `fallback`
 * (synchronously from the event that decided it), unless cancelled first.
 */
export class H2ClientHandshake {
  private readonly timer: NodeJS.Timeout;
  private finished = false;
  private stream: http2.ClientHttp2Stream | null = null;
  /** The pooled session the stream runs on (released when the WebSocket ends). */
  private pooled: PooledSession | null = null;

  constructor(
    private readonly options: H2ClientHandshakeOptions,
    private readonly done: Done,
    private readonly fallback: Http1Fallback | null,
  ) {
    this.timer = setTimeout(() => {
      this.fail(new HandshakeError(`opening handshake timed out after ${options.handshakeTimeout} ms`));
    }, options.handshakeTimeout);
    const mode = options.mode;
    if (typeof mode === 'object') {
      this.useOwnSession(mode);
      return;
    }
    const windows = http2Windows(options.readableHighWaterMark);
    sessionFor({ url: options.url, tls: options.tls, windows }, options.handshakeTimeout, options.idleTimeout, CLIENT_SETTINGS).then((outcome) => {
      if (this.finished) {
        // Abandoned while the connection was being set up: an HTTP/1.1 connection meant for us goes.
        if (outcome.kind === 'no-http2') outcome.socket?.destroy();
        return;
      }
      if (outcome.kind === 'error') {
        this.fail(new HandshakeError(`connection failed: ${outcome.error.message}`, { cause: outcome.error }));
      } else if (outcome.kind === 'no-http2') {
        this.notSupported(outcome.reason, outcome.socket);
      } else if (!outcome.session.usable) {
        this.fail(new HandshakeError('the HTTP/2 session closed before the WebSocket could use it'));
      } else if (!outcome.session.extendedConnect) {
        this.notSupported(NO_EXTENDED_CONNECT, null);
      } else {
        this.pooled = outcome.session;
        this.request(outcome.session.session);
      }
    }, (error: unknown) => this.fail(new HandshakeError(`connection failed: ${String(error)}`, { cause: error })));
  }

  /** Abandons the handshake: the stream is reset (CANCEL) and `done` is not called. */
  cancel(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    this.dropStream();
  }

  /** The application's session: used once its SETTINGS are known; never closed by us. */
  private useOwnSession(session: http2.ClientHttp2Session): void {
    if (session.closed || session.destroyed) {
      this.fail(new HandshakeError('the HTTP/2 session passed as the http2 option is closed'));
      return;
    }
    let decided = false;
    const decide = (): void => {
      if (decided || this.finished) return;
      decided = true;
      session.off('remoteSettings', decide);
      session.off('close', decide);
      if (session.closed || session.destroyed) {
        this.fail(new HandshakeError('the HTTP/2 session passed as the http2 option closed before the handshake'));
      } else if (session.encrypted !== (this.options.url.protocol === 'wss:')) {
        this.fail(new HandshakeError(`the HTTP/2 session passed as the http2 option is ${session.encrypted ? '' : 'not '}encrypted, and the URL is ${this.options.url.protocol}`));
      } else if (session.remoteSettings.enableConnectProtocol !== true) {
        this.notSupported(NO_EXTENDED_CONNECT, null);
      } else {
        this.request(session);
      }
    };
    if (session.remoteSettings.enableConnectProtocol === true && !session.connecting) {
      decide();
      return;
    }
    // Its SETTINGS may have arrived already (without the setting), or not yet: the server's SETTINGS
    // are the first frame it sends (RFC 9113 §3.4), so once a PING comes back they are known.
    session.on('remoteSettings', decide);
    // A session that fails while connecting never emits 'connect'.
    session.on('close', decide);
    const ping = (): void => {
      if (!session.ping(() => decide())) decide();
    };
    if (session.connecting) session.once('connect', ping);
    else ping();
  }

  private request(session: http2.ClientHttp2Session): void {
    const { url, protocols, headers, perMessageDeflate } = this.options;
    const secure = url.protocol === 'wss:';
    // RFC 8441 §4–§5: the target as :scheme, :authority and :path; no Upgrade, Connection, Host,
    // Sec-WebSocket-Key (that :protocol replaces); the other Sec-WebSocket-* fields as RFC 6455.
    const requestHeaders: http2.OutgoingHttpHeaders = {
      ':method': 'CONNECT',
      ':protocol': WEBSOCKET_PROTOCOL,
      ':scheme': secure ? 'https' : 'http',
      ':authority': url.host,
      ':path': `${url.pathname}${url.search}`,
      'sec-websocket-version': String(WEBSOCKET_VERSION),
    };
    if (protocols.length > 0) requestHeaders['sec-websocket-protocol'] = protocols.join(', ');
    if (perMessageDeflate !== null) requestHeaders['sec-websocket-extensions'] = clientOffer(perMessageDeflate);
    for (const [name, value] of headers) {
      const key = name.toLowerCase();
      const previous = requestHeaders[key];
      if (previous === undefined) requestHeaders[key] = value;
      else requestHeaders[key] = [...(Array.isArray(previous) ? previous : [String(previous)]), value];
    }
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(requestHeaders, { endStream: false });
    } catch (error) {
      this.fail(new HandshakeError(`the HTTP/2 request could not be sent: ${(error as Error).message}`, { cause: error }));
      return;
    }
    this.stream = stream;
    const pooled = this.pooled;
    if (pooled !== null) {
      // The session serves this WebSocket until its stream closes, whatever the outcome.
      pooled.acquire();
      stream.once('close', () => pooled.release(this.options.idleTimeout));
    }
    stream.on('error', this.onError);
    stream.on('close', this.onClose);
    stream.once('response', this.onResponse);
  }

  private readonly onResponse = (headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader): void => {
    const response = responseHead(headers);
    const problem = this.checkResponse(response);
    if (problem !== null) return this.fail(problem);
    const extensions = response.headers.get('sec-websocket-extensions')?.join(', ') ?? '';
    let deflate: DeflateParams | null;
    try {
      deflate = acceptServerResponse(extensions, this.options.perMessageDeflate);
    } catch (error) {
      return this.fail(new HandshakeError((error as Error).message, { response }));
    }
    this.finished = true;
    clearTimeout(this.timer);
    const stream = this.stream!;
    stream.off('error', this.onError);
    stream.off('close', this.onClose);
    stream.on('error', ignoreError);
    stream.pause();
    const protocol = response.headers.get('sec-websocket-protocol')?.[0] ?? '';
    this.done(null, { socket: asWebSocketTransport(stream), head: Buffer.alloc(0), protocol, extensions, deflate, response });
  };

  private checkResponse(response: HttpResponseHead): HandshakeError | null {
    // RFC 8441 §5: any status other than 200 means the WebSocket was not opened.
    if (response.statusCode !== 200) {
      const redirect = response.statusCode >= 300 && response.statusCode < 400 ? ' (redirects are not followed)' : '';
      return new HandshakeError(`unexpected response status ${response.statusCode}${redirect}`, { response });
    }
    const protocols = response.headers.get('sec-websocket-protocol') ?? [];
    if (protocols.length > 1 || (protocols.length === 1 && !this.options.protocols.includes(protocols[0]!))) {
      return new HandshakeError(`server selected a subprotocol that was not offered: ${protocols.join(', ')}`, { response });
    }
    if (this.options.protocols.length > 0 && (protocols.length === 0 || protocols[0] === '')) {
      return new HandshakeError('server selected none of the offered subprotocols', { response });
    }
    return null;
  }

  private readonly onError = (error: Error): void => {
    this.fail(new HandshakeError(`the HTTP/2 stream failed: ${error.message}`, { cause: error }));
  };

  private readonly onClose = (): void => {
    const code = this.stream?.rstCode;
    const detail = code === undefined || code === http2.constants.NGHTTP2_NO_ERROR ? '' : ` (RST_STREAM ${nameOfCode(code)})`;
    this.fail(new HandshakeError(`the HTTP/2 stream closed before the handshake completed${detail}`));
  };

  /** The server does not take WebSockets over HTTP/2: HTTP/1.1 if the caller allowed it. */
  private notSupported(reason: string, socket: tls.TLSSocket | null): void {
    if (this.finished) return;
    const fallback = this.fallback;
    if (fallback === null) {
      socket?.destroy();
      this.fail(new HandshakeError(reason));
      return;
    }
    this.finished = true;
    clearTimeout(this.timer);
    fallback(socket);
  }

  private fail(error: HandshakeError): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    this.dropStream();
    this.done(error);
  }

  private dropStream(): void {
    const stream = this.stream;
    if (stream === null) return;
    stream.off('error', this.onError);
    stream.off('close', this.onClose);
    stream.on('error', ignoreError);
    // RFC 8441 §5: an abandoned WebSocket's stream is reset with CANCEL.
    if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
  }
}

const NO_EXTENDED_CONNECT = 'the server does not support WebSockets over HTTP/2 (RFC 8441): its SETTINGS do not enable extended CONNECT';

/** The response as HandshakeError reports it: status and headers (pseudo-headers left out). */
function responseHead(headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader): HttpResponseHead {
  const map = new Map<string, string[]>();
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || value === undefined) continue;
    map.set(name, Array.isArray(value) ? value.map(String) : [String(value)]);
  }
  return { httpVersion: '2.0', statusCode: Number(headers[':status']), statusMessage: '', headers: map };
}

/** RFC 9113 §7 error codes, by value. */
const ERROR_CODES = [
  'NO_ERROR',
  'PROTOCOL_ERROR',
  'INTERNAL_ERROR',
  'FLOW_CONTROL_ERROR',
  'SETTINGS_TIMEOUT',
  'STREAM_CLOSED',
  'FRAME_SIZE_ERROR',
  'REFUSED_STREAM',
  'CANCEL',
  'COMPRESSION_ERROR',
  'CONNECT_ERROR',
  'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY',
  'HTTP_1_1_REQUIRED',
];

function nameOfCode(code: number): string {
  return ERROR_CODES[code] ?? `error code ${code}`;
}

function ignoreError(): void {}
