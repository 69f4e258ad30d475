// The WHATWG streams facade shared by client and server streams: opened, closed, readable,
// writable and their close/cancel/abort semantics (spec-notes §3–§7).
import { isArrayBuffer, isSharedArrayBuffer } from 'node:util/types';
import { Connection, type ConnectionCloseInfo, type ConnectionEvents, type ConnectionOptions, type ConnectionSocket } from './connection.js';
import { isUserCloseCode } from './protocol/close.js';
import type { DeflateParams } from './protocol/permessage-deflate.js';
import { CloseCode, DEFAULT_READABLE_HIGH_WATER_MARK, MAX_CLOSE_REASON_BYTES } from './protocol/constants.js';
import { utf8ByteLength } from './protocol/utf8.js';
import { createWebSocketError, WebSocketError } from './websocket-error.js';
import { toUSVString } from './webidl.js';

export type WebSocketMessage = string | Uint8Array;

export interface WebSocketOpenInfo {
  readable: ReadableStream<WebSocketMessage>;
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

type SessionState = 'connecting' | 'open' | 'closing' | 'closed';

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

/**
 * Everything a WebSocketStream is once it has a socket, identical for both roles: it turns
 * Connection events into stream operations and promise settlements.
 */
export class Session implements ConnectionEvents {
  state: SessionState = 'connecting';
  connection: Connection | null = null;
  /** Called once `opened` has settled or the session has ended, whichever comes first. */
  onSettled: (() => void) | null = null;
  /** Set by the client while its handshake runs, to abandon it. */
  cancelHandshake: (() => void) | null = null;

  private readonly openedDeferred = deferred<WebSocketOpenInfo>();
  private readonly closedDeferred = deferred<WebSocketClosedInfo>();

  private readableController: ReadableStreamDefaultController<WebSocketMessage> | null = null;
  /** Closed, cancelled or errored: the controller must not be touched again. */
  private readableDone = false;
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
    this.openedDeferred.promise.catch(() => {});
    this.closedDeferred.promise.catch(() => {});
  }

  get opened(): Promise<WebSocketOpenInfo> {
    return this.openedDeferred.promise;
  }

  get closed(): Promise<WebSocketClosedInfo> {
    return this.closedDeferred.promise;
  }

  /** The opening handshake succeeded: wire the socket to the streams and resolve `opened`. */
  establish(socket: ConnectionSocket, head: Buffer, protocol: string, extensions: string, deflate: DeflateParams | null = null): void {
    this.cancelHandshake = null;
    const connection = new Connection(socket, { ...this.options, deflate }, this);
    this.connection = connection;
    this.state = 'open';
    const readable = new ReadableStream<WebSocketMessage>(
      {
        start: (controller) => {
          this.readableController = controller;
        },
        pull: () => {
          connection.resume();
        },
        cancel: (reason) => {
          this.readableDone = true;
          this.closeWithReason(reason);
        },
      },
      {
        highWaterMark: this.options.readableHighWaterMark ?? DEFAULT_READABLE_HIGH_WATER_MARK,
        size: (chunk) => (typeof chunk === 'string' ? chunk.length : chunk.byteLength),
      },
    );
    const writable = new WritableStream<unknown>(
      {
        start: (controller) => {
          this.writableController = controller;
          // The signal fires at once, even while a write is in flight; the sink's abort() would
          // only run after that write settled (spec-notes §6).
          controller.signal.addEventListener('abort', () => this.onWritableAbort(controller.signal.reason), { once: true });
        },
        write: (chunk) => this.write(chunk),
        close: () => this.closeWritable(),
      },
      { highWaterMark: 1 },
    );
    this.openedDeferred.resolve({ readable, writable, protocol, extensions });
    this.settled();
    // spec-notes §7: bytes that came with the 101 wait for a later macrotask, so code that runs
    // right after `await opened` goes first.
    setImmediate(() => connection.start(head));
  }

  /** The handshake failed (or was cancelled by close()): opened and closed reject. */
  failHandshake(message: string, cause?: unknown): void {
    if (this.state !== 'connecting') return;
    this.state = 'closed';
    this.cancelHandshake?.();
    this.cancelHandshake = null;
    this.openedDeferred.reject(createWebSocketError(message, null, '', cause));
    this.closedDeferred.reject(createWebSocketError(`${message}; the connection was closed`, CloseCode.ABNORMAL_CLOSURE, '', cause));
    this.settled();
  }

