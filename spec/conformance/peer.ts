// The scripted peer of the conformance suite: it plays Autobahn|Testsuite's part over raw TCP.
// Against our client it is the server (frames unmasked), against our server it is the client
// (frames masked). It writes any bytes a case asks for, and reads our side's frames with its own
// RFC 6455 reader, written independently of lib/, which also checks that what we send is
// well-formed (RSV clear, masking by role, no fragmented or oversized control frames, nothing
// after our close frame).
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { acceptFor } from '../helpers/raw-peer.js';

/** Which of our endpoints is under test. The peer plays the other part. */
export type OurRole = 'client' | 'server';

export const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

/** How long the peer waits for something our side must do before calling it a failure. */
export const DEADLINE_MS = 10_000;

/** What our side sent, as the peer sees it: whole messages and control frames. */
export type PeerEvent =
  | { type: 'text' | 'binary'; data: Buffer; frames: number }
  | { type: 'ping' | 'pong'; data: Buffer }
  | { type: 'close'; code: number | null; reason: Buffer };

export interface FrameOptions {
  fin?: boolean;
  /** The three RSV bits as a number: 4 = RSV1, 2 = RSV2, 1 = RSV3 (Autobahn's numbering). */
  rsv?: number;
}

/** One turn of the event loop, so the other end of a loopback socket reads what was written. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Rejects with `message` if `promise` has not settled within `ms`; the timer never outlives it. */
export function within<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** XOR-masks `data` into a new buffer with `key`, a word at a time where it can. */
function mask(data: Buffer, key: Buffer): Buffer {
  const out = Buffer.allocUnsafe(data.length);
  const words = data.length >>> 2;
  const k = key.readUInt32LE(0);
  for (let i = 0; i < words; i++) out.writeUInt32LE((data.readUInt32LE(i * 4) ^ k) >>> 0, i * 4);
  for (let i = words * 4; i < data.length; i++) out[i] = data[i]! ^ key[i & 3]!;
  return out;
}

/** Encodes one frame as RFC 6455 §5.2 draws it, with the minimal length encoding. */
export function encodeFrame(opcode: number, payload: Buffer, masked: boolean, options: FrameOptions = {}): Buffer {
  const fin = options.fin ?? true;
  const length = payload.length;
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + lengthBytes + (masked ? 4 : 0));
  head[0] = (fin ? 0x80 : 0) | ((options.rsv ?? 0) << 4) | opcode;
  head[1] = (masked ? 0x80 : 0) | (lengthBytes === 0 ? length : lengthBytes === 2 ? 126 : 127);
  if (lengthBytes === 2) head.writeUInt16BE(length, 2);
  if (lengthBytes === 8) head.writeBigUInt64BE(BigInt(length), 2);
  if (!masked) return Buffer.concat([head, payload]);
  // A fresh key per frame, as a browser would: a mask-phase bug cannot hide behind one key.
  const key = randomBytes(4);
  key.copy(head, head.length - 4);
  return Buffer.concat([head, mask(payload, key)]);
}

/** A close payload: the code (if any) and the reason bytes. */
export function closeBody(code: number | null, reason: Buffer | string = ''): Buffer {
  if (code === null) return Buffer.alloc(0);
  const head = Buffer.alloc(2);
  head.writeUInt16BE(code, 0);
  return Buffer.concat([head, Buffer.from(reason)]);
}

/** Splits `bytes` into pieces of `size` bytes (the last may be shorter). */
export function chop(bytes: Buffer, size: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) pieces.push(bytes.subarray(at, Math.min(bytes.length, at + size)));
  return pieces;
}

/** A short description of bytes for failure messages. */
export function show(bytes: Buffer): string {
  if (bytes.length <= 48) return `<${bytes.toString('hex')}> (${bytes.length} bytes)`;
  return `<${bytes.subarray(0, 24).toString('hex')}…${bytes.subarray(-8).toString('hex')}> (${bytes.length} bytes)`;
}

export function describeEvent(event: PeerEvent): string {
  if (event.type === 'close') return `close ${event.code ?? '(no code)'} reason ${show(event.reason)}`;
  return `${event.type} ${show(event.data)}`;
}

interface IncomingFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

