// Property-based fuzzing of the RFC 6455 codec, permessage-deflate and the handshake parsers.
// Every property is defined once here; fuzz.spec.ts runs each a bounded number of
// times inside `npm test`, and run.ts runs them for as long as asked (`npm run fuzz -- --runs N`).
// The TCP property (a real server fed garbage heads) lives in tcp-server.ts.
import fc from 'fast-check';
import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import zlib from 'node:zlib';
import { HttpHeadError, HttpResponseHeadReader, isToken, isValidHeaderValue } from '../../lib/handshake/http.js';
import { isValidKey } from '../../lib/handshake/keys.js';
import { checkUpgradeRequest, isRefusal, switchingProtocolsHead } from '../../lib/handshake/server.js';
import { encodeClosePayload, isValidWireCloseCode } from '../../lib/protocol/close.js';
import { DEFAULT_MAX_PAYLOAD, Opcode } from '../../lib/protocol/constants.js';
import { ExtensionHeaderError, parseExtensions, serializeExtension, type ExtensionOffer } from '../../lib/handshake/extensions.js';
import { encodeFrame, encodeTextFrame } from '../../lib/protocol/frame-encoder.js';
import type { ProtocolError, Role } from '../../lib/protocol/types.js';
import { MessageReader, type MessageSink } from '../../lib/protocol/message-reader.js';
import { PerMessageDeflate, type DeflateParams } from '../../lib/protocol/permessage-deflate.js';
import { acceptClientOffers, acceptServerResponse, clientOffer, NegotiationError, normalizeDeflateOptions, type PerMessageDeflateOptions } from '../../lib/handshake/deflate-negotiation.js';
import { Utf8Validator } from '../../lib/protocol/utf8.js';

// ---------------------------------------------------------------------------------------------
// Progress: every predicate ticks once per input, so a runner can report inputs per second.

let ticks = 0;
let tickHook: ((count: number) => void) | null = null;

/** Calls `hook(total)` every 1,024 inputs (across all properties). */
export function onProgress(hook: ((count: number) => void) | null): void {
  tickHook = hook;
}

function tick(): void {
  ticks++;
  if ((ticks & 0x3ff) === 0 && tickHook !== null) tickHook(ticks);
}

/** A property failure: the message says what broke; fast-check adds the input and the seed. */
class FuzzFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FuzzFailure';
  }
}

function fail(message: string): never {
  throw new FuzzFailure(message);
}

// ---------------------------------------------------------------------------------------------
// What a MessageReader reports, recorded.

export type WireEvent =
  | { type: 'text'; text: string }
  | { type: 'binary' | 'ping' | 'pong'; bytes: Buffer }
  | { type: 'close'; code: number | null; reason: string }
  | { type: 'error'; code: number; message: string };

class Recorder implements MessageSink {
  readonly events: WireEvent[] = [];
  readonly errors: ProtocolError[] = [];
  private resumed: (() => void) | null = null;

  onText(text: string): void {
    this.events.push({ type: 'text', text });
  }
  onBinary(data: Uint8Array): void {
    this.events.push({ type: 'binary', bytes: Buffer.from(data) });
  }
  onPing(payload: Uint8Array): void {
    this.events.push({ type: 'ping', bytes: Buffer.from(payload) });
  }
  onPong(payload: Uint8Array): void {
    this.events.push({ type: 'pong', bytes: Buffer.from(payload) });
  }
  onClose(code: number | null, reason: string): void {
    this.events.push({ type: 'close', code, reason });
  }
  onProtocolError(error: ProtocolError): void {
    this.errors.push(error);
    this.events.push({ type: 'error', code: error.closeCode, message: error.message });
  }
  onReadResumed(): void {
    const resumed = this.resumed;
    this.resumed = null;
    resumed?.();
  }

  /** Resolves at the next onReadResumed; rejects if it does not come within `ms`. */
  nextResume(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new FuzzFailure(`the reader stayed busy (inflating) for ${ms} ms`)), ms);
      this.resumed = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

interface ReaderConfig {
  role: Role;
  maxPayload: number;
}

interface DeflateConfig extends ReaderConfig {
  /** The peer resets its compressor per message, so our inflater resets too. */
  noContextTakeover: boolean;
}

interface Outcome {
  events: WireEvent[];
  /** Consistency of the error reporting, checked by checkOutcome. */
  sinkErrors: number;
  parserErrorReported: boolean;
  stopped: boolean;
}

function outcomeOf(recorder: Recorder, reader: MessageReader): Outcome {
  const parserError = reader.error;
  return {
    events: recorder.events,
    sinkErrors: recorder.errors.length,
    parserErrorReported: parserError === null ? recorder.errors.length === 0 : recorder.errors.length === 1 && recorder.errors[0] === parserError,
    stopped: reader.stopped,
  };
}

/** Feeds chunks to a MessageReader without permessage-deflate. Exceptions propagate. */
export function readChunks(chunks: readonly Buffer[], config: ReaderConfig): Outcome {
  const recorder = new Recorder();
  const reader = new MessageReader(recorder, { role: config.role, maxPayload: config.maxPayload });
  for (const chunk of chunks) reader.push(chunk);
  return outcomeOf(recorder, reader);
}

function deflateParams(noContextTakeover: boolean, sendNoContextTakeover = false, sendMaxWindowBits = 15): DeflateParams {
  return {
    sendNoContextTakeover,
    sendMaxWindowBits,
    receiveNoContextTakeover: noContextTakeover,
    receiveMaxWindowBits: 15,
    threshold: 0,
    level: undefined,
    memLevel: undefined,
  };
}

/** Feeds chunks to a MessageReader with a real PerMessageDeflate, and waits for every inflate. */
export async function readChunksDeflate(chunks: readonly Buffer[], config: DeflateConfig): Promise<Outcome> {
  const deflate = new PerMessageDeflate(deflateParams(config.noContextTakeover), config.maxPayload);
  const recorder = new Recorder();
  const reader = new MessageReader(recorder, { role: config.role, maxPayload: config.maxPayload, deflate });
  try {
    // Chunks pushed while an inflate runs are held by the parser and parsed after it, in order.
    for (const chunk of chunks) reader.push(chunk);
    while (reader.busy) await recorder.nextResume(10_000);
  } finally {
    deflate.close();
  }
  return outcomeOf(recorder, reader);
}

const ERROR_CODES: readonly number[] = [1002, 1007, 1009];

/**
 * What every read must satisfy, whatever the bytes: at most one protocol error, reported once
 * through the sink and equal to `parser.error`, with close code 1002, 1007 or 1009; nothing
 * after an error or a close frame; messages within maxPayload, control payloads within 125 bytes.
 */
function checkOutcome(outcome: Outcome, maxPayload: number): void {
  const { events } = outcome;
  if (outcome.sinkErrors > 1) fail(`${outcome.sinkErrors} protocol errors reported; at most one may be`);
  if (!outcome.parserErrorReported) fail('parser.error and the errors reported through the sink disagree');
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!;
    const last = i === events.length - 1;
    switch (event.type) {
      case 'error':
        if (!ERROR_CODES.includes(event.code)) fail(`protocol error with close code ${event.code}: ${event.message}`);
        if (!last) fail(`events after the protocol error "${event.message}": ${describeEvents(events.slice(i + 1))}`);
        break;
      case 'close':
        if (!last) fail(`events after the close frame: ${describeEvents(events.slice(i + 1))}`);
        if (event.code !== null && !isValidWireCloseCode(event.code)) fail(`close frame with code ${event.code} accepted`);
        if (event.code === null && event.reason !== '') fail('a reason without a close code');
        if (Buffer.byteLength(event.reason) > 123) fail('close reason over 123 bytes');
        if (!outcome.stopped) fail('the parser did not stop after a close frame');
        break;
      case 'text':
        if (Buffer.byteLength(event.text) > maxPayload) fail(`text message of ${Buffer.byteLength(event.text)} bytes over maxPayload ${maxPayload}`);
        break;
      case 'binary':
        if (event.bytes.length > maxPayload) fail(`binary message of ${event.bytes.length} bytes over maxPayload ${maxPayload}`);
        break;
      default:
        if (event.bytes.length > 125) fail(`${event.type} payload of ${event.bytes.length} bytes`);
    }
  }
}

function sameEvent(a: WireEvent, b: WireEvent): boolean {
  switch (a.type) {
    case 'text':
      return b.type === 'text' && a.text === b.text;
    case 'close':
      return b.type === 'close' && a.code === b.code && a.reason === b.reason;
    case 'error':
      // Messages may differ (a truncated sequence seen whole or across writes); the code may not.
      return b.type === 'error' && a.code === b.code;
    default:
      return b.type === a.type && (b as { bytes: Buffer }).bytes.equals(a.bytes);
  }
}

