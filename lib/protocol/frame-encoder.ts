// RFC 6455 §5.2 frame encoding: minimal lengths, a fresh mask per client frame.
import { randomFillSync } from 'node:crypto';
import { LENGTH_16, LENGTH_64, MASK_BYTES, MAX_LENGTH_16, MAX_LENGTH_7 } from './constants.js';
import { applyMask, copyMasked } from './mask.js';

/** Mask keys are cut from a pool of random bytes refilled in bulk: one syscall per 2,048 frames. */
const MASK_POOL_BYTES = 8 * 1024;
const maskPool = Buffer.allocUnsafe(MASK_POOL_BYTES);
let maskPoolOffset = MASK_POOL_BYTES;

function nextMaskOffset(): number {
  if (maskPoolOffset + MASK_BYTES > MASK_POOL_BYTES) {
    randomFillSync(maskPool);
    maskPoolOffset = 0;
  }
  const offset = maskPoolOffset;
  maskPoolOffset += MASK_BYTES;
  return offset;
}

/** Header bytes for a payload of `length` bytes (RFC 6455 §5.2: the minimal length encoding). */
export function headerLength(length: number, masked: boolean): number {
  const base = length <= MAX_LENGTH_7 ? 2 : length <= MAX_LENGTH_16 ? 4 : 10;
  return masked ? base + MASK_BYTES : base;
}

/**
 * Writes a frame header into `target` at `at` and returns where the payload starts. When
 * `masked`, a fresh random key is written just before the payload, where masking reads it from.
 */
export function writeFrameHeader(target: Buffer, at: number, opcode: number, length: number, masked: boolean, fin: boolean, rsv1: boolean): number {
  target[at] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode;
  const maskBit = masked ? 0x80 : 0;
  let pos: number;
  if (length <= MAX_LENGTH_7) {
    target[at + 1] = maskBit | length;
    pos = at + 2;
  } else if (length <= MAX_LENGTH_16) {
    target[at + 1] = maskBit | LENGTH_16;
    target.writeUInt16BE(length, at + 2);
    pos = at + 4;
  } else {
    target[at + 1] = maskBit | LENGTH_64;
    target.writeUInt32BE(Math.floor(length / 0x100000000), at + 2);
    target.writeUInt32BE(length >>> 0, at + 6);
    pos = at + 10;
  }
  if (masked) {
    const keyOffset = nextMaskOffset();
    maskPool.copy(target, pos, keyOffset, keyOffset + MASK_BYTES);
    pos += MASK_BYTES;
  }
  return pos;
}

function writeHeader(target: Buffer, opcode: number, length: number, masked: boolean, fin: boolean, rsv1: boolean): number {
  return writeFrameHeader(target, 0, opcode, length, masked, fin, rsv1);
}

export interface FrameOptions {
  /** Mask the payload (every frame a client sends, RFC 6455 §5.3). */
  masked: boolean;
  fin?: boolean;
  rsv1?: boolean;
}

/**
 * One frame in one buffer: header, then a copy of `payload` (masked if asked). The copy is the
 * snapshot the WebSocketStream write semantics require, so it is not an extra one. A `target`
 * from frame-pool.ts lives in the masking kernel's memory, where the payload is masked in place.
 */
export function encodeFrame(opcode: number, payload: Uint8Array, options: FrameOptions, target?: Buffer): Buffer {
  const length = payload.byteLength;
  const size = headerLength(length, options.masked) + length;
  const frame = target === undefined ? Buffer.allocUnsafe(size) : target.subarray(0, size);
  const start = writeHeader(frame, opcode, length, options.masked, options.fin ?? true, options.rsv1 ?? false);
  if (options.masked) copyMasked(payload, frame, start, frame, start - MASK_BYTES);
  else frame.set(payload, start);
  return frame;
}

/**
 * A text frame with the string encoded straight into the frame buffer: `target` when given (it
 * must hold the whole frame), a fresh buffer otherwise.
 */
export function encodeTextFrame(opcode: number, text: string, options: FrameOptions, target?: Buffer): Buffer {
  const length = Buffer.byteLength(text, 'utf8');
  const size = headerLength(length, options.masked) + length;
  const frame = target === undefined ? Buffer.allocUnsafe(size) : target.subarray(0, size);
  const start = writeHeader(frame, opcode, length, options.masked, options.fin ?? true, options.rsv1 ?? false);
  frame.write(text, start, 'utf8');
  if (options.masked) applyMask(frame, start, start + length, frame, 0, start - MASK_BYTES);
  return frame;
}

/**
 * Only the header of a frame, for a payload the caller owns and hands to the socket as a second
 * buffer: no copy of the payload is made. Unmasked frames only (masking must write the payload).
 */
export function encodeFrameHeader(opcode: number, length: number, options: { fin?: boolean; rsv1?: boolean } = {}): Buffer {
  const header = Buffer.allocUnsafe(headerLength(length, false));
  writeHeader(header, opcode, length, false, options.fin ?? true, options.rsv1 ?? false);
  return header;
}
