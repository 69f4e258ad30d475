// One WebSocket connection over one socket, after the opening handshake: OPEN → CLOSING → CLOSED.
import type { Duplex } from 'node:stream';
import { encodeClosePayload } from './protocol/close.js';
import { DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_PAYLOAD, MAX_QUEUED_PONG_BYTES, Opcode } from './protocol/constants.js';
import { encodeFrame, encodeTextFrame, headerLength } from './protocol/frame-encoder.js';
import { acquireFrameBuffer, releaseFrameBuffer } from './protocol/frame-pool.js';
import type { ProtocolError, Role } from './protocol/frame-parser.js';
import { MessageReader, type MessageSink } from './protocol/message-reader.js';
import { PerMessageDeflate, type DeflateParams } from './protocol/permessage-deflate.js';

export type ConnectionState = 'open' | 'closing' | 'closed';

export interface ConnectionOptions {
  role: Role;
  maxPayload?: number;
  closeTimeout?: number;
  /** permessage-deflate parameters, when the handshake negotiated it. */
  deflate?: DeflateParams | null;
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
  /** RFC 6455 §7.1.4 / Chrome: both close frames exchanged, no write left unflushed, then TCP closed. */
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
  onClosed(info: ConnectionCloseInfo): void;
}

/** A socket the connection can own: a net.Socket or tls.TLSSocket in practice. */
export type ConnectionSocket = Duplex & { setNoDelay?(noDelay?: boolean): unknown };

/**
 * Owns the socket once the handshake is done: it alone writes to or ends it. Shared by both roles;
 * the role decides who masks and who closes TCP first (RFC 6455 §7.1.1: the server).
 */
export class Connection implements MessageSink {
  state: ConnectionState = 'open';
  private readonly reader: MessageReader;
  private readonly masked: boolean;
  private readonly closeTimeout: number;
  private closeTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private pongTimer: NodeJS.Timeout | null = null;
  private started = false;
  /** The reader wants no more messages for now (readable backpressure). */
  private paused = false;

  private closeSent = false;
  private closeFlushed = false;
  private received: { code: number | null; reason: string } | null = null;
  private failure: Error | null = null;
  /** Data frames handed to the socket and not yet reported flushed. */
  private unflushedWrites = 0;
  private readonly deflate: PerMessageDeflate | null;
  /**
   * With permessage-deflate, frames leave in order through this queue: a message being compressed
   * on the threadpool holds back everything after it (a close frame above all).
   */
  private readonly outQueue: Array<(next: () => void) => void> = [];
  private outBusy = false;
  /** Bytes of pongs waiting in outQueue (they count against MAX_QUEUED_PONG_BYTES). */
  private queuedPongBytes = 0;
  /** The socket ended or closed while parsing waited for an inflate. */
  private endPending = false;
  private closePending = false;

  constructor(
    readonly socket: ConnectionSocket,
    private readonly options: ConnectionOptions,
    private readonly events: ConnectionEvents,
  ) {
    this.masked = options.role === 'client';
    this.closeTimeout = options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT;
    const maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    this.deflate = options.deflate ? new PerMessageDeflate(options.deflate, maxPayload) : null;
    this.reader = new MessageReader(this, { role: options.role, maxPayload, deflate: this.deflate });
    socket.pause();
    socket.on('error', this.onSocketError);
    socket.on('end', this.onSocketEnd);
    socket.on('close', this.onSocketClose);
  }

  /** Starts reading: first `head` (bytes that came with the handshake), then the socket. */
  start(head: Buffer): void {
    if (this.started || this.state === 'closed') return;
    this.started = true;
    this.socket.on('data', this.onData);
    if (head.length > 0) this.onData(head);
    this.updateReading();
    const heartbeat = this.options.heartbeat;
    if (heartbeat && this.state === 'open') this.heartbeatTimer = setInterval(this.beat, heartbeat.interval);
  }

  /**
   * One heartbeat: a ping, and a deadline for its pong. While reading is paused by backpressure a
   * pong could not be seen, so no ping is sent then: a slow reader is not a dead peer.
   */
  private readonly beat = (): void => {
    if (this.state !== 'open' || this.pongTimer !== null || this.reader.busy || this.paused) return;
    this.writeControl(encodeFrame(Opcode.PING, Buffer.alloc(0), { masked: this.masked }));
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
  };

