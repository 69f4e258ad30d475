// Frames to messages: fragmentation (RFC 6455 §5.4), UTF-8 (§8.1), control frames (§5.5), limits.
import { isUtf8 } from 'node:buffer';
import { parseClosePayload } from './close.js';
import { CloseCode, DEFAULT_MAX_PAYLOAD, Opcode } from './constants.js';
import { FrameParser, type FrameHandler, type FrameParserOptions } from './frame-parser.js';
import { type ProtocolError } from './types.js';
import { InflateLimitError, type PerMessageDeflate } from './permessage-deflate.js';
import { Utf8Validator } from './utf8.js';

/** What a MessageReader produces. Binary messages own their bytes (byteOffset 0, exact buffer). */
export interface MessageSink {
  onText(text: string): void;
  onBinary(data: Uint8Array): void;
  onPing(payload: Uint8Array): void;
  onPong(payload: Uint8Array): void;
  /** A valid close frame; `code` is null when it had no body (the API reports 1005). */
  onClose(code: number | null, reason: string): void;
  /** The stream broke the protocol; nothing more will be read. Reported once. */
  onProtocolError(error: ProtocolError): void;
  /** Parsing went on after an asynchronous inflate: the socket may be read again. */
  onReadResumed(): void;
}

export interface MessageReaderOptions extends FrameParserOptions {
  /** Largest message in bytes, counted across all its fragments and after inflation (1009 beyond it). */
  maxPayload?: number;
  /** permessage-deflate, when negotiated: RSV1 marks compressed messages. */
  deflate?: PerMessageDeflate | null;
}

/** Growth floor for a message buffer, so tiny fragments do not cause a reallocation each. */
const MIN_BUFFER_BYTES = 16 * 1024;
/**
 * An unfragmented message up to this size gets its whole buffer at once, sized from its header:
 * no regrowth, no extra copies. Larger ones start here and grow, so a header alone cannot make us
 * commit much memory (and this matches the readable's default high-water mark).
 */
const EAGER_BUFFER_BYTES = 1024 * 1024;

/**
 * Parses frames and assembles them into messages. A message that arrives whole in one chunk is
 * handed on straight from that chunk (one copy for binary, none for text); any other message is
 * gathered into one growing buffer, so a flood of tiny fragments costs bytes, not objects.
 */
export class MessageReader implements FrameHandler {
  private readonly parser: FrameParser;
  readonly maxPayload: number;

  // The current frame.
  private frameOpcode = 0;
  private frameFin = false;
  private frameLength = 0;
  private frameReceived = 0;

  // The message in progress (opcode 0: none).
  private messageOpcode = 0;
  private messageSize = 0;
  /** The whole message was delivered from the chunk that carried it. */
  private deliveredDirectly = false;
  private buffer: Buffer | null = null;
  private readonly validator = new Utf8Validator();

  /** The message in progress is compressed (RSV1 on its first frame). */
  private compressed = false;
  private readonly deflate: PerMessageDeflate | null;
  private errorReported = false;
  /** Set once our close frame is out: data messages are dropped, so compressed ones are not inflated. */
  private discarding = false;

  // The control frame in progress.
  private control: Uint8Array | null = null;

  constructor(
    private readonly sink: MessageSink,
    options: MessageReaderOptions,
  ) {
    this.deflate = options.deflate ?? null;
    this.parser = new FrameParser(this, { ...options, allowRsv1: this.deflate !== null });
    this.maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
  }

  /** Feeds bytes from the socket; takes ownership of `chunk` (it is unmasked in place). */
  push(chunk: Buffer): void {
    this.parser.push(chunk);
    this.reportError();
  }

  /** The protocol error that stopped reading, if any. */
  get error(): ProtocolError | null {
    return this.parser.error;
  }

  /** Reading has stopped: after a close frame, a protocol error or stop(). */
  get stopped(): boolean {
    return this.parser.stopped;
  }

  /** True while an inflate is running and later bytes are held back. */
  get busy(): boolean {
    return this.parser.suspended;
  }

  private reportError(): void {
    const error = this.parser.error;
    if (error !== null && !this.errorReported) {
      this.errorReported = true;
      this.sink.onProtocolError(error);
    }
  }

