// permessage-deflate on the wire, against scripted raw peers: the handshake's extension checks,
// RSV1 rules (RFC 7692 §6: on the first frame of a data message only, and only once negotiated),
// bad compressed data, bombs, fragmentation, and what our endpoints put on the wire (threshold,
// RSV1, context takeover, window size). The peers compress with node:zlib themselves.
import { expect } from 'chai';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import {
  WebSocketError,
  WebSocketStream,
  WebSocketStreamServer,
  type PerMessageDeflateOptions,
  type ServerWebSocketStream,
  type WebSocketOpenInfo,
  type WebSocketStreamOptions,
} from '../lib/index.js';
import { closePayload, rawFrame, startRawServer, switchingProtocols, type RawFrame, type RawPeer, type RawRequest, type RawServer } from './helpers/raw-peer.js';
import { DeflateContext, deflateMessage, inflateMessage, pseudoRandom, rawClient, TRAILER } from './helpers/deflate-helpers.js';

const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;
const RSV1 = 4;
const MiB = 1024 * 1024;

type Message = string | Uint8Array;

const cleanups: Array<() => Promise<void> | void> = [];

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject');
}

function closeCodeOf(frame: RawFrame): number | null {
  return frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : null;
}

function describeFrame(frame: RawFrame): string {
  const code = frame.opcode === OP.CLOSE ? ` code ${closeCodeOf(frame)} "${frame.payload.subarray(2).toString()}"` : '';
  return `opcode ${frame.opcode} rsv ${frame.rsv} fin ${frame.fin} ${frame.payload.length} bytes${code}`;
}

// ---------------------------------------------------------------------------------------------
// Our client against a raw server.

interface ClientSetup {
  server: RawServer;
  wss: WebSocketStream;
  peer: RawPeer;
  request: RawRequest;
  info: WebSocketOpenInfo;
  reader: ReadableStreamDefaultReader<Message>;
  writer: WritableStreamDefaultWriter<unknown>;
}

/** A raw server answering with `extensions` (null: no Sec-WebSocket-Extensions header at all). */
async function rawServer(extensions: string | null | string[]): Promise<RawServer> {
  const lines = extensions === null ? [] : (Array.isArray(extensions) ? extensions : [extensions]).map((value) => `Sec-WebSocket-Extensions: ${value}`);
  const server = await startRawServer({ respond: (request) => switchingProtocols(request, lines) });
  cleanups.push(() => server.close());
  return server;
}

async function connectClient(extensions: string | null = 'permessage-deflate', options?: WebSocketStreamOptions): Promise<ClientSetup> {
  const server = await rawServer(extensions);
  const wss = new WebSocketStream(server.url, options);
  cleanups.push(() => wss.close());
  const [{ peer, request }, info] = await Promise.all([server.accept(), wss.opened]);
  return { server, wss, peer, request, info, reader: info.readable.getReader() as ReadableStreamDefaultReader<Message>, writer: info.writable.getWriter() };
}

async function read(setup: { reader: ReadableStreamDefaultReader<Message> }): Promise<Message> {
  const { value, done } = await setup.reader.read();
  expect(done, 'the readable ended early').to.equal(false);
  return value!;
}

function expectBinary(got: Message, want: Buffer, what = 'binary message'): void {
  expect(got, what).to.be.an.instanceOf(Uint8Array);
  const bytes = Buffer.from((got as Uint8Array).buffer, (got as Uint8Array).byteOffset, (got as Uint8Array).byteLength);
  expect(bytes.length, `${what}: length`).to.equal(want.length);
  expect(bytes.equals(want), `${what}: content`).to.equal(true);
}

/**
 * Our client must fail the connection (RFC 6455 §7.1.7): a close frame with `code` (skipping
 * pongs it may have sent first), then it closes TCP; `closed` rejects with a WebSocketError (1006:
 * no close frame was received).
 */
async function expectClientFailure(setup: ClientSetup, code: number): Promise<void> {
  let frame = await setup.peer.nextFrame();
  while (frame.opcode === OP.PONG) frame = await setup.peer.nextFrame();
  expect(frame.opcode, `expected a close frame with ${code}, got ${describeFrame(frame)}`).to.equal(OP.CLOSE);
  expect(closeCodeOf(frame), `close frame ${describeFrame(frame)}`).to.equal(code);
  expect(frame.rsv, 'a close frame has no RSV bits').to.equal(0);
  const rest = await setup.peer.waitForEnd();
  expect(rest, 'nothing after the close frame').to.deep.equal([]);
  setup.peer.socket.end();
  const error = await rejectionOf(setup.wss.closed);
  expect(error).to.be.an.instanceOf(WebSocketError);
  expect((error as WebSocketError).closeCode).to.equal(1006);
  await setup.peer.closed;
}