/** Gathers socket chunks without copying until a whole frame is there: O(bytes) for any slicing. */
class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  get pendingBytes(): number {
    return this.buffered;
  }

  /** The first `count` buffered bytes (count ≤ 14), without consuming them. */
  private peek(count: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= count) return first;
    return Buffer.concat(this.chunks, Math.min(this.buffered, 64)).subarray(0, count);
  }

  private take(count: number): Buffer {
    if (count === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length >= count) {
      this.chunks[0] = first.subarray(count);
      if (this.chunks[0].length === 0) this.chunks.shift();
      this.buffered -= count;
      return first.subarray(0, count);
    }
    const out = Buffer.allocUnsafe(count);
    let filled = 0;
    while (filled < count) {
      const chunk = this.chunks[0]!;
      const n = Math.min(chunk.length, count - filled);
      chunk.copy(out, filled, 0, n);
      filled += n;
      if (n === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(n);
    }
    this.buffered -= count;
    return out;
  }

  next(): IncomingFrame | null {
    if (this.buffered < 2) return null;
    const start = this.peek(2);
    const masked = (start[1]! & 0x80) !== 0;
    const length7 = start[1]! & 0x7f;
    const headerLength = 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) + (masked ? 4 : 0);
    if (this.buffered < headerLength) return null;
    const head = this.peek(headerLength);
    let length = length7;
    if (length7 === 126) length = head.readUInt16BE(2);
    else if (length7 === 127) length = Number(head.readBigUInt64BE(2));
    if (this.buffered < headerLength + length) return null;
    const header = Buffer.from(this.take(headerLength));
    let payload = this.take(length);
    if (masked) payload = mask(payload, header.subarray(headerLength - 4));
    return { fin: (header[0]! & 0x80) !== 0, rsv: (header[0]! >> 4) & 7, opcode: header[0]! & 0x0f, masked, payload };
  }
}

/**
 * One raw connection to (or from) our endpoint after the opening handshake. Cases drive it:
 * `send` writes frames (one write, or chopped with a turn of the event loop between pieces),
 * `nextEvent` waits for the next thing our side sent.
 */
export class ScriptedPeer {
  /** The peer masks its frames when it plays the client, i.e. when our server is under test. */
  readonly masks: boolean;
  private readonly reader = new FrameReader();
  private readonly events: PeerEvent[] = [];
  private waiters: Array<() => void> = [];
  /** A frame of our side that broke RFC 6455; fails every later wait. */
  violation: Error | null = null;
  private message: { opcode: number; parts: Buffer[]; frames: number } | null = null;
  private closeSeen = false;
  /** Our side's FIN (or the socket closed) arrived. */
  finReceived = false;
  peerEnded = false;
  socketClosed = false;
  readonly closed: Promise<void>;

