// Reading stdin as lines, and the text forms (hex, base64) binary messages take on the command line.
import { StringDecoder } from 'node:string_decoder';

/**
 * The lines of a byte stream, without their "\n" or "\r\n". Pulling one line at a time from an
 * async iterator keeps backpressure: stdin is read only as fast as messages are sent. A final
 * line without a newline still counts; the newline that ends the input does not add an empty one.
 */
export async function* readLines(input: AsyncIterable<Buffer | string>): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  for await (const chunk of input) {
    pending += typeof chunk === 'string' ? chunk : decoder.write(chunk);
    let start = 0;
    let newline: number;
    while ((newline = pending.indexOf('\n', start)) !== -1) {
      yield withoutCarriageReturn(pending.slice(start, newline));
      start = newline + 1;
    }
    pending = pending.slice(start);
  }
  pending += decoder.end();
  if (pending !== '') yield withoutCarriageReturn(pending);
}

function withoutCarriageReturn(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

/** How binary messages are written as text: on stdout, in --json records, and read from stdin. */
export const BINARY_FORMATS = ['hex', 'base64'] as const;
export type BinaryFormat = (typeof BINARY_FORMATS)[number];

/** Hex digits in pairs, whitespace anywhere ("00ff", "00 ff", "0 0ff"); null if not that. */
export function parseHex(line: string): Uint8Array | null {
  const digits = line.replace(/\s+/g, '');
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(digits)) return null;
  return new Uint8Array(Buffer.from(digits, 'hex'));
}

/**
 * Standard base64 (RFC 4648 §4), "=" padding optional, whitespace ignored; null if not that.
 * Buffer.from(…, 'base64') alone would silently skip stray characters and send other bytes.
 */
export function parseBase64(line: string): Uint8Array | null {
  const text = line.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  const unpadded = text.replace(/=+$/, '');
  // A last group of one character cannot encode a byte; padding must complete a group of four.
  if (unpadded.length % 4 === 1 || (text.length !== unpadded.length && text.length % 4 !== 0)) return null;
  return new Uint8Array(Buffer.from(unpadded, 'base64'));
}

export function parseBinary(line: string, format: BinaryFormat): Uint8Array | null {
  return format === 'hex' ? parseHex(line) : parseBase64(line);
}

/** Lower-case hex with no separators, or padded base64: the forms `connect --binary` reads back. */
export function formatBinary(bytes: Uint8Array, format: BinaryFormat): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(format);
}
