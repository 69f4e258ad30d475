import { expect } from 'chai';
import { isUtf8 } from 'node:buffer';
import { Utf8Validator, isValidUtf8, utf8ByteLength } from '../../lib/protocol/utf8.js';
import { firstInvalidUtf8Byte, isValidUtf8Prefix, prng, randomInt } from '../helpers/codec.js';

interface Outcome {
  /** Index of the first write() that returned false, or -1. */
  failedWrite: number;
  /** finish() after all writes returned true; null if a write failed (finish not called). */
  finished: boolean | null;
}

/** Feeds `bytes` cut at `cuts` (sorted offsets) through a fresh validator. */
function validate(bytes: Uint8Array, cuts: readonly number[], validator = new Utf8Validator()): Outcome {
  const bounds = [0, ...cuts, bytes.length];
  for (let k = 0; k + 1 < bounds.length; k++) {
    if (!validator.write(bytes, bounds[k]!, bounds[k + 1]!)) return { failedWrite: k, finished: null };
  }
  return { failedWrite: -1, finished: validator.finish() };
}

/** The write that holds byte `index` when `bytes` is cut at `cuts`. */
function writeHolding(index: number, cuts: readonly number[]): number {
  let k = 0;
  while (k < cuts.length && cuts[k]! <= index) k++;
  return k;
}

/**
 * Checks a byte string at every split point (two writes), one byte at a time, and whole: a valid
 * string passes, a truncated one fails in finish(), an invalid one fails in exactly the write that
 * holds the first byte at which it stops being a valid prefix.
 */
function expectEverywhere(bytes: Uint8Array, label: string): void {
  const firstBad = firstInvalidUtf8Byte(bytes);
  const valid = isUtf8(bytes);
  const cutsList: number[][] = [[]];
  for (let split = 0; split <= bytes.length; split++) cutsList.push([split]);
  cutsList.push(Array.from({ length: Math.max(0, bytes.length - 1) }, (_, i) => i + 1));
  for (const cuts of cutsList) {
    const outcome = validate(bytes, cuts);
    const where = `${label}, cuts [${cuts.join(',')}]`;
    if (firstBad === -1) {
      expect(outcome, where).to.deep.equal({ failedWrite: -1, finished: valid });
    } else {
      expect(outcome, where).to.deep.equal({ failedWrite: writeHolding(firstBad, cuts), finished: null });
    }
  }
}

const hex = (bytes: readonly number[]): string => Buffer.from(bytes).toString('hex');

