import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { acquireFrameBuffer, releaseFrameBuffer } from '../../lib/protocol/frame-pool.js';
import { applyMask, copyMasked, KERNEL_MIN_BYTES, releaseUnmaskedCopy, unmaskedCopy, unmaskScratch } from '../../lib/protocol/mask.js';
import { instantiateMaskKernel, maskKernel, SCRATCH_BYTES } from '../../lib/protocol/mask-simd.js';
import { MASK_SIMD_WASM } from '../../lib/protocol/mask-simd-wasm.js';
import { prng, randomBytes } from '../helpers/codec.js';
import { forEachMaskPath } from './mask-paths.js';

/** RFC 6455 §5.3, literally: byte i of the range is XORed with key byte (phase + i) mod 4. */
function naiveMask(data: Uint8Array, start: number, end: number, key: Uint8Array, phase: number, keyOffset = 0): void {
  for (let i = start; i < end; i++) data[i] = data[i]! ^ key[keyOffset + ((phase + i - start) % 4)]!;
}

const rand = prng(0x3a5c);
const KEYS = [Uint8Array.from([0x37, 0xfa, 0x21, 0x3d]), Uint8Array.from([0xff, 0x00, 0x80, 0x01]), randomBytes(rand, 4)];
/** A pooled frame's size for the tests that write into one. */
const POOLED = 600 * 1024;
/** Sizes around every step of the kernel (16-byte alignment, 128/16/4/1-byte loops) and its 64 KiB scratch pages. */
const LARGE = [1021, 4096, 65535, 65536, 65537, 2 * 65536 + 129, 1024 * 1024 + 3];

/**
 * A view of `length` random bytes at `byteOffset` inside a larger ArrayBuffer with random bytes
 * around it, so that both alignment and writes outside the view can be checked.
 */
function viewAt(byteOffset: number, length: number, seed: number): { backing: Uint8Array; view: Uint8Array } {
  const backing = randomBytes(prng(seed), byteOffset + length + 16);
  const plain = new Uint8Array(backing.buffer.slice(backing.byteOffset, backing.byteOffset + backing.length));
  return { backing: plain, view: new Uint8Array(plain.buffer, byteOffset, length) };
}

function sameBytes(actual: Uint8Array, expected: Uint8Array): boolean {
  return Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).equals(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength));
}

