// WebSocketError (WHATWG WebSockets; docs/semantics.md#websocketerror).
import { isUserCloseCode } from './protocol/close.js';
import { CloseCode, MAX_CLOSE_REASON_BYTES } from './protocol/constants.js';
import { utf8ByteLength } from './protocol/utf8.js';
import { toDictionary, toEnforcedUnsignedShort, toUSVString } from './webidl.js';

export interface WebSocketCloseInfo {
  closeCode?: number;
  reason?: string;
}

/**
 * Set only while createWebSocketError constructs an error for a code users may not pass (1001,
 * 1006, 1011, …): the constructor then takes it without validation. Module-private, so user code
 * can never skip the checks.
 */
let trustedInit: { closeCode: number | null; reason: string } | null = null;

export class WebSocketError extends DOMException {
  readonly #closeCode: number | null;
  readonly #reason: string;

  constructor(message: string = '', init: WebSocketCloseInfo | null = {}) {
    const trusted = trustedInit;
    trustedInit = null;
    const text = message === undefined ? '' : `${message}`;
    let closeCode: number | null;
    let reason: string;
    if (trusted !== null) {
      closeCode = trusted.closeCode;
      reason = trusted.reason;
    } else {
      const validated = validateCloseInfo(init, 'WebSocketError init');
      closeCode = validated.closeCode;
      reason = validated.reason;
    }
    super(text, 'WebSocketError');
    this.#closeCode = closeCode;
    this.#reason = reason;
  }

  get closeCode(): number | null {
    return this.#closeCode;
  }

  get reason(): string {
    return this.#reason;
  }

  /** True only for real WebSocketErrors, not look-alikes with the same fields. */
  static isWebSocketError(value: unknown): value is WebSocketError {
    return typeof value === 'object' && value !== null && #closeCode in value;
  }
}

Object.defineProperty(WebSocketError.prototype, Symbol.toStringTag, {
  value: 'WebSocketError',
  configurable: true,
});

/** Builds a WebSocketError without validation, for codes that come from the peer or the library. */
export function createWebSocketError(message: string, closeCode: number | null, reason: string, cause?: unknown): WebSocketError {
  trustedInit = { closeCode, reason };
  const error = new WebSocketError(message);
  if (cause !== undefined) {
    Object.defineProperty(error, 'cause', { value: cause, writable: true, configurable: true, enumerable: false });
  }
  return error;
}

/**
 * Converts and validates a WebSocketCloseInfo as close() and the WebSocketError constructor do:
 * TypeError for bad types, InvalidAccessError for a code users may not send, SyntaxError for a
 * reason over 123 UTF-8 bytes. A reason without a code means 1000.
 */
export function validateCloseInfo(
  value: unknown,
  what: string,
  isSendable: (code: number) => boolean = isUserCloseCode,
): { closeCode: number | null; reason: string } {
  const dictionary = toDictionary(value, what);
  const rawCode = dictionary.closeCode;
  let closeCode = rawCode === undefined ? null : toEnforcedUnsignedShort(rawCode, 'closeCode');
  const rawReason = dictionary.reason;
  const reason = rawReason === undefined ? '' : toUSVString(rawReason);
  if (closeCode !== null && !isSendable(closeCode)) {
    const allowed = isSendable === isUserCloseCode ? 'neither 1000 nor in 3000-4999' : 'not a close code that may be sent (RFC 6455 §7.4)';
    throw new DOMException(`closeCode ${closeCode} is ${allowed}`, 'InvalidAccessError');
  }
  if (utf8ByteLength(reason) > MAX_CLOSE_REASON_BYTES) {
    throw new DOMException(`reason is longer than ${MAX_CLOSE_REASON_BYTES} UTF-8 bytes`, 'SyntaxError');
  }
  if (closeCode === null && reason !== '') closeCode = CloseCode.NORMAL;
  return { closeCode, reason };
}
