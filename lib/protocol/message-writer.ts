// Messages to bytes: the send side's counterpart of message-reader.ts. Framing (RFC 6455 §5.2),
// masking (§5.3), compression (RFC 7692), control frames in order with the data, and coalescing:
// frames sent in one task share one buffer, so many small messages cost one socket write. No
// sockets here: bytes leave through a FrameOutput, and the owner decides when a batch is flushed.
import { encodeClosePayload } from './close.js';
import { MASK_BYTES, MAX_LENGTH_7, MAX_LENGTH_16, Opcode } from './constants.js';
import { encodeFrame, encodeTextFrame, headerLength, writeFrameHeader } from './frame-encoder.js';
import { acquireFrameBuffer, releaseFrameBuffer } from './frame-pool.js';
import type { Role } from './types.js';
import { applyMask, copyMasked } from './mask.js';
import type { PerMessageDeflate } from './permessage-deflate.js';

/** Where a MessageWriter's bytes go: a socket, in practice. */
export interface FrameOutput {
  /**
   * Sends bytes after every earlier ones. `written`, when given, runs once the bytes have left
   * (with an error, or none, when they were dropped because the output went away).
   */
  write(bytes: Buffer, written?: (error?: Error | null) => void): void;
  /** The first bytes of a batch are waiting: flush() should run before the current task ends. */
  flushNeeded(): void;
  /** Every frame has been written: nothing more will come (the closing handshake's TCP end). */
  end(): void;
}

/** Frames are coalesced up to this many bytes; a fuller batch goes out at once. */
export const MAX_BATCH_BYTES = 16 * 1024;
/** A batch starts at least this large (a slice of Node's buffer pool, so cheap), then grows. */
const MIN_BATCH_BYTES = 1024;
/** Frames larger than this get a buffer of their own instead of a place in the batch. */
const MAX_BATCHED_FRAME = MAX_BATCH_BYTES / 2;
/** A text message of up to this many UTF-16 units has at most 125 UTF-8 bytes: a 7-bit length. */
const SHORT_TEXT_UNITS = Math.floor(MAX_LENGTH_7 / 3);
/** From this many units a text message has over 125 bytes; up to the next, at most 65535: a 16-bit length. */
const MEDIUM_TEXT_MIN_UNITS = MAX_LENGTH_7 + 1;
const MEDIUM_TEXT_MAX_UNITS = Math.floor(MAX_LENGTH_16 / 3);

type Written = (error?: Error | null) => void;

/** What waits behind a message being compressed: a frame already encoded, a compression, the end. */
type Step =
  | { frame: Buffer; written: Written | undefined }
  | { compress: Uint8Array; opcode: number }
  | { end: true };

/**
 * Turns messages and control frames into frames, in the order they were given. Frames go into a
 * batch that the owner flushes (flush()) when the writer asks (FrameOutput.flushNeeded) or sooner;
 * a frame too large for the batch goes out on its own, after the batch. With permessage-deflate, a
 * message being compressed holds back everything given after it until it is done.
 */
export class MessageWriter {
  private readonly masked: boolean;
  private batch: Buffer | null = null;
  private batchLength = 0;
  /** Callbacks of frames in the batch that want to know when it has left (the close frame). */
  private batchWritten: Written[] | null = null;
  /** Steps behind a running compression, in order; null when nothing waits. */
  private waiting: Step[] | null = null;
  private waitingBytes = 0;
  private compressing = false;

  constructor(
    private readonly output: FrameOutput,
    role: Role,
    private readonly deflate: PerMessageDeflate | null = null,
  ) {
    // RFC 6455 §5.1: a client masks every frame it sends, a server none.
    this.masked = role === 'client';
  }

  /** Bytes given to the writer that the output has not received yet: the batch, and what waits. */
  get bufferedBytes(): number {
    return this.batchLength + this.waitingBytes;
  }

