// The test page the browser loads from our server. Its script is built from the functions below
// (their compiled source, through Function.prototype.toString), so they are type-checked here but
// run in Chromium: each one may use only browser globals and the other functions this file puts
// into the page (makePayload, describeChunk), never imports or module-level values.
//
// The page keeps its connections in a table and exposes `globalThis.t`, which the spec drives
// with page.evaluate. Large messages never cross page.evaluate: both sides report SHA-256 digests.

/** What a payload looks like: text or binary, pseudo-random or highly compressible. */
export type PayloadKind = 'text' | 'binary';

/** A description of one message, computed where it was sent or received. */
export interface ChunkInfo {
  /** 'string' for text; the constructor name for binary ('Uint8Array', 'ArrayBuffer', ...). */
  type: string;
  /** Bytes: UTF-8 length for text. */
  length: number;
  /** SHA-256 of the bytes (UTF-8 for text), hex. */
  digest: string;
  /** The first 200 characters of a text message, for readable failures. */
  preview?: string;
}

export interface OpenResult {
  id: number;
  protocol: string;
  extensions: string;
  /** Constructor name of the opened info's readable, for a sanity check. */
  readableType: string;
}

export type ClosedResult =
  | { settled: 'fulfilled'; closeCode: number; reason: string }
  | { settled: 'rejected'; name: string; message: string; closeCode: number | null; reason: string };

export interface PageFeatures {
  hasWebSocketStream: boolean;
  hasWebSocketError: boolean;
  isSecureContext: boolean;
  userAgent: string;
}

/**
 * A deterministic payload of exactly `size` bytes (UTF-8 bytes for text). Pseudo-random ones mix
 * 1-, 2-, 3- and 4-byte characters (text) or xorshift bytes (binary); compressible ones repeat a
 * phrase. Runs in the page and in Node alike.
 */
export function makePayload(kind: PayloadKind, size: number, seed: number, compressible: boolean): string | Uint8Array {
  let x = seed >>> 0 || 1;
  const next = (): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  if (kind === 'binary') {
    const bytes = new Uint8Array(size);
    if (compressible) {
      const phrase = new TextEncoder().encode(`binary record ${seed}: the same bytes again and again; `);
      for (let i = 0; i < size; i++) bytes[i] = phrase[i % phrase.length]! ^ (Math.floor(i / 4096) & 0x07);
    } else {
      for (let i = 0; i < size; i++) bytes[i] = next() & 0xff;
    }
    return bytes;
  }
  if (compressible) {
    const phrase = `{"seed":${seed},"text":"WebSocketStream ✓ permessage-deflate é 😀"},\n`;
    const phraseBytes = new TextEncoder().encode(phrase).length;
    const whole = Math.floor(size / phraseBytes);
    return phrase.repeat(whole) + 'x'.repeat(size - whole * phraseBytes);
  }
  // Characters of 1, 2, 3 and 4 UTF-8 bytes, chosen at random while they still fit.
  const alphabet = [['a', 'Z', '7', ' ', '~'], ['é', 'ß', 'ж'], ['€', '✓', '中'], ['😀', '𝄞']];
  const parts: string[] = [];
  let left = size;
  while (left > 0) {
    const r = next();
    const width = Math.min(left, (r & 3) + 1);
    const choices = alphabet[width - 1]!;
    parts.push(choices[(r >>> 8) % choices.length]!);
    left -= width;
  }
  return parts.join('');
}

/** Describes a chunk as sent or received: type, byte length and SHA-256 (page side). */
export async function describeChunk(chunk: unknown): Promise<ChunkInfo> {
  let bytes: Uint8Array;
  let type: string;
  let preview: string | undefined;
  if (typeof chunk === 'string') {
    type = 'string';
    bytes = new TextEncoder().encode(chunk);
    preview = chunk.slice(0, 200);
  } else if (chunk instanceof ArrayBuffer) {
    type = 'ArrayBuffer';
    bytes = new Uint8Array(chunk);
  } else if (ArrayBuffer.isView(chunk)) {
    type = (chunk as object).constructor.name;
    bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  } else {
    return { type: `unexpected ${Object.prototype.toString.call(chunk)}`, length: -1, digest: '' };
  }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
  return preview === undefined ? { type, length: bytes.byteLength, digest: hex } : { type, length: bytes.byteLength, digest: hex, preview };
}

