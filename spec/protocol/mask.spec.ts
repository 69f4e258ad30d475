import { expect } from 'chai';
import { applyMask } from '../../lib/protocol/mask.js';
import { prng, randomBytes } from '../helpers/codec.js';

/** RFC 6455 §5.3, literally: byte i of the range is XORed with key byte (phase + i) mod 4. */
function naiveMask(data: Uint8Array, start: number, end: number, key: Uint8Array, phase: number): void {
  for (let i = start; i < end; i++) data[i] = data[i]! ^ key[(phase + i - start) % 4]!;
}

const rand = prng(0x3a5c);
const KEYS = [Uint8Array.from([0x37, 0xfa, 0x21, 0x3d]), Uint8Array.from([0xff, 0x00, 0x80, 0x01]), randomBytes(rand, 4)];

/**
 * A view of `length` random bytes at `byteOffset` inside a larger ArrayBuffer with random bytes
 * around it, so that both alignment and writes outside the view can be checked.
 */
function viewAt(byteOffset: number, length: number, seed: number): { backing: Uint8Array; view: Uint8Array } {
  const backing = randomBytes(prng(seed), byteOffset + length + 16);
  const plain = new Uint8Array(backing.buffer.slice(backing.byteOffset, backing.byteOffset + backing.length));
  return { backing: plain, view: new Uint8Array(plain.buffer, byteOffset, length) };
}

describe('applyMask', () => {
  it('matches a byte loop for every length 0..300, byteOffset 0..7 and phase 0..3', () => {
    let checked = 0;
    for (let length = 0; length <= 300; length++) {
      for (let offset = 0; offset < 8; offset++) {
        for (let phase = 0; phase < 4; phase++) {
          const key = KEYS[(length + offset + phase) % KEYS.length]!;
          const { backing, view } = viewAt(offset, length, length * 32 + offset * 4 + phase);
          const expected = Uint8Array.from(backing);
          naiveMask(expected.subarray(offset, offset + length), 0, length, key, phase);
          applyMask(view, 0, length, key, phase);
          if (!Buffer.from(backing).equals(Buffer.from(expected))) {
            expect(Buffer.from(backing).toString('hex'), `length ${length}, offset ${offset}, phase ${phase}`).to.equal(Buffer.from(expected).toString('hex'));
          }
          checked++;
        }
      }
    }
    expect(checked).to.equal(301 * 8 * 4);
  });

  it('matches a byte loop on large lengths', () => {
    for (const length of [1021, 4096, 65535, 65536, 65537, 1024 * 1024 + 3]) {
      for (const [offset, phase] of [
        [0, 0],
        [1, 3],
        [2, 2],
        [3, 1],
        [5, 0],
      ] as const) {
        const key = KEYS[2]!;
        const { backing, view } = viewAt(offset, length, length + offset);
        const expected = Uint8Array.from(backing);
        naiveMask(expected.subarray(offset, offset + length), 0, length, key, phase);
        applyMask(view, 0, length, key, phase);
        expect(Buffer.from(backing).equals(Buffer.from(expected)), `length ${length}, offset ${offset}, phase ${phase}`).to.equal(true);
      }
    }
  });

  it('touches only data[start, end)', () => {
    for (const length of [40, 100, 257]) {
      for (let start = 0; start < 9; start++) {
        for (const endGap of [0, 1, 2, 3, 7]) {
          for (let offset = 0; offset < 4; offset++) {
            const end = length - endGap;
            const phase = (start + endGap) & 3;
            const { backing, view } = viewAt(offset, length, start * 100 + endGap * 10 + offset);
            const expected = Uint8Array.from(backing);
            naiveMask(expected.subarray(offset, offset + length), start, end, KEYS[0]!, phase);
            applyMask(view, start, end, KEYS[0]!, phase);
            const label = `length ${length}, [${start}, ${end}), offset ${offset}, phase ${phase}`;
            expect(Buffer.from(backing).equals(Buffer.from(expected)), label).to.equal(true);
            // And explicitly: everything outside the range is unchanged.
            const fresh = viewAt(offset, length, start * 100 + endGap * 10 + offset).backing;
            for (let i = 0; i < backing.length; i++) {
              const inside = i >= offset + start && i < offset + end;
              if (!inside && backing[i] !== fresh[i]) expect.fail(`${label}: byte ${i} outside the range changed`);
            }
          }
        }
      }
    }
  });

  it('restores the input when applied twice, whatever the chunking', () => {
    const r = prng(42);
    for (let trial = 0; trial < 200; trial++) {
      const length = Math.floor(r() * 2000);
      const original = randomBytes(r, length);
      const data = Buffer.from(original);
      const key = randomBytes(r, 4);
      // Mask in random pieces, carrying the phase, as the parser does across chunks.
      let phase = 0;
      for (let pos = 0; pos < length; ) {
        const end = Math.min(length, pos + 1 + Math.floor(r() * 100));
        applyMask(data, pos, end, key, phase);
        phase = (phase + end - pos) & 3;
        pos = end;
      }
      const once = Buffer.from(original);
      naiveMask(once, 0, length, key, 0);
      expect(data.equals(once), `trial ${trial}: masking in pieces equals masking at once`).to.equal(true);
      applyMask(data, 0, length, key, 0);
      expect(data.equals(original), `trial ${trial}`).to.equal(true);
    }
  });

  it('works with a key that is a view at an odd offset (as the encoder passes it)', () => {
    const frame = Buffer.alloc(3 + 4 + 64);
    frame.set([0xde, 0xad, 0xbe, 0xef], 3);
    const key = frame.subarray(3, 7);
    for (let i = 0; i < 64; i++) frame[7 + i] = i;
    applyMask(frame, 7, 71, key, 0);
    for (let i = 0; i < 64; i++) expect(frame[7 + i], `byte ${i}`).to.equal(i ^ [0xde, 0xad, 0xbe, 0xef][i % 4]!);
    expect([...frame.subarray(3, 7)]).to.deep.equal([0xde, 0xad, 0xbe, 0xef]);
  });

  it('leaves the data unchanged with an all-zero key, and inverts it with an all-0xFF key', () => {
    const data = randomBytes(prng(5), 333);
    const copy = Buffer.from(data);
    applyMask(copy, 0, copy.length, new Uint8Array(4), 1);
    expect(copy.equals(data)).to.equal(true);
    applyMask(copy, 0, copy.length, Uint8Array.from([0xff, 0xff, 0xff, 0xff]), 2);
    for (let i = 0; i < data.length; i++) if (copy[i] !== (~data[i]! & 0xff)) expect.fail(`byte ${i}`);
  });

  it('does nothing on an empty range', () => {
    const data = Buffer.from([1, 2, 3]);
    applyMask(data, 1, 1, KEYS[1]!, 0);
    applyMask(data, 3, 3, KEYS[1]!, 2);
    expect([...data]).to.deep.equal([1, 2, 3]);
  });
});
