// Incremental RFC 6455 §5.2 frame parser: bytes in, frame events out.
import { CloseCode, LENGTH_16, LENGTH_64, MASK_BYTES, MAX_CONTROL_PAYLOAD, Opcode } from './constants.js';
import { ProtocolError, type Role } from './types.js';
import { applyMask, releaseUnmaskedCopy, unmaskedCopy, unmaskScratch } from './mask.js';


/** Receives the frames a FrameParser reads. Payload bytes arrive unmasked. */
export interface FrameHandler {
  onFrameHeader(fin: boolean, rsv1: boolean, opcode: number, length: number): void;
  /**
   * Bytes `data[start, end)` of the current frame's payload, unmasked. `data` is valid during the
   * call only (it may be shared scratch, reused afterwards): copy what is to be kept before
   * calling out of the handler.
   */
  onFramePayload(data: Buffer, start: number, end: number): void;
  onFrameEnd(): void;
}

export interface FrameParserOptions {
  /** The role of the endpoint that is parsing. */
  role: Role;
  /** Whether RSV1 may be set on the first frame of a data message (permessage-deflate). */
  allowRsv1?: boolean;
}

const enum State {
  HEADER,
  PAYLOAD,
  STOPPED,
}

/** Longest header: 2 bytes, an 8-byte extended length, a 4-byte mask key. */
const MAX_HEADER_BYTES = 14;

/**
 * Feed it any slicing of the byte stream and it reports the same frames: the header is gathered
 * across chunks into a 14-byte scratch buffer when it has to be, payload bytes are passed on as
 * they arrive without being buffered. Small masked payloads are unmasked in place, so `push` takes
 * ownership of the chunks it is given; large ones are unmasked into scratch (see unmaskedCopy).
 */
export class FrameParser {
  private state = State.HEADER;
  private readonly expectMasked: boolean;
  allowRsv1: boolean;
  /** Set once parsing stopped because of a protocol error (or `stop()`). */
  error: ProtocolError | null = null;

  private readonly scratch = Buffer.alloc(MAX_HEADER_BYTES);
  private scratchFilled = 0;
  private readonly maskKey = Buffer.alloc(MASK_BYTES);
  private masked = false;
  private maskPhase = 0;
  private remaining = 0;

  constructor(
    private readonly handler: FrameHandler,
    options: FrameParserOptions,
  ) {
    // RFC 6455 §5.1: clients mask every frame, servers never do.
    this.expectMasked = options.role === 'server';
    this.allowRsv1 = options.allowRsv1 ?? false;
  }

  get stopped(): boolean {
    return this.state === State.STOPPED;
  }

  /** Stops parsing for good; later chunks are ignored. */
  stop(): void {
    this.state = State.STOPPED;
  }

  /** Stops parsing with a protocol error; the handler may also call this from its callbacks. */
  fail(closeCode: number, message: string): void {
    if (this.state === State.STOPPED) return;
    this.error = new ProtocolError(closeCode, message);
    this.state = State.STOPPED;
  }

  /** Bytes that arrived while suspended, to be parsed on resume(). */
  private held: Buffer[] = [];
  private suspendedFlag = false;

  get suspended(): boolean {
    return this.suspendedFlag;
  }

  /**
   * Stops parsing after the current callback until resume(): the handler has work to finish first
   * (an asynchronous inflate) before anything that follows may be handled.
   */
  suspend(): void {
    this.suspendedFlag = true;
  }

  /** Parses, in order, whatever arrived while suspended. */
  resume(): void {
    this.suspendedFlag = false;
    while (this.held.length > 0 && !this.suspendedFlag && this.state !== State.STOPPED) this.parse(this.held.shift()!);
  }

  push(chunk: Buffer): void {
    if (this.suspendedFlag) this.held.push(chunk);
    else this.parse(chunk);
  }

  private parse(chunk: Buffer): void {
    const length = chunk.length;
    let pos = 0;
    while (pos < length) {
      if (this.suspendedFlag) {
        this.held.unshift(chunk.subarray(pos));
        return;
      }
      if (this.state === State.HEADER) {
        pos = this.readHeader(chunk, pos);
      } else if (this.state === State.PAYLOAD) {
        let end = Math.min(length, pos + this.remaining);
        // Large masked payload is unmasked into the kernel's scratch and handed on from there:
        // the handler copies it out either way, so the chunk need not be written back.
        const unmasked = this.masked ? unmaskedCopy(chunk, pos, end, this.maskKey, this.maskPhase) : 0;
        if (unmasked > 0) {
          end = pos + unmasked;
          this.maskPhase = (this.maskPhase + unmasked) & 3;
          this.remaining -= unmasked;
          try {
            this.handler.onFramePayload(unmaskScratch(), 0, unmasked);
          } finally {
            releaseUnmaskedCopy();
          }
        } else {
          if (this.masked) {
            applyMask(chunk, pos, end, this.maskKey, this.maskPhase);
            this.maskPhase = (this.maskPhase + end - pos) & 3;
          }
          this.remaining -= end - pos;
          this.handler.onFramePayload(chunk, pos, end);
        }
        pos = end;
        if (this.remaining === 0 && this.state === State.PAYLOAD) {
          this.state = State.HEADER;
          this.handler.onFrameEnd();
        }
      } else {
        return;
      }
    }
  }

