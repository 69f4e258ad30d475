// Reading stdin as lines, and the hex form binary messages take on the command line.
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

/** Hex digits in pairs, whitespace anywhere ("00ff", "00 ff", "0 0ff"); null if not that. */
export function parseHex(line: string): Uint8Array | null {
  const digits = line.replace(/\s+/g, '');
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(digits)) return null;
  return new Uint8Array(Buffer.from(digits, 'hex'));
}
