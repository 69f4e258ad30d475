// An HTTP/2 stream as the WebSocket's transport (RFC 8441 §5): the stream stands where RFC 6455 has
// the TCP connection. Its Duplex semantics already map the closing rules: end() sends END_STREAM
// (TCP's FIN), and a reset by the peer ends in 'close' without the closing handshake (an unclean
// close, 1006). Two things differ from a socket, and are adjusted here on the stream itself (no
// wrapper in the data path):
// - an abrupt close must be RST_STREAM with CANCEL, where node:http2 would send NO_ERROR;
// - node:http2 may destroy a stream that closed normally before the callbacks of its last writes
//   have run (when the peer's END_STREAM comes back before the write is reported complete), and a
//   write reported on a destroyed transport counts as not delivered. When the stream closed
//   normally after our own END_STREAM went out, everything written before it was sent: those
//   callbacks are run then, before the stream is destroyed.
import * as http2 from 'node:http2';
import { HTTP2_INITIAL_WINDOW, HTTP2_MAX_WINDOW, HTTP2_SESSION_WINDOW_STREAMS } from './protocol/constants.js';

/**
 * The receive windows (RFC 9113 §6.9) for WebSockets whose readables hold `readableHighWaterMark`
 * bytes: a stream may be sent as much as its reader may queue (HTTP/2's default of 64 KiB would
 * stall every large message for a WINDOW_UPDATE round trip), and the connection some streams'
 * worth. A reader that stops reading thus holds at most its high-water mark in the readable plus
 * one window in node:http2, as over TCP it would hold the kernel's buffers.
 */
export function http2Windows(readableHighWaterMark: number): { stream: number; session: number } {
  const stream = Math.min(HTTP2_MAX_WINDOW, Math.max(HTTP2_INITIAL_WINDOW, Math.floor(readableHighWaterMark)));
  return { stream, session: Math.min(HTTP2_MAX_WINDOW, stream * HTTP2_SESSION_WINDOW_STREAMS) };
}

type WriteCallback = (error?: Error | null) => void;

/** Applies the two adjustments above to `stream`, and returns it. */
export function asWebSocketTransport<T extends http2.Http2Stream>(stream: T): T {
  const pending = new Set<WriteCallback>();
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with .call(this) below
  const write = stream.write as (this: T, chunk: unknown, encoding?: unknown, callback?: unknown) => boolean;
  stream.write = function writeTracked(this: T, chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    const given = (typeof encoding === 'function' ? encoding : callback) as WriteCallback | undefined;
    if (given === undefined) return write.call(this, chunk, encoding);
    let called = false;
    const once: WriteCallback = (error) => {
      if (called) return;
      called = true;
      pending.delete(once);
      given(error);
    };
    pending.add(once);
    return typeof encoding === 'function' ? write.call(this, chunk, once) : write.call(this, chunk, encoding, once);
  } as T['write'];

  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with .call(this) below
  const destroy = stream.destroy;
  stream.destroy = function destroyAsWebSocket(this: T, error?: Error) {
    if (error == null && !this.destroyed) {
      // RFC 8441 §5: TCP's RST becomes RST_STREAM with CANCEL. The connection destroys its
      // transport on every unclean exit (a lost peer, a close timeout), and only there.
      if (!this.closed) {
        this.close(http2.constants.NGHTTP2_CANCEL);
        return this;
      }
      // Closed without a reset after our END_STREAM was sent: every write before it went out.
      if (this.rstCode === http2.constants.NGHTTP2_NO_ERROR && this.state.localClose === 1) {
        for (const callback of [...pending]) callback(null);
      }
    }
    return destroy.call(this, error);
  };
  return stream;
}
