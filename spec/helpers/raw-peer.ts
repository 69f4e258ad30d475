// A scripted WebSocket peer over raw TCP, for tests where a real library cannot misbehave on
// demand. Its frame reader and writer are written independently of lib/ on purpose.
import { createHash } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Tests run from the repository root (mocha's working directory), wherever they were compiled to. */
export const fixtures = path.resolve('spec/fixtures');
export const testCert = readFileSync(path.join(fixtures, 'cert.pem'));
export const testKey = readFileSync(path.join(fixtures, 'key.pem'));

export interface RawFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

export interface SendFrameOptions {
  fin?: boolean;
  /** RSV bits as a 3-bit number (4 = RSV1). */
  rsv?: number;
  mask?: boolean;
  /** Force a length encoding: 7, 16 or 64 bits. */
  lengthBits?: 7 | 16 | 64;
}

export function acceptFor(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64');
}

/** Encodes one frame, independently of lib/protocol. */
export function rawFrame(opcode: number, payload: Buffer | string = Buffer.alloc(0), options: SendFrameOptions = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const fin = options.fin ?? true;
  const mask = options.mask ?? false;
  const bits = options.lengthBits ?? (data.length < 126 ? 7 : data.length < 65536 ? 16 : 64);
  const head: number[] = [(fin ? 0x80 : 0) | ((options.rsv ?? 0) << 4) | opcode];
  const maskBit = mask ? 0x80 : 0;
  if (bits === 7) head.push(maskBit | data.length);
  else if (bits === 16) head.push(maskBit | 126, data.length >> 8, data.length & 0xff);
  else {
    head.push(maskBit | 127);
    const big = Buffer.alloc(8);
    big.writeBigUInt64BE(BigInt(data.length));
    head.push(...big);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), data]);
  const key = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
  const masked = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) masked[i] = data[i]! ^ key[i % 4]!;
  return Buffer.concat([Buffer.from(head), key, masked]);
}

/** A close payload: code and reason. */
export function closePayload(code: number, reason = ''): Buffer {
  const reasonBytes = Buffer.from(reason);
  const out = Buffer.alloc(2 + reasonBytes.length);
  out.writeUInt16BE(code, 0);
  reasonBytes.copy(out, 2);
  return out;
}

/** One end of a raw WebSocket connection: read frames, write anything. */
export class RawPeer {
  private buffer = Buffer.alloc(0);
  private readonly frames: RawFrame[] = [];
  private waiters: Array<() => void> = [];
  ended = false;
  readonly closed: Promise<void>;

  constructor(
    readonly socket: net.Socket,
    initial: Buffer = Buffer.alloc(0),
  ) {
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    if (initial.length > 0) this.onData(initial);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }

  private onData(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const frame = this.tryParse();
      if (frame === null) break;
      this.frames.push(frame);
    }
    this.wake();
  }

  private tryParse(): RawFrame | null {
    const b = this.buffer;
    if (b.length < 2) return null;
    const masked = (b[1]! & 0x80) !== 0;
    let length = b[1]! & 0x7f;
    let pos = 2;
    if (length === 126) {
      if (b.length < 4) return null;
      length = b.readUInt16BE(2);
      pos = 4;
    } else if (length === 127) {
      if (b.length < 10) return null;
      length = Number(b.readBigUInt64BE(2));
      pos = 10;
    }
    const keyAt = pos;
    if (masked) pos += 4;
    if (b.length < pos + length) return null;
    const payload = Buffer.from(b.subarray(pos, pos + length));
    if (masked) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ b[keyAt + (i % 4)]!;
    this.buffer = b.subarray(pos + length);
    return { fin: (b[0]! & 0x80) !== 0, rsv: (b[0]! >> 4) & 7, opcode: b[0]! & 0x0f, masked, payload };
  }

  /** The next frame; rejects if the connection ends first. */
  async nextFrame(): Promise<RawFrame> {
    for (;;) {
      const frame = this.frames.shift();
      if (frame !== undefined) return frame;
      if (this.ended) throw new Error('connection ended before the next frame');
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Resolves once the peer ends or closes the TCP connection, with the frames left unread. */
  async waitForEnd(): Promise<RawFrame[]> {
    while (!this.ended) await new Promise<void>((resolve) => this.waiters.push(resolve));
    return this.frames.splice(0);
  }

  send(opcode: number, payload?: Buffer | string, options?: SendFrameOptions): void {
    this.socket.write(rawFrame(opcode, payload, options));
  }

  sendRaw(bytes: Buffer | Uint8Array): void {
    this.socket.write(bytes);
  }

  sendClose(code?: number, reason = '', options?: SendFrameOptions): void {
    this.send(0x8, code === undefined ? Buffer.alloc(0) : closePayload(code, reason), options);
  }
}

export interface RawRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
}

export interface RawServerOptions {
  /** Builds the response head; default: a correct 101 choosing the first offered protocol if `protocol` is true. */
  respond?: (request: RawRequest) => string;
  /** Bytes sent right after the 101 head, in the same write. */
  afterHead?: Buffer;
  tls?: boolean;
  /** Select this subprotocol in the 101. */
  protocol?: string;
}

export interface RawServer {
  port: number;
  url: string;
  /** Resolves with the next accepted connection (after the handshake). */
  accept(): Promise<{ peer: RawPeer; request: RawRequest }>;
  close(): Promise<void>;
}

export function switchingProtocols(request: RawRequest, extra: string[] = []): string {
  const key = request.headers['sec-websocket-key'] ?? '';
  return ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${acceptFor(key)}`, ...extra]
    .join('\r\n')
    .concat('\r\n\r\n');
}

/** A TCP (or TLS) server that answers WebSocket handshakes and hands over raw peers. */
export async function startRawServer(options: RawServerOptions = {}): Promise<RawServer> {
  const pending: Array<{ peer: RawPeer; request: RawRequest }> = [];
  const waiting: Array<(value: { peer: RawPeer; request: RawRequest }) => void> = [];
  const sockets = new Set<net.Socket>();
  const onSocket = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      const lines = head.subarray(0, end).toString('latin1').split('\r\n');
      const [method = '', path = ''] = (lines[0] ?? '').split(' ');
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const request = { method, path, headers };
      const extra = options.protocol === undefined ? [] : [`Sec-WebSocket-Protocol: ${options.protocol}`];
      const response = options.respond ? options.respond(request) : switchingProtocols(request, extra);
      socket.write(options.afterHead ? Buffer.concat([Buffer.from(response, 'latin1'), options.afterHead]) : Buffer.from(response, 'latin1'));
      const entry = { peer: new RawPeer(socket, head.subarray(end + 4)), request };
      const waiter = waiting.shift();
      if (waiter) waiter(entry);
      else pending.push(entry);
    };
    socket.on('data', onData);
  };
  const server = options.tls
    ? tls.createServer({ cert: testCert, key: testKey }, onSocket)
    : net.createServer(onSocket);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `${options.tls ? 'wss' : 'ws'}://127.0.0.1:${port}`,
    accept: () => {
      const entry = pending.shift();
      if (entry) return Promise.resolve(entry);
      return new Promise((resolve) => waiting.push(resolve));
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
