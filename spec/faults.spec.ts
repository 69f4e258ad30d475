// Faults: TCP resets at every stage, peers that never answer, stop reading or go silent,
// slowloris heads. On every unclean path `closed` rejects with a WebSocketError (1006 unless a
// close frame arrived), a write in progress rejects with the writable's stored error, nothing is
// left behind (helpers/faults.ts, leakFree), and on a server, other connections carry on.
import { expect } from 'chai';
import { getEventListeners } from 'node:events';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import zlib from 'node:zlib';
import { WebSocketStream } from '../lib/index.js';
import { expectDOMException } from './helpers/conn.js';
import {
  accept101,
  checkSurvivor,
  closeOf,
  expectCloseFrame,
  expectWebSocketError,
  frame,
  leakFree,
  MiB,
  OP,
  openPair,
  openSurvivor,
  parseRequestHead,
  peerClose,
  peerFrame,
  readHead,
  rawUpgrade,
  rejection,
  retainedMemory,
  settledMemory,
  scriptedServer,
  SIDES,
  startServer,
  switchingProtocols,
  TEST_MASK,
  track,
  until,
  untilBytesRead,
  untilStalled,
  upgradeHead,
  type Guard,
  type Pair,
  type Survivor,
} from './helpers/faults.js';

/** Larger than any loopback socket buffers: a write of it to a peer that reads nothing stays in progress. */
const STUCK_WRITE = 16 * MiB;

/** On a server, another connection that the fault must not disturb; none for a client. */
async function survivorFor(guard: Guard, pair: Pair): Promise<Survivor | null> {
  return pair.side === 'server' ? openSurvivor(guard, pair.url, pair.acceptor!) : null;
}

/** A compressed message body (RFC 7692 §7.2.1: sync flush, trailing 00 00 ff ff removed). */
function deflated(data: Buffer): Buffer {
  return zlib.deflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
}

/**
 * The peer stops reading and we start a write it cannot take: returns the write, checked to be
 * still in progress once the transfer has stalled.
 */
async function stuckWrite(pair: Pair, writer: WritableStreamDefaultWriter<unknown>): Promise<ReturnType<typeof track<void>>> {
  pair.peer.socket.pause();
  const write = track(writer.write(new Uint8Array(STUCK_WRITE)));
  await untilStalled(() => pair.ours.writableLength);
  expect(pair.ours.writableLength, 'bytes waiting in our socket').to.be.above(0);
  expect(write.settled, 'the write settled while the peer read nothing').to.equal(false);
  return write;
}

/**
 * An unclean end without a close frame: closed rejects with a 1006 WebSocketError, and that same
 * object is the write's rejection, the writable's stored error and the readable's error.
 */
async function expectAbnormalClosure(
  pair: Pair,
  parts: { write?: Promise<unknown>; read?: Promise<unknown>; writer?: WritableStreamDefaultWriter<unknown> },
  message?: RegExp,
): Promise<void> {
  const error = expectWebSocketError(await rejection(pair.stream.closed), 1006, '');
  if (message !== undefined) expect(error.message).to.match(message);
  if (parts.write !== undefined) expect(await rejection(parts.write), 'the write in progress').to.equal(error);
  if (parts.read !== undefined) expect(await rejection(parts.read), 'the pending read').to.equal(error);
  const writer = parts.writer ?? pair.writable.getWriter();
  expect(await rejection(writer.closed), "the writable's stored error").to.equal(error);
  expect(await rejection(writer.write('late')), 'a later write').to.equal(error);
  expect(pair.ours.destroyed, 'our socket is destroyed').to.equal(true);
  // A peer that stopped reading sees our end of TCP only once it reads again.
  pair.peer.socket.resume();
  await pair.peer.closed;
}

