// Our client against a real `ws` server (v8): the interop peer most Node servers run.
import { expect } from 'chai';
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type ServerOptions, type WebSocket as WsSocket } from 'ws';
import { WebSocketError, WebSocketStream, type WebSocketStreamOptions } from '../../lib/index.js';
import { patternBytes, rejectionOf, textOfBytes } from '../helpers/conn.js';
import { testCert, testKey } from '../helpers/raw-peer.js';

type Message = string | Uint8Array;

interface WsHarness {
  url: string;
  server: WebSocketServer;
  /** Resolves with the next server-side connection. */
  connection(): Promise<WsSocket>;
}

const cleanups: Array<() => Promise<void>> = [];

function collectConnections(server: WebSocketServer): () => Promise<WsSocket> {
  const pending: WsSocket[] = [];
  const waiting: Array<(socket: WsSocket) => void> = [];
  server.on('connection', (socket) => {
    socket.on('error', () => {});
    const waiter = waiting.shift();
    if (waiter) waiter(socket);
    else pending.push(socket);
  });
  return () => {
    const socket = pending.shift();
    if (socket) return Promise.resolve(socket);
    return new Promise((resolve) => waiting.push(resolve));
  };
}

function closeServer(server: WebSocketServer): Promise<void> {
  for (const client of server.clients) client.terminate();
  return new Promise((resolve) => server.close(() => resolve()));
}

async function startWs(options: ServerOptions = {}): Promise<WsHarness> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, ...options });
  await once(server, 'listening');
  cleanups.push(() => closeServer(server));
  const { port } = server.address() as AddressInfo;
  return { url: `ws://127.0.0.1:${port}/`, server, connection: collectConnections(server) };
}

/** A ws server that echoes every message with its type. */
async function startEcho(options: ServerOptions = {}): Promise<WsHarness> {
  const harness = await startWs(options);
  harness.server.on('connection', (socket) => {
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
  });
  return harness;
}

function expectOwnBytes(chunk: unknown, expected: Uint8Array): void {
  expect(chunk).to.be.an.instanceOf(Uint8Array);
  const bytes = chunk as Uint8Array;
  expect(Object.getPrototypeOf(bytes)).to.equal(Uint8Array.prototype);
  expect(bytes.byteOffset).to.equal(0);
  expect(bytes.buffer.byteLength).to.equal(bytes.byteLength);
  expect(bytes.byteLength).to.equal(expected.byteLength);
  expect(Buffer.from(bytes.buffer, 0, bytes.byteLength).equals(expected), 'content').to.equal(true);
}

async function readOne(reader: ReadableStreamDefaultReader<Message>): Promise<Message> {
  const { value, done } = await reader.read();
  expect(done, 'readable ended early').to.equal(false);
  return value!;
}

/** Our close, ws's echo, TCP closed: `closed` resolves with the code we sent (ws echoes it). */
async function closeCleanly(wss: WebSocketStream, serverSide: WsSocket, code = 1000, reason = 'done'): Promise<void> {
  const seen = once(serverSide, 'close');
  wss.close({ closeCode: code, reason });
  const [wsCode, wsReason] = (await seen) as [number, Buffer];
  expect(wsCode).to.equal(code);
  expect(wsReason.toString()).to.equal(reason);
  expect(await wss.closed).to.deep.equal({ closeCode: code, reason });
}

async function connect(harness: WsHarness, options: WebSocketStreamOptions = {}) {
  const wss = new WebSocketStream(harness.url, options);
  const opened = await wss.opened;
  const serverSide = await harness.connection();
  return { wss, serverSide, ...opened };
}

