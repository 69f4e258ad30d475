// Local stand-ins for the pywebsocket handlers (web-platform-tests `websockets/handlers/*_wsh.py`)
// that the WebSocketStream tests in `websockets/stream/tentative/` talk to (docs/semantics.md#how-this-is-checked).
//
// A raw TCP server (optionally TLS, for the `?wss` variant) on 127.0.0.1, port 0, that does the
// opening handshake itself and dispatches on the request path. For the `?wpt_flags=h2` variant it
// is an HTTP/2 server (node:http2, TLS) that takes RFC 8441's extended CONNECT instead, and the
// same handlers run over the stream; a reset is then RST_STREAM (CANCEL) instead of TCP's RST. Its frame reader and writer are
// written here, independently of lib/ and of spec/helpers/raw-peer.ts: server side, so it reads
// masked frames and writes unmasked ones.
//
// Like pywebsocket, it reads a client frame only when the handler asks for a message (or while it
// waits for the client's close frame); otherwise the socket is paused and the client's sends back
// up in TCP. And like pywebsocket it is not RFC-polite; the unclean-close tests depend on that:
// - once the server has sent its close frame (explicitly, or because the handler returned), it
//   expects the client's close frame next; a data frame arriving instead makes pywebsocket drop
//   the connection. Here: TCP is reset as soon as that frame's header has been read.
// - a client close is answered by the handler's passive-close behaviour (echo the code, reply
//   1000, reply after 1 s, or drop TCP), and then the server closes TCP.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import zlib from 'node:zlib';

const HANDSHAKE_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const MAX_REQUEST_HEAD = 16 * 1024;

/** echo_wsh.py and echo_exit_wsh.py close the connection after this text message. */
export const GOODBYE_MESSAGE = 'Goodbye';
/** send-backpressure_wsh.py: the size and number of the large messages it sends. */
export const SEND_BACKPRESSURE_MESSAGE_SIZE = 1024 * 1024;
export const SEND_BACKPRESSURE_MESSAGE_COUNT = 16;
/** handshake_sleep_2_wsh.py holds the 101 response this long. */
export const HANDSHAKE_SLEEP_MS = 2000;
/** delayed-passive-close_wsh.py answers the client's close frame after this long. */
export const PASSIVE_CLOSE_DELAY_MS = 1000;

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

export type Message = { type: 'text'; data: string } | { type: 'binary'; data: Buffer };

/**
 * What a connection resets and watches close: the TCP socket (under TLS, if any), or for a
 * WebSocket over HTTP/2 its stream, with the counts of the TCP connection it runs on.
 */
export interface RawTransport {
  readonly destroyed: boolean;
  readonly remotePort: number | undefined;
  readonly bytesRead: number;
  once(event: 'close', listener: () => void): unknown;
  resetAndDestroy(): unknown;
}

function isHttp2Stream(value: unknown): boolean {
  return typeof (value as { respond?: unknown }).respond === 'function';
}

/** An HTTP/2 stream as a RawTransport: RFC 8441 §5 maps TCP's RST to RST_STREAM with CANCEL. */
function streamTransport(stream: http2.ServerHttp2Stream): RawTransport {
  const socket = stream.session!.socket;
  return {
    get destroyed() {
      return stream.destroyed;
    },
    remotePort: socket.remotePort,
    get bytesRead() {
      return socket.bytesRead;
    },
    once: (event, listener) => stream.once(event, listener),
    resetAndDestroy: () => stream.close(http2.constants.NGHTTP2_CANCEL),
  };
}

export interface CloseInfo {
  /** null for a close frame with no body. */
  code: number | null;
  reason: string;
}

interface FrameHeader {
  fin: boolean;
  rsv1: boolean;
  rsv23: number;
  opcode: number;
  masked: boolean;
  length: number;
  mask: Buffer | null;
}