/** The page's driver, installed as globalThis.t. */
export function pageMain(): void {
  // The browser's WebSocketStream, which lib.dom.d.ts does not describe yet.
  interface BrowserOpenInfo {
    readable: ReadableStream<unknown>;
    writable: WritableStream<unknown>;
    protocol: string;
    extensions: string;
  }
  interface BrowserWebSocketStream {
    readonly url: string;
    readonly opened: Promise<BrowserOpenInfo>;
    readonly closed: Promise<{ closeCode: number; reason: string }>;
    close(closeInfo?: { closeCode?: number; reason?: string }): void;
  }
  type BrowserWebSocketStreamConstructor = new (url: string, options?: { protocols?: string[]; signal?: AbortSignal }) => BrowserWebSocketStream;
  interface Connection {
    stream: BrowserWebSocketStream;
    reader: ReadableStreamDefaultReader<unknown>;
    writer: WritableStreamDefaultWriter<unknown>;
    closed: Promise<ClosedResult>;
  }

  const connections = new Map<number, Connection>();
  let nextId = 1;

  function connection(id: number): Connection {
    const found = connections.get(id);
    if (found === undefined) throw new Error(`no connection ${id}`);
    return found;
  }

  function constructorOf(): BrowserWebSocketStreamConstructor {
    const ctor = (globalThis as unknown as { WebSocketStream?: BrowserWebSocketStreamConstructor }).WebSocketStream;
    if (ctor === undefined) {
      throw new Error(`this Chromium has no WebSocketStream (it needs Chromium 124 or later): ${navigator.userAgent}`);
    }
    return ctor;
  }

  const api = {
    features(): PageFeatures {
      return {
        hasWebSocketStream: 'WebSocketStream' in globalThis,
        hasWebSocketError: 'WebSocketError' in globalThis,
        isSecureContext: globalThis.isSecureContext,
        userAgent: navigator.userAgent,
      };
    },

    /** Opens a connection; resolves once `opened` does. */
    async open(url: string, protocols?: string[]): Promise<OpenResult> {
      const Ctor = constructorOf();
      const stream = protocols === undefined ? new Ctor(url) : new Ctor(url, { protocols });
      const closed = stream.closed.then(
        (info): ClosedResult => ({ settled: 'fulfilled', closeCode: info.closeCode, reason: info.reason }),
        (error: unknown): ClosedResult => {
          const e = error as { name?: unknown; message?: unknown; closeCode?: unknown; reason?: unknown };
          return {
            settled: 'rejected',
            name: String(e?.name),
            message: String(e?.message),
            closeCode: typeof e?.closeCode === 'number' ? e.closeCode : null,
            reason: typeof e?.reason === 'string' ? e.reason : '',
          };
        },
      );
      const info = await stream.opened;
      const id = nextId++;
      connections.set(id, { stream, reader: info.readable.getReader(), writer: info.writable.getWriter(), closed });
      return { id, protocol: info.protocol, extensions: info.extensions, readableType: info.readable.constructor.name };
    },

    /** Sends one generated message; resolves with its description once the write resolved. */
    async send(id: number, kind: PayloadKind, size: number, seed: number, compressible: boolean): Promise<ChunkInfo> {
      const payload = makePayload(kind, size, seed, compressible);
      const sent = await describeChunk(payload);
      await connection(id).writer.write(payload);
      return sent;
    },

    /** Reads the next message: its description, or null when the readable is done. */
    async receive(id: number): Promise<ChunkInfo | null> {
      const { value, done } = await connection(id).reader.read();
      return done ? null : describeChunk(value);
    },

    /** Sends one message and reads the next (the echo), both at once. */
    async echo(id: number, kind: PayloadKind, size: number, seed: number, compressible: boolean): Promise<{ sent: ChunkInfo; received: ChunkInfo | null }> {
      const [sent, received] = await Promise.all([api.send(id, kind, size, seed, compressible), api.receive(id)]);
      return { sent, received };
    },

    /** Sends several messages without waiting for echoes, then reads as many. */
    async sendMany(id: number, messages: Array<[PayloadKind, number, number, boolean]>): Promise<{ sent: ChunkInfo[]; received: Array<ChunkInfo | null> }> {
      const sending = (async () => {
        const sent: ChunkInfo[] = [];
        for (const [kind, size, seed, compressible] of messages) sent.push(await api.send(id, kind, size, seed, compressible));
        return sent;
      })();
      const receiving = (async () => {
        const received: Array<ChunkInfo | null> = [];
        for (let i = 0; i < messages.length; i++) received.push(await api.receive(id));
        return received;
      })();
      const [sent, received] = await Promise.all([sending, receiving]);
      return { sent, received };
    },

    /** WebSocketStream.close(closeInfo); reports a synchronous throw instead of rejecting. */
    close(id: number, closeInfo?: { closeCode?: number; reason?: string }): string | null {
      try {
        connection(id).stream.close(closeInfo);
        return null;
      } catch (error) {
        return String(error);
      }
    },

    /** How `closed` settled. */
    closed(id: number): Promise<ClosedResult> {
      return connection(id).closed;
    },
  };
  (globalThis as unknown as { t: typeof api }).t = api;
}

export type PageApi = {
  features(): PageFeatures;
  open(url: string, protocols?: string[]): Promise<OpenResult>;
  send(id: number, kind: PayloadKind, size: number, seed: number, compressible: boolean): Promise<ChunkInfo>;
  receive(id: number): Promise<ChunkInfo | null>;
  echo(id: number, kind: PayloadKind, size: number, seed: number, compressible: boolean): Promise<{ sent: ChunkInfo; received: ChunkInfo | null }>;
  sendMany(id: number, messages: Array<[PayloadKind, number, number, boolean]>): Promise<{ sent: ChunkInfo[]; received: Array<ChunkInfo | null> }>;
  close(id: number, closeInfo?: { closeCode?: number; reason?: string }): string | null;
  closed(id: number): Promise<ClosedResult>;
};

/** The HTML of the test page: the functions above, as the browser will run them. */
export function pageHtml(): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>WebSocketStream interop</title></head>
<body>
<p>WebSocketStream interop test page.</p>
<script>
"use strict";
const makePayload = ${makePayload.toString()};
const describeChunk = ${describeChunk.toString()};
(${pageMain.toString()})();
</script>
</body>
</html>
`;
}
