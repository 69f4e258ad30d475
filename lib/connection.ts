// One WebSocket connection over one socket, after the opening handshake: OPEN → CLOSING → CLOSED.
import type { Duplex } from 'node:stream';
import { DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_PAYLOAD, DEFAULT_SEND_BUFFER_SIZE, MAX_QUEUED_PONG_BYTES } from './protocol/constants.js';
import type { ProtocolError, Role } from './protocol/types.js';
import { MessageReader, type MessageSink } from './protocol/message-reader.js';
import { MessageWriter, type FrameOutput } from './protocol/message-writer.js';
import { PerMessageDeflate, type DeflateParams } from './protocol/permessage-deflate.js';

export type ConnectionState = 'open' | 'closing' | 'closed';

export interface ConnectionOptions {
  role: Role;
  maxPayload?: number;
  closeTimeout?: number;
  /** The bounded send buffer, in bytes (DEFAULT_SEND_BUFFER_SIZE). */
  sendBufferSize?: number;
  /** Ping the peer every `interval` ms; no pong within `timeout` ms means the connection is lost. */
  heartbeat?: HeartbeatOptions | null;
}

export interface HeartbeatOptions {
  /** Milliseconds between pings. */
  interval: number;
  /** Milliseconds to wait for a pong before the connection is dropped (closes as 1006). Default: interval. */
  timeout?: number;
}

/** How a connection ended. */
export interface ConnectionCloseInfo {
  /** RFC 6455 §7.1.4 / Chrome: both close frames exchanged, no write left waiting, then TCP closed. */
  wasClean: boolean;
  /** The first valid close frame received; null if none arrived. */
  received: { code: number | null; reason: string } | null;
  /** Why the close was not clean: a protocol error, a socket error, a timeout, TCP closed early. */
  error: Error | null;
}

export interface ConnectionEvents {
  onMessage(data: string | Uint8Array): void;
  /**
   * The peer's valid close frame arrived. Return true to hold our reply (RFC 6455 §5.5.1 lets an
   * endpoint finish sending first): sending stays possible until `replyToPeerClose()`, or until the
   * close timeout calls `onReplyDue()`. Return false and the reply is queued at once.
   */
  onPeerClose(code: number | null, reason: string): boolean;
  /** A held reply to the peer's close frame may wait no longer: call `replyToPeerClose()`. */
  onReplyDue(): void;
  /** A send() that did not fit the send buffer is now accepted: the socket has drained to the bound. */
  onSendReady(): void;
  onClosed(info: ConnectionCloseInfo): void;
}

/** A socket the connection can own: a net.Socket or tls.TLSSocket in practice. */
export type ConnectionSocket = Duplex & { setNoDelay?(noDelay?: boolean): unknown };

/** The connection that owns a socket, found from the socket in the shared listeners below. */
const kConnection = Symbol('websocket connection');
type OwnedSocket = ConnectionSocket & { [kConnection]?: Connection | undefined };

/**
 * Owns the socket once the handshake is done: it alone writes to or ends it. Shared by both roles;
 * the role decides who masks and who closes TCP first (RFC 6455 §7.1.1: the server). Incoming
 * bytes go socket → MessageReader → this → events; outgoing messages go send() → MessageWriter →
 * this (as its FrameOutput) → socket.
 */
export class Connection implements MessageSink, FrameOutput {
  state: ConnectionState = 'open';
  private readonly reader: MessageReader;
  private readonly writer: MessageWriter;
  private readonly closeTimeout: number;
  private readonly sendBufferSize: number;
  private closeTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private pongTimer: NodeJS.Timeout | null = null;
  private started = false;
  /** The reader wants no more messages for now (readable backpressure). */
  private paused = false;
  /** A send() is waiting for the socket to drain to the send buffer's bound. */
  private sendWaiting = false;
  /** The batch's flush is scheduled (see scheduleFlush). */
  private flushScheduled = false;
  /** A message was delivered while the chunk being parsed now was read (see answersPending). */
  private deliveredInChunk = false;

  private closeSent = false;
  private closeFlushed = false;
  private received: { code: number | null; reason: string } | null = null;
  private failure: Error | null = null;
  private readonly deflate: PerMessageDeflate | null;
  /** The socket ended or closed while parsing waited for an inflate. */
  private endPending = false;
  private closePending = false;

