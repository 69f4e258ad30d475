// Chromium's WebSockets over HTTP/2 (RFC 8441) against our server. Chromium opens a WebSocket as
// a stream of the HTTP/2 connection it already has to the origin when that connection's SETTINGS
// enable extended CONNECT; otherwise it makes an HTTP/1.1 connection for it. The page here is
// served over HTTPS by an http2 secure server (allowHTTP1) with our WebSocketStreamServer attached.
import { expect } from 'chai';
import type { Browser, Page } from 'playwright-core';
import type { WebSocketStreamServerOptions } from '../../../lib/index.js';
import { inPage, launchChromium, openTestPage, serverEcho, sha256, TestServer, type Accepted, type ServerChunkInfo, type TestServerSetup } from './harness.js';
import { makePayload, type ChunkInfo, type PayloadKind } from './page.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const BROWSER_BINARY_TYPES = ['Uint8Array', 'ArrayBuffer'];

function expectMessage(where: string, info: ChunkInfo | ServerChunkInfo | null | undefined, kind: PayloadKind, size: number, seed: number, compressible = false): void {
  expect(info, `${where}: a message`).to.not.equal(null);
  if (kind === 'text') expect(info!.type, `${where}: type`).to.equal('string');
  else expect([...BROWSER_BINARY_TYPES], `${where}: type ${info!.type}`).to.include(info!.type);
  expect(info!.length, `${where}: length`).to.equal(size);
  expect(info!.digest, `${where}: SHA-256`).to.equal(sha256(makePayload(kind, size, seed, compressible)));
}

