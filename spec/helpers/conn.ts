// Helpers for the connection and interop specs: a raw-byte tap that keeps mask keys, promise
// state probes and exact-error assertions. Independent of lib/ on purpose.
import { expect } from 'chai';
import { inspect } from 'node:util';
import type { Socket } from 'node:net';

export const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

export interface TappedFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  /** The 4-byte masking key, or null for an unmasked frame. */
  maskKey: Buffer | null;
  /** The unmasked payload. */
  payload: Buffer;
}

/**
 * Records every byte a socket receives from the moment it is attached, and parses the recording
 * into frames on demand, keeping the masking keys (RawPeer drops them).
 */
export class ByteTap {
  private readonly chunks: Buffer[] = [];

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.chunks.push(Buffer.from(chunk)));
  }

  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Every complete frame recorded so far. */
  frames(): TappedFrame[] {
    const b = this.bytes;
    const frames: TappedFrame[] = [];
    let pos = 0;
    for (;;) {
      if (b.length - pos < 2) break;
      const b0 = b[pos]!;
      const b1 = b[pos + 1]!;
      let length = b1 & 0x7f;
      let at = pos + 2;
      if (length === 126) {
        if (b.length < at + 2) break;
        length = b.readUInt16BE(at);
        at += 2;
      } else if (length === 127) {
        if (b.length < at + 8) break;
        length = Number(b.readBigUInt64BE(at));
        at += 8;
      }
      const masked = (b1 & 0x80) !== 0;
      let maskKey: Buffer | null = null;
      if (masked) {
        if (b.length < at + 4) break;
        maskKey = Buffer.from(b.subarray(at, at + 4));
        at += 4;
      }
      if (b.length < at + length) break;
      const payload = Buffer.from(b.subarray(at, at + length));
      if (maskKey !== null) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ maskKey[i % 4]!;
      frames.push({ fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, maskKey, payload });
      pos = at + length;
    }
    return frames;
  }
}

/** One macrotask turn (setImmediate), `count` times: lets pending I/O callbacks run. */
export async function macrotasks(count = 1): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** A promise's state without attaching a handler (so an unhandled rejection stays observable). */
export function promiseState(promise: Promise<unknown>): 'pending' | 'fulfilled' | 'rejected' {
  const text = inspect(promise, { depth: 0 });
  if (text.includes('<pending>')) return 'pending';
  if (text.includes('<rejected>')) return 'rejected';
  return 'fulfilled';
}

/** Waits (in macrotask turns, bounded) until `promise` is no longer pending, without handling it. */
export async function untilSettled(promise: Promise<unknown>, maxTurns = 20000): Promise<void> {
  for (let i = 0; i < maxTurns; i++) {
    if (promiseState(promise) !== 'pending') return;
    await macrotasks();
  }
  throw new Error('promise still pending');
}

/** Tracks whether a promise settled, while handling it (no unhandled rejection). */
export function track<T>(promise: Promise<T>): { readonly settled: boolean; readonly promise: Promise<T> } {
  const state = { settled: false, promise };
  promise.then(
    () => {
      state.settled = true;
    },
    () => {
      state.settled = true;
    },
  );
  return state;
}

/** Awaits `promise`, expecting a rejection, and returns the reason. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  let rejected = false;
  let reason: unknown;
  try {
    await promise;
  } catch (error) {
    rejected = true;
    reason = error;
  }
  expect(rejected, 'expected the promise to reject').to.equal(true);
  return reason;
}

const LEGACY_CODE: Record<string, number> = { InvalidStateError: 11, SyntaxError: 12, InvalidAccessError: 15, AbortError: 20 };

/** `error` is exactly `new DOMException(message, name)` of the global class. */
export function expectDOMException(error: unknown, name: string): void {
  expect(error).to.be.an.instanceOf(DOMException);
  expect((error as DOMException).constructor).to.equal(DOMException);
  expect((error as DOMException).name).to.equal(name);
  expect((error as DOMException).code).to.equal(LEGACY_CODE[name]);
}

/** `error` is a plain TypeError. */
export function expectTypeError(error: unknown): void {
  expect(error).to.be.an.instanceOf(TypeError);
  expect((error as TypeError).constructor).to.equal(TypeError);
}

/** Exactly `size` bytes of UTF-8 text mixing 1-, 2-, 3- and 4-byte characters (ASCII-padded). */
export function textOfBytes(size: number): string {
  const unit = 'aé€😀'; // 1 + 2 + 3 + 4 = 10 bytes
  const whole = Math.floor(size / 10);
  return unit.repeat(whole) + 'z'.repeat(size - whole * 10);
}

/** Deterministic pseudo-random bytes (fast, no crypto needed). */
export function patternBytes(size: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