  constructor(
    readonly socket: net.Socket,
    readonly ourRole: OurRole,
    initial: Buffer,
  ) {
    this.masks = ourRole === 'server';
    socket.setNoDelay(true);
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.socketClosed = true;
        this.finReceived = true;
        this.wake();
        resolve();
      }),
    );
    socket.on('end', () => {
      this.finReceived = true;
      this.wake();
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    if (initial.length > 0) this.onData(initial);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }

  private onData(chunk: Buffer): void {
    this.reader.push(chunk);
    for (;;) {
      const frame = this.reader.next();
      if (frame === null) break;
      this.onFrame(frame);
    }
    this.wake();
  }

  private violate(message: string): void {
    this.violation ??= new Error(`our ${this.ourRole} broke RFC 6455: ${message}`);
  }

  private onFrame(frame: IncomingFrame): void {
    const { opcode, payload } = frame;
    if (this.closeSeen) return this.violate(`it sent a frame (opcode ${opcode}) after its close frame`);
    if (frame.rsv !== 0) return this.violate(`RSV bits ${frame.rsv} set without an extension`);
    if (frame.masked !== (this.ourRole === 'client')) {
      return this.violate(frame.masked ? 'a server frame was masked' : 'a client frame was not masked');
    }
    if (opcode >= 0x8) {
      if (!frame.fin) return this.violate('a fragmented control frame');
      if (payload.length > 125) return this.violate(`a control frame of ${payload.length} bytes`);
      if (opcode === OP.PING || opcode === OP.PONG) {
        this.events.push({ type: opcode === OP.PING ? 'ping' : 'pong', data: payload });
      } else if (opcode === OP.CLOSE) {
        if (payload.length === 1) return this.violate('a close frame with a one-byte payload');
        this.closeSeen = true;
        this.events.push(
          payload.length === 0
            ? { type: 'close', code: null, reason: Buffer.alloc(0) }
            : { type: 'close', code: payload.readUInt16BE(0), reason: payload.subarray(2) },
        );
      } else {
        return this.violate(`reserved control opcode ${opcode}`);
      }
      return;
    }
    if (opcode === OP.CONT) {
      if (this.message === null) return this.violate('a continuation frame with no message in progress');
    } else if (opcode === OP.TEXT || opcode === OP.BINARY) {
      if (this.message !== null) return this.violate('a new message inside a fragmented one');
      this.message = { opcode, parts: [], frames: 0 };
    } else {
      return this.violate(`reserved data opcode ${opcode}`);
    }
    const message = this.message!;
    message.parts.push(payload);
    message.frames++;
    if (frame.fin) {
      this.message = null;
      const data = message.parts.length === 1 ? message.parts[0]! : Buffer.concat(message.parts);
      this.events.push({ type: message.opcode === OP.TEXT ? 'text' : 'binary', data, frames: message.frames });
    }
  }

  /** Something our side sent is waiting to be read. */
  get hasEvent(): boolean {
    return this.events.length > 0 || this.violation !== null;
  }

  /** The next message or control frame our side sent. */
  async nextEvent(waitingFor: string, ms = DEADLINE_MS): Promise<PeerEvent> {
    const wait = async (): Promise<PeerEvent> => {
      for (;;) {
        if (this.violation !== null) throw this.violation;
        const event = this.events.shift();
        if (event !== undefined) return event;
        if (this.finReceived) throw new Error(`our ${this.ourRole} closed TCP while the peer waited for ${waitingFor}`);
        await new Promise<void>((resolve) => this.waiters.push(resolve));
      }
    };
    return within(wait(), ms, `our ${this.ourRole} sent nothing within ${ms} ms while the peer waited for ${waitingFor}`);
  }

  /** Resolves once our side's FIN arrived (or the socket closed); fails if frames came first. */
  async waitForFin(waitingFor: string, ms = DEADLINE_MS): Promise<void> {
    const wait = async (): Promise<void> => {
      while (!this.finReceived) await new Promise<void>((resolve) => this.waiters.push(resolve));
    };
    await within(wait(), ms, `our ${this.ourRole} did not close TCP within ${ms} ms: ${waitingFor}`);
    this.assertQuiet('before closing TCP');
  }

  /** Nothing more was sent, and everything sent was well-formed. */
  assertQuiet(when: string): void {
    if (this.violation !== null) throw this.violation;
    if (this.events.length > 0) {
      throw new Error(`our ${this.ourRole} sent ${this.events.map(describeEvent).join(', ')} ${when}`);
    }
    if (this.message !== null || this.reader.pendingBytes > 0) {
      throw new Error(`our ${this.ourRole} left a partial message or frame ${when}`);
    }
  }

  /** Builds a frame the way this peer sends it (masked when it plays the client). */
  frame(opcode: number, payload: Buffer | string = Buffer.alloc(0), options?: FrameOptions): Buffer {
    return encodeFrame(opcode, Buffer.from(payload), this.masks, options);
  }

  /** Writes bytes; resolves once the kernel has them (or the socket is gone). */
  write(bytes: Buffer): Promise<void> {
    if (this.socket.destroyed || this.socket.writableEnded) return Promise.resolve();
    return new Promise((resolve) => this.socket.write(bytes, () => resolve()));
  }

  /**
   * Sends frames. By default all in one write. `chopSize` cuts the bytes into pieces of that
   * size, `frameWise` writes each frame on its own; either way the peer lets the event loop
   * turn between writes, so our side reads the pieces one by one (Autobahn's chopsize / sync).
   */
  async send(frames: Buffer | Buffer[], options: { chopSize?: number; frameWise?: boolean } = {}): Promise<void> {
    const list = Array.isArray(frames) ? frames : [frames];
    let pieces: Buffer[];
    if (options.chopSize !== undefined) pieces = chop(Buffer.concat(list), options.chopSize);
    else if (options.frameWise) pieces = list;
    else pieces = [Buffer.concat(list)];
    for (const piece of pieces) {
      await this.write(piece);
      if (pieces.length > 1) await nextTurn();
    }
  }

  /** Ends the peer's side of TCP (its FIN). */
  end(): void {
    this.peerEnded = true;
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

// The opening handshake, both ways.

export interface HttpHead {
  startLine: string;
  headers: Map<string, string>;
  /** Bytes after the head: the first frames, if any. */
  rest: Buffer;
}

/** Reads one HTTP head from a socket (bounded: a runaway head fails the case). */
export function readHttpHead(socket: net.Socket): Promise<HttpHead> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const cleanup = (): void => {
      socket.off('data', onData);
      socket.off('close', onClose);
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error('the connection closed during the opening handshake'));
    };
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end === -1) {
        if (buffered.length > 16384) {
          cleanup();
          reject(new Error('HTTP head over 16 KiB'));
        }
        return;
      }
      cleanup();
      socket.pause();
      const lines = buffered.subarray(0, end).toString('latin1').split('\r\n');
      const headers = new Map<string, string>();
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        if (colon <= 0) continue;
        const name = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
      }
      resolve({ startLine: lines[0] ?? '', headers, rest: buffered.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.on('close', onClose);
  });
}

