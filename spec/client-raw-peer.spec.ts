// The client's connection behaviour (docs/semantics.md) against a scripted raw-TCP server: sending, pings, receiving,
// the closing handshake, protocol errors, abrupt ends, ordering, backpressure.
import { expect } from 'chai';
import { once } from 'node:events';
import { WebSocketError, WebSocketStream, type WebSocketStreamOptions } from '../lib/index.js';
import { ByteTap, expectDOMException, expectTypeError, macrotasks, OP, patternBytes, promiseState, rejectionOf, textOfBytes, track, untilSettled } from './helpers/conn.js';
import { closePayload, rawFrame, startRawServer, testCert, type RawFrame, type RawPeer, type RawServer, type RawServerOptions } from './helpers/raw-peer.js';

type Message = string | Uint8Array;

const servers: RawServer[] = [];

async function rawServer(options: RawServerOptions = {}): Promise<RawServer> {
  const server = await startRawServer(options);
  servers.push(server);
  return server;
}

interface Client {
  server: RawServer;
  wss: WebSocketStream;
  peer: RawPeer;
  readable: ReadableStream<Message>;
  writable: WritableStream<unknown>;
}

/** A client connected to a fresh raw server; `opened` is awaited before anything else runs. */
async function connect(options: WebSocketStreamOptions = {}, serverOptions: RawServerOptions = {}): Promise<Client> {
  const server = await rawServer(serverOptions);
  const wss = new WebSocketStream(server.url, options);
  const { readable, writable } = await wss.opened;
  // The raw server built the peer when it wrote the 101, so this does not wait.
  const { peer } = await server.accept();
  return { server, wss, peer, readable, writable };
}

function expectCloseFrame(frame: RawFrame, code: number | null, reason?: string): void {
  expect(frame.opcode, 'opcode').to.equal(OP.CLOSE);
  expect(frame.masked, 'masked').to.equal(true);
  expect(frame.fin, 'fin').to.equal(true);
  if (code === null) {
    expect(frame.payload.length, 'close payload length').to.equal(0);
    return;
  }
  expect(frame.payload.length).to.be.at.least(2);
  expect(frame.payload.readUInt16BE(0), 'close code').to.equal(code);
  if (reason !== undefined) expect(frame.payload.subarray(2).toString('utf8'), 'close reason').to.equal(reason);
}

function expectOwnBytes(chunk: unknown, expected: Uint8Array): void {
  expect(chunk).to.be.an.instanceOf(Uint8Array);
  const bytes = chunk as Uint8Array;
  expect(Object.getPrototypeOf(bytes), 'prototype').to.equal(Uint8Array.prototype);
  expect(Buffer.isBuffer(bytes)).to.equal(false);
  expect(bytes.byteOffset, 'byteOffset').to.equal(0);
  expect(bytes.buffer.byteLength, 'buffer.byteLength').to.equal(bytes.byteLength);
  expect(bytes.buffer).to.be.an.instanceOf(ArrayBuffer);
  expect(bytes.byteLength).to.equal(expected.byteLength);
  expect(Buffer.from(bytes.buffer, 0, bytes.byteLength).equals(expected), 'content').to.equal(true);
}

function expectWebSocketError(error: unknown, closeCode: number, reason = ''): WebSocketError {
  expect(error).to.be.an.instanceOf(WebSocketError);
  expect((error as WebSocketError).constructor).to.equal(WebSocketError);
  expect((error as WebSocketError).closeCode, 'closeCode').to.equal(closeCode);
  expect((error as WebSocketError).reason, 'reason').to.equal(reason);
  return error as WebSocketError;
}

/** The server closes cleanly: close frame, waits for the echo, ends TCP; `closed` resolves. */
async function serverClosesCleanly(client: Client, code = 1000, reason = ''): Promise<void> {
  client.peer.sendClose(code, reason);
  expectCloseFrame(await client.peer.nextFrame(), code, reason);
  client.peer.socket.end();
  expect(await client.wss.closed).to.deep.equal({ closeCode: code, reason });
}

/** A message split into fragments: cuts at a third and two thirds, plus an empty fragment. */
function fragmented(opcode: number, data: Buffer): Buffer[] {
  const a = Math.floor(data.length / 3);
  const b = Math.floor((2 * data.length) / 3);
  return [
    rawFrame(opcode, data.subarray(0, a), { fin: false }),
    rawFrame(OP.CONT, data.subarray(a, b), { fin: false }),
    rawFrame(OP.CONT, Buffer.alloc(0), { fin: false }),
    rawFrame(OP.CONT, data.subarray(b), { fin: true }),
  ];
}

/**
 * The server writes `frameFor(0)`, `frameFor(1)`… until its writes stop draining: a write returns
 * false and 'drain' does not follow within 500 ms (a client that reads nothing). A stall only counts
 * once more than 2 MiB were written, past what the client's readable may queue, so a slow scheduler
 * cannot fake one early.
 */
async function floodUntilStalled(socket: RawPeer['socket'], frameFor: (index: number) => Buffer, cap: number): Promise<{ sent: number; written: number; stalled: boolean }> {
  let sent = 0;
  let written = 0;
  while (sent < cap) {
    const frame = frameFor(sent);
    written += frame.length;
    sent++;
    if (socket.write(frame)) continue;
    if (written <= 2 * 1024 * 1024) {
      await once(socket, 'drain');
      continue;
    }
    const drained = await Promise.race([
      once(socket, 'drain').then(() => true),
      new Promise<boolean>((resolve) => setTimeout(resolve, 500, false)),
    ]);
    if (!drained) return { sent, written, stalled: true };
  }
  return { sent, written, stalled: false };
}

async function readOne(reader: ReadableStreamDefaultReader<Message>): Promise<Message> {
  const { value, done } = await reader.read();
  expect(done, 'readable ended early').to.equal(false);
  return value!;
}

