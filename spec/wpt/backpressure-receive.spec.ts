// Port of web-platform-tests websockets/stream/tentative/backpressure-receive.any.js, against
// the stand-in for send-backpressure_wsh.py (docs/semantics.md#backpressure-and-the-read-ahead-bound).
//
// WPT lets the page read nothing for two seconds and then checks that the server needed at least
// 1.8 s to get its 16 × 1 MiB into the kernel. This project allows no timing assertions, so the
// port checks the mechanism instead: while the client reads nothing, the server's writes stop
// being accepted (a write stays unfinished and no progress is made), the server cannot get all
// its messages out, and the client holds about one high-water mark plus one message.
import dc from 'node:diagnostics_channel';
import type net from 'node:net';
import { expect } from 'chai';
import { DEFAULT_READABLE_HIGH_WATER_MARK } from '../../lib/index.js';
import { SEND_BACKPRESSURE_MESSAGE_COUNT, SEND_BACKPRESSURE_MESSAGE_SIZE } from './handlers.js';
import { untilStalled, wptSuite } from './harness.js';

/** A frame header of a 1 MiB message: 2 bytes plus a 64-bit length. */
const LARGE_FRAME_HEADER = 10;
/**
 * What a paused reader may still hold beyond its queue: the net.Socket's own buffer (its
 * high-water mark plus one 64 KiB read) and the part of the next frame already parsed.
 */
const SOCKET_SLACK = 256 * 1024;

wptSuite('backpressure-receive.any.js', (t) => {
  it('backpressure should be applied to received messages', async function () {
    // The client's TCP socket, to see how much it has read from the kernel. net.connect()
    // announces its sockets on this channel; tls.connect() does not, so the ?wss variant checks
    // the server side only.
    const clientSockets: net.Socket[] = [];
    const onClientSocket = (message: unknown): void => {
      clientSockets.push((message as { socket: net.Socket }).socket);
    };
    dc.subscribe('net.client.socket', onClientSocket);
    try {
      const wss = t.open(`${t.BASEURL}/send-backpressure`);
      const { readable } = await wss.opened;
      const reader = readable.getReader();
      const session = await t.server.session();
      const client = clientSockets.find((socket) => socket.localPort === session.rawSocket.remotePort);
      if (t.variant === 'default') expect(client, "the client's TCP socket").to.not.equal(undefined);

      // Read nothing until the transfer stops moving (or the server has sent everything).
      await untilStalled(
        () => [session.largeMessagesAccepted, session.socket.writableLength, client?.bytesRead],
        () => session.socket.writableLength > 0,
        () => session.finishedSending || !session.alive,
      );
      expect(session.finishedSending, 'the server must not get all its messages out while the client reads nothing').to.equal(false);
      expect(session.largeMessagesAccepted).to.be.below(SEND_BACKPRESSURE_MESSAGE_COUNT);
      expect(session.socket.writableLength, "the server's current write should be waiting for the kernel").to.be.above(0);
      if (client !== undefined) {
        const held = client.bytesRead - session.handshakeBytes;
        expect(held, 'bytes the client read from its socket without being asked to').to.be.at.most(
          DEFAULT_READABLE_HIGH_WATER_MARK + SEND_BACKPRESSURE_MESSAGE_SIZE + LARGE_FRAME_HEADER + SOCKET_SLACK,
        );
      }

      // Now read, as WPT does after its two seconds: the empty message that filled the queue,
      // the large messages, then the time the server measured.
      const empty = await reader.read();
      expect(empty.done).to.equal(false);
      expect(empty.value).to.be.instanceOf(Uint8Array);
      expect((empty.value as Uint8Array).byteLength).to.equal(0);
      for (let i = 0; i < SEND_BACKPRESSURE_MESSAGE_COUNT; ++i) {
        const { value, done } = await reader.read();
        expect(done).to.equal(false);
        expect(value).to.be.instanceOf(Uint8Array);
        const bytes = value as Uint8Array;
        expect(bytes.byteLength, `large message ${i}`).to.equal(SEND_BACKPRESSURE_MESSAGE_SIZE);
        expect(bytes[0]).to.equal(0x20);
        expect(bytes[bytes.byteLength - 1]).to.equal(0x20);
      }
      const { value, done } = await reader.read();
      expect(done).to.equal(false);
      expect(typeof value, 'the elapsed time comes as text').to.equal('string');
      expect(Number.isFinite(Number(value)), 'the elapsed time should be a number').to.equal(true);
      expect(session.finishedSending).to.equal(true);
      // Not in WPT: the handler then closes with 1000, cleanly.
      expect(await wss.closed).to.deep.equal({ closeCode: 1000, reason: '' });
      expect((await reader.read()).done).to.equal(true);
    } finally {
      dc.unsubscribe('net.client.socket', onClientSocket);
    }
  });
});
