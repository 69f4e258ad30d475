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

/** Told when a session has ended: a server keeps its count of open connections this way. */
export interface SessionObserver {
  sessionEnded(session: Session): void;
}

export interface SessionOptions extends ConnectionOptions {
  /** Bytes of messages the readable queues before the socket is paused. */
  readableHighWaterMark?: number;
  observer?: SessionObserver;
}

export type SessionState = 'connecting' | 'open' | 'closing' | 'closed';

/**
 * A promise made only when someone asks for it (most connections never look at `closed`, and a
 * server-side `opened` is settled before anyone can): settling earlier just records the outcome.
 * A rejection is always marked handled: an unhandled rejection would kill the process.
 */
class Settlement<T> {
  private promise: Promise<T> | null = null;
  private resolveFn: ((value: T) => void) | null = null;
  private rejectFn: ((reason: unknown) => void) | null = null;
  private outcome: 'pending' | 'fulfilled' | 'rejected' = 'pending';
  private value: unknown = undefined;

  get(): Promise<T> {
    if (this.promise !== null) return this.promise;
    if (this.outcome === 'fulfilled') {
      this.promise = Promise.resolve(this.value as T);
    } else if (this.outcome === 'rejected') {
      this.promise = Promise.reject(this.value);
      this.promise.catch(ignore);
    } else {
      this.promise = new Promise<T>((resolve, reject) => {
        this.resolveFn = resolve;
        this.rejectFn = reject;
      });
      this.promise.catch(ignore);
    }
    return this.promise;
  }

  resolve(value: T): void {
    if (this.outcome !== 'pending') return;
    this.outcome = 'fulfilled';
    this.value = value;
    this.resolveFn?.(value);
    this.resolveFn = this.rejectFn = null;
  }

  reject(reason: unknown): void {
    if (this.outcome !== 'pending') return;
    this.outcome = 'rejected';
    this.value = reason;
    this.rejectFn?.(reason);
    this.resolveFn = this.rejectFn = null;
  }
}

function invalidState(message: string): DOMException {
  return new DOMException(message, 'InvalidStateError');
}

/**
 * The InvalidStateError a writable gets when the peer closes: made on every closing handshake, from
 * deep inside the frame parser, where a stack trace would cost more than the rest of the close and
 * tell the application nothing (the error is about the connection's state, not a line of code).
 */
function peerClosedError(): DOMException {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return invalidState('the peer closed the WebSocket');
  } finally {
    Error.stackTraceLimit = limit;
  }
}

function sizeOf(message: WebSocketMessage): number {
  return typeof message === 'string' ? message.length : message.byteLength;
}

/**
 * Everything a WebSocketStream is once it has a socket, identical for both roles: it turns
 * Connection events into stream operations and promise settlements. Its state is the
 * connection's once there is one; before that it is connecting, or closed if the handshake failed.
 *
 * The streams are made when the application first asks for them (a WHATWG stream costs
 * kilobytes): the readable when it reads `readable`, the writable when it asks for `opened` (a
 * WritableStream handles writes only once its start has settled, and a first write made right
 * after `await opened` must still be copied at once). A connection waiting in a server's backlog
 * has neither, one that only writes has no readable. Until the readable exists, messages wait in
 * `unread`; whatever happened to the connection meanwhile is applied to a stream as it is made.
 */
export class Session implements ConnectionEvents {
  private connection: Connection | null = null;
  private handshakeFailed = false;
  /** Called once `opened` has settled or the session has ended, whichever comes first. */
  private onSettled: (() => void) | null = null;
  /** Abandons the client's handshake while it runs. */
  private cancelHandshake: (() => void) | null = null;

  private readonly openedSettlement = new Settlement<WebSocketOpenInfo>();
  /** Someone has asked for `opened`: the writable is made as soon as there is a connection. */
  private openedAsked = false;
  private readonly closedSettlement = new Settlement<WebSocketClosedInfo>();

