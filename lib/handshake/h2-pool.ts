// HTTP/2 sessions shared by the WebSockets of one origin (RFC 8441 runs each WebSocket as one
// stream, so many share one TCP connection, as in browsers). A session is keyed by origin and by
// the value of the tls options, so that two WebSockets share a connection only when they would
// have made the same TLS connection (same CA, client certificate, checks); it stays referenced
// (keeps the process alive) while it carries WebSockets, and closes once it has carried none for
// the idle timeout.
import { createHash } from 'node:crypto';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';

/** What a connection attempt to an origin came to. */
export type SessionOutcome =
  /** An HTTP/2 session whose SETTINGS arrived; `extendedConnect` per RFC 8441 §3. */
  | { kind: 'ready'; session: PooledSession }
  /**
   * The server does not speak HTTP/2 there: ALPN chose something else (`socket` is then the open
   * TLS connection, which an HTTP/1.1 handshake may take), or h2c's preface was refused.
   */
  | { kind: 'no-http2'; reason: string; socket: tls.TLSSocket | null }
  /** The connection failed. */
  | { kind: 'error'; error: Error };

export interface SessionTarget {
  url: URL;
  tls: tls.ConnectionOptions | undefined;
  /** Receive windows (RFC 9113 §6.9) for the session: per stream, and for the connection. */
  windows: { stream: number; session: number };
}

/**
 * The tls options as a key: equal values give equal keys (buffers by content, so `{ ca }` read
 * from the same file twice matches); functions and other objects (a SecureContext, a
 * checkServerIdentity) by identity.
 */
export function tlsOptionsKey(options: tls.ConnectionOptions | undefined): string {
  if (options === undefined) return '';
  const hash = createHash('sha256');
  const visit = (value: unknown, depth: number): void => {
    if (depth > 8) {
      hash.update(`#${identityOf(value as object)}`);
    } else if (value === null || value === undefined || typeof value === 'boolean' || typeof value === 'number' || typeof value === 'bigint') {
      hash.update(`${typeof value}:${String(value)};`);
    } else if (typeof value === 'string') {
      hash.update(`s${value.length}:${value};`);
    } else if (ArrayBuffer.isView(value)) {
      hash.update(`b${value.byteLength}:`).update(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
    } else if (Array.isArray(value)) {
      hash.update(`[${value.length}:`);
      for (const item of value) visit(item, depth + 1);
      hash.update(']');
    } else if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
      const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      hash.update(`{${entries.length}:`);
      for (const [name, item] of entries) {
        hash.update(`${name}=`);
        visit(item, depth + 1);
      }
      hash.update('}');
    } else {
      hash.update(`#${identityOf(value)};`);
    }
  };
  visit(options, 0);
  return hash.digest('base64');
}

const identities = new WeakMap<object, number>();
let nextIdentity = 1;

function identityOf(value: object): number {
  let id = identities.get(value);
  if (id === undefined) {
    id = nextIdentity++;
    identities.set(value, id);
  }
  return id;
}

/** One shared session and the WebSockets (streams) it carries. */
export class PooledSession {
  #active = 0;
  #idleTimer: NodeJS.Timeout | null = null;
  #idleTimeout = 0;

  constructor(
    readonly session: http2.ClientHttp2Session,
    private readonly forget: () => void,
  ) {
    session.on('error', ignoreError);
    // After GOAWAY no new stream may start (RFC 9113 §6.8); after close, nothing at all.
    session.once('goaway', forget);
    session.once('close', () => {
      this.#stopIdleTimer();
      forget();
    });
  }

  /** RFC 8441 §3: the server's SETTINGS_ENABLE_CONNECT_PROTOCOL. */
  get extendedConnect(): boolean {
    return this.session.remoteSettings.enableConnectProtocol === true;
  }

  get usable(): boolean {
    return !this.session.closed && !this.session.destroyed;
  }

  /** A WebSocket (or its handshake) starts using the session. */
  acquire(): void {
    this.#active++;
    this.#stopIdleTimer();
    this.session.ref();
  }

  /** That WebSocket is gone; `idleTimeout` is how long the session may then wait unused. */
  release(idleTimeout: number): void {
    this.#active--;
    this.#idleTimeout = idleTimeout;
    if (this.#active === 0) this.#startIdleTimer();
  }

  /** Called once the session is ready: it starts idle, as nobody may come for it. */
  startIdle(idleTimeout: number): void {
    this.#idleTimeout = idleTimeout;
    if (this.#active === 0) this.#startIdleTimer();
  }

  #startIdleTimer(): void {
    this.#stopIdleTimer();
    if (!this.usable) return;
    // An idle session does not keep the process alive, as an idle keep-alive socket would not.
    this.session.unref();
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = null;
      this.forget();
      this.session.close();
    }, this.#idleTimeout);
    this.#idleTimer.unref();
  }