  /** Readable backpressure: stop reading from the socket while the reader's queue is full. */
  pause(): void {
    this.paused = true;
    // Once the peer is gone (end or close waiting behind an inflate), what was read must be parsed.
    this.reader.holdInflation = !this.closeSent && !this.endPending && !this.closePending;
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

  /**
   * Sends one message. `callback(true)` once the frame is flushed to the kernel with the socket
   * still open; `callback(false)` if the socket went away first (Node then reports the write
   * without an error, so that case is told apart here).
   */
  send(data: string | Uint8Array, callback: (flushed: boolean) => void): void {
    this.unflushedWrites++;
    const written = (error?: Error | null): void => {
      if (error == null && !this.socket.destroyed) {
        this.unflushedWrites--;
        callback(true);
      } else {
        callback(false);
      }
    };
    const deflate = this.deflate;
    if (deflate === null) {
      const pooled = typeof data === 'string' ? undefined : acquireFrameBuffer(headerLength(data.byteLength, this.masked) + data.byteLength);
      if (pooled === undefined) {
        this.socket.write(this.dataFrame(data), written);
      } else {
        this.socket.write(encodeFrame(Opcode.BINARY, data as Uint8Array, { masked: this.masked }, pooled), (error) => {
          // The socket no longer refers to the frame once its write called back.
          releaseFrameBuffer(pooled);
          written(error);
        });
      }
      return;
    }
    const opcode = typeof data === 'string' ? Opcode.TEXT : Opcode.BINARY;
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (bytes.byteLength < deflate.params.threshold) {
      // Encoded now: the caller's bytes must be copied before send() returns.
      const frame = encodeFrame(opcode, bytes, { masked: this.masked });
      this.enqueue((next) => {
        this.socket.write(frame, written);
        next();
      });
      return;
    }
    // zlib takes its input now, so later changes to the caller's buffer cannot reach the message.
    const input = typeof data === 'string' ? bytes : Buffer.from(bytes);
    this.enqueue((next) => {
      deflate.compress(input, (error, compressed) => {
        if (error !== null || this.socket.destroyed) {
          written(error ?? new Error('socket closed'));
        } else {
          // RFC 7692 §6: RSV1 on the first (here: only) frame of a compressed message.
          this.socket.write(encodeFrame(opcode, compressed!, { masked: this.masked, rsv1: true }), written);
        }
        next();
      });
    });
  }

  private dataFrame(data: string | Uint8Array): Buffer {
    return typeof data === 'string'
      ? encodeTextFrame(Opcode.TEXT, data, { masked: this.masked })
      : encodeFrame(Opcode.BINARY, data, { masked: this.masked });
  }

  /** Writes a control frame after every data frame queued before it. */
  private writeControl(frame: Buffer, callback?: (error?: Error | null) => void): void {
    if (this.deflate === null) {
      this.socket.write(frame, callback);
      return;
    }
    this.enqueue((next) => {
      if (!this.socket.destroyed) this.socket.write(frame, callback);
      next();
    });
  }

  private enqueue(task: (next: () => void) => void): void {
    this.outQueue.push(task);
    if (!this.outBusy) this.drainOutQueue();
  }

  private drainOutQueue(): void {
    while (this.outQueue.length > 0) {
      const task = this.outQueue.shift()!;
      let synchronous = true;
      let finished = false;
      this.outBusy = true;
      task(() => {
        finished = true;
        if (!synchronous) {
          this.outBusy = false;
          this.drainOutQueue();
        }
      });
      synchronous = false;
      if (!finished) return;
      this.outBusy = false;
    }
  }

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
    if (this.state === 'open') this.events.onMessage(text);
  }

  onBinary(data: Uint8Array): void {
    if (this.state === 'open') this.events.onMessage(data);
  }

