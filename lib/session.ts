// The WHATWG streams facade shared by client and server streams: opened, closed, readable,
// writable and their close/cancel/abort semantics (docs/semantics.md).
import { isArrayBuffer, isSharedArrayBuffer } from 'node:util/types';
import { Connection, type ConnectionCloseInfo, type ConnectionEvents, type ConnectionOptions, type ConnectionSocket } from './connection.js';
import { isUserCloseCode, isValidWireCloseCode } from './protocol/close.js';
import type { DeflateParams } from './protocol/permessage-deflate.js';
import { CloseCode, DEFAULT_READABLE_HIGH_WATER_MARK, MAX_CLOSE_REASON_BYTES } from './protocol/constants.js';
import { utf8ByteLength } from './protocol/utf8.js';
import { createWebSocketError, WebSocketError } from './websocket-error.js';
import { toUSVString } from './webidl.js';

export type WebSocketMessage = string | Uint8Array;

export interface WebSocketOpenInfo {
  /** Typed as an AsyncIterable too, so `for await` compiles with "DOM" but no "DOM.AsyncIterable". */
  readable: ReadableStream<WebSocketMessage> & AsyncIterable<WebSocketMessage>;
  writable: WritableStream<unknown>;
  /** The subprotocol the server selected, or "". */
  protocol: string;
  /** The Sec-WebSocket-Extensions value the server sent, or "". */
  extensions: string;
}

export interface WebSocketClosedInfo {
  closeCode: number;
  reason: string;
}

export interface SessionOptions extends ConnectionOptions {
  /** Bytes of messages the readable queues before the socket is paused. */
  readableHighWaterMark?: number;
}

export type SessionState = 'connecting' | 'open' | 'closing' | 'closed';

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function invalidState(message: string): DOMException {
  return new DOMException(message, 'InvalidStateError');
}

function sizeOf(message: WebSocketMessage): number {
  return typeof message === 'string' ? message.length : message.byteLength;
}

/**
 * Everything a WebSocketStream is once it has a socket, identical for both roles: it turns
 * Connection events into stream operations and promise settlements. Its state is the
 * connection's once there is one; before that it is connecting, or closed if the handshake failed.
 */
export class Session implements ConnectionEvents {
  private connection: Connection | null = null;
  private handshakeFailed = false;
  /** Called once `opened` has settled or the session has ended, whichever comes first. */
  private onSettled: (() => void) | null = null;
  /** Abandons the client's handshake while it runs. */
  private cancelHandshake: (() => void) | null = null;

  private readonly openedDeferred = deferred<WebSocketOpenInfo>();
  private readonly closedDeferred = deferred<WebSocketClosedInfo>();

  private readableController: ReadableStreamDefaultController<WebSocketMessage> | null = null;
  /** Closed, cancelled or errored: the controller must not be touched again. */
  private readableDone = false;
  /**
   * Messages that arrived and were not read yet. The readable's own queue stays empty (its
   * high-water mark is 0): messages move into it only when a read asks, so the session always
   * knows what is still unread.
   */
  private unread: WebSocketMessage[] | null = null;
  private unreadBytes = 0;
  /** A read is waiting for the next message. */
  private readPending = false;
  /** The peer's close frame arrived while messages were unread; our reply waits for the reader. */
  private holdingPeerClose = false;

  private writableController: WritableStreamDefaultController | null = null;
  /** Closed or aborted by the user, or errored by us. */
  private writableDone = false;
  /** The error we put the writable in when the peer's close frame arrived. */
  private writableError: unknown = null;
  /** The one write in progress (the writable's high-water mark is one chunk). */
  private inflight: { resolve(): void; reject(reason: unknown): void } | null = null;
  /** writer.close() waits for the connection to close. */
  private writerClose: Deferred<void> | null = null;
  /** The WebSocketError of an unclean close, once there was one. */
  private closeError: WebSocketError | null = null;

