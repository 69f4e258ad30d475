// What the two kinds of proxy tunnel (HTTP CONNECT in proxy.ts, SOCKS5 in socks.ts) have in
// common: how they report, and how they read the credentials of a proxy URL.
import type * as net from 'node:net';
import type { HttpResponseHead } from './http.js';

/** Why a tunnel could not be opened; the handshake turns it into a HandshakeError. */
export interface TunnelFailure {
  message: string;
  cause?: unknown;
  /** An HTTP proxy's refusal of CONNECT. */
  response?: HttpResponseHead;
  /** A SOCKS5 proxy's reply code (RFC 1928 §6) when it refused the connection. */
  socksReply?: number;
}

/**
 * Reports once, synchronously from the socket event that decided it: on success with the
 * connected, paused socket whose bytes now go to the target, without any listener of the tunnel.
 */
export type TunnelDone = (failure: TunnelFailure | null, socket?: net.Socket) => void;

/** A tunnel being opened. */
export interface Tunnel {
  /** Abandons the tunnel: the socket is destroyed and `done` is not called. */
  cancel(): void;
}

/** Where the tunnel leads: the WebSocket server's host (a name or an IP literal, no brackets) and port. */
export interface TunnelTarget {
  host: string;
  port: number;
}

/**
 * The percent-decoded user name and password of a proxy URL, or null when it has neither.
 * `what` names the option or variable in errors, which never echo the credentials.
 */
export function credentialsOf(url: URL, what: string): { user: string; password: string } | null {
  if (url.username === '' && url.password === '') return null;
  try {
    return { user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
  } catch {
    throw new TypeError(`${what} has malformed percent-encoding in its credentials`);
  }
}

/** A destroyed socket may still report a late error; it must never become an uncaught one. */
export function ignoreError(): void {}