  #stopIdleTimer(): void {
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
  }
}

/** Sessions by origin, then by tls options (tlsOptionsKey). */
const pool = new Map<string, Map<string, Promise<SessionOutcome>>>();

/**
 * A ready session to the URL's origin, shared when one exists or is being set up, else a new one.
 * `idleTimeout` applies to a session created here until its first WebSocket has closed.
 */
export function sessionFor(target: SessionTarget, connectTimeout: number, idleTimeout: number, settings: http2.Settings): Promise<SessionOutcome> {
  const origin = `${target.url.protocol}//${target.url.host}`;
  // Sessions differ by what they were set up with: the TLS options and the receive windows.
  const tlsKey = `${tlsOptionsKey(target.tls)} ${target.windows.stream}`;
  let byTls = pool.get(origin);
  const existing = byTls?.get(tlsKey);
  if (existing !== undefined) return existing;
  if (byTls === undefined) {
    byTls = new Map();
    pool.set(origin, byTls);
  }
  const entries = byTls;
  const forget = (): void => {
    if (entries.get(tlsKey) === pending) entries.delete(tlsKey);
    if (entries.size === 0 && pool.get(origin) === entries) pool.delete(origin);
  };
  const pending = connectSession(target, connectTimeout, settings, forget).then((outcome) => {
    // A failure is not kept: the next WebSocket tries again.
    if (outcome.kind !== 'ready') forget();
    else outcome.session.startIdle(idleTimeout);
    return outcome;
  });
  entries.set(tlsKey, pending);
  return pending;
}

/**
 * Connects (TLS with ALPN for wss:, h2c with prior knowledge for ws:) and waits for SETTINGS, for
 * `connectTimeout` ms at most (the handshake timeout of the WebSocket that asked first).
 */
function connectSession(target: SessionTarget, connectTimeout: number, settings: http2.Settings, forget: () => void): Promise<SessionOutcome> {
  const { url } = target;
  const secure = url.protocol === 'wss:';
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
  // RFC 8441 §5: the HTTP/2 origin is https: for wss: and http: for ws:.
  const authority = `${secure ? 'https' : 'http'}://${url.host}`;
  return new Promise<SessionOutcome>((resolve) => {
    let settled = false;
    let session: http2.ClientHttp2Session | null = null;
    const timer = setTimeout(() => {
      session?.destroy();
      socket.destroy();
      finish({ kind: 'error', error: new Error(`no HTTP/2 session within ${connectTimeout} ms`) });
    }, connectTimeout);
    const finish = (outcome: SessionOutcome): void => {
      clearTimeout(timer);
      if (settled) return;
      settled = true;
      resolve(outcome);
    };
    const socket: net.Socket = secure
      ? tls.connect({
          ...target.tls,
          host,
          port,
          // SNI carries host names only (RFC 6066 §3), never IP literals.
          ...(target.tls?.servername === undefined && net.isIP(host) === 0 ? { servername: host } : {}),
          // Offering http/1.1 too lets a server without HTTP/2 say so, and its answer keeps the
          // connection usable for an HTTP/1.1 upgrade.
          ALPNProtocols: ['h2', 'http/1.1'],
        })
      : net.connect({ host, port });
    const onError = (error: Error): void => {
      socket.destroy();
      finish({ kind: 'error', error });
    };
    const onClose = (): void => finish({ kind: 'error', error: new Error('the connection closed before it was established') });
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      socket.off('error', onError);
      socket.off('close', onClose);
      const alpn = (socket as tls.TLSSocket).alpnProtocol;
      if (secure && alpn !== 'h2') {
        socket.on('error', ignoreError);
        finish({ kind: 'no-http2', reason: `the server did not negotiate HTTP/2 (ALPN: ${alpn === false ? 'none' : alpn})`, socket: socket as tls.TLSSocket });
        return;
      }
      socket.setNoDelay(true);
      const connected = http2.connect(authority, { createConnection: () => socket, settings: { ...settings, initialWindowSize: target.windows.stream } });
      connected.once('connect', () => connected.setLocalWindowSize(target.windows.session));
      session = connected;
      const pooled = new PooledSession(connected, forget);
      const failed = (reason: string): void => {
        connected.destroy();
        // Without TLS there is no ALPN: a server that fails the HTTP/2 preface does not speak h2c.
        if (!secure) finish({ kind: 'no-http2', reason: `the server did not speak HTTP/2 without TLS (h2c): ${reason}`, socket: null });
        else finish({ kind: 'error', error: new Error(reason) });
      };
      connected.once('remoteSettings', () => finish({ kind: 'ready', session: pooled }));
      connected.once('error', (error: Error) => failed(error.message));
      connected.once('close', () => failed('the connection closed before the server sent its SETTINGS'));
    });
  });
}

function ignoreError(): void {}