  constructor(private readonly options: SessionOptions) {
    // An unhandled rejection kills a Node process: a user who ignores these must not crash.
    this.openedDeferred.promise.catch(ignore);
    this.closedDeferred.promise.catch(ignore);
  }

  get state(): SessionState {
    if (this.connection !== null) return this.connection.state;
    return this.handshakeFailed ? 'closed' : 'connecting';
  }

  get role(): ConnectionOptions['role'] {
    return this.options.role;
  }

  get opened(): Promise<WebSocketOpenInfo> {
    return this.openedDeferred.promise;
  }

  get closed(): Promise<WebSocketClosedInfo> {
    return this.closedDeferred.promise;
  }

  /** Runs `callback` once `opened` has settled or the session has ended, whichever comes first. */
  whenSettled(callback: () => void): void {
    this.onSettled = callback;
  }

  /** The client's handshake is running: `cancel` abandons it (close() or an abort before it ends). */
  handshakeStarted(cancel: () => void): void {
    this.cancelHandshake = cancel;
  }

  /**
   * The close codes close() takes: a client sends only what the WHATWG API allows (1000 and
   * 3000–4999); a server may send any code that is valid on the wire (RFC 6455 §7.4), such as 1001,
   * 1008, 1011 or 1013.
   */
  isSendableCloseCode(code: number): boolean {
    return this.options.role === 'server' ? isValidWireCloseCode(code) : isUserCloseCode(code);
  }

  /** The opening handshake succeeded: wire the socket to the streams and resolve `opened`. */
  establish(socket: ConnectionSocket, head: Buffer, protocol: string, extensions: string, deflate: DeflateParams | null = null): void {
    this.cancelHandshake = null;
    const connection = new Connection(socket, { ...this.options, deflate }, this);
    this.connection = connection;
    const readable = new ReadableStream<WebSocketMessage>(
      {
        start: (controller) => {
          this.readableController = controller;
        },
        pull: () => this.onPull(),
        cancel: (reason) => {
          this.readableDone = true;
          this.dropUnread();
          this.closeWithReason(reason);
        },
      },
      { highWaterMark: 0 },
    );
    const writable = new WritableStream<unknown>(
      {
        start: (controller) => {
          this.writableController = controller;
          // The signal fires at once, even while a write is in flight; the sink's abort() would
          // only run after that write settled (docs/semantics.md, "The writable").
          controller.signal.addEventListener('abort', () => this.onWritableAbort(controller.signal.reason), { once: true });
        },
        write: (chunk) => this.write(chunk),
        close: () => this.closeWritable(),
      },
      { highWaterMark: 1 },
    );
    this.openedDeferred.resolve({ readable, writable, protocol, extensions });
    this.settled();
    // Bytes that came with the 101 wait for a later macrotask, so code that runs right after
    // `await opened` goes first (docs/semantics.md, "Ordering").
    setImmediate(() => connection.start(head));
  }

  /** The handshake failed (or was cancelled by close()): opened and closed reject. */
  failHandshake(message: string, cause?: unknown): void {
    if (this.state !== 'connecting') return;
    this.handshakeFailed = true;
    this.cancelHandshake?.();
    this.cancelHandshake = null;
    this.openedDeferred.reject(createWebSocketError(message, null, '', cause));
    this.closedDeferred.reject(createWebSocketError(`${message}; the connection was closed`, CloseCode.ABNORMAL_CLOSURE, '', cause));
    this.settled();
  }

  /** An AbortSignal fired before the handshake completed: both promises reject with its reason. */
  abortHandshake(reason: unknown): void {
    if (this.state !== 'connecting') return;
    this.handshakeFailed = true;
    this.cancelHandshake?.();
    this.cancelHandshake = null;
    this.openedDeferred.reject(reason);
    this.closedDeferred.reject(reason);
    this.settled();
  }

  /** close() after validation (docs/semantics.md, "close()"). */
  close(code: number | null, reason: string): void {
    const connection = this.connection;
    if (connection === null) {
      this.failHandshake('the WebSocket was closed before the connection was established');
    } else if (this.holdingPeerClose) {
      // The peer closed first: our reply echoes its code (RFC 6455 §5.5.1), whatever was asked.
      this.finishPeerClose();
    } else {
      connection.close(code, reason);
    }
  }

