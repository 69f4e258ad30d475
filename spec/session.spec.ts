// Session: a server answers messages that arrived right before the client's close frame. A client
// that sends a message and its close frame back to back (in one TCP segment, even) still gets the
// reply, because the server holds its close reply while those messages are unread (RFC 6455
// §5.5.1 lets an endpoint finish sending first), bounded by the close timeout.
import { expect } from 'chai';
import WebSocket from 'ws';
import type { ServerWebSocketStream, WebSocketStreamServerOptions } from '../lib/index.js';
import { leakFree, startServer, type Guard } from './helpers/faults.js';
import { closePayload, rawFrame, type RawFrame } from './helpers/raw-peer.js';
import { rawConnect } from './helpers/server-helpers.js';

const OP = { TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8 } as const;

/** The README's echo loop: every accepted connection pipes its readable into its writable. */
function readmeEcho(stream: ServerWebSocketStream): void {
  stream.opened.then(({ readable, writable }) => readable.pipeTo(writable)).catch(() => {});
}

async function echoServer(guard: Guard, handler: (stream: ServerWebSocketStream) => void, options: Partial<WebSocketStreamServerOptions> = {}): Promise<number> {
  const { port, acceptor } = await startServer(guard, options);
  void (async () => {
    for (;;) handler(await acceptor.next());
  })();
  return port;
}

/** Everything the server sends until it closes TCP. */
async function framesUntilEnd(peer: { nextFrame(): Promise<RawFrame>; waitForEnd(): Promise<RawFrame[]> }): Promise<Array<{ opcode: number; text: string }>> {
  const frames = await peer.waitForEnd();
  return frames.map((frame) => ({ opcode: frame.opcode, text: frame.opcode === OP.CLOSE ? `${frame.payload.readUInt16BE(0)} ${frame.payload.subarray(2)}` : frame.payload.toString() }));
}

describe('Session: messages that arrive with the peer\'s close frame (server side)', () => {
  leakFree('the README echo loop answers a message sent in the same TCP segment as the close frame, then echoes the close', async (guard) => {
    const port = await echoServer(guard, readmeEcho);
    const { peer, socket } = await rawConnect(port);
    guard.defer(() => socket.destroy());
    socket.write(Buffer.concat([rawFrame(OP.TEXT, 'hello', { mask: true }), rawFrame(OP.CLOSE, closePayload(1000, 'bye'), { mask: true })]));
    expect(await framesUntilEnd(peer)).to.deep.equal([
      { opcode: OP.TEXT, text: 'hello' },
      { opcode: OP.CLOSE, text: '1000 bye' },
    ]);
  });

  leakFree('a for-await loop that writes each reply answers every message that came before the close', async (guard) => {
    let closed: Promise<unknown> = Promise.resolve();
    const port = await echoServer(guard, (stream) => {
      closed = stream.closed;
      void (async () => {
        const { readable, writable } = await stream.opened;
        const writer = writable.getWriter();
        for await (const message of readable as unknown as AsyncIterable<string>) void writer.write(`re: ${message}`).catch(() => {});
      })().catch(() => {});
    });
    const { peer, socket } = await rawConnect(port);
    guard.defer(() => socket.destroy());
    socket.write(Buffer.concat([...['a', 'b', 'c'].map((text) => rawFrame(OP.TEXT, text, { mask: true })), rawFrame(OP.CLOSE, closePayload(4000), { mask: true })]));
    expect(await framesUntilEnd(peer)).to.deep.equal([
      { opcode: OP.TEXT, text: 're: a' },
      { opcode: OP.TEXT, text: 're: b' },
      { opcode: OP.TEXT, text: 're: c' },
      { opcode: OP.CLOSE, text: '4000 ' },
    ]);
    expect(await closed, 'a clean close').to.deep.equal({ closeCode: 4000, reason: '' });
  });

  leakFree('a ws client that sends and closes at once gets its echo', async (guard) => {
    const port = await echoServer(guard, readmeEcho);
    const client = new WebSocket(`ws://127.0.0.1:${port}/`);
    guard.defer(() => client.terminate());
    await new Promise((resolve) => client.once('open', resolve));
    const received: string[] = [];
    client.on('message', (data) => received.push(String(data)));
    client.send('ping me back');
    client.close(1000, 'done');
    const code = await new Promise<number>((resolve) => client.once('close', (closeCode: number) => resolve(closeCode)));
    expect(received).to.deep.equal(['ping me back']);
    expect(code).to.equal(1000);
  });

  leakFree('an application that never reads: the reply goes out after the close timeout, cleanly, and the message is still readable', async (guard) => {
    let accepted!: ServerWebSocketStream;
    const port = await echoServer(guard, (stream) => (accepted = stream), { closeTimeout: 200 });
    const { peer, socket } = await rawConnect(port);
    guard.defer(() => socket.destroy());
    socket.write(Buffer.concat([rawFrame(OP.TEXT, 'unread', { mask: true }), rawFrame(OP.CLOSE, closePayload(1000), { mask: true })]));
    const frames = await framesUntilEnd(peer);
    expect(frames).to.deep.equal([{ opcode: OP.CLOSE, text: '1000 ' }]);
    expect(await accepted.closed).to.deep.equal({ closeCode: 1000, reason: '' });
    const { readable, writable } = await accepted.opened;
    const reader = readable.getReader();
    expect(await reader.read()).to.deep.equal({ value: 'unread', done: false });
    expect((await reader.read()).done).to.equal(true);
    const error = await writable.getWriter().write('too late').catch((e: unknown) => e);
    expect(error).to.be.an.instanceOf(DOMException).with.property('name', 'InvalidStateError');
  });

  leakFree('close() while the reply is held sends the reply at once, echoing the peer\'s code', async (guard) => {
    let accepted!: ServerWebSocketStream;
    const port = await echoServer(guard, (stream) => (accepted = stream));
    const { peer, socket } = await rawConnect(port);
    guard.defer(() => socket.destroy());
    socket.write(Buffer.concat([rawFrame(OP.BINARY, Buffer.from([1, 2, 3]), { mask: true }), rawFrame(OP.CLOSE, closePayload(3001, 'x'), { mask: true })]));
    const { readable } = await accepted.opened;
    const reader = readable.getReader();
    expect((await reader.read()).value).to.deep.equal(new Uint8Array([1, 2, 3]));
    accepted.close({ closeCode: 1011 });
    expect(await framesUntilEnd(peer)).to.deep.equal([{ opcode: OP.CLOSE, text: '3001 x' }]);
    expect(await accepted.closed).to.deep.equal({ closeCode: 3001, reason: 'x' });
  });

  leakFree('with nothing unread, the close is answered at once and the writable errors, as before', async (guard) => {
    let accepted!: ServerWebSocketStream;
    const port = await echoServer(guard, (stream) => (accepted = stream));
    const { peer, socket } = await rawConnect(port);
    guard.defer(() => socket.destroy());
    const { writable } = await accepted.opened;
    socket.write(rawFrame(OP.CLOSE, closePayload(1000), { mask: true }));
    expect(await framesUntilEnd(peer)).to.deep.equal([{ opcode: OP.CLOSE, text: '1000 ' }]);
    const error = await writable.getWriter().write('late').catch((e: unknown) => e);
    expect(error).to.be.an.instanceOf(DOMException).with.property('name', 'InvalidStateError');
  });
});
