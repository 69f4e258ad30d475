// One upgrade router per http.Server: every WebSocketStreamServer attached to the same server
// registers its path here, so exactly one of them answers each upgrade request, and a path that
// none of them serves is refused at once instead of being left unanswered.
import type { IncomingMessage } from 'node:http';
import type * as http from 'node:http';
import type * as https from 'node:https';
import type { Duplex } from 'node:stream';
import { refuse } from './handshake/server.js';

export type HttpServer = http.Server | https.Server;

/** One server's claim on the upgrades of an http.Server. */
export interface UpgradeRoute {
  /** The exact request path (without the query) it serves; undefined serves every other path. */
  readonly path: string | undefined;
  handle(request: IncomingMessage, socket: Duplex, head: Buffer): void;
}

const routers = new WeakMap<HttpServer, UpgradeRouter>();

/**
 * Routes the upgrades of `server` to `route` until the returned function is called. Throws a
 * TypeError if another route already serves the same path (or, for routes without a path, every
 * path): two servers answering one socket would send it two responses.
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

class UpgradeRouter {
  private readonly byPath = new Map<string, UpgradeRoute>();
  private fallback: UpgradeRoute | null = null;

  constructor(private readonly server: HttpServer) {
    server.on('upgrade', this.onUpgrade);
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
      routers.delete(this.server);
    }
  }

  private readonly onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const route = this.byPath.get(pathOf(request.url)) ?? this.fallback;
    if (route !== null) {
      route.handle(request, socket, head);
      return;
    }
    // An 'upgrade' listener of the application's own may serve this path: the socket is its to
    // answer (docs/frameworks.md shows how to route with handleUpgrade instead).
    if (this.server.listenerCount('upgrade') > 1) return;
    refuse(socket, { status: 404, message: 'no WebSocket endpoint at this path' });
  };
}

/** The path of a request target, without its query. */
export function pathOf(url: string | undefined): string {
  const target = url ?? '/';
  const query = target.indexOf('?');
  return query === -1 ? target : target.slice(0, query);
}
