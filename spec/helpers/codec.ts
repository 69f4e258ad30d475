// Shared helpers for the codec specs (spec/protocol, spec/handshake). Written independently of
// lib/ on purpose: the frame builder below is the tests' own reading of RFC 6455 §5.2.
import { isUtf8 } from 'node:buffer';
import type { FrameHandler } from '../../lib/protocol/frame-parser.js';

/** A deterministic PRNG (mulberry32): the same seed always gives the same sequence. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random integer in [min, max]. */
export function randomInt(rand: () => number, min: number, max: number): number {
  return min + Math.floor(rand() * (max - min + 1));
}

export function randomBytes(rand: () => number, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = Math.floor(rand() * 256);
  return bytes;
}

/** Bytes 0, 1, 2, ... 255, 0, 1, ... of the given length (easy to check by eye). */
export function patternBytes(length: number, seed = 0): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = (i + seed) & 0xff;
  return bytes;
}

export interface BuildFrameOptions {
  fin?: boolean;
  /** Individual RSV bits. */
  rsv1?: boolean;
  rsv2?: boolean;
  rsv3?: boolean;
  /** A 4-byte masking key: the frame is masked with it. */
  mask?: Uint8Array | readonly number[];
  /** Force a length encoding (default: the minimal one). */
  lengthBits?: 7 | 16 | 64;
  /** Write this value in the length field instead of the payload's length (64-bit encoding). */
  length64Override?: bigint;
}

/** Builds one frame byte by byte, as RFC 6455 §5.2 draws it. */
export function buildFrame(opcode: number, payload: Uint8Array | string = Buffer.alloc(0), options: BuildFrameOptions = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload);
  const fin = options.fin ?? true;
  const b0 = (fin ? 0x80 : 0) | (options.rsv1 ? 0x40 : 0) | (options.rsv2 ? 0x20 : 0) | (options.rsv3 ? 0x10 : 0) | (opcode & 0x0f);
  const maskBit = options.mask !== undefined ? 0x80 : 0;
  const bits = options.length64Override !== undefined ? 64 : (options.lengthBits ?? (data.length <= 125 ? 7 : data.length <= 0xffff ? 16 : 64));
  const parts: number[] = [b0];
  if (bits === 7) {
    if (data.length > 125) throw new Error('payload too long for a 7-bit length');
    parts.push(maskBit | data.length);
  } else if (bits === 16) {
    if (data.length > 0xffff) throw new Error('payload too long for a 16-bit length');
    parts.push(maskBit | 126, data.length >> 8, data.length & 0xff);
  } else {
    parts.push(maskBit | 127);
    let value = options.length64Override ?? BigInt(data.length);
    const bytes: number[] = [];
    for (let i = 0; i < 8; i++) {
      bytes.unshift(Number(value & 0xffn));
      value >>= 8n;
    }
    parts.push(...bytes);
  }
  if (options.mask !== undefined) {
    if (options.mask.length !== 4) throw new Error('a mask is 4 bytes');
    parts.push(...options.mask);
    const masked = Buffer.alloc(data.length);
    for (let i = 0; i < data.length; i++) masked[i] = data[i]! ^ options.mask[i % 4]!;
    return Buffer.concat([Buffer.from(parts), masked]);
  }
  return Buffer.concat([Buffer.from(parts), data]);
}

/** A close frame payload: 2-byte code, then the reason (bytes or UTF-8 text). */
export function closeBody(code: number, reason: Uint8Array | string = ''): Buffer {
  const head = Buffer.alloc(2);
  head.writeUInt16BE(code, 0);
  return Buffer.concat([head, typeof reason === 'string' ? Buffer.from(reason, 'utf8') : Buffer.from(reason)]);
}

/**
 * Every way the tests slice a byte string: whole, two chunks at every offset (1..n-1; or only at
 * the offsets `splitFilter` keeps), and one byte at a time. Each chunking gets a label for failure messages. The chunks of one chunking are
 * cut from one fresh copy, so a consumer that writes into its input (the frame parser unmasks in
 * place) never sees bytes another chunking already changed.
 */
export function* chunkings(data: Uint8Array, splitFilter?: (split: number) => boolean): Generator<{ label: string; chunks: Buffer[] }> {
  yield { label: 'whole', chunks: [Buffer.from(data)] };
  for (let split = 1; split < data.length; split++) {
    if (splitFilter !== undefined && !splitFilter(split)) continue;
    const copy = Buffer.from(data);
    yield { label: `split at ${split}`, chunks: [copy.subarray(0, split), copy.subarray(split)] };
  }
  if (data.length > 1) {
    const copy = Buffer.from(data);
    const chunks: Buffer[] = [];
    for (let i = 0; i < copy.length; i++) chunks.push(copy.subarray(i, i + 1));
    yield { label: 'one byte at a time', chunks };
  }
}

