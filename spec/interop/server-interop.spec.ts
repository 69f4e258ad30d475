// Other clients against our server: the ws package's client and undici's WebSocket.
import { expect } from 'chai';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocket as UndiciWebSocket } from 'undici';
import WebSocket from 'ws';
import { ServerWebSocketStream, WebSocketStreamServer, type WebSocketStreamServerOptions } from '../../lib/index.js';
import { testCert, testKey } from '../helpers/raw-peer.js';
import { Acceptor, bytesOf, echo } from '../helpers/server-helpers.js';

const MiB = 1024 * 1024;

let cleanups: Array<() => unknown> = [];

async function runCleanups(): Promise<void> {
  const pending = cleanups;
  cleanups = [];
  while (pending.length > 0) {
    try {
      await pending.pop()!();
    } catch {
      // Keep cleaning up.
    }
  }
}

async function start(options: Partial<WebSocketStreamServerOptions> = {}): Promise<{ server: WebSocketStreamServer; port: number; url: string }> {
  const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', ...options } as WebSocketStreamServerOptions);
  cleanups.push(() => server.close());
  await server.listening;
  const port = (server.address() as AddressInfo).port;
  return { server, port, url: `ws://127.0.0.1:${port}` };
}

function closeEventOf(socket: WebSocket): Promise<{ code: number; reason: string }> {
  return once(socket, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason) }));
}

/** The next message event of a ws client: its data and whether it was binary. */
function nextWsMessage(socket: WebSocket): Promise<{ data: unknown; isBinary: boolean }> {
  return once(socket, 'message').then(([data, isBinary]) => ({ data, isBinary: isBinary as boolean }));
}

function undiciEvent<T extends Event>(socket: UndiciWebSocket, type: string): Promise<T> {
  return new Promise((resolve) => socket.addEventListener(type, (event) => resolve(event as unknown as T), { once: true }));
}

function wsClient(url: string, protocols?: string[], options?: WebSocket.ClientOptions): WebSocket {
  const socket = protocols === undefined ? new WebSocket(url, options) : new WebSocket(url, protocols, options);
  cleanups.push(() => {
    // terminate() on a socket still connecting reports an error event; nobody needs it then.
    socket.on('error', () => {});
    if (socket.readyState !== WebSocket.CLOSED) socket.terminate();
  });
  return socket;
}

function undiciClient(url: string, protocols?: string[]): UndiciWebSocket {
  const socket = protocols === undefined ? new UndiciWebSocket(url) : new UndiciWebSocket(url, protocols);
  cleanups.push(() => {
    if (socket.readyState === UndiciWebSocket.CONNECTING || socket.readyState === UndiciWebSocket.OPEN) socket.close();
  });
  return socket;
}

