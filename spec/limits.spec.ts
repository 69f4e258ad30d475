// Limits: each named default and option, tested just below and just above its boundary,
// on the client and on the server where it applies. Every test checks that it leaves no socket,
// server or timer behind (helpers/faults.ts, leakFree).
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import zlib from 'node:zlib';
import {
  DEFAULT_MAX_HANDSHAKE_HEAD,
  DEFAULT_MAX_PAYLOAD,
  WebSocketStream,
  type WebSocketError,
} from '../lib/index.js';
import { MAX_QUEUED_PONG_BYTES } from '../lib/protocol/constants.js';
import { textOfBytes } from './helpers/conn.js';
import {
  closeCleanly,
  closeFrame,
  closeOf,
  expectCloseFrame,
  expectWebSocketError,
  frame,
  frameHeader,
  FrameReader,
  KiB,
  leakFree,
  MiB,
  OP,
  openPair,
  openSurvivor,
  checkSurvivor,
  parseRequestHead,
  peerClose,
  peerFrame,
  rawExchange,
  readHead,
  rejection,
  resourceCounts,
  retainedMemory,
  settledMemory,
  scriptedServer,
  SIDES,
  startServer,
  statusOf,
  switchingProtocols,
  TEST_MASK,
  track,
  untilBytesRead,
  untilStalled,
  upgradeHead,
  type Pair,
} from './helpers/faults.js';

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Frames carrying `payload` as one message cut into fragments of the given sizes. */
function fragmented(pair: Pair, opcode: number, payload: Buffer, sizes: number[]): Buffer {
  expect(sizes.reduce((a, b) => a + b, 0)).to.equal(payload.length);
  const frames: Buffer[] = [];
  let at = 0;
  sizes.forEach((size, i) => {
    frames.push(peerFrame(pair, i === 0 ? opcode : OP.CONT, payload.subarray(at, at + size), { fin: i === sizes.length - 1 }));
    at += size;
  });
  return Buffer.concat(frames);
}

function pattern(size: number, seed = 0): Buffer {
  const bytes = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 7 + seed) & 0xff;
  return bytes;
}

/** A 101 head of exactly `total` bytes (padded with an X-Pad header). */
function paddedSwitchingProtocols(head: string, total: number): string {
  const request = parseRequestHead(head);
  const bare = switchingProtocols(request, ['X-Pad: ']);
  expect(total, 'room for the padding').to.be.at.least(bare.length);
  const response = switchingProtocols(request, [`X-Pad: ${'p'.repeat(total - bare.length)}`]);
  expect(Buffer.byteLength(response)).to.equal(total);
  return response;
}

/** An upgrade request head of exactly `total` bytes. */
function paddedUpgradeHead(total: number): string {
  const bare = upgradeHead(['X-Pad: ']);
  const head = upgradeHead([`X-Pad: ${'p'.repeat(total - bare.length)}`]);
  expect(Buffer.byteLength(head)).to.equal(total);
  return head;
}

/**
 * What node:http counts against maxHeaderSize: the request target, and each header's name and
 * value (not the method, the version, the separators or the line ends). It refuses with 431 once
 * that count reaches the limit.
 */
function nodeCountedBytes(head: string): number {
  const lines = head.split('\r\n').filter((line) => line !== '');
  let count = (lines[0] ?? '').split(' ')[1]!.length;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    count += colon + line.slice(colon + 1).trim().length;
  }
  return count;
}

/** An upgrade request whose node:http-counted bytes are exactly `counted`. */
function upgradeHeadCounting(counted: number): string {
  const bare = upgradeHead(['X-Pad: ']);
  const head = upgradeHead([`X-Pad: ${'p'.repeat(counted - nodeCountedBytes(bare))}`]);
  expect(nodeCountedBytes(head)).to.equal(counted);
  return head;
}

/** Upgrades with an exact head, expecting 101; closes cleanly from the raw client. */
async function upgradeAndClose(port: number, head: string): Promise<void> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.write(head);
  const { head: response, rest } = await readHead(socket);
  expect(statusOf(response)).to.equal(101);
  const peer = new FrameReader(socket, rest);
  peer.send(closeFrame(1000, '', { mask: TEST_MASK }));
  expect(await expectCloseFrame(peer, 1000)).to.equal('');
  await peer.closed;
}