/** The peer closes cleanly: close 1000, our echo, TCP closed by the peer (the server) first. */
async function closeFromServer(setup: ClientSetup): Promise<void> {
  setup.peer.sendClose(1000, 'bye');
  let frame = await setup.peer.nextFrame();
  while (frame.opcode !== OP.CLOSE) frame = await setup.peer.nextFrame();
  expect(closeCodeOf(frame)).to.equal(1000);
  setup.peer.socket.end();
  expect(await setup.wss.closed).to.deep.equal({ closeCode: 1000, reason: 'bye' });
}

/** The next data frame our client sent, and its message: inflated if RSV1 is set. */
async function nextDataFrame(peer: RawPeer): Promise<RawFrame> {
  let frame = await peer.nextFrame();
  while (frame.opcode === OP.PONG) frame = await peer.nextFrame();
  expect([OP.TEXT, OP.BINARY], describeFrame(frame)).to.include(frame.opcode);
  expect(frame.masked, 'client frames are masked').to.equal(true);
  return frame;
}

// ---------------------------------------------------------------------------------------------
// Our server against a raw client.

interface ServerSetup {
  server: WebSocketStreamServer;
  stream: ServerWebSocketStream;
  peer: RawPeer;
  headers: Record<string, string>;
  info: WebSocketOpenInfo;
}

async function connectToOurServer(perMessageDeflate: boolean | PerMessageDeflateOptions, offer: string | undefined, maxPayload?: number): Promise<ServerSetup> {
  const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', perMessageDeflate, ...(maxPayload === undefined ? {} : { maxPayload }) });
  cleanups.push(() => server.close());
  await server.listening;
  const reader = server.connections.getReader();
  const [{ peer, headers }, { value: stream }] = await Promise.all([rawClient((server.address() as AddressInfo).port, offer), reader.read()]);
  reader.releaseLock();
  const info = await stream!.opened;
  return { server, stream: stream!, peer, headers, info };
}

/** Our server fails the connection: close frame with `code`, it closes TCP first, `closed` rejects. */
async function expectServerFailure(setup: ServerSetup, code: number): Promise<void> {
  let frame = await setup.peer.nextFrame();
  while (frame.opcode === OP.PONG) frame = await setup.peer.nextFrame();
  expect(frame.opcode, `expected a close frame with ${code}, got ${describeFrame(frame)}`).to.equal(OP.CLOSE);
  expect(closeCodeOf(frame), describeFrame(frame)).to.equal(code);
  expect(frame.masked, 'server frames are not masked').to.equal(false);
  await setup.peer.waitForEnd();
  setup.peer.socket.end();
  const error = await rejectionOf(setup.stream.closed);
  expect(error).to.be.an.instanceOf(WebSocketError);
  await setup.peer.closed;
}

const mask = { mask: true } as const;

// ---------------------------------------------------------------------------------------------

