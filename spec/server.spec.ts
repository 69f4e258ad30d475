// WebSocketStreamServer, handleUpgrade() and server-side WebSocketStreams, driven by our
// own client, by hand-written bytes over raw TCP, and by the ws client for the shutdown test.
import { expect } from 'chai';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket from 'ws';
import {
  handleUpgrade,
  ServerWebSocketStream,
  WebSocketError,
  WebSocketStream,
  WebSocketStreamServer,
  type WebSocketStreamServerOptions,
} from '../lib/index.js';
import { testCert, testKey, type RawFrame } from './helpers/raw-peer.js';
import {
  Acceptor,
  bytesOf,
  closeServer,
  echo,
  httpRoundTrips,
  listen,
  parseResponse,
  portOf,
  pseudoRandomBytes,
  rawConnect,
  rawExchange,
  rawRequest,
  stateOf,
  upgradeRequest,
} from './helpers/server-helpers.js';

const OP = { TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;
const MiB = 1024 * 1024;

/** Cleanups of the current test, run last-in first-out after it. */
let cleanups: Array<() => unknown> = [];

async function runCleanups(): Promise<void> {
  const pending = cleanups;
  cleanups = [];
  while (pending.length > 0) {
    try {
      await pending.pop()!();
    } catch {
      // A failed cleanup must not keep the others from running.
    }
  }
}

async function start(options: Partial<WebSocketStreamServerOptions> = {}): Promise<{ server: WebSocketStreamServer; port: number; url: string }> {
  const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', ...options } as WebSocketStreamServerOptions);
  cleanups.push(() => server.close());
  await server.listening;
  const port = portOf(server);
  return { server, port, url: `ws://127.0.0.1:${port}` };
}

/** One of our clients, closed (without waiting) after the test if it is still open. */
function client(url: string, options?: ConstructorParameters<typeof WebSocketStream>[1]): WebSocketStream {
  const stream = new WebSocketStream(url, options);
  cleanups.push(() => {
    stream.close();
  });
  return stream;
}

function closeFrameOf(frame: RawFrame): { code: number | null; reason: string } {
  expect(frame.opcode).to.equal(OP.CLOSE);
  if (frame.payload.length === 0) return { code: null, reason: '' };
  return { code: frame.payload.readUInt16BE(0), reason: frame.payload.subarray(2).toString('utf8') };
}

/** Ends a ws client whatever its state, without an unhandled error event. */
function terminate(socket: WebSocket): void {
  socket.on('error', () => {});
  if (socket.readyState !== WebSocket.CLOSED) socket.terminate();
}

/** Resolves at the peer's FIN with whether we had already ended our side (checked synchronously). */
function endSeenBy(socket: net.Socket): Promise<{ clientHadEnded: boolean }> {
  return new Promise((resolve) => socket.once('end', () => resolve({ clientHadEnded: socket.writableEnded })));
}

/** `n` bytes of UTF-8 text mixing 1- to 4-byte characters. */
function textOfBytes(n: number): string {
  const unit = 'aé€😀'; // 1 + 2 + 3 + 4 bytes
  return unit.repeat(Math.floor(n / 10)) + 'a'.repeat(n % 10);
}

const SIZES = [0, 1, 125, 126, 65535, 65536, MiB, 16 * MiB];

describe('WebSocketStreamServer', () => {
  afterEach(runCleanups);

  describe('our client ↔ our server', () => {
    it('echoes text messages from 0 B to 16 MiB, as strings on both sides', async () => {
      const { server, url } = await start();
      const seen: unknown[] = [];
      new Acceptor(server, (stream) => {
        void (async () => {
          const { readable, writable } = await stream.opened;
          const writer = writable.getWriter();
          for await (const message of readable as unknown as AsyncIterable<unknown>) {
            seen.push(typeof message);
            await writer.write(message);
          }
        })().catch(() => {});
      });
      const stream = client(url);
      const { readable, writable } = await stream.opened;
      const writer = writable.getWriter();
      const reader = readable.getReader();
      for (const size of SIZES) {
        const text = textOfBytes(size);
        expect(Buffer.byteLength(text)).to.equal(size);
        const [, { value }] = await Promise.all([writer.write(text), reader.read()]);
        expect(typeof value, `echo of ${size} bytes`).to.equal('string');
        expect(value === text, `echo of ${size} bytes is identical`).to.equal(true);
      }
      expect(seen).to.deep.equal(SIZES.map(() => 'string'));
      stream.close();
      expect(await stream.closed).to.deep.equal({ closeCode: 1005, reason: '' });
    });

    it('echoes binary messages from 0 B to 16 MiB, as exact Uint8Arrays on both sides', async () => {
      const { server, url } = await start();
      const serverChunks: Array<{ constructor: unknown; byteOffset: number; owns: boolean }> = [];
      new Acceptor(server, (stream) => {
        void (async () => {
          const { readable, writable } = await stream.opened;
          const writer = writable.getWriter();
          for await (const message of readable as unknown as AsyncIterable<Uint8Array>) {
            serverChunks.push({ constructor: message.constructor, byteOffset: message.byteOffset, owns: message.buffer.byteLength === message.byteLength });
            await writer.write(message);
          }
        })().catch(() => {});
      });
      const stream = client(url);
      const { readable, writable } = await stream.opened;
      const writer = writable.getWriter();
      const reader = readable.getReader();
      for (const size of SIZES) {
        const bytes = bytesOf(size, size);
        const [, { value }] = await Promise.all([writer.write(bytes), reader.read()]);
        const received = value as Uint8Array;
        expect(received.constructor, `echo of ${size} bytes`).to.equal(Uint8Array);
        expect(received.byteLength).to.equal(size);
        expect(Buffer.from(received.buffer, received.byteOffset, received.byteLength).equals(Buffer.from(bytes)), `echo of ${size} bytes is identical`).to.equal(true);
      }
      expect(serverChunks).to.have.length(SIZES.length);
      for (const chunk of serverChunks) expect(chunk).to.deep.equal({ constructor: Uint8Array, byteOffset: 0, owns: true });
      stream.close({ closeCode: 1000 });
      expect(await stream.closed).to.deep.equal({ closeCode: 1000, reason: '' });
    });

    it('hands out ServerWebSocketStreams with the client facade', async () => {
      const { server, url } = await start();
      const acceptor = new Acceptor(server);
      const stream = client(url);
      const accepted = await acceptor.next();
      expect(accepted).to.be.an.instanceOf(ServerWebSocketStream);
      expect(accepted).to.be.an.instanceOf(WebSocketStream);
      const info = await accepted.opened;
      expect(info.readable).to.be.an.instanceOf(ReadableStream);
      expect(info.writable).to.be.an.instanceOf(WritableStream);
      expect(info.protocol).to.equal('');
      // Both ends report the same negotiated extensions, as a string.
      expect(info.extensions).to.be.a('string');
      expect(info.extensions).to.equal((await stream.opened).extensions);
      expect(server.connectionCount).to.equal(1);
      stream.close();
      expect(await accepted.closed).to.deep.equal({ closeCode: 1005, reason: '' });
      expect(await stream.closed).to.deep.equal({ closeCode: 1005, reason: '' });
    });

    it('connectionCount no longer counts a connection once its closed promise has settled', async () => {
      const { server, url } = await start();
      const acceptor = new Acceptor(server);
      const stream = client(url);
      const accepted = await acceptor.next();
      await stream.opened;
      expect(server.connectionCount).to.equal(1);
      stream.close({ closeCode: 1000, reason: 'done' });
      expect(await accepted.closed).to.deep.equal({ closeCode: 1000, reason: 'done' });
      expect(server.connectionCount).to.equal(0);
    });

    it('server close({closeCode: 4000, reason}) reaches the client, and the server sees the echo', async () => {
      const { server, url } = await start();
      const acceptor = new Acceptor(server);
      const stream = client(url);
      const accepted = await acceptor.next();
      await Promise.all([accepted.opened, stream.opened]);
      accepted.close({ closeCode: 4000, reason: 'server says bye' });
      expect(await stream.closed).to.deep.equal({ closeCode: 4000, reason: 'server says bye' });
      expect(await accepted.closed).to.deep.equal({ closeCode: 4000, reason: 'server says bye' });
    });

    it('client close({closeCode: 3001, reason}) resolves the server stream\'s closed with them', async () => {
      const { server, url } = await start();
      const acceptor = new Acceptor(server);
      const stream = client(url);
      const accepted = await acceptor.next();
      await Promise.all([accepted.opened, stream.opened]);
      stream.close({ closeCode: 3001, reason: 'client says bye' });
      expect(await accepted.closed).to.deep.equal({ closeCode: 3001, reason: 'client says bye' });
      expect(await stream.closed).to.deep.equal({ closeCode: 3001, reason: 'client says bye' });
      expect(server.connectionCount).to.equal(0);
    });

    it('server-side close() refuses codes that may not go on the wire (InvalidAccessError) and long reasons (SyntaxError)', async () => {
      const { server, url } = await start();
      const acceptor = new Acceptor(server);
      const stream = client(url);
      const accepted = await acceptor.next();
      await accepted.opened;
      for (const closeCode of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000]) {
        expect(() => accepted.close({ closeCode }), `closeCode ${closeCode}`).to.throw(DOMException).with.property('name', 'InvalidAccessError');
      }
      expect(() => accepted.close({ closeCode: 4000, reason: '€'.repeat(42) })).to.throw(DOMException).with.property('name', 'SyntaxError');
      accepted.close();
      expect(await stream.closed).to.deep.equal({ closeCode: 1005, reason: '' });
      expect(await accepted.closed).to.deep.equal({ closeCode: 1005, reason: '' });
    });

    for (const closeCode of [1001, 1008, 1011, 1013]) {
      it(`a server-side stream may close with ${closeCode}, which the client sees (a client may not send it)`, async () => {
        const { server, url } = await start();
        const acceptor = new Acceptor(server);
        const stream = client(url);
        const accepted = await acceptor.next();
        await accepted.opened;
        await stream.opened;
        expect(() => stream.close({ closeCode })).to.throw(DOMException).with.property('name', 'InvalidAccessError');
        accepted.close({ closeCode, reason: 'server policy' });
        expect(await stream.closed).to.deep.equal({ closeCode, reason: 'server policy' });
        expect(await accepted.closed).to.deep.equal({ closeCode, reason: 'server policy' });
      });
    }
  });

  describe('role rules (a raw client)', () => {
    it('never masks its frames: text, binary, pong and close', async () => {
      const { server, port } = await start();
      const acceptor = new Acceptor(server);
      const { peer } = await rawConnect(port);
      const accepted = await acceptor.next();
      const writer = (await accepted.opened).writable.getWriter();
      await writer.write('text');
      await writer.write(bytesOf(70000));
      const frames: RawFrame[] = [await peer.nextFrame(), await peer.nextFrame()];
      peer.send(OP.PING, 'ping!', { mask: true });
      frames.push(await peer.nextFrame());
      accepted.close({ closeCode: 4001, reason: 'done' });
      frames.push(await peer.nextFrame());
      expect(frames.map((frame) => frame.opcode)).to.deep.equal([OP.TEXT, OP.BINARY, OP.PONG, OP.CLOSE]);
      expect(frames.map((frame) => frame.masked)).to.deep.equal([false, false, false, false]);
      expect(frames[0]!.payload.toString()).to.equal('text');
      expect(frames[1]!.payload.equals(Buffer.from(bytesOf(70000)))).to.equal(true);
      expect(frames[2]!.payload.toString()).to.equal('ping!');
      expect(closeFrameOf(frames[3]!)).to.deep.equal({ code: 4001, reason: 'done' });
      peer.sendClose(4001, 'done', { mask: true });
      await peer.waitForEnd();
      expect(await accepted.closed).to.deep.equal({ closeCode: 4001, reason: 'done' });
    });

    it('closes TCP first when the client starts the closing handshake', async () => {
      const { server, port } = await start();
      const acceptor = new Acceptor(server);
      const { peer, socket } = await rawConnect(port);
      const accepted = await acceptor.next();
      await accepted.opened;
      const sawEnd = endSeenBy(socket);
      peer.sendClose(1000, 'bye', { mask: true });
      const reply = await peer.nextFrame();
      expect(reply.masked).to.equal(false);
      expect(closeFrameOf(reply)).to.deep.equal({ code: 1000, reason: 'bye' });
      // The server's FIN arrives while our side is still open: it closed TCP first.
      expect(await sawEnd).to.deep.equal({ clientHadEnded: false });
      await peer.closed;
      expect(await accepted.closed).to.deep.equal({ closeCode: 1000, reason: 'bye' });
    });

    it('closes TCP first when it starts the closing handshake itself', async () => {
      const { server, port } = await start();
      const acceptor = new Acceptor(server);
      const { peer, socket } = await rawConnect(port);
      const accepted = await acceptor.next();
      await accepted.opened;
      const sawEnd = endSeenBy(socket);
      accepted.close({ closeCode: 4000, reason: 'from the server' });
      expect(closeFrameOf(await peer.nextFrame())).to.deep.equal({ code: 4000, reason: 'from the server' });
      peer.sendClose(4000, 'from the server', { mask: true });
      expect(await sawEnd).to.deep.equal({ clientHadEnded: false });
      await peer.closed;
      expect(await accepted.closed).to.deep.equal({ closeCode: 4000, reason: 'from the server' });
    });

    it('answers an unmasked client frame with a close frame carrying 1002, then closes TCP', async () => {
      const { server, port } = await start();
      const acceptor = new Acceptor(server);
      const { peer } = await rawConnect(port);
      const accepted = await acceptor.next();
      const { readable } = await accepted.opened;
      peer.send(OP.TEXT, 'not masked');
      const frame = await peer.nextFrame();
      expect(frame.masked).to.equal(false);
      expect(closeFrameOf(frame).code).to.equal(1002);
      expect(await peer.waitForEnd()).to.deep.equal([]);
      const error = await accepted.closed.then(
        () => null,
        (reason: unknown) => reason,
      );
      expect(error).to.be.an.instanceOf(WebSocketError);
      // The unmasked message never reached the application.
      const read = await readable
        .getReader()
        .read()
        .then(
          () => 'read',
          () => 'errored',
        );
      expect(read).to.equal('errored');
      expect(server.connectionCount).to.equal(0);
    });

    it('reads frames that arrived in the same packet as the upgrade request', async () => {
      const { server, port } = await start();
      const acceptor = new Acceptor(server);
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      cleanups.push(() => socket.destroy());
      const frame = Buffer.from([0x81, 0x85, 1, 2, 3, 4, ...Buffer.from('early').map((byte, i) => byte ^ [1, 2, 3, 4][i % 4]!)]);
      socket.write(Buffer.concat([Buffer.from(upgradeRequest()), frame]));
      const accepted = await acceptor.next();
      const { value } = await (await accepted.opened).readable.getReader().read();
      expect(value).to.equal('early');
    });
  });

  describe('options and limits', () => {
    it('checks its options', async () => {
      expect(() => new WebSocketStreamServer({})).to.throw(TypeError);
      expect(() => new WebSocketStreamServer({ server: http.createServer(), port: 0 })).to.throw(TypeError);
      expect(() => new WebSocketStreamServer({ port: 0, protocols: ['a'], selectProtocol: () => 'a' })).to.throw(TypeError);
      for (const name of ['maxPayload', 'handshakeTimeout', 'closeTimeout', 'maxConnections', 'maxHandshakeHead', 'acceptBacklog'] as const) {
        expect(() => new WebSocketStreamServer({ port: 0, [name]: 0 }), name).to.throw(RangeError);
        expect(() => new WebSocketStreamServer({ port: 0, [name]: -1 }), name).to.throw(RangeError);
      }
    });

    it('`listening` rejects when the port is taken, and close() still resolves', async () => {
      const { port } = await start();
      const second = new WebSocketStreamServer({ port, host: '127.0.0.1' });
      const error = await second.listening.then(
        () => null,
        (reason: unknown) => reason,
      );
      expect((error as NodeJS.ErrnoException).code).to.equal('EADDRINUSE');
      await second.close();
    });

    it('maxPayload: a larger client message closes the connection with 1009', async () => {
      const { server, url } = await start({ maxPayload: 1024 });
      const acceptor = new Acceptor(server);
      const stream = client(url);
      const accepted = await acceptor.next();
      const { writable } = await stream.opened;
      await writable.getWriter().write(new Uint8Array(1024));
      const serverReader = (await accepted.opened).readable.getReader();
      expect(((await serverReader.read()).value as Uint8Array).byteLength).to.equal(1024);
      serverReader.releaseLock();
      const big = client(url);
      const bigAccepted = await acceptor.next();
      await (await big.opened).writable.getWriter().write(new Uint8Array(1025)).catch(() => {});
      const closeCode = await big.closed.then(
        (info) => info.closeCode,
        (error: unknown) => (error as WebSocketError).closeCode,
      );
      expect(closeCode).to.equal(1009);
      const serverSide = await bigAccepted.closed.then(
        () => null,
        (reason: unknown) => reason,
      );
      expect(serverSide).to.be.an.instanceOf(WebSocketError);
      stream.close();
      await accepted.closed;
    });

    it('closeTimeout: a client that never answers the close frame is cut off, and closed rejects with 1006', async () => {
      const { server, port } = await start({ closeTimeout: 200 });
      const acceptor = new Acceptor(server);
      const { peer } = await rawConnect(port);
      const accepted = await acceptor.next();
      await accepted.opened;
      accepted.close({ closeCode: 4000, reason: 'anyone there?' });
      expect(closeFrameOf(await peer.nextFrame())).to.deep.equal({ code: 4000, reason: 'anyone there?' });
      // The raw client neither answers nor closes TCP: the server must end it.
      await peer.closed;
      const error = await accepted.closed.then(
        () => null,
        (reason: unknown) => reason,
      );
      expect(error).to.be.an.instanceOf(WebSocketError);
      expect((error as WebSocketError).closeCode).to.equal(1006);
    });

    it('a client that disconnects while verify runs is not counted once verify settles', async () => {
      let release: (verdict: boolean) => void = () => {};
      let verifyCalled!: () => void;
      const called = new Promise<void>((resolve) => (verifyCalled = resolve));
      const { server, port } = await start({
        verify: () => {
          verifyCalled();
          return new Promise<boolean>((resolve) => (release = resolve));
        },
      });
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      socket.write(upgradeRequest());
      await called;
      socket.destroy();
      await once(socket, 'close');
      expect(server.connectionCount).to.equal(1);
      release(true);
      await httpRoundTrips(port, 1);
      expect(server.connectionCount).to.equal(0);
    });
  });

  describe('request info', () => {
    it('exposes url, headers, remote address and port; stream.url is ws://host/path?query', async () => {
      const { server, port, url } = await start();
      const acceptor = new Acceptor(server);
      const stream = client(`${url}/chat/room?x=1&y=two`, { headers: { 'X-Custom': 'custom value' } });
      const accepted = await acceptor.next();
      expect(accepted.url).to.equal(`ws://127.0.0.1:${port}/chat/room?x=1&y=two`);
      expect(accepted.request.url).to.equal('/chat/room?x=1&y=two');
      expect(accepted.request.headers['x-custom']).to.equal('custom value');
      expect(accepted.request.headers.host).to.equal(`127.0.0.1:${port}`);
      expect(accepted.request.headers.upgrade?.toLowerCase()).to.equal('websocket');
      expect(accepted.request.remoteAddress).to.equal('127.0.0.1');
      expect(accepted.request.remotePort).to.be.a('number').within(1, 65535);
      await stream.opened;
      stream.close();
      await accepted.closed;
    });

    it('remotePort is the client socket\'s local port', async () => {
      const { server, port } = await start();
      const acceptor = new Acceptor(server);
      const { peer, socket } = await rawConnect(port, { path: '/p?q', headers: { Host: 'example.test:8080' } });
      const accepted = await acceptor.next();
      expect(accepted.request.remotePort).to.equal(socket.localPort);
      expect(accepted.url).to.equal('ws://example.test:8080/p?q');
      peer.sendClose(1000, '', { mask: true });
      await peer.waitForEnd();
      expect(await accepted.closed).to.deep.equal({ closeCode: 1000, reason: '' });
    });
  });

  describe('attached to an existing http.Server', () => {
    async function mounted(): Promise<{ httpServer: http.Server; server: WebSocketStreamServer; port: number }> {
      const httpServer = http.createServer((request, response) => {
        if (request.url === '/hello') response.end('hello world');
        else response.writeHead(404).end();
      });
      const server = new WebSocketStreamServer({ server: httpServer, path: '/ws' });
      const port = await listen(httpServer);
      cleanups.push(() => closeServer(httpServer));
      cleanups.push(() => server.close());
      await server.listening;
      return { httpServer, server, port };
    }

    function get(port: number, path: string): Promise<{ status: number; body: string }> {
      return new Promise((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path, agent: false }, (response) => {
            let body = '';
            response.setEncoding('utf8');
            response.on('data', (chunk: string) => (body += chunk));
            response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
          })
          .on('error', reject);
      });
    }

    it('keeps serving plain HTTP routes next to the WebSocket endpoint', async () => {
      const { server, port } = await mounted();
      expect(server.address()).to.deep.equal({ address: '127.0.0.1', family: 'IPv4', port });
      expect(await get(port, '/hello')).to.deep.equal({ status: 200, body: 'hello world' });
      const acceptor = new Acceptor(server, (stream) => void echo(stream));
      const stream = client(`ws://127.0.0.1:${port}/ws`);
      const { readable, writable } = await stream.opened;
      const writer = writable.getWriter();
      await writer.write('over the shared port');
      expect((await readable.getReader().read()).value).to.equal('over the shared port');
      expect(await get(port, '/hello')).to.deep.equal({ status: 200, body: 'hello world' });
      expect((await acceptor.next()).request.url).to.equal('/ws');
      stream.close();
      await stream.closed;
    });

    it('matches the path without the query string', async () => {
      const { server, port } = await mounted();
      const acceptor = new Acceptor(server);
      const stream = client(`ws://127.0.0.1:${port}/ws?room=1`);
      await stream.opened;
      expect((await acceptor.next()).request.url).to.equal('/ws?room=1');
      stream.close();
      await stream.closed;
    });

    it('answers 404 to an upgrade on another path when no other upgrade listener exists', async () => {
      const { server, port } = await mounted();
      const response = await rawRequest(port, upgradeRequest({ path: '/elsewhere' }));
      expect(response.status).to.equal(404);
      const stream = client(`ws://127.0.0.1:${port}/ws/deeper`);
      const error = await stream.opened.then(
        () => null,
        (reason: unknown) => reason,
      );
      expect(error).to.be.an.instanceOf(WebSocketError);
      expect((error as WebSocketError).closeCode).to.equal(null);
      expect(server.connectionCount).to.equal(0);
    });

    it('leaves an upgrade on another path alone when another upgrade listener exists', async () => {
      const { httpServer, server, port } = await mounted();
      const others: Array<Promise<ServerWebSocketStream | null>> = [];
      httpServer.on('upgrade', (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
        if (request.url === '/other') others.push(handleUpgrade(request, socket, head));
      });
      const acceptor = new Acceptor(server);
      const other = client(`ws://127.0.0.1:${port}/other`);
      const mine = client(`ws://127.0.0.1:${port}/ws`);
      await Promise.all([other.opened, mine.opened]);
      expect(others).to.have.length(1);
      const otherStream = await others[0]!;
      expect(otherStream).to.be.an.instanceOf(ServerWebSocketStream);
      expect(otherStream!.request.url).to.equal('/other');
      expect((await acceptor.next()).request.url).to.equal('/ws');
      // Only /ws belongs to the WebSocketStreamServer.
      expect(server.connectionCount).to.equal(1);
      void echo(otherStream!);
      const { readable, writable } = await other.opened;
      await writable.getWriter().write('handled by the other listener');
      expect((await readable.getReader().read()).value).to.equal('handled by the other listener');
      other.close();
      mine.close();
      await Promise.all([other.closed, mine.closed]);
    });

    it('close() closes its WebSockets but leaves the http server it does not own running', async () => {
      const { server, port } = await mounted();
      const acceptor = new Acceptor(server);
      const stream = client(`ws://127.0.0.1:${port}/ws`);
      await stream.opened;
      await acceptor.next();
      await server.close();
      expect(await stream.closed).to.deep.equal({ closeCode: 1001, reason: '' });
      await acceptor.done;
      expect(await get(port, '/hello')).to.deep.equal({ status: 200, body: 'hello world' });
    });
  });

  describe('handleUpgrade', () => {
    async function plainServer(onUpgrade: (request: http.IncomingMessage, socket: Duplex, head: Buffer) => void): Promise<number> {
      const httpServer = http.createServer((_request, response) => response.end('plain'));
      httpServer.on('upgrade', onUpgrade);
      const port = await listen(httpServer);
      cleanups.push(() => closeServer(httpServer));
      return port;
    }

    it('the standalone function accepts from a plain node:http server\'s upgrade event', async () => {
      const results: Array<Promise<ServerWebSocketStream | null>> = [];
      const port = await plainServer((request, socket, head) => {
        const result = handleUpgrade(request, socket, head, { protocols: ['chat'] });
        results.push(result);
        void result.then((stream) => {
          if (stream !== null) void echo(stream);
        });
      });
      const stream = client(`ws://127.0.0.1:${port}/anything?x`, { protocols: ['other', 'chat'] });
      const { readable, writable, protocol } = await stream.opened;
      expect(protocol).to.equal('chat');
      await writable.getWriter().write(new Uint8Array([1, 2, 3]));
      expect((await readable.getReader().read()).value).to.deep.equal(new Uint8Array([1, 2, 3]));
      const accepted = await results[0]!;
      expect(accepted).to.be.an.instanceOf(ServerWebSocketStream);
      expect(accepted!.url).to.equal(`ws://127.0.0.1:${port}/anything?x`);
      expect((await accepted!.opened).protocol).to.equal('chat');
      stream.close({ closeCode: 3000, reason: 'done' });
      expect(await accepted!.closed).to.deep.equal({ closeCode: 3000, reason: 'done' });
      expect(await stream.closed).to.deep.equal({ closeCode: 3000, reason: 'done' });
    });

    it('the standalone function refuses with the status and resolves null', async () => {
      const results: Array<Promise<ServerWebSocketStream | null>> = [];
      const port = await plainServer((request, socket, head) => {
        results.push(handleUpgrade(request, socket, head, { verify: () => false }));
      });
      const refused = await rawRequest(port, upgradeRequest());
      expect(refused.status).to.equal(403);
      const badVersion = await rawRequest(port, upgradeRequest({ headers: { 'Sec-WebSocket-Version': '8' } }));
      expect(badVersion.status).to.equal(426);
      expect(badVersion.headers.get('sec-websocket-version')).to.equal('13');
      expect(await Promise.all(results)).to.deep.equal([null, null]);
    });

    it('the standalone function passes bytes that came with the request (head) to the stream', async () => {
      const results: Array<Promise<ServerWebSocketStream | null>> = [];
      const port = await plainServer((request, socket, head) => {
        results.push(handleUpgrade(request, socket, head));
      });
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      cleanups.push(() => socket.destroy());
      const payload = Buffer.from('in the head');
      const frame = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length, 0, 0, 0, 0]), payload]);
      socket.write(Buffer.concat([Buffer.from(upgradeRequest()), frame]));
      await once(socket, 'data');
      const accepted = await results[0]!;
      const { value } = await (await accepted!.opened).readable.getReader().read();
      expect(value).to.equal('in the head');
    });

    it('the server method applies the server\'s options, counts the connection and closes it on shutdown, outside `connections`', async () => {
      const { server } = await start({ protocols: ['v2'] });
      const acceptor = new Acceptor(server);
      const results: Array<Promise<ServerWebSocketStream | null>> = [];
      const port = await plainServer((request, socket, head) => {
        results.push(server.handleUpgrade(request, socket, head));
      });
      const stream = client(`ws://127.0.0.1:${port}/method`, { protocols: ['v1', 'v2'] });
      const { protocol } = await stream.opened;
      expect(protocol).to.equal('v2');
      const accepted = await results[0]!;
      expect(accepted).to.be.an.instanceOf(ServerWebSocketStream);
      expect(accepted!.request.url).to.equal('/method');
      expect(server.connectionCount).to.equal(1);
      await server.close();
      expect(await stream.closed).to.deep.equal({ closeCode: 1001, reason: '' });
      expect(await accepted!.closed).to.deep.equal({ closeCode: 1001, reason: '' });
      await acceptor.done;
      expect(acceptor.all).to.have.length(0);
      expect(server.connectionCount).to.equal(0);
    });
  });

  describe('wss://', () => {
    it('serves our client over TLS with the test certificate', async () => {
      const { server, port } = await start({ tls: { key: testKey, cert: testCert } });
      const acceptor = new Acceptor(server, (stream) => void echo(stream));
      const stream = client(`wss://127.0.0.1:${port}/secure?x=1`, { tls: { ca: testCert } });
      const { readable, writable } = await stream.opened;
      const accepted = await acceptor.next();
      expect(accepted.url).to.equal(`wss://127.0.0.1:${port}/secure?x=1`);
      await writable.getWriter().write('over TLS');
      expect((await readable.getReader().read()).value).to.equal('over TLS');
      stream.close({ closeCode: 1000, reason: 'tls done' });
      expect(await stream.closed).to.deep.equal({ closeCode: 1000, reason: 'tls done' });
      expect(await accepted.closed).to.deep.equal({ closeCode: 1000, reason: 'tls done' });
    });

    it('really is TLS: a client that does not trust the certificate fails, by host name too', async () => {
      const { server, port } = await start({ tls: { key: testKey, cert: testCert } });
      const untrusting = client(`wss://127.0.0.1:${port}/`);
      const error = await untrusting.opened.then(
        () => null,
        (reason: unknown) => reason,
      );
      expect(error).to.be.an.instanceOf(WebSocketError);
      const acceptor = new Acceptor(server);
      const trusting = client(`wss://localhost:${port}/`, { tls: { ca: testCert } });
      await trusting.opened;
      const accepted = await acceptor.next();
      expect(acceptor.all).to.have.length(1);
      trusting.close();
      expect(await trusting.closed).to.deep.equal({ closeCode: 1005, reason: '' });
      expect(await accepted.closed).to.deep.equal({ closeCode: 1005, reason: '' });
    });
  });

  describe('refusals (hand-written requests over raw TCP)', () => {
    async function expectRefusal(port: number, request: string, status: number): Promise<ReturnType<typeof parseResponse>> {
      const exchange = await rawExchange(port, request);
      const response = parseResponse(exchange.text);
      expect(response.status, exchange.text).to.equal(status);
      // The refusal ends the connection: the server sent FIN after its answer.
      expect(exchange.serverEnded).to.equal(true);
      expect(response.headers.get('connection')?.toLowerCase()).to.equal('close');
      const length = response.headers.get('content-length');
      if (length !== undefined) expect(Number(length)).to.equal(Buffer.byteLength(response.body, 'latin1'));
      return response;
    }

    it('a method other than GET gets 405 with Allow: GET', async () => {
      const { server, port } = await start();
      const response = await expectRefusal(port, upgradeRequest({ method: 'POST' }), 405);
      expect(response.headers.get('allow')).to.equal('GET');
      expect(server.connectionCount).to.equal(0);
    });

    it('HTTP/1.0 gets 400', async () => {
      const { port } = await start();
      await expectRefusal(port, upgradeRequest({ httpVersion: '1.0' }), 400);
    });

    it('a request without Host gets 400', async () => {
      const { port } = await start();
      await expectRefusal(port, upgradeRequest({ headers: { Host: null } }), 400);
    });

    it('an Upgrade other than websocket gets 400', async () => {
      const { port } = await start();
      await expectRefusal(port, upgradeRequest({ headers: { Upgrade: 'h2c' } }), 400);
    });

    it('a Connection header without the upgrade token gets 400', async () => {
      const { port } = await start();
      await expectRefusal(port, upgradeRequest({ headers: { Connection: 'keep-alive' } }), 400);
    });

    it('a Connection list holding upgrade among other tokens is accepted', async () => {
      const { server, port } = await start();
      const acceptor = new Acceptor(server);
      const { peer } = await rawConnect(port, { headers: { Connection: 'keep-alive, Upgrade', Upgrade: 'WebSocket' } });
      const accepted = await acceptor.next();
      peer.sendClose(1000, '', { mask: true });
      await peer.waitForEnd();
      expect(await accepted.closed).to.deep.equal({ closeCode: 1000, reason: '' });
    });

    it('a Sec-WebSocket-Key that is not 16 bytes (or missing) gets 400', async () => {
      const { port } = await start();
      await expectRefusal(port, upgradeRequest({ headers: { 'Sec-WebSocket-Key': 'AAAA' } }), 400);
      await expectRefusal(port, upgradeRequest({ headers: { 'Sec-WebSocket-Key': Buffer.alloc(17).toString('base64') } }), 400);
      await expectRefusal(port, upgradeRequest({ headers: { 'Sec-WebSocket-Key': Buffer.alloc(15).toString('base64') } }), 400);
      await expectRefusal(port, upgradeRequest({ headers: { 'Sec-WebSocket-Key': null } }), 400);
    });

    it('version 8 (or none) gets 426 with Sec-WebSocket-Version: 13', async () => {
      const { port } = await start();
      const response = await expectRefusal(port, upgradeRequest({ headers: { 'Sec-WebSocket-Version': '8' } }), 426);
      expect(response.headers.get('sec-websocket-version')).to.equal('13');
      const none = await expectRefusal(port, upgradeRequest({ headers: { 'Sec-WebSocket-Version': null } }), 426);
      expect(none.headers.get('sec-websocket-version')).to.equal('13');
    });

    it('a path other than `path` gets 404', async () => {
      const { port } = await start({ path: '/ws' });
      await expectRefusal(port, upgradeRequest({ path: '/nope' }), 404);
      await expectRefusal(port, upgradeRequest({ path: '/ws/' }), 404);
    });

    it('a plain GET to a server that listens itself gets 426, honouring Connection: close', async () => {
      const { port } = await start();
      const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
        const request = http.get({ host: '127.0.0.1', port, path: '/', agent: false, headers: { Connection: 'close' } }, resolve);
        request.on('error', reject);
      });
      cleanups.push(() => response.socket?.destroy());
      response.resume();
      await once(response, 'end');
      expect(response.statusCode).to.equal(426);
      expect(response.headers.upgrade).to.equal('websocket');
      // RFC 9112 §9.6: the client asked to close; the server closes and says so.
      expect(response.headers.connection?.split(',').map((token) => token.trim().toLowerCase())).to.include('close');
    });

    it('verify returning false gets 403', async () => {
      const { server, port } = await start({ verify: () => false });
      await expectRefusal(port, upgradeRequest(), 403);
      expect(server.connectionCount).to.equal(0);
    });

    it('verify returning {status: 401, headers} gets 401 with those headers', async () => {
      const { port } = await start({ verify: () => ({ status: 401, headers: { 'WWW-Authenticate': 'Basic' } }) });
      const response = await expectRefusal(port, upgradeRequest(), 401);
      expect(response.headers.get('www-authenticate')).to.equal('Basic');
    });

    it('verify may be async, to accept and to refuse', async () => {
      const seen: string[] = [];
      const { server, port, url } = await start({
        verify: async (request) => {
          seen.push(request.url ?? '');
          await new Promise((resolve) => setImmediate(resolve));
          return request.headers['x-token'] === 'let-me-in';
        },
      });
      const acceptor = new Acceptor(server);
      await expectRefusal(port, upgradeRequest({ path: '/no-token' }), 403);
      const stream = client(`${url}/with-token`, { headers: { 'X-Token': 'let-me-in' } });
      await stream.opened;
      expect((await acceptor.next()).request.url).to.equal('/with-token');
      const refused = client(`${url}/wrong-token`, { headers: { 'X-Token': 'nope' } });
      const error = await refused.opened.then(
        () => null,
        (reason: unknown) => reason,
      );
      expect(error).to.be.an.instanceOf(WebSocketError);
      expect(seen).to.deep.equal(['/no-token', '/with-token', '/wrong-token']);
      stream.close();
      await stream.closed;
    });

    it('verify throwing (or rejecting) gets 500, and the server keeps working', async () => {
      let calls = 0;
      const { server, port, url } = await start({
        verify: (request) => {
          calls++;
          if (request.url === '/throw') throw new Error('verify blew up');
          if (request.url === '/reject') return Promise.reject(new Error('verify rejected'));
          return true;
        },
      });
      const acceptor = new Acceptor(server, (stream) => void echo(stream));
      await expectRefusal(port, upgradeRequest({ path: '/throw' }), 500);
      await expectRefusal(port, upgradeRequest({ path: '/reject' }), 500);
      const stream = client(`${url}/fine`);
      const { readable, writable } = await stream.opened;
      await writable.getWriter().write('still alive');
      expect((await readable.getReader().read()).value).to.equal('still alive');
      expect(calls).to.equal(3);
      expect((await acceptor.next()).request.url).to.equal('/fine');
      stream.close();
      await stream.closed;
    });

    it('maxConnections reached gets 503; room comes back when a connection closes', async () => {
      const { server, port, url } = await start({ maxConnections: 1 });
      const acceptor = new Acceptor(server);
      const first = client(url);
      await first.opened;
      const accepted = await acceptor.next();
      expect(server.connectionCount).to.equal(1);
      const response = await expectRefusal(port, upgradeRequest(), 503);
      expect(response.headers.get('retry-after')).to.equal('1');
      first.close();
      await accepted.closed;
      const second = client(url);
      await second.opened;
      second.close();
      await second.closed;
    });

    it('a handshake still in progress when the server closes gets 503', async () => {
      let letVerifyFinish!: () => void;
      let verifyCalled!: () => void;
      const called = new Promise<void>((resolve) => (verifyCalled = resolve));
      const { server, port } = await start({
        verify: () => {
          verifyCalled();
          return new Promise<boolean>((resolve) => (letVerifyFinish = () => resolve(true)));
        },
      });
      const exchange = rawExchange(port, upgradeRequest());
      await called;
      expect(server.connectionCount).to.equal(1);
      const closing = server.close();
      letVerifyFinish();
      const response = parseResponse((await exchange).text);
      expect(response.status).to.equal(503);
      await closing;
      expect(server.connectionCount).to.equal(0);
    });

    it('handleUpgrade on a server that is closing gets 503', async () => {
      const { server } = await start();
      const results: Array<Promise<ServerWebSocketStream | null>> = [];
      const httpServer = http.createServer();
      httpServer.on('upgrade', (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
        results.push(server.handleUpgrade(request, socket, head));
      });
      const port = await listen(httpServer);
      cleanups.push(() => closeServer(httpServer));
      await server.close();
      const response = await expectRefusal(port, upgradeRequest(), 503);
      expect(response.status).to.equal(503);
      expect(await results[0]!).to.equal(null);
    });

    it('refusals leave no connection counted', async () => {
      const { server, port } = await start({ path: '/ws', maxConnections: 5 });
      await rawExchange(port, upgradeRequest({ path: '/nope' }));
      await rawExchange(port, upgradeRequest({ path: '/ws', method: 'PUT' }));
      await rawExchange(port, upgradeRequest({ path: '/ws', headers: { 'Sec-WebSocket-Version': '7' } }));
      expect(server.connectionCount).to.equal(0);
    });
  });

  describe('subprotocols', () => {
    it('`protocols` picks the first protocol the client offered that the server lists', async () => {
      const { server, url } = await start({ protocols: ['b', 'c'] });
      const acceptor = new Acceptor(server);
      const stream = client(url, { protocols: ['a', 'c', 'b'] });
      expect((await stream.opened).protocol).to.equal('c');
      expect((await (await acceptor.next()).opened).protocol).to.equal('c');
      stream.close();
      await stream.closed;
    });

    it('with no common protocol the 101 has no Sec-WebSocket-Protocol, and our client (which offered some) fails', async () => {
      const { server, port, url } = await start({ protocols: ['x'] });
      const acceptor = new Acceptor(server);
      const { peer, response } = await rawConnect(port, { headers: { 'Sec-WebSocket-Protocol': 'a, b' } });
      expect(response.headers.has('sec-websocket-protocol')).to.equal(false);
      const rawAccepted = await acceptor.next();
      expect((await rawAccepted.opened).protocol).to.equal('');
      peer.sendClose(1000, '', { mask: true });
      await peer.waitForEnd();
      const stream = client(url, { protocols: ['a'] });
      const error = await stream.opened.then(
        () => null,
        (reason: unknown) => reason,
      );
      expect(error).to.be.an.instanceOf(WebSocketError);
      expect((error as WebSocketError).closeCode).to.equal(null);
      // A client that offered nothing is fine with no protocol.
      const plain = client(url);
      expect((await plain.opened).protocol).to.equal('');
      plain.close();
      await plain.closed;
    });

    it('selectProtocol (sync) gets the offered list and the request', async () => {
      const calls: Array<{ offered: string[]; url: string | undefined }> = [];
      const { url } = await start({
        selectProtocol: (offered, request) => {
          calls.push({ offered: [...offered], url: request.url });
          return offered[1];
        },
      });
      const stream = client(`${url}/sel`, { protocols: ['first', 'second', 'third'] });
      expect((await stream.opened).protocol).to.equal('second');
      expect(calls).to.deep.equal([{ offered: ['first', 'second', 'third'], url: '/sel' }]);
      stream.close();
      await stream.closed;
    });

    it('selectProtocol may be async', async () => {
      const { url } = await start({
        selectProtocol: async (offered) => {
          await new Promise((resolve) => setImmediate(resolve));
          return offered.includes('y') ? 'y' : null;
        },
      });
      const stream = client(url, { protocols: ['x', 'y'] });
      expect((await stream.opened).protocol).to.equal('y');
      stream.close();
      await stream.closed;
    });

    it('selectProtocol returning null sends no protocol', async () => {
      const { port } = await start({ selectProtocol: () => null });
      const { peer, response } = await rawConnect(port, { headers: { 'Sec-WebSocket-Protocol': 'a' } });
      expect(response.headers.has('sec-websocket-protocol')).to.equal(false);
      peer.sendClose(1000, '', { mask: true });
      await peer.waitForEnd();
    });

    it('selectProtocol returning a protocol that was not offered gets 500', async () => {
      const { server, port, url } = await start({ selectProtocol: () => 'never-offered' });
      const exchange = await rawExchange(port, upgradeRequest({ headers: { 'Sec-WebSocket-Protocol': 'a, b' } }));
      expect(parseResponse(exchange.text).status).to.equal(500);
      const stream = client(url, { protocols: ['a'] });
      const error = await stream.opened.then(
        () => null,
        (reason: unknown) => reason,
      );
      expect(error).to.be.an.instanceOf(WebSocketError);
      expect(server.connectionCount).to.equal(0);
    });

    it('selectProtocol throwing gets 500', async () => {
      const { port } = await start({
        selectProtocol: () => {
          throw new Error('no idea');
        },
      });
      const exchange = await rawExchange(port, upgradeRequest({ headers: { 'Sec-WebSocket-Protocol': 'a' } }));
      expect(parseResponse(exchange.text).status).to.equal(500);
    });

    it('an offered protocol that is not a token gets 400', async () => {
      const { port } = await start({ protocols: ['a'] });
      const exchange = await rawExchange(port, upgradeRequest({ headers: { 'Sec-WebSocket-Protocol': 'a, b/c' } }));
      expect(parseResponse(exchange.text).status).to.equal(400);
    });
  });

  describe('garbage and oversized heads', () => {
    /** A normal client still gets through: the server survived. */
    async function stillServes(url: string): Promise<void> {
      const stream = client(url);
      await stream.opened;
      stream.close();
      expect(await stream.closed).to.deep.equal({ closeCode: 1005, reason: '' });
    }

    it('random bytes get the connection closed, and the server keeps serving', async () => {
      const { server, port, url } = await start();
      for (const seed of [1, 2, 3, 0xdeadbeef]) {
        const exchange = await rawExchange(port, pseudoRandomBytes(4096, seed));
        expect(exchange.text).to.not.match(/^HTTP\/1\.1 101/);
      }
      const afterHead = await rawExchange(port, Buffer.concat([Buffer.from('GET / HTTP/1.1\r\n'), pseudoRandomBytes(2048, 7)]));
      expect(afterHead.text).to.not.match(/^HTTP\/1\.1 101/);
      expect(server.connectionCount).to.equal(0);
      await stillServes(url);
    });

    it('a malformed header line in an upgrade request gets 400, not a crash', async () => {
      const { port, url } = await start();
      const exchange = await rawExchange(port, upgradeRequest().replace('\r\n\r\n', '\r\nNo colon here\r\n\r\n'));
      expect(parseResponse(exchange.text).status).to.equal(400);
      await stillServes(url);
    });

    it('a 64 KiB header gets the connection closed without an upgrade', async () => {
      const { server, port, url } = await start();
      const exchange = await rawExchange(port, upgradeRequest({ headers: { 'X-Big': 'a'.repeat(64 * 1024) } }));
      // The server may reset the connection before its 431 arrives; it must never upgrade.
      if (exchange.text.length > 0) expect(parseResponse(exchange.text).status).to.equal(431);
      expect(server.connectionCount).to.equal(0);
      await stillServes(url);
    });

    it('maxHandshakeHead bounds the request head', async () => {
      const { port, url } = await start({ maxHandshakeHead: 4096 });
      const big = await rawExchange(port, upgradeRequest({ headers: { 'X-Big': 'a'.repeat(8192) } }));
      expect(big.text).to.not.match(/^HTTP\/1\.1 101/);
      const { peer } = await rawConnect(port, { headers: { 'X-Small': 'a'.repeat(1024) } });
      peer.sendClose(1000, '', { mask: true });
      await peer.waitForEnd();
      await stillServes(url);
    });

    it('an incomplete head left open (slowloris) is closed by the server after handshakeTimeout', async () => {
      const { server, port, url } = await start({ handshakeTimeout: 300 });
      const socket = net.connect(port, '127.0.0.1');
      // Runs before server.close(), which would otherwise wait for this socket.
      cleanups.push(() => socket.destroy());
      socket.on('error', () => {});
      let answer = '';
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
      socket.write('GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n');
      await once(socket, 'close');
      expect(answer).to.not.match(/^HTTP\/1\.1 101/);
      expect(server.connectionCount).to.equal(0);
      await stillServes(url);
    });

    it('a handshake whose verify never settles is refused after handshakeTimeout, and stops counting', async () => {
      let release: () => void = () => {};
      const { server, port, url } = await start({
        handshakeTimeout: 300,
        maxConnections: 1,
        verify: (request) => (request.url === '/stuck' ? new Promise<boolean>((resolve) => (release = () => resolve(true))) : true),
      });
      cleanups.push(() => release());
      const acceptor = new Acceptor(server);
      const exchange = await rawExchange(port, upgradeRequest({ path: '/stuck' }));
      expect(parseResponse(exchange.text).status).to.equal(503);
      // The refused handshake is over: it must not hold the only connection slot.
      const stream = client(`${url}/after`);
      const opened = await stream.opened.then(
        () => 'opened',
        (error: unknown) => `refused: ${String((error as Error).message)}`,
      );
      expect(opened).to.equal('opened');
      const accepted = await acceptor.next();
      expect(accepted.request.url).to.equal('/after');
      stream.close();
      await accepted.closed;
    });
  });

  describe('graceful shutdown', () => {
    it('closes 50 of our clients and 3 ws clients with 1001, resolves, and ends `connections`', async () => {
      const { server, port, url } = await start();
      const acceptor = new Acceptor(server, (stream) => void echo(stream));
      const ours = Array.from({ length: 50 }, (_, i) => client(`${url}/c${i}`));
      const theirs = Array.from({ length: 3 }, () => new WebSocket(url));
      cleanups.push(() => theirs.forEach(terminate));
      const theirCloses = theirs.map((socket) => once(socket, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason) })));
      await Promise.all([...ours.map((stream) => stream.opened), ...theirs.map((socket) => once(socket, 'open'))]);
      const accepted: ServerWebSocketStream[] = [];
      for (let i = 0; i < 53; i++) accepted.push(await acceptor.next());
      expect(server.connectionCount).to.equal(53);
      // The connections work before the shutdown.
      const { readable, writable } = await ours[7]!.opened;
      await writable.getWriter().write('before shutdown');
      expect((await readable.getReader().read()).value).to.equal('before shutdown');

      await server.close();
      expect(server.connectionCount).to.equal(0);
      await acceptor.done;
      expect(acceptor.all).to.have.length(53);
      for (const stream of ours) expect(await stream.closed).to.deep.equal({ closeCode: 1001, reason: '' });
      expect(await Promise.all(theirCloses)).to.deep.equal(theirs.map(() => ({ code: 1001, reason: '' })));
      for (const stream of accepted) expect(await stream.closed).to.deep.equal({ closeCode: 1001, reason: '' });
      // It no longer listens.
      const refused = net.connect(port, '127.0.0.1');
      const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
      expect(error.code).to.equal('ECONNREFUSED');
    });

    it('close({closeCode: 4000, reason: \'bye\'}) uses that code; a second close() is harmless', async () => {
      const { server, url } = await start();
      const acceptor = new Acceptor(server);
      const ours = client(url);
      const theirs = new WebSocket(url);
      cleanups.push(() => terminate(theirs));
      const theirClose = once(theirs, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason) }));
      await Promise.all([ours.opened, once(theirs, 'open')]);
      await acceptor.next();
      await acceptor.next();
      const closing = server.close({ closeCode: 4000, reason: 'bye' });
      const again = server.close();
      await Promise.all([closing, again]);
      expect(await ours.closed).to.deep.equal({ closeCode: 4000, reason: 'bye' });
      expect(await theirClose).to.deep.equal({ code: 4000, reason: 'bye' });
      await acceptor.done;
    });

    it('invalid close codes and over-long reasons throw RangeError and leave the server running', async () => {
      const { server, url } = await start();
      const acceptor = new Acceptor(server);
      const stream = client(url);
      await stream.opened;
      await acceptor.next();
      for (const closeCode of [0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535, 1000.5, Number.NaN]) {
        expect(() => server.close({ closeCode }), `closeCode ${closeCode}`).to.throw(RangeError);
      }
      expect(() => server.close({ reason: 'x'.repeat(124) })).to.throw(RangeError);
      expect(() => server.close({ closeCode: 4000, reason: '€'.repeat(42) })).to.throw(RangeError);
      // Still serving.
      const second = client(url);
      await second.opened;
      await acceptor.next();
      expect(server.connectionCount).to.equal(2);
      await server.close();
      expect(await stream.closed).to.deep.equal({ closeCode: 1001, reason: '' });
      expect(await second.closed).to.deep.equal({ closeCode: 1001, reason: '' });
    });
  });

  describe('graceful shutdown, edge cases', () => {
    it('a client that never answers the close frame does not hold close() beyond closeTimeout', async () => {
      const { server, port, url } = await start({ closeTimeout: 200 });
      const acceptor = new Acceptor(server);
      const { peer } = await rawConnect(port);
      const ours = client(url);
      await ours.opened;
      await acceptor.next();
      await acceptor.next();
      await server.close();
      expect(closeFrameOf(await peer.nextFrame())).to.deep.equal({ code: 1001, reason: '' });
      await peer.closed;
      expect(await ours.closed).to.deep.equal({ closeCode: 1001, reason: '' });
      expect(server.connectionCount).to.equal(0);
    });

    it('handshakes waiting for room in `connections` get 503 on close; queued streams get 1001', async () => {
      let verifies = 0;
      let onSecondVerify: () => void = () => {};
      const { server, url } = await start({
        acceptBacklog: 1,
        verify: () => {
          if (++verifies === 2) onSecondVerify();
          return true;
        },
      });
      const first = client(url);
      await first.opened;
      const secondVerified = new Promise<void>((resolve) => (onSecondVerify = resolve));
      const second = client(url);
      await secondVerified;
      await server.close();
      expect(await first.closed).to.deep.equal({ closeCode: 1001, reason: '' });
      const error = await second.opened.then(
        () => null,
        (reason: unknown) => reason,
      );
      expect(error).to.be.an.instanceOf(WebSocketError);
      expect(String((error as Error).message)).to.include('503');
      expect(server.connectionCount).to.equal(0);
      // The stream accepted before the shutdown is still handed out, already closed.
      const reader = server.connections.getReader();
      const queued = await reader.read();
      expect(queued.value).to.be.an.instanceOf(ServerWebSocketStream);
      expect(await queued.value!.closed).to.deep.equal({ closeCode: 1001, reason: '' });
      expect((await reader.read()).done).to.equal(true);
    });

    it('breaking out of a for-await over `connections` stops accepting: later handshakes are refused', async () => {
      const { server, url } = await start();
      const first = client(url);
      let taken: ServerWebSocketStream | null = null;
      for await (const stream of server.connections as unknown as AsyncIterable<ServerWebSocketStream>) {
        taken = stream;
        break;
      }
      expect(taken).to.be.an.instanceOf(ServerWebSocketStream);
      await first.opened;
      const second = client(url);
      const error = await second.opened.then(
        () => null,
        (reason: unknown) => reason,
      );
      expect(error).to.be.an.instanceOf(WebSocketError);
      // The connection already taken keeps working.
      first.close({ closeCode: 1000, reason: 'still fine' });
      expect(await taken!.closed).to.deep.equal({ closeCode: 1000, reason: 'still fine' });
    });
  });

  describe('backpressure', () => {
    it('a client that does not read keeps the server\'s 8 MiB write pending until it reads', async () => {
      const { server, port } = await start();
      const acceptor = new Acceptor(server);
      const { peer, socket } = await rawConnect(port);
      socket.pause();
      const accepted = await acceptor.next();
      const writer = (await accepted.opened).writable.getWriter();
      const payload = bytesOf(8 * MiB, 3);
      const write = writer.write(payload);
      const probe = client(`ws://127.0.0.1:${port}/probe`);
      await probe.opened;
      void echo(await acceptor.next());
      const { readable: probeReadable, writable: probeWritable } = await probe.opened;
      const probeWriter = probeWritable.getWriter();
      const probeReader = probeReadable.getReader();
      for (let i = 0; i < 10; i++) {
        await probeWriter.write(`probe ${i}`);
        expect((await probeReader.read()).value).to.equal(`probe ${i}`);
      }
      expect(await stateOf(write)).to.equal('pending');
      expect(await stateOf(writer.ready)).to.equal('pending');
      socket.resume();
      await write;
      const frame = await peer.nextFrame();
      expect(frame.opcode).to.equal(OP.BINARY);
      expect(frame.payload.equals(Buffer.from(payload))).to.equal(true);
      accepted.close();
      probe.close();
      await peer.nextFrame();
      peer.sendClose(undefined, '', { mask: true });
      expect(await accepted.closed).to.deep.equal({ closeCode: 1005, reason: '' });
      await probe.closed;
    });

    it('a server that does not read pauses the socket: the client\'s writes stop completing until it reads', async () => {
      const { server, url } = await start();
      const acceptor = new Acceptor(server);
      const bulk = client(`${url}/bulk`);
      const accepted = await acceptor.next();
      const probe = client(`${url}/probe`);
      void echo(await acceptor.next());
      const { readable: probeReadable, writable: probeWritable } = await probe.opened;
      const probeWriter = probeWritable.getWriter();
      const probeReader = probeReadable.getReader();
      let probes = 0;
      const roundTrips = async (n: number): Promise<void> => {
        for (let i = 0; i < n; i++) {
          await probeWriter.write(`probe ${probes}`);
          expect((await probeReader.read()).value).to.equal(`probe ${probes}`);
          probes++;
        }
      };

      const writer = (await bulk.opened).writable.getWriter();
      const chunk = bytesOf(256 * 1024, 9);
      let completed = 0;
      let stalled: Promise<void> | null = null;
      while (stalled === null) {
        const write = writer.write(chunk);
        if ((await stateOf(write)) === 'pending') await roundTrips(5);
        if ((await stateOf(write)) === 'pending') stalled = write;
        else completed++;
        // Without backpressure the server would take everything; stop long before memory runs out.
        expect(completed * chunk.byteLength, 'bytes the client could send to a server that reads nothing').to.be.below(256 * MiB);
      }
      await roundTrips(10);
      expect(await stateOf(stalled)).to.equal('pending');
      expect(await stateOf(writer.ready)).to.equal('pending');

      // Reading on the server side resumes the client's writes.
      const reader = (await accepted.opened).readable.getReader();
      let received = 0;
      while (received < (completed + 1) * chunk.byteLength) {
        const { value } = await reader.read();
        const message = value as Uint8Array;
        expect(message.byteLength).to.equal(chunk.byteLength);
        received += message.byteLength;
      }
      await stalled;
      await writer.write('after the stall');
      expect((await reader.read()).value).to.equal('after the stall');
      bulk.close();
      probe.close();
      expect(await accepted.closed).to.deep.equal({ closeCode: 1005, reason: '' });
      await Promise.all([bulk.closed, probe.closed]);
    });

    it('with acceptBacklog: 1 and nobody reading `connections`, the next handshake waits for a read', async () => {
      const verified: string[] = [];
      let onVerify: () => void = () => {};
      const { server, port, url } = await start({
        acceptBacklog: 1,
        verify: (request) => {
          verified.push(request.url ?? '');
          onVerify();
          return true;
        },
      });
      const first = client(`${url}/first`);
      await first.opened;
      const secondVerified = new Promise<void>((resolve) => (onVerify = resolve));
      const second = client(`${url}/second`);
      await secondVerified;
      await httpRoundTrips(port, 3);
      expect(await stateOf(second.opened)).to.equal('pending');
      expect(server.connectionCount).to.equal(2);
      const reader = server.connections.getReader();
      const one = await reader.read();
      expect(one.value?.request.url).to.equal('/first');
      await second.opened;
      const two = await reader.read();
      expect(two.value?.request.url).to.equal('/second');
      reader.releaseLock();
      expect(verified).to.deep.equal(['/first', '/second']);
      first.close();
      second.close();
      await Promise.all([first.closed, second.closed]);
    });
  });
});