  /**
   * `options` may be shared by many connections (a server's); `deflate` is what this connection's
   * handshake negotiated, or null.
   */
  constructor(
    readonly socket: ConnectionSocket,
    private readonly options: ConnectionOptions,
    deflate: DeflateParams | null,
    private readonly events: ConnectionEvents,
  ) {
    this.closeTimeout = options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT;
    this.sendBufferSize = options.sendBufferSize ?? DEFAULT_SEND_BUFFER_SIZE;
    const maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    this.deflate = deflate === null ? null : new PerMessageDeflate(deflate, maxPayload);
    this.reader = new MessageReader(this, { role: options.role, maxPayload, deflate: this.deflate });
    this.writer = new MessageWriter(this, options.role, this.deflate);
    socket.pause();
    (socket as OwnedSocket)[kConnection] = this;
    socket.on('error', onSocketError);
    socket.on('end', onSocketEnd);
    socket.on('close', onSocketClose);
  }

  /** Starts reading: first `head` (bytes that came with the handshake), then the socket. */
  start(head: Buffer): void {
    if (this.started || this.state === 'closed') return;
    this.started = true;
    this.socket.on('data', onSocketData);
    if (head.length > 0) this.onData(head);
    this.updateReading();
    const heartbeat = this.options.heartbeat;
    if (heartbeat && this.state === 'open') this.heartbeatTimer = setInterval(beat, heartbeat.interval, this);
  }

  /**
   * One heartbeat: a ping, and a deadline for its pong. While reading is paused by backpressure a
   * pong could not be seen, so no ping is sent then: a slow reader is not a dead peer.
   */
  beat(): void {
    if (this.state !== 'open' || this.pongTimer !== null || this.reader.busy || this.paused) return;
    this.writer.ping(EMPTY);
    const timeout = this.options.heartbeat!.timeout ?? this.options.heartbeat!.interval;
    const pongTimer = setTimeout(
      afterPendingReads(() => {
        // A pong read in the meantime cleared (or replaced) this timer.
        if (this.pongTimer !== pongTimer || this.state === 'closed') return;
        this.pongTimer = null;
        this.failure ??= new Error(`no pong within ${timeout} ms: the connection is lost`);
        this.socket.destroy();
      }),
      timeout,
    );
    this.pongTimer = pongTimer;
  }

  /** Readable backpressure: stop reading from the socket while the reader's queue is full. */
  pause(): void {
    this.paused = true;
    // Once the peer is gone (end or close waiting behind an inflate), what was read must be parsed.
    if (!this.closeSent && !this.endPending && !this.closePending) this.reader.holdInflation();
    this.updateReading();
  }

  resume(): void {
    this.paused = false;
    this.reader.releaseInflation();
    this.updateReading();
  }

  /**
   * The socket flows while the reader wants messages and no inflate holds parsing back. Once our
   * close frame is out, backpressure no longer applies: the peer's close frame must get through.
   */
  private updateReading(): void {
    if (!this.started || this.state === 'closed') return;
    if (this.reader.busy || (this.paused && !this.closeSent)) this.socket.pause();
    else this.socket.resume();
  }

  /** Data frames may still be sent: our close frame is not out yet and the socket is open. */
  get canSend(): boolean {
    return !this.closeSent && this.state !== 'closed';
  }

  /** Bytes sent and not yet taken by the kernel: in the socket, in the writer's batch, behind a compression. */
  private get unsentBytes(): number {
    return this.socket.writableLength + this.writer.bufferedBytes;
  }

  /**
   * Sends one message (after `canSend` was checked). Returns true when it fits the bounded send
   * buffer: the write is accepted. Otherwise the frame is queued all the same, and onSendReady()
   * follows once the socket has drained to the bound.
   */
  send(data: string | Uint8Array): boolean {
    this.writer.send(data);
    if (this.unsentBytes <= this.sendBufferSize) return true;
    this.sendWaiting = true;
    return false;
  }

  // FrameOutput: where the writer's bytes go.

  write(bytes: Buffer, written?: (error?: Error | null) => void): void {
    const socket = this.socket;
    if (socket.destroyed) {
      written?.(new Error('the socket is closed'));
      return;
    }
    if (written === undefined) {
      socket.write(bytes, this.afterWrite);
      return;
    }
    let reported = false;
    const before = socket.writableLength;
    socket.write(bytes, (error) => {
      if (!reported) {
        reported = true;
        written(error);
      }
      this.afterWrite(error);
    });
    // Taken by the kernel at once (nothing new waits in the socket): the bytes have left now.
    // Node would report it only on a later tick, after every microtask: a sender that never
    // yields would meanwhile hold every pooled frame it wrote.
    if (!reported && socket.writableLength === before) {
      reported = true;
      written();
    }
  }

  flushNeeded(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    scheduleFlush(this);
  }

  end(): void {
    // A second end() would only make Node build an error object.
    if (!this.socket.destroyed && !this.socket.writableEnded) this.socket.end();
  }

  /** The scheduled flush: frames sent during the task that just ended leave in one write. */
  flushBatch(): void {
    this.flushScheduled = false;
    if (this.state !== 'closed') this.writer.flush();
  }