/** One unmasked server frame. */
export function encodeServerFrame(opcode: number, payload: Buffer, options: { fin?: boolean; rsv1?: boolean } = {}): Buffer {
  const first = ((options.fin ?? true) ? 0x80 : 0) | (options.rsv1 ? 0x40 : 0) | opcode;
  let header: Buffer;
  if (payload.length < 126) {
    header = Buffer.from([first, payload.length]);
  } else if (payload.length < 0x10000) {
    header = Buffer.alloc(4);
    header[0] = first;
    header[1] = 126;
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = first;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  return Buffer.concat([header, payload]);
}

function encodeClose(info: CloseInfo): Buffer {
  if (info.code === null) return Buffer.alloc(0);
  const reason = Buffer.from(info.reason, 'utf8');
  const body = Buffer.alloc(2 + reason.length);
  body.writeUInt16BE(info.code, 0);
  reason.copy(body, 2);
  return body;
}

/**
 * Incremental reader of client frames. It keeps the received chunks in a list and copies each
 * payload once into its own buffer, so multi-megabyte messages cost no quadratic copying.
 * It starts a new frame only while `shouldRead()` says so (pywebsocket reads a frame only when
 * the handler asks for one); `onHeader` sees every header before its payload is read and may
 * stop the reader.
 */
class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private header: FrameHeader | null = null;
  private payload: Buffer = Buffer.alloc(0);
  private filled = 0;
  private draining = false;
  stopped = false;

  constructor(
    private readonly shouldRead: () => boolean,
    private readonly onHeader: (header: FrameHeader) => boolean,
    private readonly onFrame: (header: FrameHeader, payload: Buffer) => void,
    private readonly onError: (message: string) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.stopped) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    this.drain();
  }

  private peek(count: number): Buffer {
    if (this.chunks[0]!.length >= count) return this.chunks[0]!.subarray(0, count);
    return Buffer.concat(this.chunks).subarray(0, count);
  }

  /** Copies up to `count` buffered bytes into `target` at `offset`; returns how many. */
  private copyInto(target: Buffer, offset: number, count: number): number {
    let copied = 0;
    while (copied < count && this.chunks.length > 0) {
      const chunk = this.chunks[0]!;
      const n = Math.min(chunk.length, count - copied);
      chunk.copy(target, offset + copied, 0, n);
      copied += n;
      if (n === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(n);
    }
    this.buffered -= copied;
    return copied;
  }

  /** Parses what is buffered, as far as `shouldRead()` allows. */
  drain(): void {
    if (this.draining) return; // the running loop re-checks shouldRead() before each frame
    this.draining = true;
    try {
      this.drainLoop();
    } finally {
      this.draining = false;
    }
  }

  private drainLoop(): void {
    while (!this.stopped) {
      if (this.header === null) {
        if (!this.shouldRead() || this.buffered < 2) return;
        const start = this.peek(2);
        const b0 = start[0]!;
        const b1 = start[1]!;
        const masked = (b1 & 0x80) !== 0;
        const length7 = b1 & 0x7f;
        const size = 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) + (masked ? 4 : 0);
        if (this.buffered < size) return;
        const bytes = Buffer.alloc(size);
        this.copyInto(bytes, 0, size);
        let length = length7;
        let offset = 2;
        if (length7 === 126) {
          length = bytes.readUInt16BE(2);
          offset = 4;
        } else if (length7 === 127) {
          const big = bytes.readBigUInt64BE(2);
          if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
            this.stopped = true;
            this.onError('frame length too large');
            return;
          }
          length = Number(big);
          offset = 10;
        }
        const header: FrameHeader = {
          fin: (b0 & 0x80) !== 0,
          rsv1: (b0 & 0x40) !== 0,
          rsv23: (b0 >> 4) & 0x3,
          opcode: b0 & 0x0f,
          masked,
          length,
          mask: masked ? Buffer.from(bytes.subarray(offset, offset + 4)) : null,
        };
        if (!this.onHeader(header)) {
          this.stopped = true;
          return;
        }
        this.header = header;
        this.payload = Buffer.allocUnsafe(length);
        this.filled = 0;
      }
      const header = this.header;
      this.filled += this.copyInto(this.payload, this.filled, header.length - this.filled);
      if (this.filled < header.length) return;
      const payload = this.payload;
      if (header.mask !== null) {
        const mask = header.mask;
        for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
      }
      this.header = null;
      this.payload = Buffer.alloc(0);
      this.onFrame(header, payload);
    }
  }
}

