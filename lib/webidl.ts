// WebIDL conversions (docs/semantics.md#webidl-conversions), so arguments behave exactly as in browsers.

/** A dictionary argument: undefined and null mean {}, any other non-object throws TypeError. */
export function toDictionary(value: unknown, what: string): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' && typeof value !== 'function') {
    throw new TypeError(`${what} must be an object`);
  }
  return value as Record<string, unknown>;
}

/** USVString: ToString (throws on Symbols), then lone surrogates become U+FFFD. */
export function toUSVString(value: unknown): string {
  return `${value as string}`.toWellFormed();
}

/** [EnforceRange] unsigned short. */
export function toEnforcedUnsignedShort(value: unknown, what: string): number {
  // Unary plus is ToNumber: it throws for BigInt and Symbol, where Number() would convert a BigInt.
  const number = +(value as number);
  if (!Number.isFinite(number)) throw new TypeError(`${what} must be a finite number`);
  const integer = Math.trunc(number);
  if (integer < 0 || integer > 0xffff) throw new TypeError(`${what} must be between 0 and 65535`);
  return integer === 0 ? 0 : integer;
}

/** sequence<USVString>: any iterable object; strings and other primitives throw TypeError. */
export function toUSVStringSequence(value: unknown, what: string): string[] {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) {
    throw new TypeError(`${what} must be a sequence of strings`);
  }
  const iteratorMethod = (value as { [Symbol.iterator]?: unknown })[Symbol.iterator];
  if (typeof iteratorMethod !== 'function') throw new TypeError(`${what} must be iterable`);
  const result: string[] = [];
  for (const item of value as Iterable<unknown>) result.push(toUSVString(item));
  return result;
}

// eslint-disable-next-line @typescript-eslint/unbound-method -- called with .call(signal) below
const abortedGetter = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'aborted')!.get!;

/** An AbortSignal by brand, not by prototype: a look-alike made with Object.create fails. */
export function toAbortSignal(value: unknown, what: string): AbortSignal {
  try {
    abortedGetter.call(value);
  } catch {
    throw new TypeError(`${what} must be an AbortSignal`);
  }
  return value as AbortSignal;
}
