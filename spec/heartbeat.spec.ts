import { expect } from 'chai';
import net from 'node:net';
import { WebSocket as WsClient } from 'ws';
import { WebSocketError, WebSocketStream, WebSocketStreamServer, type ServerWebSocketStream } from '../lib/index.js';
import { RawPeer, rawFrame, startRawServer } from './helpers/raw-peer.js';

const PING = 0x9;
const PONG = 0xa;

describe('heartbeat', () => {
  describe('client', () => {
    it('drops a peer that never answers its pings: closed rejects with 1006', async () => {
      const server = await startRawServer();
      try {
        const stream = new WebSocketStream(server.url, { heartbeat: { interval: 30, timeout: 60 } });
        const { peer } = await server.accept();
        await stream.opened;
        const ping = await peer.nextFrame();
        expect(ping.opcode).to.equal(PING);
        expect(ping.masked).to.equal(true);
        const error = await stream.closed.then(
          () => null,
          (e: unknown) => e,
        );
        expect(error).to.be.instanceOf(WebSocketError);
        expect((error as WebSocketError).closeCode).to.equal(1006);
        expect((error as WebSocketError).message).to.match(/no pong/);
        await peer.closed;
      } finally {
        await server.close();
      }
    });

    it('keeps a peer that answers, ping after ping, then closes cleanly', async () => {
      const server = await startRawServer();
      try {
        const stream = new WebSocketStream(server.url, { heartbeat: { interval: 20, timeout: 200 } });
        const { peer } = await server.accept();
        await stream.opened;
        for (let i = 0; i < 4; i++) {
          const ping = await peer.nextFrame();
          expect(ping.opcode).to.equal(PING);
          peer.send(PONG, ping.payload);
        }
        stream.close({ closeCode: 1000 });
        let frame = await peer.nextFrame();
        while (frame.opcode === PING) frame = await peer.nextFrame();
        expect(frame.opcode).to.equal(0x8);
        peer.sendClose(1000);
        peer.socket.end();
        expect(await stream.closed).to.deep.equal({ closeCode: 1000, reason: '' });
      } finally {
        await server.close();
      }
    });

    it('sends no ping while reading is paused by backpressure: a slow reader is not a dead peer', async () => {
      // Two messages arrive with the 101, so the readable (high-water mark 1 byte) is full before
      // the first heartbeat: reading pauses, and a pong could not be seen.
      const server = await startRawServer({ afterHead: Buffer.concat([rawFrame(0x2, Buffer.alloc(64)), rawFrame(0x2, Buffer.alloc(64))]) });
      try {
        const stream = new WebSocketStream(server.url, { heartbeat: { interval: 10, timeout: 20 }, readableHighWaterMark: 1 });
        const { peer } = await server.accept();
        const { readable } = await stream.opened;
        // Ten heartbeat timeouts pass with nobody reading: the connection must survive them.
        await new Promise((resolve) => setTimeout(resolve, 200));
        let closedEarly = false;
        void stream.closed.then(
          () => (closedEarly = true),
          () => (closedEarly = true),
        );
        await new Promise((resolve) => setImmediate(resolve));
        expect(closedEarly).to.equal(false);
        // Reading resumes; the heartbeat starts again and its pings are answered.
        const reader = readable.getReader();
        expect((await reader.read()).value).to.be.instanceOf(Uint8Array);
        expect((await reader.read()).value).to.be.instanceOf(Uint8Array);
        const ping = await peer.nextFrame();
        expect(ping.opcode).to.equal(PING);
        peer.send(PONG, ping.payload);
        stream.close();
        let frame = await peer.nextFrame();
        while (frame.opcode === PING) frame = await peer.nextFrame();
        expect(frame.opcode).to.equal(0x8);
        peer.sendClose();
        peer.socket.end();
        expect(await stream.closed).to.deep.equal({ closeCode: 1005, reason: '' });
      } finally {
        await server.close();
      }
    });

    it('validates the option', () => {
      expect(() => new WebSocketStream('ws://127.0.0.1:1', { heartbeat: 5 as never })).to.throw(TypeError);
      expect(() => new WebSocketStream('ws://127.0.0.1:1', { heartbeat: {} as never })).to.throw(TypeError);
      expect(() => new WebSocketStream('ws://127.0.0.1:1', { heartbeat: { interval: -1 } })).to.throw(RangeError);
      expect(() => new WebSocketStream('ws://127.0.0.1:1', { heartbeat: { interval: 10, timeout: Infinity } })).to.throw(RangeError);
    });
  });

  describe('server', () => {
    async function startServer(): Promise<{ server: WebSocketStreamServer; port: number; next: () => Promise<ServerWebSocketStream> }> {
      const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', heartbeat: { interval: 25, timeout: 50 } });
      await server.listening;
      const reader = server.connections.getReader();
      return {
        server,
        port: (server.address() as net.AddressInfo).port,
        next: async () => (await reader.read()).value!,
      };
    }

    it('drops a client that never answers: the server-side closed rejects with 1006', async () => {
      const { server, port, next } = await startServer();
      const socket = net.connect(port, '127.0.0.1');
      socket.write(
        'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
      const accepted = await next();
      let head = Buffer.alloc(0);
      await new Promise<void>((resolve) => {
        const onData = (chunk: Buffer): void => {
          head = Buffer.concat([head, chunk]);
          if (head.includes('\r\n\r\n')) {
            socket.off('data', onData);
            resolve();
          }
        };
        socket.on('data', onData);
      });
      const peer = new RawPeer(socket, head.subarray(head.indexOf('\r\n\r\n') + 4));
      const ping = await peer.nextFrame();
      expect(ping.opcode).to.equal(PING);
      expect(ping.masked).to.equal(false);
      const error = (await accepted.closed.catch((e: unknown) => e)) as WebSocketError;
      expect(error.closeCode).to.equal(1006);
      await peer.closed;
      await server.close();
    });

    it('keeps a ws client, which answers pings by itself', async () => {
      const { server, port, next } = await startServer();
      const client = new WsClient(`ws://127.0.0.1:${port}`);
      let pings = 0;
      client.on('ping', () => pings++);
      const accepted = await next();
      const { readable, writable } = await accepted.opened;
      const echo = readable.pipeTo(writable).catch(() => undefined);
      await new Promise<void>((resolve) => {
        const check = (): void => {
          if (pings >= 4) resolve();
          else client.once('ping', check);
        };
        check();
      });
      client.send('still here');
      const reply = await new Promise<string>((resolve) => client.once('message', (data) => resolve(String(data))));
      expect(reply).to.equal('still here');
      const closed = new Promise<number>((resolve) => client.once('close', (code) => resolve(code)));
      await server.close();
      expect(await closed).to.equal(1001);
      await echo;
    });
  });

});
