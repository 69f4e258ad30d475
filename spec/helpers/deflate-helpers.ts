// permessage-deflate on the test side, written with node:zlib only (independent of lib/): one-shot
// and context-keeping compressors and inflaters, and deterministic test data.
import net from 'node:net';
import zlib from 'node:zlib';
import { acceptFor, RawPeer } from './raw-peer.js';

/** RFC 7692 §7.2.1: the tail of a sync flush, removed by the sender and restored by the receiver. */
export const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff]);

const SYNC = { finishFlush: zlib.constants.Z_SYNC_FLUSH };

/** Compresses one message on its own (no context), trailer removed, as RFC 7692 §7.2.1 says. */
export function deflateMessage(message: Buffer | string, windowBits = 15): Buffer {
  const out = zlib.deflateRawSync(Buffer.from(message), { ...SYNC, windowBits });
  if (!out.subarray(-4).equals(TRAILER)) throw new Error('a sync flush must end with 00 00 ff ff');
  return out.subarray(0, -4);
}

/**
 * Options for an inflater that enforces its window. A one-shot inflate can refer back into the
 * whole output buffer, so a window limit only bites when the output is taken in small chunks:
 * zlib then refuses any distance beyond the window (plus at most 64 bytes) as "too far back".
 */
function strictInflateOptions(windowBits: number): zlib.ZlibOptions {
  return windowBits < 15 ? { ...SYNC, windowBits, chunkSize: 64 } : { ...SYNC, windowBits };
}

/** Inflates one message compressed without context (its trailer removed); a window below 15 is enforced. */
export function inflateMessage(payload: Buffer, windowBits = 15): Buffer {
  return zlib.inflateRawSync(Buffer.concat([payload, TRAILER]), strictInflateOptions(windowBits));
}

/**
 * One direction of a permessage-deflate connection, kept synchronous: with context takeover the
 * LZ77 window of message n is the plain text of the compressed messages before it, which zlib
 * takes as a preset dictionary (raw deflate and inflate both accept one).
 */
export class DeflateContext {
  private history = Buffer.alloc(0);

  constructor(
    readonly windowBits = 15,
    /** No context takeover: every message starts from an empty window. */
    readonly noContextTakeover = false,
  ) {}

  private options(strict = false): zlib.ZlibOptions {
    const options: zlib.ZlibOptions = strict ? strictInflateOptions(this.windowBits) : { ...SYNC, windowBits: this.windowBits };
    if (!this.noContextTakeover && this.history.length > 0) options.dictionary = this.history;
    return options;
  }

  private remember(plain: Buffer): void {
    if (this.noContextTakeover) return;
    this.history = Buffer.concat([this.history, plain]).subarray(-32768);
    // A dictionary must own its bytes; subarray of a concat result is fine, copy to be safe.
    this.history = Buffer.from(this.history);
  }

  /** Compresses the next message: the payload to send with RSV1 (trailer removed). */
  deflate(message: Buffer | string): Buffer {
    const plain = Buffer.from(message);
    const out = zlib.deflateRawSync(plain, this.options());
    if (!out.subarray(-4).equals(TRAILER)) throw new Error('a sync flush must end with 00 00 ff ff');
    this.remember(plain);
    return out.subarray(0, -4);
  }

  /**
   * Inflates the next compressed message (the payload of its frames, trailer removed). Throws on
   * bad data, on a reference to an earlier message without context takeover, and on a distance
   * beyond the window.
   */
  inflate(payload: Buffer): Buffer {
    const plain = zlib.inflateRawSync(Buffer.concat([payload, TRAILER]), this.options(true));
    this.remember(plain);
    return plain;
  }
}