describe('interop: our client against a ws server', () => {
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  describe('echo', () => {
    for (const size of [0, 1, 125, 126, 65535, 65536, 1024 * 1024, 16 * 1024 * 1024]) {
      it(`echoes ${size}-byte text and binary messages`, async function () {
        this.timeout(20000);
        const harness = await startEcho();
        const { wss, serverSide, readable, writable } = await connect(harness);
        const writer = writable.getWriter();
        const reader = readable.getReader();
        const text = textOfBytes(size);
        const binary = patternBytes(size, size + 11);
        const [, echoedText] = await Promise.all([writer.write(text), readOne(reader)]);
        expect(typeof echoedText).to.equal('string');
        expect(echoedText === text, 'echoed text equals the sent text').to.equal(true);
        const [, echoedBinary] = await Promise.all([writer.write(binary), readOne(reader)]);
        expectOwnBytes(echoedBinary, binary);
        writer.releaseLock();
        await closeCleanly(wss, serverSide);
      });
    }

    it('echoes 1000 small messages in order', async () => {
      const harness = await startEcho();
      const { wss, serverSide, readable, writable } = await connect(harness);
      const writer = writable.getWriter();
      const reader = readable.getReader();
      const writes: Array<Promise<void>> = [];
      for (let i = 0; i < 1000; i++) writes.push(writer.write(i % 3 === 0 ? new Uint8Array([i & 0xff, i >> 8]) : `message ${i}`));
      for (let i = 0; i < 1000; i++) {
        const message = await readOne(reader);
        if (i % 3 === 0) expectOwnBytes(message, new Uint8Array([i & 0xff, i >> 8]));
        else expect(message).to.equal(`message ${i}`);
      }
      await Promise.all(writes);
      await closeCleanly(wss, serverSide);
    });

    it('reassembles a message ws sends in fragments', async () => {
      const harness = await startWs();
      const { wss, serverSide, readable } = await connect(harness);
      serverSide.send('frag', { fin: false });
      serverSide.send('men', { fin: false });
      serverSide.send('ted', { fin: true });
      serverSide.send(Buffer.from([1, 2]), { binary: true, fin: false });
      serverSide.send(Buffer.from([3]), { binary: true, fin: true });
      const reader = readable.getReader();
      expect(await readOne(reader)).to.equal('fragmented');
      expectOwnBytes(await readOne(reader), new Uint8Array([1, 2, 3]));
      await closeCleanly(wss, serverSide);
    });
  });

  describe('closing', () => {
    it('client close({closeCode: 4000, reason}): ws sees 4000 and the reason, closed resolves', async () => {
      const harness = await startWs();
      const { wss, serverSide } = await connect(harness);
      await closeCleanly(wss, serverSide, 4000, 'client says bye é');
    });

    it('client close() with no code: ws sees 1005, closed resolves with 1005', async () => {
      const harness = await startWs();
      const { wss, serverSide } = await connect(harness);
      const seen = once(serverSide, 'close');
      wss.close();
      const [code, reason] = (await seen) as [number, Buffer];
      expect(code).to.equal(1005);
      expect(reason.length).to.equal(0);
      expect(await wss.closed).to.deep.equal({ closeCode: 1005, reason: '' });
    });

    it("ws close(4002, 'x'): closed resolves {closeCode: 4002, reason: 'x'}, the readable closes", async () => {
      const harness = await startWs();
      const { wss, serverSide, readable } = await connect(harness);
      const seen = once(serverSide, 'close');
      serverSide.send('before the close');
      serverSide.close(4002, 'x');
      expect(await wss.closed).to.deep.equal({ closeCode: 4002, reason: 'x' });
      const [code, reason] = (await seen) as [number, Buffer];
      // ws reports the code of the close frame it received: our echo.
      expect(code).to.equal(4002);
      expect(reason.toString()).to.equal('x');
      const reader = readable.getReader();
      expect(await readOne(reader)).to.equal('before the close');
      expect(await reader.read()).to.deep.equal({ value: undefined, done: true });
    });

    it('ws close(1001): closed resolves with closeCode 1001', async () => {
      const harness = await startWs();
      const { wss, serverSide } = await connect(harness);
      serverSide.close(1001);
      expect(await wss.closed).to.deep.equal({ closeCode: 1001, reason: '' });
    });

    it('ws close() with no code: closed resolves with closeCode 1005', async () => {
      const harness = await startWs();
      const { wss, serverSide } = await connect(harness);
      serverSide.close();
      expect(await wss.closed).to.deep.equal({ closeCode: 1005, reason: '' });
    });

    it('ws terminate(): closed rejects with a WebSocketError, closeCode 1006, and the readable errors with it', async () => {
      const harness = await startWs();
      const { wss, serverSide, readable } = await connect(harness);
      const reader = readable.getReader();
      serverSide.terminate();
      const error = await rejectionOf(wss.closed);
      expect(error).to.be.an.instanceOf(WebSocketError);
      expect((error as WebSocketError).closeCode).to.equal(1006);
      expect((error as WebSocketError).reason).to.equal('');
      expect(await rejectionOf(reader.read())).to.equal(error);
    });
  });

  describe('pings, subprotocols, TLS and limits', () => {
    it('answers ws pings with pongs carrying the payload', async () => {
      const harness = await startWs();
      const { wss, serverSide } = await connect(harness);
      for (const payload of [Buffer.alloc(0), Buffer.from('ping payload'), patternBytes(125, 3)]) {
        const pong = once(serverSide, 'pong');
        serverSide.ping(payload);
        const [data] = (await pong) as [Buffer];
        expect(data.equals(payload)).to.equal(true);
      }
      await closeCleanly(wss, serverSide);
    });

    it('negotiates a subprotocol chosen by ws handleProtocols', async () => {
      const offered: string[][] = [];
      const harness = await startWs({
        handleProtocols: (protocols) => {
          offered.push([...protocols]);
          return protocols.has('chat.v2') ? 'chat.v2' : false;
        },
      });
      const { wss, serverSide, protocol, extensions } = await connect(harness, { protocols: ['chat.v1', 'chat.v2'] });
      expect(offered).to.deep.equal([['chat.v1', 'chat.v2']]);
      expect(protocol).to.equal('chat.v2');
      expect(extensions).to.equal('');
      expect(serverSide.protocol).to.equal('chat.v2');
      await closeCleanly(wss, serverSide);
    });

    it('fails the handshake when ws selects none of the offered subprotocols', async () => {
      const harness = await startWs({ handleProtocols: () => false });
      const wss = new WebSocketStream(harness.url, { protocols: ['chat.v1'] });
      const openedError = await rejectionOf(wss.opened);
      expect(openedError).to.be.an.instanceOf(WebSocketError);
      expect((openedError as WebSocketError).closeCode).to.equal(null);
      const closedError = await rejectionOf(wss.closed);
      expect(closedError).to.be.an.instanceOf(WebSocketError);
      expect((closedError as WebSocketError).closeCode).to.equal(1006);
      expect(closedError).to.not.equal(openedError);
    });

    describe('wss:// with ws over https', () => {
      async function startSecureEcho(): Promise<{ port: number; connection: () => Promise<WsSocket> }> {
        const httpsServer = https.createServer({ cert: testCert, key: testKey });
        const server = new WebSocketServer({ server: httpsServer });
        const connection = collectConnections(server);
        server.on('connection', (socket) => socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary })));
        httpsServer.listen(0, '127.0.0.1');
        await once(httpsServer, 'listening');
        cleanups.push(async () => {
          await closeServer(server);
          httpsServer.closeAllConnections();
          await new Promise<void>((resolve) => httpsServer.close(() => resolve()));
        });
        return { port: (httpsServer.address() as AddressInfo).port, connection };
      }

      for (const host of ['127.0.0.1', 'localhost']) {
        it(`echoes over TLS to ${host} with tls: {ca}`, async () => {
          const { port, connection } = await startSecureEcho();
          const wss = new WebSocketStream(`wss://${host}:${port}/secure`, { tls: { ca: testCert } });
          const { readable, writable } = await wss.opened;
          const serverSide = await connection();
          const writer = writable.getWriter();
          const reader = readable.getReader();
          await writer.write('over TLS');
          expect(await readOne(reader)).to.equal('over TLS');
          const big = patternBytes(1024 * 1024, 8);
          const [, echoed] = await Promise.all([writer.write(big), readOne(reader)]);
          expectOwnBytes(echoed, big);
          await closeCleanly(wss, serverSide);
        });
      }

      it('rejects a certificate it does not trust: opened closeCode null, closed 1006', async () => {
        const { port } = await startSecureEcho();
        const wss = new WebSocketStream(`wss://127.0.0.1:${port}/`);
        const openedError = await rejectionOf(wss.opened);
        expect(openedError).to.be.an.instanceOf(WebSocketError);
        expect((openedError as WebSocketError).closeCode).to.equal(null);
        const closedError = await rejectionOf(wss.closed);
        expect((closedError as WebSocketError).closeCode).to.equal(1006);
      });
    });

    // ws answers a message over its maxPayload with a 1009 close frame and ends TCP; we echo the
    // close, and every write was flushed before TCP closed, so the close is clean (docs/semantics.md#clean-and-unclean-closes):
    // `closed` resolves with 1009 rather than rejecting.
    for (const size of [4096, 8 * 1024 * 1024]) {
      it(`a ${size}-byte message over ws maxPayload: ws closes with 1009, closed resolves with closeCode 1009`, async () => {
        const harness = await startWs({ maxPayload: 1024 });
        const { wss, serverSide, writable, readable } = await connect(harness);
        const wsError = once(serverSide, 'error');
        // events.once() would reject on ws's 'error' event: listen for 'close' directly.
        const wsClose = new Promise<number>((resolve) => serverSide.on('close', (code: number) => resolve(code)));
        const writer = writable.getWriter();
        const write = writer.write(new Uint8Array(size));
        const [error] = (await wsError) as [Error & { code?: string }];
        expect(error.code).to.equal('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH');
        expect(await wss.closed).to.deep.equal({ closeCode: 1009, reason: '' });
        // The write was flushed before TCP closed (ws drains what it no longer parses).
        await write;
        // ws stopped parsing at the oversized frame, so it never reads our echo and reports 1006.
        expect(await wsClose).to.equal(1006);
        expect(await readable.getReader().read()).to.deep.equal({ value: undefined, done: true });
        const writableError = await rejectionOf(writer.closed);
        expect(writableError).to.be.an.instanceOf(DOMException);
        expect((writableError as DOMException).name).to.equal('InvalidStateError');
      });
    }
  });
});
