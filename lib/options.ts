// Validation of the Node-only numeric options, shared by the client and the server.

/** setTimeout takes at most 2^31-1 ms; past that Node fires after 1 ms, so such values are refused. */
export const MAX_TIMEOUT = 2 ** 31 - 1;

/** A positive number (or zero, when allowed); `fallback` when undefined. */
export function positiveNumber(value: unknown, name: string, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value)) throw new TypeError(`${name} must be a number`);
  if (value < 0 || (!allowZero && value === 0)) throw new RangeError(`${name} must be ${allowZero ? 'at least 0' : 'positive'}`);
  return value;
}

/** A timer delay in milliseconds: positive, finite, at most MAX_TIMEOUT. */
export function timeoutOption(value: unknown, name: string, fallback: number): number {
  const ms = positiveNumber(value, name, fallback);
  if (!Number.isFinite(ms) || ms > MAX_TIMEOUT) {
    throw new RangeError(`${name} must be a finite number of milliseconds up to ${MAX_TIMEOUT}`);
  }
  return ms;
}

export interface HeartbeatOption {
  interval: number;
  timeout?: number;
}

/** `heartbeat`: off when undefined; else an interval and an optional pong timeout, in ms. */
export function heartbeatOption(value: unknown): HeartbeatOption | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object') throw new TypeError('heartbeat must be an object: { interval, timeout? }');
  const { interval, timeout } = value as { interval?: unknown; timeout?: unknown };
  if (interval === undefined) throw new TypeError('heartbeat.interval is required');
  const result: HeartbeatOption = { interval: timeoutOption(interval, 'heartbeat.interval', 0) };
  if (timeout !== undefined) result.timeout = timeoutOption(timeout, 'heartbeat.timeout', 0);
  return result;
}