  /**
   * Sends one data message: a string as text, bytes as binary. The bytes are copied (or handed to
   * zlib, which copies them) before this returns: the caller may reuse them at once.
   */
  send(data: string | Uint8Array): void {
    const deflate = this.deflate;
    if (deflate !== null) {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      if (bytes.byteLength >= deflate.params.threshold) {
        // zlib reads its input later, on the threadpool: it gets a copy of the caller's bytes.
        const input = typeof data === 'string' ? bytes : Buffer.from(bytes);
        this.enqueue({ compress: input, opcode: typeof data === 'string' ? Opcode.TEXT : Opcode.BINARY }, input.byteLength);
        return;
      }
      if (this.waiting !== null) {
        this.enqueueFrame(encodeFrame(typeof data === 'string' ? Opcode.TEXT : Opcode.BINARY, bytes, { masked: this.masked }), undefined);
        return;
      }
    }
    if (typeof data === 'string') this.text(data);
    else this.binary(Opcode.BINARY, data, false);
  }

  ping(payload: Uint8Array): void {
    this.control(Opcode.PING, payload, undefined);
  }

  pong(payload: Uint8Array): void {
    this.control(Opcode.PONG, payload, undefined);
  }

  /**
   * Sends a close frame (no body when `code` is null: RFC 6455 §7.4.1 never puts 1005 on the wire)
   * and flushes. `written` runs once the close frame has left.
   */
  close(code: number | null, reason: string, written?: Written): void {
    this.control(Opcode.CLOSE, encodeClosePayload(code, reason), written);
    if (this.waiting === null) this.flush();
  }

  /** Ends the output once every frame given so far has been written. */
  end(): void {
    if (this.waiting !== null) {
      this.waiting.push({ end: true });
      return;
    }
    this.flush();
    this.output.end();
  }

  /** Hands the batch to the output. */
  flush(): void {
    const batch = this.batch;
    const length = this.batchLength;
    if (batch === null || length === 0) return;
    const written = this.batchWritten;
    this.batch = null;
    this.batchLength = 0;
    this.batchWritten = null;
    this.output.write(length === batch.length ? batch : batch.subarray(0, length), written === null ? undefined : allOf(written));
  }

  private control(opcode: number, payload: Uint8Array, written: Written | undefined): void {
    if (this.waiting !== null) {
      this.enqueueFrame(encodeFrame(opcode, payload, { masked: this.masked }), written);
      return;
    }
    this.binary(opcode, payload, false);
    if (written !== undefined) (this.batchWritten ??= []).push(written);
  }

  /** A binary or control frame: into the batch, or out on its own when large. */
  private binary(opcode: number, payload: Uint8Array, rsv1: boolean): void {
    const length = payload.byteLength;
    const size = headerLength(length, this.masked) + length;
    if (size > MAX_BATCHED_FRAME) {
      const pooled = acquireFrameBuffer(size);
      this.emit(encodeFrame(opcode, payload, { masked: this.masked, rsv1 }, pooled), undefined, pooled);
      return;
    }
    const at = this.reserve(size);
    const batch = this.batch!;
    const start = writeFrameHeader(batch, at, opcode, length, this.masked, true, rsv1);
    if (this.masked) copyMasked(payload, batch, start, batch, start - MASK_BYTES);
    else batch.set(payload, start);
    this.batchLength = start + length;
  }

  /** A text frame, encoded straight into the batch: one pass over the string when its length tells the header's. */
  private text(text: string): void {
    const units = text.length;
    const extra = this.masked ? MASK_BYTES : 0;
    let lengthBytes: number;
    if (units <= SHORT_TEXT_UNITS) lengthBytes = 2;
    else if (units >= MEDIUM_TEXT_MIN_UNITS && units <= MEDIUM_TEXT_MAX_UNITS) lengthBytes = 4;
    else {
      // The byte length decides the header: count it first.
      const length = Buffer.byteLength(text, 'utf8');
      const size = headerLength(length, this.masked) + length;
      if (size > MAX_BATCHED_FRAME) {
        const pooled = acquireFrameBuffer(size);
        this.emit(encodeTextFrame(Opcode.TEXT, text, { masked: this.masked }, pooled), undefined, pooled);
        return;
      }
      const at = this.reserve(size);
      const batch = this.batch!;
      const start = writeFrameHeader(batch, at, Opcode.TEXT, length, this.masked, true, false);
      batch.write(text, start, length, 'utf8');
      if (this.masked) applyMask(batch, start, start + length, batch, 0, start - MASK_BYTES);
      this.batchLength = start + length;
      return;
    }
    // At most 3 bytes per UTF-16 unit: reserve that, write, then fill in the header.
    const worst = lengthBytes + extra + units * 3;
    if (worst > MAX_BATCHED_FRAME) {
      const pooled = acquireFrameBuffer(worst);
      this.emit(encodeTextFrame(Opcode.TEXT, text, { masked: this.masked }, pooled), undefined, pooled);
      return;
    }
    const at = this.reserve(worst);
    const batch = this.batch!;
    const start = at + lengthBytes + extra;
    const length = batch.write(text, start, 'utf8');
    writeFrameHeader(batch, at, Opcode.TEXT, length, this.masked, true, false);
    if (this.masked) applyMask(batch, start, start + length, batch, 0, start - MASK_BYTES);
    this.batchLength = start + length;
  }

