import { expect } from 'chai';
import { encodeFrame, encodeFrameHeader, encodeTextFrame, headerLength } from '../../lib/protocol/frame-encoder.js';
import { FrameParser } from '../../lib/protocol/frame-parser.js';
import { FrameRecorder, frameEvents, patternBytes, prng, randomBytes, randomInt } from '../helpers/codec.js';

interface DecodedFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  /** The length field's encoding: 7, 16 or 64 bits. */
  lengthBits: 7 | 16 | 64;
  length: number;
  key: Buffer | null;
  /** The payload, unmasked. */
  payload: Buffer;
  headerLength: number;
}

/** The tests' own reading of RFC 6455 §5.2, to check the encoder's bytes. */
function decode(frame: Buffer): DecodedFrame {
  const b0 = frame[0]!;
  const b1 = frame[1]!;
  let length = b1 & 0x7f;
  let pos = 2;
  let lengthBits: 7 | 16 | 64 = 7;
  if (length === 126) {
    length = frame.readUInt16BE(2);
    pos = 4;
    lengthBits = 16;
  } else if (length === 127) {
    const big = frame.readBigUInt64BE(2);
    expect(big < 2n ** 53n).to.equal(true);
    length = Number(big);
    pos = 10;
    lengthBits = 64;
  }
  const masked = (b1 & 0x80) !== 0;
  let key: Buffer | null = null;
  if (masked) {
    key = Buffer.from(frame.subarray(pos, pos + 4));
    pos += 4;
  }
  const payload = Buffer.from(frame.subarray(pos));
  if (key !== null) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ key[i % 4]!;
  return { fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, lengthBits, length, key, payload, headerLength: pos };
}

