// The server's side of a WebSocket opened over HTTP/2 (RFC 8441): an extended CONNECT stream runs
// through the same acceptance pipeline as an HTTP/1.1 upgrade (accept.ts), answered with :status
// 200 or an HTTP/2 refusal on that stream. The accepted WebSocket runs over the stream itself.
import * as http2 from 'node:http2';
import type * as net from 'node:net';
import { ignoreError, RequestInfo, runHandshake, targetUrl, type Accepted, type BeforeAccept, type HandshakeTransport, type ServerWebSocketStream, type UpgradeRequestInfo } from './accept.js';
import type { SessionOptions } from './session.js';
import type { ConnectionSocket } from './connection.js';
import { acceptanceHeaders, checkExtendedConnect, respondRefusal, type ExtendedConnectRequest } from './handshake/h2-server.js';
import type { Refusal } from './handshake/server.js';
import { asWebSocketTransport } from './h2-stream.js';
import { resolveServerHandshake, type ResolvedServerHandshake, type ServerHandshakeOptions } from './options.js';

const NO_BYTES = Buffer.alloc(0);

/**
 * Accepts one extended CONNECT stream whose :protocol is "websocket"; resolves with the stream and
 * its session, or null once the request was refused (the refusal has then been sent on the stream). Never rejects.
 */
export function acceptExtendedConnect(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  rawHeaders: string[],
  options: ResolvedServerHandshake,
  beforeAccept?: BeforeAccept,
  sessionOptions?: SessionOptions,
): Promise<Accepted | null> {
  stream.on('error', ignoreError);
  return runHandshake(new ExtendedConnectTransport(stream, headers, rawHeaders), options, beforeAccept, sessionOptions);
}

class ExtendedConnectTransport implements HandshakeTransport {
  readonly request: ExtendedConnectRequest;
  /** Read now: a request whose HEADERS carried END_STREAM has already ended its side. */
  readonly #endedAtOnce: boolean;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    rawHeaders: string[],
  ) {
    this.#endedAtOnce = stream.endAfterHeaders;
    this.request = Object.freeze({
      method: 'CONNECT',
      url: String(headers[':path'] ?? '/'),
      headers,
      rawHeaders,
      httpVersion: '2.0',
      httpVersionMajor: 2,
      httpVersionMinor: 0,
      authority: String(headers[':authority'] ?? ''),
      scheme: String(headers[':scheme'] ?? ''),
      socket: stream.session?.socket as net.Socket,
      stream,
    });
  }

  check(): { protocols: string[] } | Refusal {
    return checkExtendedConnect(this.request.headers, this.#endedAtOnce);
  }

  get offeredExtensions(): string | undefined {
    const offer = this.request.headers['sec-websocket-extensions'];
    return offer === undefined ? undefined : String(offer);
  }

  refuse(refusal: Refusal): void {
    respondRefusal(this.stream, refusal);
  }

  get gone(): boolean {
    const stream = this.stream;
    return stream.destroyed || stream.closed || !stream.writable || stream.session === undefined || stream.session.closed;
  }

  open(protocol: string, extensions: string): { socket: ConnectionSocket; head: Buffer } {
    this.stream.respond(acceptanceHeaders(protocol, extensions), { endStream: false });
    return { socket: asWebSocketTransport(this.stream), head: NO_BYTES };
  }

  destroy(): void {
    if (!this.stream.closed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  info(): UpgradeRequestInfo {
    return new RequestInfo(this.request.url, this.request.headers, '2.0', this.request.socket);
  }

  url(): string {
    return targetUrl(this.request.scheme === 'https' ? 'wss' : 'ws', this.request.authority, this.request.url);
  }
}

/**
 * Accepts a WebSocket over HTTP/2 (RFC 8441) on an http2 server you own: call it from the server's
 * 'stream' event for a stream whose headers have `:method` CONNECT and `:protocol` websocket. Your
 * server needs `settings: { enableConnectProtocol: true }`. Resolves with the accepted stream, or
 * null if the request was refused (the refusal, with its status, has then been sent). Invalid
 * options reject with a TypeError or RangeError after the stream was answered with 500.
 */
export async function handleHttp2Stream(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  options: ServerHandshakeOptions = {},
  rawHeaders: string[] = [],
): Promise<ServerWebSocketStream | null> {
  let resolved: ResolvedServerHandshake;
  try {
    resolved = resolveServerHandshake(options);
  } catch (error) {
    respondRefusal(stream, { status: 500, message: 'the WebSocket endpoint is misconfigured' });
    throw error;
  }
  return (await acceptExtendedConnect(stream, headers, rawHeaders, resolved))?.stream ?? null;
}
