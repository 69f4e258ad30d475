// The server's side of the HTTP/2 opening handshake (RFC 8441 §4–§5): the extended CONNECT request
// checks, the 200 that accepts, and refusals as HTTP/2 responses on the request's own stream.
import * as http2 from 'node:http2';
import { STATUS_CODES } from 'node:http';
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { WEBSOCKET_VERSION } from '../protocol/constants.js';
import { isToken, isValidHeaderValue } from './http.js';
import type { Refusal } from './server.js';

/** RFC 8441 §5: the :protocol value that asks for a WebSocket. */
export const WEBSOCKET_PROTOCOL = 'websocket';

/**
 * What `verify` and `selectProtocol` receive for a WebSocket opened over HTTP/2 (RFC 8441): the
 * parts of an `http.IncomingMessage` that a handshake check reads, with HTTP/2's own names where
 * they differ. `httpVersionMajor === 2` tells it apart from the HTTP/1.1 request.
 */
export interface ExtendedConnectRequest {
  readonly method: 'CONNECT';
  /** The request target, path and query (the :path pseudo-header), e.g. "/chat?room=1". */
  readonly url: string;
  /**
   * The request headers as node:http2 gives them: lower-case names, pseudo-headers included
   * (`:method`, `:protocol`, `:scheme`, `:authority`, `:path`). HTTP/2 has no Host header: the
   * authority is in `:authority` (and `authority` below). Cookies sent as several fields are joined.
   */
  readonly headers: http2.IncomingHttpHeaders;
  /** Names and values as they arrived, alternating. */
  readonly rawHeaders: string[];
  readonly httpVersion: '2.0';
  readonly httpVersionMajor: 2;
  readonly httpVersionMinor: 0;
  /** The :authority pseudo-header: host and port of the target. */
  readonly authority: string;
  /** The :scheme pseudo-header: "https" for wss:, "http" for ws:. */
  readonly scheme: string;
  /**
   * The connection's socket, shared by every stream of the HTTP/2 session: remoteAddress,
   * remotePort, encrypted, getPeerCertificate()… (node:http2 makes reading or writing it throw).
   */
  readonly socket: net.Socket | tls.TLSSocket;
  /** The HTTP/2 stream that will carry the WebSocket once accepted. */
  readonly stream: http2.ServerHttp2Stream;
}

/** True for the request an RFC 8441 client sends: CONNECT with `:protocol: websocket`. */
export function isWebSocketConnect(headers: http2.IncomingHttpHeaders): boolean {
  const protocol = headers[':protocol'];
  return headers[':method'] === 'CONNECT' && typeof protocol === 'string' && protocol.toLowerCase() === WEBSOCKET_PROTOCOL;
}

/**
 * RFC 8441 §4–§5: what a server must find in an extended CONNECT for a WebSocket. Returns the
 * offered subprotocols, or the refusal to send. There is no key to check: :protocol replaces
 * Sec-WebSocket-Key and Sec-WebSocket-Accept.
 */
export function checkExtendedConnect(headers: http2.IncomingHttpHeaders, endStream: boolean): { protocols: string[] } | Refusal {
  // §4: the target is given as :scheme, :authority and :path (nghttp2 checks they are there).
  const path = headers[':path'];
  if (typeof path !== 'string' || path === '' || (path[0] !== '/' && path !== '*')) return { status: 400, message: 'missing or invalid :path' };
  if (typeof headers[':authority'] !== 'string' || headers[':authority'] === '') return { status: 400, message: 'missing :authority' };
  const scheme = headers[':scheme'];
  if (scheme !== 'https' && scheme !== 'http') return { status: 400, message: ':scheme must be https (wss:) or http (ws:)' };
  // The stream is the WebSocket: a request that ends at once has nothing to carry it.
  if (endStream) return { status: 400, message: 'the extended CONNECT request ended its stream' };
  // RFC 8441 §5: Sec-WebSocket-Version is used as RFC 6455 §4.2.1 says. HTTP/2 forbids the
  // Upgrade header that a 426 needs (RFC 9113 §8.2.2), so a wrong version gets 400 here.
  const version = headers['sec-websocket-version'];
  if (typeof version !== 'string' || version.trim() !== String(WEBSOCKET_VERSION)) {
    return {
      status: 400,
      headers: { 'Sec-WebSocket-Version': String(WEBSOCKET_VERSION) },
      message: `unsupported WebSocket version; this server speaks ${WEBSOCKET_VERSION}`,
    };
  }
  const offered = headers['sec-websocket-protocol'];
  const protocols: string[] = [];
  if (offered !== undefined) {
    for (const part of String(offered).split(',')) {
      const protocol = part.trim();
      if (!isToken(protocol)) return { status: 400, message: 'invalid Sec-WebSocket-Protocol' };
      if (!protocols.includes(protocol)) protocols.push(protocol);
    }
  }
  return { protocols };
}

/** The response headers that accept (RFC 8441 §5: 200, and no Sec-WebSocket-Accept). */
export function acceptanceHeaders(protocol: string, extensions: string): http2.OutgoingHttpHeaders {
  const headers: http2.OutgoingHttpHeaders = { ':status': 200 };
  if (protocol !== '') headers['sec-websocket-protocol'] = protocol;
  if (extensions !== '') headers['sec-websocket-extensions'] = extensions;
  return headers;
}

/** RFC 9113 §8.2.2: connection-specific fields are malformed in HTTP/2 (node:http2 throws on them). */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'content-length', 'te']);

/**
 * Answers an HTTP/2 request with a refusal and ends the stream. RFC 9113 §8.1: after a complete
 * response the server may reset the stream with NO_ERROR, so that a client which keeps its side
 * open (the CONNECT's tunnel) cannot hold the stream.
 */
export function respondRefusal(stream: http2.ServerHttp2Stream, refusal: Refusal): void {
  if (stream.destroyed || stream.closed) return;
  stream.on('error', ignoreError);
  if (stream.headersSent) {
    stream.close(http2.constants.NGHTTP2_NO_ERROR);
    return;
  }
  const status = refusal.status;
  const body = Buffer.from(`${refusal.message ?? STATUS_CODES[status] ?? 'Refused'}\n`);
  const headers: http2.OutgoingHttpHeaders = {
    ':status': status,
    'content-type': 'text/plain; charset=utf-8',
    'content-length': body.byteLength,
  };
  for (const [name, value] of Object.entries(refusal.headers ?? {})) {
    const lower = name.toLowerCase();
    if (!isToken(name) || !isValidHeaderValue(value) || CONNECTION_SPECIFIC.has(lower) || lower in headers) continue;
    headers[lower] = value;
  }
  stream.respond(headers);
  stream.end(body);
  // Waits for the response to be written, then resets what is left of the client's side.
  stream.close(http2.constants.NGHTTP2_NO_ERROR);
}

function ignoreError(): void {}