  private readableStream: ReadableStream<WebSocketMessage> | null = null;
  private readableController: ReadableStreamDefaultController<WebSocketMessage> | null = null;
  /** Closed, cancelled or errored (or decided so, for a readable not made yet). */
  private readableDone = false;
  /** Why the readable ended, for one made afterwards: null for a close. */
  private readableError: unknown = null;
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

  private writableStream: WritableStream<unknown> | null = null;
  private writableController: WritableStreamDefaultController | null = null;
  /** Closed or aborted by the user, or errored by us. */
  private writableDone = false;
  /** The error the writable was (or, once made, will be) put in by us. */
  private writableError: unknown = null;
  /** The one write in progress (the writable's high-water mark is one chunk). */
  private inflight: { resolve(): void; reject(reason: unknown): void } | null = null;
  /** writer.close() waits for the connection to close. */
  private writerClose: Settlement<void> | null = null;
  /** The WebSocketError of an unclean close, once there was one. */
  private closeError: WebSocketError | null = null;

  constructor(private readonly options: SessionOptions) {}

  get state(): SessionState {
    if (this.connection !== null) return this.connection.state;
    return this.handshakeFailed ? 'closed' : 'connecting';
  }

  get role(): ConnectionOptions['role'] {
    return this.options.role;
  }

  get opened(): Promise<WebSocketOpenInfo> {
    this.openedAsked = true;
    // The writable exists before the application can write: a WritableStream processes writes
    // only after its start() has settled, and the first write must still be copied at once.
    if (this.connection !== null) void this.writable;
    return this.openedSettlement.get();
  }

