// A real browser as a peer: Debian's headless Chromium (through playwright-core) loads a page from
// our http.Server, and the browser's own WebSocketStream talks to our WebSocketStreamServer.
import { expect } from 'chai';
import type { Browser, Page } from 'playwright-core';
import type { WebSocketStreamServerOptions } from '../../../lib/index.js';
import { inPage, launchChromium, openTestPage, serverEcho, sha256, TestServer, type Accepted, type ServerChunkInfo } from './harness.js';
import { makePayload, type ChunkInfo, type PayloadKind } from './page.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Sizes around every frame-length boundary (7-bit, 16-bit, 64-bit lengths), up to 16 MiB. */
const SIZES = [0, 1, 125, 126, 65535, 65536, MiB, 16 * MiB];

/** Chromium builds without WebSocketStreamStandardBinaryChunkType still yield ArrayBuffer. */
const BROWSER_BINARY_TYPES = ['Uint8Array', 'ArrayBuffer'];

/** The digest of a payload as computed in Node, independently of the page. */
function expectedDigest(kind: PayloadKind, size: number, seed: number, compressible = false): string {
  return sha256(makePayload(kind, size, seed, compressible));
}

function expectMessage(where: string, info: ChunkInfo | ServerChunkInfo | null | undefined, kind: PayloadKind, size: number, digest: string, binaryTypes: string[]): void {
  expect(info, `${where}: a message`).to.not.equal(null);
  expect(info, `${where}: a message`).to.not.equal(undefined);
  if (kind === 'text') expect(info!.type, `${where}: type`).to.equal('string');
  else expect(binaryTypes, `${where}: type ${info!.type}`).to.include(info!.type);
  expect(info!.length, `${where}: length`).to.equal(size);
  expect(info!.digest, `${where}: SHA-256 of ${size} bytes`).to.equal(digest);
}