  /** cancel(reason) and abort(reason): a real WebSocketError's code and reason, else no code. */
  private closeWithReason(reason: unknown): void {
    let code: number | null = null;
    let text = '';
    if (WebSocketError.isWebSocketError(reason)) {
      const candidate = reason.closeCode;
      const candidateReason = reason.reason;
      if ((candidate === null || this.isSendableCloseCode(candidate)) && utf8ByteLength(candidateReason) <= MAX_CLOSE_REASON_BYTES) {
        code = candidate;
        text = candidate === null ? '' : candidateReason;
      }
    }
    this.close(code, text);
  }

  /**
   * The sink's write: resolves at once (undefined) when the frame fits the bounded send buffer,
   * else once the socket has drained to its bound (onSendReady), or rejects when the connection
   * closes first (onClosed).
   */
  private write(chunk: unknown): Promise<void> | undefined {
    let data: WebSocketMessage;
    try {
      data = toMessageData(chunk);
    } catch (error) {
      return Promise.reject(error);
    }
    const connection = this.connection!;
    if (!connection.canSend) {
      return Promise.reject(invalidState('the WebSocket is closing: nothing more can be sent'));
    }
    if (connection.send(data)) return undefined;
    return new Promise<void>((resolve, reject) => {
      this.inflight = { resolve, reject };
    });
  }

  private closeWritable(): Promise<void> {
    this.writableDone = true;
    this.writerClose = deferred<void>();
    // writer.close() closes with no code: an empty close frame.
    this.close(null, '');
    if (this.state === 'closed') this.settleWriterClose();
    return this.writerClose.promise;
  }

  private onWritableAbort(reason: unknown): void {
    if (this.writableDone) return;
    this.writableDone = true;
    const inflight = this.inflight;
    this.inflight = null;
    inflight?.reject(reason);
    this.closeWithReason(reason);
  }

  // The readable: messages wait in `unread` until a read asks for one.

  private onPull(): void {
    const unread = this.unread;
    if (unread === null || unread.length === 0) {
      this.readPending = true;
      this.connection!.resume();
      return;
    }
    const message = unread.shift()!;
    this.unreadBytes -= sizeOf(message);
    this.readableController!.enqueue(message);
    if (unread.length === 0) {
      this.unread = null;
      // The application has the last message the peer sent before its close frame: its reply,
      // written in this task (pipeTo and for-await loops write from microtasks), goes first.
      if (this.holdingPeerClose) setImmediate(() => this.finishPeerClose());
    }
    if (this.unreadBytes < this.highWaterMark) this.connection!.resume();
  }

  private get highWaterMark(): number {
    return this.options.readableHighWaterMark ?? DEFAULT_READABLE_HIGH_WATER_MARK;
  }

  /** Hands every unread message to the readable's own queue, so that close() keeps them readable. */
  private flushUnread(): void {
    const unread = this.unread;
    if (unread === null) return;
    this.unread = null;
    this.unreadBytes = 0;
    for (const message of unread) this.readableController!.enqueue(message);
  }

  private dropUnread(): void {
    this.unread = null;
    this.unreadBytes = 0;
  }

  private closeReadable(): void {
    if (this.readableDone) return;
    this.readableDone = true;
    this.flushUnread();
    this.readableController?.close();
  }

  // ConnectionEvents

  onMessage(data: WebSocketMessage): void {
    const controller = this.readableController;
    if (this.readableDone || controller === null) return;
    if (this.readPending && this.unread === null) {
      this.readPending = false;
      controller.enqueue(data);
      return;
    }
    (this.unread ??= []).push(data);
    this.unreadBytes += sizeOf(data);
    if (this.unreadBytes >= this.highWaterMark) this.connection!.pause();
  }