/** Null when equal, else where they first differ. */
function compareEvents(actual: readonly WireEvent[], expected: readonly WireEvent[]): string | null {
  const n = Math.max(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    const a = actual[i];
    const e = expected[i];
    if (a === undefined || e === undefined || !sameEvent(a, e)) {
      return `event ${i} differs: got ${a === undefined ? 'nothing' : describeEvent(a)}, expected ${e === undefined ? 'nothing' : describeEvent(e)}`;
    }
  }
  return null;
}

function hexOf(bytes: Uint8Array, max = 48): string {
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
  return hex.length > max * 2 ? `${hex.slice(0, max * 2)}…(${bytes.byteLength} bytes)` : hex;
}

function describeEvent(event: WireEvent): string {
  switch (event.type) {
    case 'text':
      return `text ${JSON.stringify(event.text.length > 60 ? `${event.text.slice(0, 60)}…` : event.text)} (${event.text.length} units)`;
    case 'close':
      return `close ${event.code} ${JSON.stringify(event.reason)}`;
    case 'error':
      return `error ${event.code} (${event.message})`;
    default:
      return `${event.type} ${event.bytes.length === 0 ? '(empty)' : hexOf(event.bytes)}`;
  }
}

function describeEvents(events: readonly WireEvent[]): string {
  return `[${events.map(describeEvent).join(', ')}]`;
}

// ---------------------------------------------------------------------------------------------
// Chunkings: how a byte stream is cut into socket reads.

export type Chunking =
  | { kind: 'whole' }
  | { kind: 'bytewise' }
  /** Cut positions (taken modulo length + 1, so duplicates make empty chunks), and where the copy starts in its ArrayBuffer. */
  | { kind: 'cuts'; cuts: number[]; offset: number };

/** Byte-by-byte reads cover this many bytes at each end of a stream; its middle comes in one chunk. */
const BYTEWISE_ENDS = 512;

export const chunkingArb: fc.Arbitrary<Chunking> = fc.oneof(
  { weight: 1, arbitrary: fc.constant<Chunking>({ kind: 'whole' }) },
  { weight: 1, arbitrary: fc.constant<Chunking>({ kind: 'bytewise' }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('cuts' as const),
      cuts: fc.array(fc.nat({ max: 0xffff }), { maxLength: 12 }),
      offset: fc.nat({ max: 7 }),
    }),
  },
);

/**
 * Cuts a stream into chunks. The chunks are views of one fresh copy (the reader unmasks in place,
 * so it must own them), placed at `offset` in its ArrayBuffer: chunks start at every alignment,
 * and a write past a chunk's end would show as corrupted data in the next one.
 */
export function split(bytes: Uint8Array, chunking: Chunking): Buffer[] {
  const length = bytes.length;
  const offset = chunking.kind === 'cuts' ? chunking.offset : 0;
  const copy = Buffer.from(new ArrayBuffer(length + offset), offset, length);
  copy.set(bytes);
  if (chunking.kind === 'whole') return [copy];
  if (chunking.kind === 'bytewise') {
    const chunks: Buffer[] = [];
    const head = Math.min(length, BYTEWISE_ENDS);
    const tail = Math.max(head, length - BYTEWISE_ENDS);
    for (let i = 0; i < head; i++) chunks.push(copy.subarray(i, i + 1));
    if (tail > head) chunks.push(copy.subarray(head, tail));
    for (let i = tail; i < length; i++) chunks.push(copy.subarray(i, i + 1));
    return chunks;
  }
  const cuts = chunking.cuts.map((cut) => cut % (length + 1)).sort((a, b) => a - b);
  const bounds = [0, ...cuts, length];
  const chunks: Buffer[] = [];
  for (let k = 0; k + 1 < bounds.length; k++) chunks.push(copy.subarray(bounds[k]!, bounds[k + 1]!));
  return chunks;
}

function describeChunks(chunks: readonly Buffer[]): string {
  const sizes = chunks.map((chunk) => chunk.length);
  return sizes.length > 40 ? `${sizes.length} chunks` : `chunks of [${sizes.join(', ')}] bytes`;
}

// ---------------------------------------------------------------------------------------------
// Byte and text generators.

const roleArb = fc.constantFrom<Role>('client', 'server');

/**
 * 160 KiB of fixed pseudo-random bytes. Large payloads are slices of it, chosen by length and
 * offset: fast-check need not draw thousands of bytes one by one, and a seed still replays.
 */
const MASTER = (() => {
  const bytes = Buffer.allocUnsafe(160 * 1024);
  let x = 0x2545f491;
  for (let i = 0; i < bytes.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
})();

/**
 * Slices of MASTER of `min` to `max` bytes: read-only views (every consumer copies), shown in
 * reports by length and offset rather than byte by byte.
 */
function sliceArb(min: number, max: number): fc.Arbitrary<Uint8Array> {
  return fc.record({ length: fc.integer({ min, max }), offset: fc.nat() }).map(({ length, offset }) => {
    const start = offset % (MASTER.length - length + 1);
    const view = new Uint8Array(MASTER.buffer, MASTER.byteOffset + start, length);
    return Object.assign(view, { [fc.toStringMethod]: () => `MASTER[${start}, ${start + length})` });
  });
}

/** Long strings: a short arbitrary one repeated, so multi-byte characters straddle every boundary. */
const longTextArb: fc.Arbitrary<string> = fc
  .tuple(fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }), fc.integer({ min: 2, max: 80 }))
  .map(([unit, times]) => unit.repeat(times));

/** Code points at every UTF-8 length boundary, astral ones and the last one. */
const EDGE_CHARS = ['\0', '\x7f', '\x80', '\u07ff', '\u0800', '\ud7ff', '\ue000', '\ufffd', '\uffff', '\u{10000}', '😀', '𝄞', '\u{10ffff}', 'a', 'é', 'κόσμε'];

export const textArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  { weight: 2, arbitrary: fc.array(fc.constantFrom(...EDGE_CHARS), { maxLength: 24 }).map((chars) => chars.join('')) },
  { weight: 1, arbitrary: longTextArb },
);

export const binaryArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 24, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 3, arbitrary: sliceArb(120, 700) },
  // Around the 16-bit length limit: 65,535 bytes is the last 16-bit length, 65,536 the first 64-bit one.
  {
    weight: 1,
    arbitrary: sliceArb(65_530, 65_560),
  },
);

const controlPayloadArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 5, arbitrary: fc.uint8Array({ maxLength: 16 }) },
  { weight: 1, arbitrary: sliceArb(110, 125) },
);

/** Byte sequences around every rule of RFC 3629: valid, overlong, surrogates, past U+10FFFF, cut short. */
const UTF8_PIECES: readonly number[][] = [
  [0x41],
  [0x00],
  [0x7f],
  [0xc2, 0x80],
  [0xdf, 0xbf],
  [0xe0, 0xa0, 0x80],
  [0xed, 0x9f, 0xbf],
  [0xee, 0x80, 0x80],
  [0xef, 0xbf, 0xbf],
  [0xf0, 0x90, 0x80, 0x80],
  [0xf4, 0x8f, 0xbf, 0xbf],
  [0xc0, 0x80],
  [0xc1, 0xbf],
  [0xe0, 0x80, 0x80],
  [0xe0, 0x9f, 0xbf],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xf0, 0x80, 0x80, 0x80],
  [0xf0, 0x8f, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf5, 0x80, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xff],
  [0xfe],
  [0x80],
  [0xbf],
  [0xc2],
  [0xe0, 0xa0],
  [0xe1],
  [0xf0, 0x90],
  [0xf0, 0x90, 0x80],
  [0xf4],
];

export const utf8ishArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 3, arbitrary: fc.array(fc.constantFrom(...UTF8_PIECES), { maxLength: 10 }).map((pieces) => Uint8Array.from(pieces.flat())) },
  { weight: 2, arbitrary: textArb.map((text) => Buffer.from(text, 'utf8') as Uint8Array) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(textArb, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'delete'))
      .map(([text, at, byte, how]) => {
        const bytes = [...Buffer.from(text, 'utf8')];
        const pos = at % (bytes.length + 1);
        if (how === 'insert') bytes.splice(pos, 0, byte);
        else if (bytes.length > 0 && how === 'delete') bytes.splice(pos % bytes.length, 1);
        else if (bytes.length > 0) bytes[pos % bytes.length] = byte;
        return Uint8Array.from(bytes);
      }),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 24 }) },
);

// ---------------------------------------------------------------------------------------------
// Arbitrary wire bytes: random bytes, and frames with arbitrary (often wrong) header fields.