describe('a real browser as a peer (Chromium WebSocketStream ↔ our WebSocketStreamServer)', function () {
  this.timeout(60_000);

  let browser: Browser | undefined;
  let cleanups: Array<() => unknown> = [];

  before(async function () {
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

  async function startServer(options: Omit<WebSocketStreamServerOptions, 'server' | 'port' | 'host' | 'tls'> = {}): Promise<TestServer> {
    const server = await new TestServer(options).listen();
    cleanups.push(() => server.close());
    return server;
  }

  async function newPage(server: TestServer): Promise<Page> {
    const page = await openTestPage(browser!, server);
    cleanups.push(() => page.close());
    return page;
  }

  /** A page connected to the server; our side of the connection is returned too. */
  async function connect(server: TestServer, protocols?: string[]): Promise<{ page: Page; id: number; protocol: string; extensions: string; accepted: Accepted }> {
    const page = await newPage(server);
    const [opened, accepted] = await Promise.all([inPage(page, 'open', server.wsUrl, ...(protocols === undefined ? [] : [protocols])), server.next()]);
    return { page, id: opened.id, protocol: opened.protocol, extensions: opened.extensions, accepted };
  }

  /** A connected page whose messages our server echoes, recording what it received. */
  async function connectEcho(server: TestServer, protocols?: string[]): Promise<{ page: Page; id: number; protocol: string; extensions: string; accepted: Accepted; log: ServerChunkInfo[] }> {
    const connection = await connect(server, protocols);
    const log: ServerChunkInfo[] = [];
    void serverEcho(connection.accepted.stream, log);
    return { ...connection, log };
  }

  /** Opens a WebSocketStream in the page and reports how opened and closed settle (for failures). */
  function openOutcome(page: Page, url: string, protocols?: string[]): Promise<{ opened: string; closed: string }> {
    return page.evaluate(
      async ([wsUrl, offers]) => {
        type Stream = { opened: Promise<{ protocol: string }>; closed: Promise<{ closeCode: number }> };
        const Ctor = (globalThis as unknown as { WebSocketStream: new (url: string, options?: { protocols?: string[] }) => Stream }).WebSocketStream;
        const stream = offers === null ? new Ctor(wsUrl) : new Ctor(wsUrl, { protocols: offers });
        const describe = (error: { name?: string; closeCode?: number | null }): string =>
          error.closeCode === null || error.closeCode === undefined ? `rejected ${error.name}` : `rejected ${error.name} ${error.closeCode}`;
        const closed = stream.closed.then((info) => `fulfilled ${info.closeCode}`, describe);
        const opened = await stream.opened.then((info) => `fulfilled ${info.protocol}`, describe);
        return { opened, closed: await closed };
      },
      [url, protocols ?? null] as [string, string[] | null],
    );
  }

  it('runs a Chromium that has its own WebSocketStream, on a secure-context page', async () => {
    const server = await startServer();
    const page = await newPage(server);
    const features = await inPage(page, 'features');
    expect(features.hasWebSocketStream, `WebSocketStream in ${features.userAgent}`).to.equal(true);
    expect(features.hasWebSocketError, `WebSocketError in ${features.userAgent}`).to.equal(true);
    // http://127.0.0.1 is potentially trustworthy, so crypto.subtle (the page's checksums) works.
    expect(features.isSecureContext).to.equal(true);
    expect(features.userAgent).to.match(/HeadlessChrome\/\d+/);
  });

  describe('echo', () => {
    for (const kind of ['binary', 'text'] as const) {
      for (const size of SIZES) {
        it(`echoes a ${size}-byte ${kind} message (checksums on both sides)`, async () => {
          const server = await startServer();
          const { page, id, log } = await connectEcho(server);
          const seed = size + (kind === 'text' ? 7 : 3);
          const digest = expectedDigest(kind, size, seed);
          const { sent, received } = await inPage(page, 'echo', id, kind, size, seed, false);
          expectMessage('the page sent', sent, kind, size, digest, ['Uint8Array']);
          expect(log, 'messages our server received').to.have.length(1);
          // Our readable yields exactly Uint8Array for binary, owning its bytes.
          expectMessage('our server received', log[0], kind, size, digest, ['Uint8Array']);
          if (kind === 'binary') expect(log[0]!.ownsBuffer, 'our chunk owns its buffer').to.equal(true);
          expectMessage('the browser received back', received, kind, size, digest, BROWSER_BINARY_TYPES);
        });
      }
    }

    it('keeps order in a burst of text and binary messages of every size up to 1 MiB, both ways at once', async () => {
      const server = await startServer();
      const { page, id, log } = await connectEcho(server);
      const messages: Array<[PayloadKind, number, number, boolean]> = [];
      for (const size of SIZES.filter((s) => s <= MiB)) {
        messages.push(['text', size, 1000 + size, false], ['binary', size, 2000 + size, false]);
      }
      const { sent, received } = await inPage(page, 'sendMany', id, messages);
      expect(received).to.have.length(messages.length);
      expect(log).to.have.length(messages.length);
      messages.forEach(([kind, size, seed], i) => {
        const digest = expectedDigest(kind, size, seed);
        expectMessage(`message ${i} as sent`, sent[i], kind, size, digest, ['Uint8Array']);
        expectMessage(`message ${i} at our server`, log[i], kind, size, digest, ['Uint8Array']);
        expectMessage(`message ${i} echoed to the browser`, received[i], kind, size, digest, BROWSER_BINARY_TYPES);
      });
    });
  });

  describe('close codes and reasons', () => {
    it('browser close({closeCode: 4000, reason}) resolves our closed with them, and the browser gets them echoed', async () => {
      const server = await startServer();
      const { page, id, accepted } = await connectEcho(server);
      const reason = 'browser says bye ✓ — 4000';
      expect(await inPage(page, 'close', id, { closeCode: 4000, reason })).to.equal(null);
      expect(await accepted.stream.closed).to.deep.equal({ closeCode: 4000, reason });
      expect(await inPage(page, 'closed', id)).to.deep.equal({ settled: 'fulfilled', closeCode: 4000, reason });
    });

    it('a 123-byte UTF-8 reason from the browser (41 × "€") arrives whole, with code 4999', async () => {
      const server = await startServer();
      const { page, id, accepted } = await connectEcho(server);
      const reason = '€'.repeat(41);
      expect(Buffer.byteLength(reason)).to.equal(123);
      expect(await inPage(page, 'close', id, { closeCode: 4999, reason })).to.equal(null);
      expect(await accepted.stream.closed).to.deep.equal({ closeCode: 4999, reason });
      expect(await inPage(page, 'closed', id)).to.deep.equal({ settled: 'fulfilled', closeCode: 4999, reason });
    });

    it('browser close() with no code: both sides see 1005 and an empty reason', async () => {
      const server = await startServer();
      const { page, id, accepted } = await connectEcho(server);
      expect(await inPage(page, 'close', id)).to.equal(null);
      expect(await accepted.stream.closed).to.deep.equal({ closeCode: 1005, reason: '' });
      expect(await inPage(page, 'closed', id)).to.deep.equal({ settled: 'fulfilled', closeCode: 1005, reason: '' });
    });

    it('our close({closeCode: 4001, reason}) resolves the browser\'s closed with them and ends its readable', async () => {
      const server = await startServer();
      const { page, id, accepted } = await connect(server);
      const reason = 'server says bye ✓ — 4001';
      await accepted.stream.opened;
      accepted.stream.close({ closeCode: 4001, reason });
      expect(await inPage(page, 'closed', id)).to.deep.equal({ settled: 'fulfilled', closeCode: 4001, reason });
      expect(await inPage(page, 'receive', id), 'the browser readable is done').to.equal(null);
      // Chromium echoes the close frame; our side resolves with what it received back.
      expect(await accepted.stream.closed).to.deep.equal({ closeCode: 4001, reason });
    });

    it('our close() with no code: the browser sees 1005 and an empty reason', async () => {
      const server = await startServer();
      const { page, id, accepted } = await connect(server);
      await accepted.stream.opened;
      accepted.stream.close();
      expect(await inPage(page, 'closed', id)).to.deep.equal({ settled: 'fulfilled', closeCode: 1005, reason: '' });
      expect(await accepted.stream.closed).to.deep.equal({ closeCode: 1005, reason: '' });
    });

    it('our messages, then our close({closeCode: 4002}): the browser reads each, then its readable ends and closed resolves', async () => {
      // Chromium drops messages still unread when the close frame arrives (it closes the readable
      // at once), so the browser reads each message before we send the next thing.
      const server = await startServer();
      const { page, id, accepted } = await connect(server);
      const { readable, writable } = await accepted.stream.opened;
      const writer = writable.getWriter();
      const first = inPage(page, 'receive', id);
      await writer.write('first ✓');
      expectMessage('first message', await first, 'text', 9, sha256('first ✓'), []);
      const second = inPage(page, 'receive', id);
      await writer.write(new Uint8Array([1, 2, 3]));
      expectMessage('second message', await second, 'binary', 3, sha256(new Uint8Array([1, 2, 3])), BROWSER_BINARY_TYPES);
      accepted.stream.close({ closeCode: 4002, reason: 'done' });
      expect(await inPage(page, 'receive', id), 'the browser readable is done').to.equal(null);
      expect(await inPage(page, 'closed', id)).to.deep.equal({ settled: 'fulfilled', closeCode: 4002, reason: 'done' });
      expect(await accepted.stream.closed).to.deep.equal({ closeCode: 4002, reason: 'done' });
      expect((await readable.getReader().read()).done, 'our readable is done').to.equal(true);
    });
  });

  describe('subprotocols', () => {
    it('picks the first protocol the browser offered that the server speaks, on both sides', async () => {
      const server = await startServer({ protocols: ['chat.v2', 'chat.v1'] });
      const { page, id, protocol, accepted, log } = await connectEcho(server, ['chat.v1', 'chat.v2']);
      expect(accepted.stream.request.headers['sec-websocket-protocol']).to.equal('chat.v1, chat.v2');
      expect(protocol, 'the browser\'s opened.protocol').to.equal('chat.v1');
      expect((await accepted.stream.opened).protocol, 'our opened.protocol').to.equal('chat.v1');
      const { received } = await inPage(page, 'echo', id, 'text', 10, 1, false);
      expectMessage('echo over the subprotocol', received, 'text', 10, expectedDigest('text', 10, 1), []);
      expect(log).to.have.length(1);
    });

    it('selectProtocol can pick the browser\'s last offer', async () => {
      const server = await startServer({ selectProtocol: (offered) => offered[offered.length - 1] });
      const { protocol, accepted } = await connectEcho(server, ['a', 'b.example', 'c-3']);
      expect(protocol).to.equal('c-3');
      expect((await accepted.stream.opened).protocol).to.equal('c-3');
    });

    it('speaking none of the browser\'s offers: Chromium fails the connection, and our closed rejects with 1006', async () => {
      // The WHATWG WebSocket handshake fails when protocols were requested and the response
      // selects none; our server accepts such a request without a protocol (as ws does).
      const server = await startServer({ protocols: ['mqtt'] });
      const page = await newPage(server);
      const [outcome, accepted] = await Promise.all([openOutcome(page, server.wsUrl, ['soap', 'wamp']), server.next()]);
      expect(accepted.stream.request.headers['sec-websocket-protocol']).to.equal('soap, wamp');
      expect((await accepted.stream.opened).protocol, 'our side opened without a protocol').to.equal('');
      expect(outcome.opened, 'the browser\'s opened').to.equal('rejected WebSocketError');
      expect(outcome.closed, 'the browser\'s closed').to.equal('rejected WebSocketError 1006');
      const error = await accepted.stream.closed.then(
        () => null,
        (e: { name: string; closeCode: number | null }) => e,
      );
      expect(error?.name).to.equal('WebSocketError');
      expect(error?.closeCode).to.equal(1006);
    });

    it('opens with no protocol when the browser offers none', async () => {
      const server = await startServer({ protocols: ['chat.v1'] });
      const { protocol, accepted } = await connectEcho(server);
      expect(accepted.stream.request.headers['sec-websocket-protocol']).to.equal(undefined);
      expect(protocol).to.equal('');
      expect((await accepted.stream.opened).protocol).to.equal('');
    });
  });

  describe('permessage-deflate with Chromium\'s offer', () => {
    /** Large, compressible messages (text with multi-byte characters, and binary). */
    const COMPRESSIBLE: Array<[PayloadKind, number, number, boolean]> = [
      ['text', 4 * MiB, 11, true],
      ['binary', 16 * MiB, 12, true],
      ['text', 200 * KiB, 13, true],
      ['binary', 64 * KiB, 14, true],
    ];
    const compressibleTotal = COMPRESSIBLE.reduce((sum, [, size]) => sum + size, 0);
    /** Small (under the 1 KiB threshold) and incompressible messages after those. */
    const OTHERS: Array<[PayloadKind, number, number, boolean]> = [
      ['text', 0, 21, false],
      ['binary', 0, 22, false],
      ['text', 100, 23, false],
      ['binary', 1000, 24, false],
      ['binary', MiB, 25, false],
      ['text', 300 * KiB, 26, false],
    ];

    async function echoAndCheck(page: Page, id: number, log: ServerChunkInfo[], messages: Array<[PayloadKind, number, number, boolean]>): Promise<void> {
      const first = log.length;
      const { sent, received } = await inPage(page, 'sendMany', id, messages);
      expect(log).to.have.length(first + messages.length);
      messages.forEach(([kind, size, seed, compressible], i) => {
        const digest = expectedDigest(kind, size, seed, compressible);
        expectMessage(`message ${i} as sent`, sent[i], kind, size, digest, ['Uint8Array']);
        expectMessage(`message ${i} at our server`, log[first + i], kind, size, digest, ['Uint8Array']);
        expectMessage(`message ${i} echoed to the browser`, received[i], kind, size, digest, BROWSER_BINARY_TYPES);
      });
    }

    it('perMessageDeflate: true accepts Chromium\'s offer; large compressible messages echo correctly, compressed both ways', async () => {
      const server = await startServer({ perMessageDeflate: true });
      const { page, id, extensions, accepted, log } = await connectEcho(server);
      const offer = accepted.stream.request.headers['sec-websocket-extensions'];
      expect(offer, 'Chromium\'s offer').to.match(/^permessage-deflate\b/);
      expect(offer).to.include('client_max_window_bits');
      const ours = (await accepted.stream.opened).extensions;
      expect(ours, 'our opened.extensions').to.match(/^permessage-deflate\b/);
      expect(extensions, 'the browser\'s opened.extensions').to.equal(ours);

      const readBefore = accepted.socket.bytesRead;
      const writtenBefore = accepted.socket.bytesWritten;
      await echoAndCheck(page, id, log, COMPRESSIBLE);
      // Both directions went compressed: far fewer bytes on the wire than in the messages.
      const read = accepted.socket.bytesRead - readBefore;
      const written = accepted.socket.bytesWritten - writtenBefore;
      expect(read, `bytes from Chromium for ${compressibleTotal} bytes of messages`).to.be.greaterThan(0).and.below(compressibleTotal / 20);
      expect(written, `bytes to Chromium for ${compressibleTotal} bytes of messages`).to.be.greaterThan(0).and.below(compressibleTotal / 20);

      await echoAndCheck(page, id, log, OTHERS);
      expect(await inPage(page, 'close', id, { closeCode: 4000, reason: 'deflated' })).to.equal(null);
      expect(await accepted.stream.closed).to.deep.equal({ closeCode: 4000, reason: 'deflated' });
    });

    it('without perMessageDeflate the offer is declined and messages go uncompressed', async () => {
      const server = await startServer();
      const { page, id, extensions, accepted, log } = await connectEcho(server);
      expect(accepted.stream.request.headers['sec-websocket-extensions'], 'Chromium still offered it').to.match(/^permessage-deflate\b/);
      expect(extensions).to.equal('');
      expect((await accepted.stream.opened).extensions).to.equal('');
      const messages = COMPRESSIBLE.slice(0, 1);
      const readBefore = accepted.socket.bytesRead;
      const writtenBefore = accepted.socket.bytesWritten;
      await echoAndCheck(page, id, log, messages);
      const size = messages[0]![1];
      expect(accepted.socket.bytesRead - readBefore).to.be.at.least(size);
      expect(accepted.socket.bytesWritten - writtenBefore).to.be.at.least(size);
    });

    const PARAMETERS: Array<{ name: string; options: WebSocketStreamServerOptions['perMessageDeflate']; extensions: string }> = [
      {
        name: 'no context takeover both ways, window bits 10 (server) and 9 (client)',
        options: { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 9 },
        extensions: 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9',
      },
      {
        // zlib cannot make raw deflate streams with an 8-bit window (it uses 9): both sides must cope.
        name: 'the smallest windows, 8 bits both ways, with context takeover',
        options: { serverMaxWindowBits: 8, clientMaxWindowBits: 8 },
        extensions: 'permessage-deflate; server_max_window_bits=8; client_max_window_bits=8',
      },
    ];
    for (const { name, options, extensions: expected } of PARAMETERS) {
      it(`Chromium accepts our parameters: ${name}`, async () => {
        const server = await startServer({ perMessageDeflate: options });
        const { page, id, extensions, accepted, log } = await connectEcho(server);
        expect((await accepted.stream.opened).extensions).to.equal(expected);
        expect(extensions).to.equal(expected);
        const messages = COMPRESSIBLE.slice(0, 1).concat(COMPRESSIBLE.slice(2));
        const total = messages.reduce((sum, [, size]) => sum + size, 0);
        const readBefore = accepted.socket.bytesRead;
        const writtenBefore = accepted.socket.bytesWritten;
        await echoAndCheck(page, id, log, messages);
        expect(accepted.socket.bytesRead - readBefore, 'bytes from Chromium').to.be.greaterThan(0).and.below(total / 10);
        expect(accepted.socket.bytesWritten - writtenBefore, 'bytes to Chromium').to.be.greaterThan(0).and.below(total / 10);
        await echoAndCheck(page, id, log, OTHERS);
        // Context takeover (or not) across messages: the same compressible messages once more.
        await echoAndCheck(page, id, log, messages);
      });
    }
  });

  describe('our server closing the connection', () => {
    it('server.close() closes every browser connection with 1001 and resolves once they are closed', async () => {
      const server = await startServer();
      const one = await connectEcho(server);
      const two = await connectEcho(server);
      await server.wss.close();
      for (const [name, { page, id }] of [['first', one], ['second', two]] as const) {
        expect(await inPage(page, 'closed', id), `the ${name} page's closed`).to.deep.equal({ settled: 'fulfilled', closeCode: 1001, reason: '' });
        expect(await inPage(page, 'receive', id), `the ${name} page's readable is done`).to.equal(null);
      }
      expect(await one.accepted.stream.closed).to.deep.equal({ closeCode: 1001, reason: '' });
      expect(await two.accepted.stream.closed).to.deep.equal({ closeCode: 1001, reason: '' });
      expect(server.wss.connectionCount).to.equal(0);
    });

    it('server.close({closeCode, reason}) sends them to the browser, and later upgrades are refused', async () => {
      const server = await startServer();
      const { page, id } = await connectEcho(server);
      await server.wss.close({ closeCode: 4100, reason: 'maintenance ✓' });
      expect(await inPage(page, 'closed', id)).to.deep.equal({ settled: 'fulfilled', closeCode: 4100, reason: 'maintenance ✓' });
      // The http server still serves the page, but no longer upgrades: the browser fails to open.
      const outcome = await openOutcome(page, server.wsUrl);
      expect(outcome).to.deep.equal({ opened: 'rejected WebSocketError', closed: 'rejected WebSocketError 1006' });
    });
  });
});