/** What a handler does when the client's close frame arrives before the server sent one. */
type PassiveClose =
  /** echo_wsh.py: echo the code and reason (no code: an empty close frame). */
  | 'echo'
  /** pywebsocket's default passive handler: reply 1000 with no reason. */
  | 'normal'
  /** delayed-passive-close_wsh.py: echo, one second later. */
  | 'delayed-echo'
  /** passive-close-abort_wsh.py: close TCP without a close frame. */
  | 'abort';

interface Handler {
  /** Sec-WebSocket-Protocol to select, given the offered list. */
  selectProtocol?(offered: string[]): string | undefined;
  /**
   * Accept permessage-deflate when offered. Only echo does (docs/semantics.md#how-this-is-checked); the other stand-ins
   * refuse it, as send-backpressure_wsh.py does explicitly, so that the large messages of the
   * backpressure and unclean-close tests stay large on the wire.
   */
  deflate?: boolean;
  /** Delay before the 101 response. */
  handshakeDelayMs?: number;
  passiveClose?: PassiveClose;
  /** web_socket_transfer_data: when it returns, the server starts the closing handshake (1000). */
  transfer(connection: ServerConnection): Promise<void> | void;
}

/** One accepted WebSocket connection, as a pywebsocket handler sees it, plus what tests observe. */
export class ServerConnection extends EventEmitter {
  readonly path: string;
  readonly params: URLSearchParams;
  /** Every data message received, in order. */
  readonly received: Message[] = [];
  closeReceived: CloseInfo | null = null;
  closeSent: CloseInfo | null = null;
  /** The server reset TCP (a data frame came where it wanted the client's close frame). */
  wasReset = false;
  /** The server dropped TCP without a close frame (abrupt close, passive-close-abort). */
  wasAborted = false;
  socketClosed = false;
  /** Bytes of the 101 response, to tell the client's reads of frames from those of the handshake. */
  handshakeBytes = 0;
  protocol = '';
  deflate = false;
  /** Protocol violations the client committed (unmasked frames, bad close frames, …). */
  readonly violations: string[] = [];

  // send-backpressure: how many large messages the kernel took, and whether all were sent.
  largeMessagesAccepted = 0;
  finishedSending = false;
  // receive-backpressure: lets the test end the period in which the server reads nothing.
  releaseReading: (() => void) | null = null;

  private readonly inbox: Message[] = [];
  private waiters: Array<() => void> = [];
  /** The handler waits in receiveMessage(). */
  private receiving = false;
  private handlerDone = false;
  private started = false;
  private readonly reader: FrameReader;
  private fragments: Buffer[] = [];
  private fragmentOpcode = 0;
  private fragmentCompressed = false;
  readonly closed: Promise<void>;

  constructor(
    readonly socket: net.Socket,
    /** The TCP socket (for a TLS connection, the one under it; over HTTP/2, the stream): what gets reset. */
    readonly rawSocket: RawTransport,
    readonly headers: Record<string, string>,
    target: string,
    private readonly handler: Handler,
    private readonly timers: Set<NodeJS.Timeout>,
  ) {
    super();
    const url = new URL(target, 'ws://stand-in.invalid');
    this.path = url.pathname;
    this.params = url.searchParams;
    this.closed = new Promise((resolve) => {
      if (rawSocket.destroyed) resolve();
      else rawSocket.once('close', () => resolve());
    });
    void this.closed.then(() => {
      this.socketClosed = true;
      this.wake();
      this.emit('closed');
    });
    socket.on('end', () => this.wake());
    this.reader = new FrameReader(
      () => this.wantsFrames,
      (header) => this.onHeader(header),
      (header, payload) => this.onFrame(header, payload),
      (message) => this.protocolError(message),
    );
  }

  get alive(): boolean {
    return !this.socketClosed && !this.socket.destroyed;
  }

  /**
   * Like pywebsocket, the server reads frames only while the handler waits for a message, or
   * once a close frame has been sent or received; otherwise the socket is paused and the
   * client's sends back up in TCP.
   */
  private get wantsFrames(): boolean {
    return this.receiving || this.handlerDone || this.closeSent !== null || this.closeReceived !== null;
  }

