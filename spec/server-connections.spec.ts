// What happens to `server.connections` when the application stops reading it: connections it never
// took are closed with 1001, the server stops accepting (and stops listening when it listens
// itself), and the connections it did take keep working until server.close().
import { expect } from 'chai';
import http from 'node:http';
import net from 'node:net';
import { WebSocketStream, WebSocketStreamServer, type ServerWebSocketStream } from '../lib/index.js';
import { leakFree, until } from './helpers/faults.js';
import { listen, upgradeExchange, upgradeRequest } from './helpers/server-helpers.js';

/** Opens `count` clients and waits until the server has accepted all of them. */
async function openClients(url: string, count: number, server: WebSocketStreamServer): Promise<WebSocketStream[]> {
  const clients = Array.from({ length: count }, () => new WebSocketStream(url));
  await Promise.all(clients.map((client) => client.opened));
  await until(() => server.connectionCount === count, `${count} connections`);
  return clients;
}

describe('WebSocketStreamServer: leaving the connections loop', () => {
  leakFree('break: connections never taken close with 1001, the taken one keeps working, and the server stops listening', async (guard) => {
    const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1' });
    guard.defer(() => server.close());
    await server.listening;
    const port = (server.address() as net.AddressInfo).port;
    const url = `ws://127.0.0.1:${port}/`;
    const clients = await openClients(url, 3, server);
    let taken: ServerWebSocketStream | null = null;
    for await (const stream of server.connections) {
      taken = stream;
      break;
    }
    // The two the loop never saw are told the server went away.
    const [first, ...others] = clients;
    for (const other of others) {
      const error = await other!.closed.then(() => null, (reason: unknown) => reason);
      const info = error === null ? await other!.closed : null;
      expect(info ?? error, 'closed with 1001').to.deep.include({ closeCode: 1001, reason: 'the server stopped accepting connections' });
    }
    // Counted until their server side has closed too.
    await until(() => server.connectionCount === 1, 'the two never taken to be gone');
    // Nobody listens any more: new clients are refused by TCP, not left waiting.
    const refused = net.connect(port, '127.0.0.1');
    const [error] = (await new Promise((resolve) => refused.once('error', (e) => resolve([e])))) as [NodeJS.ErrnoException];
    expect(error.code).to.equal('ECONNREFUSED');
    // The connection the application took is its own until server.close().
    const { readable, writable } = await taken!.opened;
    const { readable: clientReadable, writable: clientWritable } = await first!.opened;
    await clientWritable.getWriter().write('still here');
    expect((await readable.getReader().read()).value).to.equal('still here');
    await writable.getWriter().write('and answering');
    expect((await clientReadable.getReader().read()).value).to.equal('and answering');
    await server.close();
    expect((await first!.closed).closeCode).to.equal(1001);
  });

  leakFree('cancel() on an attached server: later upgrades get 503 until close(), and close() still resolves', async (guard) => {
    const httpServer = http.createServer();
    guard.defer(() => new Promise((resolve) => httpServer.close(resolve)));
    const port = await listen(httpServer);
    const server = new WebSocketStreamServer({ server: httpServer });
    guard.defer(() => server.close());
    const [waiting] = await openClients(`ws://127.0.0.1:${port}/`, 1, server);
    await server.connections.cancel();
    expect((await waiting!.closed.catch((error: { closeCode: number }) => error)).closeCode).to.equal(1001);
    const { text } = await upgradeExchange(port, upgradeRequest());
    expect(text).to.match(/^HTTP\/1\.1 503 /);
    await server.close();
    expect(server.connectionCount).to.equal(0);
  });

  leakFree('handshakes waiting for room in a full backlog are refused with 503 when the application leaves', async (guard) => {
    const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', acceptBacklog: 1 });
    guard.defer(() => server.close());
    await server.listening;
    const port = (server.address() as net.AddressInfo).port;
    const [queued] = await openClients(`ws://127.0.0.1:${port}/`, 1, server);
    // The backlog is full: this handshake waits for room.
    const waiting = upgradeExchange(port, upgradeRequest());
    await until(() => server.connectionCount === 2, 'the second handshake in progress');
    await server.connections.cancel();
    expect((await waiting).text).to.match(/^HTTP\/1\.1 503 /);
    expect((await queued!.closed.catch((error: { closeCode: number }) => error)).closeCode).to.equal(1001);
    await until(() => server.connectionCount === 0, 'no connection left');
  });

  leakFree('close() hands the loop every connection it accepted, then ends it', async (guard) => {
    const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1' });
    guard.defer(() => server.close());
    await server.listening;
    const port = (server.address() as net.AddressInfo).port;
    const clients = await openClients(`ws://127.0.0.1:${port}/`, 2, server);
    const closing = server.close({ closeCode: 1012, reason: 'restarting' });
    const seen: ServerWebSocketStream[] = [];
    for await (const stream of server.connections) seen.push(stream);
    expect(seen).to.have.lengthOf(2);
    await closing;
    for (const client of clients) expect(await client.closed).to.deep.equal({ closeCode: 1012, reason: 'restarting' });
  });
});