describe('faults', function () {
  this.timeout(20000);

  describe('TCP reset mid-handshake', () => {
    leakFree('client: the server resets after reading the request: opened and closed reject, the abort listener is gone', async (guard) => {
      const server = await scriptedServer(guard);
      const controller = new AbortController();
      const stream = new WebSocketStream(server.url, { signal: controller.signal, perMessageDeflate: false });
      expect(getEventListeners(controller.signal, 'abort')).to.have.length(1);
      const socket = await server.next();
      await readHead(socket);
      socket.resetAndDestroy();
      const openedError = expectWebSocketError(await rejection(stream.opened), null);
      expect((openedError.cause as NodeJS.ErrnoException).code).to.equal('ECONNRESET');
      const closedError = expectWebSocketError(await rejection(stream.closed), 1006, '');
      expect(closedError).to.not.equal(openedError);
      expect(getEventListeners(controller.signal, 'abort')).to.have.length(0);
      expect(guard.lastClientSocket().destroyed).to.equal(true);
    });

    leakFree('client: the server resets after half of the 101 head', async (guard) => {
      const server = await scriptedServer(guard);
      const stream = new WebSocketStream(server.url, { perMessageDeflate: false });
      const client = guard.lastClientSocket();
      const socket = await server.next();
      const response = switchingProtocols(parseRequestHead((await readHead(socket)).head));
      const half = response.slice(0, response.length >> 1);
      socket.write(half);
      await untilBytesRead(client, half.length);
      socket.resetAndDestroy();
      const openedError = expectWebSocketError(await rejection(stream.opened), null);
      expect((openedError.cause as NodeJS.ErrnoException).code).to.equal('ECONNRESET');
      expectWebSocketError(await rejection(stream.closed), 1006, '');
    });

    leakFree('client: the server resets right after the 101: opened resolves, then closed and the pending read reject with 1006', async (guard) => {
      const server = await scriptedServer(guard);
      const stream = new WebSocketStream(server.url, { perMessageDeflate: false });
      const client = guard.lastClientSocket();
      const socket = await server.next();
      const { response } = await accept101(socket);
      await untilBytesRead(client, Buffer.byteLength(response));
      socket.resetAndDestroy();
      const { readable, writable } = await stream.opened;
      const read = track(readable.getReader().read()).promise;
      const error = expectWebSocketError(await rejection(stream.closed), 1006, '');
      expect(await rejection(read)).to.equal(error);
      expect(await rejection(writable.getWriter().closed)).to.equal(error);
    });

    leakFree('server: a client that resets in the middle of its head leaves nothing behind; another connection carries on', async (guard) => {
      const { url, port, acceptor, server } = await startServer(guard);
      const survivor = await openSurvivor(guard, url, acceptor);
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      const head = upgradeHead();
      socket.write(head.slice(0, head.length >> 1));
      await until(() => guard.serverSockets.some((s) => s.remotePort === socket.localPort), 'the server has the connection');
      const serverSide = guard.serverSocketOf(socket);
      socket.resetAndDestroy();
      await closeOf(serverSide);
      expect(server.connectionCount).to.equal(1);
      await checkSurvivor(survivor);
      expect(acceptor.all).to.have.length(1);
    });

    leakFree('server: a client that resets right after its head, before the 101, is never accepted; another connection carries on', async (guard) => {
      let held = 0;
      const { url, port, acceptor, server } = await startServer(guard, {
        verify: (request) => {
          if (request.url !== '/reset') return true;
          held++;
          // Hold this handshake until the reset has closed its socket.
          return new Promise<boolean>((resolve) => request.socket.once('close', () => resolve(true)));
        },
      });
      const survivor = await openSurvivor(guard, url, acceptor);
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      socket.write(upgradeHead([], '/reset'));
      await until(() => held === 1, 'the handshake is in verify');
      expect(server.connectionCount).to.equal(2);
      const serverSide = guard.serverSocketOf(socket);
      socket.resetAndDestroy();
      await closeOf(serverSide);
      await until(() => server.connectionCount === 1, 'the handshake is given up');
      await checkSurvivor(survivor);
      expect(acceptor.all).to.have.length(1);
    });

    leakFree('server: a client that resets right after the 101: the server-side closed, read and writable reject with one 1006 error', async (guard) => {
      const { url, port, acceptor } = await startServer(guard);
      const survivor = await openSurvivor(guard, url, acceptor);
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      socket.write(upgradeHead());
      await readHead(socket);
      const stream = await acceptor.next();
      const { readable, writable } = await stream.opened;
      const read = track(readable.getReader().read()).promise;
      socket.resetAndDestroy();
      const error = expectWebSocketError(await rejection(stream.closed), 1006, '');
      expect(await rejection(read)).to.equal(error);
      expect(await rejection(writable.getWriter().closed)).to.equal(error);
      await checkSurvivor(survivor);
    });
  });

  describe('TCP reset mid-frame and mid-message', () => {
    const cases: Array<{ name: string; bytes: (pair: Pair) => Buffer }> = [
      {
        name: 'after half a frame header',
        bytes: (pair) => {
          // A 64-bit length: 10 header bytes (14 with a mask key); half of them.
          const whole = peerFrame(pair, OP.BINARY, Buffer.alloc(70_000));
          const headerLength = pair.mask === undefined ? 10 : 14;
          return whole.subarray(0, headerLength >> 1);
        },
      },
      {
        name: 'after half a payload',
        bytes: (pair) => {
          const whole = peerFrame(pair, OP.TEXT, 'x'.repeat(1000));
          return whole.subarray(0, whole.length - 500);
        },
      },
      {
        name: 'between the fragments of a message',
        bytes: (pair) =>
          Buffer.concat([peerFrame(pair, OP.TEXT, 'first part, ', { fin: false }), peerFrame(pair, OP.CONT, 'second part, ', { fin: false })]),
      },
    ];

    for (const side of SIDES) {
      for (const { name, bytes } of cases) {
        leakFree(`${side}: a reset ${name}: closed, the pending read and the write in progress reject with one 1006 WebSocketError`, async (guard) => {
          const pair = await openPair(guard, side);
          const survivor = await survivorFor(guard, pair);
          const read = track(pair.readable.getReader().read()).promise;
          const writer = pair.writable.getWriter();
          const write = await stuckWrite(pair, writer);
          const partial = bytes(pair);
          pair.peer.send(partial);
          // Our side has read the partial frame before the reset comes.
          await untilBytesRead(pair.ours, pair.headBytes + partial.length);
          pair.peer.socket.resetAndDestroy();
          await expectAbnormalClosure(pair, { write: write.promise, read, writer });
          if (survivor !== null) await checkSurvivor(survivor);
        });
      }
    }
  });

  describe('TCP reset mid-close', () => {
    for (const side of SIDES) {
      leakFree(`${side}: a reset after our close frame, before the peer's: closed rejects with 1006`, async (guard) => {
        const pair = await openPair(guard, side);
        const survivor = await survivorFor(guard, pair);
        const read = track(pair.readable.getReader().read()).promise;
        pair.stream.close({ closeCode: 4000, reason: 'leaving' });
        expect(await expectCloseFrame(pair.peer, 4000)).to.equal('leaving');
        pair.peer.socket.resetAndDestroy();
        await expectAbnormalClosure(pair, { read });
        if (survivor !== null) await checkSurvivor(survivor);
      });

      leakFree(`${side}: a reset after the peer's close frame completed the closing handshake: still a clean close`, async (guard) => {
        const pair = await openPair(guard, side);
        const survivor = await survivorFor(guard, pair);
        const reader = pair.readable.getReader();
        pair.stream.close({ closeCode: 4000, reason: 'leaving' });
        await expectCloseFrame(pair.peer, 4000);
        const close = peerClose(pair, 4001, 'answered');
        pair.peer.send(close);
        await untilBytesRead(pair.ours, pair.headBytes + close.length);
        pair.peer.socket.resetAndDestroy();
        expect(await pair.stream.closed).to.deep.equal({ closeCode: 4001, reason: 'answered' });
        expect(await reader.read()).to.deep.equal({ value: undefined, done: true });
        await pair.peer.closed;
        if (survivor !== null) await checkSurvivor(survivor);
      });

      leakFree(`${side}: a reset after the peer's close frame while our write is in progress: closed rejects with the peer's code, the write with the InvalidStateError`, async (guard) => {
        const pair = await openPair(guard, side);
        const survivor = await survivorFor(guard, pair);
        const reader = pair.readable.getReader();
        const writer = pair.writable.getWriter();
        const write = await stuckWrite(pair, writer);
        pair.peer.send(peerClose(pair, 4002, 'gone'));
        // The readable ends on the close frame: it has been handled.
        expect(await reader.read()).to.deep.equal({ value: undefined, done: true });
        expect(write.settled).to.equal(false);
        pair.peer.socket.resetAndDestroy();
        expectWebSocketError(await rejection(pair.stream.closed), 4002, 'gone');
        const writeError = await rejection(write.promise);
        expectDOMException(writeError, 'InvalidStateError');
        expect(await rejection(writer.closed)).to.equal(writeError);
        expect(await rejection(writer.write('late'))).to.equal(writeError);
        expect(pair.ours.destroyed).to.equal(true);
        await pair.peer.closed;
        if (survivor !== null) await checkSurvivor(survivor);
      });
    }
  });

  describe('a peer that never answers our close frame', () => {
    for (const side of SIDES) {
      leakFree(`${side}: a peer that reads our close frame and stays silent: closed rejects with 1006 at closeTimeout, the socket is destroyed`, async (guard) => {
        const pair = await openPair(guard, side, { closeTimeout: 150 });
        const survivor = await survivorFor(guard, pair);
        const read = track(pair.readable.getReader().read()).promise;
        pair.stream.close();
        await expectCloseFrame(pair.peer, null);
        await expectAbnormalClosure(pair, { read }, /no close frame/);
        if (survivor !== null) await checkSurvivor(survivor);
      });

      leakFree(`${side}: our close frame stuck behind a write to a peer that reads nothing: 1006 at closeTimeout, and the write rejects with the same error`, async (guard) => {
        const pair = await openPair(guard, side, { closeTimeout: 150 });
        const survivor = await survivorFor(guard, pair);
        const writer = pair.writable.getWriter();
        const write = await stuckWrite(pair, writer);
        pair.stream.close({ closeCode: 1000 });
        await expectAbnormalClosure(pair, { write: write.promise, writer }, /no close frame/);
        if (survivor !== null) await checkSurvivor(survivor);
      });
    }
  });

  describe('resets with permessage-deflate', () => {
    for (const side of SIDES) {
      leakFree(`${side}: a reset while our message is being compressed: closed and the write reject with one 1006 WebSocketError`, async (guard) => {
        const pair = await openPair(guard, side, { deflate: true });
        const survivor = pair.side === 'server' ? await openSurvivor(guard, pair.url, pair.acceptor!, true) : null;
        const writer = pair.writable.getWriter();
        // Incompressible: compressing it keeps a zlib job busy when the reset comes.
        const write = track(writer.write(randomBytes(4 * MiB)));
        pair.peer.socket.resetAndDestroy();
        await expectAbnormalClosure(pair, { write: write.promise, writer });
        if (survivor !== null) await checkSurvivor(survivor);
      });

      leakFree(`${side}: a reset while the peer's last message is being inflated: closed rejects with 1006, the message is whole if it is delivered`, async (guard) => {
        const pair = await openPair(guard, side, { deflate: true });
        const survivor = pair.side === 'server' ? await openSurvivor(guard, pair.url, pair.acceptor!, true) : null;
        const reader = pair.readable.getReader();
        const message = Buffer.alloc(16 * MiB, 'compressible ');
        const compressed = peerFrame(pair, OP.BINARY, deflated(message), { rsv: 4 });
        const read = track(reader.read()).promise;
        pair.peer.send(compressed);
        await untilBytesRead(pair.ours, pair.headBytes + compressed.length);
        pair.peer.socket.resetAndDestroy();
        const error = expectWebSocketError(await rejection(pair.stream.closed), 1006, '');
        const first = await read.then(
          (result) => result,
          (reason: unknown) => reason,
        );
        if (first === error) {
          expect(await rejection(reader.read())).to.equal(error);
        } else {
          const { value, done } = first as ReadableStreamReadResult<string | Uint8Array>;
          expect(done).to.equal(false);
          expect(Buffer.from(value as Uint8Array).equals(message), 'the delivered message').to.equal(true);
          expect(await rejection(reader.read())).to.equal(error);
        }
        await pair.peer.closed;
        if (survivor !== null) await checkSurvivor(survivor);
      });
    }

    for (const side of SIDES) {
      for (const how of ['reset', 'FIN'] as const) {
        leakFree(
          `${side}: a ${how} right after a compressed message bigger than the readable's high-water mark, nobody reading: closed still rejects with 1006, after the message is read`,
          async (guard) => {
            const pair = await openPair(guard, side, { deflate: true });
            // 16 MiB once inflated (the readable holds 1 MiB), a few KiB on the wire.
            const compressed = peerFrame(pair, OP.BINARY, deflated(Buffer.alloc(16 * MiB, 'compressible ')), { rsv: 4 });
            pair.peer.send(compressed);
            await untilBytesRead(pair.ours, pair.headBytes + compressed.length);
            // The TCP end comes while the message is still being inflated.
            if (how === 'reset') pair.peer.socket.resetAndDestroy();
            else pair.peer.socket.end();
            const error = expectWebSocketError(await rejection(pair.stream.closed), 1006, '');
            // The message had arrived whole before the end: it is read first (nothing is dropped
            // unread), and then the readable errors with the close's error.
            const reader = pair.readable.getReader();
            expect(((await reader.read()).value as Uint8Array).byteLength).to.equal(16 * MiB);
            expect(await rejection(reader.read())).to.equal(error);
            expect(pair.ours.destroyed).to.equal(true);
            await pair.peer.closed;
          },
          { timeout: 4000 },
        );
      }
    }

    leakFree('server: twelve connections reset while inflating do not use up the shared zlib jobs; compression still works', async (guard) => {
      const { url, port, acceptor, server } = await startServer(guard, { perMessageDeflate: true });
      const message = Buffer.alloc(16 * MiB, 'compressible ');
      const compressed = deflated(message);
      const raws = await Promise.all(Array.from({ length: 12 }, () => rawUpgrade(port, ['Sec-WebSocket-Extensions: permessage-deflate'])));
      const streams = await Promise.all(raws.map(() => acceptor.next()));
      // A read waits on each, so the readables want the messages (no backpressure is involved).
      const reads = await Promise.all(streams.map(async (stream) => track((await stream.opened).readable.getReader().read())));
      const wire = frame(OP.BINARY, compressed, { rsv: 4, mask: TEST_MASK });
      for (const raw of raws) raw.reader.send(wire);
      // Each server-side socket has the whole message, then its client resets.
      await Promise.all(raws.map((raw) => untilBytesRead(guard.serverSocketOf(raw.socket), raw.requestBytes + wire.length)));
      const serverSides = raws.map((raw) => guard.serverSocketOf(raw.socket));
      for (const raw of raws) raw.socket.resetAndDestroy();
      await Promise.all(serverSides.map(closeOf));
      for (const [i, stream] of streams.entries()) {
        const error = expectWebSocketError(await rejection(stream.closed), 1006);
        // The read got the whole message, or the close error.
        const outcome = await reads[i]!.promise.then(
          (result) => result,
          (reason: unknown) => reason,
        );
        if (outcome !== error) expect((outcome as ReadableStreamReadResult<Uint8Array>).value?.byteLength).to.equal(message.length);
      }
      expect(server.connectionCount).to.equal(0);
      const survivor = await openSurvivor(guard, url, acceptor, true);
      expect((await survivor.client.opened).extensions).to.match(/^permessage-deflate/);
      await checkSurvivor(survivor);
    }, { timeout: 8000 });
  });

  describe('a server closing connections whose peers read nothing', () => {
    leakFree('server: close() resolves at closeTimeout; the connection closes with 1006 and its write in progress rejects', async (guard) => {
      const pair = await openPair(guard, 'server', { closeTimeout: 150 });
      const survivor = await openSurvivor(guard, pair.url, pair.acceptor!);
      const writer = pair.writable.getWriter();
      const write = await stuckWrite(pair, writer);
      await pair.server!.close();
      // The survivor answered the server's close (1001 going away) and closed cleanly.
      expect(await survivor.client.closed).to.deep.equal({ closeCode: 1001, reason: '' });
      await expectAbnormalClosure(pair, { write: write.promise, writer }, /no close frame/);
    });
  });

  describe('a peer that stops reading', () => {
    for (const side of SIDES) {
      leakFree(`${side}: our write stays pending, its frame is the only big allocation, and both writes complete once the peer reads again`, async (guard) => {
        const pair = await openPair(guard, side);
        const writer = pair.writable.getWriter();
        const first = Buffer.alloc(STUCK_WRITE, 0x31);
        const second = Buffer.alloc(STUCK_WRITE, 0x32);
        first.write('first', 0);
        second.write('second', 0);
        pair.peer.socket.pause();
        const before = retainedMemory();
        const firstWrite = track(writer.write(first));
        const secondWrite = track(writer.write(second));
        await untilStalled(() => pair.ours.writableLength);
        expect(firstWrite.settled, 'the first write is pending').to.equal(false);
        expect(secondWrite.settled, 'the second write is pending').to.equal(false);
        expect(writer.desiredSize, 'the writable reports backpressure').to.be.at.most(0);
        // The second chunk waits in the writable's queue, not in the socket.
        expect(pair.ours.writableLength).to.be.at.most(STUCK_WRITE + 14);
        const held = await settledMemory();
        expect(held.arrayBuffers - before.arrayBuffers, 'memory held for the pending writes').to.be.below(STUCK_WRITE + 2 * MiB);
        pair.peer.socket.resume();
        await firstWrite.promise;
        await secondWrite.promise;
        for (const expected of [first, second]) {
          const frame = await pair.peer.nextFrame();
          expect(frame.opcode).to.equal(OP.BINARY);
          expect(frame.payload.equals(expected)).to.equal(true);
        }
        pair.stream.close({ closeCode: 1000 });
        await expectCloseFrame(pair.peer, 1000);
        pair.peer.send(peerClose(pair, 1000));
        if (side === 'client') pair.peer.socket.end();
        expect(await pair.stream.closed).to.deep.equal({ closeCode: 1000, reason: '' });
        await pair.peer.closed;
      });
    }
  });

  describe('half-open connections found by the heartbeat', () => {
    for (const side of SIDES) {
      leakFree(`${side}: a peer that goes silent with TCP open (reads nothing, answers nothing) is dropped: 1006, and the write in progress rejects`, async (guard) => {
        const pair = await openPair(guard, side, { heartbeat: { interval: 50, timeout: 150 } });
        const survivor = await survivorFor(guard, pair);
        const read = track(pair.readable.getReader().read()).promise;
        const writer = pair.writable.getWriter();
        // A black hole: no reset, no FIN, no bytes either way.
        pair.peer.socket.pause();
        const write = track(writer.write(new Uint8Array(STUCK_WRITE)));
        await expectAbnormalClosure(pair, { write: write.promise, read, writer }, /no pong/);
        if (survivor !== null) await checkSurvivor(survivor);
      });
    }
  });

  describe('slowloris', () => {
    leakFree('server: heads trickled slower than handshakeTimeout are cut off (408) before they complete; another connection carries on', async (guard) => {
      const { url, port, acceptor, server } = await startServer(guard, { handshakeTimeout: 200 });
      const survivor = await openSurvivor(guard, url, acceptor);
      const head = upgradeHead(['X-Slow: ' + 's'.repeat(100)]);
      const loris = Array.from({ length: 5 }, () => {
        const socket = net.connect(port, '127.0.0.1');
        socket.on('error', () => {});
        const received: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => received.push(chunk));
        return { socket, sent: 0, received };
      });
      // One byte every 20 ms each: a step is far inside the deadline, the whole head far outside.
      const timer = setInterval(() => {
        for (const one of loris) if (!one.socket.destroyed && one.sent < head.length) one.socket.write(head[one.sent++]!);
      }, 20);
      guard.defer(() => clearInterval(timer));
      await Promise.all(loris.map((one) => closeOf(one.socket)));
      clearInterval(timer);
      for (const one of loris) {
        expect(one.sent, 'bytes of the head sent before the server closed').to.be.below(head.length);
        const text = Buffer.concat(one.received).toString('latin1');
        if (text !== '') expect(text).to.match(/^HTTP\/1\.1 408 /);
      }
      expect(server.connectionCount).to.equal(1);
      await checkSurvivor(survivor);
      expect(acceptor.all).to.have.length(1);
    });
  });
});