  /** An AbortSignal fired before the handshake completed: both promises reject with its reason. */
  abortHandshake(reason: unknown): void {
    if (this.state !== 'connecting') return;
    this.state = 'closed';
    this.cancelHandshake?.();
    this.cancelHandshake = null;
    this.openedDeferred.reject(reason);
    this.closedDeferred.reject(reason);
    this.settled();
  }

  /** close() after validation (spec-notes §4). */
  close(code: number | null, reason: string): void {
    if (this.state === 'connecting') {
      this.failHandshake('the WebSocket was closed before the connection was established');
    } else if (this.state === 'open') {
      this.state = 'closing';
      this.connection!.close(code, reason);
    }
  }

  /** cancel(reason) and abort(reason): a real WebSocketError's code and reason, else no code. */
  private closeWithReason(reason: unknown): void {
    let code: number | null = null;
    let text = '';
    if (WebSocketError.isWebSocketError(reason)) {
      const candidate = reason.closeCode;
      const candidateReason = reason.reason;
      if ((candidate === null || isUserCloseCode(candidate)) && utf8ByteLength(candidateReason) <= MAX_CLOSE_REASON_BYTES) {
        code = candidate;
        text = candidate === null ? '' : candidateReason;
      }
    }
    this.close(code, text);
  }

  private write(chunk: unknown): Promise<void> {
    let data: WebSocketMessage;
    try {
      data = toMessageData(chunk);
    } catch (error) {
      return Promise.reject(error);
    }
    const connection = this.connection!;
    if (this.state !== 'open' || connection.state !== 'open') {
      return Promise.reject(invalidState('the WebSocket is closing: nothing more can be sent'));
    }
    return new Promise<void>((resolve, reject) => {
      const entry = { resolve, reject };
      this.inflight = entry;
      connection.send(data, (flushed) => {
        // A write the socket never flushed stays pending until the close settles it (onClosed).
        if (flushed && this.inflight === entry) {
          this.inflight = null;
          resolve();
        }
      });
    });
  }

  private closeWritable(): Promise<void> {
    this.writableDone = true;
    this.writerClose = deferred<void>();
    // writer.close() closes with no code: an empty close frame (spec-notes §6).
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

  // ConnectionEvents

  onMessage(data: WebSocketMessage): void {
    const controller = this.readableController;
    if (this.readableDone || controller === null) return;
    controller.enqueue(data);
    if ((controller.desiredSize ?? 0) <= 0) this.connection!.pause();
  }

  onPeerClose(): void {
    if (this.state === 'open') this.state = 'closing';
    // Chrome closes the readable as soon as the peer's close frame arrives; queued messages stay.
    if (!this.readableDone) {
      this.readableDone = true;
      this.readableController?.close();
    }
    if (!this.writableDone) {
      this.writableDone = true;
      this.writableError = invalidState('the peer closed the WebSocket');
      this.writableController?.error(this.writableError);
    }
  }

  onClosed(info: ConnectionCloseInfo): void {
    this.state = 'closed';
    const inflight = this.inflight;
    this.inflight = null;
    if (info.wasClean) {
      const received = info.received!;
      this.closedDeferred.resolve({ closeCode: received.code ?? CloseCode.NO_STATUS_RECEIVED, reason: received.reason });
      // A write still in progress makes a close unclean, so none can be pending here.
    } else {
      // A received close frame without a body counts as 1005; no close frame at all is 1006.
      const code = info.received === null ? CloseCode.ABNORMAL_CLOSURE : (info.received.code ?? CloseCode.NO_STATUS_RECEIVED);
      const reason = info.received?.reason ?? '';
      const detail = info.error === null ? '' : `: ${info.error.message}`;
      const error = createWebSocketError(`the WebSocket connection closed uncleanly (${code})${detail}`, code, reason, info.error ?? undefined);
      this.closedDeferred.reject(error);
      if (!this.readableDone) {
        this.readableDone = true;
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

/**
 * What a write sends (spec-notes §6): bytes for a BufferSource (never a resizable or shared one),
 * a string for anything else, converted as WebIDL does. The bytes are a view; the encoder copies
 * them into the frame before the write returns.
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
