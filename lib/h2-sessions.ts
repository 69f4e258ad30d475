// The HTTP/2 sessions of a server that listens itself with `http2: true`: an idle session (no
// stream open) is closed after the handshake timeout, as an HTTP/1.1 connection that sends no
// request is; a session that carries WebSockets is never idle, however quiet they are (the
// heartbeat is what finds dead peers); close() sends GOAWAY to every session.
import type * as http2 from 'node:http2';

export class Http2SessionTracker {
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  #closing = false;

  constructor(
    server: http2.Http2Server | http2.Http2SecureServer,
    private readonly idleTimeout: number,
    /** The connection-level receive window each session gets (RFC 9113 §6.9). */
    private readonly sessionWindow: number,
  ) {
    server.on('session', (session: http2.ServerHttp2Session) => this.#track(session));
  }

  /** GOAWAY to every session (RFC 9113 §6.8): no new streams, the open ones finish. */
  closeAll(): void {
    this.#closing = true;
    for (const session of this.#sessions) session.close();
  }

  /** Drops what is left once every WebSocket has closed (a client that holds a session open). */
  destroyAll(): void {
    setImmediate(() => {
      for (const session of this.#sessions) session.destroy();
    });
  }

  #track(session: http2.ServerHttp2Session): void {
    // node:http2 gives each session the server's `timeout` as an idle timeout, which would drop a
    // session whose WebSockets are merely quiet: the count of open streams decides instead.
    session.setTimeout(0);
    session.setLocalWindowSize(this.sessionWindow);
    if (this.#closing) {
      session.close();
      return;
    }
    this.#sessions.add(session);
    let open = 0;
    let idleTimer: NodeJS.Timeout | null = null;
    const stopIdleTimer = (): void => {
      if (idleTimer !== null) clearTimeout(idleTimer);
      idleTimer = null;
    };
    const startIdleTimer = (): void => {
      stopIdleTimer();
      idleTimer = setTimeout(() => session.close(), this.idleTimeout);
    };
    session.on('stream', (stream: http2.ServerHttp2Stream) => {
      open++;
      stopIdleTimer();
      stream.once('close', () => {
        open--;
        if (open === 0 && !session.closed && !session.destroyed) startIdleTimer();
      });
    });
    session.once('close', () => {
      stopIdleTimer();
      this.#sessions.delete(session);
    });
    startIdleTimer();
  }
}