/** Deterministic pseudo-random bytes (xorshift32): incompressible, the same on every run. */
export function pseudoRandom(length: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A deterministic word sequence generator. */
function words(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

const VOCABULARY = ['der', 'die', 'und', 'Faust', 'Gretchen', 'Mephistopheles', 'Straße', 'größer', 'schön', 'über', 'Nacht', 'Ἀθῆναι', '—', '€', '😀', 'ok', 'Welt', 'Geist', 'hätte', 'Tür'];

/** Human-like text of about `chars` characters, mixing 1- to 4-byte UTF-8 characters. */
export function proseText(chars: number, seed = 1): string {
  const next = words(seed);
  const parts: string[] = [];
  let length = 0;
  while (length < chars) {
    const word = VOCABULARY[next() % VOCABULARY.length]!;
    const separator = next() % 11 === 0 ? '.\n' : ' ';
    parts.push(word, separator);
    length += word.length + separator.length;
  }
  return parts.join('').slice(0, chars);
}

/** JSON text of about `chars` characters (an array of records). */
export function jsonText(chars: number, seed = 1): string {
  const next = words(seed);
  const records: string[] = [];
  let length = 2;
  while (length < chars) {
    const record = JSON.stringify({ id: next() % 100000, name: VOCABULARY[next() % VOCABULARY.length], score: (next() % 10000) / 100, tags: ['a', 'bb', 'ccc'].slice(next() % 3), active: next() % 2 === 0 });
    records.push(record);
    length += record.length + 1;
  }
  return `[${records.join(',')}]`;
}

/** HTML text of about `chars` characters. */
export function htmlText(chars: number, seed = 1): string {
  const next = words(seed);
  const parts: string[] = ['<!DOCTYPE html><html><body>'];
  let length = parts[0]!.length;
  while (length < chars) {
    const part = `<div class="row r${next() % 7}"><a href="/item/${next() % 5000}">${proseText(20 + (next() % 60), next())}</a></div>\n`;
    parts.push(part);
    length += part.length;
  }
  return parts.join('');
}

/** Bitmap-like binary: a 512×512 grey picture with gradients and noise, like an uncompressed BMP. */
export function bitmapBytes(seed = 1): Buffer {
  const next = words(seed);
  const out = Buffer.allocUnsafe(512 * 512);
  for (let y = 0; y < 512; y++) {
    for (let x = 0; x < 512; x++) {
      const value = (x + y + Math.round(40 * Math.sin(x / 23) * Math.cos(y / 31)) + (next() % 9)) & 0xff;
      out[y * 512 + x] = value;
    }
  }
  return out;
}

/** Exactly `size` bytes of UTF-8 text mixing 1-, 2-, 3- and 4-byte characters. */
export function textOfBytes(size: number): string {
  const unit = 'aé€😀'; // 1 + 2 + 3 + 4 = 10 bytes
  const whole = Math.floor(size / 10);
  return unit.repeat(whole) + 'z'.repeat(size - whole * 10);
}

/** Bytes as hex, shortened, for assertion messages. */
export function hexOf(bytes: Uint8Array, max = 32): string {
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, max)).toString('hex');
  return bytes.byteLength > max ? `${hex}… (${bytes.byteLength} bytes)` : hex;
}

/**
 * A Sec-WebSocket-Extensions value as a list of `name` + parameter map, parsed loosely (tokens,
 * no quoting): enough to compare what a peer sent with what a test expects, whatever the order.
 */
export function extensionParams(header: string | undefined): Array<{ name: string; params: Record<string, string | true> }> {
  if (header === undefined || header.trim() === '') return [];
  return header.split(',').map((element) => {
    const [name = '', ...params] = element.split(';').map((part) => part.trim());
    const map: Record<string, string | true> = {};
    for (const param of params) {
      const equals = param.indexOf('=');
      if (equals === -1) map[param.toLowerCase()] = true;
      else map[param.slice(0, equals).trim().toLowerCase()] = param.slice(equals + 1).trim().replace(/^"(.*)"$/, '$1');
    }
    return { name: name.toLowerCase(), params: map };
  });
}

export interface RawClientConnection {
  peer: RawPeer;
  /** The 101 response head, header names lower-cased. */
  status: number;
  headers: Record<string, string>;
}

/**
 * A hand-made WebSocket client for a server under test: sends an upgrade request (with
 * `extensions` as Sec-WebSocket-Extensions when given), checks the 101 and hands over a RawPeer.
 * Its frames must be sent with `mask: true`.
 */
export function rawClient(port: number, extensions?: string): Promise<RawClientConnection> {
  return new Promise((resolve, reject) => {
    const key = Buffer.from('deflate-test-key').toString('base64');
    const socket = net.connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    const onError = (error: Error): void => reject(error);
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      socket.off('error', onError);
      const lines = received.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number((lines[0] ?? '').split(' ')[1]);
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      if (status !== 101 || headers['sec-websocket-accept'] !== acceptFor(key)) {
        socket.destroy();
        reject(new Error(`expected a valid 101, got ${lines[0]}`));
        return;
      }
      resolve({ peer: new RawPeer(socket, received.subarray(end + 4)), status, headers });
    };
    socket.on('data', onData);
    socket.on('error', onError);
    const request = [
      'GET / HTTP/1.1',
      `Host: 127.0.0.1:${port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${key}`,
      'Sec-WebSocket-Version: 13',
      ...(extensions === undefined ? [] : [`Sec-WebSocket-Extensions: ${extensions}`]),
    ];
    socket.write(request.join('\r\n') + '\r\n\r\n');
  });
}