/** A client connection that failed its handshake: opened (null) and closed (1006) reject. */
async function expectHandshakeFailure(stream: WebSocketStream, message: RegExp): Promise<WebSocketError> {
  const openedError = expectWebSocketError(await rejection(stream.opened), null);
  expect(openedError.message).to.match(message);
  const closedError = expectWebSocketError(await rejection(stream.closed), 1006, '');
  expect(closedError).to.not.equal(openedError);
  return openedError;
}

/** A compressed message body (RFC 7692 §7.2.1: sync flush, trailing 00 00 ff ff removed). */
function deflated(data: Buffer): Buffer {
  const out = zlib.deflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  expect(out.subarray(-4).toString('hex')).to.equal('0000ffff');
  return out.subarray(0, -4);
}

describe('limits', function () {
  this.timeout(20000);

  describe('handshake head size (maxHandshakeHead)', () => {
    leakFree('client: a 101 head of exactly maxHandshakeHead bytes is accepted, with a frame right behind it', async (guard) => {
      const server = await scriptedServer(guard);
      const stream = new WebSocketStream(server.url, { maxHandshakeHead: 512, perMessageDeflate: false });
      const socket = await server.next();
      const { head } = await readHead(socket);
      socket.write(Buffer.concat([Buffer.from(paddedSwitchingProtocols(head, 512), 'latin1'), frame(OP.TEXT, 'right behind')]));
      const peer = new FrameReader(socket);
      const { readable } = await stream.opened;
      expect(await readable.getReader().read()).to.deep.equal({ value: 'right behind', done: false });
      stream.close({ closeCode: 1000 });
      await expectCloseFrame(peer, 1000);
      peer.send(closeFrame(1000));
      socket.end();
      expect(await stream.closed).to.deep.equal({ closeCode: 1000, reason: '' });
    });

    leakFree('client: a 101 head of maxHandshakeHead + 1 bytes fails the handshake and closes the socket', async (guard) => {
      const server = await scriptedServer(guard);
      const stream = new WebSocketStream(server.url, { maxHandshakeHead: 512, perMessageDeflate: false });
      const socket = await server.next();
      const { head } = await readHead(socket);
      socket.write(paddedSwitchingProtocols(head, 513));
      await expectHandshakeFailure(stream, /larger than 512 bytes/);
      await closeOf(socket);
    });

    leakFree('client: the default is DEFAULT_MAX_HANDSHAKE_HEAD: a head of exactly that passes, one byte more fails', async (guard) => {
      expect(DEFAULT_MAX_HANDSHAKE_HEAD).to.equal(16 * KiB);
      const server = await scriptedServer(guard);
      const good = new WebSocketStream(server.url, { perMessageDeflate: false });
      const goodSocket = await server.next();
      goodSocket.write(paddedSwitchingProtocols((await readHead(goodSocket)).head, DEFAULT_MAX_HANDSHAKE_HEAD));
      const goodPeer = new FrameReader(goodSocket);
      await good.opened;
      const bad = new WebSocketStream(server.url, { perMessageDeflate: false });
      const badSocket = await server.next();
      badSocket.write(paddedSwitchingProtocols((await readHead(badSocket)).head, DEFAULT_MAX_HANDSHAKE_HEAD + 1));
      await expectHandshakeFailure(bad, new RegExp(`larger than ${DEFAULT_MAX_HANDSHAKE_HEAD} bytes`));
      await closeOf(badSocket);
      good.close();
      await expectCloseFrame(goodPeer, null);
      goodPeer.send(closeFrame());
      goodSocket.end();
      expect(await good.closed).to.deep.equal({ closeCode: 1005, reason: '' });
    });

    leakFree('client: a head that never ends is cut off once it passes the limit, not when the server stops', async (guard) => {
      const server = await scriptedServer(guard);
      const stream = new WebSocketStream(server.url, { maxHandshakeHead: 4 * KiB, perMessageDeflate: false });
      const client = guard.lastClientSocket();
      const socket = await server.next();
      await readHead(socket);
      // An endless header line, one KiB per write, for as long as the connection lasts.
      socket.write('HTTP/1.1 101 Switching Protocols\r\nX-Endless: ');
      const chunk = Buffer.alloc(KiB, 'e');
      const pump = (): void => {
        if (!socket.destroyed) socket.write(chunk, (error) => !error && pump());
      };
      pump();
      await expectHandshakeFailure(stream, /larger than 4096 bytes/);
      await closeOf(socket);
      // Node reads at most 64 KiB at a time: the client stopped within one read of the limit.
      expect(client.bytesRead).to.be.at.most(4 * KiB + 64 * KiB);
    });

    leakFree('server: a request head of exactly maxHandshakeHead bytes is accepted', async (guard) => {
      const { port, acceptor } = await startServer(guard, { maxHandshakeHead: KiB });
      const accepted = acceptor.next();
      await upgradeAndClose(port, paddedUpgradeHead(KiB));
      expect(await (await accepted).closed).to.deep.equal({ closeCode: 1000, reason: '' });
    });

    leakFree('server: node:http answers 431 once the bytes it counts (target, header names and values) reach maxHandshakeHead', async (guard) => {
      const { port, acceptor, server } = await startServer(guard, { maxHandshakeHead: KiB });
      // One byte below node:http's boundary: accepted.
      const accepted = acceptor.next();
      await upgradeAndClose(port, upgradeHeadCounting(KiB - 1));
      expect(await (await accepted).closed).to.deep.equal({ closeCode: 1000, reason: '' });
      // At the boundary: refused before any WebSocket work.
      const refused = await rawExchange(port, upgradeHeadCounting(KiB));
      if (refused.text !== '') expect(statusOf(refused.text)).to.equal(431);
      expect(server.connectionCount).to.equal(0);
    });

    leakFree('server: the default is DEFAULT_MAX_HANDSHAKE_HEAD, applied the same way', async (guard) => {
      const { port, acceptor } = await startServer(guard);
      const first = acceptor.next();
      await upgradeAndClose(port, paddedUpgradeHead(DEFAULT_MAX_HANDSHAKE_HEAD));
      await (await first).closed;
      const second = acceptor.next();
      await upgradeAndClose(port, upgradeHeadCounting(DEFAULT_MAX_HANDSHAKE_HEAD - 1));
      await (await second).closed;
      const refused = await rawExchange(port, upgradeHeadCounting(DEFAULT_MAX_HANDSHAKE_HEAD));
      if (refused.text !== '') expect(statusOf(refused.text)).to.equal(431);
    });
  });

  describe('handshake time (handshakeTimeout)', () => {
    leakFree('client: a 101 that comes inside handshakeTimeout opens the connection, and no handshake timer outlives it', async (guard) => {
      const server = await scriptedServer(guard);
      const timersBefore = resourceCounts().Timeout;
      const stream = new WebSocketStream(server.url, { handshakeTimeout: 300, perMessageDeflate: false });
      const socket = await server.next();
      const { head, rest } = await readHead(socket);
      // The server takes a third of the allowed time to answer.
      await delay(100);
      socket.write(switchingProtocols(parseRequestHead(head)));
      const peer = new FrameReader(socket, rest);
      await stream.opened;
      expect(resourceCounts().Timeout, 'timers once open').to.equal(timersBefore);
      stream.close();
      await expectCloseFrame(peer, null);
      peer.send(closeFrame());
      socket.end();
      expect(await stream.closed).to.deep.equal({ closeCode: 1005, reason: '' });
    });

    leakFree('client: a server that never answers fails the handshake at handshakeTimeout and the socket is closed', async (guard) => {
      const server = await scriptedServer(guard);
      const stream = new WebSocketStream(server.url, { handshakeTimeout: 150, perMessageDeflate: false });
      const socket = await server.next();
      await readHead(socket);
      await expectHandshakeFailure(stream, /timed out after 150 ms/);
      await closeOf(socket);
      expect(guard.lastClientSocket().destroyed).to.equal(true);
    });

    leakFree('client: the deadline covers the whole head: a 101 trickled in small steps past it fails', async (guard) => {
      const server = await scriptedServer(guard);
      const stream = new WebSocketStream(server.url, { handshakeTimeout: 200, perMessageDeflate: false });
      const socket = await server.next();
      const response = switchingProtocols(parseRequestHead((await readHead(socket)).head));
      // One byte every 10 ms: each step is far inside the deadline, the whole head far outside.
      let sent = 0;
      const timer = setInterval(() => {
        if (sent < response.length && !socket.destroyed) socket.write(response[sent++]!);
      }, 10);
      socket.once('close', () => clearInterval(timer));
      guard.defer(() => clearInterval(timer));
      await expectHandshakeFailure(stream, /timed out after 200 ms/);
      await closeOf(socket);
      expect(sent).to.be.below(response.length);
    });

    leakFree('server: a request head that completes inside handshakeTimeout, in pieces, is accepted', async (guard) => {
      const { port, acceptor } = await startServer(guard, { handshakeTimeout: 400 });
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      const head = upgradeHead();
      const third = Math.ceil(head.length / 3);
      socket.write(head.slice(0, third));
      await delay(40);
      socket.write(head.slice(third, 2 * third));
      await delay(40);
      socket.write(head.slice(2 * third));
      const { head: response, rest } = await readHead(socket);
      expect(statusOf(response)).to.equal(101);
      const stream = await acceptor.next();
      const peer = new FrameReader(socket, rest);
      peer.send(closeFrame(1000, '', { mask: TEST_MASK }));
      await expectCloseFrame(peer, 1000);
      expect(await stream.closed).to.deep.equal({ closeCode: 1000, reason: '' });
    });

    leakFree('server: a request head that never completes is answered 408 and closed at handshakeTimeout', async (guard) => {
      const { port, server } = await startServer(guard, { handshakeTimeout: 200 });
      const head = upgradeHead();
      const exchange = rawExchange(port, head.slice(0, head.length - 2));
      const { text } = await exchange;
      if (text !== '') expect(statusOf(text)).to.equal(408);
      expect(server.connectionCount).to.equal(0);
    });

    leakFree('server: a handshakeTimeout that is not a multiple of 4 ms (250) is accepted and enforced', async (guard) => {
      // node:http wants an integer connectionsCheckingInterval; the server derives it from this.
      const { port, server } = await startServer(guard, { handshakeTimeout: 250 });
      const head = upgradeHead();
      const { text } = await rawExchange(port, head.slice(0, head.length - 2));
      if (text !== '') expect(statusOf(text)).to.equal(408);
      expect(server.connectionCount).to.equal(0);
    });

    leakFree('server: a verify that settles inside handshakeTimeout is accepted; one that never settles gets 503 and frees its place', async (guard) => {
      const { url, acceptor, server } = await startServer(guard, {
        handshakeTimeout: 300,
        verify: async (request) => {
          if (request.url === '/never') return new Promise<boolean>(() => {});
          await delay(50);
          return true;
        },
      });
      const fast = new WebSocketStream(`${url}fast`, { perMessageDeflate: false });
      const fastServer = await acceptor.next();
      await fast.opened;
      const slow = new WebSocketStream(`${url}never`, { perMessageDeflate: false });
      const error = await expectHandshakeFailure(slow, /503/);
      expect((error.cause as { statusCode?: number }).statusCode).to.equal(503);
      expect(server.connectionCount).to.equal(1);
      fast.close({ closeCode: 1000 });
      expect(await fast.closed).to.deep.equal({ closeCode: 1000, reason: '' });
      expect(await fastServer.closed).to.deep.equal({ closeCode: 1000, reason: '' });
      expect(server.connectionCount).to.equal(0);
    });
  });

  describe('maxPayload, counted across fragments (1009)', () => {
    for (const side of SIDES) {
      leakFree(`${side}: messages of exactly maxPayload bytes are delivered, fragmented or not, binary and text`, async (guard) => {
        const pair = await openPair(guard, side, { maxPayload: 1000 });
        const reader = pair.readable.getReader();
        const binary = pattern(1000);
        const text = textOfBytes(1000);
        pair.peer.send(fragmented(pair, OP.BINARY, binary, [125, 125, 125, 125, 125, 125, 125, 125]));
        pair.peer.send(fragmented(pair, OP.TEXT, Buffer.from(text), [333, 333, 334]));
        pair.peer.send(peerFrame(pair, OP.BINARY, binary));
        for (const expected of [binary, text, binary]) {
          const { value } = await reader.read();
          if (typeof expected === 'string') expect(value).to.equal(expected);
          else expect(Buffer.from(value as Uint8Array).equals(expected)).to.equal(true);
        }
        await closeCleanly(pair);
      });

      leakFree(`${side}: one byte more, in the last fragment, fails the connection with 1009 and delivers nothing`, async (guard) => {
        const pair = await openPair(guard, side, { maxPayload: 1000 });
        const reader = pair.readable.getReader();
        const read = track(reader.read()).promise;
        pair.peer.send(fragmented(pair, OP.BINARY, pattern(1001), [125, 125, 125, 125, 125, 125, 125, 126]));
        expect(await expectCloseFrame(pair.peer, 1009)).to.match(/maxPayload/);
        // We failed the connection: TCP closes without waiting for an answer.
        await pair.peer.closed;
        const error = expectWebSocketError(await rejection(pair.stream.closed), 1006);
        expect(await rejection(read)).to.equal(error);
        expect(await rejection(pair.writable.getWriter().closed)).to.equal(error);
      });

      leakFree(`${side}: a single frame announcing maxPayload + 1 bytes is refused at its header`, async (guard) => {
        const pair = await openPair(guard, side, { maxPayload: 1000 });
        // Only the header is sent: the refusal cannot wait for a payload that may never come.
        pair.peer.send(frameHeader(OP.BINARY, 1001, { mask: pair.mask }));
        await expectCloseFrame(pair.peer, 1009);
        await pair.peer.closed;
        expectWebSocketError(await rejection(pair.stream.closed), 1006);
      });
    }
  });

  describe('inflated size with permessage-deflate (1009)', () => {
    const LIMIT = 64 * KiB;
    const body = (size: number): Buffer => Buffer.alloc(size, 'inflate me ');

    for (const side of SIDES) {
      leakFree(`${side}: a compressed message inflating to exactly maxPayload bytes is delivered`, async (guard) => {
        const pair = await openPair(guard, side, { maxPayload: LIMIT, deflate: true });
        const compressed = deflated(body(LIMIT));
        expect(compressed.length).to.be.below(LIMIT / 16);
        const half = compressed.length >> 1;
        // RSV1 on the first fragment only (RFC 7692 §6.1).
        pair.peer.send(
          Buffer.concat([
            peerFrame(pair, OP.BINARY, compressed.subarray(0, half), { fin: false, rsv: 4 }),
            peerFrame(pair, OP.CONT, compressed.subarray(half)),
          ]),
        );
        const { value } = await pair.readable.getReader().read();
        expect(Buffer.from(value as Uint8Array).equals(body(LIMIT))).to.equal(true);
        await closeCleanly(pair);
      });

      leakFree(`${side}: one inflated byte more fails the connection with 1009`, async (guard) => {
        const pair = await openPair(guard, side, { maxPayload: LIMIT, deflate: true });
        const reader = pair.readable.getReader();
        const read = track(reader.read()).promise;
        pair.peer.send(peerFrame(pair, OP.BINARY, deflated(body(LIMIT + 1)), { rsv: 4 }));
        expect(await expectCloseFrame(pair.peer, 1009)).to.match(/maxPayload/);
        await pair.peer.closed;
        const error = expectWebSocketError(await rejection(pair.stream.closed), 1006);
        expect(await rejection(read)).to.equal(error);
      });
    }
  });

  describe('fragment floods', () => {
    const TOTAL = 4 * MiB;
    const FRAGMENT = 64;

    for (const side of SIDES) {
      leakFree(`${side}: a 4 MiB message in 64-byte fragments is accepted, with bounded memory while it arrives`, async (guard) => {
        const pair = await openPair(guard, side);
        const reader = pair.readable.getReader();
        const message = pattern(TOTAL, 3);
        const count = TOTAL / FRAGMENT;
        const frames: Buffer[] = [];
        for (let i = 0; i < count; i++) {
          frames.push(peerFrame(pair, i === 0 ? OP.BINARY : OP.CONT, message.subarray(i * FRAGMENT, (i + 1) * FRAGMENT), { fin: i === count - 1 }));
        }
        const last = frames.pop()!;
        const flood = Buffer.concat(frames);
        frames.length = 0;

        const before = retainedMemory();
        const rssBefore = process.memoryUsage.rss();
        let peakArrayBuffers = 0;
        let peakRss = 0;
        const sample = (): void => {
          const usage = process.memoryUsage();
          peakArrayBuffers = Math.max(peakArrayBuffers, usage.arrayBuffers);
          peakRss = Math.max(peakRss, usage.rss);
        };
        pair.ours.on('data', sample);
        pair.peer.send(flood);
        await untilBytesRead(pair.ours, pair.headBytes + flood.length);
        pair.ours.off('data', sample);
        // All but the last fragment are in: what the connection holds now is one growing buffer,
        // not one object per fragment.
        const held = await settledMemory();
        expect(peakArrayBuffers - before.arrayBuffers, 'ArrayBuffer growth while receiving').to.be.below(64 * MiB);
        expect(peakRss - rssBefore, 'RSS growth while receiving').to.be.below(64 * MiB);
        expect(held.arrayBuffers - before.arrayBuffers, 'ArrayBuffers held for the partial message').to.be.below(2 * TOTAL);
        expect(held.heapUsed - before.heapUsed, `heap held for ${count - 1} fragments`).to.be.below(2 * MiB);

        pair.peer.send(last);
        const { value } = await reader.read();
        expect(value).to.be.instanceOf(Uint8Array);
        expect(Buffer.from(value as Uint8Array).equals(message)).to.equal(true);
        await closeCleanly(pair);
      });
    }
  });

  describe('close timeout (closeTimeout)', () => {
    for (const side of SIDES) {
      leakFree(`${side}: a peer that answers our close frame inside closeTimeout closes cleanly`, async (guard) => {
        const pair = await openPair(guard, side, { closeTimeout: 300 });
        pair.stream.close({ closeCode: 4000, reason: 'bye' });
        expect(await expectCloseFrame(pair.peer, 4000)).to.equal('bye');
        // The peer takes a fifth of the allowed time to answer.
        await delay(60);
        pair.peer.send(peerClose(pair, 4000, 'bye'));
        if (side === 'client') pair.peer.socket.end();
        expect(await pair.stream.closed).to.deep.equal({ closeCode: 4000, reason: 'bye' });
        await pair.peer.closed;
      });

      leakFree(`${side}: a peer that never answers: closed rejects with 1006 at closeTimeout and the socket is destroyed`, async (guard) => {
        const pair = await openPair(guard, side, { closeTimeout: 150 });
        const reader = pair.readable.getReader();
        pair.stream.close({ closeCode: 1000 });
        await expectCloseFrame(pair.peer, 1000);
        const error = expectWebSocketError(await rejection(pair.stream.closed), 1006, '');
        expect(error.message).to.match(/no close frame/);
        expect(pair.ours.destroyed).to.equal(true);
        expect(await rejection(reader.read())).to.equal(error);
        await pair.peer.closed;
      });
    }

    leakFree('client: a server that answers but keeps TCP open is closed by the client at closeTimeout, still cleanly', async (guard) => {
      const pair = await openPair(guard, 'client', { closeTimeout: 150 });
      pair.stream.close({ closeCode: 1000 });
      await expectCloseFrame(pair.peer, 1000);
      pair.peer.send(closeFrame(1000, 'answered'));
      expect(await pair.stream.closed).to.deep.equal({ closeCode: 1000, reason: 'answered' });
      await pair.peer.closed;
    });
  });

  describe('maxConnections', () => {
    leakFree('N connections are accepted, N + 1 gets 503, and once one closes a new one is accepted', async (guard) => {
      const { server, port, url, acceptor } = await startServer(guard, { maxConnections: 2 });
      const a = await openSurvivor(guard, url, acceptor);
      const b = await openSurvivor(guard, url, acceptor);
      expect(server.connectionCount).to.equal(2);

      const refused = await rawExchange(port, upgradeHead());
      expect(statusOf(refused.text)).to.equal(503);
      expect(refused.text).to.match(/\r\nRetry-After: 1\r\n/i);
      const c = new WebSocketStream(url, { perMessageDeflate: false });
      const error = await expectHandshakeFailure(c, /503/);
      expect((error.cause as { statusCode?: number }).statusCode).to.equal(503);
      expect(server.connectionCount).to.equal(2);

      a.client.close({ closeCode: 1000 });
      expect(await a.client.closed).to.deep.equal({ closeCode: 1000, reason: '' });
      expect(await a.serverStream.closed).to.deep.equal({ closeCode: 1000, reason: '' });
      expect(server.connectionCount).to.equal(1);

      const d = await openSurvivor(guard, url, acceptor);
      expect(server.connectionCount).to.equal(2);
      expect(statusOf((await rawExchange(port, upgradeHead())).text)).to.equal(503);
      await checkSurvivor(b);
      await checkSurvivor(d);
      expect(server.connectionCount).to.equal(0);
    });

    leakFree('a handshake in progress holds its place: a second one gets 503 meanwhile', async (guard) => {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const { server, port, url, acceptor } = await startServer(guard, {
        maxConnections: 1,
        verify: async () => {
          await gate;
          return true;
        },
      });
      const first = new WebSocketStream(url, { perMessageDeflate: false });
      const firstServer = acceptor.next();
      // Wait until the first handshake is in verify (it counts from then on).
      await new Promise<void>((resolve) => {
        const check = (): void => (server.connectionCount === 1 ? resolve() : void setImmediate(check));
        check();
      });
      expect(statusOf((await rawExchange(port, upgradeHead())).text)).to.equal(503);
      release();
      await first.opened;
      first.close({ closeCode: 1000 });
      expect(await first.closed).to.deep.equal({ closeCode: 1000, reason: '' });
      await (await firstServer).closed;
      expect(server.connectionCount).to.equal(0);
    });
  });

  describe('queued pongs (MAX_QUEUED_PONG_BYTES)', () => {
    const PINGS_PER_BATCH = 8192;

    for (const side of SIDES) {
      leakFree(`${side}: pongs stop being queued past MAX_QUEUED_PONG_BYTES when the peer floods pings and reads nothing`, async (guard) => {
        const pair = await openPair(guard, side);
        const reader = pair.readable.getReader();
        pair.peer.discard.add(OP.PONG);
        pair.peer.socket.pause();
        // Our pong frames: 125-byte payload, 2 header bytes, plus a mask key from a client.
        const pongSize = 125 + 2 + (side === 'client' ? 4 : 0);
        let maxQueued = 0;
        const sample = (): void => queueMicrotask(() => void (maxQueued = Math.max(maxQueued, pair.ours.writableLength)));
        pair.ours.on('data', sample);
        const batch = Buffer.concat(Array.from({ length: PINGS_PER_BATCH }, () => peerFrame(pair, OP.PING, Buffer.alloc(125, 0x70))));
        let pings = 0;
        let extra = 3;
        for (let i = 0; i < 64 && extra > 0; i++) {
          pair.peer.send(batch);
          pings += PINGS_PER_BATCH;
          // A marker after each batch: once it is read, every ping before it was handled.
          pair.peer.send(peerFrame(pair, OP.TEXT, `batch ${i}`));
          expect(await reader.read()).to.deep.equal({ value: `batch ${i}`, done: false });
          if (maxQueued > MAX_QUEUED_PONG_BYTES) extra--;
        }
        pair.ours.off('data', sample);
        expect(maxQueued, 'the queue reached the limit').to.be.above(MAX_QUEUED_PONG_BYTES);
        expect(maxQueued, 'and never went past it by more than one pong').to.be.at.most(MAX_QUEUED_PONG_BYTES + pongSize);
        // The peer reads again: fewer pongs than pings, then our close frame.
        pair.peer.socket.resume();
        await closeCleanly(pair);
        const pongs = pair.peer.counts.get(OP.PONG) ?? 0;
        expect(pongs).to.be.above(0);
        expect(pongs).to.be.below(pings);
      });
    }
  });

  describe('queued pongs with permessage-deflate', () => {
    for (const side of SIDES) {
      leakFree(`${side}: pongs answered while a message is being compressed are held to MAX_QUEUED_PONG_BYTES too`, async (guard) => {
        const pair = await openPair(guard, side, { deflate: true });
        const reader = pair.readable.getReader();
        const writer = pair.writable.getWriter();
        pair.peer.discard.add(OP.PONG);
        pair.peer.socket.pause();
        const pongSize = 125 + 2 + (side === 'client' ? 4 : 0);
        // Incompressible, so compressing it keeps the threadpool busy for a while, and too big for
        // the socket buffers of a peer that reads nothing: every pong after it stays queued.
        const write = writer.write(randomBytes(16 * MiB));
        const batch = Buffer.concat(Array.from({ length: 8192 }, () => peerFrame(pair, OP.PING, Buffer.alloc(125, 0x70))));
        let pings = 0;
        // More than twice the limit's worth of pongs, asked for while the message compresses.
        for (let i = 0; i < 3; i++) {
          pair.peer.send(batch);
          pings += 8192;
          pair.peer.send(peerFrame(pair, OP.TEXT, `batch ${i}`));
          expect(await reader.read()).to.deep.equal({ value: `batch ${i}`, done: false });
        }
        pair.peer.socket.resume();
        await write;
        const data = await pair.peer.nextFrame();
        expect(data.opcode).to.equal(OP.BINARY);
        expect(data.rsv).to.equal(4);
        reader.releaseLock();
        await closeCleanly(pair);
        expect(pings * pongSize).to.be.above(2 * MAX_QUEUED_PONG_BYTES);
        // Every pong came after the message, which the peer did not read until now: all of them
        // were queued at once.
        const pongs = pair.peer.counts.get(OP.PONG) ?? 0;
        expect(pongs * pongSize, 'pong bytes queued behind the message').to.be.at.most(MAX_QUEUED_PONG_BYTES + pongSize);
      });
    }
  });

  describe('readableHighWaterMark', () => {
    const HWM = 256 * KiB;
    const SIZE = 128 * KiB;
    const COUNT = 80;
    /** A paused net.Socket's own buffer plus one 64 KiB read, and the chunk being parsed. */
    const SOCKET_SLACK = 256 * KiB;

    for (const side of SIDES) {
      leakFree(`${side}: a reader that reads nothing holds about one high-water mark plus one message; then all arrive in order`, async (guard) => {
        const pair = await openPair(guard, side, { readableHighWaterMark: HWM });
        const messages = Array.from({ length: COUNT }, (_, i) => {
          const message = Buffer.alloc(SIZE, i & 0xff);
          message.writeUInt32BE(i, 0);
          return message;
        });
        const wire = Buffer.concat(messages.map((message) => peerFrame(pair, OP.BINARY, message)));
        pair.peer.send(wire);
        await untilStalled(() => pair.ours.bytesRead);
        const held = pair.ours.bytesRead - pair.headBytes;
        expect(held, 'bytes taken from the socket').to.be.at.least(HWM);
        expect(held, 'bytes taken from the socket').to.be.at.most(HWM + SIZE + 10 + SOCKET_SLACK);
        const reader = pair.readable.getReader();
        for (let i = 0; i < COUNT; i++) {
          const { value, done } = await reader.read();
          expect(done).to.equal(false);
          const bytes = Buffer.from(value as Uint8Array);
          expect(bytes.length).to.equal(SIZE);
          expect(bytes.readUInt32BE(0), 'messages in order').to.equal(i);
        }
        reader.releaseLock();
        await closeCleanly(pair);
      });
    }
  });

  describe('the default maxPayload (DEFAULT_MAX_PAYLOAD)', () => {
    leakFree('client: a frame announcing DEFAULT_MAX_PAYLOAD + 1 bytes is refused at its header (1009)', async (guard) => {
      const pair = await openPair(guard, 'client');
      pair.peer.send(frameHeader(OP.BINARY, DEFAULT_MAX_PAYLOAD + 1));
      await expectCloseFrame(pair.peer, 1009);
      await pair.peer.closed;
      expectWebSocketError(await rejection(pair.stream.closed), 1006);
    });

    leakFree('client: a message of exactly DEFAULT_MAX_PAYLOAD bytes is delivered', async (guard) => {
      expect(DEFAULT_MAX_PAYLOAD).to.equal(100 * MiB);
      const pair = await openPair(guard, 'client');
      const reader = pair.readable.getReader();
      const payload = Buffer.alloc(DEFAULT_MAX_PAYLOAD, 0x5a);
      payload.writeUInt32BE(0xfeedface, DEFAULT_MAX_PAYLOAD - 4);
      pair.peer.send(frameHeader(OP.BINARY, DEFAULT_MAX_PAYLOAD));
      pair.peer.send(payload);
      const { value } = await reader.read();
      const bytes = value as Uint8Array;
      expect(bytes.byteLength).to.equal(DEFAULT_MAX_PAYLOAD);
      expect(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).readUInt32BE(DEFAULT_MAX_PAYLOAD - 4)).to.equal(0xfeedface);
      await closeCleanly(pair);
    });
  });
});