  /** Makes room for `size` bytes at the end of the batch and returns where they start. */
  private reserve(size: number): number {
    let batch = this.batch;
    const length = this.batchLength;
    if (batch !== null && length + size <= batch.length) return length;
    if (batch === null) {
      this.batch = Buffer.allocUnsafe(Math.max(MIN_BATCH_BYTES, size));
      this.output.flushNeeded();
      return 0;
    }
    if (batch.length < MAX_BATCH_BYTES) {
      // Grow (up to the bound) rather than write: coalescing is the point of the batch.
      const grown = Buffer.allocUnsafe(Math.min(MAX_BATCH_BYTES, Math.max(batch.length * 4, length + size)));
      if (length + size <= grown.length) {
        batch.copy(grown, 0, 0, length);
        this.batch = grown;
        return length;
      }
    }
    // Full: this batch goes out now, and a new one starts.
    this.flush();
    batch = Buffer.allocUnsafe(Math.max(MIN_BATCH_BYTES, size));
    this.batch = batch;
    this.output.flushNeeded();
    return 0;
  }

  /**
   * A frame encoded on its own: after the batch, in order. `pooled` is the frame-pool buffer the
   * frame was cut from (given back whole once the output has let go of the frame).
   */
  private emit(frame: Buffer, written: Written | undefined, pooled: Buffer | undefined): void {
    if (pooled === undefined && frame.length <= MAX_BATCHED_FRAME) {
      const at = this.reserve(frame.length);
      frame.copy(this.batch!, at);
      this.batchLength = at + frame.length;
      if (written !== undefined) (this.batchWritten ??= []).push(written);
      return;
    }
    this.flush();
    if (pooled === undefined) {
      this.output.write(frame, written);
      return;
    }
    this.output.write(frame, (error) => {
      releaseFrameBuffer(pooled);
      written?.(error);
    });
  }

  private enqueueFrame(frame: Buffer, written: Written | undefined): void {
    this.enqueue({ frame, written }, frame.length);
  }

  private enqueue(step: Step, bytes: number): void {
    (this.waiting ??= []).push(step);
    this.waitingBytes += bytes;
    if (!this.compressing) this.runWaiting();
  }

  /** Works through the steps that wait, until a compression has to be awaited. */
  private runWaiting(): void {
    const waiting = this.waiting;
    while (waiting !== null && waiting.length > 0 && !this.compressing) {
      const step = waiting.shift()!;
      if ('end' in step) {
        this.flush();
        this.output.end();
      } else if ('frame' in step) {
        this.waitingBytes -= step.frame.length;
        this.emit(step.frame, step.written, undefined);
      } else {
        this.compressing = true;
        const { compress: input, opcode } = step;
        this.deflate!.compress(input, (error, compressed) => {
          this.waitingBytes -= input.byteLength;
          this.compressing = false;
          // A failed compression means the connection is going away: the frame is dropped.
          if (error === null) {
            // RFC 7692 §6: RSV1 on the first (here: only) frame of a compressed message.
            this.binary(opcode, compressed!, true);
          }
          this.runWaiting();
        });
      }
    }
    if (waiting !== null && waiting.length === 0 && !this.compressing) this.waiting = null;
  }
}

function allOf(callbacks: Written[]): Written {
  if (callbacks.length === 1) return callbacks[0]!;
  return (error) => {
    for (const callback of callbacks) callback(error);
  };
}