describe('applyMask', () => {
  forEachMaskPath(() => {
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
            if (!sameBytes(backing, expected)) {
              expect(Buffer.from(backing).toString('hex'), `length ${length}, offset ${offset}, phase ${phase}`).to.equal(Buffer.from(expected).toString('hex'));
            }
            checked++;
          }
        }
      }
      expect(checked).to.equal(301 * 8 * 4);
    });

    it('matches a byte loop on large lengths, across the kernel scratch pages', () => {
      for (const length of LARGE) {
        for (const [offset, phase] of [
          [0, 0],
          [1, 3],
          [2, 2],
          [3, 1],
          [5, 0],
          [13, 3],
        ] as const) {
          const key = KEYS[2]!;
          const { backing, view } = viewAt(offset, length, length + offset);
          const expected = Uint8Array.from(backing);
          naiveMask(expected.subarray(offset, offset + length), 0, length, key, phase);
          applyMask(view, 0, length, key, phase);
          expect(sameBytes(backing, expected), `length ${length}, offset ${offset}, phase ${phase}`).to.equal(true);
        }
      }
    });

    it('matches a byte loop on bytes in the kernel memory (a pooled frame), every offset 0..15', () => {
      // Where the kernel is loaded the pool cuts its buffers from the kernel's memory; applyMask then
      // masks them where they are. With the kernel off they are ordinary buffers.
      const frame = acquireFrameBuffer(1024 * 1024)!;
      try {
        expect(frame.buffer === maskKernel()?.memory.buffer).to.equal(maskKernel() !== null);
        const r = prng(77);
        const lengths = [...Array.from({ length: 301 }, (_, i) => i), ...LARGE.filter((n) => n + 32 <= frame.length)];
        for (const length of lengths) {
          for (let offset = 0; offset < 16; offset++) {
            const phase = (length + offset) & 3;
            const key = KEYS[(length + offset) % KEYS.length]!;
            const region = frame.subarray(0, offset + length + 16);
            region.set(randomBytes(r, region.length));
            const expected = Uint8Array.from(region);
            naiveMask(expected, offset, offset + length, key, phase);
            applyMask(frame, offset, offset + length, key, phase);
            if (!sameBytes(region, expected)) expect.fail(`length ${length}, offset ${offset}, phase ${phase}`);
          }
        }
      } finally {
        releaseFrameBuffer(frame);
      }
    });

    it('touches only data[start, end)', () => {
      for (const length of [40, 100, 257, 700]) {
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
              expect(sameBytes(backing, expected), label).to.equal(true);
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
        const length = Math.floor(r() * 5000);
        const original = randomBytes(r, length);
        const data = Buffer.from(original);
        const key = randomBytes(r, 4);
        // Mask in random pieces, carrying the phase, as the parser does across chunks.
        let phase = 0;
        for (let pos = 0; pos < length; ) {
          const end = Math.min(length, pos + 1 + Math.floor(r() * 1200));
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
      for (const length of [64, 1000]) {
        const frame = Buffer.alloc(3 + 4 + length);
        frame.set([0xde, 0xad, 0xbe, 0xef], 3);
        const key = frame.subarray(3, 7);
        for (let i = 0; i < length; i++) frame[7 + i] = i & 0xff;
        applyMask(frame, 7, 7 + length, key, 0);
        for (let i = 0; i < length; i++) if (frame[7 + i] !== ((i & 0xff) ^ [0xde, 0xad, 0xbe, 0xef][i % 4]!)) expect.fail(`length ${length}, byte ${i}`);
        expect([...frame.subarray(3, 7)]).to.deep.equal([0xde, 0xad, 0xbe, 0xef]);
      }
    });

    it('leaves the data unchanged with an all-zero key, and inverts it with an all-0xFF key', () => {
      for (const length of [333, 4099]) {
        const data = randomBytes(prng(5), length);
        const copy = Buffer.from(data);
        applyMask(copy, 0, copy.length, new Uint8Array(4), 1);
        expect(copy.equals(data)).to.equal(true);
        applyMask(copy, 0, copy.length, Uint8Array.from([0xff, 0xff, 0xff, 0xff]), 2);
        for (let i = 0; i < data.length; i++) if (copy[i] !== (~data[i]! & 0xff)) expect.fail(`length ${length}, byte ${i}`);
      }
    });

    it('does nothing on an empty range', () => {
      const data = Buffer.from([1, 2, 3]);
      applyMask(data, 1, 1, KEYS[1]!, 0);
      applyMask(data, 3, 3, KEYS[1]!, 2);
      expect([...data]).to.deep.equal([1, 2, 3]);
    });
  });
});

