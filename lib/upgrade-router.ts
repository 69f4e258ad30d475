// One upgrade router per server: every WebSocketStreamServer attached to the same server registers
// its path here, so exactly one of them answers each WebSocket request, and a path that none of
// them serves is refused at once instead of being left unanswered. On an HTTP/2 server the same
// routes serve the extended CONNECT streams of RFC 8441 as well as HTTP/1.1 upgrades.
import type { IncomingMessage } from 'node:http';
import type * as http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { isWebSocketConnect, respondRefusal } from './handshake/h2-server.js';
import { refuse } from './handshake/server.js';
import type { AttachableServer } from './options.js';

export type HttpServer = AttachableServer;

type Http2AnyServer = http2.Http2Server | http2.Http2SecureServer;

/** One server's claim on the WebSocket requests of an http (or http2) server. */
export interface UpgradeRoute {
  /** The exact request path (without the query) it serves; undefined serves every other path. */
  readonly path: string | undefined;
  handle(request: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** An HTTP/2 stream whose request is an extended CONNECT for a WebSocket (RFC 8441). */
  handleStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: string[]): void;
}

const routers = new WeakMap<HttpServer, UpgradeRouter>();

/**
 * Routes the WebSocket requests of `server` to `route` until the returned function is called.
 * Throws a TypeError if another route already serves the same path (or, for routes without a
 * path, every path): two servers answering one socket would send it two responses.
 */
export function addUpgradeRoute(server: HttpServer, route: UpgradeRoute): () => void {
  let router = routers.get(server);
  if (router === undefined) {
    router = new UpgradeRouter(server);
    routers.set(server, router);
  }
  router.add(route);
  const owner = router;
  return () => owner.remove(route);
}

/** node:http2's servers (h2c and TLS); http and https servers have no settings to update. */
export function isHttp2Server(server: HttpServer): server is Http2AnyServer {
  return typeof (server as Partial<Http2AnyServer>).updateSettings === 'function';
}

/** HTTP/2 streams the router has answered or handed to a route, for the 'connect' listener. */
const claimed = new WeakSet<http2.ServerHttp2Stream>();

class UpgradeRouter {
  private readonly byPath = new Map<string, UpgradeRoute>();
  private fallback: UpgradeRoute | null = null;

  constructor(private readonly server: HttpServer) {
    server.on('upgrade', this.onUpgrade);
    if (isHttp2Server(server)) {
      // RFC 8441 §3: SETTINGS_ENABLE_CONNECT_PROTOCOL tells clients they may use extended CONNECT.
      // It goes into the SETTINGS of sessions that start from now on; it stays when the last
      // route leaves, as a sender may never take it back (§3) and such requests then get 405.
      server.updateSettings({ enableConnectProtocol: true });
      // First, so that a WebSocket's stream is claimed before node:http2's compatibility layer
      // (installed with a 'request' listener) wraps it and emits 'connect' for it.
      server.prependListener('stream', this.onStream);
      server.on('connect', this.onConnect);
    }
  }

  add(route: UpgradeRoute): void {
    if (route.path === undefined) {
      if (this.fallback !== null) {
        throw new TypeError('another WebSocketStreamServer without a path is already attached to this server: give each a path');
      }
      this.fallback = route;
    } else {
      if (this.byPath.has(route.path)) {
        throw new TypeError(`another WebSocketStreamServer already serves path ${JSON.stringify(route.path)} on this server`);
      }
      this.byPath.set(route.path, route);
    }
  }

  remove(route: UpgradeRoute): void {
    if (this.fallback === route) this.fallback = null;
    else if (route.path !== undefined && this.byPath.get(route.path) === route) this.byPath.delete(route.path);
    if (this.fallback === null && this.byPath.size === 0) {
      this.server.off('upgrade', this.onUpgrade);
      this.server.off('stream', this.onStream);
      this.server.off('connect', this.onConnect);
      routers.delete(this.server);
    }
  }

  private route(url: string | undefined): UpgradeRoute | null {
    return this.byPath.get(pathOf(url)) ?? this.fallback;
  }

  private readonly onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const route = this.route(request.url);
    if (route !== null) {
      route.handle(request, socket, head);
      return;
    }
    // An 'upgrade' listener of the application's own may serve this path: the socket is its to
    // answer (docs/frameworks.md shows how to route with handleUpgrade instead).
    if (this.server.listenerCount('upgrade') > 1) return;
    refuse(socket, { status: 404, message: 'no WebSocket endpoint at this path' });
  };

  private readonly onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]): void => {
    if (!isWebSocketConnect(headers)) return;
    const path = headers[':path'];
    const route = this.route(typeof path === 'string' ? path : undefined);
    if (route !== null) {
      claimed.add(stream);
      route.handleStream(stream, headers, rawHeaders);
      return;
    }
    // Unlike HTTP/1.1 upgrades, a path none of our servers serves is not left to the application:
    // node:http2 shows every CONNECT to its 'connect' listeners, ours too, so the rule they can
    // follow is simple: WebSocket CONNECTs (:protocol websocket) are the router's, all of them.
    claimed.add(stream);
    respondRefusal(stream, { status: 404, message: 'no WebSocket endpoint at this path' });
  };

  /**
   * 'connect' is emitted for HTTP/2 CONNECT streams by node:http2's compatibility layer, and for
   * HTTP/1.1 CONNECT requests (allowHTTP1) by node:http. Ours were claimed in onStream; for any
   * other, with no listener of the application's own, this does what Node does without one.
   */
  private readonly onConnect = (request: IncomingMessage | http2.Http2ServerRequest, target: Duplex | http2.Http2ServerResponse): void => {
    if (request.httpVersionMajor === 2) {
      const stream = (request as http2.Http2ServerRequest).stream;
      if (claimed.has(stream) || this.server.listenerCount('connect') > 1) return;
      const response = target as http2.Http2ServerResponse;
      response.statusCode = 405;
      response.end();
      return;
    }
    if (this.server.listenerCount('connect') > 1) return;
    (target as Duplex).destroy();
  };
}

/** The path of a request target, without its query. */
export function pathOf(url: string | undefined): string {
  const target = url ?? '/';
  const query = target.indexOf('?');
  return query === -1 ? target : target.slice(0, query);
}
