import { expect } from 'chai';
import type { AddressInfo } from 'node:net';
import { WebSocketStream, WebSocketStreamServer } from '../../lib/index.js';
import { acquireFrameBuffer, POOLED_FRAME_MAX, POOLED_FRAME_MIN, releaseFrameBuffer } from '../../lib/protocol/frame-pool.js';

describe('frame pool', () => {
  it('pools only frames between its bounds', () => {
    expect(acquireFrameBuffer(POOLED_FRAME_MIN - 1)).to.equal(undefined);
    expect(acquireFrameBuffer(POOLED_FRAME_MAX + 1)).to.equal(undefined);
    const buffer = acquireFrameBuffer(POOLED_FRAME_MIN)!;
    expect(buffer.length).to.be.at.least(POOLED_FRAME_MIN);
    releaseFrameBuffer(buffer);
  });

  it('hands a released buffer out again, and never the same buffer twice at once', () => {
    const first = acquireFrameBuffer(100_000)!;
    const second = acquireFrameBuffer(100_000)!;
    expect(second).to.not.equal(first);
    releaseFrameBuffer(first);
    expect(acquireFrameBuffer(90_000)).to.equal(first);
    releaseFrameBuffer(first);
    releaseFrameBuffer(second);
  });

  it('keeps every message intact when connections share the pool, sequentially and concurrently', async () => {
    const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1' });
    await server.listening;
    const port = (server.address() as AddressInfo).port;
    const CLIENTS = 4;
    const MESSAGES = 20;
    const serving = (async () => {
      const reader = server.connections.getReader();
      const peers = [];
      for (let c = 0; c < CLIENTS; c++) peers.push((await reader.read()).value!);
      reader.releaseLock();
      // Every server stream writes its own pattern, all at once, reusing pooled buffers.
      await Promise.all(
        peers.map(async (peer, c) => {
          const { writable } = await peer.opened;
          const writer = writable.getWriter();
          for (let m = 0; m < MESSAGES; m++) {
            const message = new Uint8Array(64 * 1024 + m * 1000).fill((c * MESSAGES + m) & 0xff);
            const written = writer.write(message);
            message.fill(0xee); // the snapshot was taken: this must not reach the wire
            await written;
          }
        }),
      );
    })();
    const clients = Array.from({ length: CLIENTS }, () => new WebSocketStream(`ws://127.0.0.1:${port}`));
    await Promise.all(
      clients.map(async (client) => {
        const { readable } = await client.opened;
        const reader = readable.getReader();
        let pattern: number | null = null;
        for (let m = 0; m < MESSAGES; m++) {
          const bytes = (await reader.read()).value as Uint8Array;
          expect(bytes.byteLength).to.equal(64 * 1024 + m * 1000);
          pattern ??= bytes[0]! - m;
          expect(bytes.every((byte) => byte === ((pattern! + m) & 0xff))).to.equal(true);
        }
      }),
    );
    await serving;
    for (const client of clients) client.close();
    await Promise.all(clients.map((client) => client.closed));
    await server.close();
  });
});
