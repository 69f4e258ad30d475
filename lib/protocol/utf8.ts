// Incremental, fail-fast UTF-8 validation (RFC 6455 §8.1, RFC 3629).
import { isUtf8 } from 'node:buffer';

/**
 * Validates a text message slice by slice. `write` returns false as soon as the bytes seen so far
 * cannot begin any valid UTF-8 string, even in the middle of a sequence that is split across
 * frames or socket reads; `finish` returns false if the message stopped inside a sequence.
 * Whole runs are checked by Node's native `isUtf8`; only the at most three bytes of a sequence
 * that straddles a slice boundary go through the byte-level state machine below.
 */
export class Utf8Validator {
  /** Continuation bytes still owed by the sequence in progress. */
  private pending = 0;
  /** Allowed range of the next continuation byte (narrower after E0, ED, F0, F4). */
  private lower = 0x80;
  private upper = 0xbf;

  write(data: Uint8Array, start: number, end: number): boolean {
    let i = start;
    while (this.pending > 0 && i < end) {
      if (!this.feed(data[i]!)) return false;
      i++;
    }
    if (i === end) return true;
    // Find where the last, possibly unfinished, sequence starts.
    let boundary = end;
    for (let j = end - 1; j >= i && j >= end - 3; j--) {
      const byte = data[j]!;
      if (byte < 0x80) break;
      if (byte >= 0xc0) {
        const length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2;
        if (end - j < length) boundary = j;
        break;
      }
    }
    if (boundary > i && !isUtf8(data.subarray(i, boundary))) return false;
    for (let j = boundary; j < end; j++) {
      if (!this.feed(data[j]!)) return false;
    }
    return true;
  }

  /** True when the message ended on a character boundary; resets for the next message. */
  finish(): boolean {
    const complete = this.pending === 0;
    this.reset();
    return complete;
  }

  reset(): void {
    this.pending = 0;
    this.lower = 0x80;
    this.upper = 0xbf;
  }

  private feed(byte: number): boolean {
    if (this.pending === 0) {
      if (byte < 0x80) return true;
      // 80..BF cannot start a sequence; C0 and C1 only start overlong forms.
      if (byte < 0xc2) return false;
      if (byte < 0xe0) {
        this.pending = 1;
      } else if (byte < 0xf0) {
        this.pending = 2;
        if (byte === 0xe0) this.lower = 0xa0; // overlong below U+0800
        if (byte === 0xed) this.upper = 0x9f; // UTF-16 surrogates D800..DFFF
      } else if (byte < 0xf5) {
        this.pending = 3;
        if (byte === 0xf0) this.lower = 0x90; // overlong below U+10000
        if (byte === 0xf4) this.upper = 0x8f; // above U+10FFFF
      } else {
        return false;
      }
      return true;
    }
    if (byte < this.lower || byte > this.upper) return false;
    this.pending--;
    this.lower = 0x80;
    this.upper = 0xbf;
    return true;
  }
}

export function isValidUtf8(data: Uint8Array): boolean {
  return isUtf8(data);
}

export function utf8ByteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}
