import { expect } from 'chai';
import { MessageReader, allocateBytes, type MessageReaderOptions, type MessageSink } from '../../lib/protocol/message-reader.js';
import type { ProtocolError } from '../../lib/protocol/types.js';
import {
  buildFrame,
  chunkings,
  closeBody,
  isValidUtf8Prefix,
  patternBytes,
  prng,
  randomBytes,
  randomInt,
  type BuildFrameOptions,
} from '../helpers/codec.js';

type SinkEvent =
  | { type: 'text'; text: string }
  | { type: 'binary'; bytes: Uint8Array }
  | { type: 'ping'; bytes: Uint8Array }
  | { type: 'pong'; bytes: Uint8Array }
  | { type: 'close'; code: number | null; reason: string };

class SinkRecorder implements MessageSink {
  readonly events: SinkEvent[] = [];
  /** Protocol errors reported through the sink; the tests read the parser's error, which must agree. */
  readonly errors: ProtocolError[] = [];
  onProtocolError(error: ProtocolError): void {
    this.errors.push(error);
  }
  onReadResumed(): void {}
  onText(text: string): void {
    this.events.push({ type: 'text', text });
  }
  onBinary(data: Uint8Array): void {
    this.events.push({ type: 'binary', bytes: data });
  }
  onPing(payload: Uint8Array): void {
    this.events.push({ type: 'ping', bytes: Uint8Array.from(payload) });
  }
  onPong(payload: Uint8Array): void {
    this.events.push({ type: 'pong', bytes: Uint8Array.from(payload) });
  }
  onClose(code: number | null, reason: string): void {
    this.events.push({ type: 'close', code, reason });
  }
}

/** Events in a form chai diffs well: bytes as hex. */
function describeEvents(events: readonly SinkEvent[]): unknown[] {
  return events.map((event) => {
    if (event.type === 'binary' || event.type === 'ping' || event.type === 'pong') {
      return { type: event.type, hex: Buffer.from(event.bytes.buffer, event.bytes.byteOffset, event.bytes.byteLength).toString('hex') };
    }
    return event;
  });
}

const text = (value: string): SinkEvent => ({ type: 'text', text: value });
const binary = (bytes: Uint8Array | readonly number[]): SinkEvent => ({ type: 'binary', bytes: Uint8Array.from(bytes) });
const ping = (bytes: Uint8Array | string): SinkEvent => ({ type: 'ping', bytes: Uint8Array.from(Buffer.from(bytes)) });
const pong = (bytes: Uint8Array | string): SinkEvent => ({ type: 'pong', bytes: Uint8Array.from(Buffer.from(bytes)) });
const close = (code: number | null, reason = ''): SinkEvent => ({ type: 'close', code, reason });

interface ReadResult {
  events: SinkEvent[];
  errorCode: number | null;
  reader: MessageReader;
}

function read(chunks: readonly Buffer[], options: MessageReaderOptions): ReadResult {
  const sink = new SinkRecorder();
  const reader = new MessageReader(sink, options);
  for (const chunk of chunks) reader.push(chunk);
  // The sink hears of an error exactly once, and it is the parser's.
  expect(sink.errors.length).to.equal(reader.error === null ? 0 : 1);
  if (reader.error !== null) expect(sink.errors[0]).to.equal(reader.error);
  return { events: sink.events, errorCode: reader.error?.closeCode ?? null, reader };
}

/** Binary messages must own exactly their bytes: a plain Uint8Array over a buffer of their own. */
function expectOwnedBytes(bytes: Uint8Array, label: string): void {
  expect(Object.getPrototypeOf(bytes), `${label}: prototype`).to.equal(Uint8Array.prototype);
  expect(Buffer.isBuffer(bytes), `${label}: not a Buffer`).to.equal(false);
  expect(bytes.byteOffset, `${label}: byteOffset`).to.equal(0);
  expect(bytes.buffer.byteLength, `${label}: buffer.byteLength`).to.equal(bytes.byteLength);
}

/**
 * Feeds `vector` whole, in two chunks at every offset and one byte at a time, and checks each
 * time that the sink sees exactly `expected` and the reader ends with `errorCode`.
 */
