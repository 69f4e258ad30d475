// Port of web-platform-tests websockets/stream/tentative/backpressure-send.any.js, against the
// stand-in for receive-backpressure_wsh.py (docs/semantics.md#when-a-write-resolves-the-bounded-send-buffer).
//
// WPT's server reads nothing for two seconds, and the page checks that `await writer.write(8 MB)`
// took at least 1.8 s. This project allows no timing assertions, so the port checks the
// mechanism: while the server reads nothing the write stays pending (and the writer shows
// backpressure), and it resolves once the server reads. The server's "two seconds" end when the
// test releases it.
import dc from 'node:diagnostics_channel';
import type net from 'node:net';
import { expect } from 'chai';
import { untilStalled, watch, wptSuite } from './harness.js';

// The amount of buffering a WebSocket connection has is not standardised, but it's reasonable to
// expect that it will not be as large as 8MB (WPT's comment; the loopback kernel buffers here
// hold a few MiB at most).
const MESSAGE_SIZE = 8 * 1024 * 1024;

wptSuite('backpressure-send.any.js', (t) => {
  it('backpressure should be applied to sent messages', async function () {
    const clientSockets: net.Socket[] = [];
    const onClientSocket = (message: unknown): void => {
      clientSockets.push((message as { socket: net.Socket }).socket);
    };
    dc.subscribe('net.client.socket', onClientSocket);
    try {
      const wss = t.open(`${t.BASEURL}/receive-backpressure`);
      const { writable } = await wss.opened;
      const writer = writable.getWriter();
      const session = await t.server.session();
      const client = clientSockets.find((socket) => socket.localPort === session.rawSocket.remotePort);
      if (t.variant === 'default') expect(client, "the client's TCP socket").to.not.equal(undefined);

      const write = watch(writer.write(new Uint8Array(MESSAGE_SIZE)));
      const ready = watch(writer.ready);
      await untilStalled(
        () => [session.rawSocket.bytesRead, client?.writableLength],
        () => !write.settled,
        () => write.settled,
      );
      expect(write.settled, 'the write should stay pending while the server reads nothing').to.equal(false);
      expect(writer.desiredSize, 'the writer should show backpressure').to.equal(0);
      expect(ready.settled, 'writer.ready should wait too').to.equal(false);
      // Over HTTP/1.1 the bytes wait in the client's TCP socket. Over HTTP/2 they may wait at the
      // stream's flow-control window instead, with the shared TCP socket empty.
      if (client !== undefined && t.variant !== 'h2') {
        expect(client.writableLength, 'bytes of the frame the kernel has not taken yet').to.be.above(0);
      }
      expect(session.received, 'the server has read nothing').to.have.length(0);

      // The server starts reading.
      expect(session.releaseReading, 'the handler should be holding').to.be.a('function');
      session.releaseReading!();
      await write.promise;
      await ready.promise;
      // Not in WPT: the handler read the whole message and then closed with 1000, cleanly.
      expect(await wss.closed).to.deep.equal({ closeCode: 1000, reason: '' });
      expect(session.received).to.have.length(1);
      const [message] = session.received;
      expect(message!.type).to.equal('binary');
      expect(message!.data.length).to.equal(MESSAGE_SIZE);
    } finally {
      dc.unsubscribe('net.client.socket', onClientSocket);
    }
  });
});
