import { expect } from 'chai';
import { FrameParser, type FrameHandler, type FrameParserOptions } from '../../lib/protocol/frame-parser.js';
import { ProtocolError, type Role } from '../../lib/protocol/types.js';
import {
  buildFrame,
  chunkings,
  describeFrameEvents,
  FrameRecorder,
  frameEvents,
  patternBytes,
  prng,
  randomBytes,
  randomInt,
  sameFrameEvents,
  sampledSplits,
  type FrameEvent,
} from '../helpers/codec.js';

const MASK = [0x37, 0xfa, 0x21, 0x3d] as const;

interface RunResult {
  events: FrameEvent[];
  errorCode: number | null;
  parser: FrameParser;
  recorder: FrameRecorder;
}

function run(chunks: readonly Buffer[], options: FrameParserOptions): RunResult {
  const recorder = new FrameRecorder();
  const parser = new FrameParser(recorder, options);
  for (const chunk of chunks) parser.push(chunk);
  return { events: recorder.snapshot(), errorCode: parser.error?.closeCode ?? null, parser, recorder };
}

/**
 * Feeds `vector` whole, in two chunks at every offset and one byte at a time, each time to a new
 * parser, and checks that every chunking reports exactly `expected` and ends with `errorCode`.
 */
function expectAtEverySplit(
  vector: Uint8Array,
  options: FrameParserOptions,
  expected: FrameEvent[],
  errorCode: number | null = null,
  splitFilter?: (split: number) => boolean,
): void {
  const original = Buffer.from(vector);
  let count = 0;
  for (const { label, chunks } of chunkings(vector, splitFilter)) {
    const result = run(chunks, options);
    if (!sameFrameEvents(result.events, expected)) {
      expect(describeFrameEvents(result.events), label).to.deep.equal(describeFrameEvents(expected));
    }
    if (result.errorCode !== errorCode) expect(result.errorCode, label).to.equal(errorCode);
    if (result.recorder.rangeErrors !== 0) expect(result.recorder.rangeErrors, `${label}: payload ranges`).to.equal(0);
    expect(result.parser.stopped, label).to.equal(errorCode !== null);
    count++;
  }
  // The chunkings were cut from copies: the vector itself is untouched.
  expect(Buffer.from(vector).equals(original)).to.equal(true);
  if (splitFilter === undefined) expect(count).to.equal(vector.length <= 1 ? 1 : vector.length + 1);
}

/** The role that expects the given masking: masked frames go to a server, unmasked to a client. */
function roleFor(masked: boolean): Role {
  return masked ? 'server' : 'client';
}

/** A valid frame appended after a bad one, to check that nothing is parsed after an error. */
function trailer(masked: boolean): Buffer {
  return buildFrame(0x1, 'after', masked ? { mask: MASK } : {});
}

/** Checks that `bad` fails with `code` at every split, also with good frames before and after it. */
function expectFailure(bad: Buffer, options: FrameParserOptions, code: number): void {
  const masked = options.role === 'server';
  expectAtEverySplit(bad, options, [], code);
  const before = buildFrame(0x2, patternBytes(3), masked ? { mask: MASK } : {});
  expectAtEverySplit(Buffer.concat([before, bad, trailer(masked)]), options, frameEvents(true, false, 0x2, patternBytes(3)), code);
}