function expectAtEverySplit(vector: Uint8Array, options: MessageReaderOptions, expected: SinkEvent[], errorCode: number | null = null): void {
  const wanted = describeEvents(expected);
  for (const { label, chunks } of chunkings(vector)) {
    const result = read(chunks, options);
    expect(describeEvents(result.events), label).to.deep.equal(wanted);
    expect(result.errorCode, label).to.equal(errorCode);
    for (const event of result.events) {
      if (event.type === 'binary') expectOwnedBytes(event.bytes, label);
      if (event.type === 'text') expect(event.text, label).to.be.a('string');
    }
  }
}

const MASK = [0xa1, 0x02, 0xf3, 0x44] as const;

/** Frames and options for one role: the client reads unmasked frames, the server masked ones. */
function roleCases(): Array<{ role: 'client' | 'server'; frame: (opcode: number, payload?: Uint8Array | string, options?: BuildFrameOptions) => Buffer }> {
  return [
    { role: 'client', frame: (opcode, payload = '', options = {}) => buildFrame(opcode, payload, options) },
    { role: 'server', frame: (opcode, payload = '', options = {}) => buildFrame(opcode, payload, { ...options, mask: MASK }) },
  ];
}

describe('MessageReader', () => {
  for (const { role, frame } of roleCases()) {
    describe(`${role} role`, () => {
      describe('data messages', () => {
        it('delivers a single-frame text message as a string', () => {
          expectAtEverySplit(frame(0x1, 'Hello, wörld € 𝄞'), { role }, [text('Hello, wörld € 𝄞')]);
        });

        it('delivers empty text and binary messages', () => {
          expectAtEverySplit(Buffer.concat([frame(0x1, ''), frame(0x2, '')]), { role }, [text(''), binary([])]);
        });

        it('delivers a single-frame binary message as an owned Uint8Array', () => {
          const payload = patternBytes(300);
          expectAtEverySplit(frame(0x2, payload), { role }, [binary(payload)]);
        });

        it('reassembles continuation frames', () => {
          const vector = Buffer.concat([
            frame(0x1, 'Hel', { fin: false }),
            frame(0x0, 'lo, ', { fin: false }),
            frame(0x0, '', { fin: false }),
            frame(0x0, 'world'),
            frame(0x2, Buffer.from([1, 2]), { fin: false }),
            frame(0x0, Buffer.from([3])),
          ]);
          expectAtEverySplit(vector, { role }, [text('Hello, world'), binary([1, 2, 3])]);
        });

        it('reassembles messages whose first fragments are empty', () => {
          const vector = Buffer.concat([
            frame(0x1, '', { fin: false }),
            frame(0x0, '', { fin: false }),
            frame(0x0, 'tail'),
            frame(0x2, '', { fin: false }),
            frame(0x0, Buffer.from([9, 8, 7])),
            frame(0x1, '', { fin: false }),
            frame(0x0, ''),
          ]);
          expectAtEverySplit(vector, { role }, [text('tail'), binary([9, 8, 7]), text('')]);
        });

        it('joins a UTF-8 character split across fragments', () => {
          const euro = Buffer.from('€𝄞');
          const vector = Buffer.concat([
            frame(0x1, euro.subarray(0, 1), { fin: false }),
            frame(0x0, euro.subarray(1, 4), { fin: false }),
            frame(0x9, 'mid'),
            frame(0x0, euro.subarray(4, 6), { fin: false }),
            frame(0x0, euro.subarray(6)),
          ]);
          expectAtEverySplit(vector, { role }, [ping('mid'), text('€𝄞')]);
        });

        it('delivers control frames interleaved inside a fragmented message, and the message after them', () => {
          const vector = Buffer.concat([
            frame(0x2, Buffer.from([1]), { fin: false }),
            frame(0x9, 'p1'),
            frame(0x0, Buffer.from([2]), { fin: false }),
            frame(0xa, 'p2'),
            frame(0x9, ''),
            frame(0x0, Buffer.from([3])),
            frame(0x1, 'a', { fin: false }),
            frame(0xa, ''),
            frame(0x0, 'b'),
          ]);
          expectAtEverySplit(vector, { role }, [ping('p1'), pong('p2'), ping(''), binary([1, 2, 3]), pong(''), text('ab')]);
        });

        it('delivers a close frame that arrives inside a fragmented message, and drops the message', () => {
          const vector = Buffer.concat([frame(0x1, 'par', { fin: false }), frame(0x8, closeBody(1001, 'bye')), frame(0x0, 'tial')]);
          expectAtEverySplit(vector, { role }, [close(1001, 'bye')]);
        });

        it('keeps messages apart: a fragmented message after a single-frame one and vice versa', () => {
          const vector = Buffer.concat([
            frame(0x1, 'one'),
            frame(0x1, 'tw', { fin: false }),
            frame(0x0, 'o'),
            frame(0x2, Buffer.from([4])),
            frame(0x1, '€'),
            frame(0x1, Buffer.from([0xe2]), { fin: false }),
            frame(0x0, Buffer.from([0x82, 0xac])),
          ]);
          expectAtEverySplit(vector, { role }, [text('one'), text('two'), binary([4]), text('€'), text('€')]);
        });

        it('ignores empty chunks', () => {
          const whole = frame(0x1, 'split text');
          const result = read([Buffer.alloc(0), whole.subarray(0, 3), Buffer.alloc(0), whole.subarray(3), Buffer.alloc(0)], { role });
          expect(result.errorCode).to.equal(null);
          expect(result.events).to.deep.equal([text('split text')]);
        });

        it('delivers pings and pongs with their payloads', () => {
          const full = patternBytes(125);
          const vector = Buffer.concat([frame(0x9, 'Hello'), frame(0xa, 'Hello'), frame(0x9, full), frame(0xa, full), frame(0x9, ''), frame(0xa, '')]);
          expectAtEverySplit(vector, { role }, [ping('Hello'), pong('Hello'), ping(full), pong(full), ping(''), pong('')]);
        });
      });

      describe('fragmentation errors (RFC 6455 §5.4)', () => {
        it('fails with 1002 on a continuation frame with no message in progress', () => {
          expectAtEverySplit(frame(0x0, 'orphan'), { role }, [], 1002);
          expectAtEverySplit(frame(0x0, 'orphan', { fin: false }), { role }, [], 1002);
          expectAtEverySplit(frame(0x0, ''), { role }, [], 1002);
        });

        it('fails with 1002 on a continuation frame after a complete message', () => {
          const vector = Buffer.concat([frame(0x1, 'a', { fin: false }), frame(0x0, 'b'), frame(0x0, 'c'), frame(0x1, 'never')]);
          expectAtEverySplit(vector, { role }, [text('ab')], 1002);
        });

        for (const [first, second] of [
          [0x1, 0x1],
          [0x1, 0x2],
          [0x2, 0x1],
          [0x2, 0x2],
        ] as const) {
          it(`fails with 1002 on opcode ${second} while a fragmented message of opcode ${first} is in progress`, () => {
            const vector = Buffer.concat([frame(first, 'a', { fin: false }), frame(0x9, 'ok'), frame(second, 'b'), frame(0x0, 'c')]);
            expectAtEverySplit(vector, { role }, [ping('ok')], 1002);
            expectAtEverySplit(Buffer.concat([frame(first, '', { fin: false }), frame(second, '', { fin: false })]), { role }, [], 1002);
          });
        }
      });

      describe('maxPayload', () => {
        it('accepts a single frame of exactly maxPayload bytes, and fails with 1009 one byte over', () => {
          expectAtEverySplit(frame(0x2, patternBytes(10)), { role, maxPayload: 10 }, [binary(patternBytes(10))]);
          expectAtEverySplit(frame(0x1, 'x'.repeat(10)), { role, maxPayload: 10 }, [text('x'.repeat(10))]);
          expectAtEverySplit(frame(0x2, patternBytes(11)), { role, maxPayload: 10 }, [], 1009);
          expectAtEverySplit(frame(0x1, 'x'.repeat(11)), { role, maxPayload: 10 }, [], 1009);
        });

        it('counts across fragments: exactly at the limit passes, one byte over fails with 1009', () => {
          const atLimit = Buffer.concat([frame(0x2, patternBytes(3), { fin: false }), frame(0x0, patternBytes(3), { fin: false }), frame(0x0, patternBytes(4))]);
          const expected = Buffer.concat([patternBytes(3), patternBytes(3), patternBytes(4)]);
          expectAtEverySplit(atLimit, { role, maxPayload: 10 }, [binary(expected)]);
          const over = Buffer.concat([frame(0x2, patternBytes(3), { fin: false }), frame(0x0, patternBytes(3), { fin: false }), frame(0x0, patternBytes(5))]);
          expectAtEverySplit(over, { role, maxPayload: 10 }, [], 1009);
          const textOver = Buffer.concat([frame(0x1, 'abcde', { fin: false }), frame(0x0, 'fghijk')]);
          expectAtEverySplit(textOver, { role, maxPayload: 10 }, [], 1009);
        });

        it('fails with 1009 as soon as a frame header announces too much, before its payload', () => {
          const big = frame(0x2, patternBytes(1000));
          const headerLength = role === 'server' ? 8 : 4;
          const result = read([Buffer.from(big.subarray(0, headerLength))], { role, maxPayload: 999 });
          expect(result.errorCode).to.equal(1009);
          const fragmented = read([frame(0x1, 'abc', { fin: false }), Buffer.from(frame(0x0, 'defg').subarray(0, 2 + (role === 'server' ? 4 : 0)))], {
            role,
            maxPayload: 6,
          });
          expect(fragmented.errorCode).to.equal(1009);
          expect(fragmented.events).to.deep.equal([]);
        });

        it('does not count control frames, nor earlier messages', () => {
          const vector = Buffer.concat([
            frame(0x2, patternBytes(8)),
            frame(0x2, patternBytes(4), { fin: false }),
            frame(0x9, patternBytes(100)),
            frame(0x0, patternBytes(4)),
            frame(0x1, 'x'.repeat(8)),
          ]);
          expectAtEverySplit(vector, { role, maxPayload: 8 }, [
            binary(patternBytes(8)),
            ping(patternBytes(100)),
            binary(Buffer.concat([patternBytes(4), patternBytes(4)])),
            text('x'.repeat(8)),
          ]);
        });

        it('defaults to 100 MiB', () => {
          expect(new MessageReader(new SinkRecorder(), { role }).maxPayload).to.equal(100 * 1024 * 1024);
        });
      });

      describe('large messages', () => {
        it('accepts a 4 MiB binary message in 64-byte fragments', () => {
          const total = 4 * 1024 * 1024;
          const payload = randomBytes(prng(role === 'client' ? 11 : 12), total);
          const frames: Buffer[] = [];
          for (let pos = 0; pos < total; pos += 64) {
            frames.push(frame(pos === 0 ? 0x2 : 0x0, payload.subarray(pos, pos + 64), { fin: pos + 64 >= total }));
          }
          const stream = Buffer.concat(frames);
          for (const size of [stream.length, 1000, 65536]) {
            const copy = Buffer.from(stream);
            const chunks: Buffer[] = [];
            for (let pos = 0; pos < copy.length; pos += size) chunks.push(copy.subarray(pos, pos + size));
            const result = read(chunks, { role });
            expect(result.errorCode, `chunks of ${size}`).to.equal(null);
            expect(result.events).to.have.length(1);
            const event = result.events[0]!;
            expect(event.type).to.equal('binary');
            if (event.type !== 'binary') return;
            expectOwnedBytes(event.bytes, `chunks of ${size}`);
            expect(Buffer.from(event.bytes.buffer).equals(payload), `chunks of ${size}`).to.equal(true);
          }
        });

        it('accepts a 4 MiB text message in 64-byte fragments that cut characters apart', () => {
          const message = '€𝄞ab'.repeat(Math.floor((4 * 1024 * 1024) / 9));
          const bytes = Buffer.from(message);
          const frames: Buffer[] = [];
          for (let pos = 0; pos < bytes.length; pos += 64) {
            frames.push(frame(pos === 0 ? 0x1 : 0x0, bytes.subarray(pos, pos + 64), { fin: pos + 64 >= bytes.length }));
          }
          const result = read([Buffer.concat(frames)], { role });
          expect(result.errorCode).to.equal(null);
          expect(result.events).to.have.length(1);
          const event = result.events[0]!;
          expect(event.type === 'text' && event.text === message).to.equal(true);
        });

        it('delivers a 1 MiB single-frame binary message split into many chunks as owned bytes', () => {
          const payload = randomBytes(prng(99), 1024 * 1024 + 3);
          const copy = frame(0x2, payload);
          const chunks: Buffer[] = [];
          for (let pos = 0; pos < copy.length; pos += 4093) chunks.push(copy.subarray(pos, pos + 4093));
          const result = read(chunks, { role });
          expect(result.errorCode).to.equal(null);
          const event = result.events[0]!;
          if (event.type !== 'binary') expect.fail(`expected a binary message, got ${event.type}`);
          expectOwnedBytes(event.bytes, 'split');
          expect(Buffer.from(event.bytes).equals(payload)).to.equal(true);
        });
      });

      describe('binary messages own their bytes', () => {
        it('on the fast path (a whole message in one chunk)', () => {
          const chunk = Buffer.concat([frame(0x2, Buffer.from([1, 2, 3])), frame(0x2, Buffer.from([4, 5]))]);
          const result = read([chunk], { role });
          expect(result.events).to.have.length(2);
          for (const event of result.events) {
            if (event.type !== 'binary') expect.fail(`expected a binary message, got ${event.type}`);
            expectOwnedBytes(event.bytes, 'fast path');
          }
          chunk.fill(0xee);
          expect(describeEvents(result.events)).to.deep.equal(describeEvents([binary([1, 2, 3]), binary([4, 5])]));
        });

        it('on the fragmented path (fragments, or a frame split across chunks)', () => {
          const chunks = [
            Buffer.concat([frame(0x2, Buffer.from([1]), { fin: false }), frame(0x0, Buffer.from([2, 3]))]),
            ...(() => {
              const single = frame(0x2, Buffer.from([7, 8, 9, 10]));
              return [single.subarray(0, single.length - 2), single.subarray(single.length - 2)];
            })(),
          ];
          const result = read(chunks, { role });
          expect(result.events).to.have.length(2);
          for (const event of result.events) {
            if (event.type !== 'binary') expect.fail(`expected a binary message, got ${event.type}`);
            expectOwnedBytes(event.bytes, 'fragmented path');
          }
          for (const chunk of chunks) chunk.fill(0xee);
          expect(describeEvents(result.events)).to.deep.equal(describeEvents([binary([1, 2, 3]), binary([7, 8, 9, 10])]));
        });

        it('two messages never share memory', () => {
          const result = read([Buffer.concat([frame(0x2, Buffer.from([1])), frame(0x2, Buffer.from([2]), { fin: false }), frame(0x0, Buffer.from([3]))])], { role });
          const [a, b] = result.events;
          if (a?.type !== 'binary' || b?.type !== 'binary') expect.fail('expected two binary messages');
          expect(a.bytes.buffer).to.not.equal(b.bytes.buffer);
        });
      });

      describe('UTF-8 (RFC 6455 §8.1)', () => {
        const invalid: Array<[string, number[]]> = [
          ['0xFF', [0xff]],
          ['a lone continuation byte', [0x80]],
          ['overlong C0 80', [0xc0, 0x80]],
          ['overlong E0 80 80', [0xe0, 0x80, 0x80]],
          ['overlong F0 80 80 80', [0xf0, 0x80, 0x80, 0x80]],
          ['a surrogate ED A0 80', [0xed, 0xa0, 0x80]],
          ['a code point above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
          ['F5', [0xf5, 0x80, 0x80, 0x80]],
          ['a lead byte followed by ASCII', [0xe2, 0x82, 0x41]],
        ];

        for (const [name, bytes] of invalid) {
          it(`fails with 1007 on ${name}, in a single frame and fragmented`, () => {
            const payload = Buffer.concat([Buffer.from('valid €'), Buffer.from(bytes), Buffer.from(' more')]);
            expectAtEverySplit(frame(0x1, payload), { role }, [], 1007);
            const fragmented = Buffer.concat([frame(0x1, payload.subarray(0, 5), { fin: false }), frame(0x0, payload.subarray(5, 9), { fin: false }), frame(0x0, payload.subarray(9))]);
            expectAtEverySplit(fragmented, { role }, [], 1007);
          });
        }

        it('fails with 1007 on an invalid first fragment before the later fragments arrive', () => {
          for (const [name, bytes] of invalid) {
            const first = frame(0x1, Buffer.concat([Buffer.from('ok '), Buffer.from(bytes)]), { fin: false });
            for (const { label, chunks } of chunkings(first)) {
              const result = read(chunks, { role });
              expect(result.errorCode, `${name}, ${label}`).to.equal(1007);
              expect(result.events).to.deep.equal([]);
            }
          }
        });

        it('fails with 1007 within a frame as soon as the invalid byte arrives', () => {
          for (const [name, bytes] of invalid) {
            const payload = Buffer.concat([Buffer.from('abc'), Buffer.from(bytes), Buffer.from('xyz')]);
            // The first byte at which the payload stops being the start of any valid UTF-8 text.
            let firstBad = 3;
            while (isValidUtf8Prefix(payload.subarray(0, firstBad + 1))) firstBad++;
            for (const fin of [true, false]) {
              const whole = frame(0x1, payload, { fin });
              const headerLength = whole.length - payload.length;
              const sink = new SinkRecorder();
              const reader = new MessageReader(sink, { role });
              // One byte at a time: no error until the bad byte, 1007 right after it.
              for (let i = 0; i < whole.length; i++) {
                reader.push(Buffer.from(whole.subarray(i, i + 1)));
                const expected = i >= headerLength + firstBad ? 1007 : null;
                expect(reader.error?.closeCode ?? null, `${name}, fin ${fin}, after byte ${i}`).to.equal(expected);
              }
              expect(sink.events).to.deep.equal([]);
              // Header and the bytes before the bad one in one chunk, then the bad byte on its own.
              const second = read([Buffer.from(whole.subarray(0, headerLength + firstBad))], { role });
              expect(second.errorCode, `${name}, before the bad byte`).to.equal(null);
              second.reader.push(Buffer.from(whole.subarray(headerLength + firstBad, headerLength + firstBad + 1)));
              expect(second.reader.error?.closeCode, `${name}, at the bad byte`).to.equal(1007);
            }
          }
        });

        it('fails with 1007 on a text message that ends inside a UTF-8 sequence', () => {
          for (const tail of [[0xc3], [0xe2], [0xe2, 0x82], [0xf0], [0xf0, 0x9d], [0xf0, 0x9d, 0x84]]) {
            const payload = Buffer.concat([Buffer.from('ab'), Buffer.from(tail)]);
            expectAtEverySplit(frame(0x1, payload), { role }, [], 1007);
            expectAtEverySplit(Buffer.concat([frame(0x1, payload, { fin: false }), frame(0x0, '')]), { role }, [], 1007);
            expectAtEverySplit(Buffer.concat([frame(0x1, 'ab', { fin: false }), frame(0x0, Buffer.from(tail))]), { role }, [], 1007);
          }
        });

        it('does not validate binary messages as UTF-8', () => {
          const bytes = [0xff, 0xc0, 0x80, 0xed, 0xa0, 0x80, 0xe2];
          expectAtEverySplit(Buffer.concat([frame(0x2, Buffer.from(bytes), { fin: false }), frame(0x0, Buffer.from([0x82]))]), { role }, [binary([...bytes, 0x82])]);
        });

        it('does not carry UTF-8 state from one text message to the next', () => {
          const vector = Buffer.concat([
            frame(0x1, Buffer.from([0x61, 0xe2]), { fin: false }),
            frame(0x0, Buffer.from([0x82, 0xac])),
            frame(0x1, Buffer.from([0xe2]), { fin: false }),
            frame(0x0, Buffer.from([0x82, 0xac, 0x62])),
          ]);
          expectAtEverySplit(vector, { role }, [text('a€'), text('€b')]);
        });
      });

      describe('close frames (RFC 6455 §5.5.1, §7.4)', () => {
        it('reports an empty close frame as onClose(null, "")', () => {
          expectAtEverySplit(frame(0x8, ''), { role }, [close(null, '')]);
        });

        it('reports the code and the reason', () => {
          expectAtEverySplit(frame(0x8, closeBody(1000, 'bye')), { role }, [close(1000, 'bye')]);
          expectAtEverySplit(frame(0x8, closeBody(4321, 'été €')), { role }, [close(4321, 'été €')]);
        });

        it('fails with 1002 on a one-byte close payload', () => {
          expectAtEverySplit(frame(0x8, Buffer.from([0x03])), { role }, [], 1002);
          expectAtEverySplit(frame(0x8, Buffer.from([0xe8])), { role }, [], 1002);
        });

        for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
          it(`fails with 1002 on close code ${code}`, () => {
            expectAtEverySplit(frame(0x8, closeBody(code)), { role }, [], 1002);
            expectAtEverySplit(frame(0x8, closeBody(code, 'why')), { role }, [], 1002);
          });
        }

        it('accepts the valid close codes', () => {
          for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]) {
            const result = read([frame(0x8, closeBody(code, 'r'))], { role });
            expect(result.errorCode, `code ${code}`).to.equal(null);
            expect(result.events, `code ${code}`).to.deep.equal([close(code, 'r')]);
          }
        });

        it('fails with 1007 on a reason that is not UTF-8', () => {
          expectAtEverySplit(frame(0x8, closeBody(1000, Buffer.from([0x61, 0xff]))), { role }, [], 1007);
          expectAtEverySplit(frame(0x8, closeBody(1000, Buffer.from([0xed, 0xa0, 0x80]))), { role }, [], 1007);
          expectAtEverySplit(frame(0x8, closeBody(1000, Buffer.from([0x61, 0xe2, 0x82]))), { role }, [], 1007);
        });

        it('accepts a 123-byte reason', () => {
          expectAtEverySplit(frame(0x8, closeBody(1000, 'a'.repeat(123))), { role }, [close(1000, 'a'.repeat(123))]);
          expectAtEverySplit(frame(0x8, closeBody(3000, '€'.repeat(41))), { role }, [close(3000, '€'.repeat(41))]);
        });

        it('parses nothing after a close frame', () => {
          const vector = Buffer.concat([frame(0x1, 'before'), frame(0x8, closeBody(1000)), frame(0x1, 'after'), frame(0x9, 'ping'), frame(0x8, '')]);
          expectAtEverySplit(vector, { role }, [text('before'), close(1000, '')]);
          const result = read([vector], { role });
          result.reader.push(frame(0x1, 'much later'));
          result.reader.push(Buffer.from([0xff, 0xff, 0xff]));
          expect(describeEvents(result.events)).to.deep.equal(describeEvents([text('before'), close(1000, '')]));
          expect(result.reader.stopped).to.equal(true);
          expect(result.errorCode).to.equal(null);
        });

        it('delivers nothing after an invalid close frame', () => {
          const vector = Buffer.concat([frame(0x8, closeBody(1005)), frame(0x1, 'after')]);
          expectAtEverySplit(vector, { role }, [], 1002);
        });
      });

      it('fails with the frame parser\'s errors too (reserved opcode, masking)', () => {
        expectAtEverySplit(frame(0x3, 'x'), { role }, [], 1002);
        const wrongMasking = role === 'server' ? buildFrame(0x1, 'x') : buildFrame(0x1, 'x', { mask: MASK });
        expectAtEverySplit(wrongMasking, { role }, [], 1002);
      });
    });
  }

  describe('allocateBytes', () => {
    it('returns a plain Uint8Array that owns exactly its bytes', () => {
      for (const length of [0, 1, 7, 4096, 100_000]) {
        const bytes = allocateBytes(length);
        expect(bytes.length).to.equal(length);
        expectOwnedBytes(bytes, `length ${length}`);
      }
    });
  });

  it('reports the same messages for random streams at random slicings', () => {
    const rand = prng(77);
    for (let trial = 0; trial < 30; trial++) {
      const frames: Buffer[] = [];
      const expected: SinkEvent[] = [];
      for (let m = 0; m < 20; m++) {
        const isText = rand() < 0.5;
        const pieces = randomInt(rand, 1, 4);
        const content = isText ? Buffer.from('ab€𝄞ç'.repeat(randomInt(rand, 0, 30))) : randomBytes(rand, randomInt(rand, 0, 300));
        const cuts = [0, ...Array.from({ length: pieces - 1 }, () => randomInt(rand, 0, content.length)).sort((x, y) => x - y), content.length];
        for (let p = 0; p < pieces; p++) {
          frames.push(buildFrame(p === 0 ? (isText ? 0x1 : 0x2) : 0x0, content.subarray(cuts[p]!, cuts[p + 1]!), { fin: p === pieces - 1 }));
          if (rand() < 0.2 && p < pieces - 1) {
            const payload = randomBytes(rand, randomInt(rand, 0, 20));
            frames.push(buildFrame(0x9, payload));
            expected.push(ping(payload));
          }
        }
        expected.push(isText ? text(content.toString()) : binary(content));
      }
      const stream = Buffer.concat(frames);
      const chunks: Buffer[] = [];
      for (let pos = 0; pos < stream.length; ) {
        const size = randomInt(rand, 1, rand() < 0.5 ? 10 : 500);
        chunks.push(stream.subarray(pos, pos + size));
        pos += size;
      }
      const result = read(chunks, { role: 'client' });
      expect(result.errorCode, `trial ${trial}`).to.equal(null);
      expect(describeEvents(result.events), `trial ${trial}`).to.deep.equal(describeEvents(expected));
    }
  });
});