  /** Consumes header bytes from `chunk` at `pos`; returns the new position. */
  private readHeader(chunk: Buffer, pos: number): number {
    const available = chunk.length - pos;
    if (this.scratchFilled === 0 && available >= 2) {
      const headerLength = headerLengthOf(chunk[pos + 1]!);
      if (available >= headerLength) {
        this.decodeHeader(chunk, pos);
        return pos + headerLength;
      }
    }
    // The header straddles chunks: gather it in the scratch buffer.
    let needed = this.scratchFilled < 2 ? 2 : headerLengthOf(this.scratch[1]!);
    while (pos < chunk.length && this.scratchFilled < needed) {
      this.scratch[this.scratchFilled++] = chunk[pos++]!;
      if (this.scratchFilled === 2) needed = headerLengthOf(this.scratch[1]!);
    }
    if (this.scratchFilled === needed) {
      this.scratchFilled = 0;
      this.decodeHeader(this.scratch, 0);
    }
    return pos;
  }

  private decodeHeader(source: Buffer, offset: number): void {
    const b0 = source[offset]!;
    const b1 = source[offset + 1]!;
    const fin = (b0 & 0x80) !== 0;
    const rsv1 = (b0 & 0x40) !== 0;
    const opcode = b0 & 0x0f;
    const masked = (b1 & 0x80) !== 0;
    let length = b1 & 0x7f;
    const isControl = (opcode & 0x08) !== 0;

    // RFC 6455 §5.2: RSV bits MUST be 0 unless an extension defines them. Only permessage-deflate
    // (RFC 7692 §6) is known, and it defines RSV1 on the first frame of a data message only.
    if ((b0 & 0x30) !== 0) return this.fail(CloseCode.PROTOCOL_ERROR, 'RSV2 or RSV3 set');
    if (rsv1 && (!this.allowRsv1 || isControl || opcode === Opcode.CONTINUATION)) {
      return this.fail(CloseCode.PROTOCOL_ERROR, 'RSV1 set without an extension that defines it');
    }
    if (!isKnownOpcode(opcode)) return this.fail(CloseCode.PROTOCOL_ERROR, `reserved opcode ${opcode}`);
    if (isControl) {
      // RFC 6455 §5.5: control frames MUST NOT be fragmented and carry at most 125 bytes.
      if (!fin) return this.fail(CloseCode.PROTOCOL_ERROR, 'fragmented control frame');
      if (length > MAX_CONTROL_PAYLOAD) {
        return this.fail(CloseCode.PROTOCOL_ERROR, 'control frame payload over 125 bytes');
      }
    }
    if (masked !== this.expectMasked) {
      // RFC 6455 §5.1: a server MUST close on an unmasked frame, a client on a masked one.
      return this.fail(CloseCode.PROTOCOL_ERROR, masked ? 'masked frame from a server' : 'unmasked frame from a client');
    }

    let pos = offset + 2;
    if (length === LENGTH_16) {
      length = source.readUInt16BE(pos);
      pos += 2;
    } else if (length === LENGTH_64) {
      const high = source.readUInt32BE(pos);
      // RFC 6455 §5.2: the most significant bit of a 64-bit length MUST be 0.
      if (high & 0x80000000) return this.fail(CloseCode.PROTOCOL_ERROR, '64-bit length with the top bit set');
      // Lengths past 2^53 cannot be represented exactly; they are over any maxPayload anyway.
      if (high > 0x1fffff) return this.fail(CloseCode.MESSAGE_TOO_BIG, 'frame length beyond 2^53');
      length = high * 0x100000000 + source.readUInt32BE(pos + 4);
      pos += 8;
    }
    this.masked = masked;
    if (masked) {
      source.copy(this.maskKey, 0, pos, pos + MASK_BYTES);
      this.maskPhase = 0;
    }

    this.remaining = length;
    this.state = State.PAYLOAD;
    this.handler.onFrameHeader(fin, rsv1, opcode, length);
    if (length === 0 && this.state === State.PAYLOAD) {
      this.state = State.HEADER;
      this.handler.onFrameEnd();
    }
  }
}

function headerLengthOf(secondByte: number): number {
  const length7 = secondByte & 0x7f;
  const extended = length7 === LENGTH_16 ? 2 : length7 === LENGTH_64 ? 8 : 0;
  return 2 + extended + ((secondByte & 0x80) !== 0 ? MASK_BYTES : 0);
}

function isKnownOpcode(opcode: number): boolean {
  return opcode <= Opcode.BINARY || (opcode >= Opcode.CLOSE && opcode <= Opcode.PONG);
}