  private updateFlow(): void {
    if (!this.started || !this.alive) return;
    if (this.wantsFrames) {
      this.socket.resume();
      this.reader.drain();
    } else {
      this.socket.pause();
    }
  }

  /** Starts reading frames: first the bytes that followed the request head. */
  start(rest: Buffer): void {
    this.started = true;
    this.socket.on('data', (chunk: Buffer) => this.reader.push(chunk));
    if (rest.length > 0) this.reader.push(rest);
    this.updateFlow();
  }

  setTimer(ms: number, callback: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      callback();
    }, ms);
    this.timers.add(timer);
    void this.closed.then(() => {
      clearTimeout(timer);
      this.timers.delete(timer);
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }

  /** pywebsocket's receive_message(): the next data message, or null once the client closed. */
  async receiveMessage(): Promise<Message | null> {
    for (;;) {
      const message = this.inbox.shift();
      if (message !== undefined) return message;
      if (this.closeReceived !== null || !this.alive || this.socket.readableEnded) return null;
      this.receiving = true;
      const woken = new Promise<void>((resolve) => this.waiters.push(resolve));
      this.updateFlow();
      await woken;
    }
  }

  private write(frame: Buffer): Promise<boolean> {
    if (!this.alive) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.socket.write(frame, (error) => resolve(error == null && !this.socket.destroyed));
    });
  }

  /** Sends one message; resolves once the kernel took all of it (false if the socket went away). */
  sendMessage(data: string | Buffer): Promise<boolean> {
    const opcode = typeof data === 'string' ? OP_TEXT : OP_BINARY;
    let payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (this.deflate) {
      const deflated = zlib.deflateRawSync(payload, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
      payload = deflated.subarray(0, deflated.length - 4);
      return this.write(encodeServerFrame(opcode, payload, { rsv1: true }));
    }
    return this.write(encodeServerFrame(opcode, payload));
  }

  sendPing(data: string): Promise<boolean> {
    return this.write(encodeServerFrame(OP_PING, Buffer.from(data)));
  }

  private sendCloseFrame(info: CloseInfo): void {
    this.closeSent = info;
    void this.write(encodeServerFrame(OP_CLOSE, encodeClose(info)));
    this.emit('close-sent', info);
    // Now waiting for the client's close frame: read on.
    this.updateFlow();
  }

  /**
   * pywebsocket's close_connection(): sends a close frame and waits for the client's. The reply
   * ends the connection (the server closes TCP first); a data frame instead resets it.
   */
  async closeConnection(code: number | null = 1000, reason = ''): Promise<void> {
    if (this.closeSent === null && this.alive) {
      this.sendCloseFrame({ code, reason: code === null ? '' : reason });
    }
    await this.closed;
  }

  /** Closes TCP without a close frame (pywebsocket's AbortedByUserException). */
  abort(): void {
    if (!this.alive) return;
    this.wasAborted = true;
    this.emit('aborted');
    this.socket.destroy();
  }

  /** Resets TCP (RST), the way pywebsocket drops a connection whose closing handshake went wrong. */
  reset(): void {
    if (!this.alive) return;
    this.wasReset = true;
    this.emit('reset');
    this.reader.stopped = true;
    this.rawSocket.resetAndDestroy();
    // Under TLS the TLS socket goes too; an HTTP/2 stream was closed by its reset.
    if ((this.socket as unknown) !== this.rawSocket && !isHttp2Stream(this.socket)) this.socket.destroy();
  }

  /** The handler returned (web_socket_transfer_data finished). */
  handlerReturned(): void {
    this.handlerDone = true;
    if (!this.alive) return;
    if (this.closeSent === null && this.closeReceived === null) {
      void this.closeConnection(1000, '');
    }
  }

  private protocolError(message: string): void {
    this.violations.push(message);
    this.emit('violation', message);
    if (this.closeSent === null) this.sendCloseFrame({ code: 1002, reason: '' });
    this.reader.stopped = true;
    this.socket.end();
  }

  private onHeader(header: FrameHeader): boolean {
    if (this.closeReceived !== null) return true; // RFC 6455 §1.4: discard what follows the close.
    if (!header.masked) {
      this.protocolError('unmasked client frame');
      return false;
    }
    const isData = header.opcode === OP_TEXT || header.opcode === OP_BINARY || header.opcode === OP_CONTINUATION;
    if (this.closeSent !== null && isData) {
      // pywebsocket wanted the closing handshake's reply and got a data frame: it drops the
      // connection. Resetting at the header keeps the client's write of that frame unfinished.
      this.reset();
      return false;
    }
    return true;
  }

  private onFrame(header: FrameHeader, payload: Buffer): void {
    if (this.closeReceived !== null) return;
    switch (header.opcode) {
      case OP_CLOSE:
        return this.onClose(payload);
      case OP_PING:
        if (this.closeSent === null) void this.write(encodeServerFrame(OP_PONG, payload));
        return;
      case OP_PONG:
        return;
      case OP_TEXT:
      case OP_BINARY:
        if (header.rsv23 !== 0 || (header.rsv1 && !this.deflate)) return this.protocolError('reserved bit set');
        if (this.fragments.length > 0) return this.protocolError('new message inside a fragmented one');
        this.fragmentOpcode = header.opcode;
        this.fragmentCompressed = header.rsv1 && this.deflate;
        break;
      case OP_CONTINUATION:
        if (header.rsv1 || header.rsv23 !== 0) return this.protocolError('reserved bit set on a continuation');
        if (this.fragments.length === 0 && this.fragmentOpcode === 0) return this.protocolError('continuation with no message');
        break;
      default:
        return this.protocolError(`reserved opcode ${header.opcode}`);
    }
    this.fragments.push(payload);
    if (!header.fin) return;
    let data = Buffer.concat(this.fragments);
    this.fragments = [];
    if (this.fragmentCompressed) {
      try {
        data = zlib.inflateRawSync(Buffer.concat([data, Buffer.from([0, 0, 0xff, 0xff])]), {
          finishFlush: zlib.constants.Z_SYNC_FLUSH,
        });
      } catch {
        return this.protocolError('bad permessage-deflate data');
      }
    }
    const message: Message = this.fragmentOpcode === OP_TEXT ? { type: 'text', data: data.toString('utf8') } : { type: 'binary', data };
    this.fragmentOpcode = 0;
    this.received.push(message);
    this.inbox.push(message);
    // This message answers the pending receiveMessage(): read no further frame until the handler
    // has dealt with it and asks again (or returns).
    this.receiving = false;
    this.emit('message', message);
    this.wake();
    this.updateFlow();
  }

  private onClose(payload: Buffer): void {
    if (payload.length === 1) return this.protocolError('one-byte close payload');
    const info: CloseInfo =
      payload.length === 0 ? { code: null, reason: '' } : { code: payload.readUInt16BE(0), reason: payload.subarray(2).toString('utf8') };
    this.closeReceived = info;
    this.emit('close-received', info);
    this.wake();
    if (this.closeSent !== null) {
      // The closing handshake is complete: the server closes TCP first (RFC 6455 §7.1.1).
      this.socket.end();
      return;
    }
    const echo = (): void => {
      if (!this.alive) return;
      this.sendCloseFrame(info);
      this.socket.end();
    };
    switch (this.handler.passiveClose ?? 'normal') {
      case 'echo':
        return echo();
      case 'normal':
        this.sendCloseFrame({ code: 1000, reason: '' });
        this.socket.end();
        return;
      case 'delayed-echo':
        this.setTimer(PASSIVE_CLOSE_DELAY_MS, echo);
        return;
      case 'abort':
        this.abort();
        return;
    }
  }
}