  onFrameHeader(fin: boolean, rsv1: boolean, opcode: number, length: number): void {
    this.frameOpcode = opcode;
    this.frameFin = fin;
    this.frameLength = length;
    this.frameReceived = 0;
    if (opcode >= Opcode.CLOSE) {
      this.control = new Uint8Array(length);
      return;
    }
    if (opcode === Opcode.CONTINUATION) {
      if (this.messageOpcode === 0) return this.parser.fail(CloseCode.PROTOCOL_ERROR, 'continuation frame with no message to continue');
    } else if (this.messageOpcode !== 0) {
      return this.parser.fail(CloseCode.PROTOCOL_ERROR, 'new data frame inside a fragmented message');
    } else {
      this.messageOpcode = opcode;
      this.messageSize = 0;
      this.deliveredDirectly = false;
      this.compressed = rsv1;
    }
    if (this.messageSize + length > this.maxPayload) {
      return this.parser.fail(CloseCode.MESSAGE_TOO_BIG, `message larger than maxPayload (${this.maxPayload} bytes)`);
    }
  }

  onFramePayload(data: Buffer, start: number, end: number): void {
    const count = end - start;
    if (this.control !== null) {
      this.control.set(data.subarray(start, end), this.frameReceived);
      this.frameReceived += count;
      return;
    }
    if (this.frameFin && this.messageSize === 0 && count === this.frameLength && this.buffer === null && !this.compressed) {
      // Fast path: a whole unfragmented message in one chunk.
      this.deliveredDirectly = true;
      this.frameReceived = count;
      this.messageSize = count;
      if (this.messageOpcode === Opcode.TEXT) {
        const text = decodeText(data, start, end);
        if (text === null) return this.parser.fail(CloseCode.INVALID_PAYLOAD, 'invalid UTF-8 in a text message');
        this.sink.onText(text);
      } else {
        const message = allocateBytes(count);
        message.set(data.subarray(start, end));
        this.sink.onBinary(message);
      }
      return;
    }
    this.reserve(count);
    const buffer = this.buffer!;
    data.copy(buffer, this.messageSize, start, end);
    if (this.messageOpcode === Opcode.TEXT && !this.compressed && !this.validator.write(buffer, this.messageSize, this.messageSize + count)) {
      return this.parser.fail(CloseCode.INVALID_PAYLOAD, 'invalid UTF-8 in a text message');
    }
    this.messageSize += count;
    this.frameReceived += count;
  }

  onFrameEnd(): void {
    const control = this.control;
    if (control !== null) {
      this.control = null;
      this.onControlFrame(this.frameOpcode, control);
      return;
    }
    if (!this.frameFin) return;
    const opcode = this.messageOpcode;
    const size = this.messageSize;
    const buffer = this.buffer;
    const delivered = this.deliveredDirectly;
    const compressed = this.compressed;
    this.messageOpcode = 0;
    this.messageSize = 0;
    this.buffer = null;
    this.deliveredDirectly = false;
    this.compressed = false;
    if (delivered) return;
    if (compressed) return this.inflate(opcode, buffer === null ? new Uint8Array(0) : buffer.subarray(0, size));
    if (opcode === Opcode.TEXT) {
      if (!this.validator.finish()) return this.parser.fail(CloseCode.INVALID_PAYLOAD, 'text message ends inside a UTF-8 sequence');
      this.sink.onText(buffer === null ? '' : buffer.toString('utf8', 0, size));
    } else {
      this.sink.onBinary(exactBytes(buffer, size));
    }
  }

  /** RFC 7692 §7.2.2: inflate the whole message; nothing after it is parsed until it is done. */
  private inflate(opcode: number, data: Uint8Array): void {
    // Messages that will be dropped need no inflating (and no later message needs this context).
    if (this.discarding) return;
    // An empty payload is not a deflate stream (with the tail restored it would open a stored
    // block that swallows the next message): it is an empty message, and the context is untouched.
    if (data.length === 0) return this.deliverInflated(opcode, null, Buffer.alloc(0));
    this.parser.suspend();
    this.deflate!.decompress(data, (error, result) => {
      if (!this.parser.stopped) this.deliverInflated(opcode, error, result);
      // A reader that wants no more messages gets no more inflated for it: compressed bytes
      // already read could otherwise become hundreds of times their size in memory.
      if (this.inflationOnHold && !this.parser.stopped) {
        this.inflationHeld = true;
        return;
      }
      this.continueParsing();
    });
  }

  /** Set while the consumer wants no more messages (readable backpressure). */
  private inflationOnHold = false;
  /** Parsing stays suspended after an inflate because of `inflationOnHold`. */
  private inflationHeld = false;