/** Compressed payloads (RFC 7692: sync-flushed raw deflate without the 00 00 ff ff tail). */
const COMPRESSED_SAMPLES: readonly Buffer[] = (() => {
  const deflate = (data: Uint8Array): Buffer => {
    const out = zlib.deflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    return out.subarray(0, out.length - 4);
  };
  const inputs: Uint8Array[] = [
    Buffer.alloc(0),
    Buffer.from('Hello'),
    Buffer.from('κόσμε 😀 '.repeat(20)),
    Buffer.alloc(300, 0x61),
    Buffer.alloc(100_000), // a small bomb against small maxPayloads
    Uint8Array.from([0xed, 0xa0, 0x80, 0x41]), // inflates to invalid UTF-8
    Uint8Array.from([0xe2, 0x82]), // inflates to a truncated sequence
    MASTER.subarray(0, 200),
  ];
  const samples = inputs.map(deflate);
  // Unflushed and final-block variants: still valid input for an inflater fed the tail.
  samples.push(zlib.deflateRawSync(Buffer.from('Hello')));
  samples.push(Buffer.from([0x00]), Buffer.from([0x02, 0x00]), Buffer.from([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]));
  return samples;
})();

const closeCodeArb: fc.Arbitrary<number> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999) },
  { weight: 2, arbitrary: fc.constantFrom(0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
);

const closePayloadArb: fc.Arbitrary<Uint8Array> = fc
  .tuple(closeCodeArb, fc.oneof(textArb.map((text) => Buffer.from(text, 'utf8') as Uint8Array), utf8ishArb))
  .map(([code, reason]) => {
    const payload = Buffer.alloc(2 + reason.length);
    payload.writeUInt16BE(code, 0);
    payload.set(reason, 2);
    return payload;
  });

const payloadArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 32 }) },
  { weight: 3, arbitrary: utf8ishArb },
  { weight: 2, arbitrary: closePayloadArb },
  { weight: 1, arbitrary: fc.constantFrom(...COMPRESSED_SAMPLES) },
  { weight: 1, arbitrary: fc.constantFrom(new Uint8Array(0), new Uint8Array(1), new Uint8Array(125), new Uint8Array(126)) },
  { weight: 1, arbitrary: sliceArb(100, 400) },
);

type LengthField =
  | { form: 'minimal' | '16' | '64' }
  /** A declared length that need not match the payload. */
  | { form: 'raw7'; value: number }
  | { form: 'raw16'; value: number }
  | { form: 'raw64'; high: number; low: number };

const lengthFieldArb: fc.Arbitrary<LengthField> = fc.oneof(
  fc.record({ form: fc.constant('raw7' as const), value: fc.nat({ max: 125 }) }),
  fc.record({ form: fc.constant('raw16' as const), value: fc.oneof(fc.nat({ max: 300 }), fc.nat({ max: 0xffff })) }),
  fc.record({
    form: fc.constant('raw64' as const),
    high: fc.oneof(fc.constant(0), fc.constantFrom(1, 0x1fffff, 0x200000, 0x7fffffff, 0x80000000, 0xffffffff), fc.integer({ min: 0, max: 0xffffffff })),
    low: fc.oneof(fc.nat({ max: 300 }), fc.integer({ min: 0, max: 0xffffffff })),
  }),
);

interface RawFrame {
  fin: boolean;
  /** RSV1..RSV3 as bits 2..0. */
  rsv: number;
  opcode: number;
  /** Masked as the reading role expects (clients mask, servers do not). */
  maskRight: boolean;
  length: LengthField;
  maskKey: number;
  payload: Uint8Array;
}

export function rawFrameArb(rsv1Weight: number): fc.Arbitrary<RawFrame> {
  // Mostly plausible headers, so that streams get past their first frame; each field sometimes wrong.
  return fc.record({
    fin: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    rsv: fc.oneof({ weight: 20, arbitrary: fc.constant(0) }, { weight: rsv1Weight, arbitrary: fc.constant(4) }, { weight: 1, arbitrary: fc.nat({ max: 7 }) }),
    opcode: fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(Opcode.TEXT, Opcode.BINARY) },
      { weight: 2, arbitrary: fc.constant(Opcode.CONTINUATION) },
      { weight: 2, arbitrary: fc.constantFrom(Opcode.PING, Opcode.PONG) },
      { weight: 1, arbitrary: fc.constant(Opcode.CLOSE) },
      { weight: 1, arbitrary: fc.nat({ max: 15 }) },
    ),
    maskRight: fc.oneof({ weight: 20, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    length: fc.oneof(
      { weight: 16, arbitrary: fc.constant<LengthField>({ form: 'minimal' }) },
      { weight: 1, arbitrary: fc.constantFrom<LengthField>({ form: '16' }, { form: '64' }) },
      { weight: 1, arbitrary: lengthFieldArb },
    ),
    maskKey: fc.integer({ min: 0, max: 0xffffffff }),
    payload: payloadArb,
  });
}

/** The length bytes of a header (7-bit field first, mask bit clear) for a payload of `payloadLength`. */
function lengthFieldBytes(field: LengthField, payloadLength: number): number[] {
  switch (field.form) {
    case 'minimal':
      return lengthFieldBytes(payloadLength <= 125 ? { form: 'raw7', value: payloadLength } : payloadLength <= 0xffff ? { form: '16' } : { form: '64' }, payloadLength);
    case '16':
      return lengthFieldBytes({ form: 'raw16', value: payloadLength & 0xffff }, payloadLength);
    case '64':
      return lengthFieldBytes({ form: 'raw64', high: Math.floor(payloadLength / 0x100000000), low: payloadLength >>> 0 }, payloadLength);
    case 'raw7':
      return [field.value];
    case 'raw16':
      return [126, field.value >>> 8, field.value & 0xff];
    case 'raw64': {
      const { high, low } = field;
      return [127, high >>> 24, (high >>> 16) & 0xff, (high >>> 8) & 0xff, high & 0xff, low >>> 24, (low >>> 16) & 0xff, (low >>> 8) & 0xff, low & 0xff];
    }
  }
}

/** Writes a frame by hand (independently of lib/'s encoder), masking the payload if the role expects it. */
function serializeRawFrame(frame: RawFrame, role: Role): Buffer {
  const masked = (role === 'server') === frame.maskRight;
  const payload = frame.payload;
  const header = [(frame.fin ? 0x80 : 0) | ((frame.rsv & 7) << 4) | (frame.opcode & 0x0f), ...lengthFieldBytes(frame.length, payload.length)];
  if (masked) header[1] = header[1]! | 0x80;
  const key = [frame.maskKey >>> 24, (frame.maskKey >>> 16) & 0xff, (frame.maskKey >>> 8) & 0xff, frame.maskKey & 0xff];
  if (masked) header.push(...key);
  const out = Buffer.allocUnsafe(header.length + payload.length);
  out.set(header, 0);
  for (let i = 0; i < payload.length; i++) out[header.length + i] = masked ? payload[i]! ^ key[i & 3]! : payload[i]!;
  return out;
}

export type Wire =
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'frames'; frames: RawFrame[]; garbage: { at: number; bytes: Uint8Array } | null };

export function wireArb(rsv1Weight: number): fc.Arbitrary<Wire> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('bytes' as const), bytes: fc.uint8Array({ maxLength: 64 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('bytes' as const), bytes: sliceArb(0, 600) }) },
    {
      weight: 8,
      arbitrary: fc.record({
        kind: fc.constant('frames' as const),
        frames: fc.array(rawFrameArb(rsv1Weight), { maxLength: 6 }),
        garbage: fc.oneof(
          { weight: 3, arbitrary: fc.constant(null) },
          { weight: 1, arbitrary: fc.record({ at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }) },
        ),
      }),
    },
  );
}

export function wireBytes(wire: Wire, role: Role): Uint8Array {
  if (wire.kind === 'bytes') return wire.bytes;
  const stream = Buffer.concat(wire.frames.map((frame) => serializeRawFrame(frame, role)));
  if (wire.garbage === null) return stream;
  const at = wire.garbage.at % (stream.length + 1);
  return Buffer.concat([stream.subarray(0, at), wire.garbage.bytes, stream.subarray(at)]);
}

export const maxPayloadArb: fc.Arbitrary<number> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(DEFAULT_MAX_PAYLOAD) },
  { weight: 1, arbitrary: fc.nat({ max: 300 }) },
);

// ---------------------------------------------------------------------------------------------
// Valid streams: messages (fragmented any way), control frames between fragments, a close frame.

type ControlSpec = { opcode: typeof Opcode.PING | typeof Opcode.PONG; payload: Uint8Array };

type MessageSpec = {
  payload: { kind: 'text'; text: string; encodeAsText: boolean } | { kind: 'binary'; bytes: Uint8Array };
  /** Fragment boundaries in payload bytes (modulo length + 1; duplicates give empty fragments). */
  cuts: number[];
  /** Control frames sent after fragment `after` (modulo the fragment count). */
  controls: Array<{ after: number; control: ControlSpec }>;
};

type ItemSpec = { item: 'message'; message: MessageSpec } | { item: 'control'; control: ControlSpec };