  onPeerClose(): boolean {
    // A server whose application has not read everything the client sent before closing holds
    // its reply (RFC 6455 §5.5.1 lets an endpoint finish sending first): a client that sends a
    // message and its close frame back to back still gets the answer. The close timeout bounds it.
    if (this.options.role === 'server' && this.unread !== null && !this.readableDone && !this.writableDone && this.connection!.canSend) {
      this.holdingPeerClose = true;
      return true;
    }
    this.peerClosed();
    return false;
  }

  /** Ends a held peer close: the streams close as they would have at once, and the reply goes out. */
  private finishPeerClose(): void {
    if (!this.holdingPeerClose) return;
    this.holdingPeerClose = false;
    this.peerClosed();
    this.connection!.replyToPeerClose();
  }

  private peerClosed(): void {
    // Chrome closes the readable as soon as the peer's close frame arrives; unread messages stay.
    this.closeReadable();
    if (!this.writableDone) {
      this.writableDone = true;
      this.writableError = invalidState('the peer closed the WebSocket');
      this.writableController?.error(this.writableError);
    }
  }

  onSendReady(): void {
    const inflight = this.inflight;
    this.inflight = null;
    inflight?.resolve();
  }

  onReplyDue(): void {
    this.finishPeerClose();
  }

  onClosed(info: ConnectionCloseInfo): void {
    this.holdingPeerClose = false;
    const inflight = this.inflight;
    this.inflight = null;
    if (info.wasClean) {
      const received = info.received!;
      this.closedDeferred.resolve({ closeCode: received.code ?? CloseCode.NO_STATUS_RECEIVED, reason: received.reason });
      // A write still in progress makes a close unclean, so none can be pending here.
      this.closeReadable();
    } else {
      // A received close frame without a body counts as 1005; no close frame at all is 1006.
      const code = info.received === null ? CloseCode.ABNORMAL_CLOSURE : (info.received.code ?? CloseCode.NO_STATUS_RECEIVED);
      const reason = info.received?.reason ?? '';
      const detail = info.error === null ? '' : `: ${info.error.message}`;
      const error = createWebSocketError(`the WebSocket connection closed uncleanly (${code})${detail}`, code, reason, info.error ?? undefined);
      this.closedDeferred.reject(error);
      if (!this.readableDone) {
        this.readableDone = true;
        this.dropUnread();
        this.readableController?.error(error);
      }
      if (!this.writableDone) {
        this.writableDone = true;
        this.writableError = error;
        this.writableController?.error(error);
      }
      this.closeError = error;
      inflight?.reject(this.writableError ?? error);
    }
    this.settleWriterClose();
    this.settled();
  }

  private settleWriterClose(): void {
    const writerClose = this.writerClose;
    if (writerClose === null || this.state !== 'closed') return;
    this.writerClose = null;
    if (this.closeError === null) writerClose.resolve();
    else writerClose.reject(this.closeError);
  }

  private settled(): void {
    const callback = this.onSettled;
    this.onSettled = null;
    callback?.();
  }
}

function ignore(): void {}

/**
 * What a write sends (docs/semantics.md, "The writable"): bytes for a BufferSource (never a
 * resizable or shared one), a string for anything else, converted as WebIDL does. The bytes are a
 * view; the encoder copies them into the frame before the write returns.
 */
export function toMessageData(chunk: unknown): WebSocketMessage {
  if (isArrayBuffer(chunk)) {
    if (chunk.resizable) throw new TypeError('a resizable ArrayBuffer cannot be sent');
    return new Uint8Array(chunk);
  }
  if (ArrayBuffer.isView(chunk)) {
    const buffer = chunk.buffer;
    if (!isArrayBuffer(buffer) || buffer.resizable) {
      throw new TypeError('a view on a resizable or shared buffer cannot be sent');
    }
    return chunk instanceof Uint8Array ? chunk : new Uint8Array(buffer, chunk.byteOffset, chunk.byteLength);
  }
  if (isSharedArrayBuffer(chunk)) {
    throw new TypeError('a SharedArrayBuffer cannot be sent');
  }
  return toUSVString(chunk);
}
