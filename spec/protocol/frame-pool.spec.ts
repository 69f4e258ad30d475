import { expect } from 'chai';
import type { AddressInfo } from 'node:net';
import { WebSocketStream, WebSocketStreamServer } from '../../lib/index.js';
import { acquireFrameBuffer, POOLED_FRAME_MAX, POOLED_FRAME_MIN, releaseFrameBuffer } from '../../lib/protocol/frame-pool.js';
import { FRAME_ARENA_BYTES, FRAME_ARENA_OFFSET, maskKernel, setMaskKernelEnabled } from '../../lib/protocol/mask-simd.js';

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

  describe('with the WebAssembly masking kernel', () => {
    /** Everything the arena can hand out, so that each test starts and ends with it empty. */
    function drain(): Buffer[] {
      const taken: Buffer[] = [];
      for (;;) {
        const buffer = acquireFrameBuffer(POOLED_FRAME_MIN)!;
        if (buffer.buffer !== maskKernel()!.memory.buffer) {
          releaseFrameBuffer(buffer);
          return taken;
        }
        taken.push(buffer);
      }
    }

    it('cuts frame buffers from the kernel memory\'s arena, page-aligned and never overlapping', () => {
      const kernel = maskKernel();
      expect(kernel).to.not.equal(null);
      const held: Buffer[] = [];
      try {
        for (const size of [POOLED_FRAME_MIN, 65_550, 100_000, POOLED_FRAME_MAX, 70_000, 16 * 1024 + 1]) {
          const buffer = acquireFrameBuffer(size)!;
          held.push(buffer);
          expect(buffer.buffer, `size ${size}`).to.equal(kernel!.memory.buffer);
          expect(buffer.length).to.be.at.least(size);
          expect(buffer.byteOffset % (64 * 1024)).to.equal(0);
          expect(buffer.byteOffset).to.be.at.least(FRAME_ARENA_OFFSET);
          expect(buffer.byteOffset + buffer.length).to.be.at.most(FRAME_ARENA_OFFSET + FRAME_ARENA_BYTES);
        }
        const ranges = held.map((b) => [b.byteOffset, b.byteOffset + b.length] as const).sort((a, b) => a[0] - b[0]);
        for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0], 'no overlap').to.be.at.least(ranges[i - 1]![1]);
      } finally {
        for (const buffer of held) releaseFrameBuffer(buffer);
      }
    });

    it('reuses released space, and hands out ordinary buffers while the arena is full', () => {
      const taken = drain();
      try {
        expect(taken.length).to.equal(FRAME_ARENA_BYTES / (64 * 1024));
        // Full: still a buffer, an ordinary one, which goes back to the ordinary spares.
        const overflow = acquireFrameBuffer(100_000)!;
        expect(overflow.buffer).to.not.equal(maskKernel()!.memory.buffer);
        expect(overflow.length).to.be.at.least(100_000);
        releaseFrameBuffer(overflow);
        // Two neighbouring pages free again: a two-page frame fits there.
        const [a, b] = [taken.splice(5, 1)[0]!, taken.splice(5, 1)[0]!];
        releaseFrameBuffer(a);
        releaseFrameBuffer(b);
        const two = acquireFrameBuffer(100_000)!;
        expect(two.buffer).to.equal(maskKernel()!.memory.buffer);
        expect(two.byteOffset).to.equal(a.byteOffset);
        expect(two.length).to.equal(2 * 64 * 1024);
        taken.push(two);
      } finally {
        for (const buffer of taken) releaseFrameBuffer(buffer);
      }
      // All given back: the whole arena is free again.
      const again = drain();
      expect(again.length).to.equal(FRAME_ARENA_BYTES / (64 * 1024));
      for (const buffer of again) releaseFrameBuffer(buffer);
    });

    it('hands out ordinary buffers with the kernel turned off, and takes arena buffers back all the same', () => {
      const fromArena = acquireFrameBuffer(POOLED_FRAME_MIN)!;
      expect(fromArena.buffer).to.equal(maskKernel()!.memory.buffer);
      setMaskKernelEnabled(false);
      try {
        const ordinary = acquireFrameBuffer(POOLED_FRAME_MIN)!;
        expect(ordinary.buffer instanceof ArrayBuffer).to.equal(true);
        expect(ordinary.byteOffset).to.equal(0);
        releaseFrameBuffer(ordinary);
        releaseFrameBuffer(fromArena);
      } finally {
        setMaskKernelEnabled(true);
      }
      // Its page is free again: the next arena buffer is cut from it.
      const next = acquireFrameBuffer(POOLED_FRAME_MIN)!;
      expect(next.byteOffset).to.equal(fromArena.byteOffset);
      releaseFrameBuffer(next);
    });
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
