// Sec-WebSocket-Key and Sec-WebSocket-Accept (RFC 6455 §4.1, §4.2.2).
import { createHash, randomBytes } from 'node:crypto';
import { KEY_BYTES, WEBSOCKET_GUID } from '../protocol/constants.js';

export function generateKey(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

export function acceptKeyFor(key: string): string {
  return createHash('sha1').update(key + WEBSOCKET_GUID).digest('base64');
}

/** A Sec-WebSocket-Key must be the base64 form of exactly 16 bytes. */
export function isValidKey(key: string): boolean {
  return /^[A-Za-z0-9+/]{22}==$/.test(key) && Buffer.from(key, 'base64').length === KEY_BYTES;
}
