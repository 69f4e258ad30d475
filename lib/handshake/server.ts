// The server's side of the opening handshake (RFC 6455 §4.2): checks, 101 and refusals.
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { REFUSAL_LINGER, WEBSOCKET_VERSION } from '../protocol/constants.js';
import { headerHasToken, isToken, isValidHeaderValue } from './http.js';
import { acceptKeyFor, isValidKey } from './keys.js';

/** An HTTP refusal: status, optional headers, a short plain-text body. */
export interface Refusal {
  status: number;
  headers?: Record<string, string>;
  message?: string;
}

export interface UpgradeRequestCheck {
  key: string;
  /** Subprotocols offered by the client, in its order of preference. */
  protocols: string[];
}

/**
 * RFC 6455 §4.2.1: what a server must find in the client's opening handshake. Returns the key and
 * offered subprotocols, or the refusal to send (426 for a version other than 13, §4.4).
 */
export function checkUpgradeRequest(request: IncomingMessage): UpgradeRequestCheck | Refusal {
  if (request.method !== 'GET') {
    return { status: 405, headers: { Allow: 'GET' }, message: 'WebSocket handshakes use GET' };
  }
  if (request.httpVersionMajor < 1 || (request.httpVersionMajor === 1 && request.httpVersionMinor < 1)) {
    return { status: 400, message: 'WebSocket handshakes need HTTP/1.1 or later' };
  }
  const headers = request.headers;
  if (headers.host === undefined || headers.host === '') return { status: 400, message: 'missing Host header' };
  if (!headerHasToken(headers.upgrade, 'websocket')) return { status: 400, message: 'Upgrade header is not "websocket"' };
  if (!headerHasToken(headers.connection, 'upgrade')) return { status: 400, message: 'Connection header does not hold "upgrade"' };
  const key = headers['sec-websocket-key'];
  if (typeof key !== 'string' || !isValidKey(key.trim())) return { status: 400, message: 'invalid Sec-WebSocket-Key' };
  if (headers['sec-websocket-version']?.trim() !== String(WEBSOCKET_VERSION)) {
    return {
      status: 426,
      headers: { 'Sec-WebSocket-Version': String(WEBSOCKET_VERSION) },
      message: `unsupported WebSocket version; this server speaks ${WEBSOCKET_VERSION}`,
    };
  }
  const offered = headers['sec-websocket-protocol'];
  const protocols: string[] = [];
  if (offered !== undefined) {
    for (const part of offered.split(',')) {
      const protocol = part.trim();
      if (!isToken(protocol)) return { status: 400, message: 'invalid Sec-WebSocket-Protocol' };
      if (!protocols.includes(protocol)) protocols.push(protocol);
    }
  }
  return { key: key.trim(), protocols };
}

export function isRefusal<T extends object>(value: T | Refusal): value is Refusal {
  return 'status' in value;
}

/** Headers a refusal may not set: the response's own framing depends on them. */
const RESERVED_REFUSAL_HEADERS = new Set(['connection', 'content-length', 'transfer-encoding']);

/**
 * Checks a refusal that came from user code (`verify`): a 3xx, 4xx or 5xx status, header names that are
 * tokens with values free of CR, LF and NUL, a string message. Returns the refusal, copied so that
 * later changes by the caller cannot reach the response, or a TypeError saying what is wrong.
 */
export function checkRefusal(value: object): Refusal | TypeError {
  const { status, headers, message } = value as { status?: unknown; headers?: unknown; message?: unknown };
  // 3xx too: a server may send a client elsewhere (WebSocket clients do not follow, but they can say where).
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 300 || status > 599) {
    return new TypeError(`a refusal's status must be an integer from 300 to 599, not ${describe(status)}`);
  }
  const refusal: Refusal = { status };
  if (headers !== undefined && headers !== null) {
    if (typeof headers !== 'object') return new TypeError(`a refusal's headers must be an object, not ${describe(headers)}`);
    const copied: Record<string, string> = {};
    for (const [name, raw] of Object.entries(headers)) {
      if (typeof raw !== 'string' && typeof raw !== 'number') return new TypeError(`refusal header ${JSON.stringify(name)} must be a string`);
      const headerValue = String(raw);
      if (!isToken(name) || !isValidHeaderValue(headerValue)) return new TypeError(`refusal header ${JSON.stringify(name)} is not a valid HTTP header`);
      if (RESERVED_REFUSAL_HEADERS.has(name.toLowerCase())) return new TypeError(`refusal header ${name} is set by the server itself`);
      copied[name] = headerValue;
    }
    refusal.headers = copied;
  }
  if (message !== undefined && message !== null) {
    if (typeof message !== 'string') return new TypeError(`a refusal's message must be a string, not ${describe(message)}`);
    refusal.message = message;
  }
  return refusal;
}

/** A short description of a value for error messages: its type, and the value for primitives. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object' || typeof value === 'function') return `a${typeof value === 'object' ? 'n object' : ' function'}`;
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- only primitives reach this line
  return `${typeof value} ${String(value)}`;
}

/** The 101 Switching Protocols head (RFC 6455 §4.2.2). */
export function switchingProtocolsHead(key: string, protocol: string, extensions: string): string {
  const lines = [
    'HTTP/1.1 101 Switching Protocols',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Accept: ${acceptKeyFor(key)}`,
  ];
  if (protocol !== '') lines.push(`Sec-WebSocket-Protocol: ${protocol}`);
  if (extensions !== '') lines.push(`Sec-WebSocket-Extensions: ${extensions}`);
  return lines.join('\r\n') + '\r\n\r\n';
}

/** Sends an HTTP refusal and closes the socket; a peer that does not read is cut off soon after. */
export function refuse(socket: Duplex, refusal: Refusal): void {
  if (socket.destroyed) return;
  const status = refusal.status;
  const body = `${refusal.message ?? STATUS_CODES[status] ?? 'Refused'}\n`;
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
  ];
  for (const [name, value] of Object.entries(refusal.headers ?? {})) {
    // A user-supplied header (from verify) must not split the response.
    if (isToken(name) && isValidHeaderValue(value)) lines.push(`${name}: ${value}`);
  }
  socket.on('error', () => {});
  socket.end(lines.join('\r\n') + '\r\n\r\n' + body);
  const timer = setTimeout(() => socket.destroy(), REFUSAL_LINGER);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