export interface StreamSpec {
  role: Role;
  items: ItemSpec[];
  close: { code: number | null; reason: string } | null;
  /** Bytes after the close frame, which must be ignored. */
  trailing: Uint8Array;
}

const controlArb: fc.Arbitrary<ControlSpec> = fc.record({
  opcode: fc.constantFrom(Opcode.PING, Opcode.PONG),
  payload: controlPayloadArb,
});

const messageArb: fc.Arbitrary<MessageSpec> = fc.record({
  payload: fc.oneof(
    fc.record({ kind: fc.constant('text' as const), text: textArb, encodeAsText: fc.boolean() }),
    fc.record({ kind: fc.constant('binary' as const), bytes: binaryArb }),
  ),
  cuts: fc.oneof({ weight: 2, arbitrary: fc.constant<number[]>([]) }, { weight: 3, arbitrary: fc.array(fc.nat({ max: 0xffff }), { maxLength: 6 }) }),
  controls: fc.oneof(
    { weight: 3, arbitrary: fc.constant<Array<{ after: number; control: ControlSpec }>>([]) },
    { weight: 1, arbitrary: fc.array(fc.record({ after: fc.nat({ max: 8 }), control: controlArb }), { maxLength: 3 }) },
  ),
});

const closeSpecArb = fc.oneof(
  { weight: 1, arbitrary: fc.constant({ code: null, reason: '' }) },
  {
    weight: 4,
    arbitrary: fc.record({
      code: fc.oneof(fc.constantFrom(1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014), fc.integer({ min: 3000, max: 4999 })),
      reason: textArb,
    }),
  },
);

export const streamSpecArb: fc.Arbitrary<StreamSpec> = fc.record({
  role: roleArb,
  items: fc.array(
    fc.oneof(
      { weight: 3, arbitrary: messageArb.map((message): ItemSpec => ({ item: 'message', message })) },
      { weight: 1, arbitrary: controlArb.map((control): ItemSpec => ({ item: 'control', control })) },
    ),
    { maxLength: 5 },
  ),
  close: fc.option(closeSpecArb, { freq: 3, nil: null }),
  trailing: fc.uint8Array({ maxLength: 12 }),
});

/** A stream's frames (each its own buffer) and the events reading it must give. */
export interface BuiltStream {
  frames: Buffer[];
  /** After the close frame; not part of `frames` so frame mutations leave it alone. */
  trailing: Buffer;
  expected: WireEvent[];
}

/** A Buffer over the same bytes (no copy: generated payloads are never written to). */
function bufferView(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function fragmentsOf(payload: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const sorted = cuts.map((cut) => cut % (payload.length + 1)).sort((a, b) => a - b);
  const bounds = [0, ...sorted, payload.length];
  const fragments: Uint8Array[] = [];
  for (let k = 0; k + 1 < bounds.length; k++) fragments.push(payload.subarray(bounds[k]!, bounds[k + 1]!));
  return fragments;
}

/** Encodes a stream with lib/'s encoder (encodeFrame, encodeTextFrame, encodeClosePayload). */
export function buildStream(spec: StreamSpec): BuiltStream {
  // A server reads masked frames: the writer is a client.
  const masked = spec.role === 'server';
  const frames: Buffer[] = [];
  const expected: WireEvent[] = [];
  const control = (c: ControlSpec): void => {
    frames.push(encodeFrame(c.opcode, c.payload, { masked }));
    expected.push({ type: c.opcode === Opcode.PING ? 'ping' : 'pong', bytes: Buffer.from(c.payload) });
  };
  for (const item of spec.items) {
    if (item.item === 'control') {
      control(item.control);
      continue;
    }
    const message = item.message;
    const body = message.payload;
    const opcode = body.kind === 'text' ? Opcode.TEXT : Opcode.BINARY;
    const payload = body.kind === 'text' ? Buffer.from(body.text, 'utf8') : body.bytes;
    const fragments = fragmentsOf(payload, message.cuts);
    const last = fragments.length - 1;
    for (let k = 0; k <= last; k++) {
      const frameOpcode = k === 0 ? opcode : Opcode.CONTINUATION;
      if (last === 0 && body.kind === 'text' && body.encodeAsText) {
        frames.push(encodeTextFrame(Opcode.TEXT, body.text, { masked }));
      } else {
        frames.push(encodeFrame(frameOpcode, fragments[k]!, { masked, fin: k === last }));
      }
      if (k === last) {
        expected.push(body.kind === 'text' ? { type: 'text', text: body.text } : { type: 'binary', bytes: bufferView(body.bytes) });
      }
      for (const inner of message.controls) if (inner.after % fragments.length === k) control(inner.control);
    }
  }
  let trailing = Buffer.alloc(0);
  if (spec.close !== null) {
    const body = encodeClosePayload(spec.close.code, spec.close.reason);
    frames.push(encodeFrame(Opcode.CLOSE, body, { masked }));
    // The reason is cut to 123 bytes on a character boundary by encodeClosePayload.
    expected.push({ type: 'close', code: spec.close.code, reason: body.subarray(2).toString('utf8') });
    trailing = Buffer.from(spec.trailing);
  }
  return { frames, trailing, expected };
}

function streamBytes(built: BuiltStream): Buffer {
  return Buffer.concat([...built.frames, built.trailing]);
}

// ---------------------------------------------------------------------------------------------
// Mutations of valid streams.

type FrameMutation =
  | { kind: 'length'; frame: number; length: LengthField }
  | { kind: 'byte0'; frame: number; value: number }
  | { kind: 'maskBit'; frame: number }
  | { kind: 'drop'; frame: number }
  | { kind: 'duplicate'; frame: number }
  | { kind: 'swap'; frame: number; other: number };

type ByteMutation =
  | { kind: 'flip'; pos: number; bit: number }
  | { kind: 'set'; pos: number; value: number }
  | { kind: 'insert'; pos: number; bytes: Uint8Array }
  | { kind: 'delete'; pos: number; count: number }
  | { kind: 'truncate'; pos: number };

const frameMutationArb: fc.Arbitrary<FrameMutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('length' as const), frame: fc.nat(), length: lengthFieldArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('byte0' as const), frame: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('maskBit' as const), frame: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), frame: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), frame: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('swap' as const), frame: fc.nat(), other: fc.nat() }) },
);

const byteMutationArb: fc.Arbitrary<ByteMutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('flip' as const), pos: fc.nat(), bit: fc.nat({ max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('set' as const), pos: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('insert' as const), pos: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), pos: fc.nat(), count: fc.integer({ min: 1, max: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), pos: fc.nat() }) },
);

export interface MutationSpec {
  frameMutations: FrameMutation[];
  byteMutations: ByteMutation[];
}

export const mutationsArb: fc.Arbitrary<MutationSpec> = fc
  .record({
    frameMutations: fc.array(frameMutationArb, { maxLength: 3 }),
    byteMutations: fc.array(byteMutationArb, { maxLength: 4 }),
  })
  .filter((m) => m.frameMutations.length + m.byteMutations.length > 0);

/** A frame's header length, from its second byte. */
function frameHeaderLength(frame: Buffer): number {
  if (frame.length < 2) return frame.length;
  const length7 = frame[1]! & 0x7f;
  return 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) + (frame[1]! & 0x80 ? 4 : 0);
}

function rewriteLength(frame: Buffer, field: LengthField): Buffer {
  const headerLength = frameHeaderLength(frame);
  if (frame.length < headerLength) return frame;
  const masked = (frame[1]! & 0x80) !== 0;
  const maskKey = masked ? frame.subarray(headerLength - 4, headerLength) : Buffer.alloc(0);
  const payload = frame.subarray(headerLength);
  const lengthBytes = lengthFieldBytes(field, payload.length);
  if (masked) lengthBytes[0] = lengthBytes[0]! | 0x80;
  return Buffer.concat([frame.subarray(0, 1), Buffer.from(lengthBytes), maskKey, payload]);
}

export function applyMutations(built: BuiltStream, mutations: MutationSpec): Buffer {
  const frames = built.frames.slice();
  for (const m of mutations.frameMutations) {
    if (frames.length === 0) break;
    const i = m.frame % frames.length;
    switch (m.kind) {
      case 'length':
        frames[i] = rewriteLength(frames[i]!, m.length);
        break;
      case 'byte0': {
        const copy = Buffer.from(frames[i]!);
        copy[0] = m.value;
        frames[i] = copy;
        break;
      }
      case 'maskBit': {
        const copy = Buffer.from(frames[i]!);
        copy[1] = copy[1]! ^ 0x80;
        frames[i] = copy;
        break;
      }
      case 'drop':
        frames.splice(i, 1);
        break;
      case 'duplicate':
        frames.splice(i, 0, frames[i]!);
        break;
      case 'swap': {
        const j = m.other % frames.length;
        [frames[i], frames[j]] = [frames[j]!, frames[i]!];
        break;
      }
    }
  }
  let bytes = Buffer.concat([...frames, built.trailing]);
  for (const m of mutations.byteMutations) {
    const n = bytes.length;
    switch (m.kind) {
      case 'flip':
        if (n > 0) bytes[m.pos % n] = bytes[m.pos % n]! ^ (1 << m.bit);
        break;
      case 'set':
        if (n > 0) bytes[m.pos % n] = m.value;
        break;
      case 'insert': {
        const at = m.pos % (n + 1);
        bytes = Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)]);
        break;
      }
      case 'delete': {
        const at = m.pos % (n + 1);
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + m.count)]);
        break;
      }
      case 'truncate':
        bytes = bytes.subarray(0, m.pos % (n + 1));
        break;
    }
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Property registry.