describe('FrameParser', () => {
  describe('RFC 6455 §5.7 examples, at every split point', () => {
    const hello = Buffer.from('Hello');

    it('a single-frame unmasked text message', () => {
      const vector = Buffer.from([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
      expectAtEverySplit(vector, { role: 'client' }, frameEvents(true, false, 0x1, hello));
    });

    it('a single-frame masked text message', () => {
      const vector = Buffer.from([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
      expectAtEverySplit(vector, { role: 'server' }, frameEvents(true, false, 0x1, hello));
    });

    it('a fragmented unmasked text message ("Hel" + "lo")', () => {
      const vector = Buffer.from([0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
      expectAtEverySplit(vector, { role: 'client' }, [...frameEvents(false, false, 0x1, 'Hel'), ...frameEvents(true, false, 0x0, 'lo')]);
    });

    it('an unmasked ping with "Hello"', () => {
      const vector = Buffer.from([0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
      expectAtEverySplit(vector, { role: 'client' }, frameEvents(true, false, 0x9, hello));
    });

    it('a masked pong with "Hello"', () => {
      const vector = Buffer.from([0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
      expectAtEverySplit(vector, { role: 'server' }, frameEvents(true, false, 0xa, hello));
    });

    it('256 bytes of binary data with a 16-bit length', () => {
      const payload = patternBytes(256);
      const vector = Buffer.concat([Buffer.from([0x82, 0x7e, 0x01, 0x00]), payload]);
      expectAtEverySplit(vector, { role: 'client' }, frameEvents(true, false, 0x2, payload));
    });

    it('64 KiB of binary data with a 64-bit length', function () {
      // 65,546 split points, each a full parse: seconds of work, more on a loaded machine.
      this.timeout(120_000);
      const payload = patternBytes(65536, 7);
      const vector = Buffer.concat([Buffer.from([0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]), payload]);
      expectAtEverySplit(vector, { role: 'client' }, frameEvents(true, false, 0x2, payload));
    });

    it('all the unmasked examples in one stream', () => {
      const binary256 = patternBytes(256);
      const vector = Buffer.concat([
        Buffer.from([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]),
        Buffer.from([0x01, 0x03, 0x48, 0x65, 0x6c]),
        Buffer.from([0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]),
        Buffer.from([0x80, 0x02, 0x6c, 0x6f]),
        Buffer.from([0x82, 0x7e, 0x01, 0x00]),
        binary256,
      ]);
      expectAtEverySplit(vector, { role: 'client' }, [
        ...frameEvents(true, false, 0x1, hello),
        ...frameEvents(false, false, 0x1, 'Hel'),
        ...frameEvents(true, false, 0x9, hello),
        ...frameEvents(true, false, 0x0, 'lo'),
        ...frameEvents(true, false, 0x2, binary256),
      ]);
    });
  });

  describe('payload lengths', () => {
    for (const masked of [false, true]) {
      const role = roleFor(masked);
      const options = masked ? { mask: [0x01, 0x80, 0xfe, 0x7f] } : {};

      for (const opcode of [0x0, 0x1, 0x2, 0x8, 0x9, 0xa]) {
        it(`a zero-length frame with opcode ${opcode} (${role} role)`, () => {
          expectAtEverySplit(buildFrame(opcode, Buffer.alloc(0), options), { role }, frameEvents(true, false, opcode, Buffer.alloc(0)));
        });
      }

      it(`several zero-length frames in a row (${role} role)`, () => {
        const vector = Buffer.concat([
          buildFrame(0x1, '', { ...options, fin: false }),
          buildFrame(0x9, '', options),
          buildFrame(0x0, '', options),
          buildFrame(0x2, '', options),
        ]);
        expectAtEverySplit(vector, { role }, [
          ...frameEvents(false, false, 0x1, ''),
          ...frameEvents(true, false, 0x9, ''),
          ...frameEvents(true, false, 0x0, ''),
          ...frameEvents(true, false, 0x2, ''),
        ]);
      });

      for (const length of [1, 125, 126, 127, 300]) {
        it(`a ${length}-byte frame with the minimal length encoding (${role} role)`, () => {
          const payload = patternBytes(length, length);
          expectAtEverySplit(buildFrame(0x2, payload, options), { role }, frameEvents(true, false, 0x2, payload));
        });
      }

      // The RFC example above covers a 64 KiB frame at every split; these sample the split points.
      it(`a 16-bit length of 65535 (${role} role)`, () => {
        const payload = patternBytes(65535, 3);
        const frame = buildFrame(0x2, payload, options);
        expect(frame[1]! & 0x7f).to.equal(126);
        expectAtEverySplit(frame, { role }, frameEvents(true, false, 0x2, payload), null, sampledSplits(frame.length));
      });

      it(`a 64-bit length of 65536 (${role} role)`, () => {
        const payload = patternBytes(65536, 5);
        const frame = buildFrame(0x2, payload, options);
        expect(frame[1]! & 0x7f).to.equal(127);
        expectAtEverySplit(frame, { role }, frameEvents(true, false, 0x2, payload), null, sampledSplits(frame.length));
      });

      it(`16-bit and 64-bit encodings of short lengths are read too (${role} role)`, () => {
        const payload = Buffer.from('short');
        for (const lengthBits of [16, 64] as const) {
          expectAtEverySplit(buildFrame(0x1, payload, { ...options, lengthBits }), { role }, frameEvents(true, false, 0x1, payload));
        }
      });
    }

    it('reads the high 32 bits of a 64-bit length', () => {
      // 2^32 + 1 bytes: only the header and a few payload bytes are fed.
      const header = buildFrame(0x2, Buffer.alloc(0), { length64Override: 0x1_0000_0001n });
      for (const { label, chunks } of chunkings(header)) {
        const result = run(chunks, { role: 'client' });
        expect(result.events, label).to.deep.equal([{ type: 'header', fin: true, rsv1: false, opcode: 0x2, length: 4294967297 }]);
        expect(result.errorCode, label).to.equal(null);
        result.parser.push(Buffer.from([1, 2, 3]));
        expect(describeFrameEvents(result.recorder.snapshot()).slice(1), label).to.deep.equal([{ type: 'payload', length: 3, hex: '010203' }]);
      }
    });

    it('accepts the largest exactly representable 64-bit length (2^53 - 1)', () => {
      const header = buildFrame(0x2, Buffer.alloc(0), { length64Override: 2n ** 53n - 1n });
      const result = run([header], { role: 'client' });
      expect(result.errorCode).to.equal(null);
      expect(result.events).to.deep.equal([{ type: 'header', fin: true, rsv1: false, opcode: 0x2, length: Number.MAX_SAFE_INTEGER }]);
    });

    it('fails with 1009 on a 64-bit length of 2^53 or more (top bit clear)', () => {
      for (const length of [2n ** 53n, 2n ** 63n - 1n]) {
        expectFailure(buildFrame(0x2, Buffer.alloc(0), { length64Override: length }), { role: 'client' }, 1009);
      }
    });

    for (const length of [2n ** 63n, 2n ** 63n + 5n, 2n ** 64n - 1n]) {
      it(`fails with 1002 on a 64-bit length with the top bit set (0x${length.toString(16)})`, () => {
        expectFailure(buildFrame(0x2, Buffer.alloc(0), { length64Override: length }), { role: 'client' }, 1002);
        expectFailure(buildFrame(0x2, Buffer.alloc(0), { length64Override: length, mask: MASK }), { role: 'server' }, 1002);
      });
    }
  });

  describe('RSV bits (RFC 6455 §5.2)', () => {
    for (const allowRsv1 of [false, true]) {
      for (const [name, bits] of [
        ['RSV2', { rsv2: true }],
        ['RSV3', { rsv3: true }],
        ['RSV2 and RSV3', { rsv2: true, rsv3: true }],
        ['RSV1 and RSV2', { rsv1: true, rsv2: true }],
      ] as const) {
        it(`fails with 1002 on ${name} set (allowRsv1: ${allowRsv1})`, () => {
          for (const opcode of [0x0, 0x1, 0x2, 0x8, 0x9, 0xa]) {
            expectFailure(buildFrame(opcode, 'x', bits), { role: 'client', allowRsv1 }, 1002);
            expectFailure(buildFrame(opcode, 'x', { ...bits, mask: MASK }), { role: 'server', allowRsv1 }, 1002);
          }
        });
      }
    }

    it('fails with 1002 on RSV1 when no extension allows it', () => {
      for (const opcode of [0x0, 0x1, 0x2, 0x8, 0x9, 0xa]) {
        expectFailure(buildFrame(opcode, 'x', { rsv1: true }), { role: 'client' }, 1002);
        expectFailure(buildFrame(opcode, 'x', { rsv1: true }), { role: 'client', allowRsv1: false }, 1002);
        expectFailure(buildFrame(opcode, 'x', { rsv1: true, mask: MASK }), { role: 'server' }, 1002);
      }
    });

    it('reports RSV1 on text and binary frames when allowRsv1 is set', () => {
      for (const opcode of [0x1, 0x2]) {
        for (const fin of [true, false]) {
          expectAtEverySplit(buildFrame(opcode, 'abc', { rsv1: true, fin }), { role: 'client', allowRsv1: true }, frameEvents(fin, true, opcode, 'abc'));
          expectAtEverySplit(
            buildFrame(opcode, 'abc', { rsv1: true, fin, mask: MASK }),
            { role: 'server', allowRsv1: true },
            frameEvents(fin, true, opcode, 'abc'),
          );
        }
      }
    });

    it('fails with 1002 on RSV1 on a continuation frame even when allowRsv1 is set', () => {
      expectFailure(buildFrame(0x0, 'x', { rsv1: true }), { role: 'client', allowRsv1: true }, 1002);
      expectFailure(buildFrame(0x0, 'x', { rsv1: true, fin: false }), { role: 'client', allowRsv1: true }, 1002);
      expectFailure(buildFrame(0x0, 'x', { rsv1: true, mask: MASK }), { role: 'server', allowRsv1: true }, 1002);
    });

    it('fails with 1002 on RSV1 on a control frame even when allowRsv1 is set', () => {
      for (const opcode of [0x8, 0x9, 0xa]) {
        expectFailure(buildFrame(opcode, '', { rsv1: true }), { role: 'client', allowRsv1: true }, 1002);
        expectFailure(buildFrame(opcode, '', { rsv1: true, mask: MASK }), { role: 'server', allowRsv1: true }, 1002);
      }
    });

    it('reads allowRsv1 when each frame arrives (it may be turned on after negotiation)', () => {
      const recorder = new FrameRecorder();
      const parser = new FrameParser(recorder, { role: 'client' });
      expect(parser.allowRsv1).to.equal(false);
      parser.allowRsv1 = true;
      parser.push(buildFrame(0x1, 'z', { rsv1: true }));
      expect(parser.error).to.equal(null);
      expect(recorder.snapshot()).to.deep.equal(frameEvents(true, true, 0x1, 'z'));
    });
  });

  describe('opcodes (RFC 6455 §5.2)', () => {
    for (const opcode of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) {
      it(`fails with 1002 on reserved opcode ${opcode}`, () => {
        expectFailure(buildFrame(opcode, 'x'), { role: 'client' }, 1002);
        expectFailure(buildFrame(opcode, ''), { role: 'client' }, 1002);
        expectFailure(buildFrame(opcode, 'x', { mask: MASK }), { role: 'server' }, 1002);
        expectFailure(buildFrame(opcode, 'x', { fin: false }), { role: 'client', allowRsv1: true }, 1002);
      });
    }

    it('reports the defined opcodes 0, 1, 2, 8, 9 and 10', () => {
      for (const opcode of [0x0, 0x1, 0x2, 0x8, 0x9, 0xa]) {
        expectAtEverySplit(buildFrame(opcode, 'op'), { role: 'client' }, frameEvents(true, false, opcode, 'op'));
      }
    });
  });

  describe('control frames (RFC 6455 §5.5)', () => {
    for (const opcode of [0x8, 0x9, 0xa]) {
      it(`fails with 1002 on opcode ${opcode} with FIN clear`, () => {
        expectFailure(buildFrame(opcode, 'x', { fin: false }), { role: 'client' }, 1002);
        expectFailure(buildFrame(opcode, '', { fin: false }), { role: 'client' }, 1002);
        expectFailure(buildFrame(opcode, 'x', { fin: false, mask: MASK }), { role: 'server' }, 1002);
      });

      it(`accepts opcode ${opcode} with a 125-byte payload`, () => {
        const payload = patternBytes(125);
        expectAtEverySplit(buildFrame(opcode, payload), { role: 'client' }, frameEvents(true, false, opcode, payload));
        expectAtEverySplit(buildFrame(opcode, payload, { mask: MASK }), { role: 'server' }, frameEvents(true, false, opcode, payload));
      });

      it(`fails with 1002 on opcode ${opcode} with a 126-byte payload`, () => {
        const payload = patternBytes(126);
        expectFailure(buildFrame(opcode, payload), { role: 'client' }, 1002);
        expectFailure(buildFrame(opcode, payload, { mask: MASK }), { role: 'server' }, 1002);
        expectFailure(buildFrame(opcode, patternBytes(300), { lengthBits: 64 }), { role: 'client' }, 1002);
      });
    }

    it('lets data frames have FIN clear', () => {
      for (const opcode of [0x0, 0x1, 0x2]) {
        expectAtEverySplit(buildFrame(opcode, 'frag', { fin: false }), { role: 'client' }, frameEvents(false, false, opcode, 'frag'));
      }
    });
  });

  describe('masking by role (RFC 6455 §5.1)', () => {
    it('fails with 1002 on a masked frame read by a client', () => {
      for (const opcode of [0x0, 0x1, 0x2, 0x8, 0x9, 0xa]) {
        expectFailure(buildFrame(opcode, 'masked', { mask: MASK }), { role: 'client' }, 1002);
        expectFailure(buildFrame(opcode, '', { mask: [0, 0, 0, 0] }), { role: 'client' }, 1002);
      }
      expectFailure(buildFrame(0x2, patternBytes(300), { mask: MASK }), { role: 'client' }, 1002);
      expectFailure(buildFrame(0x2, patternBytes(30), { mask: MASK, lengthBits: 64 }), { role: 'client' }, 1002);
    });

    it('fails with 1002 on an unmasked frame read by a server', () => {
      for (const opcode of [0x0, 0x1, 0x2, 0x8, 0x9, 0xa]) {
        expectFailure(buildFrame(opcode, 'plain'), { role: 'server' }, 1002);
        expectFailure(buildFrame(opcode, ''), { role: 'server' }, 1002);
      }
      expectFailure(buildFrame(0x2, patternBytes(300)), { role: 'server' }, 1002);
      expectFailure(buildFrame(0x2, patternBytes(30), { lengthBits: 64 }), { role: 'server' }, 1002);
    });

    it('unmasks payloads whatever the key and the chunk boundaries', () => {
      const rand = prng(0x5eed);
      for (let i = 0; i < 6; i++) {
        const payload = randomBytes(rand, randomInt(rand, 1, 700));
        const mask = randomBytes(rand, 4);
        expectAtEverySplit(buildFrame(0x2, payload, { mask }), { role: 'server' }, frameEvents(true, false, 0x2, payload));
      }
    });

    it('delivers unmasked bytes within the chunk it was given (push unmasks in place)', () => {
      const frame = buildFrame(0x2, Buffer.from('in place'), { mask: MASK });
      const seen: Array<{ data: Buffer; start: number; end: number }> = [];
      const handler: FrameHandler = {
        onFrameHeader() {},
        onFramePayload(data, start, end) {
          seen.push({ data, start, end });
        },
        onFrameEnd() {},
      };
      const chunk = Buffer.from(frame);
      new FrameParser(handler, { role: 'server' }).push(chunk);
      expect(seen).to.have.length(1);
      expect(seen[0]!.data).to.equal(chunk);
      expect(chunk.subarray(seen[0]!.start, seen[0]!.end).toString()).to.equal('in place');
    });
  });

  describe('errors and stopping', () => {
    it('reports a ProtocolError with the close code, and stops', () => {
      const { parser } = run([buildFrame(0x3, 'x')], { role: 'client' });
      expect(parser.error).to.be.instanceOf(ProtocolError);
      expect(parser.error).to.be.instanceOf(Error);
      expect(parser.error!.closeCode).to.equal(1002);
      expect(parser.error!.name).to.equal('ProtocolError');
      expect(parser.error!.message).to.be.a('string').and.not.equal('');
      expect(parser.stopped).to.equal(true);
    });

    it('fails as soon as a bad header is complete, before any payload byte', () => {
      const frame = buildFrame(0x9, 'x', { fin: false });
      const { parser, events } = run([frame.subarray(0, 2)], { role: 'client' });
      expect(events).to.deep.equal([]);
      expect(parser.error?.closeCode).to.equal(1002);
    });

    it('waits for the whole header before reporting a frame', () => {
      const frame = buildFrame(0x2, patternBytes(300), { mask: MASK });
      const recorder = new FrameRecorder();
      const parser = new FrameParser(recorder, { role: 'server' });
      // 2 bytes, a 16-bit length, a 4-byte key: 8 header bytes.
      for (let i = 0; i < 7; i++) {
        parser.push(Buffer.from(frame.subarray(i, i + 1)));
        expect(recorder.snapshot(), `after ${i + 1} header bytes`).to.deep.equal([]);
      }
      parser.push(Buffer.from(frame.subarray(7, 8)));
      expect(recorder.snapshot()).to.deep.equal([{ type: 'header', fin: true, rsv1: false, opcode: 0x2, length: 300 }]);
    });

    it('ignores every chunk after an error', () => {
      const { parser, recorder } = run([buildFrame(0x1, 'ok'), buildFrame(0x1, 'bad', { rsv2: true })], { role: 'client' });
      const before = recorder.snapshot();
      parser.push(buildFrame(0x1, 'later'));
      parser.push(buildFrame(0x2, patternBytes(1000)));
      expect(recorder.snapshot()).to.deep.equal(before);
      expect(before).to.deep.equal(frameEvents(true, false, 0x1, 'ok'));
      expect(parser.error?.closeCode).to.equal(1002);
    });

    it('keeps the first error', () => {
      const { parser } = run([buildFrame(0x1, 'x', { mask: MASK })], { role: 'client' });
      const first = parser.error;
      parser.fail(1011, 'later');
      expect(parser.error).to.equal(first);
      expect(parser.error?.closeCode).to.equal(1002);
    });

    it('ignores empty chunks anywhere, including inside a header', () => {
      const frame = buildFrame(0x2, patternBytes(200), { mask: MASK });
      const copy = Buffer.from(frame);
      const recorder = new FrameRecorder();
      const parser = new FrameParser(recorder, { role: 'server' });
      const cuts = [0, 1, 3, 6, 8, 100, frame.length];
      for (let i = 0; i + 1 < cuts.length; i++) {
        parser.push(Buffer.alloc(0));
        parser.push(copy.subarray(cuts[i], cuts[i + 1]));
      }
      parser.push(Buffer.alloc(0));
      expect(parser.error).to.equal(null);
      expect(sameFrameEvents(recorder.snapshot(), frameEvents(true, false, 0x2, patternBytes(200)))).to.equal(true);
    });

    it('stop() ends parsing without an error', () => {
      const recorder = new FrameRecorder();
      const parser = new FrameParser(recorder, { role: 'client' });
      parser.push(buildFrame(0x1, 'one'));
      parser.stop();
      parser.push(buildFrame(0x1, 'two'));
      expect(parser.stopped).to.equal(true);
      expect(parser.error).to.equal(null);
      expect(recorder.snapshot()).to.deep.equal(frameEvents(true, false, 0x1, 'one'));
      parser.fail(1002, 'after stop');
      expect(parser.error).to.equal(null);
    });

    it('stops mid-chunk when the handler fails the parser from onFrameHeader', () => {
      const events: string[] = [];
      let parser!: FrameParser;
      parser = new FrameParser(
        {
          onFrameHeader(_fin, _rsv1, opcode) {
            events.push(`header ${opcode}`);
            if (opcode === 0x2) parser.fail(1009, 'too big');
          },
          onFramePayload() {
            events.push('payload');
          },
          onFrameEnd() {
            events.push('end');
          },
        },
        { role: 'client' },
      );
      parser.push(Buffer.concat([buildFrame(0x1, 'a'), buildFrame(0x2, 'bb'), buildFrame(0x1, 'c'), buildFrame(0x2, '')]));
      expect(events).to.deep.equal(['header 1', 'payload', 'end', 'header 2']);
      expect(parser.error?.closeCode).to.equal(1009);
    });

    it('does not end a zero-length frame whose header made the handler fail', () => {
      const events: string[] = [];
      let parser!: FrameParser;
      parser = new FrameParser(
        {
          onFrameHeader() {
            events.push('header');
            parser.fail(1002, 'no');
          },
          onFramePayload() {
            events.push('payload');
          },
          onFrameEnd() {
            events.push('end');
          },
        },
        { role: 'client' },
      );
      parser.push(buildFrame(0x1, ''));
      expect(events).to.deep.equal(['header']);
    });

    it('stops mid-chunk when the handler fails the parser from onFramePayload', () => {
      const events: string[] = [];
      let parser!: FrameParser;
      parser = new FrameParser(
        {
          onFrameHeader(_fin, _rsv1, opcode) {
            events.push(`header ${opcode}`);
          },
          onFramePayload(data, start, end) {
            events.push(`payload ${data.toString('latin1', start, end)}`);
            if (data.toString('latin1', start, end) === 'bad') parser.fail(1007, 'bad');
          },
          onFrameEnd() {
            events.push('end');
          },
        },
        { role: 'client' },
      );
      parser.push(Buffer.concat([buildFrame(0x1, 'bad'), buildFrame(0x1, 'next')]));
      expect(events).to.deep.equal(['header 1', 'payload bad']);
      expect(parser.error?.closeCode).to.equal(1007);
    });
  });

  describe('streams of random frames', () => {
    for (const masked of [false, true]) {
      it(`reports the same frames at every split point and for random slicings (${roleFor(masked)} role)`, () => {
        const rand = prng(masked ? 1234 : 4321);
        const frames: Buffer[] = [];
        const expected: FrameEvent[] = [];
        const opcodes = [0x0, 0x1, 0x2, 0x8, 0x9, 0xa];
        for (let i = 0; i < 40; i++) {
          const opcode = opcodes[randomInt(rand, 0, opcodes.length - 1)]!;
          const control = opcode >= 0x8;
          const roll = rand();
          const length = control ? randomInt(rand, 0, 125) : roll < 0.3 ? 0 : roll < 0.8 ? randomInt(rand, 1, 125) : randomInt(rand, 126, 400);
          const fin = control || rand() < 0.5;
          const payload = randomBytes(rand, length);
          frames.push(buildFrame(opcode, payload, masked ? { fin, mask: randomBytes(rand, 4) } : { fin }));
          expected.push(...frameEvents(fin, false, opcode, payload));
        }
        const stream = Buffer.concat(frames);
        const options = { role: roleFor(masked) };
        expectAtEverySplit(stream, options, expected);
        for (let trial = 0; trial < 200; trial++) {
          const copy = Buffer.from(stream);
          const chunks: Buffer[] = [];
          for (let pos = 0; pos < copy.length; ) {
            const size = randomInt(rand, 1, rand() < 0.5 ? 16 : 600);
            chunks.push(copy.subarray(pos, pos + size));
            pos += size;
          }
          const result = run(chunks, options);
          expect(sameFrameEvents(result.events, expected), `trial ${trial}`).to.equal(true);
          expect(result.errorCode).to.equal(null);
        }
      });
    }
  });
});
