// Faults (issue 8): TCP resets at every stage, peers that never answer, stop reading or go silent,
// slowloris heads. On every unclean path `closed` rejects with a WebSocketError (1006 unless a
// close frame arrived), a write in progress rejects with the writable's stored error, nothing is
// left behind (helpers/faults.ts, leakFree), and on a server, other connections carry on.
import { expect } from 'chai';
import { getEventListeners } from 'node:events';
import net from 'node:net';
import { WebSocketStream } from '../lib/index.js';
import { expectDOMException } from './helpers/conn.js';
import {
  checkSurvivor,
  closeOf,
  expectCloseFrame,
  expectWebSocketError,
  leakFree,
  MiB,
  OP,
  openPair,
  openSurvivor,
  parseRequestHead,
  peerClose,
  peerFrame,
  readHead,
  rejection,
  retainedMemory,
  scriptedServer,
  SIDES,
  startServer,
  switchingProtocols,
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

    leakFree('server: a client that resets in the middle of its head leaves nothing behind; another connection carries on', async (guard) => {
      const { url, port, acceptor, server } = await startServer(guard);
      const survivor = await openSurvivor(guard, url, acceptor);
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      const head = upgradeHead();
      socket.write(head.slice(0, head.length >> 1));
      await until(() => guard.serverSockets.some((s) => s.remotePort === socket.localPort), 'the server has the connection');
      socket.resetAndDestroy();
      await closeOf(guard.serverSocketOf(socket));
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
      socket.resetAndDestroy();
      await closeOf(guard.serverSocketOf(socket));
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
      const read = readable.getReader().read();
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
          const read = pair.readable.getReader().read();
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
        const read = pair.readable.getReader().read();
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
        const read = pair.readable.getReader().read();
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
        const held = retainedMemory();
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
        const read = pair.readable.getReader().read();
        const writer = pair.writable.getWriter();
        // A black hole: no reset, no FIN, no bytes either way.
        pair.peer.socket.pause();
        const write = writer.write(new Uint8Array(STUCK_WRITE));
        await expectAbnormalClosure(pair, { write, read, writer }, /no pong/);
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