describe('connection (client against a raw peer)', () => {
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });

  describe('sending', () => {
    it('masks every frame with a fresh key', async () => {
      const client = await connect();
      const tap = new ByteTap(client.peer.socket);
      const writer = client.writable.getWriter();
      const sent: Array<string | Uint8Array> = ['a', 'a', 'hello', new Uint8Array([1, 2, 3]), new Uint8Array(200).fill(7), textOfBytes(70000), '', 'z'];
      for (const message of sent) await writer.write(message);
      client.wss.close({ closeCode: 4000, reason: 'done' });
      for (let i = 0; i < sent.length; i++) await client.peer.nextFrame();
      expectCloseFrame(await client.peer.nextFrame(), 4000, 'done');
      const frames = tap.frames();
      expect(frames).to.have.length(sent.length + 1);
      for (const frame of frames) {
        expect(frame.masked).to.equal(true);
        expect(frame.rsv).to.equal(0);
      }
      const keys = new Set(frames.map((frame) => frame.maskKey!.toString('hex')));
      expect(keys.size, 'distinct masking keys').to.equal(frames.length);
      frames.slice(0, sent.length).forEach((frame, i) => {
        const message = sent[i]!;
        expect(frame.opcode).to.equal(typeof message === 'string' ? OP.TEXT : OP.BINARY);
        expect(frame.payload.equals(Buffer.from(typeof message === 'string' ? Buffer.from(message) : message))).to.equal(true);
      });
      client.peer.sendClose(4000, 'done');
      client.peer.socket.end();
      expect(await client.wss.closed).to.deep.equal({ closeCode: 4000, reason: 'done' });
    });

    it('sends strings as text frames and buffer sources as binary frames', async () => {
      const client = await connect();
      const writer = client.writable.getWriter();
      await writer.write('hello');
      await writer.write('');
      await writer.write('é€😀');
      await writer.write(new Uint8Array([0, 255]));
      await writer.write(new ArrayBuffer(0));
      const expected: Array<[number, Buffer]> = [
        [OP.TEXT, Buffer.from('hello')],
        [OP.TEXT, Buffer.alloc(0)],
        [OP.TEXT, Buffer.from('é€😀')],
        [OP.BINARY, Buffer.from([0, 255])],
        [OP.BINARY, Buffer.alloc(0)],
      ];
      for (const [opcode, payload] of expected) {
        const frame = await client.peer.nextFrame();
        expect(frame.opcode).to.equal(opcode);
        expect(frame.fin).to.equal(true);
        expect(frame.masked).to.equal(true);
        expect(frame.payload.equals(payload)).to.equal(true);
      }
      await serverClosesCleanly(client);
    });

    it('sends exactly the bytes a Buffer, DataView, ArrayBuffer or typed array views', async () => {
      const client = await connect();
      const writer = client.writable.getWriter();
      const backing = new ArrayBuffer(16);
      new Uint8Array(backing).forEach((_, i, array) => (array[i] = i + 1));
      const bytesOf = (start: number, end: number): Buffer => Buffer.from(new Uint8Array(backing).slice(start, end));
      const pooled = Buffer.from('pooled buffer');
      const cases: Array<[unknown, Buffer]> = [
        [pooled, Buffer.from('pooled buffer')],
        [Buffer.from(backing, 5, 4), bytesOf(5, 9)],
        [new DataView(backing, 3, 5), bytesOf(3, 8)],
        [backing, bytesOf(0, 16)],
        [new Uint16Array(backing, 4, 2), bytesOf(4, 8)],
        [new Float64Array(backing, 8, 1), bytesOf(8, 16)],
        [new Uint8Array(backing).subarray(10), bytesOf(10, 16)],
        [new BigInt64Array(backing, 0, 1), bytesOf(0, 8)],
        [new Uint8ClampedArray(backing, 1, 2), bytesOf(1, 3)],
        [new Int32Array(backing, 12, 0), Buffer.alloc(0)],
      ];
      for (const [chunk] of cases) await writer.write(chunk);
      for (const [, payload] of cases) {
        const frame = await client.peer.nextFrame();
        expect(frame.opcode).to.equal(OP.BINARY);
        expect(frame.payload.toString('hex')).to.equal(payload.toString('hex'));
      }
      await serverClosesCleanly(client);
    });

    it('sends what the source held when write() returned, whatever the caller does to it later', async () => {
      const client = await connect();
      const writer = client.writable.getWriter();
      const small = Buffer.from('original bytes');
      const p1 = writer.write(small);
      small.fill(0x21);
      await p1;
      const arrayBuffer = new Uint8Array([9, 8, 7, 6]).buffer;
      const p2 = writer.write(arrayBuffer);
      new Uint8Array(arrayBuffer).fill(0);
      await p2;
      // Large enough that the socket cannot take it at once.
      const large = new Uint8Array(4 * 1024 * 1024).fill(1);
      const p3 = writer.write(large);
      large.fill(2);
      await p3;
      expect((await client.peer.nextFrame()).payload.toString()).to.equal('original bytes');
      expect([...(await client.peer.nextFrame()).payload]).to.deep.equal([9, 8, 7, 6]);
      const frame = await client.peer.nextFrame();
      expect(frame.payload.length).to.equal(large.length);
      expect(frame.payload.every((byte) => byte === 1)).to.equal(true);
      await serverClosesCleanly(client);
    });

    it('converts anything else to a string and sends it as text', async () => {
      const client = await connect();
      const writer = client.writable.getWriter();
      const chunks: Array<[unknown, string]> = [
        [42, '42'],
        [null, 'null'],
        [undefined, 'undefined'],
        [true, 'true'],
        [{}, '[object Object]'],
        [{ toString: () => 'custom' }, 'custom'],
        [[1, 2], '1,2'],
        [1.5e300, '1.5e+300'],
        ['a\uD800b', 'a\uFFFDb'],
      ];
      for (const [chunk] of chunks) await writer.write(chunk);
      for (const [, text] of chunks) {
        const frame = await client.peer.nextFrame();
        expect(frame.opcode).to.equal(OP.TEXT);
        expect(frame.payload.toString('utf8')).to.equal(text);
      }
      await serverClosesCleanly(client);
    });

    it('rejects a Symbol with TypeError, errors the writable, sends nothing and stays open', async () => {
      const client = await connect();
      const writer = client.writable.getWriter();
      const error = await rejectionOf(writer.write(Symbol('nope')));
      expectTypeError(error);
      expect(await rejectionOf(writer.write('after'))).to.equal(error);
      expect(await rejectionOf(writer.closed)).to.equal(error);
      // The connection is still open: messages still arrive.
      client.peer.send(OP.TEXT, 'still open');
      const reader = client.readable.getReader();
      expect(await readOne(reader)).to.equal('still open');
      // Nothing was sent for the failed writes: the first frame the server sees is the close echo.
      await serverClosesCleanly(client, 1000, 'bye');
    });

    it('rejects a chunk whose string conversion throws with that error', async () => {
      const client = await connect();
      const thrown = new RangeError('from toString');
      const writer = client.writable.getWriter();
      expect(
        await rejectionOf(
          writer.write({
            toString() {
              throw thrown;
            },
          }),
        ),
      ).to.equal(thrown);
      await serverClosesCleanly(client);
    });

    it('rejects an object that cannot become a primitive with TypeError', async () => {
      const client = await connect();
      const writer = client.writable.getWriter();
      const self = {
        toString(): unknown {
          return this;
        },
        valueOf(): unknown {
          return this;
        },
      };
      expectTypeError(await rejectionOf(writer.write(self)));
      await serverClosesCleanly(client);
    });

    const unsendable: Array<[string, () => unknown]> = [
      ['a SharedArrayBuffer', () => new SharedArrayBuffer(8)],
      ['a Uint8Array on a SharedArrayBuffer', () => new Uint8Array(new SharedArrayBuffer(8))],
      ['a resizable ArrayBuffer', () => new ArrayBuffer(8, { maxByteLength: 16 })],
      ['a DataView on a resizable ArrayBuffer', () => new DataView(new ArrayBuffer(8, { maxByteLength: 16 }))],
    ];
    for (const [name, make] of unsendable) {
      it(`rejects ${name} with TypeError and sends nothing`, async () => {
        const client = await connect();
        const writer = client.writable.getWriter();
        const error = await rejectionOf(writer.write(make()));
        expectTypeError(error);
        expect(await rejectionOf(writer.closed)).to.equal(error);
        await serverClosesCleanly(client);
      });
    }
  });

  describe('pings and pongs', () => {
    it('answers pings of 0 and 125 bytes with pongs carrying the same payload', async () => {
      const client = await connect();
      client.peer.send(OP.PING);
      const empty = await client.peer.nextFrame();
      expect(empty.opcode).to.equal(OP.PONG);
      expect(empty.masked).to.equal(true);
      expect(empty.payload.length).to.equal(0);
      const payload = patternBytes(125, 9);
      client.peer.send(OP.PING, payload);
      const full = await client.peer.nextFrame();
      expect(full.opcode).to.equal(OP.PONG);
      expect(full.masked).to.equal(true);
      expect(full.payload.equals(payload)).to.equal(true);
      await serverClosesCleanly(client);
    });

    it('answers a ping in the middle of a fragmented message, and still delivers the message', async () => {
      const client = await connect();
      const reader = client.readable.getReader();
      client.peer.send(OP.TEXT, 'ab', { fin: false });
      client.peer.send(OP.PING, 'mid-1');
      client.peer.send(OP.CONT, 'cd', { fin: false });
      client.peer.send(OP.CONT, 'ef', { fin: true });
      // Same again, all in one TCP write, for a binary message.
      client.peer.sendRaw(
        Buffer.concat([
          rawFrame(OP.BINARY, Buffer.from([1, 2]), { fin: false }),
          rawFrame(OP.PING, 'mid-2'),
          rawFrame(OP.CONT, Buffer.from([3]), { fin: true }),
        ]),
      );
      for (const expected of ['mid-1', 'mid-2']) {
        const pong = await client.peer.nextFrame();
        expect(pong.opcode).to.equal(OP.PONG);
        expect(pong.payload.toString()).to.equal(expected);
      }
      expect(await readOne(reader)).to.equal('abcdef');
      expectOwnBytes(await readOne(reader), new Uint8Array([1, 2, 3]));
      await serverClosesCleanly(client);
    });

    it('ignores unsolicited pongs: no reply, and the connection stays open', async () => {
      const client = await connect();
      const reader = client.readable.getReader();
      client.peer.send(OP.PONG, 'unsolicited');
      client.peer.send(OP.PONG);
      client.peer.send(OP.TEXT, 'after the pongs');
      expect(await readOne(reader)).to.equal('after the pongs');
      client.peer.send(OP.PING, 'probe');
      // The first frame the client sent since is the answer to the probe.
      const pong = await client.peer.nextFrame();
      expect(pong.opcode).to.equal(OP.PONG);
      expect(pong.payload.toString()).to.equal('probe');
      await serverClosesCleanly(client);
    });
  });

  describe('receiving', () => {
    for (const size of [0, 125, 126, 65535, 65536, 1024 * 1024]) {
      it(`delivers ${size}-byte text and binary messages, whole and fragmented, as strings and owned Uint8Arrays`, async () => {
        const client = await connect();
        const reader = client.readable.getReader();
        const binary = patternBytes(size, size + 3);
        const text = textOfBytes(size);
        const textBytes = Buffer.from(text);
        expect(textBytes.length).to.equal(size);
        // The first two in one TCP write, the rest one write per frame.
        client.peer.sendRaw(Buffer.concat([rawFrame(OP.BINARY, binary), rawFrame(OP.TEXT, textBytes)]));
        for (const frame of fragmented(OP.BINARY, binary)) client.peer.sendRaw(frame);
        for (const frame of fragmented(OP.TEXT, textBytes)) client.peer.sendRaw(frame);
        expectOwnBytes(await readOne(reader), binary);
        expect(await readOne(reader)).to.equal(text);
        expectOwnBytes(await readOne(reader), binary);
        expect(await readOne(reader)).to.equal(text);
        await serverClosesCleanly(client);
      });
    }

    it('gives each small binary message its own buffer when many arrive in one TCP read', async () => {
      const client = await connect();
      const reader = client.readable.getReader();
      const messages = Array.from({ length: 20 }, (_, i) => patternBytes(i + 1, i + 100));
      client.peer.sendRaw(Buffer.concat(messages.map((message) => rawFrame(OP.BINARY, message))));
      for (const message of messages) expectOwnBytes(await readOne(reader), message);
      await serverClosesCleanly(client);
    });

    it('reassembles a message from many one-byte fragments, split across UTF-8 sequences', async () => {
      const client = await connect();
      const reader = client.readable.getReader();
      const text = textOfBytes(40);
      const bytes = Buffer.from(text);
      const frames = [...bytes].map((byte, i) => rawFrame(i === 0 ? OP.TEXT : OP.CONT, Buffer.from([byte]), { fin: i === bytes.length - 1 }));
      client.peer.sendRaw(Buffer.concat(frames));
      expect(await readOne(reader)).to.equal(text);
      await serverClosesCleanly(client);
    });
  });

  describe('closing handshake', () => {
    it('echoes the server close code and reason, waits for the server to close TCP, then resolves closed', async () => {
      const client = await connect();
      const tap = new ByteTap(client.peer.socket);
      const closed = track(client.wss.closed);
      client.peer.sendClose(4001, 'bye');
      expectCloseFrame(await client.peer.nextFrame(), 4001, 'bye');
      // The client must not close TCP first (RFC 6455 §7.1.1): give its I/O a few turns.
      await macrotasks(20);
      expect(client.peer.ended, 'client closed TCP first').to.equal(false);
      expect(closed.settled, 'closed settled before the server closed TCP').to.equal(false);
      client.peer.socket.end();
      expect(await client.wss.closed).to.deep.equal({ closeCode: 4001, reason: 'bye' });
      expect(tap.frames()).to.have.length(1);
    });

    it('echoes an empty close frame with an empty body and reports 1005', async () => {
      const client = await connect();
      client.peer.sendClose();
      const echo = await client.peer.nextFrame();
      expectCloseFrame(echo, null);
      client.peer.socket.end();
      expect(await client.wss.closed).to.deep.equal({ closeCode: 1005, reason: '' });
    });

    it('passes through codes JavaScript cannot send (1001) and UTF-8 reasons', async () => {
      const client = await connect();
      await serverClosesCleanly(client, 1001, 'going away é€');
    });

    it('closes the readable when the close frame arrives, after the queued messages, and errors the writable with InvalidStateError', async () => {
      const client = await connect();
      const writer = client.writable.getWriter();
      client.peer.sendRaw(Buffer.concat([rawFrame(OP.TEXT, 'one'), rawFrame(OP.BINARY, Buffer.from([2])), rawFrame(OP.CLOSE, closePayload(1000, 'end'))]));
      expectCloseFrame(await client.peer.nextFrame(), 1000, 'end');
      // TCP is still open: the readable ended on the close frame alone.
      const reader = client.readable.getReader();
      expect(await readOne(reader)).to.equal('one');
      expectOwnBytes(await readOne(reader), new Uint8Array([2]));
      expect(await reader.read()).to.deep.equal({ value: undefined, done: true });
      const writableError = await rejectionOf(writer.closed);
      expectDOMException(writableError, 'InvalidStateError');
      expect(await rejectionOf(writer.write('late'))).to.equal(writableError);
      expect(client.peer.ended).to.equal(false);
      client.peer.socket.end();
      expect(await client.wss.closed).to.deep.equal({ closeCode: 1000, reason: 'end' });
      // The readable stays closed and the writable stays errored.
      expect(await reader.read()).to.deep.equal({ value: undefined, done: true });
      expect(await rejectionOf(writer.closed)).to.equal(writableError);
      expect(await client.peer.waitForEnd()).to.deep.equal([]);
    });

    it('sends no data frame after close(): a write rejects with InvalidStateError', async () => {
      const client = await connect();
      const writer = client.writable.getWriter();
      await writer.write('before');
      client.wss.close({ closeCode: 3000, reason: 'closing' });
      const error = await rejectionOf(writer.write('after'));
      expectDOMException(error, 'InvalidStateError');
      expect(await rejectionOf(writer.write(new Uint8Array(3)))).to.equal(error);
      expect((await client.peer.nextFrame()).payload.toString()).to.equal('before');
      expectCloseFrame(await client.peer.nextFrame(), 3000, 'closing');
      client.peer.sendClose(3000, 'closing');
      client.peer.socket.end();
      expect(await client.wss.closed).to.deep.equal({ closeCode: 3000, reason: 'closing' });
      expect(await client.peer.waitForEnd(), 'frames after the close frame').to.deep.equal([]);
    });

    it('close() without a code sends an empty close frame; a reason alone sends 1000', async () => {
      const first = await connect();
      first.wss.close();
      expectCloseFrame(await first.peer.nextFrame(), null);
      first.peer.sendClose();
      first.peer.socket.end();
      expect(await first.wss.closed).to.deep.equal({ closeCode: 1005, reason: '' });

      const second = await connect();
      second.wss.close({ reason: 'only a reason' });
      expectCloseFrame(await second.peer.nextFrame(), 1000, 'only a reason');
      second.peer.sendClose(1000, 'only a reason');
      second.peer.socket.end();
      expect(await second.wss.closed).to.deep.equal({ closeCode: 1000, reason: 'only a reason' });
    });

    it('destroys the socket at closeTimeout when the server never answers the close frame (1006)', async () => {
      const client = await connect({ closeTimeout: 300 });
      const reader = client.readable.getReader();
      const writer = client.writable.getWriter();
      client.wss.close({ closeCode: 4000, reason: 'hello?' });
      expectCloseFrame(await client.peer.nextFrame(), 4000, 'hello?');
      // The server neither answers nor closes; the client gives up.
      expect(await client.peer.waitForEnd()).to.deep.equal([]);
      const error = expectWebSocketError(await rejectionOf(client.wss.closed), 1006);
      expect(await rejectionOf(reader.read())).to.equal(error);
      expect(await rejectionOf(writer.closed)).to.equal(error);
    });

    it('closes TCP itself at closeTimeout when the server echoes the close but keeps TCP open: still clean', async () => {
      const client = await connect({ closeTimeout: 300 });
      client.wss.close({ closeCode: 4000, reason: 'x' });
      expectCloseFrame(await client.peer.nextFrame(), 4000, 'x');
      client.peer.sendClose(4000, 'x');
      // The server does not end TCP; the client must, at its close timeout.
      expect(await client.peer.waitForEnd()).to.deep.equal([]);
      expect(await client.wss.closed).to.deep.equal({ closeCode: 4000, reason: 'x' });
    });

    it('closes TCP itself at closeTimeout after echoing a server close when the server keeps TCP open: still clean', async () => {
      const client = await connect({ closeTimeout: 300 });
      client.peer.sendClose(4005, 'server first');
      expectCloseFrame(await client.peer.nextFrame(), 4005, 'server first');
      expect(await client.peer.waitForEnd()).to.deep.equal([]);
      expect(await client.wss.closed).to.deep.equal({ closeCode: 4005, reason: 'server first' });
    });

    it('drops data messages that arrive after our close frame, but keeps those queued before it', async () => {
      const client = await connect();
      client.peer.send(OP.TEXT, 'queued before close');
      client.peer.send(OP.PING, 'sync');
      const sync = await client.peer.nextFrame();
      expect(sync.opcode).to.equal(OP.PONG);
      client.wss.close({ closeCode: 4000 });
      expectCloseFrame(await client.peer.nextFrame(), 4000, '');
      client.peer.send(OP.TEXT, 'sent after the client closed');
      client.peer.send(OP.BINARY, Buffer.from([1]));
      client.peer.sendClose(4000);
      client.peer.socket.end();
      expect(await client.wss.closed).to.deep.equal({ closeCode: 4000, reason: '' });
      const reader = client.readable.getReader();
      expect(await readOne(reader)).to.equal('queued before close');
      expect(await reader.read()).to.deep.equal({ value: undefined, done: true });
    });

    it('ignores everything the server sends after its close frame, even invalid frames', async () => {
      const client = await connect();
      client.peer.sendRaw(
        Buffer.concat([
          rawFrame(OP.CLOSE, closePayload(4002, 'last')),
          rawFrame(OP.TEXT, 'after close'),
          rawFrame(OP.PING, 'after close'),
          rawFrame(OP.TEXT, Buffer.from([0xff]), { mask: true, rsv: 7 }),
          Buffer.from([0x0f, 0xff]),
        ]),
      );
      expectCloseFrame(await client.peer.nextFrame(), 4002, 'last');
      client.peer.socket.end();
      expect(await client.wss.closed).to.deep.equal({ closeCode: 4002, reason: 'last' });
      expect(await client.peer.waitForEnd(), 'frames after the echo').to.deep.equal([]);
      const reader = client.readable.getReader();
      expect(await reader.read()).to.deep.equal({ value: undefined, done: true });
    });

    it('echoes a 123-byte reason unchanged', async () => {
      const client = await connect();
      await serverClosesCleanly(client, 4004, '€'.repeat(41));
    });

    for (const [label, code, reason, expectedCode] of [
      ['the close code', 4000, 'stop', 4000],
      ['1005 for an empty close frame', null, '', 1005],
    ] as const) {
      it(`a write in progress when the server closes and then resets: the write rejects with the InvalidStateError, closed with ${label}`, async () => {
        const client = await connect();
        const socket = client.peer.socket;
        const reader = client.readable.getReader();
        const writer = client.writable.getWriter();
        const firstBytes = once(socket, 'data').then(() => socket.pause());
        const write = writer.write(new Uint8Array(8 * 1024 * 1024));
        const order: string[] = [];
        const writeOutcome = write.then(
          () => order.push('write resolved'),
          (error: unknown) => {
            order.push('write rejected');
            return error;
          },
        );
        const closedOutcome = client.wss.closed.then(
          () => order.push('closed resolved'),
          (error: unknown) => {
            order.push('closed rejected');
            return error;
          },
        );
        await firstBytes;
        if (code === null) client.peer.sendClose();
        else client.peer.sendClose(code, reason);
        // The readable ends on the close frame: the client has handled it.
        expect(await reader.read()).to.deep.equal({ value: undefined, done: true });
        // The write is still in progress (the server reads nothing), so nothing has settled.
        await macrotasks(5);
        expect(order).to.deep.equal([]);
        socket.resetAndDestroy();
        const closedError = await closedOutcome;
        const writeError = await writeOutcome;
        expect(order).to.deep.equal(['closed rejected', 'write rejected']);
        expectWebSocketError(closedError, expectedCode, reason);
        // The write rejects with the InvalidStateError the peer's close frame errored the writable with.
        expectDOMException(writeError, 'InvalidStateError');
        expect(await rejectionOf(writer.closed)).to.equal(writeError);
        expect(await rejectionOf(writer.write('late'))).to.equal(writeError);
      });
    }

    it('reports the first close frame received, not what it sent', async () => {
      const client = await connect();
      client.wss.close({ closeCode: 4000, reason: 'mine' });
      expectCloseFrame(await client.peer.nextFrame(), 4000, 'mine');
      client.peer.sendClose(4999, 'theirs');
      client.peer.socket.end();
      expect(await client.wss.closed).to.deep.equal({ closeCode: 4999, reason: 'theirs' });
    });
  });

  describe('protocol errors from the server', () => {
    const big = Buffer.alloc(126, 0x61);
    const cases: Array<{ name: string; code: number; options?: WebSocketStreamOptions; send(peer: RawPeer): void }> = [
      { name: 'a masked frame', code: 1002, send: (peer) => peer.send(OP.TEXT, 'masked', { mask: true }) },
      { name: 'RSV1 set', code: 1002, send: (peer) => peer.send(OP.TEXT, 'x', { rsv: 4 }) },
      { name: 'RSV2 set', code: 1002, send: (peer) => peer.send(OP.BINARY, 'x', { rsv: 2 }) },
      { name: 'RSV3 set', code: 1002, send: (peer) => peer.send(OP.TEXT, 'x', { rsv: 1 }) },
      { name: 'RSV1 on a ping', code: 1002, send: (peer) => peer.send(OP.PING, 'x', { rsv: 4 }) },
      { name: 'reserved opcode 3', code: 1002, send: (peer) => peer.send(3, 'x') },
      { name: 'reserved opcode 7', code: 1002, send: (peer) => peer.send(7) },
      { name: 'reserved opcode 11', code: 1002, send: (peer) => peer.send(11, 'x') },
      { name: 'reserved opcode 15', code: 1002, send: (peer) => peer.send(15) },
      { name: 'a fragmented ping', code: 1002, send: (peer) => peer.send(OP.PING, 'x', { fin: false }) },
      { name: 'a fragmented close', code: 1002, send: (peer) => peer.send(OP.CLOSE, closePayload(1000), { fin: false }) },
      { name: 'a 126-byte ping', code: 1002, send: (peer) => peer.send(OP.PING, big) },
      { name: 'a 126-byte pong', code: 1002, send: (peer) => peer.send(OP.PONG, big) },
      { name: 'a 126-byte close', code: 1002, send: (peer) => peer.send(OP.CLOSE, Buffer.concat([closePayload(1000), Buffer.alloc(124, 0x61)])) },
      { name: 'a ping with a 16-bit length', code: 1002, send: (peer) => peer.send(OP.PING, 'x', { lengthBits: 16 }) },
      { name: 'a continuation with no message', code: 1002, send: (peer) => peer.send(OP.CONT, 'x') },
      {
        name: 'a new text frame inside a fragmented message',
        code: 1002,
        send: (peer) => {
          peer.send(OP.BINARY, 'a', { fin: false });
          peer.send(OP.TEXT, 'b');
        },
      },
      {
        name: 'a 64-bit length with the top bit set',
        code: 1002,
        send: (peer) => peer.sendRaw(Buffer.from([0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 0])),
      },
      { name: 'invalid UTF-8 in a text message', code: 1007, send: (peer) => peer.send(OP.TEXT, Buffer.from([0x61, 0xc3, 0x28])) },
      { name: 'a surrogate encoded in UTF-8', code: 1007, send: (peer) => peer.send(OP.TEXT, Buffer.from([0xed, 0xa0, 0x80])) },
      {
        name: 'invalid UTF-8 across fragments',
        code: 1007,
        send: (peer) => {
          peer.send(OP.TEXT, Buffer.from([0x61, 0xe2, 0x82]), { fin: false });
          peer.send(OP.CONT, Buffer.from([0x28]), { fin: true });
        },
      },
      {
        name: 'a text message ending inside a UTF-8 sequence',
        code: 1007,
        send: (peer) => {
          peer.send(OP.TEXT, Buffer.from([0x61]), { fin: false });
          peer.send(OP.CONT, Buffer.from([0xf0, 0x9f, 0x98]), { fin: true });
        },
      },
      ...[0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535].map((code) => ({
        name: `close code ${code}`,
        code: 1002,
        send: (peer: RawPeer) => peer.send(OP.CLOSE, closePayload(code, 'bad')),
      })),
      { name: 'a one-byte close payload', code: 1002, send: (peer) => peer.send(OP.CLOSE, Buffer.from([0x03])) },
      { name: 'a close reason that is not UTF-8', code: 1007, send: (peer) => peer.send(OP.CLOSE, Buffer.concat([closePayload(1000), Buffer.from([0xff])])) },
      { name: 'a message over maxPayload', code: 1009, options: { maxPayload: 1000 }, send: (peer) => peer.send(OP.BINARY, Buffer.alloc(1001)) },
      {
        name: 'a fragmented message over maxPayload',
        code: 1009,
        options: { maxPayload: 1000 },
        send: (peer) => {
          peer.send(OP.TEXT, 'a'.repeat(600), { fin: false });
          peer.send(OP.CONT, 'a'.repeat(401), { fin: true });
        },
      },
    ];
    for (const { name, code, options, send } of cases) {
      it(`fails with ${code} on ${name}: close frame, then closed rejects with 1006`, async () => {
        const client = await connect(options);
        const reader = client.readable.getReader();
        const writer = client.writable.getWriter();
        send(client.peer);
        expectCloseFrame(await client.peer.nextFrame(), code);
        expect(await client.peer.waitForEnd(), 'frames after the close frame').to.deep.equal([]);
        const error = expectWebSocketError(await rejectionOf(client.wss.closed), 1006);
        expect(await rejectionOf(reader.read())).to.equal(error);
        expect(await rejectionOf(writer.closed)).to.equal(error);
      });
    }

    it('accepts a message of exactly maxPayload bytes', async () => {
      const client = await connect({ maxPayload: 1000 });
      const reader = client.readable.getReader();
      client.peer.send(OP.BINARY, Buffer.alloc(1000, 5));
      expectOwnBytes(await readOne(reader), Buffer.alloc(1000, 5));
      await serverClosesCleanly(client);
    });

    it('fails fast (1007) on an invalid byte in the first fragment, before the rest is sent', async () => {
      const client = await connect();
      client.peer.send(OP.TEXT, Buffer.from([0x61, 0x62, 0xff]), { fin: false });
      // A ping the client would answer if it were still reading the message normally.
      client.peer.send(OP.PING, 'still reading?');
      expectCloseFrame(await client.peer.nextFrame(), 1007);
      expectWebSocketError(await rejectionOf(client.wss.closed), 1006);
    });

    it('fails fast (1007) on an invalid byte early in a large frame whose payload is still arriving', async function () {
      this.timeout(5000);
      const client = await connect();
      const frame = rawFrame(OP.TEXT, Buffer.concat([Buffer.from([0x61, 0xc0, 0x80]), Buffer.alloc(100000, 0x61)]));
      client.peer.sendRaw(frame.subarray(0, 20));
      expectCloseFrame(await client.peer.nextFrame(), 1007);
      expectWebSocketError(await rejectionOf(client.wss.closed), 1006);
    });
  });

  describe('abrupt ends', () => {
    it('a server destroy() while open: closed rejects 1006, the readable and writable error with that same object', async () => {
      const client = await connect();
      const reader = client.readable.getReader();
      const writer = client.writable.getWriter();
      const read = reader.read();
      client.peer.socket.destroy();
      const error = expectWebSocketError(await rejectionOf(client.wss.closed), 1006);
      expect(await rejectionOf(read)).to.equal(error);
      expect(await rejectionOf(writer.closed)).to.equal(error);
      expect(await rejectionOf(writer.write('late'))).to.equal(error);
    });

    it('a reset while a write is in progress: the write rejects with the close error', async () => {
      const client = await connect();
      const reader = client.readable.getReader();
      const writer = client.writable.getWriter();
      const socket = client.peer.socket;
      const firstBytes = once(socket, 'data').then(() => socket.pause());
      const write = track(writer.write(new Uint8Array(8 * 1024 * 1024)));
      await firstBytes;
      await macrotasks(5);
      expect(write.settled, 'the 8 MiB write settled while the server read nothing').to.equal(false);
      socket.resetAndDestroy();
      const error = expectWebSocketError(await rejectionOf(client.wss.closed), 1006);
      expect(await rejectionOf(write.promise)).to.equal(error);
      expect(await rejectionOf(reader.read())).to.equal(error);
      expect(await rejectionOf(writer.closed)).to.equal(error);
    });

    it('TCP FIN without a close frame while a write is in progress to a server that reads nothing: closed and the write reject (1006)', async function () {
      this.timeout(3000);
      const client = await connect();
      const writer = client.writable.getWriter();
      const socket = client.peer.socket;
      const firstBytes = once(socket, 'data').then(() => socket.pause());
      const write = track(writer.write(new Uint8Array(8 * 1024 * 1024)));
      await firstBytes;
      await macrotasks(5);
      expect(write.settled).to.equal(false);
      // The server half-closes and goes on reading nothing: the WebSocket connection has failed,
      // and the client must not wait for its unsendable write to drain (which never happens).
      socket.end();
      const error = expectWebSocketError(await rejectionOf(client.wss.closed), 1006);
      expect(await rejectionOf(write.promise)).to.equal(error);
    });

    it('a reset while idle: closed rejects 1006', async () => {
      const client = await connect();
      const reader = client.readable.getReader();
      client.peer.socket.resetAndDestroy();
      const error = expectWebSocketError(await rejectionOf(client.wss.closed), 1006);
      expect(await rejectionOf(reader.read())).to.equal(error);
    });

    it('TCP FIN without a close frame: closed rejects 1006, and the readable errors with that error', async () => {
      const client = await connect();
      client.peer.send(OP.TEXT, 'last words');
      client.peer.socket.end();
      const error = expectWebSocketError(await rejectionOf(client.wss.closed), 1006);
      expect(await client.peer.waitForEnd()).to.deep.equal([]);
      const reader = client.readable.getReader();
      // A ReadableStream that errors drops its queue: what matters is that the error is the same object.
      const result = await reader.read().then(
        (value) => ({ value }),
        (reason: unknown) => ({ reason }),
      );
      if ('value' in result) {
        expect(result.value).to.deep.equal({ value: 'last words', done: false });
        expect(await rejectionOf(reader.read())).to.equal(error);
      } else {
        expect(result.reason).to.equal(error);
      }
    });

    it('a server close frame followed by a reset after the echo is still clean if the echo was flushed', async () => {
      const client = await connect();
      client.peer.sendClose(4003, 'then reset');
      expectCloseFrame(await client.peer.nextFrame(), 4003, 'then reset');
      client.peer.socket.resetAndDestroy();
      expect(await client.wss.closed).to.deep.equal({ closeCode: 4003, reason: 'then reset' });
    });
  });

  describe('ordering (docs/semantics.md#ordering)', () => {
    it('a close frame that came with the 101 is handled after code that runs right after await opened', async () => {
      const server = await rawServer({ afterHead: rawFrame(OP.CLOSE, closePayload(4001, 'early')) });
      const wss = new WebSocketStream(server.url);
      const { writable, readable } = await wss.opened;
      // Synchronously after opened resolved: the close frame must not have been handled yet.
      expect(promiseState(wss.closed)).to.equal('pending');
      const writer = writable.getWriter();
      const large = patternBytes(256 * 1024, 77);
      const write = writer.write(large);
      write.catch(() => {});
      const { peer } = await server.accept();
      const data = await peer.nextFrame();
      expect(data.opcode).to.equal(OP.BINARY);
      expect(data.payload.equals(large)).to.equal(true);
      expectCloseFrame(await peer.nextFrame(), 4001, 'early');
      peer.socket.end();
      expect(await wss.closed).to.deep.equal({ closeCode: 4001, reason: 'early' });
      expect(await readable.getReader().read()).to.deep.equal({ value: undefined, done: true });
    });

    for (const secure of [false, true]) {
      it(`messages that came with the 101 are delivered in order, then the close${secure ? ' (TLS)' : ''}`, async () => {
        const afterHead = Buffer.concat([
          rawFrame(OP.TEXT, 'one'),
          rawFrame(OP.BINARY, Buffer.from([2, 2])),
          rawFrame(OP.PING, 'with the head'),
          ...fragmented(OP.TEXT, Buffer.from('three, in fragments')),
          rawFrame(OP.CLOSE, closePayload(1000, 'done')),
        ]);
        const server = await rawServer({ afterHead, tls: secure });
        const wss = new WebSocketStream(server.url, secure ? { tls: { ca: testCert } } : {});
        const { readable, writable } = await wss.opened;
        expect(promiseState(wss.closed)).to.equal('pending');
        const writer = writable.getWriter();
        const write = writer.write('sent after opened');
        write.catch(() => {});
        const { peer } = await server.accept();
        expect((await peer.nextFrame()).payload.toString()).to.equal('sent after opened');
        const pong = await peer.nextFrame();
        expect(pong.opcode).to.equal(OP.PONG);
        expect(pong.payload.toString()).to.equal('with the head');
        expectCloseFrame(await peer.nextFrame(), 1000, 'done');
        const reader = readable.getReader();
        expect(await readOne(reader)).to.equal('one');
        expectOwnBytes(await readOne(reader), new Uint8Array([2, 2]));
        expect(await readOne(reader)).to.equal('three, in fragments');
        expect(await reader.read()).to.deep.equal({ value: undefined, done: true });
        peer.socket.end();
        expect(await wss.closed).to.deep.equal({ closeCode: 1000, reason: 'done' });
      });
    }
  });

  describe('backpressure', () => {
    it('stops reading when the client reads nothing, and resumes in order when it reads', async function () {
      this.timeout(20000);
      const client = await connect();
      const socket = client.peer.socket;
      const MESSAGE = 64 * 1024;
      const CAP = 1024; // 64 MiB: far past anything a paused client may take
      const frameFor = (index: number): Buffer => {
        const payload = Buffer.alloc(MESSAGE, index & 0xff);
        payload.writeUInt32BE(index, 0);
        return rawFrame(OP.BINARY, payload);
      };
      const { sent, written, stalled } = await floodUntilStalled(socket, frameFor, CAP);
      expect(stalled, `the server's writes kept draining through ${sent} messages`).to.equal(true);
      const accepted = written - socket.writableLength;
      expect(accepted, 'bytes the network took from the server').to.be.below(16 * 1024 * 1024);
      // Now read everything, in order.
      const reader = client.readable.getReader();
      for (let index = 0; index < sent; index++) {
        const chunk = (await readOne(reader)) as Uint8Array;
        expect(chunk.byteLength).to.equal(MESSAGE);
        const view = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        expect(view.readUInt32BE(0), 'message order').to.equal(index);
        expect(view[MESSAGE - 1]).to.equal(index & 0xff);
      }
      await serverClosesCleanly(client, 1000, 'all read');
    });

    it('stops applying backpressure once the client has sent its close frame, so the close handshake completes', async () => {
      const client = await connect();
      const socket = client.peer.socket;
      const frameFor = (index: number): Buffer => {
        const payload = Buffer.alloc(64 * 1024);
        payload.writeUInt32BE(index, 0);
        return rawFrame(OP.BINARY, payload);
      };
      // Fill everything up: the client reads nothing.
      const { sent, stalled } = await floodUntilStalled(socket, frameFor, 1024);
      expect(stalled, 'the client never applied backpressure').to.equal(true);
      client.wss.close({ closeCode: 4000, reason: 'enough' });
      // The client reads (and drops) the rest, so the server's writes drain and our close arrives.
      await once(socket, 'drain');
      expectCloseFrame(await client.peer.nextFrame(), 4000, 'enough');
      client.peer.sendClose(4000, 'enough');
      client.peer.socket.end();
      expect(await client.wss.closed).to.deep.equal({ closeCode: 4000, reason: 'enough' });
      // What was queued before close() is still readable, in order; the rest was dropped.
      const reader = client.readable.getReader();
      let index = 0;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const chunk = value as Uint8Array;
        expect(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).readUInt32BE(0)).to.equal(index++);
      }
      expect(index).to.be.above(0);
      expect(index).to.be.below(sent);
    });

    it('a write to a server that reads nothing stays pending until the server reads', async () => {
      const client = await connect();
      const socket = client.peer.socket;
      const writer = client.writable.getWriter();
      const firstBytes = once(socket, 'data').then(() => socket.pause());
      const payload = patternBytes(8 * 1024 * 1024, 5);
      const write = track(writer.write(payload));
      await firstBytes;
      await macrotasks(5);
      expect(write.settled, 'the write settled while the server read nothing').to.equal(false);
      expect(writer.desiredSize, 'writable backpressure').to.equal(0);
      socket.resume();
      await write.promise;
      expect(writer.desiredSize).to.equal(1);
      const frame = await client.peer.nextFrame();
      expect(frame.opcode).to.equal(OP.BINARY);
      expect(frame.payload.equals(payload)).to.equal(true);
      await serverClosesCleanly(client);
    });
  });

  describe('unhandled rejections', () => {
    it('never fire for ignored opened/closed promises on unclean closes', async () => {
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown): void => {
        unhandled.push(reason);
      };
      process.on('unhandledRejection', onUnhandled);
      try {
        // 1. A handshake failure: opened and closed both reject, and nobody looks.
        const refusing = await rawServer({ respond: () => 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' });
        const failed = new WebSocketStream(refusing.url);
        await untilSettled(failed.closed);
        expect(promiseState(failed.opened)).to.equal('rejected');
        // 2. Open, then reset: closed rejects, and nobody looks (opened was awaited).
        const server = await rawServer();
        const reset = new WebSocketStream(server.url);
        await reset.opened;
        const { peer } = await server.accept();
        peer.socket.resetAndDestroy();
        await untilSettled(reset.closed);
        expect(promiseState(reset.closed)).to.equal('rejected');
        // 3. A protocol error: the same.
        const other = await rawServer();
        const failing = new WebSocketStream(other.url);
        await untilSettled(failing.opened);
        const { peer: bad } = await other.accept();
        bad.send(OP.TEXT, 'x', { mask: true });
        await untilSettled(failing.closed);
        expect(promiseState(failing.closed)).to.equal('rejected');
        // Node reports unhandled rejections after the microtask queue drains: let it.
        await macrotasks(3);
        await new Promise((resolve) => setTimeout(resolve, 0));
        expect(unhandled).to.deep.equal([]);
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
    });
  });
});