  onPing(payload: Uint8Array): void {
    // RFC 6455 §5.5.2: answer with a pong carrying the same payload, unless we are done sending.
    // A peer that floods pings without reading our pongs gets no more of them once that many bytes
    // wait in the socket (§5.5.3 allows answering only the most recent ping).
    if (this.closeSent || this.socket.writableLength + this.queuedPongBytes > MAX_QUEUED_PONG_BYTES) return;
    const pong = encodeFrame(Opcode.PONG, payload, { masked: this.masked });
    if (this.deflate === null) {
      this.socket.write(pong);
      return;
    }
    // Behind a message being compressed, the pong waits in outQueue where writableLength cannot
    // see it: count it until it reaches the socket.
    this.queuedPongBytes += pong.length;
    this.enqueue((next) => {
      this.queuedPongBytes -= pong.length;
      if (!this.socket.destroyed) this.socket.write(pong);
      next();
    });
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
    if (this.options.role === 'server') this.endSocket();
    this.startCloseTimer();
    this.updateReading();
  }

  /** Data frames may still be sent: our close frame is not out yet and the socket is open. */
  get canSend(): boolean {
    return !this.closeSent && this.state !== 'closed';
  }

  onProtocolError(error: ProtocolError): void {
    if (this.failure === null && this.state !== 'closed') this.fail(error.closeCode, error);
  }

  onReadResumed(): void {
    if (this.endPending) {
      this.endPending = false;
      this.onSocketEnd();
    }
    if (this.closePending) {
      this.closePending = false;
      this.onSocketClose();
      return;
    }
    this.updateReading();
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.state === 'closed') return;
    this.reader.push(chunk);
    if (this.reader.busy) this.updateReading();
  };

  /** Ends TCP after every queued frame (RFC 6455 §7.1.1: the server closes first). */
  private endSocket(): void {
    if (this.deflate === null) this.socket.end();
    else
      this.enqueue((next) => {
        this.socket.end();
        next();
      });
  }

  /** RFC 6455 §7.1.7: fail the connection: send a close frame with the code, then close TCP. */
  private fail(code: number, error: Error): void {
    this.failure = error;
    this.reader.parser.stop();
    if (!this.closeSent) this.sendClose(code, error.message);
    this.state = 'closing';
    this.endSocket();
    this.startCloseTimer();
    this.updateReading();
  }

  private sendClose(code: number | null, reason: string): void {
    this.closeSent = true;
    this.reader.discardMessages = true;
    this.reader.releaseInflation();
    const frame = encodeFrame(Opcode.CLOSE, encodeClosePayload(code, reason), { masked: this.masked });
    this.writeControl(frame, (error) => {
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
        // With both close frames exchanged, a late TCP close is still a clean close (spec-notes §3).
        this.socket.destroy();
      }),
      this.closeTimeout,
    );
    this.closeTimer = closeTimer;
  }

  private readonly onSocketError = (error: Error): void => {
    // A reset after both close frames went through does not undo a completed closing handshake.
    if (this.received === null || !this.closeFlushed) this.failure ??= error;
  };

  private readonly onSocketEnd = (): void => {
    // The peer is done sending: what was read must now be parsed, backpressure or not.
    this.reader.releaseInflation();
    // Bytes read before the FIN may still wait behind an inflate: handle the end after them.
    if (this.reader.busy) {
      this.endPending = true;
      this.reader.holdInflation = false;
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
    this.socket.end();
  };

  private readonly onSocketClose = (): void => {
    if (this.state === 'closed') return;
    this.reader.releaseInflation();
    // As for the FIN: a close frame may already be read but still wait behind an inflate.
    if (this.reader.busy) {
      this.closePending = true;
      this.reader.holdInflation = false;
      return;
    }
    this.state = 'closed';
    if (this.closeTimer !== null) clearTimeout(this.closeTimer);
    this.closeTimer = null;
    this.stopHeartbeat();
    this.socket.off('data', this.onData);
    this.deflate?.close();
    if (this.received === null) this.failure ??= new Error('the connection closed without a close frame');
    const wasClean =
      this.received !== null && this.closeSent && this.closeFlushed && this.failure === null && this.unflushedWrites === 0;
    this.events.onClosed({ wasClean, received: this.received, error: wasClean ? null : this.failure });
  };
}

/**
 * Node runs expired timers before it polls sockets: on a busy loop a deadline can pass while the
 * awaited frame already sits unread in the socket. One setImmediate lets that read happen first.
 */
function afterPendingReads(callback: () => void): () => void {
  return () => setImmediate(callback);
}