describe('copyMasked', () => {
  forEachMaskPath(() => {
    /** What copyMasked must leave in `target`: the source masked at targetStart, the rest as it was. */
    function expectCopied(target: Uint8Array, before: Uint8Array, source: Uint8Array, targetStart: number, keyOffset: number, label: string): void {
      const expected = Uint8Array.from(before);
      expected.set(source, targetStart);
      naiveMask(expected, targetStart, targetStart + source.length, before, 0, keyOffset);
      if (!sameBytes(target, expected)) expect.fail(label);
    }

    it('writes the masked source at targetStart of an ordinary buffer, and nothing else', () => {
      const r = prng(11);
      const lengths = [...Array.from({ length: 301 }, (_, i) => i), ...LARGE];
      for (const length of lengths) {
        for (const sourceOffset of [0, 1, 3]) {
          // The key sits in the target just before the payload, as in a frame.
          const keyOffset = 2 + sourceOffset;
          const targetStart = keyOffset + 4;
          const target = randomBytes(r, targetStart + length + 9);
          const before = Uint8Array.from(target);
          const { view: source } = viewAt(sourceOffset, length, length * 7 + sourceOffset);
          copyMasked(source, target, targetStart, target, keyOffset);
          expectCopied(target, before, source, targetStart, keyOffset, `length ${length}, source offset ${sourceOffset}`);
        }
      }
    });

    it('writes the masked source into a pooled frame (in the kernel memory where it is loaded)', () => {
      const frame = acquireFrameBuffer(POOLED)!;
      try {
        const r = prng(12);
        for (const length of [0, 1, 15, 16, 17, 63, 64, 65, 255, 256, 257, 1000, 16 * 1024, 65536, 65537, 512 * 1024 + 5]) {
          for (const targetStart of [6, 8, 14, 15]) {
            const region = frame.subarray(0, targetStart + length + 8);
            region.set(randomBytes(r, region.length));
            const before = Uint8Array.from(region);
            const source = randomBytes(r, length);
            copyMasked(source, frame, targetStart, frame, targetStart - 4);
            expectCopied(region, before, source, targetStart, targetStart - 4, `length ${length}, at ${targetStart}`);
          }
        }
      } finally {
        releaseFrameBuffer(frame);
      }
    });
  });
});

describe('unmaskedCopy', () => {
  forEachMaskPath((maskPath) => {
    if (!maskPath.kernel) {
      it('declines without the kernel: the caller unmasks in place', () => {
        const data = randomBytes(prng(1), 100_000);
        expect(unmaskedCopy(data, 0, data.length, KEYS[0]!, 0)).to.equal(0);
      });
      return;
    }

    it('unmasks data[start, end) into scratch, at most a page of it, and leaves data as it was', () => {
      const r = prng(21);
      const scratch = unmaskScratch();
      expect(scratch.buffer).to.equal(maskKernel()!.memory.buffer);
      expect(scratch.length).to.equal(SCRATCH_BYTES);
      for (const length of [0, 1, 100, 255, 256, 300, 383, 384, 385, 4097, SCRATCH_BYTES - 1, SCRATCH_BYTES, SCRATCH_BYTES + 1, 3 * SCRATCH_BYTES]) {
        for (const [start, phase] of [
          [0, 0],
          [1, 1],
          [6, 2],
          [13, 3],
        ] as const) {
          const data = randomBytes(r, start + length + 5);
          const original = Buffer.from(data);
          const end = start + length;
          const unmasked = unmaskedCopy(data, start, end, KEYS[2]!, phase);
          const label = `length ${length}, start ${start}, phase ${phase}`;
          if (length === 0 || length < KERNEL_MIN_BYTES.unmaskCopy) {
            expect(unmasked, label).to.equal(0);
            continue;
          }
          try {
            const count = Math.min(length, SCRATCH_BYTES);
            expect(unmasked, label).to.equal(count);
            const expected = Buffer.from(original.subarray(start, start + count));
            naiveMask(expected, 0, count, KEYS[2]!, phase);
            expect(scratch.subarray(0, count).equals(expected), label).to.equal(true);
            expect(data.equals(original), `${label}: data unchanged`).to.equal(true);
          } finally {
            releaseUnmaskedCopy();
          }
        }
      }
    });

    it('lends its scratch to one caller at a time', () => {
      const data = randomBytes(prng(22), 5000);
      expect(unmaskedCopy(data, 0, 5000, KEYS[0]!, 0)).to.equal(5000);
      const snapshot = Buffer.from(unmaskScratch().subarray(0, 5000));
      // A nested caller (a second parser fed from a frame handler) is told to unmask in place.
      expect(unmaskedCopy(data, 0, 5000, KEYS[1]!, 0)).to.equal(0);
      expect(unmaskScratch().subarray(0, 5000).equals(snapshot), 'the lent scratch was not overwritten').to.equal(true);
      releaseUnmaskedCopy();
      expect(unmaskedCopy(data, 0, 5000, KEYS[1]!, 0)).to.equal(5000);
      releaseUnmaskedCopy();
    });
  });
});

