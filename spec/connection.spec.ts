// Connection: the per-connection state machine (OPEN → CLOSING → CLOSED), driven directly over an
// in-memory duplex pair, in both roles: no sockets, no streams facade. What the connection tells
// its owner (ConnectionEvents) and what it puts on the wire are both checked.
import { expect } from 'chai';
import type * as net from 'node:net';
import { duplexPair, type Duplex } from 'node:stream';
import { Connection, type ConnectionCloseInfo, type ConnectionEvents, type ConnectionOptions } from '../lib/connection.js';
import { MAX_BATCH_BYTES } from '../lib/protocol/message-writer.js';
import type { Role } from '../lib/protocol/types.js';
import { closePayload, rawFrame, RawPeer, type RawFrame } from './helpers/raw-peer.js';

const OP = { TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

/** Everything a connection told its owner, in order. */
class Recorder implements ConnectionEvents {
  readonly events: string[] = [];
  readonly messages: Array<string | Uint8Array> = [];
  closed: ConnectionCloseInfo | null = null;
  /** What onPeerClose answers: true holds our close reply. */
  holdReply = false;
  sendReady = 0;
  private waiters: Array<() => void> = [];

  onMessage(data: string | Uint8Array): void {
    this.messages.push(data);
    this.events.push(`message ${typeof data === 'string' ? data : `[${data.byteLength} bytes]`}`);
    this.wake();
  }

  onPeerClose(code: number | null, reason: string): boolean {
    this.events.push(`peer close ${code} ${reason}`);
    this.wake();
    return this.holdReply;
  }

  onReplyDue(): void {
    this.events.push('reply due');
    this.wake();
  }

  onSendReady(): void {
    this.sendReady++;
    this.events.push('send ready');
    this.wake();
  }

  onClosed(info: ConnectionCloseInfo): void {
    this.closed = info;
    this.events.push(`closed ${info.wasClean ? 'clean' : 'unclean'}`);
    this.wake();
  }

  /** Resolves once `condition` holds (checked after every event). */
  async until(condition: () => boolean): Promise<void> {
    while (!condition()) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

interface Pair {
  connection: Connection;
  events: Recorder;
  /** The other end of the pair: the peer, reading and writing raw frames. */
  peer: RawPeer;
  ours: Duplex;
  theirs: Duplex;
  /** A frame as the peer must send it (a client's frames are masked). */
  frame(opcode: number, payload?: Buffer | string): Buffer;
}

function open(role: Role, options: Partial<ConnectionOptions> = {}, head: Buffer = Buffer.alloc(0)): Pair {
  const [ours, theirs] = duplexPair();
  const events = new Recorder();
  const connection = new Connection(ours, { role, closeTimeout: 500, ...options }, null, events);
  connection.start(head);
  const peer = new RawPeer(theirs as unknown as net.Socket);
  // The peer of a server is a client: it masks (RFC 6455 §5.1).
  const frame = (opcode: number, payload: Buffer | string = Buffer.alloc(0)): Buffer => rawFrame(opcode, payload, { mask: role === 'server' });
  return { connection, events, peer, ours, theirs, frame };
}

function closeOf(frame: RawFrame): string {
  expect(frame.opcode, 'a close frame').to.equal(OP.CLOSE);
  return frame.payload.length === 0 ? '(no body)' : `${frame.payload.readUInt16BE(0)} ${frame.payload.subarray(2).toString()}`;
}

for (const role of ['client', 'server'] as const) {
  describe(`Connection (${role}) over an in-memory duplex pair`, () => {
    it(`frames are ${role === 'client' ? '' : 'not '}masked, and one task's messages leave in one write`, async () => {
      const { connection, peer, theirs } = open(role);
      const chunks: Buffer[] = [];
      theirs.on('data', (chunk: Buffer) => chunks.push(chunk));
      for (let i = 0; i < 50; i++) expect(connection.send(`message ${i}`)).to.equal(true);
      expect(connection.send(new Uint8Array([1, 2, 3]))).to.equal(true);
      const frames: RawFrame[] = [];
      for (let i = 0; i < 51; i++) frames.push(await peer.nextFrame());
      expect(frames.map((frame) => frame.masked)).to.deep.equal(Array(51).fill(role === 'client'));
      expect(frames.slice(0, 50).map((frame) => frame.payload.toString())).to.deep.equal(Array.from({ length: 50 }, (_, i) => `message ${i}`));
      expect([...frames[50]!.payload]).to.deep.equal([1, 2, 3]);
      expect(chunks, 'coalesced into one write').to.have.lengthOf(1);
    });

    it('starts with the bytes that came with the handshake, then reads the socket, in order', async () => {
      const head = rawFrame(OP.TEXT, 'first', { mask: role === 'server' });
      const { events, peer, frame } = open(role, {}, head);
      peer.sendRaw(frame(OP.TEXT, 'second'));
      await events.until(() => events.messages.length === 2);
      expect(events.messages).to.deep.equal(['first', 'second']);
    });

    it('a send over the bound returns false, and onSendReady follows once the peer has read', async () => {
      const { connection, events, peer } = open(role, { sendBufferSize: 1024 });
      peer.socket.pause();
      const big = new Uint8Array(MAX_BATCH_BYTES * 4);
      expect(connection.send(big)).to.equal(false);
      expect(events.sendReady).to.equal(0);
      peer.socket.resume();
      await events.until(() => events.sendReady === 1);
      expect((await peer.nextFrame()).payload.length).to.equal(big.length);
    });

    it('answers pings with pongs carrying the same payload', async () => {
      const { peer, frame } = open(role);
      peer.sendRaw(frame(OP.PING, 'are you there'));
      const pong = await peer.nextFrame();
      expect(pong.opcode).to.equal(OP.PONG);
      expect(pong.payload.toString()).to.equal('are you there');
    });

    it('our close: the close frame goes out, the peer echoes it, the close is clean', async () => {
      const { connection, events, peer, frame, theirs } = open(role);
      connection.close(4000, 'bye');
      expect(connection.state).to.equal('closing');
      expect(connection.canSend).to.equal(false);
      expect(closeOf(await peer.nextFrame())).to.equal('4000 bye');
      peer.sendRaw(frame(OP.CLOSE, closePayload(4000, 'bye')));
      // RFC 6455 §7.1.1: the server closes TCP first; a client waits for it.
      if (role === 'client') await events.until(() => events.events.includes('peer close 4000 bye'));
      else await peer.waitForEnd();
      theirs.end();
      await events.until(() => events.closed !== null);
      expect(events.closed).to.deep.equal({ wasClean: true, received: { code: 4000, reason: 'bye' }, error: null });
      expect(connection.state).to.equal('closed');
    });

    it('the peer closes first: the reply echoes its code, and the server ends TCP', async () => {
      const { events, peer, frame, theirs } = open(role);
      peer.sendRaw(frame(OP.CLOSE, closePayload(1001, 'going')));
      expect(closeOf(await peer.nextFrame())).to.equal('1001 going');
      if (role === 'server') {
        await peer.waitForEnd();
        expect(peer.ended, 'the server ended its side').to.equal(true);
        theirs.end();
      } else {
        theirs.end();
      }
      await events.until(() => events.closed !== null);
      expect(events.closed!.wasClean).to.equal(true);
      expect(events.events.slice(0, 1)).to.deep.equal(['peer close 1001 going']);
    });

    it('a held reply waits until replyToPeerClose(), and data may still be sent meanwhile', async () => {
      const { connection, events, peer, frame, theirs } = open(role);
      events.holdReply = true;
      peer.sendRaw(frame(OP.CLOSE, closePayload(1000)));
      await events.until(() => events.events.includes('peer close 1000 '));
      expect(connection.canSend).to.equal(true);
      expect(connection.send('last words')).to.equal(true);
      connection.replyToPeerClose();
      expect((await peer.nextFrame()).payload.toString()).to.equal('last words');
      expect(closeOf(await peer.nextFrame())).to.equal('1000 ');
      theirs.end();
      await events.until(() => events.closed !== null);
      expect(events.closed!.wasClean).to.equal(true);
    });

    it('a held reply that the owner never sends is due at the close timeout', async () => {
      const { events, peer, frame } = open(role, { closeTimeout: 50 });
      events.holdReply = true;
      peer.sendRaw(frame(OP.CLOSE, closePayload(1000)));
      await events.until(() => events.events.includes('reply due'));
    });

    it('a protocol error sends its close code, and the close is unclean with the error', async () => {
      const { events, peer, frame } = open(role);
      peer.sendRaw(frame(0x3)); // RFC 6455 §5.2: opcode 3 is reserved
      expect(closeOf(await peer.nextFrame())).to.match(/^1002 /);
      peer.sendRaw(frame(OP.CLOSE, closePayload(1002)));
      peer.socket.end();
      await events.until(() => events.closed !== null);
      expect(events.closed!.wasClean).to.equal(false);
      expect(events.closed!.error?.message).to.match(/reserved opcode 3/);
    });

    it('TCP ending without a close frame is an unclean close, and the socket is destroyed', async () => {
      const { events, ours, theirs } = open(role);
      theirs.end();
      await events.until(() => events.closed !== null);
      expect(events.closed).to.include({ wasClean: false });
      expect(events.closed!.received).to.equal(null);
      expect(ours.destroyed).to.equal(true);
    });

    it('no close frame from the peer within the close timeout: the socket is destroyed, unclean', async () => {
      const { connection, events, ours } = open(role, { closeTimeout: 50 });
      connection.close(null);
      await events.until(() => events.closed !== null);
      expect(events.closed!.wasClean).to.equal(false);
      expect(events.closed!.error?.message).to.match(/no close frame from the peer within 50 ms/);
      expect(ours.destroyed).to.equal(true);
    });

    it('pause() stops reading from the socket and resume() starts it again', async () => {
      const { connection, events, peer, frame, ours } = open(role);
      connection.pause();
      expect(ours.isPaused()).to.equal(true);
      peer.sendRaw(frame(OP.TEXT, 'waits'));
      connection.resume();
      expect(ours.isPaused()).to.equal(false);
      await events.until(() => events.messages.length === 1);
      expect(events.messages).to.deep.equal(['waits']);
    });

    it('after our close frame, messages are dropped and nothing more is sent (not even pongs)', async () => {
      const { connection, events, peer, frame, theirs } = open(role);
      connection.close(1000);
      expect(closeOf(await peer.nextFrame())).to.equal('1000 ');
      peer.sendRaw(Buffer.concat([frame(OP.TEXT, 'too late'), frame(OP.PING, 'p'), frame(OP.CLOSE, closePayload(1000))]));
      await events.until(() => events.events.some((event) => event.startsWith('peer close')));
      if (role === 'client') theirs.end();
      const rest = await peer.waitForEnd();
      if (role === 'server') theirs.end();
      await events.until(() => events.closed !== null);
      expect(events.messages).to.deep.equal([]);
      expect(rest, 'frames after our close frame').to.deep.equal([]);
      expect(events.closed!.wasClean).to.equal(true);
    });
  });
}