describe('Utf8Validator', () => {
  describe('valid text', () => {
    const samples = [
      '',
      'a',
      'Hello, world',
      '\u0000\u007f',
      '\u0080',
      'é',
      '\u07ff',
      '\u0800',
      '€',
      '\ud7ff',
      '\ue000',
      '\uffff',
      '\ufeff',
      '𐀀',
      '𝄞',
      '\u{10ffff}',
      'κόσμε',
      'a€𝄞é\u{10ffff}z',
      '日本語のテキスト',
      '€'.repeat(50) + 'x'.repeat(40) + '𝄞'.repeat(20),
    ];
    for (const sample of samples) {
      it(`accepts ${JSON.stringify(sample.length > 20 ? `${sample.slice(0, 20)}…` : sample)} at every split`, () => {
        const bytes = Buffer.from(sample, 'utf8');
        expect(isUtf8(bytes)).to.equal(true);
        expectEverywhere(bytes, JSON.stringify(sample));
        expect(validate(bytes, [])).to.deep.equal({ failedWrite: -1, finished: true });
      });
    }
  });

  describe('invalid bytes', () => {
    const cases: Array<[string, number[], number]> = [
      // [name, bytes, index of the first byte that makes the prefix invalid]
      ['overlong C0 80', [0xc0, 0x80], 0],
      ['overlong C1 BF', [0xc1, 0xbf], 0],
      ['overlong E0 80 80', [0xe0, 0x80, 0x80], 1],
      ['overlong E0 9F BF', [0xe0, 0x9f, 0xbf], 1],
      ['overlong F0 80 80 80', [0xf0, 0x80, 0x80, 0x80], 1],
      ['overlong F0 8F BF BF', [0xf0, 0x8f, 0xbf, 0xbf], 1],
      ['surrogate ED A0 80', [0xed, 0xa0, 0x80], 1],
      ['surrogate ED BF BF', [0xed, 0xbf, 0xbf], 1],
      ['above U+10FFFF: F4 90 80 80', [0xf4, 0x90, 0x80, 0x80], 1],
      ['F5', [0xf5, 0x80, 0x80, 0x80], 0],
      ['F8', [0xf8, 0x88, 0x80, 0x80, 0x80], 0],
      ['FE', [0xfe], 0],
      ['FF', [0xff], 0],
      ['a lone continuation byte', [0x80], 0],
      ['a lone BF', [0xbf], 0],
      ['a continuation after a complete character', [0xc3, 0xa9, 0x80], 2],
      ['two-byte lead then ASCII', [0xc3, 0x41], 1],
      ['three-byte lead then ASCII', [0xe2, 0x82, 0x41], 2],
      ['four-byte lead then a lead', [0xf0, 0x9d, 0xc3, 0xa9], 2],
      ['text then FF', [0x61, 0x62, 0x63, 0xff, 0x64], 3],
      ['a valid character then an overlong', [0xe2, 0x82, 0xac, 0xe0, 0x80, 0x80], 4],
    ];

    for (const [name, bytes, firstBad] of cases) {
      it(`rejects ${name} (${hex(bytes)}) in the write holding byte ${firstBad}, at every split`, () => {
        const data = Uint8Array.from(bytes);
        expect(isUtf8(data), 'Node agrees it is invalid').to.equal(false);
        expect(firstInvalidUtf8Byte(data), 'the oracle agrees on the first bad byte').to.equal(firstBad);
        expectEverywhere(data, name);
        // Also surrounded by valid text.
        const padded = Buffer.concat([Buffer.from('ab€'), data, Buffer.from('𝄞cd')]);
        expect(firstInvalidUtf8Byte(padded)).to.equal(5 + firstBad);
        expectEverywhere(padded, `padded ${name}`);
      });
    }
  });

  describe('truncated sequences', () => {
    for (const bytes of [[0xc3], [0xe2], [0xe2, 0x82], [0xe0, 0xa0], [0xed, 0x9f], [0xf0], [0xf0, 0x90], [0xf0, 0x9d, 0x84], [0xf4, 0x8f, 0xbf]]) {
      it(`passes every write of ${hex(bytes)} and fails finish()`, () => {
        const data = Buffer.concat([Buffer.from('x'), Buffer.from(bytes)]);
        expect(isValidUtf8Prefix(data)).to.equal(true);
        expect(isUtf8(data)).to.equal(false);
        expectEverywhere(data, hex(bytes));
      });
    }
  });

  describe('state between calls', () => {
    it('resets after finish(), whether the text was complete or not', () => {
      const validator = new Utf8Validator();
      expect(validator.write(Buffer.from([0xe2, 0x82]), 0, 2)).to.equal(true);
      expect(validator.finish()).to.equal(false);
      // A fresh message: a continuation byte cannot start it.
      expect(validator.write(Buffer.from([0xac]), 0, 1)).to.equal(false);
      validator.reset();
      expect(validator.write(Buffer.from('€'), 0, 3)).to.equal(true);
      expect(validator.finish()).to.equal(true);
      expect(validator.write(Buffer.from([0xf0, 0x9d]), 0, 2)).to.equal(true);
      validator.reset();
      expect(validator.write(Buffer.from('a'), 0, 1)).to.equal(true);
      expect(validator.finish()).to.equal(true);
    });

    it('reads only data[start, end)', () => {
      const data = Buffer.from([0xff, 0xe2, 0x82, 0xac, 0xff]);
      const validator = new Utf8Validator();
      expect(validator.write(data, 1, 3)).to.equal(true);
      expect(validator.write(data, 3, 4)).to.equal(true);
      expect(validator.write(data, 2, 2)).to.equal(true);
      expect(validator.finish()).to.equal(true);
      expect(validator.write(data, 1, 2)).to.equal(true);
      expect(validator.finish()).to.equal(false);
    });

    it('accepts empty writes anywhere', () => {
      const validator = new Utf8Validator();
      const euro = Buffer.from('€');
      for (const [start, end] of [[0, 0], [0, 1], [1, 1], [1, 2], [2, 2], [2, 3], [3, 3]] as const) {
        expect(validator.write(euro, start, end)).to.equal(true);
      }
      expect(validator.finish()).to.equal(true);
    });

    it('works on views into larger buffers', () => {
      const backing = Buffer.from('xx€𝄞yy');
      const view = new Uint8Array(backing.buffer, backing.byteOffset + 2, 7);
      const validator = new Utf8Validator();
      expect(validator.write(view, 0, 4)).to.equal(true);
      expect(validator.write(view, 4, 7)).to.equal(true);
      expect(validator.finish()).to.equal(true);
    });
  });

  describe('against Node\'s isUtf8 on random bytes', () => {
    /** Random byte strings biased towards the bytes that matter to UTF-8. */
    function randomUtf8ish(rand: () => number): Uint8Array {
      const bytes: number[] = [];
      const length = randomInt(rand, 0, 24);
      const interesting = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf7, 0xf8, 0xfe, 0xff];
      // A third of the inputs are valid characters only (then often cut inside the last one).
      const clean = rand() < 0.35;
      while (bytes.length < length) {
        const roll = clean ? 0 : rand();
        if (roll < 0.35) {
          // A valid character, sometimes cut short.
          const codePoint = [randomInt(rand, 0, 0x7f), randomInt(rand, 0x80, 0x7ff), randomInt(rand, 0x800, 0xffff), randomInt(rand, 0x10000, 0x10ffff)][randomInt(rand, 0, 3)]!;
          if (codePoint >= 0xd800 && codePoint <= 0xdfff) continue;
          let encoded = [...Buffer.from(String.fromCodePoint(codePoint), 'utf8')];
          if (rand() < 0.15) encoded = encoded.slice(0, randomInt(rand, 1, encoded.length));
          bytes.push(...encoded);
        } else if (roll < 0.55) {
          bytes.push(0x80 + randomInt(rand, 0, 0x3f));
        } else if (roll < 0.85) {
          bytes.push(interesting[randomInt(rand, 0, interesting.length - 1)]!);
        } else {
          bytes.push(randomInt(rand, 0, 255));
        }
      }
      if (rand() < (clean ? 0.5 : 0.1)) {
        // End inside a character.
        const encoded = [...Buffer.from(String.fromCodePoint(randomInt(rand, 0x10000, 0x10ffff)), 'utf8')];
        bytes.push(...encoded.slice(0, randomInt(rand, 1, 3)));
      }
      return Uint8Array.from(bytes);
    }

    it('agrees on validity and fails fast, for 4,000 seeded inputs at random and at every split', () => {
      const rand = prng(0xc0ffee);
      let validCount = 0;
      let invalidCount = 0;
      let truncatedCount = 0;
      for (let n = 0; n < 4000; n++) {
        const bytes = randomUtf8ish(rand);
        const valid = isUtf8(bytes);
        const firstBad = firstInvalidUtf8Byte(bytes);
        if (valid) validCount++;
        else if (firstBad === -1) truncatedCount++;
        else invalidCount++;
        const label = `input ${n}: ${Buffer.from(bytes).toString('hex')}`;
        // Whole, and in random pieces.
        const whole = validate(bytes, []);
        expect(whole.failedWrite === -1 && whole.finished === true, label).to.equal(valid);
        for (let trial = 0; trial < 3; trial++) {
          const cuts = Array.from({ length: randomInt(rand, 1, 6) }, () => randomInt(rand, 0, bytes.length)).sort((a, b) => a - b);
          const outcome = validate(bytes, cuts);
          const where = `${label}, cuts [${cuts.join(',')}]`;
          expect(outcome.failedWrite === -1 && outcome.finished === true, where).to.equal(valid);
          expect(outcome.failedWrite, where).to.equal(firstBad === -1 ? -1 : writeHolding(firstBad, cuts));
        }
        if (n % 10 === 0) expectEverywhere(bytes, label);
      }
      // The generator really exercises all three outcomes.
      expect(validCount).to.be.greaterThan(600);
      expect(invalidCount).to.be.greaterThan(1500);
      expect(truncatedCount).to.be.greaterThan(500);
    });
  });
});

describe('isValidUtf8', () => {
  it('checks a whole buffer', () => {
    expect(isValidUtf8(Buffer.from('€𝄞'))).to.equal(true);
    expect(isValidUtf8(new Uint8Array(0))).to.equal(true);
    expect(isValidUtf8(Buffer.from([0xe2, 0x82]))).to.equal(false);
    expect(isValidUtf8(Buffer.from([0xed, 0xa0, 0x80]))).to.equal(false);
    expect(isValidUtf8(Buffer.from([0xff]).subarray(1))).to.equal(true);
  });
});

describe('utf8ByteLength', () => {
  it('counts UTF-8 bytes, with a lone surrogate as the 3 bytes of U+FFFD', () => {
    expect(utf8ByteLength('')).to.equal(0);
    expect(utf8ByteLength('abc')).to.equal(3);
    expect(utf8ByteLength('é')).to.equal(2);
    expect(utf8ByteLength('€'.repeat(41))).to.equal(123);
    expect(utf8ByteLength('𝄞')).to.equal(4);
    expect(utf8ByteLength('\ud800')).to.equal(3);
  });
});