export type FrameEvent =
  | { type: 'header'; fin: boolean; rsv1: boolean; opcode: number; length: number }
  | { type: 'payload'; bytes: Buffer }
  | { type: 'end' };

/**
 * Records what a FrameParser reports. Payload callbacks are merged per frame (how they are
 * sliced depends on the chunking, the bytes do not), and copied at once since the parser may
 * reuse `data` afterwards.
 */
export class FrameRecorder implements FrameHandler {
  readonly events: FrameEvent[] = [];
  /** Payload bytes of the current frame, merged. */
  private pending: Buffer[] = [];
  /** Every (start, end) pair reported was inside its `data`. */
  rangeErrors = 0;

  onFrameHeader(fin: boolean, rsv1: boolean, opcode: number, length: number): void {
    this.flush();
    this.events.push({ type: 'header', fin, rsv1, opcode, length });
  }

  onFramePayload(data: Buffer, start: number, end: number): void {
    if (!(start >= 0 && start < end && end <= data.length)) this.rangeErrors++;
    this.pending.push(Buffer.from(data.subarray(start, end)));
  }

  onFrameEnd(): void {
    this.flush();
    this.events.push({ type: 'end' });
  }

  /** Events so far, with any payload not yet followed by a frame end. */
  snapshot(): FrameEvent[] {
    this.flush();
    return this.events.slice();
  }

  private flush(): void {
    if (this.pending.length > 0) {
      this.events.push({ type: 'payload', bytes: this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending) });
      this.pending = [];
    }
  }
}

/** What one frame is expected to produce in a FrameRecorder. */
export function frameEvents(fin: boolean, rsv1: boolean, opcode: number, payload: Uint8Array | string): FrameEvent[] {
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload);
  const events: FrameEvent[] = [{ type: 'header', fin, rsv1, opcode, length: bytes.length }];
  if (bytes.length > 0) events.push({ type: 'payload', bytes });
  events.push({ type: 'end' });
  return events;
}

/** Compares two event lists quickly (payloads with Buffer#equals). */
export function sameFrameEvents(a: readonly FrameEvent[], b: readonly FrameEvent[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.type !== y.type) return false;
    if (x.type === 'header' && y.type === 'header') {
      if (x.fin !== y.fin || x.rsv1 !== y.rsv1 || x.opcode !== y.opcode || x.length !== y.length) return false;
    } else if (x.type === 'payload' && y.type === 'payload') {
      if (!x.bytes.equals(y.bytes)) return false;
    }
  }
  return true;
}

/** Event lists in a form chai can diff readably (payloads as hex, long ones abbreviated). */
export function describeFrameEvents(events: readonly FrameEvent[]): unknown[] {
  return events.map((event) => {
    if (event.type !== 'payload') return event;
    const hex = event.bytes.toString('hex');
    return { type: 'payload', length: event.bytes.length, hex: hex.length > 200 ? `${hex.slice(0, 100)}…${hex.slice(-100)}` : hex };
  });
}

/**
 * For vectors too long to split everywhere in a fast suite: every offset within the first and
 * last 400 bytes (all header bytes and mask phases, both ends of the payload), and every 97th
 * offset in between (97 is odd, so the samples cover every mask phase and alignment).
 */
export function sampledSplits(length: number): (split: number) => boolean {
  return (split) => split <= 400 || split >= length - 400 || split % 97 === 0;
}

/**
 * True if `bytes` can begin some valid UTF-8 text, decided with Node's own `isUtf8` as the oracle:
 * an incomplete last sequence needs at most three more continuation bytes, and the first of them
 * is constrained to 80..BF, A0..BF (after E0), 80..9F (ED), 90..BF (F0) or 80..8F (F4), each of
 * which holds 0x80 or 0xA0; later ones may be anything in 80..BF. So trying these seven
 * completions is enough.
 */
export function isValidUtf8Prefix(bytes: Uint8Array): boolean {
  for (const tail of UTF8_COMPLETIONS) {
    const candidate = new Uint8Array(bytes.length + tail.length);
    candidate.set(bytes);
    candidate.set(tail, bytes.length);
    if (isUtf8(candidate)) return true;
  }
  return false;
}

const UTF8_COMPLETIONS: readonly number[][] = [[], [0x80], [0xa0], [0x80, 0x80], [0xa0, 0x80], [0x80, 0x80, 0x80], [0xa0, 0x80, 0x80]];

/** The index of the first byte at which `bytes` stops being a valid UTF-8 prefix, or -1. */
export function firstInvalidUtf8Byte(bytes: Uint8Array): number {
  if (isValidUtf8Prefix(bytes)) return -1;
  // Validity of a prefix is monotone: binary search for the shortest invalid one.
  let low = 0; // bytes[0, low) is a valid prefix
  let high = bytes.length; // bytes[0, high) is not
  while (high - low > 1) {
    const mid = (low + high) >>> 1;
    if (isValidUtf8Prefix(bytes.subarray(0, mid))) low = mid;
    else high = mid;
  }
  return high - 1;
}