function firstOfferedProtocol(offered: string[]): string | undefined {
  return offered[0];
}

const handlers: Record<string, Handler> = {
  // echo_wsh.py: echoes every message; after echoing "Goodbye" it closes with 1000.
  '/echo': {
    selectProtocol: (offered) => (offered.includes('echo') ? 'echo' : undefined),
    deflate: true,
    passiveClose: 'echo',
    async transfer(connection) {
      for (;;) {
        const message = await connection.receiveMessage();
        if (message === null) return;
        await connection.sendMessage(message.data);
        if (message.type === 'text' && message.data === GOODBYE_MESSAGE) return;
      }
    },
  },
  // echo_exit_wsh.py: echoes nothing; closes with 1000 on "Goodbye".
  '/echo_exit': {
    async transfer(connection) {
      for (;;) {
        const message = await connection.receiveMessage();
        if (message === null) return;
        if (message.type === 'text' && message.data === GOODBYE_MESSAGE) return;
      }
    },
  },
  // protocol_array_wsh.py: selects the first offered protocol and sends it as a text message.
  '/protocol_array': {
    selectProtocol: firstOfferedProtocol,
    async transfer(connection) {
      await connection.sendMessage(connection.protocol);
    },
  },
  // remote-close_wsh.py: ?code=&reason= sends a close frame (no code: empty body; the reason only
  // with a code); ?abrupt=1 sends a ping and then closes TCP without a close frame.
  '/remote-close': {
    async transfer(connection) {
      const { params } = connection;
      if (params.has('abrupt')) {
        await connection.sendPing('ping');
        connection.abort();
        return;
      }
      const code = params.has('code') ? Number.parseInt(params.get('code')!, 10) : null;
      await connection.closeConnection(code, code === null ? '' : (params.get('reason') ?? ''));
    },
  },
  // passive-close-abort_wsh.py: waits for the client's close frame, then closes TCP without one.
  '/passive-close-abort': {
    passiveClose: 'abort',
    async transfer(connection) {
      while ((await connection.receiveMessage()) !== null);
    },
  },
  // delayed-passive-close_wsh.py: echoes the client's close frame one second after it arrived.
  '/delayed-passive-close': {
    passiveClose: 'delayed-echo',
    async transfer(connection) {
      await connection.receiveMessage();
    },
  },
  // send-backpressure_wsh.py: an empty message (to fill the readable's queue), then 16 × 1 MiB,
  // each sent once the kernel took the previous one, then the elapsed seconds as text.
  // permessage-deflate is refused so the large messages stay large.
  '/send-backpressure': {
    async transfer(connection) {
      await connection.sendMessage(Buffer.alloc(0));
      const start = performance.now();
      for (let i = 0; i < SEND_BACKPRESSURE_MESSAGE_COUNT; i++) {
        if (!(await connection.sendMessage(Buffer.alloc(SEND_BACKPRESSURE_MESSAGE_SIZE, 0x20)))) return;
        connection.largeMessagesAccepted++;
        connection.emit('progress');
      }
      connection.finishedSending = true;
      await connection.sendMessage(String((performance.now() - start) / 1000));
    },
  },
  // receive-backpressure_wsh.py reads nothing for 2 s, then one message, then closes with 1000.
  // Tests must not depend on timing, so here the period of not reading lasts until the test calls
  // `releaseReading()`: that call stands in for the two seconds.
  '/receive-backpressure': {
    async transfer(connection) {
      // Not asking for a message keeps the socket paused: nothing is read.
      await new Promise<void>((resolve) => {
        connection.releaseReading = resolve;
        void connection.closed.then(() => resolve());
      });
      connection.releaseReading = null;
      await connection.receiveMessage();
    },
  },
  // handshake_sleep_2_wsh.py: holds the 101 response for two seconds.
  '/handshake_sleep_2': {
    handshakeDelayMs: HANDSHAKE_SLEEP_MS,
    transfer() {},
  },
};

