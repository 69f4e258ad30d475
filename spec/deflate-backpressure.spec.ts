import { expect } from 'chai';
import { syncBuiltinESMExports } from 'node:module';
import zlib from 'node:zlib';
import { WebSocketStream } from '../lib/index.js';
import { deflateMessage } from './helpers/deflate-helpers.js';
import { rawFrame, startRawServer, switchingProtocols } from './helpers/raw-peer.js';

// Compressed bytes already read can hide hundreds of times their size: a reader that does not read
// must not have them all inflated for it (it holds about one message or 1 MiB: docs/semantics.md#backpressure-and-the-read-ahead-bound).
describe('permessage-deflate under readable backpressure', () => {
  it('inflates no further while the readable is full, and delivers everything once read', async () => {
    const MESSAGES = 40;
    const SIZE = 1024 * 1024;
    const frames = [];
    for (let i = 0; i < MESSAGES; i++) {
      const payload = Buffer.alloc(SIZE, i);
      frames.push(rawFrame(0x2, deflateMessage(payload), { rsv: 4 }));
    }
    // Every message arrives with the 101, so all of it has been read before anyone could read.
    const server = await startRawServer({
      respond: (request) => switchingProtocols(request, ['Sec-WebSocket-Extensions: permessage-deflate']),
      afterHead: Buffer.concat(frames),
    });
    const original = zlib.createInflateRaw;
    let inflated = 0;
    Object.defineProperty(zlib, 'createInflateRaw', {
      configurable: true,
      writable: true,
      value: (options?: zlib.ZlibOptions) => {
        const stream = original(options);
        stream.on('data', (chunk: Buffer) => (inflated += chunk.length));
        return stream;
      },
    });
    // lib/ imports node:zlib as a namespace, whose bindings follow the module object only when synced.
    syncBuiltinESMExports();
    try {
      const stream = new WebSocketStream(server.url);
      const { peer } = await server.accept();
      const { readable } = await stream.opened;
      // The threadpool gets ample time to inflate all 40 MiB if it were asked to.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(inflated).to.be.at.most(2 * SIZE);
      const reader = readable.getReader();
      for (let i = 0; i < MESSAGES; i++) {
        const { value } = await reader.read();
        const bytes = value as Uint8Array;
        expect(bytes.byteLength).to.equal(SIZE);
        expect(bytes[0]).to.equal(i);
        expect(bytes[SIZE - 1]).to.equal(i);
      }
      expect(inflated).to.equal(MESSAGES * SIZE);
      stream.close();
      await peer.nextFrame();
      peer.sendClose();
      peer.socket.end();
      expect(await stream.closed).to.deep.equal({ closeCode: 1005, reason: '' });
    } finally {
      Object.defineProperty(zlib, 'createInflateRaw', { configurable: true, writable: true, value: original });
      syncBuiltinESMExports();
      await server.close();
    }
  });
});