  get closed(): Promise<WebSocketClosedInfo> {
    return this.closedSettlement.get();
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

  /** The opening handshake succeeded: wire the socket to the session and resolve `opened`. */
  establish(socket: ConnectionSocket, head: Buffer, protocol: string, extensions: string, deflate: DeflateParams | null = null): void {
    this.cancelHandshake = null;
    const connection = new Connection(socket, this.options, deflate, this);
    this.connection = connection;
    if (this.openedAsked) void this.writable;
    this.openedSettlement.resolve(openInfo(this, protocol, extensions));
    this.settled();
    // Bytes that came with the 101 wait for a later macrotask, so code that runs right after
    // `await opened` goes first (docs/semantics.md, "Ordering").
    setImmediate(startConnection, connection, head);
  }

  /** The readable, made on first use. */
  get readable(): ReadableStream<WebSocketMessage> {
    return (this.readableStream ??= new ReadableStream<WebSocketMessage>(new MessageSource(this), { highWaterMark: 0 }));
  }

  /** The writable, made on first use. */
  get writable(): WritableStream<unknown> {
    return (this.writableStream ??= new WritableStream<unknown>(new MessageSink(this), { highWaterMark: 1 }));
  }

  /** The handshake failed (or was cancelled by close()): opened and closed reject. */
  failHandshake(message: string, cause?: unknown): void {
    if (this.state !== 'connecting') return;
    this.handshakeFailed = true;
    this.cancelHandshake?.();
    this.cancelHandshake = null;
    this.openedSettlement.reject(createWebSocketError(message, null, '', cause));
    this.closedSettlement.reject(createWebSocketError(`${message}; the connection was closed`, CloseCode.ABNORMAL_CLOSURE, '', cause));
    this.settled();
  }

  /** An AbortSignal fired before the handshake completed: both promises reject with its reason. */
  abortHandshake(reason: unknown): void {
    if (this.state !== 'connecting') return;
    this.handshakeFailed = true;
    this.cancelHandshake?.();
    this.cancelHandshake = null;
    this.openedSettlement.reject(reason);
    this.closedSettlement.reject(reason);
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

  // The readable's underlying source (MessageSource calls these).

  startReadable(controller: ReadableStreamDefaultController<WebSocketMessage>): void {
    this.readableController = controller;
    if (!this.readableDone) return;
    // The connection ended before the readable was made: it starts in the state it would be in,
    // an error waiting behind the messages that arrived (pull() delivers them first).
    if (this.readableError !== null) {
      if (this.unread === null) controller.error(this.readableError);
    } else {
      this.flushUnread();
      controller.close();
    }
  }

  pull(): void {
    const unread = this.unread;
    if (unread === null || unread.length === 0) {
      this.readPending = true;
      this.connection!.resume();
      return;
    }
    const message = unread.shift()!;
    this.unreadBytes -= sizeOf(message);
    const controller = this.readableController!;
    controller.enqueue(message);
    if (unread.length === 0) {
      this.unread = null;
      // The last message that arrived before an unclean end has been read: now the error.
      if (this.readableError !== null) {
        controller.error(this.readableError);
        return;
      }
      // The application has the last message the peer sent before its close frame: its reply,
      // written in this task (pipeTo and for-await loops write from microtasks), goes first.
      if (this.holdingPeerClose) setImmediate(finishHeldPeerClose, this);
    }
    if (this.unreadBytes < this.highWaterMark) this.connection!.resume();
  }

  cancelReadable(reason: unknown): void {
    this.readableDone = true;
    this.dropUnread();
    this.closeWithReason(reason);
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
    if (this.readableController === null) return;
    this.flushUnread();
    this.readableController.close();
  }

  /**
   * An unclean end errors the readable, but only once the messages that arrived before it have
   * been read: the error waits behind them (an error discards a stream's queue, so they stay in
   * `unread` and pull() hands them out first).
   */
  private errorReadable(error: unknown): void {
    if (this.readableDone) return;
    this.readableDone = true;
    this.readableError = error;
    if (this.unread === null) this.readableController?.error(error);
  }

  // The writable's underlying sink (MessageSink calls these).

  startWritable(controller: WritableStreamDefaultController): void {
    this.writableController = controller;
    // The connection ended before the writable was made: it starts errored.
    if (this.writableDone && this.writableError !== null) controller.error(this.writableError);
  }

  /**
   * A write: done at once (undefined) when the frame fits the bounded send buffer, else once the
   * socket has drained to its bound (onSendReady); rejected when the connection closes first
   * (onClosed), or at once with the abort reason when the writable is aborted meanwhile.
   */
  write(chunk: unknown, controller: WritableStreamDefaultController): Promise<void> | undefined {
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
      // The sink's abort() runs only after this write settles; the signal fires at once.
      const signal = controller.signal;
      const onAbort = (): void => this.abortWritable(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      const done = (): void => signal.removeEventListener('abort', onAbort);
      this.inflight = {
        resolve: () => {
          done();
          resolve();
        },
        reject: (reason) => {
          done();
          reject(reason);
        },
      };
    });
  }

  closeWritable(): Promise<void> {
    this.writableDone = true;
    const writerClose = (this.writerClose = new Settlement<void>());
    // writer.close() closes with no code: an empty close frame.
    this.close(null, '');
    if (this.state === 'closed') this.settleWriterClose();
    return writerClose.get();
  }

  abortWritable(reason: unknown): void {
    if (this.writableDone) return;
    this.writableDone = true;
    const inflight = this.inflight;
    this.inflight = null;
    inflight?.reject(reason);
    this.closeWithReason(reason);
  }

  private errorWritable(error: unknown): void {
    if (this.writableDone) return;
    this.writableDone = true;
    this.writableError = error;
    this.writableController?.error(error);
  }

  // ConnectionEvents

  onMessage(data: WebSocketMessage): void {
    if (this.readableDone) return;
    if (this.readPending && this.unread === null) {
      this.readPending = false;
      this.readableController!.enqueue(data);
      return;
    }
    (this.unread ??= []).push(data);
    this.unreadBytes += sizeOf(data);
    if (this.unreadBytes >= this.highWaterMark) this.connection!.pause();
  }

  onPeerClose(): boolean {
    // A server whose application has not yet had the chance to answer what the client sent before
    // closing (messages unread, or read in this very task) holds its reply (RFC 6455 §5.5.1 lets
    // an endpoint finish sending first): a client that sends a message and its close frame back
    // to back still gets the answer. The close timeout bounds the hold.
    const connection = this.connection!;
    if (this.options.role !== 'server' || this.readableDone || this.writableDone || !connection.canSend) {
      this.peerClosed();
      return false;
    }
    if (this.unread !== null) {
      this.holdingPeerClose = true;
      return true;
    }
    if (connection.answersPending) {
      this.holdingPeerClose = true;
      setImmediate(finishHeldPeerClose, this);
      return true;
    }
    this.peerClosed();
    return false;
  }

  /** Ends a held peer close: the streams close as they would have at once, and the reply goes out. */
  finishPeerClose(): void {
    if (!this.holdingPeerClose) return;
    this.holdingPeerClose = false;
    this.peerClosed();
    this.connection!.replyToPeerClose();
  }

  private peerClosed(): void {
    // Chrome closes the readable as soon as the peer's close frame arrives; unread messages stay.
    this.closeReadable();
    this.errorWritable(peerClosedError());
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
      this.closedSettlement.resolve({ closeCode: received.code ?? CloseCode.NO_STATUS_RECEIVED, reason: received.reason });
      // A write still in progress makes a close unclean, so none can be pending here.
      this.closeReadable();
    } else {
      // A received close frame without a body counts as 1005; no close frame at all is 1006.
      const code = info.received === null ? CloseCode.ABNORMAL_CLOSURE : (info.received.code ?? CloseCode.NO_STATUS_RECEIVED);
      const reason = info.received?.reason ?? '';
      const detail = info.error === null ? '' : `: ${info.error.message}`;
      const error = createWebSocketError(`the WebSocket connection closed uncleanly (${code})${detail}`, code, reason, info.error ?? undefined);
      this.closedSettlement.reject(error);
      this.errorReadable(error);
      this.errorWritable(error);
      this.closeError = error;
      inflight?.reject(this.writableError ?? error);
    }
    this.settleWriterClose();
    this.options.observer?.sessionEnded(this);
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

function startConnection(connection: Connection, head: Buffer): void {
  connection.start(head);
}

function finishHeldPeerClose(session: Session): void {
  session.finishPeerClose();
}

/** The readable's underlying source: one small object per stream, its methods shared. */
class MessageSource implements UnderlyingDefaultSource<WebSocketMessage> {
  constructor(private readonly session: Session) {}

  start(controller: ReadableStreamDefaultController<WebSocketMessage>): void {
    this.session.startReadable(controller);
  }

  pull(): void {
    this.session.pull();
  }

  cancel(reason: unknown): void {
    this.session.cancelReadable(reason);
  }
}

/** The writable's underlying sink: one small object per stream, its methods shared. */
class MessageSink implements UnderlyingSink<unknown> {
  private controller: WritableStreamDefaultController | null = null;

  constructor(private readonly session: Session) {}

  start(controller: WritableStreamDefaultController): void {
    this.controller = controller;
    this.session.startWritable(controller);
  }

  write(chunk: unknown): Promise<void> | undefined {
    return this.session.write(chunk, this.controller!);
  }

  close(): Promise<void> {
    return this.session.closeWritable();
  }

  abort(reason: unknown): void {
    this.session.abortWritable(reason);
  }
}

const kSession = Symbol('session');
type OpenInfoObject = WebSocketOpenInfo & { [kSession]: Session };

function readableOf(this: OpenInfoObject): ReadableStream<WebSocketMessage> {
  return this[kSession].readable;
}

function writableOf(this: OpenInfoObject): WritableStream<unknown> {
  return this[kSession].writable;
}

/**
 * What `opened` resolves with. `readable` and `writable` are own, enumerable properties (so
 * destructuring and spreading work as on a plain dictionary) whose streams are made on first read.
 */
function openInfo(session: Session, protocol: string, extensions: string): WebSocketOpenInfo {
  const info = { protocol, extensions } as OpenInfoObject;
  Object.defineProperties(info, {
    readable: { get: readableOf, enumerable: true, configurable: true },
    writable: { get: writableOf, enumerable: true, configurable: true },
    [kSession]: { value: session },
  });
  return info;
}

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
