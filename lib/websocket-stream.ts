// WebSocketStream, the client: WHATWG constructor semantics (docs/semantics.md#the-constructor) over node:net/tls.
import type * as tls from 'node:tls';
import { ClientHandshake, type ClientHandshakeResult } from './handshake/client.js';
import { H2ClientHandshake } from './handshake/h2-client.js';
import { DEFAULT_READABLE_HIGH_WATER_MARK } from './protocol/constants.js';
import { Session, type WebSocketClosedInfo, type WebSocketOpenInfo } from './session.js';
import { resolveClientOptions, type WebSocketStreamOptions } from './options.js';
import { validateCloseInfo, type WebSocketCloseInfo } from './websocket-error.js';

export type { WebSocketStreamOptions, HeadersInit } from './options.js';

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
    const resolved = resolveClientOptions(url, options);
    const { url: parsed, signal, handshakeTimeout, http2Mode } = resolved;
    this.#url = parsed.href;
    const session = new Session(resolved.session);
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
      const { protocols, headers, tls, maxHandshakeHead, perMessageDeflate, proxy, createConnection } = resolved;
      const handshake = new ClientHandshake(
        { url: parsed, protocols, headers, tls, handshakeTimeout: timeout, maxHandshakeHead, perMessageDeflate, proxy, createConnection, connected },
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
        protocols: resolved.protocols,
        headers: resolved.headers,
        tls: resolved.tls,
        handshakeTimeout,
        perMessageDeflate: resolved.perMessageDeflate,
        mode: http2Mode,
        idleTimeout: resolved.http2IdleTimeout,
        readableHighWaterMark: resolved.session.readableHighWaterMark ?? DEFAULT_READABLE_HIGH_WATER_MARK,
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
