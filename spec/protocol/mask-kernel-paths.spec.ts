// Masking where the codec does it (the encoder, the parser, pooled frames), on every masking path:
// the same bytes must come out whether the WebAssembly kernel or the JavaScript loop does the work.
import { expect } from 'chai';
import { encodeFrame, encodeTextFrame, headerLength } from '../../lib/protocol/frame-encoder.js';
import { FrameParser, type FrameHandler } from '../../lib/protocol/frame-parser.js';
import { acquireFrameBuffer, releaseFrameBuffer } from '../../lib/protocol/frame-pool.js';
import { releaseUnmaskedCopy, unmaskedCopy } from '../../lib/protocol/mask.js';
import { maskKernel, SCRATCH_BYTES } from '../../lib/protocol/mask-simd.js';
import { buildFrame, FrameRecorder, frameEvents, prng, randomBytes, randomInt, sameFrameEvents, describeFrameEvents, type FrameEvent } from '../helpers/codec.js';
import { forEachMaskPath } from './mask-paths.js';

/** Cuts `data` into chunks of random sizes up to `max` (some of them over a kernel scratch page). */
function randomChunks(rand: () => number, data: Buffer, max: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let pos = 0; pos < data.length; ) {
    const end = Math.min(data.length, pos + randomInt(rand, 1, max));
    // Each chunk a buffer of its own, as a socket delivers them.
    chunks.push(Buffer.from(data.subarray(pos, end)));
    pos = end;
  }
  return chunks;
}

/** Unmasks the payload of the frame the encoder made, by the tests' own reading of RFC 6455 §5.2/§5.3. */
function payloadOf(frame: Buffer): Buffer {
  let length = frame[1]! & 0x7f;
  let pos = 2;
  if (length === 126) {
    length = frame.readUInt16BE(2);
    pos = 4;
  } else if (length === 127) {
    length = Number(frame.readBigUInt64BE(2));
    pos = 10;
  }
  const key = frame.subarray(pos, pos + 4);
  const payload = Buffer.from(frame.subarray(pos + 4, pos + 4 + length));
  for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ key[i % 4]!;
  return payload;
}