describe('Chromium over HTTP/2 (RFC 8441) ↔ our WebSocketStreamServer', function () {
  this.timeout(60_000);

  let browser: Browser | undefined;
  let cleanups: Array<() => unknown> = [];

  before(async () => {
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    browser = undefined;
  });

  afterEach(async () => {
    const pending = cleanups;
    cleanups = [];
    while (pending.length > 0) {
      try {
        await pending.pop()!();
      } catch {
        // Keep cleaning up.
      }
    }
  });

  async function startServer(options: Omit<WebSocketStreamServerOptions, 'server' | 'port' | 'host' | 'tls' | 'http2'> = {}, setup: TestServerSetup = { http2: { attach: true } }): Promise<TestServer> {
    const server = await new TestServer(options, setup).listen();
    cleanups.push(() => server.close());
    return server;
  }

  async function newPage(server: TestServer): Promise<Page> {
    const page = await openTestPage(browser!, server);
    cleanups.push(() => page.close());
    return page;
  }

  async function connect(server: TestServer, page?: Page, protocols?: string[]): Promise<{ page: Page; id: number; protocol: string; extensions: string; accepted: Accepted; log: ServerChunkInfo[] }> {
    const onPage = page ?? (await newPage(server));
    const [opened, accepted] = await Promise.all([inPage(onPage, 'open', server.wsUrl, ...(protocols === undefined ? [] : [protocols])), server.next()]);
    const log: ServerChunkInfo[] = [];
    void serverEcho(accepted.stream, log);
    return { page: onPage, id: opened.id, protocol: opened.protocol, extensions: opened.extensions, accepted, log };
  }

  it('opens its WebSocketStream as a stream of the page\'s HTTP/2 connection: one TCP connection for page and WebSocket', async () => {
    const server = await startServer();
    const page = await newPage(server);
    expect(server.sessionCount, 'the page came over HTTP/2').to.equal(1);
    const before = server.connectionCount;
    const { accepted, id } = await connect(server, page);
    const request = accepted.stream.request;
    expect(request.httpVersion, 'the WebSocket came as an extended CONNECT').to.equal('2.0');
    expect(request.headers[':protocol']).to.equal('websocket');
    expect(request.headers[':method']).to.equal('CONNECT');
    expect(request.headers).to.not.have.property('sec-websocket-key');
    expect(accepted.stream.url).to.equal(server.wsUrl);
    expect(server.connectionCount, 'no new TCP connection for the WebSocket').to.equal(before);
    const { sent, received } = await inPage(page, 'echo', id, 'text', 100, 1, false);
    expectMessage('the page sent', sent, 'text', 100, 1);
    expectMessage('the page got back', received, 'text', 100, 1);
  });

  for (const [kind, size] of [['text', 0], ['binary', 125], ['text', 65_536], ['binary', MiB], ['binary', 16 * MiB]] as Array<[PayloadKind, number]>) {
    it(`echoes a ${size}-byte ${kind} message over the stream (checksums on both sides)`, async () => {
      const server = await startServer();
      const { page, id, log } = await connect(server);
      const seed = size + 5;
      const { sent, received } = await inPage(page, 'echo', id, kind, size, seed, false);
      expectMessage('the page sent', sent, kind, size, seed);
      expect(log).to.have.length(1);
      expectMessage('our server received', log[0], kind, size, seed);
      expectMessage('the browser received back', received, kind, size, seed);
    });
  }

  it('subprotocols and permessage-deflate are negotiated in the HTTP/2 headers (RFC 8441 §5), compressed both ways', async () => {
    const server = await startServer({ protocols: ['chat.v2'], perMessageDeflate: true });
    const { page, id, protocol, extensions, accepted, log } = await connect(server, undefined, ['chat.v1', 'chat.v2']);
    expect(accepted.stream.request.headers['sec-websocket-protocol']).to.equal('chat.v1, chat.v2');
    expect(protocol).to.equal('chat.v2');
    expect(accepted.stream.request.headers['sec-websocket-extensions']).to.match(/^permessage-deflate\b/);
    expect(extensions).to.match(/^permessage-deflate\b/);
    const readBefore = accepted.socket.bytesRead;
    const { sent, received } = await inPage(page, 'sendMany', id, [['text', 4 * MiB, 7, true], ['binary', MiB, 8, true]]);
    expectMessage('sent', sent[0], 'text', 4 * MiB, 7, true);
    expectMessage('our server received', log[0], 'text', 4 * MiB, 7, true);
    expectMessage('echoed', received[0], 'text', 4 * MiB, 7, true);
    expectMessage('echoed', received[1], 'binary', MiB, 8, true);
    expect(accepted.socket.bytesRead - readBefore, 'bytes from Chromium on the connection').to.be.below((5 * MiB) / 20);
  });

  it('close codes both ways: the browser\'s 4000 and our 4001, each ending its stream alone', async () => {
    const server = await startServer();
    const page = await newPage(server);
    const first = await connect(server, page);
    const second = await connect(server, page);
    expect(first.accepted.socket, 'both on one connection').to.equal(second.accepted.socket);
    expect(await inPage(page, 'close', first.id, { closeCode: 4000, reason: 'browser ✓' })).to.equal(null);
    expect(await first.accepted.stream.closed).to.deep.equal({ closeCode: 4000, reason: 'browser ✓' });
    expect(await inPage(page, 'closed', first.id)).to.deep.equal({ settled: 'fulfilled', closeCode: 4000, reason: 'browser ✓' });
    // The other WebSocket on the same connection carries on.
    const { received } = await inPage(page, 'echo', second.id, 'binary', 1000, 3, false);
    expectMessage('still echoing', received, 'binary', 1000, 3);
    second.accepted.stream.close({ closeCode: 4001, reason: 'server ✓' });
    expect(await inPage(page, 'closed', second.id)).to.deep.equal({ settled: 'fulfilled', closeCode: 4001, reason: 'server ✓' });
    expect(await second.accepted.stream.closed).to.deep.equal({ closeCode: 4001, reason: 'server ✓' });
    expect(server.sessionCount, 'the page\'s HTTP/2 connection outlives its WebSockets').to.equal(1);
  });

  it('server.close(): the browser sees 1001', async () => {
    const server = await startServer();
    const { page, id } = await connect(server);
    await server.wss.close();
    expect(await inPage(page, 'closed', id)).to.deep.equal({ settled: 'fulfilled', closeCode: 1001, reason: '' });
  });

  it('the classic WebSocket API goes over HTTP/2 too', async () => {
    const server = await startServer();
    const page = await newPage(server);
    const [result, accepted] = await Promise.all([
      page.evaluate(async (url) => {
        const socket = new WebSocket(url);
        await new Promise((resolve, reject) => {
          socket.onopen = resolve;
          socket.onerror = reject;
        });
        const echoed = new Promise<string>((resolve) => (socket.onmessage = (event) => resolve(String(event.data))));
        socket.send('classic');
        const text = await echoed;
        const closed = new Promise<number>((resolve) => (socket.onclose = (event) => resolve(event.code)));
        socket.close(4005);
        return { text, code: await closed };
      }, server.wsUrl),
      server.next().then((next) => {
        void serverEcho(next.stream, []);
        return next;
      }),
    ]);
    expect(accepted.stream.request.httpVersion).to.equal('2.0');
    expect(result).to.deep.equal({ text: 'classic', code: 4005 });
  });

  it('without extended CONNECT on the page\'s connection, Chromium opens the WebSocket over HTTP/1.1 on a new connection', async () => {
    const server = await startServer({}, { http2: { attach: false } });
    const page = await newPage(server);
    expect(server.sessionCount, 'the page came over HTTP/2').to.equal(1);
    const before = server.connectionCount;
    const { accepted, id } = await connect(server, page);
    expect(accepted.stream.request.httpVersion).to.equal('1.1');
    expect(server.connectionCount, 'a TCP connection of its own').to.be.above(before);
    const { received } = await inPage(page, 'echo', id, 'text', 10, 2, false);
    expectMessage('echo over HTTP/1.1', received, 'text', 10, 2);
  });
});
