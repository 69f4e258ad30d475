// The public surface: every export of the package, nothing else.
export { WebSocketStream } from './websocket-stream.js';
export type { WebSocketStreamOptions, HeadersInit } from './options.js';
export { WebSocketError } from './websocket-error.js';
export type { WebSocketCloseInfo } from './websocket-error.js';
export type { WebSocketOpenInfo, WebSocketClosedInfo, WebSocketMessage } from './session.js';
export {
  CloseCode,
  DEFAULT_ACCEPT_BACKLOG,
  DEFAULT_MAX_PAYLOAD,
  DEFAULT_HANDSHAKE_TIMEOUT,
  DEFAULT_CLOSE_TIMEOUT,
  DEFAULT_MAX_HANDSHAKE_HEAD,
  DEFAULT_READABLE_HIGH_WATER_MARK,
  DEFAULT_SEND_BUFFER_SIZE,
  DEFAULT_HTTP2_IDLE_TIMEOUT,
  DEFAULT_ZLIB_CONCURRENCY,
  MAX_QUEUED_PONG_BYTES,
  REFUSAL_LINGER,
} from './protocol/constants.js';
export { WebSocketStreamServer } from './server.js';
export type { ServerCloseInfo } from './server.js';
export { ServerWebSocketStream, handleUpgrade } from './accept.js';
export { handleHttp2Stream } from './h2-accept.js';
export type { UpgradeRequestInfo } from './accept.js';
export type { WebSocketStreamServerOptions, ServerHandshakeOptions, VerifyResult, HeartbeatOptions, HandshakeRequest, AttachableServer } from './options.js';
export type { ExtendedConnectRequest } from './handshake/h2-server.js';
export type { Refusal } from './handshake/server.js';
export type { PerMessageDeflateOptions } from './handshake/deflate-negotiation.js';
export type { ProxyOptions } from './handshake/proxy.js';
export type { ConnectOptions, CreateConnection } from './handshake/transport.js';
