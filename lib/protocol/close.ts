// Close frame payloads: RFC 6455 §5.5.1 and §7.4.
import { CloseCode, MAX_CLOSE_REASON_BYTES } from './constants.js';
import { isValidUtf8 } from './utf8.js';

/**
 * Codes a peer may put in a close frame. RFC 6455 §7.4.1 reserves 1004–1006 and 1015 as never
 * sent on the wire; 1012–1014 are registered with IANA; 3000–4999 belong to libraries and apps.
 */
export function isValidWireCloseCode(code: number): boolean {
  return (
    (code >= CloseCode.NORMAL && code <= CloseCode.UNSUPPORTED_DATA) ||
    (code >= CloseCode.INVALID_PAYLOAD && code <= CloseCode.BAD_GATEWAY) ||
    (code >= 3000 && code <= 4999)
  );
}

/** The codes a WebSocketStream user may pass to close() or WebSocketError (WHATWG). */
export function isUserCloseCode(code: number): boolean {
  return code === CloseCode.NORMAL || (code >= 3000 && code <= 4999);
}

export type ParsedClose =
  | { ok: true; code: number | null; reason: string }
  | { ok: false; errorCode: number; message: string };

/** Reads a received close payload; `code: null` means the frame had no body (reported as 1005). */
export function parseClosePayload(payload: Uint8Array): ParsedClose {
  if (payload.length === 0) return { ok: true, code: null, reason: '' };
  if (payload.length === 1) {
    return { ok: false, errorCode: CloseCode.PROTOCOL_ERROR, message: 'close frame with a one-byte payload' };
  }
  const code = (payload[0]! << 8) | payload[1]!;
  if (!isValidWireCloseCode(code)) {
    return { ok: false, errorCode: CloseCode.PROTOCOL_ERROR, message: `invalid close code ${code}` };
  }
  const reasonBytes = payload.subarray(2);
  if (!isValidUtf8(reasonBytes)) {
    return { ok: false, errorCode: CloseCode.INVALID_PAYLOAD, message: 'close reason is not valid UTF-8' };
  }
  const reason = Buffer.from(reasonBytes.buffer, reasonBytes.byteOffset, reasonBytes.byteLength).toString('utf8');
  return { ok: true, code, reason };
}

/**
 * Builds a close payload. No code means an empty body (the peer reports 1005): RFC 6455 §7.4.1
 * forbids putting 1005 itself on the wire. Reasons are cut to 123 bytes on a character boundary,
 * since codes we send for our own errors may carry longer messages.
 */
export function encodeClosePayload(code: number | null, reason = ''): Buffer {
  if (code === null) return Buffer.alloc(0);
  const reasonBuffer = truncateUtf8(reason, MAX_CLOSE_REASON_BYTES);
  const payload = Buffer.allocUnsafe(2 + reasonBuffer.length);
  payload.writeUInt16BE(code, 0);
  reasonBuffer.copy(payload, 2);
  return payload;
}

function truncateUtf8(text: string, maxBytes: number): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return bytes;
  let end = maxBytes;
  // Step back over continuation bytes so the cut lands before a lead byte.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}
