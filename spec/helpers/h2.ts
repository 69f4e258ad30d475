// Helpers for the HTTP/2 (RFC 8441) specs: a raw HTTP/2 client that opens extended CONNECT streams
// by hand (node:http2 alone, none of lib/), with a WebSocket frame reader for what our server
// sends, and a few promise helpers over streams and sessions.
import { expect } from 'chai';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { buildFrame, closeBody } from './codec.js';
import type { Guard } from './faults.js';
import { testCert } from './raw-peer.js';

export const MASK = [0x12, 0x34, 0x56, 0x78] as const;

/** A masked client frame (RFC 6455 §5.3: every client frame is masked). */
export function clientFrame(opcode: number, payload: Uint8Array | string = Buffer.alloc(0)): Buffer {
  return buildFrame(opcode, payload, { mask: MASK });
}

/** A masked close frame with a code and reason. */
export function clientClose(code: number, reason = ''): Buffer {
  return clientFrame(0x8, closeBody(code, reason));
}

export interface ServerFrame {
  opcode: number;
  fin: boolean;
  rsv1: boolean;
  payload: Buffer;
}

/** Reads the unmasked frames a server sends on one stream; enough of RFC 6455 §5.2 for tests. */
export class FrameCollector {
  readonly frames: ServerFrame[] = [];
  private buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  ended = false;

  constructor(stream: http2.ClientHttp2Stream) {
    stream.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.parse();
    });
    stream.on('end', () => {
      this.ended = true;
      this.wake();
    });
    stream.on('close', () => this.wake());
  }

  private parse(): void {
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) return;
      let length = b[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (b.length < 4) return;
        length = b.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (b.length < 10) return;
        length = Number(b.readBigUInt64BE(2));
        offset = 10;
      }
      expect(b[1]! & 0x80, 'a server frame is not masked').to.equal(0);
      if (b.length < offset + length) return;
      this.frames.push({ opcode: b[0]! & 0x0f, fin: (b[0]! & 0x80) !== 0, rsv1: (b[0]! & 0x40) !== 0, payload: b.subarray(offset, offset + length) });
      this.buffer = b.subarray(offset + length);
      this.wake();
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Resolves once `count` frames have arrived (rejects if the stream ends first). */
  async frame(index: number): Promise<ServerFrame> {
    while (this.frames.length <= index) {
      if (this.ended) throw new Error(`the stream ended after ${this.frames.length} frames`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    return this.frames[index]!;
  }
}

/** A raw HTTP/2 session to our server, its SETTINGS received. */
export async function rawSession(guard: Guard, port: number, secure = false): Promise<http2.ClientHttp2Session> {
  const session = secure
    ? http2.connect(`https://localhost:${port}`, { ca: testCert })
    : http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  guard.defer(() => closeSession(session));
  await new Promise<void>((resolve, reject) => {
    session.once('remoteSettings', () => resolve());
    session.once('error', reject);
  });
  return session;
}

/** Destroys a session and waits for its close. */
export function closeSession(session: http2.Http2Session): Promise<void> {
  if (session.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    session.once('close', () => resolve());
    session.destroy();
  });
}

export interface RawConnect {
  stream: http2.ClientHttp2Stream;
  /** The response headers, status included. */
  response: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader;
  frames: FrameCollector;
  /** The response body (for refusals), once the stream ended. */
  body(): Promise<string>;
}

/** The extended CONNECT of RFC 8441 §5, with `headers` added or (null) removed. */
export function connectHeaders(authority: string, path = '/', headers: Record<string, string | null> = {}, scheme = 'http'): http2.OutgoingHttpHeaders {
  const all: Record<string, string | null> = {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': scheme,
    ':authority': authority,
    ':path': path,
    'sec-websocket-version': '13',
    ...headers,
  };
  const result: http2.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(all)) if (value !== null) result[name] = value;
  return result;
}

/** Opens a stream with `headers` and waits for the response headers. */
export async function rawConnect(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, options: { endStream?: boolean } = {}): Promise<RawConnect> {
  const stream = session.request(headers, { endStream: options.endStream ?? false });
  stream.on('error', () => {});
  let text = '';
  const chunks: Buffer[] = [];
  const ended = new Promise<void>((resolve) => stream.once('close', () => resolve()));
  const response = await new Promise<http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader>((resolve, reject) => {
    stream.once('response', resolve);
    stream.once('close', () => reject(new Error(`the stream closed without a response (rstCode ${stream.rstCode})`)));
  });
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  const frames = response[':status'] === 200 && headers[':protocol'] !== undefined ? new FrameCollector(stream) : null;
  return {
    stream,
    response,
    frames: frames ?? (null as unknown as FrameCollector),
    body: async () => {
      await ended;
      text = Buffer.concat(chunks).toString('utf8');
      return text;
    },
  };
}

/** Resolves with the stream's RST_STREAM code once it has closed. */
export function rstCodeOf(stream: http2.Http2Stream): Promise<number> {
  if (stream.closed && stream.destroyed) return Promise.resolve(stream.rstCode ?? -1);
  return new Promise((resolve) => stream.once('close', () => resolve(stream.rstCode ?? -1)));
}

/** Listens on 127.0.0.1 port 0 and returns the port. */
export async function listenH2(server: http2.Http2Server | http2.Http2SecureServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return (server.address() as AddressInfo).port;
}

/** Counts the sessions a server accepted, and closes them all on cleanup. */
export function trackSessions(guard: Guard, server: http2.Http2Server | http2.Http2SecureServer): http2.ServerHttp2Session[] {
  const sessions: http2.ServerHttp2Session[] = [];
  server.on('session', (session: http2.ServerHttp2Session) => sessions.push(session));
  guard.defer(() => Promise.all(sessions.map(closeSession)));
  return sessions;
}

/** Closes an http2 server (its sessions must be closed too, or close() waits for them). */
export function closeServer(server: { close(callback: () => void): unknown }): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