describe('masking in the codec', () => {
  forEachMaskPath((path) => {
    describe('FrameParser (server role: unmasking)', () => {
      it('reports the same frames for any chunking, payloads 0 B to 300 KiB', () => {
        const rand = prng(path.kernel ? 901 : 902);
        for (let trial = 0; trial < 40; trial++) {
          const frames: Buffer[] = [];
          const expected: FrameEvent[] = [];
          for (let f = 0; f < 4; f++) {
            const length = [randomInt(rand, 0, 125), randomInt(rand, 126, 5000), randomInt(rand, 60_000, 300_000)][randomInt(rand, 0, 2)]!;
            const payload = randomBytes(rand, length);
            frames.push(buildFrame(0x2, payload, { mask: randomBytes(rand, 4) }));
            expected.push(...frameEvents(true, false, 0x2, payload));
          }
          const stream = Buffer.concat(frames);
          const recorder = new FrameRecorder();
          const parser = new FrameParser(recorder, { role: 'server' });
          // Small chunks, socket-sized ones, and ones larger than a scratch page.
          const max = [7, 1500, 65536, 200_000][trial % 4]!;
          for (const chunk of randomChunks(rand, stream, max)) parser.push(chunk);
          expect(parser.error, `trial ${trial}`).to.equal(null);
          expect(recorder.rangeErrors).to.equal(0);
          const events = recorder.snapshot();
          if (!sameFrameEvents(events, expected)) expect(describeFrameEvents(events), `trial ${trial}`).to.deep.equal(describeFrameEvents(expected));
        }
      });

      it(path.kernel ? 'hands large payload over from the kernel scratch, a page at most' : 'hands payload over from the chunk itself', () => {
        const payload = randomBytes(prng(3), 3 * SCRATCH_BYTES + 1000);
        const pieces: { fromKernel: boolean; length: number }[] = [];
        const handler: FrameHandler = {
          onFrameHeader() {},
          onFramePayload(data, start, end) {
            pieces.push({ fromKernel: data.buffer === maskKernel()?.memory.buffer, length: end - start });
          },
          onFrameEnd() {},
        };
        const parser = new FrameParser(handler, { role: 'server' });
        parser.push(buildFrame(0x2, payload, { mask: [1, 2, 3, 4] }));
        expect(parser.error).to.equal(null);
        if (path.kernel) {
          expect(pieces).to.deep.equal([
            { fromKernel: true, length: SCRATCH_BYTES },
            { fromKernel: true, length: SCRATCH_BYTES },
            { fromKernel: true, length: SCRATCH_BYTES },
            { fromKernel: true, length: 1000 },
          ]);
        } else {
          expect(pieces).to.deep.equal([{ fromKernel: false, length: payload.length }]);
        }
      });

      it('goes on with the right key phase after a handler suspends it mid-payload', () => {
        const payload = randomBytes(prng(4), 150_001);
        const received: Buffer[] = [];
        let parser!: FrameParser;
        let suspensions = 0;
        const handler: FrameHandler = {
          onFrameHeader() {},
          onFramePayload(data, start, end) {
            received.push(Buffer.from(data.subarray(start, end)));
            // Suspend after every piece: what is left of the chunk is held, still masked.
            if (!parser.suspended) {
              parser.suspend();
              suspensions++;
            }
          },
          onFrameEnd() {},
        };
        parser = new FrameParser(handler, { role: 'server' });
        // Chunks of 40,001 bytes: pieces end at odd key phases; some chunks arrive while suspended.
        const frame = buildFrame(0x2, payload, { mask: [0x11, 0x22, 0x33, 0x44] });
        for (let pos = 0; pos < frame.length; pos += 40_001) parser.push(Buffer.from(frame.subarray(pos, pos + 40_001)));
        for (let i = 0; i < 100 && parser.suspended; i++) parser.resume();
        expect(parser.suspended).to.equal(false);
        expect(suspensions).to.be.greaterThan(1);
        expect(Buffer.concat(received).equals(payload)).to.equal(true);
      });

      it('serves a parser fed from inside another parser\'s handler (the scratch is lent to one at a time)', () => {
        const outerPayload = randomBytes(prng(5), 90_000);
        const innerPayload = randomBytes(prng(6), 70_000);
        const inner = new FrameRecorder();
        const innerParser = new FrameParser(inner, { role: 'server' });
        const outerReceived: Buffer[] = [];
        let fed = false;
        const outerParser = new FrameParser(
          {
            onFrameHeader() {},
            onFramePayload(data, start, end) {
              const before = Buffer.from(data.subarray(start, end));
              if (!fed) {
                fed = true;
                innerParser.push(buildFrame(0x2, innerPayload, { mask: [9, 8, 7, 6] }));
              }
              // The nested parser must not have written over the bytes lent to this handler.
              expect(data.subarray(start, end).equals(before)).to.equal(true);
              outerReceived.push(before);
            },
            onFrameEnd() {},
          },
          { role: 'server' },
        );
        outerParser.push(buildFrame(0x2, outerPayload, { mask: [1, 3, 5, 7] }));
        expect(Buffer.concat(outerReceived).equals(outerPayload)).to.equal(true);
        expect(sameFrameEvents(inner.snapshot(), frameEvents(true, false, 0x2, innerPayload))).to.equal(true);
      });

      it('gives the scratch back when a handler throws', () => {
        const parser = new FrameParser(
          {
            onFrameHeader() {},
            onFramePayload() {
              throw new Error('handler failure');
            },
            onFrameEnd() {},
          },
          { role: 'server' },
        );
        expect(() => parser.push(buildFrame(0x2, randomBytes(prng(7), 10_000), { mask: [1, 2, 3, 4] }))).to.throw('handler failure');
        const probe = unmaskedCopy(randomBytes(prng(8), 10_000), 0, 10_000, Uint8Array.from([1, 2, 3, 4]), 0);
        expect(probe > 0).to.equal(path.kernel);
        releaseUnmaskedCopy();
      });
    });

    describe('the encoder (client: masking)', () => {
      it('masks binary frames of every size class, into fresh and pooled buffers', () => {
        const rand = prng(path.kernel ? 911 : 912);
        for (const length of [0, 1, 63, 64, 200, 255, 256, 511, 512, 4000, 16 * 1024, 65_535, 65_536, 200_001, 1024 * 1024]) {
          const payload = randomBytes(rand, length);
          const before = Buffer.from(payload);
          const size = headerLength(length, true) + length;
          const pooled = acquireFrameBuffer(size);
          try {
            for (const frame of [encodeFrame(0x2, payload, { masked: true }), ...(pooled ? [encodeFrame(0x2, payload, { masked: true }, pooled)] : [])]) {
              expect(frame.length, `length ${length}`).to.equal(size);
              expect(payloadOf(frame).equals(payload), `length ${length}`).to.equal(true);
            }
            expect(payload.equals(before), 'the caller\'s payload is left alone').to.equal(true);
          } finally {
            if (pooled) releaseFrameBuffer(pooled);
          }
        }
      });

      it('masks text frames, into fresh and pooled buffers', () => {
        for (const repeat of [1, 20, 100, 5000, 40_000]) {
          const text = 'tëxt€ '.repeat(repeat);
          const bytes = Buffer.from(text);
          const size = headerLength(bytes.length, true) + bytes.length;
          const pooled = acquireFrameBuffer(size);
          try {
            for (const frame of [encodeTextFrame(0x1, text, { masked: true }), ...(pooled ? [encodeTextFrame(0x1, text, { masked: true }, pooled)] : [])]) {
              expect(frame.length).to.equal(size);
              expect(payloadOf(frame).equals(bytes), `${bytes.length} bytes`).to.equal(true);
            }
          } finally {
            if (pooled) releaseFrameBuffer(pooled);
          }
        }
      });

      it('round-trips through a server-role parser with the same masking path', () => {
        const rand = prng(913);
        for (let trial = 0; trial < 30; trial++) {
          const payload = randomBytes(rand, randomInt(rand, 0, 150_000));
          const pooled = acquireFrameBuffer(headerLength(payload.length, true) + payload.length);
          try {
            const frame = encodeFrame(0x2, payload, { masked: true }, pooled);
            const recorder = new FrameRecorder();
            const parser = new FrameParser(recorder, { role: 'server' });
            for (const chunk of randomChunks(rand, frame, 70_000)) parser.push(chunk);
            expect(sameFrameEvents(recorder.snapshot(), frameEvents(true, false, 0x2, payload)), `trial ${trial}`).to.equal(true);
          } finally {
            if (pooled) releaseFrameBuffer(pooled);
          }
        }
      });
    });
  });
});