  /**
   * The consumer wants no more messages for now: after the inflate that is running, no further
   * compressed message is inflated (compressed bytes already read could otherwise become hundreds
   * of times their size in memory) until releaseInflation().
   */
  holdInflation(): void {
    this.inflationOnHold = true;
  }

  /** Data messages from here on are dropped (our close frame is out), and not inflated. */
  discardMessages(): void {
    this.discarding = true;
  }

  /** Stops reading for good: later bytes are ignored. */
  stop(): void {
    this.parser.stop();
  }

  /** Lifts holdInflation(), and goes on parsing if an inflate was held back by it. */
  releaseInflation(): void {
    this.inflationOnHold = false;
    if (this.inflationHeld) {
      this.inflationHeld = false;
      this.continueParsing();
    }
  }

  private continueParsing(): void {
    this.parser.resume();
    this.reportError();
    if (!this.parser.suspended) this.sink.onReadResumed();
  }

  private deliverInflated(opcode: number, error: Error | null, result: Buffer | null): void {
    if (error !== null) {
      if (error instanceof InflateLimitError) this.parser.fail(CloseCode.MESSAGE_TOO_BIG, error.message);
      else this.parser.fail(CloseCode.INVALID_PAYLOAD, `invalid compressed data: ${error.message}`);
    } else if (opcode === Opcode.TEXT) {
      if (isUtf8(result!)) this.sink.onText(result!.toString('utf8'));
      else this.parser.fail(CloseCode.INVALID_PAYLOAD, 'invalid UTF-8 in a text message');
    } else {
      this.sink.onBinary(exactBytes(result, result!.length));
    }
  }

  private onControlFrame(opcode: number, payload: Uint8Array): void {
    if (opcode === Opcode.PING) {
      this.sink.onPing(payload);
    } else if (opcode === Opcode.PONG) {
      this.sink.onPong(payload);
    } else {
      const close = parseClosePayload(payload);
      if (!close.ok) return this.parser.fail(close.errorCode, close.message);
      // RFC 6455 §1.4: nothing after a close frame is read.
      this.parser.stop();
      this.sink.onClose(close.code, close.reason);
    }
  }

  /** Makes room for `count` more bytes in the message buffer, growing it geometrically. */
  private reserve(count: number): void {
    const needed = this.messageSize + count;
    const capacity = this.buffer === null ? 0 : this.buffer.length;
    if (needed <= capacity) return;
    let next = Math.max(needed, capacity * 2, MIN_BUFFER_BYTES);
    // An unfragmented message's size is known: never allocate past it (nor past the limit).
    if (this.frameFin && this.messageSize === this.frameReceived) {
      next = Math.min(Math.max(next, EAGER_BUFFER_BYTES), this.frameLength);
    }
    next = Math.min(next, this.maxPayload);
    const grown = Buffer.allocUnsafeSlow(next);
    if (this.buffer !== null) this.buffer.copy(grown, 0, 0, this.messageSize);
    this.buffer = grown;
  }
}

/**
 * Validates and decodes in one pass (ignoreBOM keeps a leading U+FEFF, which is part of the
 * message). For short messages this beats a separate validation and decoding by about half.
 */
const shortTextDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** Up to this many bytes, shortTextDecoder; above it, isUtf8 then toString measured as fast or faster. */
const SHORT_TEXT_BYTES = 4096;

/** `data[start, end)` as text, or null if it is not UTF-8 (RFC 6455 §8.1). */
function decodeText(data: Buffer, start: number, end: number): string | null {
  if (end - start <= SHORT_TEXT_BYTES) {
    try {
      return shortTextDecoder.decode(data.subarray(start, end));
    } catch {
      return null;
    }
  }
  return isUtf8(data.subarray(start, end)) ? data.toString('utf8', start, end) : null;
}

/** A Uint8Array that owns exactly its bytes (no view into a pool), left uninitialised. */
export function allocateBytes(length: number): Uint8Array {
  if (length === 0) return new Uint8Array(0);
  return new Uint8Array(Buffer.allocUnsafeSlow(length).buffer, 0, length);
}

function exactBytes(buffer: Buffer | null, size: number): Uint8Array {
  if (buffer === null || size === 0) return new Uint8Array(0);
  if (buffer.byteOffset === 0 && buffer.buffer.byteLength === size) return new Uint8Array(buffer.buffer, 0, size);
  const bytes = allocateBytes(size);
  bytes.set(buffer.subarray(0, size));
  return bytes;
}