describe('frame encoder', () => {
  describe('headerLength', () => {
    it('uses the minimal length encoding, plus 4 bytes when masked', () => {
      const cases: Array<[number, number]> = [
        [0, 2],
        [1, 2],
        [125, 2],
        [126, 4],
        [65535, 4],
        [65536, 10],
        [2 ** 32, 10],
        [Number.MAX_SAFE_INTEGER, 10],
      ];
      for (const [length, bytes] of cases) {
        expect(headerLength(length, false), `${length} unmasked`).to.equal(bytes);
        expect(headerLength(length, true), `${length} masked`).to.equal(bytes + 4);
      }
    });
  });

  describe('encodeFrame', () => {
    for (const masked of [false, true]) {
      describe(masked ? 'masked' : 'unmasked', () => {
        for (const [length, bits] of [
          [0, 7],
          [1, 7],
          [125, 7],
          [126, 16],
          [127, 16],
          [65535, 16],
          [65536, 64],
          [70000, 64],
        ] as const) {
          it(`encodes ${length} bytes with a ${bits}-bit length`, () => {
            const payload = patternBytes(length, 9);
            const frame = encodeFrame(0x2, payload, { masked });
            const decoded = decode(frame);
            expect(decoded.lengthBits).to.equal(bits);
            expect(decoded.length).to.equal(length);
            expect(decoded.masked).to.equal(masked);
            expect(decoded.fin).to.equal(true);
            expect(decoded.rsv).to.equal(0);
            expect(decoded.opcode).to.equal(0x2);
            expect(decoded.headerLength).to.equal(headerLength(length, masked));
            expect(frame.length).to.equal(decoded.headerLength + length);
            expect(decoded.payload.equals(payload)).to.equal(true);
          });
        }
      });
    }

    it('writes exact header bytes for the RFC 6455 §5.7 examples', () => {
      expect([...encodeFrame(0x1, Buffer.from('Hello'), { masked: false })]).to.deep.equal([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
      expect([...encodeFrame(0x1, Buffer.from('Hel'), { masked: false, fin: false })]).to.deep.equal([0x01, 0x03, 0x48, 0x65, 0x6c]);
      expect([...encodeFrame(0x0, Buffer.from('lo'), { masked: false })]).to.deep.equal([0x80, 0x02, 0x6c, 0x6f]);
      expect([...encodeFrame(0x9, Buffer.from('Hello'), { masked: false })]).to.deep.equal([0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
      expect([...encodeFrame(0x2, patternBytes(256), { masked: false }).subarray(0, 4)]).to.deep.equal([0x82, 0x7e, 0x01, 0x00]);
      expect([...encodeFrame(0x2, patternBytes(65536), { masked: false }).subarray(0, 10)]).to.deep.equal([0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]);
    });

    it('sets FIN and RSV1 as asked', () => {
      for (const fin of [true, false]) {
        for (const rsv1 of [true, false]) {
          for (const masked of [true, false]) {
            const frame = encodeFrame(0x1, Buffer.from('x'), { masked, fin, rsv1 });
            expect(frame[0], `fin ${fin} rsv1 ${rsv1} masked ${masked}`).to.equal((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | 0x1);
          }
        }
      }
      expect(encodeFrame(0xa, Buffer.alloc(0), { masked: false })[0]).to.equal(0x8a);
    });

    it('masks with a key, and does not change the caller\'s payload', () => {
      const payload = Buffer.from('a payload that is long enough to use the word loop of applyMask');
      const before = Buffer.from(payload);
      const frame = encodeFrame(0x1, payload, { masked: true });
      expect(payload.equals(before)).to.equal(true);
      const decoded = decode(frame);
      expect(decoded.key).to.have.length(4);
      expect(decoded.payload.equals(payload)).to.equal(true);
      // The bytes on the wire are the masked ones.
      const wire = frame.subarray(decoded.headerLength);
      expect(wire.equals(payload)).to.equal(decoded.key!.equals(Buffer.alloc(4)));
    });

    it('copies the payload: later changes to it do not change the frame', () => {
      const payload = new Uint8Array([1, 2, 3, 4]);
      const frame = encodeFrame(0x2, payload, { masked: false });
      payload.fill(9);
      expect([...frame.subarray(2)]).to.deep.equal([1, 2, 3, 4]);
    });

    it('encodes only the bytes a view covers', () => {
      const backing = Buffer.from('xxPAYLOADyy');
      const view = new Uint8Array(backing.buffer, backing.byteOffset + 2, 7);
      expect(decode(encodeFrame(0x2, view, { masked: true })).payload.toString()).to.equal('PAYLOAD');
      expect(decode(encodeFrame(0x2, view, { masked: false })).payload.toString()).to.equal('PAYLOAD');
    });

    it('gives each masked frame a fresh key', () => {
      const keys: string[] = [];
      // More frames than the key pool holds (2,048), so that a refill is crossed.
      for (let i = 0; i < 5000; i++) keys.push(decode(encodeFrame(0x2, Buffer.from([i & 0xff]), { masked: true })).key!.toString('hex'));
      for (let i = 1; i < keys.length; i++) {
        if (keys[i] === keys[i - 1]) expect.fail(`frames ${i - 1} and ${i} have the same key ${keys[i]}`);
      }
      // 5,000 random 32-bit keys: a handful of collisions at most.
      expect(new Set(keys).size).to.be.greaterThan(4990);
      expect(keys.every((key) => key === '00000000')).to.equal(false);
    });
  });

  describe('encodeTextFrame', () => {
    for (const masked of [false, true]) {
      it(`writes the text as UTF-8 (${masked ? 'masked' : 'unmasked'})`, () => {
        for (const text of ['', 'Hello', 'é€𝄞', '€'.repeat(42), 'a'.repeat(125), 'b'.repeat(126), 'ü'.repeat(40000)]) {
          const frame = encodeTextFrame(0x1, text, { masked });
          const decoded = decode(frame);
          const bytes = Buffer.from(text, 'utf8');
          expect(decoded.opcode).to.equal(0x1);
          expect(decoded.masked).to.equal(masked);
          expect(decoded.length).to.equal(bytes.length);
          expect(decoded.lengthBits).to.equal(bytes.length <= 125 ? 7 : bytes.length <= 65535 ? 16 : 64);
          expect(decoded.payload.equals(bytes), JSON.stringify(text.slice(0, 10))).to.equal(true);
          expect(frame.length).to.equal(headerLength(bytes.length, masked) + bytes.length);
        }
      });
    }

    it('writes lone surrogates as U+FFFD', () => {
      expect(decode(encodeTextFrame(0x1, 'a\ud800b', { masked: true })).payload.toString('hex')).to.equal('61efbfbd62');
    });

    it('sets FIN, RSV1 and the opcode as asked', () => {
      const frame = encodeTextFrame(0x0, 'cont', { masked: false, fin: false, rsv1: true });
      expect(frame[0]).to.equal(0x40);
      expect(encodeTextFrame(0x8, '', { masked: false })[0]).to.equal(0x88);
    });
  });

  describe('encodeFrameHeader', () => {
    it('writes an unmasked header only, with the minimal length encoding', () => {
      expect([...encodeFrameHeader(0x2, 0)]).to.deep.equal([0x82, 0x00]);
      expect([...encodeFrameHeader(0x2, 125)]).to.deep.equal([0x82, 125]);
      expect([...encodeFrameHeader(0x2, 126)]).to.deep.equal([0x82, 126, 0x00, 0x7e]);
      expect([...encodeFrameHeader(0x1, 65535)]).to.deep.equal([0x81, 126, 0xff, 0xff]);
      expect([...encodeFrameHeader(0x1, 65536)]).to.deep.equal([0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
      expect([...encodeFrameHeader(0x2, 2 ** 32 + 5)]).to.deep.equal([0x82, 127, 0, 0, 0, 1, 0, 0, 0, 5]);
      expect([...encodeFrameHeader(0x2, Number.MAX_SAFE_INTEGER)]).to.deep.equal([0x82, 127, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    });

    it('sets FIN and RSV1 as asked', () => {
      expect(encodeFrameHeader(0x1, 3, { fin: false })[0]).to.equal(0x01);
      expect(encodeFrameHeader(0x1, 3, { rsv1: true })[0]).to.equal(0xc1);
      expect(encodeFrameHeader(0x0, 3, { fin: false, rsv1: false })[0]).to.equal(0x00);
    });

    it('followed by the payload, is the same frame encodeFrame makes', () => {
      for (const length of [0, 5, 125, 126, 1000, 65535, 65536, 100000]) {
        const payload = patternBytes(length, 1);
        const joined = Buffer.concat([encodeFrameHeader(0x2, length, { rsv1: true, fin: false }), payload]);
        expect(joined.equals(encodeFrame(0x2, payload, { masked: false, rsv1: true, fin: false })), `length ${length}`).to.equal(true);
      }
    });
  });

  describe('round trip through FrameParser', () => {
    for (const masked of [false, true]) {
      // A client sends masked frames to a server-role parser; a server sends unmasked to a client.
      const role = masked ? 'server' : 'client';
      it(`random frames from a ${masked ? 'client' : 'server'} read by a ${role}-role parser`, () => {
        const rand = prng(masked ? 2024 : 4202);
        const opcodes = [0x0, 0x1, 0x2, 0x8, 0x9, 0xa];
        for (let trial = 0; trial < 300; trial++) {
          const opcode = opcodes[randomInt(rand, 0, opcodes.length - 1)]!;
          const control = opcode >= 0x8;
          const length = control ? randomInt(rand, 0, 125) : [randomInt(rand, 0, 125), randomInt(rand, 126, 70000)][randomInt(rand, 0, 1)]!;
          const fin = control || rand() < 0.5;
          const rsv1 = !control && opcode !== 0x0 && rand() < 0.5;
          const useText = opcode === 0x1 && rand() < 0.5;
          const text = useText ? 'tëxt€'.repeat(Math.ceil(length / 8)) : '';
          const payload = useText ? Buffer.from(text) : randomBytes(rand, length);
          const frame = useText ? encodeTextFrame(opcode, text, { masked, fin, rsv1 }) : encodeFrame(opcode, payload, { masked, fin, rsv1 });
          const recorder = new FrameRecorder();
          const parser = new FrameParser(recorder, { role, allowRsv1: true });
          const cut = randomInt(rand, 0, frame.length);
          parser.push(frame.subarray(0, cut));
          parser.push(frame.subarray(cut));
          expect(parser.error, `trial ${trial}`).to.equal(null);
          const events = recorder.snapshot();
          const expected = frameEvents(fin, rsv1, opcode, payload);
          expect(events.length, `trial ${trial}`).to.equal(expected.length);
          expect(events[0], `trial ${trial}`).to.deep.equal(expected[0]);
          if (payload.length > 0) {
            const got = events[1];
            expect(got?.type === 'payload' && got.bytes.equals(payload), `trial ${trial}: payload`).to.equal(true);
          }
        }
      });
    }

    it('a frame of the wrong masking is refused by the other role', () => {
      const fromClient = encodeFrame(0x1, Buffer.from('x'), { masked: true });
      const fromServer = encodeFrame(0x1, Buffer.from('x'), { masked: false });
      const client = new FrameParser(new FrameRecorder(), { role: 'client' });
      client.push(fromClient);
      expect(client.error?.closeCode).to.equal(1002);
      const server = new FrameParser(new FrameRecorder(), { role: 'server' });
      server.push(fromServer);
      expect(server.error?.closeCode).to.equal(1002);
    });
  });
});