function hasToken(value: string | undefined, token: string): boolean {
  return (value ?? '').split(',').some((part) => part.trim().toLowerCase() === token);
}

/**
 * The peer as a client: opens TCP to our server, sends an upgrade request (no extensions, no
 * subprotocol), checks the 101 and its Sec-WebSocket-Accept.
 */
export async function connectToServer(port: number): Promise<ScriptedPeer> {
  // allowHalfOpen: the peer decides when to send its FIN (Node would otherwise answer ours at once).
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const key = randomBytes(16).toString('base64');
  socket.write(
    [
      'GET /conformance HTTP/1.1',
      `Host: 127.0.0.1:${port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${key}`,
      'Sec-WebSocket-Version: 13',
      '',
      '',
    ].join('\r\n'),
  );
  const head = await within(readHttpHead(socket), DEADLINE_MS, 'our server did not answer the upgrade request');
  const fail = (why: string): never => {
    socket.destroy();
    throw new Error(`our server's handshake response is wrong: ${why} (${head.startLine})`);
  };
  if (!/^HTTP\/1\.1 101 /.test(head.startLine)) fail('not 101');
  if (!hasToken(head.headers.get('upgrade'), 'websocket')) fail('no Upgrade: websocket');
  if (!hasToken(head.headers.get('connection'), 'upgrade')) fail('no Connection: Upgrade');
  if (head.headers.get('sec-websocket-accept') !== acceptFor(key)) fail('wrong Sec-WebSocket-Accept');
  if (head.headers.has('sec-websocket-extensions')) fail('an extension nobody offered');
  const peer = new ScriptedPeer(socket, 'server', head.rest);
  socket.resume();
  return peer;
}

/**
 * The peer as a server: a TCP listener that checks our client's upgrade request, answers 101
 * and hands over the connection. It accepts no extension and selects no subprotocol.
 */
export class PeerServer {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly ready: ScriptedPeer[] = [];
  private readonly waiting: Array<{ resolve(peer: ScriptedPeer): void; reject(error: Error): void }> = [];
  port = 0;

  constructor() {
    // allowHalfOpen: the peer decides when to send its FIN, as a WebSocket server must.
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => void this.onSocket(socket));
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/conformance`;
  }

  private async onSocket(socket: net.Socket): Promise<void> {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    let head: HttpHead;
    try {
      head = await readHttpHead(socket);
    } catch (error) {
      return this.failNext(error as Error);
    }
    const key = head.headers.get('sec-websocket-key') ?? '';
    const problems: string[] = [];
    if (!/^GET \S+ HTTP\/1\.1$/.test(head.startLine)) problems.push(`request line ${JSON.stringify(head.startLine)}`);
    if (!head.headers.has('host')) problems.push('no Host');
    if (!hasToken(head.headers.get('upgrade'), 'websocket')) problems.push('no Upgrade: websocket');
    if (!hasToken(head.headers.get('connection'), 'upgrade')) problems.push('no Connection: Upgrade');
    if (head.headers.get('sec-websocket-version') !== '13') problems.push('Sec-WebSocket-Version is not 13');
    if (Buffer.from(key, 'base64').length !== 16) problems.push('Sec-WebSocket-Key is not 16 bytes in base64');
    if (problems.length > 0) {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
      return this.failNext(new Error(`our client's upgrade request is wrong: ${problems.join('; ')}`));
    }
    socket.write(
      ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${acceptFor(key)}`, '', ''].join('\r\n'),
    );
    const peer = new ScriptedPeer(socket, 'client', head.rest);
    socket.resume();
    const waiter = this.waiting.shift();
    if (waiter !== undefined) waiter.resolve(peer);
    else this.ready.push(peer);
  }

  private failNext(error: Error): void {
    const waiter = this.waiting.shift();
    waiter?.reject(error);
  }

  /** The next connection our client opens, once its handshake was answered. */
  accept(): Promise<ScriptedPeer> {
    const peer = this.ready.shift();
    if (peer !== undefined) return Promise.resolve(peer);
    return within(
      new Promise((resolve, reject) => this.waiting.push({ resolve, reject })),
      DEADLINE_MS,
      'our client did not connect',
    );
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