export interface FuzzProperty {
  name: string;
  summary: string;
  /** Share of a long run's inputs (relative to the other properties' weights). */
  weight: number;
  /** Inputs in the bounded run of `npm test`. */
  bounded: number;
  create(): fc.IRawProperty<any, boolean>;
}

function withContext(context: () => string, check: () => void): void {
  try {
    check();
  } catch (error) {
    if (error instanceof FuzzFailure) throw new FuzzFailure(`${error.message}\n  ${context()}`);
    throw new FuzzFailure(`threw ${(error as Error)?.stack ?? String(error)}\n  ${context()}`);
  }
}

async function withContextAsync(context: () => string, check: () => Promise<void>): Promise<void> {
  try {
    await check();
  } catch (error) {
    if (error instanceof FuzzFailure) throw new FuzzFailure(`${error.message}\n  ${context()}`);
    throw new FuzzFailure(`threw ${(error as Error)?.stack ?? String(error)}\n  ${context()}`);
  }
}

/** 1. Arbitrary bytes never make the reader throw: messages, or one error with 1002/1007/1009. */
const parserArbitrary: FuzzProperty = {
  name: 'parser-arbitrary-bytes',
  summary: 'MessageReader (no extension), both roles, arbitrary bytes and chunkings: no throw; at most one protocol error (1002/1007/1009), nothing after it or after a close',
  weight: 20,
  bounded: 800,
  create: () =>
    fc.property(roleArb, maxPayloadArb, wireArb(1), chunkingArb, (role, maxPayload, wire, chunking) => {
      tick();
      const bytes = wireBytes(wire, role);
      const chunks = split(bytes, chunking);
      withContext(
        () => `role ${role}, maxPayload ${maxPayload}, stream ${hexOf(bytes, 200)}, ${describeChunks(chunks)}`,
        () => checkOutcome(readChunks(chunks, { role, maxPayload }), maxPayload),
      );
    }),
};

/** 1 with permessage-deflate: RSV1 allowed, compressed messages inflated by a real PerMessageDeflate. */
const parserArbitraryDeflate: FuzzProperty = {
  name: 'parser-arbitrary-bytes-deflate',
  summary: 'MessageReader with a real PerMessageDeflate, arbitrary bytes (RSV1-heavy, real compressed payloads): same invariants, and the same events fed whole or chunked',
  weight: 6,
  bounded: 250,
  create: () =>
    fc.asyncProperty(roleArb, maxPayloadArb, fc.boolean(), wireArb(6), chunkingArb, async (role, maxPayload, noContextTakeover, wire, chunking) => {
      tick();
      const bytes = wireBytes(wire, role);
      const chunks = split(bytes, chunking);
      const config = { role, maxPayload, noContextTakeover };
      await withContextAsync(
        () => `role ${role}, maxPayload ${maxPayload}, noContextTakeover ${noContextTakeover}, stream ${hexOf(bytes, 200)}, ${describeChunks(chunks)}`,
        async () => {
          const chunked = await readChunksDeflate(chunks, config);
          checkOutcome(chunked, maxPayload);
          const whole = await readChunksDeflate(split(bytes, { kind: 'whole' }), config);
          const difference = compareEvents(chunked.events, whole.events);
          if (difference !== null) fail(`chunked and whole reads differ: ${difference}\n  chunked: ${describeEvents(chunked.events)}\n  whole: ${describeEvents(whole.events)}`);
        },
      );
    }),
};

/** 2. encode → parse gives back the messages and control frames, in order, with no error. */
const roundTrip: FuzzProperty = {
  name: 'round-trip',
  summary: 'encodeFrame/encodeTextFrame → MessageReader: arbitrary text (astral included) and binary messages, both roles, any fragmentation, pings/pongs between fragments, a close frame with ignored trailing bytes, any chunking: identical events in order, no error',
  weight: 20,
  bounded: 800,
  create: () =>
    fc.property(streamSpecArb, chunkingArb, (spec, chunking) => {
      tick();
      const built = buildStream(spec);
      const bytes = streamBytes(built);
      const chunks = split(bytes, chunking);
      withContext(
        () => `role ${spec.role}, stream ${hexOf(bytes, 200)}, ${describeChunks(chunks)}`,
        () => {
          const outcome = readChunks(chunks, { role: spec.role, maxPayload: DEFAULT_MAX_PAYLOAD });
          const difference = compareEvents(outcome.events, built.expected);
          if (difference !== null) fail(`${difference}\n  got ${describeEvents(outcome.events)}\n  expected ${describeEvents(built.expected)}`);
          checkOutcome(outcome, DEFAULT_MAX_PAYLOAD);
        },
      );
    }),
};

/** 2 with permessage-deflate: real compression on the sending side, real inflation on the reading side. */
/** How a sending peer compresses each message of a round-trip-deflate input. */
type DeflateSender =
  /** lib/'s PerMessageDeflate.compress: sync-flushed, trailer removed, context kept unless told. */
  | { style: 'ours'; noContextTakeover: boolean; windowBits: number }
  /**
   * RFC 7692 §7.2.3.5: "implementors may choose to flush data using DEFLATE blocks with BFINAL set
   * to 1", optionally followed by the 0x00 octet of the RFC's example. Each message is then a
   * complete deflate stream of its own; the reader may have agreed to context takeover or not.
   */
  | { style: 'bfinal'; padding: boolean; receiverNoContextTakeover: boolean };

/**
 * Encodes a stream whose messages are compressed by `sender` (some sent uncompressed), with
 * fragments and control frames as in buildStream. Returns the bytes and the expected events.
 */
async function buildDeflateStream(spec: StreamSpec, compressFlags: readonly boolean[], sender: DeflateSender): Promise<{ bytes: Buffer; expected: WireEvent[] }> {
  const masked = spec.role === 'server';
  const deflater = sender.style === 'ours' ? new PerMessageDeflate(deflateParams(false, sender.noContextTakeover, sender.windowBits), DEFAULT_MAX_PAYLOAD) : null;
  const compress = (data: Uint8Array): Promise<Buffer> => {
    if (deflater === null) {
      const final = zlib.deflateRawSync(data);
      return Promise.resolve(sender.style === 'bfinal' && sender.padding ? Buffer.concat([final, Buffer.from([0x00])]) : final);
    }
    return new Promise((resolve, reject) => deflater.compress(data, (error, result) => (error === null ? resolve(result!) : reject(error))));
  };
  const frames: Buffer[] = [];
  const expected: WireEvent[] = [];
  const control = (c: ControlSpec): void => {
    frames.push(encodeFrame(c.opcode, c.payload, { masked }));
    expected.push({ type: c.opcode === Opcode.PING ? 'ping' : 'pong', bytes: Buffer.from(c.payload) });
  };
  try {
    let m = 0;
    for (const item of spec.items) {
      if (item.item === 'control') {
        control(item.control);
        continue;
      }
      const message = item.message;
      const body = message.payload;
      const opcode = body.kind === 'text' ? Opcode.TEXT : Opcode.BINARY;
      const plain = body.kind === 'text' ? Buffer.from(body.text, 'utf8') : body.bytes;
      const compressed = compressFlags[m++ % compressFlags.length]!;
      const payload = compressed ? await compress(plain) : plain;
      const fragments = fragmentsOf(payload, message.cuts);
      const last = fragments.length - 1;
      for (let k = 0; k <= last; k++) {
        frames.push(encodeFrame(k === 0 ? opcode : Opcode.CONTINUATION, fragments[k]!, { masked, fin: k === last, rsv1: compressed && k === 0 }));
        if (k === last) expected.push(body.kind === 'text' ? { type: 'text', text: body.text } : { type: 'binary', bytes: bufferView(plain) });
        for (const inner of message.controls) if (inner.after % fragments.length === k) control(inner.control);
      }
    }
  } finally {
    deflater?.close();
  }
  return { bytes: Buffer.concat(frames), expected };
}