  /**
   * After every socket write: a send that waited for room goes on once the bytes not yet taken
   * by the kernel are back at the bound. A failed write, or a socket destroyed meanwhile (Node
   * then calls this without an error), sent nothing: the close settles the waiting write.
   */
  private readonly afterWrite = (error?: Error | null): void => {
    if (!this.sendWaiting || error != null || this.socket.destroyed || this.unsentBytes > this.sendBufferSize) return;
    this.sendWaiting = false;
    this.events.onSendReady();
  };

  /** Starts the closing handshake (RFC 6455 §7.1.2); `code` null sends a close frame with no body. */
  close(code: number | null, reason = ''): void {
    if (this.state !== 'open') return;
    this.state = 'closing';
    this.sendClose(code, reason);
    this.startCloseTimer();
    this.updateReading();
  }

  // MessageSink: what the reader found.

  onText(text: string): void {
    // The WHATWG spec handles messages only while OPEN: after our close frame they are dropped.
    if (this.state !== 'open') return;
    this.deliveredInChunk = true;
    this.events.onMessage(text);
  }

  onBinary(data: Uint8Array): void {
    if (this.state !== 'open') return;
    this.deliveredInChunk = true;
    this.events.onMessage(data);
  }

  /**
   * A message was handed to the application while the chunk being parsed now was read: its
   * handler runs only once this task's parsing is done (in a microtask, at the earliest), and
   * whatever it answers should still go out before a close that the same chunk brought.
   */
  get answersPending(): boolean {
    return this.deliveredInChunk;
  }

  onPing(payload: Uint8Array): void {
    // RFC 6455 §5.5.2: answer with a pong carrying the same payload, unless we are done sending.
    // A peer that floods pings without reading our pongs gets no more of them once that many bytes
    // wait unsent (§5.5.3 allows answering only the most recent ping).
    if (this.closeSent || this.unsentBytes > MAX_QUEUED_PONG_BYTES) return;
    this.writer.pong(payload);
  }

  onPong(): void {
    // RFC 6455 §5.5.3: an unsolicited pong needs no answer; any pong proves the peer alive.
    if (this.pongTimer !== null) {
      clearTimeout(this.pongTimer);
      this.pongTimer = null;
    }
  }

  onClose(code: number | null, reason: string): void {
    this.received = { code, reason };
    this.state = 'closing';
    const hold = this.events.onPeerClose(code, reason) && !this.closeSent;
    if ((this.state as ConnectionState) === 'closed') return;
    if (hold) {
      // The close timer bounds the hold; when it fires the reply is due (onReplyDue).
      this.startCloseTimer();
      this.updateReading();
    } else {
      this.replyToPeerClose();
    }
  }

  /** Answers the peer's close frame, now or at the end of a hold (see ConnectionEvents.onPeerClose). */
  replyToPeerClose(): void {
    const received = this.received;
    if (received === null || this.state === 'closed') return;
    // RFC 6455 §5.5.1: echo the close unless ours was already sent; 1005 is never put on the wire.
    if (!this.closeSent) this.sendClose(received.code, received.reason);
    // RFC 6455 §7.1.1: the server closes TCP first; the client waits for it, within the timeout.
    if (this.options.role === 'server') this.writer.end();
    this.startCloseTimer();
    this.updateReading();
  }

  onProtocolError(error: ProtocolError): void {
    if (this.failure !== null || this.state === 'closed') return;
    // Messages that came before the error in the same chunk were delivered: the application gets
    // this task (its microtasks) to answer them before the connection fails. Reading has stopped.
    if (this.deliveredInChunk) setImmediate(failLater, this, error);
    else this.fail(error.closeCode, error);
  }

  /** The deferred end of onProtocolError. */
  failWith(error: ProtocolError): void {
    if (this.failure === null && this.state !== 'closed') this.fail(error.closeCode, error);
  }

  onReadResumed(): void {
    if (this.endPending) {
      this.endPending = false;
      this.onEnd();
    }
    if (this.closePending) {
      this.closePending = false;
      this.onSocketClosed();
      return;
    }
    this.updateReading();
  }

  onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.deliveredInChunk = false;
    this.reader.push(chunk);
    this.deliveredInChunk = false;
    if (this.reader.busy) this.updateReading();
  }

  /** RFC 6455 §7.1.7: fail the connection: send a close frame with the code, then close TCP. */
  private fail(code: number, error: Error): void {
    this.failure = error;
    this.reader.stop();
    if (!this.closeSent) this.sendClose(code, error.message);
    this.state = 'closing';
    this.writer.end();
    this.startCloseTimer();
    this.updateReading();
  }

  private sendClose(code: number | null, reason: string): void {
    this.closeSent = true;
    this.reader.discardMessages();
    this.reader.releaseInflation();
    this.writer.close(code, reason, (error) => {
      if (error == null && !this.socket.destroyed) this.closeFlushed = true;
    });
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer !== null) clearInterval(this.heartbeatTimer);
    if (this.pongTimer !== null) clearTimeout(this.pongTimer);
    this.heartbeatTimer = null;
    this.pongTimer = null;
  }

  private startCloseTimer(): void {
    // The closing handshake has its own timer; the heartbeat has nothing left to check.
    this.stopHeartbeat();
    if (this.closeTimer !== null) clearTimeout(this.closeTimer);
    const closeTimer = setTimeout(
      afterPendingReads(() => {
        // A restart (the peer's close frame, read in the meantime) replaced this timer.
        if (this.closeTimer !== closeTimer || this.state === 'closed') return;
        this.closeTimer = null;
        if (this.received !== null && !this.closeSent) {
          // A held reply to the peer's close frame may wait no longer.
          this.events.onReplyDue();
          return;
        }
        if (this.received === null) {
          this.failure ??= new Error(`no close frame from the peer within ${this.closeTimeout} ms`);
        }
        // With both close frames exchanged, a late TCP close is still a clean close.
        this.socket.destroy();
      }),
      this.closeTimeout,
    );
    this.closeTimer = closeTimer;
  }

  onError(error: Error): void {
    // A reset after both close frames went through does not undo a completed closing handshake.
    if (this.received === null || !this.closeFlushed) this.failure ??= error;
  }

  onEnd(): void {
    // The peer is done sending: what was read must now be parsed, backpressure or not.
    this.reader.releaseInflation();
    // Bytes read before the FIN may still wait behind an inflate: handle the end after them.
    if (this.reader.busy) {
      this.endPending = true;
      return;
    }
    if (this.received === null) {
      // The connection is lost: nothing queued can be delivered meaningfully, and a peer that
      // stopped reading would keep socket.end() from ever finishing.
      this.failure ??= new Error('the peer closed TCP without a close frame');
      this.socket.destroy();
      return;
    }
    // A held reply still has to go out; replyToPeerClose() ends our side after it.
    if (!this.closeSent) return;
    // Upgraded sockets from node:http allow half-open connections: finish our side too.
    this.writer.end();
  }

  onSocketClosed(): void {
    if (this.state === 'closed') return;
    this.reader.releaseInflation();
    // As for the FIN: a close frame may already be read but still wait behind an inflate.
    if (this.reader.busy) {
      this.closePending = true;
      return;
    }
    this.state = 'closed';
    if (this.closeTimer !== null) clearTimeout(this.closeTimer);
    this.closeTimer = null;
    this.stopHeartbeat();
    const socket = this.socket as OwnedSocket;
    socket.off('data', onSocketData);
    socket[kConnection] = undefined;
    this.deflate?.close();
    if (this.received === null) this.failure ??= new Error('the connection closed without a close frame');
    const wasClean = this.received !== null && this.closeSent && this.closeFlushed && this.failure === null && !this.sendWaiting;
    this.events.onClosed({ wasClean, received: this.received, error: wasClean ? null : this.failure });
  }
}

const EMPTY = new Uint8Array(0);

function beat(connection: Connection): void {
  connection.beat();
}

function failLater(connection: Connection, error: ProtocolError): void {
  connection.failWith(error);
}

// The socket's listeners, shared by every connection: a closure per connection would cost memory
// for the life of each one.

function onSocketData(this: OwnedSocket, chunk: Buffer): void {
  this[kConnection]?.onData(chunk);
}

function onSocketError(this: OwnedSocket, error: Error): void {
  this[kConnection]?.onError(error);
}

function onSocketEnd(this: OwnedSocket): void {
  this[kConnection]?.onEnd();
}

function onSocketClose(this: OwnedSocket): void {
  this[kConnection]?.onSocketClosed();
}

/**
 * Frames sent in one task go out together: the first send of a task asks for a flush, and one
 * setImmediate (the check phase, right after the poll phase that delivered the messages being
 * answered) flushes every connection that asked.
 */
let toFlush: Connection[] = [];
let flushPending = false;

function scheduleFlush(connection: Connection): void {
  toFlush.push(connection);
  if (flushPending) return;
  flushPending = true;
  setImmediate(flushAll);
}

function flushAll(): void {
  flushPending = false;
  const connections = toFlush;
  toFlush = [];
  for (const connection of connections) connection.flushBatch();
}

/**
 * Node runs expired timers before it polls sockets: on a busy loop a deadline can pass while the
 * awaited frame already sits unread in the socket. One setImmediate lets that read happen first.
 */
function afterPendingReads(callback: () => void): () => void {
  return () => setImmediate(callback);
}