export interface RequestInfo {
  target: string;
  path: string;
  headers: Record<string, string>;
  /** The WebSocket connection, for a request that reached a handler (before its 101 was sent). */
  connection: ServerConnection | undefined;
}

export interface WptServerOptions {
  /** Serve wss: with the test certificate (spec/fixtures) instead of ws:. */
  tls?: { cert: Buffer; key: Buffer };
  /** With tls: serve WebSockets over HTTP/2 (RFC 8441) instead of HTTP/1.1 upgrades. */
  http2?: boolean;
}

/** The stand-in for the wpt server's WebSocket port. */
export class WptServer extends EventEmitter {
  /** TCP connections accepted so far. */
  connectionCount = 0;
  readonly requests: RequestInfo[] = [];
  readonly sessions: ServerConnection[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly server: net.Server;
  private readonly secureContext: tls.SecureContext | null;
  private readonly h2Sessions = new Set<http2.ServerHttp2Session>();
  port = 0;

  constructor(options: WptServerOptions = {}) {
    super();
    this.secureContext = options.tls ? tls.createSecureContext({ cert: options.tls.cert, key: options.tls.key }) : null;
    if (options.http2 === true && options.tls !== undefined) {
      const h2 = http2.createSecureServer({ cert: options.tls.cert, key: options.tls.key, settings: { enableConnectProtocol: true } });
      h2.on('connection', (raw: net.Socket) => this.countConnection(raw));
      h2.on('session', (session: http2.ServerHttp2Session) => {
        this.h2Sessions.add(session);
        session.on('error', () => {});
        session.once('close', () => this.h2Sessions.delete(session));
      });
      h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => this.onStream(stream, headers));
      this.server = h2;
      return;
    }
    this.server = net.createServer((socket) => {
      this.countConnection(socket);
      this.onConnection(socket);
    });
  }

