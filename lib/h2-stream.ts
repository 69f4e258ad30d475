// An HTTP/2 stream as the WebSocket's transport (RFC 8441 §5): the stream stands where RFC 6455 has
// the TCP connection. Its ordinary Duplex semantics already map the closing rules: end() sends
// END_STREAM (TCP's FIN), a reset by the peer ends in 'close' without the close handshake (an
// unclean close, 1006). One thing differs: an abrupt end must be RST_STREAM with CANCEL.
import * as http2 from 'node:http2';

/**
 * Makes `destroy()` without an error reset the stream with CANCEL, as RFC 8441 §5 says an abrupt
 * close is sent (node:http2 would send NO_ERROR, which reads as a normal end). The connection
 * destroys its transport on every unclean exit (a lost peer, a close timeout), and only there.
 */
export function cancelOnDestroy<T extends http2.Http2Stream>(stream: T): T {
  const destroy = stream.destroy;
  stream.destroy = function destroyWithCancel(this: T, error?: Error) {
    if (error == null && !this.closed && !this.destroyed) {
      this.close(http2.constants.NGHTTP2_CANCEL);
      return this;
    }
    return destroy.call(this, error);
  };
  return stream;
}