function deflateRoundTrip(name: string, summary: string, weight: number, bounded: number, senderArb: fc.Arbitrary<DeflateSender>): FuzzProperty {
  return {
    name,
    summary,
    weight,
    bounded,
    create: () =>
      fc.asyncProperty(streamSpecArb, fc.array(fc.boolean(), { minLength: 1, maxLength: 5 }), senderArb, chunkingArb, async (spec, compressFlags, sender, chunking) => {
        tick();
        const { bytes, expected } = await buildDeflateStream(spec, compressFlags, sender);
        const noContextTakeover = sender.style === 'ours' ? sender.noContextTakeover : sender.receiverNoContextTakeover;
        const chunks = split(bytes, chunking);
        await withContextAsync(
          () => `role ${spec.role}, sender ${JSON.stringify(sender)}, reader noContextTakeover ${noContextTakeover}, stream ${hexOf(bytes, 200)}, ${describeChunks(chunks)}`,
          async () => {
            const outcome = await readChunksDeflate(chunks, { role: spec.role, maxPayload: DEFAULT_MAX_PAYLOAD, noContextTakeover });
            const difference = compareEvents(outcome.events, expected);
            if (difference !== null) fail(`${difference}\n  got ${describeEvents(outcome.events)}\n  expected ${describeEvents(expected)}`);
            checkOutcome(outcome, DEFAULT_MAX_PAYLOAD);
          },
        );
      }),
  };
}

/** 2 with permessage-deflate: real compression on the sending side, real inflation on the reading side. */
const roundTripDeflate = deflateRoundTrip(
  'round-trip-deflate',
  'PerMessageDeflate.compress → fragmented RSV1 frames → MessageReader with PerMessageDeflate (context takeover on/off, window bits 8–15, some messages uncompressed), any chunking: identical events',
  2,
  100,
  fc.record({ style: fc.constant('ours' as const), noContextTakeover: fc.boolean(), windowBits: fc.integer({ min: 8, max: 15 }) }),
);

/** RFC 7692 §7.2.3.5: a peer may flush with BFINAL=1 blocks; every message must still come through. */
const roundTripDeflateBfinal = deflateRoundTrip(
  'round-trip-deflate-bfinal',
  'messages compressed as BFINAL=1 deflate streams (RFC 7692 §7.2.3.5, with or without the trailing 0x00 of its example), mixed with uncompressed ones, reader with or without context takeover: identical events',
  1,
  60,
  fc.record({ style: fc.constant('bfinal' as const), padding: fc.boolean(), receiverNoContextTakeover: fc.boolean() }),
);

/** 3. Mutated valid streams: never a throw; parses, or one error with a valid code, then nothing. */
const mutations: FuzzProperty = {
  name: 'mutated-streams',
  summary: 'valid streams with frame-level (length fields, first byte, mask bit, drop/duplicate/swap) and byte-level (bit flips, set, insert, delete, truncate) mutations, any chunking: same invariants as arbitrary bytes',
  weight: 20,
  bounded: 800,
  create: () =>
    fc.property(streamSpecArb, mutationsArb, maxPayloadArb, chunkingArb, (spec, mutationSpec, maxPayload, chunking) => {
      tick();
      const bytes = applyMutations(buildStream(spec), mutationSpec);
      const chunks = split(bytes, chunking);
      withContext(
        () => `role ${spec.role}, maxPayload ${maxPayload}, stream ${hexOf(bytes, 200)}, ${describeChunks(chunks)}`,
        () => checkOutcome(readChunks(chunks, { role: spec.role, maxPayload }), maxPayload),
      );
    }),
};

/** 4. Chunking invariance: any split of a stream gives exactly the events of reading it whole. */
const chunkingInvariance: FuzzProperty = {
  name: 'chunking-invariance',
  summary: 'valid, mutated and arbitrary streams: read in arbitrary chunks (unaligned offsets, empty chunks, byte by byte) they give exactly the events of the whole stream in one chunk',
  weight: 16,
  bounded: 600,
  create: () =>
    fc.property(
      fc.oneof(
        { weight: 2, arbitrary: streamSpecArb.map((spec) => ({ role: spec.role, bytes: streamBytes(buildStream(spec)) as Uint8Array })) },
        { weight: 1, arbitrary: fc.tuple(streamSpecArb, mutationsArb).map(([spec, m]) => ({ role: spec.role, bytes: applyMutations(buildStream(spec), m) as Uint8Array })) },
        { weight: 1, arbitrary: fc.tuple(roleArb, wireArb(1)).map(([role, wire]) => ({ role, bytes: wireBytes(wire, role) })) },
      ),
      maxPayloadArb,
      chunkingArb,
      ({ role, bytes }, maxPayload, chunking) => {
        tick();
        const chunks = split(bytes, chunking);
        withContext(
          () => `role ${role}, maxPayload ${maxPayload}, stream ${hexOf(bytes, 200)}, ${describeChunks(chunks)}`,
          () => {
            const whole = readChunks(split(bytes, { kind: 'whole' }), { role, maxPayload });
            const chunked = readChunks(chunks, { role, maxPayload });
            const difference = compareEvents(chunked.events, whole.events);
            if (difference !== null) fail(`chunked and whole reads differ: ${difference}\n  chunked: ${describeEvents(chunked.events)}\n  whole: ${describeEvents(whole.events)}`);
            checkOutcome(chunked, maxPayload);
          },
        );
      },
    ),
};

/** Completions that make any completable UTF-8 prefix valid (A0 suits E0 and F0; 80 the rest). */
const UTF8_COMPLETIONS: readonly Buffer[] = [[0x80], [0xa0], [0x80, 0x80], [0xa0, 0x80], [0x80, 0x80, 0x80], [0xa0, 0x80, 0x80]].map((c) => Buffer.from(c));

/** True if `bytes` begins some valid UTF-8 string (the oracle is Node's isUtf8). */
function isCompletable(bytes: Uint8Array): boolean {
  if (isUtf8(bytes)) return true;
  for (const tail of UTF8_COMPLETIONS) if (isUtf8(Buffer.concat([bytes, tail]))) return true;
  return false;
}

/** 5. Utf8Validator against Node's isUtf8, for every split. */
const utf8Validator: FuzzProperty = {
  name: 'utf8-validator',
  summary: 'Utf8Validator.write/finish over arbitrary splits of arbitrary and UTF-8-like bytes: each write returns true exactly when the bytes so far begin valid UTF-8 (isUtf8 oracle), finish() equals isUtf8(all); a reused validator behaves like a fresh one',
  weight: 14,
  bounded: 800,
  create: () =>
    fc.property(
      fc.oneof(utf8ishArb, fc.uint8Array({ maxLength: 32 })),
      fc.array(fc.nat({ max: 0xffff }), { maxLength: 8 }),
      fc.option(utf8ishArb, { nil: null }),
      (bytes, rawCuts, previous) => {
        tick();
        const validator = new Utf8Validator();
        // A validator reused after a message that ended (finish) must start afresh.
        if (previous !== null) {
          let ok = true;
          for (let i = 0; i < previous.length && ok; i++) ok = validator.write(previous, i, i + 1);
          if (ok) validator.finish();
          else validator.reset();
        }
        const cuts = rawCuts.map((cut) => cut % (bytes.length + 1)).sort((a, b) => a - b);
        const bounds = [0, ...cuts, bytes.length];
        // Writes are given the whole buffer with a range, as the assembler does.
        const buffer = Buffer.from(bytes);
        for (let k = 0; k + 1 < bounds.length; k++) {
          const end = bounds[k + 1]!;
          const result = validator.write(buffer, bounds[k]!, end);
          const expected = isCompletable(bytes.subarray(0, end));
          if (result !== expected) {
            fail(`write(${bounds[k]}, ${end}) returned ${result}, but ${hexOf(bytes.subarray(0, end), 64)} ${expected ? 'begins' : 'cannot begin'} valid UTF-8 (cuts ${cuts.join(',')})`);
          }
          if (!result) return;
        }
        const finished = validator.finish();
        if (finished !== isUtf8(bytes)) fail(`finish() returned ${finished}, isUtf8 says ${isUtf8(bytes)} for ${hexOf(bytes, 64)} (cuts ${cuts.join(',')})`);
      },
    ),
};

// --- HTTP heads ---------------------------------------------------------------------------------

const HTTP_CHARS = [...'HTTP/1.01 2345679:;, \t\r\n\r\n\0aAzZ-_~"\\=éÿ\x7f\x01'];
const httpStringArb = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(...HTTP_CHARS), maxLength });

const headerNameArb = fc.oneof(
  fc.constantFrom('Upgrade', 'Connection', 'Sec-WebSocket-Accept', 'Sec-WebSocket-Protocol', 'Sec-WebSocket-Extensions', 'Content-Length', 'X-A'),
  httpStringArb(12),
);