describe('the WebAssembly masking kernel', () => {
  it('is refused as unavailable when its module does not validate', () => {
    const bytes = Buffer.from(MASK_SIMD_WASM, 'base64');
    const corrupt = Buffer.from(bytes);
    corrupt[corrupt.length - 3] = 0xff; // not an opcode
    expect(instantiateMaskKernel(corrupt)).to.equal(null);
    expect(instantiateMaskKernel(Buffer.from('not wasm'))).to.equal(null);
  });

  it('masks in place in its own memory, whatever the alignment and length', () => {
    const kernel = instantiateMaskKernel(Buffer.from(MASK_SIMD_WASM, 'base64'))!;
    expect(kernel).to.not.equal(null);
    expect(kernel.memory.buffer).to.not.equal(maskKernel()!.memory.buffer);
    const r = prng(31);
    const word = 0xefbeadde; // key bytes de ad be ef
    const key = Uint8Array.from([0xde, 0xad, 0xbe, 0xef]);
    for (let at = 1000; at < 1040; at++) {
      for (const length of [0, 1, 3, 4, 15, 16, 17, 127, 128, 129, 144, 1000]) {
        const region = kernel.memory.subarray(at - 8, at + length + 8);
        region.set(randomBytes(r, region.length));
        const expected = Buffer.from(region);
        naiveMask(expected, 8, 8 + length, key, 0);
        kernel.mask(at, length, word);
        if (!region.equals(expected)) expect.fail(`at ${at}, length ${length}`);
      }
    }
  });

  it('loads from both builds: dist/esm and dist/cjs', async () => {
    type SimdModule = { maskKernel(): { memory: Buffer; mask(at: number, length: number, word: number): void } | null };
    const cjs = createRequire(import.meta.url)(path.resolve('dist/cjs/protocol/mask-simd.js')) as SimdModule;
    const esm = (await import(pathToFileURL(path.resolve('dist/esm/protocol/mask-simd.js')).href)) as SimdModule;
    for (const [name, build] of [
      ['cjs', cjs],
      ['esm', esm],
    ] as const) {
      const kernel = build.maskKernel();
      expect(kernel, name).to.not.equal(null);
      kernel!.memory.fill(0x0f, 0, 64);
      kernel!.mask(0, 64, 0xf0f0f0f0);
      expect(kernel!.memory.subarray(0, 64).every((byte) => byte === 0xff), name).to.equal(true);
    }
  });

  it('is replaced by the JavaScript loop where there is no WebAssembly (node --jitless), in both builds', () => {
    const script = `
      const check = (mask, simd) => {
        if (simd.maskKernel() !== null) throw new Error('a kernel without WebAssembly');
        const data = Buffer.alloc(100000, 0x0f);
        const key = Buffer.from([0xf0, 0xf0, 0xf0, 0xf0]);
        mask.applyMask(data, 3, data.length, key, 1);
        if (!data.subarray(3).every((b) => b === 0xff) || data[0] !== 0x0f) throw new Error('applyMask');
        if (mask.unmaskedCopy(data, 0, data.length, key, 0) !== 0) throw new Error('unmaskedCopy');
        const target = Buffer.alloc(100010);
        target.set(key, 2);
        mask.copyMasked(Buffer.alloc(100000, 0x0f), target, 6, target, 2);
        if (!target.subarray(6, 100006).every((b) => b === 0xff)) throw new Error('copyMasked');
      };
      check(require('./dist/cjs/protocol/mask.js'), require('./dist/cjs/protocol/mask-simd.js'));
      (async () => {
        check(await import('./dist/esm/protocol/mask.js'), await import('./dist/esm/protocol/mask-simd.js'));
        console.log(typeof WebAssembly, 'ok');
      })().catch((error) => { console.error(error); process.exit(1); });
    `;
    const output = execFileSync(process.execPath, ['--jitless', '--no-warnings', '-e', script], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
    expect(output.trim()).to.equal('undefined ok');
  });
});