describe('server interop', () => {
  afterEach(runCleanups);

  describe('the ws client ↔ our server', () => {
    it('echoes text and binary (nodebuffer), up to 4 MiB', async () => {
      const { server, url } = await start();
      const serverSaw: string[] = [];
      new Acceptor(server, (stream) => {
        void (async () => {
          const { readable, writable } = await stream.opened;
          const writer = writable.getWriter();
          for await (const message of readable as unknown as AsyncIterable<string | Uint8Array>) {
            serverSaw.push(typeof message === 'string' ? 'text' : `${message.constructor.name} ${message.byteLength}`);
            await writer.write(message);
          }
        })().catch(() => {});
      });
      const socket = wsClient(url);
      await once(socket, 'open');
      socket.send('héllo from ws');
      let message = await nextWsMessage(socket);
      expect(message.isBinary).to.equal(false);
      expect(String(message.data)).to.equal('héllo from ws');
      for (const size of [0, 125, 126, 65536, 4 * MiB]) {
        const bytes = Buffer.from(bytesOf(size, size));
        socket.send(bytes);
        message = await nextWsMessage(socket);
        expect(message.isBinary).to.equal(true);
        expect(Buffer.isBuffer(message.data)).to.equal(true);
        expect((message.data as Buffer).equals(bytes), `echo of ${size} bytes`).to.equal(true);
      }
      expect(serverSaw).to.deep.equal(['text', 'Uint8Array 0', 'Uint8Array 125', 'Uint8Array 126', 'Uint8Array 65536', `Uint8Array ${4 * MiB}`]);
      const closed = closeEventOf(socket);
      socket.close(1000, 'done');
      expect(await closed).to.deep.equal({ code: 1000, reason: 'done' });
    });

    it('binaryType arraybuffer gets ArrayBuffers from the server', async () => {
      const { server, url } = await start();
      new Acceptor(server, (stream) => void echo(stream));
      const socket = wsClient(url);
      socket.binaryType = 'arraybuffer';
      await once(socket, 'open');
      socket.send(new Uint8Array([1, 2, 3, 250]));
      const message = await nextWsMessage(socket);
      expect(message.isBinary).to.equal(true);
      expect(message.data).to.be.an.instanceOf(ArrayBuffer);
      expect([...new Uint8Array(message.data as ArrayBuffer)]).to.deep.equal([1, 2, 3, 250]);
      const closed = closeEventOf(socket);
      socket.close();
      expect((await closed).code).to.equal(1005);
    });

    it('negotiates subprotocols with `protocols` and with selectProtocol', async () => {
      const { server, url } = await start({ protocols: ['v2', 'v1'] });
      const acceptor = new Acceptor(server);
      const socket = wsClient(url, ['v1', 'v2']);
      await once(socket, 'open');
      expect(socket.protocol).to.equal('v1');
      expect((await (await acceptor.next()).opened).protocol).to.equal('v1');
      const closed = closeEventOf(socket);
      socket.close();
      await closed;

      const other = await start({ selectProtocol: async (offered) => offered[offered.length - 1] });
      const selected = wsClient(other.url, ['a', 'b', 'c']);
      await once(selected, 'open');
      expect(selected.protocol).to.equal('c');
      const selectedClosed = closeEventOf(selected);
      selected.close();
      await selectedClosed;
    });

    it('a ws client that offered protocols fails when the server selects none', async () => {
      const { url } = await start({ protocols: ['x'] });
      const socket = wsClient(url, ['a']);
      const [error] = (await once(socket, 'error').catch((caught: unknown) => [caught])) as [Error];
      expect(error).to.be.an.instanceOf(Error);
      expect(error.message).to.match(/subprotocol/i);
    });

    it('close codes both ways: ws close(4001) reaches the server; server close(4002) reaches ws', async () => {
      const { server, url } = await start();
      const acceptor = new Acceptor(server);
      const first = wsClient(url);
      await once(first, 'open');
      const firstStream = await acceptor.next();
      const firstClosed = closeEventOf(first);
      first.close(4001, 'ws says bye');
      expect(await firstStream.closed).to.deep.equal({ closeCode: 4001, reason: 'ws says bye' });
      expect(await firstClosed).to.deep.equal({ code: 4001, reason: 'ws says bye' });

      const second = wsClient(url);
      await once(second, 'open');
      const secondStream = await acceptor.next();
      const secondClosed = closeEventOf(second);
      secondStream.close({ closeCode: 4002, reason: 'server says bye' });
      expect(await secondClosed).to.deep.equal({ code: 4002, reason: 'server says bye' });
      expect(await secondStream.closed).to.deep.equal({ closeCode: 4002, reason: 'server says bye' });
    });

    it('a refusal reaches ws as the HTTP status', async () => {
      const { url } = await start({ verify: () => ({ status: 401, headers: { 'WWW-Authenticate': 'Basic' } }) });
      const socket = wsClient(url);
      const [, response] = (await once(socket, 'unexpected-response')) as [unknown, { statusCode: number; headers: Record<string, string>; destroy(): void }];
      expect(response.statusCode).to.equal(401);
      expect(response.headers['www-authenticate']).to.equal('Basic');
      response.destroy();
    });

    it('wss:// with the test certificate as ca', async () => {
      const { server, port } = await start({ tls: { key: testKey, cert: testCert } });
      const acceptor = new Acceptor(server, (stream) => void echo(stream));
      const socket = wsClient(`wss://localhost:${port}/tls`, undefined, { ca: testCert });
      await once(socket, 'open');
      const accepted = await acceptor.next();
      expect(accepted.url).to.equal(`wss://localhost:${port}/tls`);
      socket.send('secure hello');
      expect(String((await nextWsMessage(socket)).data)).to.equal('secure hello');
      const closed = closeEventOf(socket);
      socket.close(1000);
      expect(await closed).to.deep.equal({ code: 1000, reason: '' });
      expect(await accepted.closed).to.deep.equal({ closeCode: 1000, reason: '' });
    });
  });

  describe('undici\'s WebSocket ↔ our server', () => {
    it('echoes text and binary with binaryType arraybuffer, up to 4 MiB', async () => {
      const { server, url } = await start();
      new Acceptor(server, (stream) => void echo(stream));
      const socket = undiciClient(`${url}/undici`);
      socket.binaryType = 'arraybuffer';
      await undiciEvent(socket, 'open');
      socket.send('héllo from undici');
      let event = await undiciEvent<MessageEvent>(socket, 'message');
      expect(event.data).to.equal('héllo from undici');
      for (const size of [0, 126, 65536, 4 * MiB]) {
        const bytes = bytesOf(size, size + 1);
        socket.send(bytes);
        event = await undiciEvent<MessageEvent>(socket, 'message');
        expect(event.data, `echo of ${size} bytes`).to.be.an.instanceOf(ArrayBuffer);
        expect(Buffer.from(event.data as ArrayBuffer).equals(Buffer.from(bytes)), `echo of ${size} bytes`).to.equal(true);
      }
      const closed = undiciEvent<CloseEvent>(socket, 'close');
      socket.close(1000, 'done');
      const close = await closed;
      expect({ code: close.code, reason: close.reason, wasClean: close.wasClean }).to.deep.equal({ code: 1000, reason: 'done', wasClean: true });
    });

    it('negotiates a subprotocol', async () => {
      const { server, url } = await start({ protocols: ['beta', 'alpha'] });
      const acceptor = new Acceptor(server);
      const socket = undiciClient(url, ['alpha', 'beta']);
      await undiciEvent(socket, 'open');
      expect(socket.protocol).to.equal('alpha');
      const accepted = await acceptor.next();
      expect((await accepted.opened).protocol).to.equal('alpha');
      expect(accepted).to.be.an.instanceOf(ServerWebSocketStream);
      const closed = undiciEvent<CloseEvent>(socket, 'close');
      socket.close();
      expect((await closed).code).to.equal(1005);
      expect(await accepted.closed).to.deep.equal({ closeCode: 1005, reason: '' });
    });

    it('close codes both ways, cleanly', async () => {
      const { server, url } = await start();
      const acceptor = new Acceptor(server);
      const first = undiciClient(url);
      await undiciEvent(first, 'open');
      const firstStream = await acceptor.next();
      const firstClosed = undiciEvent<CloseEvent>(first, 'close');
      first.close(4001, 'undici says bye');
      expect(await firstStream.closed).to.deep.equal({ closeCode: 4001, reason: 'undici says bye' });
      const firstClose = await firstClosed;
      expect({ code: firstClose.code, reason: firstClose.reason, wasClean: firstClose.wasClean }).to.deep.equal({
        code: 4001,
        reason: 'undici says bye',
        wasClean: true,
      });

      const second = undiciClient(url);
      await undiciEvent(second, 'open');
      const secondStream = await acceptor.next();
      const secondClosed = undiciEvent<CloseEvent>(second, 'close');
      secondStream.close({ closeCode: 4002, reason: 'server says bye' });
      const secondClose = await secondClosed;
      expect({ code: secondClose.code, reason: secondClose.reason, wasClean: secondClose.wasClean }).to.deep.equal({
        code: 4002,
        reason: 'server says bye',
        wasClean: true,
      });
      // The server reports the close frame it received: undici echoes the code without the reason.
      expect(await secondStream.closed).to.deep.equal({ closeCode: 4002, reason: '' });
    });

    it('sees 1001 when the server shuts down', async () => {
      const { server, url } = await start();
      const acceptor = new Acceptor(server);
      const socket = undiciClient(url);
      await undiciEvent(socket, 'open');
      await acceptor.next();
      const closed = undiciEvent<CloseEvent>(socket, 'close');
      await server.close();
      const close = await closed;
      expect({ code: close.code, wasClean: close.wasClean }).to.deep.equal({ code: 1001, wasClean: true });
      await acceptor.done;
    });
  });
});