const headerValueArb = fc.oneof(
  fc.constantFrom('websocket', 'Upgrade', 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=', 'permessage-deflate', 'chat, superchat', ''),
  httpStringArb(24),
  fc.string({ unit: 'binary-ascii', maxLength: 24 }),
);

/** Response heads: status line and headers from near-valid pieces, a terminator (or not), then WebSocket bytes. */
const responseHeadArb: fc.Arbitrary<Uint8Array> = fc
  .record({
    status: fc.oneof(
      fc.constantFrom('HTTP/1.1 101 Switching Protocols', 'HTTP/1.1 101', 'HTTP/1.0 200 OK', 'HTTP/2 101 x', 'http/1.1 101 x', 'HTTP/1.1 1010 x'),
      httpStringArb(30),
    ),
    headers: fc.array(fc.tuple(headerNameArb, fc.constantFrom(': ', ':', ' : ', ':\t', ''), headerValueArb), { maxLength: 6 }),
    lineEnd: fc.constantFrom('\r\n', '\r\n', '\r\n', '\n', '\r'),
    terminator: fc.constantFrom('\r\n\r\n', '\r\n\r\n', '\r\n', '\n\n', '', '\r\n\r'),
    rest: fc.uint8Array({ maxLength: 16 }),
  })
  .map(({ status, headers, lineEnd, terminator, rest }) => {
    const text = [status, ...headers.map(([name, sep, value]) => `${name}${sep}${value}`)].join(lineEnd) + terminator;
    return Buffer.concat([Buffer.from(text, 'latin1'), rest]);
  });

/** 6a. HttpResponseHeadReader: only HttpHeadError, never more than maxBytes held, chunking-invariant. */
const responseHeadReader: FuzzProperty = {
  name: 'http-response-head',
  summary: 'HttpResponseHeadReader on arbitrary bytes and near-valid heads in arbitrary chunks: throws nothing but HttpHeadError, never holds more than maxBytes, the same head/rest/error as when fed whole',
  weight: 8,
  bounded: 500,
  create: () =>
    fc.property(
      fc.oneof({ weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }) }, { weight: 3, arbitrary: responseHeadArb }),
      fc.oneof(fc.constant(16 * 1024), fc.integer({ min: 1, max: 200 })),
      chunkingArb,
      (bytes, maxBytes, chunking) => {
        tick();
        type Result = { kind: 'head'; head: unknown; rest: Buffer } | { kind: 'error' } | { kind: 'pending' };
        const feed = (chunks: Buffer[]): Result => {
          const reader = new HttpResponseHeadReader(maxBytes);
          for (let k = 0; k < chunks.length; k++) {
            let result: ReturnType<HttpResponseHeadReader['push']>;
            try {
              result = reader.push(chunks[k]!);
            } catch (error) {
              if (error instanceof HttpHeadError) return { kind: 'error' };
              return fail(`push threw ${(error as Error)?.stack ?? String(error)}`);
            }
            const held = (reader as unknown as { received: Buffer }).received.length;
            if (held > maxBytes) fail(`the reader holds ${held} bytes, over maxBytes ${maxBytes}`);
            if (result !== null) {
              const { head, rest } = result;
              if (!(head.statusCode >= 0 && head.statusCode <= 999)) fail(`status ${head.statusCode}`);
              for (const [name, values] of head.headers) {
                if (!isToken(name) || name !== name.toLowerCase()) fail(`header name ${JSON.stringify(name)}`);
                for (const value of values) if (/[\r\n\0]|^[ \t]|[ \t]$/.test(value)) fail(`header value ${JSON.stringify(value)}`);
              }
              return { kind: 'head', head, rest: Buffer.concat([rest, ...chunks.slice(k + 1)]) };
            }
          }
          return { kind: 'pending' };
        };
        const chunks = split(bytes, chunking);
        withContext(
          () => `maxBytes ${maxBytes}, bytes ${JSON.stringify(Buffer.from(bytes).toString('latin1'))}, ${describeChunks(chunks)}`,
          () => {
            const whole = feed(split(bytes, { kind: 'whole' }));
            const chunked = feed(chunks);
            if (whole.kind !== chunked.kind) fail(`fed whole: ${whole.kind}, in chunks: ${chunked.kind}`);
            if (whole.kind === 'head' && chunked.kind === 'head') {
              if (!whole.rest.equals(chunked.rest)) fail('the bytes after the head differ between whole and chunked');
              if (JSON.stringify([...(whole.head as { headers: Map<string, string[]> }).headers]) !== JSON.stringify([...(chunked.head as { headers: Map<string, string[]> }).headers])) {
                fail('the heads differ between whole and chunked');
              }
              const end = Buffer.from(bytes).indexOf('\r\n\r\n');
              if (end === -1 || end + 4 > maxBytes) fail(`a head was returned for bytes whose head ends at ${end} (maxBytes ${maxBytes})`);
              if (!whole.rest.equals(Buffer.from(bytes).subarray(end + 4))) fail('rest is not the bytes after the first CRLFCRLF');
            }
          },
        );
      },
    ),
};

