// Session: a server answers messages that arrived right before the client's close frame. A client
// that sends a message and its close frame back to back (in one TCP segment, even) still gets the
// reply, because the server holds its close reply while those messages are unread (RFC 6455
// §5.5.1 lets an endpoint finish sending first), bounded by the close timeout.
import { expect } from 'chai';
import type * as net from 'node:net';
import { duplexPair, type Duplex } from 'node:stream';
import WebSocket from 'ws';
import { WebSocketError, type ServerWebSocketStream, type WebSocketStreamServerOptions } from '../lib/index.js';
import { Session, type SessionOptions } from '../lib/session.js';
import { leakFree, startServer, type Guard } from './helpers/faults.js';
import { closePayload, rawFrame, RawPeer, type RawFrame } from './helpers/raw-peer.js';
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

describe('Session over an in-memory duplex pair (no sockets)', () => {
  function established(role: 'client' | 'server', options: Partial<SessionOptions> = {}): { session: Session; peer: RawPeer; ours: Duplex; theirs: Duplex; frame(opcode: number, payload?: Buffer | string): Buffer } {
    const [ours, theirs] = duplexPair();
    const session = new Session({ role, closeTimeout: 200, ...options });
    session.establish(ours, Buffer.alloc(0), '', '');
    const frame = (opcode: number, payload: Buffer | string = Buffer.alloc(0)): Buffer => rawFrame(opcode, payload, { mask: role === 'server' });
    return { session, peer: new RawPeer(theirs as unknown as net.Socket), ours, theirs, frame };
  }

  it('goes connecting → open → closing → closed, its state read from the connection', async () => {
    const [ours, theirs] = duplexPair();
    const session = new Session({ role: 'client', closeTimeout: 200 });
    expect(session.state).to.equal('connecting');
    session.establish(ours, Buffer.alloc(0), 'chat', '');
    expect(session.state).to.equal('open');
    const peer = new RawPeer(theirs as unknown as net.Socket);
    session.close(1000, 'done');
    expect(session.state).to.equal('closing');
    expect((await peer.nextFrame()).opcode).to.equal(OP.CLOSE);
    peer.sendRaw(rawFrame(OP.CLOSE, closePayload(1000, 'done')));
    theirs.end();
    expect(await session.closed).to.deep.equal({ closeCode: 1000, reason: 'done' });
    expect(session.state).to.equal('closed');
  });

  it('a failed handshake rejects opened (closeCode null) and closed (1006) with two WebSocketErrors', async () => {
    const session = new Session({ role: 'client' });
    session.failHandshake('refused', new Error('ECONNREFUSED'));
    const [opened, closed] = await Promise.all([session.opened.catch((e: unknown) => e), session.closed.catch((e: unknown) => e)]);
    expect(opened).to.be.an.instanceOf(WebSocketError).with.property('closeCode', null);
    expect(closed).to.be.an.instanceOf(WebSocketError).with.property('closeCode', 1006);
    expect(opened).to.not.equal(closed);
    expect(session.state).to.equal('closed');
  });

  it('close() before the connection is established fails the handshake, and cancels it', async () => {
    const session = new Session({ role: 'client' });
    let cancelled = 0;
    session.handshakeStarted(() => cancelled++);
    session.close(null, '');
    expect(cancelled).to.equal(1);
    expect(await session.opened.catch((e: unknown) => e)).to.be.an.instanceOf(WebSocketError);
  });

  it('opened is made on demand, already settled, with real streams made when first read', async () => {
    const { session, peer, frame, ours } = established('client');
    peer.sendRaw(frame(OP.TEXT, 'before anyone reads'));
    const info = await session.opened;
    expect(Object.keys(info).sort()).to.deep.equal(['extensions', 'protocol', 'readable', 'writable']);
    expect(info.readable).to.be.an.instanceOf(ReadableStream);
    expect(info.writable).to.be.an.instanceOf(WritableStream);
    expect(info.readable, 'the same stream every time').to.equal(info.readable);
    expect((await info.readable.getReader().read()).value).to.equal('before anyone reads');
    ours.destroy();
  });

  it('a readable made after a clean close starts closed, with the messages that arrived still in it', async () => {
    const { session, peer, frame, theirs } = established('client');
    peer.sendRaw(Buffer.concat([frame(OP.TEXT, 'one'), frame(OP.TEXT, 'two'), frame(OP.CLOSE, closePayload(1000))]));
    await peer.nextFrame();
    theirs.end();
    expect(await session.closed).to.deep.equal({ closeCode: 1000, reason: '' });
    const reader = (await session.opened).readable.getReader();
    expect((await reader.read()).value).to.equal('one');
    expect((await reader.read()).value).to.equal('two');
    expect((await reader.read()).done).to.equal(true);
  });

  it('an unclean close errors both streams with the very WebSocketError that rejects closed', async () => {
    const { session, ours } = established('server');
    const { readable, writable } = await session.opened;
    const writer = writable.getWriter();
    // The connection dies (a reset, say): our end of it goes away without a closing handshake.
    ours.destroy();
    const error = await session.closed.catch((e: unknown) => e);
    expect(error).to.be.an.instanceOf(WebSocketError).with.property('closeCode', 1006);
    expect(await readable.getReader().read().catch((e: unknown) => e)).to.equal(error);
    expect(await writer.write('x').catch((e: unknown) => e)).to.equal(error);
  });

  it('messages that arrived before an unclean end are read first; then the readable errors', async () => {
    const { session, peer, frame, ours } = established('client');
    peer.sendRaw(Buffer.concat([frame(OP.TEXT, 'one'), frame(OP.BINARY, Buffer.from([2]))]));
    const { readable } = await session.opened;
    const reader = readable.getReader();
    expect((await reader.read()).value).to.equal('one');
    // The second message is in, unread, when the connection dies.
    await new Promise((resolve) => setImmediate(resolve));
    ours.destroy();
    const error = await session.closed.catch((e: unknown) => e);
    expect(error).to.be.an.instanceOf(WebSocketError).with.property('closeCode', 1006);
    expect((await reader.read()).value).to.deep.equal(new Uint8Array([2]));
    expect(await reader.read().catch((e: unknown) => e)).to.equal(error);
  });

  it('a readable made after an unclean end hands out what arrived, then errors', async () => {
    const { session, peer, frame, ours } = established('server');
    peer.sendRaw(frame(OP.TEXT, 'kept'));
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    ours.destroy();
    const error = await session.closed.catch((e: unknown) => e);
    const reader = (await session.opened).readable.getReader();
    expect((await reader.read()).value).to.equal('kept');
    expect(await reader.read().catch((e: unknown) => e)).to.equal(error);
  });

  it('a write over the send buffer stays in progress and rejects when the connection then dies', async () => {
    const { session, peer, ours } = established('client', { sendBufferSize: 16 });
    peer.socket.pause();
    const writer = (await session.opened).writable.getWriter();
    const write = writer.write(new Uint8Array(256 * 1024));
    let settled = false;
    void write.then(() => (settled = true), () => (settled = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled, 'in progress while the peer reads nothing').to.equal(false);
    ours.destroy();
    const error = await write.catch((e: unknown) => e);
    expect(error).to.be.an.instanceOf(WebSocketError).with.property('closeCode', 1006);
  });

  it('the close codes close() takes depend on the role', () => {
    const client = new Session({ role: 'client' });
    const server = new Session({ role: 'server' });
    for (const code of [1001, 1008, 1011, 1013]) {
      expect(client.isSendableCloseCode(code), `client ${code}`).to.equal(false);
      expect(server.isSendableCloseCode(code), `server ${code}`).to.equal(true);
    }
    for (const code of [1000, 3000, 4999]) expect(client.isSendableCloseCode(code)).to.equal(true);
    for (const code of [1005, 1006, 1015, 2999]) expect(server.isSendableCloseCode(code)).to.equal(false);
  });
});
