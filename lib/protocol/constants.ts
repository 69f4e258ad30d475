// Every number the RFCs define, and every default limit, lives here.

/** RFC 6455 §1.3: appended to Sec-WebSocket-Key before hashing. */
export const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** RFC 6455 §4.1: the only version this library speaks. */
export const WEBSOCKET_VERSION = 13;
/** RFC 6455 §4.1: the nonce is 16 random bytes, base64-encoded. */
export const KEY_BYTES = 16;

/** RFC 6455 §5.2 opcodes. */
export const Opcode = {
  CONTINUATION: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa,
} as const;
export type Opcode = (typeof Opcode)[keyof typeof Opcode];

/** RFC 6455 §5.5: control frames carry at most 125 payload bytes. */
export const MAX_CONTROL_PAYLOAD = 125;
/** A close payload is a 2-byte code plus a reason, so the reason holds at most 123 bytes. */
export const MAX_CLOSE_REASON_BYTES = MAX_CONTROL_PAYLOAD - 2;
/** RFC 6455 §5.2: the 7-bit length field's escapes to 16- and 64-bit lengths. */
export const LENGTH_16 = 126;
export const LENGTH_64 = 127;
export const MAX_LENGTH_7 = 125;
export const MAX_LENGTH_16 = 0xffff;
/** RFC 6455 §5.3: a masking key is four bytes. */
export const MASK_BYTES = 4;

/** RFC 6455 §7.4.1 status codes (and the IANA registry) that this library names. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  NO_STATUS_RECEIVED: 1005,
  ABNORMAL_CLOSURE: 1006,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  MANDATORY_EXTENSION: 1010,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  BAD_GATEWAY: 1014,
  TLS_HANDSHAKE: 1015,
} as const;

/** Default largest message (after reassembly, and after inflation once that exists): 100 MiB. */
export const DEFAULT_MAX_PAYLOAD = 100 * 1024 * 1024;
/** Default time allowed for the opening handshake, from connect to the end of the 101 head. */
export const DEFAULT_HANDSHAKE_TIMEOUT = 30_000;
/**
 * Default time allowed after our close frame for the peer's close frame and then its TCP close.
 * Never under 2 s (docs/semantics.md#the-closing-handshake-and-its-timeout), since a peer may reasonably answer a second later.
 */
export const DEFAULT_CLOSE_TIMEOUT = 5_000;
/** Largest HTTP head (status line plus headers) accepted during the handshake, like Node's 16 KiB. */
export const DEFAULT_MAX_HANDSHAKE_HEAD = 16 * 1024;
/**
 * Bytes the readable may hold (queued messages, counted by size) before the socket is paused.
 * A reader that does not read holds about one message or 1 MiB (docs/semantics.md#backpressure-and-the-read-ahead-bound).
 */
export const DEFAULT_READABLE_HIGH_WATER_MARK = 1024 * 1024;
/**
 * The bounded send buffer: a write resolves at once while the bytes handed to the socket and not
 * yet taken by the kernel, this message's frame included, stay at or under this many bytes; past
 * it, once the socket has drained to it (docs/semantics.md, "The writable").
 */
export const DEFAULT_SEND_BUFFER_SIZE = 16 * 1024;
/**
 * How long a client's pooled HTTP/2 session (RFC 8441) stays open once it carries no WebSocket;
 * meanwhile it does not keep the process alive. Like undici's keep-alive default, a few seconds.
 */
export const DEFAULT_HTTP2_IDLE_TIMEOUT = 5_000;
/** RFC 9113 §6.9.2: the flow-control window an HTTP/2 stream or connection starts with. */
export const HTTP2_INITIAL_WINDOW = 65_535;
/** RFC 9113 §6.9.1: the largest flow-control window. */
export const HTTP2_MAX_WINDOW = 2 ** 31 - 1;
/**
 * An HTTP/2 connection's receive window is this many times one stream's, so that a few stalled
 * WebSockets (each holding a full stream window) do not stop the others on the connection.
 */
export const HTTP2_SESSION_WINDOW_STREAMS = 16;
/**
 * zlib jobs (one message each) running at once across all connections of the process: zlib runs
 * on libuv's thread pool (4 threads by default), which DNS lookups and file I/O share.
 */
export const DEFAULT_ZLIB_CONCURRENCY = 10;
/**
 * Milliseconds a refused handshake's socket stays open after the HTTP error response was written,
 * so that the client reads the status before the connection goes; then it is destroyed.
 */
export const REFUSAL_LINGER = 1000;
/** Accepted server connections queued in `server.connections` before new handshakes wait. */
export const DEFAULT_ACCEPT_BACKLOG = 16;
/**
 * Pongs are not queued behind this many bytes waiting in the socket: a peer that sends pings and
 * reads nothing cannot make us buffer without bound.
 */
export const MAX_QUEUED_PONG_BYTES = 1024 * 1024;