const extensionCharArb = fc.constantFrom(...'permessage-deflate;client_max_window_bits=15, \t"\\,;=x-1089'.split(''), '\0', '\r', 'é', '😀');
const extensionHeaderArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 2, arbitrary: fc.string({ unit: extensionCharArb, maxLength: 60 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
  {
    weight: 3,
    arbitrary: fc
      .array(
        fc.tuple(
          fc.constantFrom('permessage-deflate', 'permessage-deflate', 'x-webkit-deflate-frame', 'foo', ''),
          fc.array(
            fc.tuple(
              fc.constantFrom('server_no_context_takeover', 'client_no_context_takeover', 'server_max_window_bits', 'client_max_window_bits', 'bogus', ''),
              fc.option(fc.constantFrom('8', '9', '10', '15', '16', '7', '08', '015', '"10"', '"1 0"', '', 'x', '"', '"\\"'), { nil: null }),
            ),
            { maxLength: 4 },
          ),
        ),
        { maxLength: 3 },
      )
      .chain((elements) =>
        fc.constantFrom(', ', ',', ' ,', ',,').chain((comma) =>
          fc.constantFrom('; ', ';', ' ; ').map((semi) =>
            elements.map(([name, params]) => [name, ...params.map(([p, v]) => (v === null ? p : `${p}=${v}`))].join(semi)).join(comma),
          ),
        ),
      ),
  },
);

const tokenArb = fc.string({ unit: fc.constantFrom(...'!#$%&\'*+-.^_`|~09azAZ'.split('')), minLength: 1, maxLength: 8 });

/** 6b. parseExtensions: only ExtensionHeaderError; well-formed results; token offers round trip. */
const extensionsParser: FuzzProperty = {
  name: 'extensions-header',
  summary: 'parseExtensions on arbitrary strings throws nothing but ExtensionHeaderError and yields lower-case token names; serializeExtension → parseExtensions is the identity on token offers',
  weight: 5,
  bounded: 400,
  create: () =>
    fc.property(
      extensionHeaderArb,
      fc.array(fc.record({ name: tokenArb, params: fc.array(fc.tuple(tokenArb, fc.oneof(fc.constant(true as const), tokenArb)), { maxLength: 3 }) }), { maxLength: 3 }),
      (header, offers) => {
        tick();
        let parsed: ExtensionOffer[] | null = null;
        try {
          parsed = parseExtensions(header);
        } catch (error) {
          if (!(error instanceof ExtensionHeaderError)) fail(`parseExtensions(${JSON.stringify(header)}) threw ${(error as Error)?.stack ?? String(error)}`);
        }
        for (const offer of parsed ?? []) {
          if (!isToken(offer.name) || offer.name !== offer.name.toLowerCase()) fail(`extension name ${JSON.stringify(offer.name)} from ${JSON.stringify(header)}`);
          for (const [name] of offer.params) if (!isToken(name) || name !== name.toLowerCase()) fail(`parameter name ${JSON.stringify(name)} from ${JSON.stringify(header)}`);
        }
        const lowered: ExtensionOffer[] = offers.map((o) => ({ name: o.name.toLowerCase(), params: o.params.map(([n, v]) => [n.toLowerCase(), v] as [string, string | true]) }));
        const serialized = lowered.map(serializeExtension).join(', ');
        const reparsed = parseExtensions(serialized);
        if (JSON.stringify(reparsed) !== JSON.stringify(lowered)) fail(`${JSON.stringify(serialized)} parsed as ${JSON.stringify(reparsed)}`);
      },
    ),
};

const deflateOptionsArb: fc.Arbitrary<PerMessageDeflateOptions> = fc.record(
  {
    serverNoContextTakeover: fc.boolean(),
    clientNoContextTakeover: fc.boolean(),
    serverMaxWindowBits: fc.integer({ min: 8, max: 15 }),
    clientMaxWindowBits: fc.oneof(fc.boolean(), fc.integer({ min: 8, max: 15 })),
    threshold: fc.nat({ max: 2048 }),
    level: fc.integer({ min: 0, max: 9 }),
    memLevel: fc.integer({ min: 1, max: 9 }),
  },
  { requiredKeys: [] },
);

function checkParams(params: DeflateParams, where: string): void {
  for (const bits of [params.sendMaxWindowBits, params.receiveMaxWindowBits]) {
    if (!Number.isInteger(bits) || bits < 8 || bits > 15) fail(`${where}: window bits ${bits}`);
  }
}

/** 6d. Negotiation: no throws but NegotiationError, and a client accepts what a server answers it. */
const negotiation: FuzzProperty = {
  name: 'deflate-negotiation',
  summary: 'acceptClientOffers never throws on arbitrary headers and answers with a safe, parseable header; acceptServerResponse throws nothing but NegotiationError; a server answer to clientOffer(options) is accepted by acceptServerResponse with consistent context-takeover and window parameters',
  weight: 5,
  bounded: 400,
  create: () =>
    fc.property(fc.option(extensionHeaderArb, { nil: undefined }), deflateOptionsArb, fc.option(deflateOptionsArb, { nil: null }), deflateOptionsArb, (header, serverOptions, clientOptions, peerOptions) => {
      tick();
      const server = normalizeDeflateOptions(serverOptions, 'server')!;
      const client = clientOptions === null ? null : normalizeDeflateOptions(clientOptions, 'client')!;
      // Arbitrary client headers at the server.
      let answer: ReturnType<typeof acceptClientOffers>;
      try {
        answer = acceptClientOffers(header, server);
      } catch (error) {
        return fail(`acceptClientOffers(${JSON.stringify(header)}) threw ${(error as Error)?.stack ?? String(error)}`);
      }
      if (answer !== null) {
        if (!isValidHeaderValue(answer.response) || /[\r\n]/.test(answer.response)) fail(`unsafe response ${JSON.stringify(answer.response)}`);
        parseExtensions(answer.response);
        checkParams(answer.params, `acceptClientOffers(${JSON.stringify(header)})`);
      }
      // Arbitrary server headers at the client.
      if (header !== undefined) {
        try {
          const params = acceptServerResponse(header, client);
          if (params !== null) checkParams(params, `acceptServerResponse(${JSON.stringify(header)})`);
        } catch (error) {
          if (!(error instanceof NegotiationError)) fail(`acceptServerResponse(${JSON.stringify(header)}) threw ${(error as Error)?.stack ?? String(error)}`);
        }
      }
      // Our client against our server: the offer is accepted, the answer too, and both sides agree.
      const peer = normalizeDeflateOptions(peerOptions, 'peer')!;
      const offer = clientOffer(peer);
      const accepted = acceptClientOffers(offer, server);
      if (accepted === null) return fail(`the server declined our own offer ${JSON.stringify(offer)}`);
      let clientParams: DeflateParams | null;
      try {
        clientParams = acceptServerResponse(accepted.response, peer);
      } catch (error) {
        return fail(`the client refused the answer ${JSON.stringify(accepted.response)} to its offer ${JSON.stringify(offer)}: ${(error as Error).message}`);
      }
      if (clientParams === null) return fail(`the client read ${JSON.stringify(accepted.response)} as declined`);
      const serverParams = accepted.params;
      const context = `offer ${JSON.stringify(offer)}, answer ${JSON.stringify(accepted.response)}`;
      // Whoever resets its inflater per message needs a peer that resets its deflater per message.
      if (serverParams.receiveNoContextTakeover && !clientParams.sendNoContextTakeover) fail(`server resets its inflater, client keeps its deflate context: ${context}`);
      if (clientParams.receiveNoContextTakeover && !serverParams.sendNoContextTakeover) fail(`client resets its inflater, server keeps its deflate context: ${context}`);
      if (clientParams.sendMaxWindowBits > serverParams.receiveMaxWindowBits) fail(`client deflates with ${clientParams.sendMaxWindowBits} bits, server expects at most ${serverParams.receiveMaxWindowBits}: ${context}`);
      if (serverParams.sendMaxWindowBits > clientParams.receiveMaxWindowBits) fail(`server deflates with ${serverParams.sendMaxWindowBits} bits, client expects at most ${clientParams.receiveMaxWindowBits}: ${context}`);
    }),
};

const SAMPLE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

const requestHeaderValue = (valid: readonly string[]): fc.Arbitrary<string | undefined> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...valid) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: httpStringArb(30) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
  );

/** IncomingMessage-like objects: node:http's parser has run, so header values are strings. */
const fakeRequestArb = fc.record({
  method: fc.oneof({ weight: 4, arbitrary: fc.constant('GET') }, { weight: 1, arbitrary: fc.constantFrom('POST', 'get', 'HEAD', '') }, { weight: 1, arbitrary: httpStringArb(6) }),
  httpVersionMajor: fc.oneof({ weight: 4, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.nat({ max: 3 }) }),
  httpVersionMinor: fc.oneof({ weight: 4, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.nat({ max: 9 }) }),
  host: requestHeaderValue(['localhost', '127.0.0.1:8080', 'example.com']),
  upgrade: requestHeaderValue(['websocket', 'WebSocket', 'h2c, websocket', 'websocket2']),
  connection: requestHeaderValue(['Upgrade', 'keep-alive, Upgrade', 'upgrade', 'close']),
  key: requestHeaderValue([SAMPLE_KEY, ` ${SAMPLE_KEY} `, 'AAAAAAAAAAAAAAAAAAAAAA==', 'dGhlIHNhbXBsZSBub25jZQ', 'dGhlIHNhbXBsZSBub25jZQ=x', '=']),
  version: requestHeaderValue(['13', ' 13 ', '8', '13, 8', '']),
  protocol: requestHeaderValue(['chat', 'chat, superchat', 'chat,chat', 'a b', ',', 'chat, ']),
  extensions: fc.oneof(fc.constant(undefined), extensionHeaderArb),
  extra: fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }), { maxKeys: 3 }),
});

/** 6c. checkUpgradeRequest on arbitrary requests never throws; what it accepts is safe to echo. */
const upgradeRequestCheck: FuzzProperty = {
  name: 'upgrade-request-check',
  summary: 'checkUpgradeRequest on IncomingMessage-like objects built from arbitrary strings: never throws; refusals are 400/405/426; an accepted key is valid and offered subprotocols are unique tokens, so the 101 head holds no injected line',
  weight: 5,
  bounded: 400,
  create: () =>
    fc.property(fakeRequestArb, deflateOptionsArb, (r, serverOptions) => {
      tick();
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(r.extra)) headers[name.toLowerCase()] = value;
      const named: Array<[string, string | undefined]> = [
        ['host', r.host],
        ['upgrade', r.upgrade],
        ['connection', r.connection],
        ['sec-websocket-key', r.key],
        ['sec-websocket-version', r.version],
        ['sec-websocket-protocol', r.protocol],
        ['sec-websocket-extensions', r.extensions],
      ];
      for (const [name, value] of named) if (value !== undefined) headers[name] = value;
      const request = { method: r.method, httpVersionMajor: r.httpVersionMajor, httpVersionMinor: r.httpVersionMinor, headers } as unknown as IncomingMessage;
      let result: ReturnType<typeof checkUpgradeRequest>;
      try {
        result = checkUpgradeRequest(request);
      } catch (error) {
        return fail(`checkUpgradeRequest(${JSON.stringify(r)}) threw ${(error as Error)?.stack ?? String(error)}`);
      }
      if (isRefusal(result)) {
        if (![400, 405, 426].includes(result.status)) fail(`refused with status ${result.status}`);
        return;
      }
      if (!isValidKey(result.key)) fail(`accepted key ${JSON.stringify(result.key)}`);
      if (new Set(result.protocols).size !== result.protocols.length || !result.protocols.every(isToken)) fail(`offered protocols ${JSON.stringify(result.protocols)}`);
      const answer = acceptClientOffers(headers['sec-websocket-extensions'], normalizeDeflateOptions(serverOptions, 'server')!);
      const head = switchingProtocolsHead(result.key, result.protocols[0] ?? '', answer?.response ?? '');
      const lines = head.split('\r\n');
      const expectedLines = 4 + (result.protocols.length > 0 ? 1 : 0) + (answer !== null && answer.response !== '' ? 1 : 0) + 2;
      if (lines.length !== expectedLines || /[\0\n\r]/.test(lines.join(''))) fail(`101 head ${JSON.stringify(head)}`);
    }),
};

export const PROPERTIES: readonly FuzzProperty[] = [
  parserArbitrary,
  parserArbitraryDeflate,
  roundTrip,
  roundTripDeflate,
  roundTripDeflateBfinal,
  mutations,
  chunkingInvariance,
  utf8Validator,
  responseHeadReader,
  extensionsParser,
  negotiation,
  upgradeRequestCheck,
];
