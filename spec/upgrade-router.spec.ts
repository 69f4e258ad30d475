// Several WebSocketStreamServers on one http.Server: exactly one answers each upgrade, a path none
// of them serves gets 404 at once, and the http.Server can close.
import { expect } from 'chai';
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketStream, WebSocketStreamServer } from '../lib/index.js';
import { leakFree, type Guard } from './helpers/faults.js';
import { Acceptor, listen, rawConnect, upgradeExchange, upgradeRequest } from './helpers/server-helpers.js';

/** An http.Server on 127.0.0.1, closed at the end of the test. */
async function httpServer(guard: Guard): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((_, response) => response.end('plain'));
  guard.defer(() => new Promise((resolve) => server.close(resolve)));
  const port = await listen(server);
  return { server, port };
}

/** Which attached server accepted each connection, in order. */
let acceptedBy: string[] = [];

function attach(guard: Guard, server: http.Server, path?: string): { wss: WebSocketStreamServer; acceptor: Acceptor } {
  const wss = new WebSocketStreamServer(path === undefined ? { server } : { server, path });
  guard.defer(() => wss.close());
  const name = path ?? '(any path)';
  return { wss, acceptor: new Acceptor(wss, () => acceptedBy.push(name)) };
}

/** The status lines of everything the server sent on one upgrade socket. */
async function statusLines(port: number, path: string): Promise<string[]> {
  const { text } = await upgradeExchange(port, upgradeRequest({ path }));
  return text.split('\r\n').filter((line) => line.startsWith('HTTP/1.1 '));
}

/** Opens a client to `path`, closes it, and says which attached server accepted it. */
async function acceptorOf(port: number, path: string): Promise<string> {
  const before = acceptedBy.length;
  const stream = new WebSocketStream(`ws://127.0.0.1:${port}${path}`);
  await stream.opened;
  stream.close();
  await stream.closed;
  expect(acceptedBy.length, 'exactly one server accepted it').to.equal(before + 1);
  return acceptedBy[before]!;
}

describe('upgrade routing: several servers on one http.Server', () => {
  beforeEach(() => {
    acceptedBy = [];
  });

  leakFree('two servers with different paths: each serves its own, and any other path gets 404 at once', async (guard) => {
    const { server, port } = await httpServer(guard);
    attach(guard, server, '/a');
    attach(guard, server, '/b');
    expect(await statusLines(port, '/c')).to.deep.equal(['HTTP/1.1 404 Not Found']);
    expect(await statusLines(port, '/a?x=1')).to.deep.equal(['HTTP/1.1 101 Switching Protocols']);
    expect(await acceptorOf(port, '/a')).to.equal('/a');
    expect(await acceptorOf(port, '/b')).to.equal('/b');
    expect(server.listenerCount('upgrade'), 'one listener for both servers').to.equal(1);
  });

  leakFree('a server without a path and one with path /b: /b is answered once, by the /b server; others by the first', async (guard) => {
    const { server, port } = await httpServer(guard);
    attach(guard, server);
    attach(guard, server, '/b');
    expect(await statusLines(port, '/b')).to.deep.equal(['HTTP/1.1 101 Switching Protocols']);
    expect(await acceptorOf(port, '/b')).to.equal('/b');
    expect(await acceptorOf(port, '/elsewhere')).to.equal('(any path)');
  });

  leakFree('a second server for the same path, or a second one without a path, is refused at construction', async (guard) => {
    const { server } = await httpServer(guard);
    attach(guard, server, '/a');
    attach(guard, server);
    expect(() => new WebSocketStreamServer({ server, path: '/a' })).to.throw(TypeError, /already serves path "\/a"/);
    expect(() => new WebSocketStreamServer({ server })).to.throw(TypeError, /without a path/);
  });

  leakFree('once a server has closed, its path is free again, and the last one removes the listener', async (guard) => {
    const { server, port } = await httpServer(guard);
    const first = new WebSocketStreamServer({ server, path: '/a' });
    await first.close();
    expect(server.listenerCount('upgrade')).to.equal(0);
    attach(guard, server, '/a');
    expect(await acceptorOf(port, '/a')).to.equal('/a');
  });

  leakFree('after both servers closed, httpServer.close() completes (no upgrade socket is held)', async (guard) => {
    const { server, port } = await httpServer(guard);
    const a = new WebSocketStreamServer({ server, path: '/a' });
    const b = new WebSocketStreamServer({ server, path: '/b' });
    expect(await statusLines(port, '/nowhere')).to.deep.equal(['HTTP/1.1 404 Not Found']);
    await Promise.all([a.close(), b.close()]);
    await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
  });

  leakFree("with the application's own upgrade listener, paths we do not serve are left to it", async (guard) => {
    const { server, port } = await httpServer(guard);
    attach(guard, server, '/ws');
    server.on('upgrade', (request: http.IncomingMessage, socket: Duplex) => {
      if (request.url === '/ws') return; // ours: the application leaves it alone
      socket.end('HTTP/1.1 418 I\'m a teapot\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
    expect(await statusLines(port, '/other')).to.deep.equal(["HTTP/1.1 418 I'm a teapot"]);
    expect(await statusLines(port, '/ws')).to.deep.equal(['HTTP/1.1 101 Switching Protocols']);
    expect(await acceptorOf(port, '/ws')).to.equal('/ws');
  });

  leakFree('a closing server answers its path with 503 until it has closed', async (guard) => {
    const { server, port } = await httpServer(guard);
    const a = new WebSocketStreamServer({ server, path: '/a', closeTimeout: 300 });
    guard.defer(() => a.close());
    const acceptor = new Acceptor(a);
    // A raw client that never answers the close frame keeps the server in its closing state.
    const { socket } = await rawConnect(port, { path: '/a' });
    guard.defer(() => socket.destroy());
    await acceptor.next();
    const closing = a.close();
    expect(await statusLines(port, '/a')).to.deep.equal(['HTTP/1.1 503 Service Unavailable']);
    await closing;
    expect(server.listenerCount('upgrade')).to.equal(0);
  });
});