describe('permessage-deflate on the wire (scripted peers)', function () {
  this.timeout(20_000);

  afterEach(async function () {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  describe('our client: the handshake', function () {
    it('offers `permessage-deflate; client_max_window_bits` by default', async function () {
      const setup = await connectClient();
      expect(setup.request.headers['sec-websocket-extensions']).to.equal('permessage-deflate; client_max_window_bits');
      await closeFromServer(setup);
    });

    it('offers nothing with perMessageDeflate: false', async function () {
      const setup = await connectClient(null, { perMessageDeflate: false });
      expect(setup.request.headers).to.not.have.property('sec-websocket-extensions');
      expect(setup.info.extensions).to.equal('');
      await closeFromServer(setup);
    });

    it('opened.extensions is the server value verbatim, odd spacing included', async function () {
      const value = 'permessage-deflate ;server_no_context_takeover;  client_max_window_bits=10';
      const setup = await connectClient(value);
      expect(setup.info.extensions).to.equal(value);
      await closeFromServer(setup);
    });

    it('opened.extensions is "" when the server declines', async function () {
      const setup = await connectClient(null);
      expect(setup.info.extensions).to.equal('');
      await closeFromServer(setup);
    });

    describe('an invalid response fails the handshake (opened rejects, closed rejects with 1006, TCP is closed)', function () {
      const cases: Array<[string, string | string[], WebSocketStreamOptions | undefined]> = [
        ['an extension that was not offered', 'x-webkit-deflate-frame', undefined],
        ['permessage-deflate when perMessageDeflate is false', 'permessage-deflate', { perMessageDeflate: false }],
        ['permessage-deflate twice', 'permessage-deflate, permessage-deflate', undefined],
        ['permessage-deflate and another extension on two header lines', ['permessage-deflate', 'x-foo'], undefined],
        ['an unknown parameter', 'permessage-deflate; foo', undefined],
        ['a duplicate parameter', 'permessage-deflate; server_no_context_takeover; server_no_context_takeover', undefined],
        ['server_max_window_bits=16', 'permessage-deflate; server_max_window_bits=16', undefined],
        ['server_max_window_bits=7', 'permessage-deflate; server_max_window_bits=7', undefined],
        ['client_max_window_bits without a value', 'permessage-deflate; client_max_window_bits', undefined],
        ['client_max_window_bits when not offered', 'permessage-deflate; client_max_window_bits=10', { perMessageDeflate: { clientMaxWindowBits: false } }],
        ['server_max_window_bits larger than offered', 'permessage-deflate; server_max_window_bits=12', { perMessageDeflate: { serverMaxWindowBits: 10 } }],
        ['an ignored server_no_context_takeover', 'permessage-deflate', { perMessageDeflate: { serverNoContextTakeover: true } }],
        ['a value on client_no_context_takeover', 'permessage-deflate; client_no_context_takeover=1', undefined],
        ['a malformed header', 'permessage-deflate;;', undefined],
      ];
      for (const [what, header, options] of cases) {
        it(`${what}: ${JSON.stringify(header)}`, async function () {
          const server = await rawServer(header);
          const wss = new WebSocketStream(server.url, options);
          const [{ peer }, openedError] = await Promise.all([server.accept(), rejectionOf(wss.opened)]);
          expect(openedError).to.be.an.instanceOf(WebSocketError);
          expect((openedError as WebSocketError).closeCode).to.equal(null);
          const closedError = await rejectionOf(wss.closed);
          expect(closedError).to.be.an.instanceOf(WebSocketError);
          expect(closedError).to.not.equal(openedError);
          expect((closedError as WebSocketError).closeCode).to.equal(1006);
          // Nothing is sent on a connection whose handshake failed; the client closes it.
          expect(await peer.waitForEnd()).to.deep.equal([]);
          await peer.closed;
        });
      }
    });
  });

  describe('our client: RSV bits', function () {
    for (const [name, opcode, payload] of [
      ['ping', OP.PING, 'p'],
      ['pong', OP.PONG, 'p'],
      ['close', OP.CLOSE, closePayload(1000)],
    ] as Array<[string, number, string | Buffer]>) {
      it(`RSV1 on a ${name} frame → 1002`, async function () {
        const setup = await connectClient();
        setup.peer.send(opcode, payload, { rsv: RSV1 });
        await expectClientFailure(setup, 1002);
      });
    }

    it('RSV1 on a continuation frame of a compressed message → 1002', async function () {
      const setup = await connectClient();
      const compressed = deflateMessage('hello, fragmented world');
      setup.peer.send(OP.TEXT, compressed.subarray(0, 5), { rsv: RSV1, fin: false });
      setup.peer.send(OP.CONT, compressed.subarray(5), { rsv: RSV1 });
      await expectClientFailure(setup, 1002);
    });

    it('RSV1 on a continuation frame of an uncompressed message → 1002', async function () {
      const setup = await connectClient();
      setup.peer.send(OP.BINARY, Buffer.from([1, 2]), { fin: false });
      setup.peer.send(OP.CONT, deflateMessage('x'), { rsv: RSV1 });
      await expectClientFailure(setup, 1002);
    });

    it('RSV1 when nothing was negotiated (the server declined the offer) → 1002', async function () {
      const setup = await connectClient(null);
      setup.peer.send(OP.TEXT, deflateMessage('compressed anyway'), { rsv: RSV1 });
      await expectClientFailure(setup, 1002);
    });

    it('RSV1 when nothing was offered (perMessageDeflate: false) → 1002', async function () {
      const setup = await connectClient(null, { perMessageDeflate: false });
      setup.peer.send(OP.BINARY, deflateMessage('compressed anyway'), { rsv: RSV1 });
      await expectClientFailure(setup, 1002);
    });

    for (const [name, rsv] of [
      ['RSV2', 2],
      ['RSV3', 1],
      ['RSV1 and RSV2', 6],
    ] as Array<[string, number]>) {
      it(`${name} on a data frame of a deflate connection → 1002`, async function () {
        const setup = await connectClient();
        setup.peer.send(OP.TEXT, deflateMessage('x'), { rsv });
        await expectClientFailure(setup, 1002);
      });
    }
  });

  describe('our client: receiving compressed messages', function () {
    it('invalid compressed data → 1007', async function () {
      const setup = await connectClient();
      setup.peer.send(OP.BINARY, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]), { rsv: RSV1 });
      await expectClientFailure(setup, 1007);
    });

    it('compressed text that inflates to invalid UTF-8 → 1007', async function () {
      const setup = await connectClient();
      setup.peer.send(OP.TEXT, deflateMessage(Buffer.from([0x61, 0xc3, 0x28, 0x62])), { rsv: RSV1 });
      await expectClientFailure(setup, 1007);
    });

    it('compressed text ending inside a UTF-8 sequence → 1007', async function () {
      const setup = await connectClient();
      setup.peer.send(OP.TEXT, deflateMessage(Buffer.from('€').subarray(0, 2)), { rsv: RSV1 });
      await expectClientFailure(setup, 1007);
    });

    it('a zip bomb (16 MiB of zeros in ~16 KiB) against maxPayload 1 MiB → 1009, and closed rejects', async function () {
      const setup = await connectClient('permessage-deflate', { maxPayload: MiB });
      const bomb = deflateMessage(Buffer.alloc(16 * MiB));
      expect(bomb.length).to.be.lessThan(MiB / 32);
      setup.peer.send(OP.BINARY, bomb, { rsv: RSV1 });
      await expectClientFailure(setup, 1009);
      const readError = await rejectionOf(setup.reader.read());
      expect(readError, 'the readable errors; no message was delivered').to.be.an.instanceOf(WebSocketError);
    });

    it('a fragmented bomb (RSV1 on the first of many small frames) → 1009', async function () {
      const setup = await connectClient('permessage-deflate', { maxPayload: MiB });
      const bomb = deflateMessage(Buffer.alloc(8 * MiB, 'a'));
      const pieces = Math.ceil(bomb.length / 100);
      for (let i = 0; i < pieces; i++) {
        setup.peer.send(i === 0 ? OP.TEXT : OP.CONT, bomb.subarray(i * 100, (i + 1) * 100), { rsv: i === 0 ? RSV1 : 0, fin: i === pieces - 1 });
      }
      await expectClientFailure(setup, 1009);
    });

    it('a message that inflates to exactly maxPayload is delivered', async function () {
      const setup = await connectClient('permessage-deflate', { maxPayload: MiB });
      const message = Buffer.alloc(MiB, 'q');
      setup.peer.send(OP.BINARY, deflateMessage(message), { rsv: RSV1 });
      expectBinary(await read(setup), message);
      await closeFromServer(setup);
    });

    it('a compressed payload that is itself over maxPayload → 1009', async function () {
      const setup = await connectClient('permessage-deflate', { maxPayload: 64 * 1024 });
      setup.peer.send(OP.BINARY, deflateMessage(pseudoRandom(100 * 1024, 5)), { rsv: RSV1 });
      await expectClientFailure(setup, 1009);
    });

    it('a compressed message split into fragments (RSV1 on the first only) is delivered intact', async function () {
      const setup = await connectClient();
      const text = 'Fragmented and compressed: äöü €😀 '.repeat(300);
      const compressed = deflateMessage(text);
      const cuts = [0, 1, 2, 50, 51, Math.floor(compressed.length / 2), compressed.length - 1, compressed.length];
      for (let i = 0; i < cuts.length - 1; i++) {
        setup.peer.send(i === 0 ? OP.TEXT : OP.CONT, compressed.subarray(cuts[i], cuts[i + 1]), { rsv: i === 0 ? RSV1 : 0, fin: i === cuts.length - 2 });
      }
      expect(await read(setup)).to.equal(text);
      await closeFromServer(setup);
    });

    it('a ping between the fragments of a compressed message is answered, and the message is intact', async function () {
      const setup = await connectClient();
      const message = pseudoRandom(5000, 8);
      const compressed = deflateMessage(message);
      setup.peer.send(OP.BINARY, compressed.subarray(0, 100), { rsv: RSV1, fin: false });
      setup.peer.send(OP.PING, 'mid-message');
      setup.peer.send(OP.CONT, compressed.subarray(100));
      const pong = await setup.peer.nextFrame();
      expect(pong.opcode).to.equal(OP.PONG);
      expect(pong.rsv, 'a pong is never compressed').to.equal(0);
      expect(pong.payload.toString()).to.equal('mid-message');
      expectBinary(await read(setup), message);
      await closeFromServer(setup);
    });

    it('uncompressed messages (RSV1 clear) are delivered, in order with compressed ones', async function () {
      const setup = await connectClient();
      const context = new DeflateContext();
      setup.peer.send(OP.TEXT, 'plain text');
      setup.peer.send(OP.TEXT, context.deflate('compressed text'), { rsv: RSV1 });
      setup.peer.send(OP.BINARY, Buffer.from([1, 2, 3]));
      setup.peer.send(OP.BINARY, context.deflate(Buffer.from([4, 5, 6])), { rsv: RSV1 });
      setup.peer.send(OP.TEXT, 'plain, ', { fin: false });
      setup.peer.send(OP.CONT, 'fragmented');
      setup.peer.send(OP.TEXT, context.deflate('compressed text'), { rsv: RSV1 });
      expect(await read(setup)).to.equal('plain text');
      expect(await read(setup)).to.equal('compressed text');
      expectBinary(await read(setup), Buffer.from([1, 2, 3]));
      expectBinary(await read(setup), Buffer.from([4, 5, 6]));
      expect(await read(setup)).to.equal('plain, fragmented');
      expect(await read(setup)).to.equal('compressed text');
      await closeFromServer(setup);
    });

    it('a compressed empty message (the one byte 0x00: an empty stored block, trailer removed) is delivered empty', async function () {
      const setup = await connectClient();
      const context = new DeflateContext();
      setup.peer.send(OP.TEXT, context.deflate('first'), { rsv: RSV1 });
      setup.peer.send(OP.BINARY, context.deflate(Buffer.alloc(0)), { rsv: RSV1 });
      setup.peer.send(OP.TEXT, context.deflate(''), { rsv: RSV1 });
      setup.peer.send(OP.TEXT, context.deflate('first again'), { rsv: RSV1 });
      expect(await read(setup)).to.equal('first');
      expectBinary(await read(setup), Buffer.alloc(0), 'empty binary');
      expect(await read(setup)).to.equal('');
      expect(await read(setup)).to.equal('first again');
      await closeFromServer(setup);
    });

    it('an empty payload with RSV1 (not valid DEFLATE once 00 00 ff ff is appended) never corrupts the next message', async function () {
      // `00 00 ff ff` alone opens a stored block whose length is still incomplete, so an inflater
      // fed it goes on to swallow the next message's bytes as stored data. The endpoint must
      // either read the empty payload as an empty message or fail the connection with 1007.
      const setup = await connectClient();
      setup.peer.send(OP.TEXT, Buffer.alloc(0), { rsv: RSV1 });
      setup.peer.send(OP.BINARY, deflateMessage(Buffer.alloc(0)), { rsv: RSV1 });
      setup.peer.send(OP.TEXT, deflateMessage('after'), { rsv: RSV1 });
      let first: Message;
      try {
        first = await read(setup);
      } catch {
        await expectClientFailure(setup, 1007);
        return;
      }
      expect(first).to.equal('');
      expectBinary(await read(setup), Buffer.alloc(0), 'the empty binary message after it');
      expect(await read(setup)).to.equal('after');
      await closeFromServer(setup);
    });

    it('messages compressed with context takeover are inflated with the context of the ones before', async function () {
      const setup = await connectClient();
      const context = new DeflateContext();
      const messages = ['context takeover: the first message is sent in full', 'context takeover: the first message is sent in full', 'context takeover: and the rest refers back'];
      const payloads = messages.map((message) => context.deflate(message));
      expect(payloads[1]!.length).to.be.lessThan(payloads[0]!.length / 2);
      for (const payload of payloads) setup.peer.send(OP.TEXT, payload, { rsv: RSV1 });
      for (const message of messages) expect(await read(setup)).to.equal(message);
      await closeFromServer(setup);
    });

    it('a compressed message followed by a close frame in one TCP write: the message, then a clean close', async function () {
      const setup = await connectClient();
      const message = pseudoRandom(300_000, 9);
      setup.peer.sendRaw(Buffer.concat([rawFrame(OP.BINARY, deflateMessage(message), { rsv: RSV1 }), rawFrame(OP.CLOSE, closePayload(1000, 'ok'))]));
      expectBinary(await read(setup), message);
      const echo = await setup.peer.nextFrame();
      expect(echo.opcode).to.equal(OP.CLOSE);
      expect(closeCodeOf(echo)).to.equal(1000);
      setup.peer.socket.end();
      expect(await setup.wss.closed).to.deep.equal({ closeCode: 1000, reason: 'ok' });
    });

    it('messages compressed with a final block (BFINAL = 1, RFC 7692 §7.2.3.4) are inflated, and so are the ones after them', async function () {
      const setup = await connectClient();
      // zlib's default finish flush ends the DEFLATE stream with a final block: a valid message.
      setup.peer.send(OP.TEXT, zlib.deflateRawSync(Buffer.from('Hello')), { rsv: RSV1 });
      setup.peer.send(OP.TEXT, zlib.deflateRawSync(Buffer.from('World')), { rsv: RSV1 });
      setup.peer.send(OP.TEXT, deflateMessage('and a sync-flushed one'), { rsv: RSV1 });
      expect(await read(setup)).to.equal('Hello');
      expect(await read(setup)).to.equal('World');
      expect(await read(setup)).to.equal('and a sync-flushed one');
      await closeFromServer(setup);
    });
  });

  describe('our client: what it sends', function () {
    it('messages below the threshold go uncompressed (RSV1 clear), from the threshold on compressed (RSV1 set)', async function () {
      const setup = await connectClient('permessage-deflate', { perMessageDeflate: { threshold: 100 } });
      const cases: Array<[Message, boolean]> = [
        [pseudoRandom(99, 1), false],
        [pseudoRandom(100, 2), true],
        ['€'.repeat(33), false], // 99 UTF-8 bytes
        ['€'.repeat(34), true], // 102 UTF-8 bytes: the threshold counts bytes, not characters
        ['a'.repeat(99), false],
        ['a'.repeat(5000), true],
        ['', false],
      ];
      for (const [message, compressed] of cases) {
        await setup.writer.write(message);
        const frame = await nextDataFrame(setup.peer);
        const plain = typeof message === 'string' ? Buffer.from(message) : Buffer.from(message);
        const what = `${typeof message === 'string' ? 'text' : 'binary'} of ${plain.length} bytes`;
        expect(frame.opcode, what).to.equal(typeof message === 'string' ? OP.TEXT : OP.BINARY);
        expect(frame.fin, `${what}: one frame`).to.equal(true);
        expect(frame.rsv, `${what}: RSV1 ${compressed ? 'set' : 'clear'}`).to.equal(compressed ? RSV1 : 0);
        if (compressed) {
          expect(frame.payload.subarray(-4).equals(TRAILER), `${what}: trailer removed`).to.equal(false);
          expect(inflateMessage(frame.payload).equals(plain), `${what}: inflates to the message`).to.equal(true);
        } else {
          expect(frame.payload.equals(plain), `${what}: sent as is`).to.equal(true);
        }
      }
      await closeFromServer(setup);
    });

    it('the default threshold is 1024 bytes', async function () {
      const setup = await connectClient();
      for (const [size, compressed] of [
        [1023, false],
        [1024, true],
      ] as Array<[number, boolean]>) {
        const message = Buffer.alloc(size, 'z');
        await setup.writer.write(message);
        const frame = await nextDataFrame(setup.peer);
        expect(frame.rsv, `${size} bytes`).to.equal(compressed ? RSV1 : 0);
        expect((compressed ? inflateMessage(frame.payload) : frame.payload).equals(message)).to.equal(true);
      }
      await closeFromServer(setup);
    });

    it('threshold 0 compresses even an empty message', async function () {
      const setup = await connectClient('permessage-deflate', { perMessageDeflate: { threshold: 0 } });
      await setup.writer.write('');
      const frame = await nextDataFrame(setup.peer);
      expect(frame.rsv).to.equal(RSV1);
      expect(inflateMessage(frame.payload).length).to.equal(0);
      await closeFromServer(setup);
    });

    it('with context takeover (the default), a repeated message costs less the second time and needs the context', async function () {
      const setup = await connectClient('permessage-deflate', { perMessageDeflate: { threshold: 0 } });
      const context = new DeflateContext();
      const message = pseudoRandom(3000, 4);
      const frames: RawFrame[] = [];
      for (let i = 0; i < 3; i++) {
        await setup.writer.write(message);
        frames.push(await nextDataFrame(setup.peer));
      }
      expect(frames[1]!.payload.length).to.be.lessThan(frames[0]!.payload.length / 10);
      expect(() => inflateMessage(frames[1]!.payload), 'the second copy cannot be inflated alone').to.throw();
      for (const frame of frames) expect(context.inflate(frame.payload).equals(message)).to.equal(true);
      await closeFromServer(setup);
    });

    it('client_no_context_takeover in the response: every message stands alone', async function () {
      const setup = await connectClient('permessage-deflate; client_no_context_takeover', { perMessageDeflate: { threshold: 0 } });
      const message = pseudoRandom(3000, 4);
      const frames: RawFrame[] = [];
      for (let i = 0; i < 3; i++) {
        await setup.writer.write(message);
        frames.push(await nextDataFrame(setup.peer));
      }
      for (const frame of frames) {
        expect(frame.payload.equals(frames[0]!.payload), 'the same bytes each time').to.equal(true);
        expect(inflateMessage(frame.payload).equals(message)).to.equal(true);
      }
      await closeFromServer(setup);
    });

    it('clientNoContextTakeover offered: every message stands alone even if the server does not ask', async function () {
      const setup = await connectClient('permessage-deflate', { perMessageDeflate: { threshold: 0, clientNoContextTakeover: true } });
      expect(setup.request.headers['sec-websocket-extensions']).to.equal('permessage-deflate; client_no_context_takeover; client_max_window_bits');
      const message = Buffer.from('standalone '.repeat(100));
      for (let i = 0; i < 3; i++) {
        await setup.writer.write(message);
        expect(inflateMessage((await nextDataFrame(setup.peer)).payload).equals(message)).to.equal(true);
      }
      await closeFromServer(setup);
    });

    for (const bits of [8, 9, 12]) {
      it(`client_max_window_bits=${bits} in the response: our frames inflate with a ${2 ** bits}-byte window`, async function () {
        const setup = await connectClient(`permessage-deflate; client_max_window_bits=${bits}`, { perMessageDeflate: { threshold: 0 } });
        const context = new DeflateContext(bits);
        // Repeats 2 KiB and 8 KiB apart: a wider window would refer back to them.
        const block = pseudoRandom(2048, bits);
        const messages = [Buffer.concat([block, block, block]), Buffer.concat([pseudoRandom(6000, 1), block]), Buffer.concat([block, pseudoRandom(9000, 2), block])];
        for (const message of messages) {
          await setup.writer.write(message);
          const frame = await nextDataFrame(setup.peer);
          expect(frame.rsv).to.equal(RSV1);
          expect(context.inflate(frame.payload).equals(message), `window ${bits}`).to.equal(true);
        }
        await closeFromServer(setup);
      });
    }

    it('a compressed message is one frame, masked, with RSV1; control frames never carry RSV1', async function () {
      const setup = await connectClient('permessage-deflate', { perMessageDeflate: { threshold: 0 } });
      await setup.writer.write(pseudoRandom(200_000, 3));
      const frame = await nextDataFrame(setup.peer);
      expect(frame.fin).to.equal(true);
      expect(frame.rsv).to.equal(RSV1);
      setup.peer.send(OP.PING, 'ping');
      const pong = await setup.peer.nextFrame();
      expect(pong.opcode).to.equal(OP.PONG);
      expect(pong.rsv).to.equal(0);
      setup.wss.close({ closeCode: 3000, reason: 'a reason long enough to be worth compressing, if anyone tried' });
      const close = await setup.peer.nextFrame();
      expect(close.opcode).to.equal(OP.CLOSE);
      expect(close.rsv).to.equal(0);
      expect(closeCodeOf(close)).to.equal(3000);
      setup.peer.sendClose(3000);
      setup.peer.socket.end();
      expect(await setup.wss.closed).to.deep.equal({ closeCode: 3000, reason: '' });
    });
    it('a message still being compressed when close() is called goes out, intact, before the close frame', async function () {
      const setup = await connectClient();
      const message = pseudoRandom(4 * MiB, 12);
      const write = setup.writer.write(message);
      // A macrotask later the sink has the message (and zlib is most likely still at work on it).
      await new Promise<void>((resolve) => setImmediate(resolve));
      setup.wss.close({ closeCode: 1000, reason: 'after the message' });
      const frame = await nextDataFrame(setup.peer);
      expect(frame.rsv).to.equal(RSV1);
      expect(inflateMessage(frame.payload).equals(message), 'the message arrives intact').to.equal(true);
      const close = await setup.peer.nextFrame();
      expect(close.opcode, describeFrame(close)).to.equal(OP.CLOSE);
      expect(closeCodeOf(close)).to.equal(1000);
      await write;
      setup.peer.sendClose(1000, 'after the message');
      setup.peer.socket.end();
      expect(await setup.wss.closed).to.deep.equal({ closeCode: 1000, reason: 'after the message' });
    });
  });

  describe('our server', function () {
    it('RSV1 on a ping from the client → 1002', async function () {
      const setup = await connectToOurServer(true, 'permessage-deflate');
      expect(setup.headers['sec-websocket-extensions']).to.equal('permessage-deflate');
      setup.peer.send(OP.PING, 'p', { ...mask, rsv: RSV1 });
      await expectServerFailure(setup, 1002);
    });

    it('RSV1 on a continuation frame from the client → 1002', async function () {
      const setup = await connectToOurServer(true, 'permessage-deflate');
      const compressed = deflateMessage('x'.repeat(500));
      setup.peer.send(OP.TEXT, compressed.subarray(0, 3), { ...mask, rsv: RSV1, fin: false });
      setup.peer.send(OP.CONT, compressed.subarray(3), { ...mask, rsv: RSV1 });
      await expectServerFailure(setup, 1002);
    });

    it('RSV1 when our server has perMessageDeflate off (offer ignored) → 1002', async function () {
      const setup = await connectToOurServer(false, 'permessage-deflate; client_max_window_bits');
      expect(setup.headers).to.not.have.property('sec-websocket-extensions');
      expect(setup.info.extensions).to.equal('');
      setup.peer.send(OP.TEXT, deflateMessage('hello'), { ...mask, rsv: RSV1 });
      await expectServerFailure(setup, 1002);
    });

    it('RSV1 from a client that offered nothing → 1002', async function () {
      const setup = await connectToOurServer(true, undefined);
      expect(setup.info.extensions).to.equal('');
      setup.peer.send(OP.TEXT, deflateMessage('hello'), { ...mask, rsv: RSV1 });
      await expectServerFailure(setup, 1002);
    });

    it('a zip bomb against maxPayload 1 MiB → 1009', async function () {
      const setup = await connectToOurServer(true, 'permessage-deflate', MiB);
      setup.peer.send(OP.BINARY, deflateMessage(Buffer.alloc(16 * MiB)), { ...mask, rsv: RSV1 });
      await expectServerFailure(setup, 1009);
    });

    it('invalid compressed data from the client → 1007', async function () {
      const setup = await connectToOurServer(true, 'permessage-deflate');
      setup.peer.send(OP.TEXT, Buffer.from([0xff, 0xfe, 0xfd]), { ...mask, rsv: RSV1 });
      await expectServerFailure(setup, 1007);
    });

    it('a fragmented compressed message is delivered; the echo is compressed above the threshold and plain below it', async function () {
      const setup = await connectToOurServer({ threshold: 200 }, 'permessage-deflate; client_max_window_bits');
      expect(setup.info.extensions).to.equal('permessage-deflate');
      const { readable, writable } = setup.info;
      readable.pipeTo(writable).catch(() => {});
      const big = 'echo me, compressed: ' + 'ü'.repeat(400);
      const compressed = deflateMessage(big);
      setup.peer.send(OP.TEXT, compressed.subarray(0, 10), { ...mask, rsv: RSV1, fin: false });
      setup.peer.send(OP.CONT, compressed.subarray(10), mask);
      const echo = await setup.peer.nextFrame();
      expect(echo.masked).to.equal(false);
      expect(echo.rsv).to.equal(RSV1);
      expect(inflateMessage(echo.payload).toString()).to.equal(big);
      setup.peer.send(OP.BINARY, deflateMessage(Buffer.from([9, 9, 9])), { ...mask, rsv: RSV1 });
      const small = await setup.peer.nextFrame();
      expect(small.rsv).to.equal(0);
      expect(small.payload.equals(Buffer.from([9, 9, 9]))).to.equal(true);
      setup.peer.sendClose(1000, '', mask);
      const close = await setup.peer.nextFrame();
      expect(close.opcode).to.equal(OP.CLOSE);
      await setup.peer.waitForEnd();
      setup.peer.socket.end();
      expect(await setup.stream.closed).to.deep.equal({ closeCode: 1000, reason: '' });
    });

    it('server_max_window_bits offered: the echo inflates with that window; server_no_context_takeover: each echo stands alone', async function () {
      const setup = await connectToOurServer({ threshold: 0 }, 'permessage-deflate; server_no_context_takeover; server_max_window_bits=9');
      expect(setup.info.extensions).to.equal('permessage-deflate; server_no_context_takeover; server_max_window_bits=9');
      const { readable, writable } = setup.info;
      readable.pipeTo(writable).catch(() => {});
      const block = pseudoRandom(2048, 77);
      const message = Buffer.concat([block, block, block]);
      for (let i = 0; i < 2; i++) {
        setup.peer.send(OP.BINARY, deflateMessage(message), { ...mask, rsv: RSV1 });
        const echo = await setup.peer.nextFrame();
        expect(echo.rsv).to.equal(RSV1);
        // A fresh, window-enforcing inflater: no reference before the message, none beyond 512 bytes.
        expect(inflateMessage(echo.payload, 9).equals(message), `echo ${i + 1}`).to.equal(true);
      }
      setup.peer.sendClose(1000, '', mask);
      await setup.peer.waitForEnd();
      setup.peer.socket.end();
      expect(await setup.stream.closed).to.deep.equal({ closeCode: 1000, reason: '' });
    });
    it('a client that vanishes while its message is being inflated and echoed compressed: closed rejects, the server goes on', async function () {
      const setup = await connectToOurServer({ threshold: 0 }, 'permessage-deflate');
      const { readable, writable } = setup.info;
      readable.pipeTo(writable).catch(() => {});
      setup.peer.send(OP.BINARY, deflateMessage(pseudoRandom(4 * MiB, 31)), { ...mask, rsv: RSV1 });
      setup.peer.socket.destroy();
      const error = await rejectionOf(setup.stream.closed);
      expect(error).to.be.an.instanceOf(WebSocketError);
      expect((error as WebSocketError).closeCode).to.equal(1006);
      // The same server still accepts, inflates and compresses.
      const reader = setup.server.connections.getReader();
      const [{ peer }, { value: stream }] = await Promise.all([rawClient((setup.server.address() as AddressInfo).port, 'permessage-deflate'), reader.read()]);
      reader.releaseLock();
      const opened = await stream!.opened;
      opened.readable.pipeTo(opened.writable).catch(() => {});
      peer.send(OP.TEXT, deflateMessage('still here'), { ...mask, rsv: RSV1 });
      const echo = await peer.nextFrame();
      expect(inflateMessage(echo.payload).toString()).to.equal('still here');
      peer.sendClose(1000, '', mask);
      await peer.waitForEnd();
      peer.socket.end();
      expect(await stream!.closed).to.deep.equal({ closeCode: 1000, reason: '' });
    });
  });
});