  get secure(): boolean {
    return this.secureContext !== null;
  }

  /** `BASEURL` of the WPT tests: ws://127.0.0.1:port (or wss:). */
  get baseUrl(): string {
    return `${this.secure ? 'wss' : 'ws'}://127.0.0.1:${this.port}`;
  }

  /** `ECHOURL` of the WPT tests. */
  get echoUrl(): string {
    return `${this.baseUrl}/echo`;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  /** Resolves with the index-th WebSocket connection once its 101 has been sent. */
  session(index = 0): Promise<ServerConnection> {
    return this.waitFor(() => this.sessions[index], 'session');
  }

  /** Resolves with the index-th request head received. */
  request(index = 0): Promise<RequestInfo> {
    return this.waitFor(() => this.requests[index], 'request');
  }

  private waitFor<T>(get: () => T | undefined, event: string): Promise<T> {
    const value = get();
    if (value !== undefined) return Promise.resolve(value);
    return new Promise((resolve) => {
      const check = (): void => {
        const found = get();
        if (found === undefined) return;
        this.off(event, check);
        resolve(found);
      };
      this.on(event, check);
    });
  }

  /** Destroys every connection, clears every timer and stops listening. */
  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const session of this.h2Sessions) session.destroy();
    const closing = [...this.sockets].map((socket) => new Promise<void>((resolve) => {
      if (socket.destroyed && socket.closed) resolve();
      else socket.once('close', () => resolve());
      socket.destroy();
    }));
    await Promise.all([...closing, new Promise<void>((resolve) => this.server.close(() => resolve()))]);
  }

  private countConnection(raw: net.Socket): void {
    this.connectionCount++;
    this.sockets.add(raw);
    raw.on('close', () => this.sockets.delete(raw));
    raw.on('error', () => {});
    raw.setNoDelay(true);
    this.emit('connection', raw);
  }

  /** RFC 8441: an extended CONNECT stream, dispatched on its :path as an upgrade is on its target. */
  private onStream(stream: http2.ServerHttp2Stream, h2Headers: http2.IncomingHttpHeaders): void {
    stream.on('error', () => {});
    const target = String(h2Headers[':path'] ?? '/');
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(h2Headers)) if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : String(value);
    const path = new URL(target, 'ws://stand-in.invalid').pathname;
    const valid = headers[':method'] === 'CONNECT' && headers[':protocol'] === 'websocket' && headers['sec-websocket-version'] === '13';
    const handler = valid ? handlers[path] : undefined;
    const connection =
      handler === undefined ? undefined : new ServerConnection(stream as unknown as net.Socket, streamTransport(stream), headers, target, handler, this.timers);
    const info: RequestInfo = { target, path, headers, connection };
    this.requests.push(info);
    this.emit('request', info);
    if (!valid || handler === undefined || connection === undefined) {
      stream.respond({ ':status': valid ? 404 : 400 }, { endStream: true });
      return;
    }
    const response: http2.OutgoingHttpHeaders = { ':status': 200 };
    const offered = (headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()).filter((p) => p !== '');
    const protocol = offered.length > 0 ? handler.selectProtocol?.(offered) : undefined;
    connection.protocol = protocol ?? '';
    if (protocol !== undefined) response['sec-websocket-protocol'] = protocol;
    const offers = (headers['sec-websocket-extensions'] ?? '').split(',').map((offer) => offer.split(';')[0]!.trim());
    if (handler.deflate && offers.includes('permessage-deflate')) {
      connection.deflate = true;
      response['sec-websocket-extensions'] = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';
    }
    this.startSession(connection, handler, Buffer.alloc(0), () => stream.respond(response));
  }

  private onConnection(raw: net.Socket): void {
    let socket: net.Socket = raw;
    if (this.secureContext !== null) {
      socket = new tls.TLSSocket(raw, { isServer: true, secureContext: this.secureContext });
      socket.on('error', () => {});
    }
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) {
        if (head.length > MAX_REQUEST_HEAD) socket.destroy();
        return;
      }
      socket.off('data', onData);
      socket.pause();
      this.onRequest(socket, raw, head.subarray(0, end).toString('latin1'), head.subarray(end + 4));
    };
    socket.on('data', onData);
  }

  private onRequest(socket: net.Socket, raw: net.Socket, headText: string, rest: Buffer): void {
    const [requestLine = '', ...headerLines] = headText.split('\r\n');
    const [method, target = '/'] = requestLine.split(' ');
    const headers: Record<string, string> = {};
    for (const line of headerLines) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    }
    const path = new URL(target, 'ws://stand-in.invalid').pathname;
    const key = headers['sec-websocket-key'] ?? '';
    const valid =
      method === 'GET' &&
      (headers['upgrade'] ?? '').toLowerCase() === 'websocket' &&
      (headers['connection'] ?? '').toLowerCase().split(',').some((token) => token.trim() === 'upgrade') &&
      headers['sec-websocket-version'] === '13' &&
      Buffer.from(key, 'base64').length === 16;
    const handler = valid ? handlers[path] : undefined;
    const connection = handler === undefined ? undefined : new ServerConnection(socket, raw, headers, target, handler, this.timers);
    const info: RequestInfo = { target, path, headers, connection };
    this.requests.push(info);
    this.emit('request', info);

    const reply = (status: string): void => {
      socket.end(`HTTP/1.1 ${status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    };
    if (!valid) return reply('400 Bad Request');
    if (handler === undefined || connection === undefined) return reply('404 Not Found');

    const offered = (headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()).filter((p) => p !== '');
    const protocol = offered.length > 0 ? handler.selectProtocol?.(offered) : undefined;
    connection.protocol = protocol ?? '';
    const lines = [
      'HTTP/1.1 101 Switching Protocols',
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Accept: ${createHash('sha1').update(key + HANDSHAKE_GUID).digest('base64')}`,
    ];
    if (protocol !== undefined) lines.push(`Sec-WebSocket-Protocol: ${protocol}`);
    const offers = (headers['sec-websocket-extensions'] ?? '').split(',').map((offer) => offer.split(';')[0]!.trim());
    if (handler.deflate && offers.includes('permessage-deflate')) {
      // Every message on its own: no context takeover either way, so each one (de)compresses alone.
      connection.deflate = true;
      lines.push('Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover');
    }
    const response = Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
    connection.handshakeBytes = response.length;
    this.startSession(connection, handler, rest, () => socket.write(response));
  }

  /** Sends the acceptance (after the handler's delay, if any) and runs the handler. */
  private startSession(connection: ServerConnection, handler: Handler, rest: Buffer, sendAcceptance: () => void): void {
    const accept = (): void => {
      if (!connection.alive) return;
      sendAcceptance();
      this.sessions.push(connection);
      this.emit('session', connection);
      connection.start(rest);
      Promise.resolve()
        .then(() => handler.transfer(connection))
        .then(
          () => connection.handlerReturned(),
          () => connection.abort(),
        );
    };
    if (handler.handshakeDelayMs !== undefined) connection.setTimer(handler.handshakeDelayMs, accept);
    else accept();
  }
}

/** Starts a stand-in server on 127.0.0.1 with an OS-chosen port. */
export function startWptServer(options: WptServerOptions = {}): Promise<WptServer> {
  return new WptServer(options).listen();
}
