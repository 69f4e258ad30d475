// Small assertion helpers shared by the facade specs (WebSocketError, webidl, WebSocketStream).
import { expect } from 'chai';

/** Runs `fn` and returns what it threw; fails the test if it returned normally. */
export function thrownBy(fn: () => unknown): unknown {
  let threw = false;
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    threw = true;
    caught = error;
  }
  expect(threw, 'expected the call to throw').to.equal(true);
  return caught;
}

/** The legacy `code` of the DOMException names the specs use. */
export const LEGACY_CODE: Record<string, number> = {
  SyntaxError: 12,
  InvalidStateError: 11,
  InvalidAccessError: 15,
  AbortError: 20,
};

/** Asserts `error` is exactly `new DOMException(message, name)` of the global class. */
export function expectExactDOMException(error: unknown, name: string): DOMException {
  expect(error).to.be.an.instanceOf(DOMException);
  const exception = error as DOMException;
  expect(exception.constructor, `constructor of ${String(error)}`).to.equal(DOMException);
  expect(Object.getPrototypeOf(exception)).to.equal(DOMException.prototype);
  expect(exception.name).to.equal(name);
  expect(exception.code).to.equal(LEGACY_CODE[name] ?? 0);
  return exception;
}

/** Asserts that `fn` throws exactly a DOMException named `name`. */
export function expectThrowsDOMException(fn: () => unknown, name: string): DOMException {
  return expectExactDOMException(thrownBy(fn), name);
}

/** Asserts `error` is a plain TypeError (no subclass, no renamed Error). */
export function expectPlainTypeError(error: unknown): TypeError {
  expect(error).to.be.an.instanceOf(TypeError);
  expect((error as TypeError).constructor, `constructor of ${String(error)}`).to.equal(TypeError);
  expect(Object.getPrototypeOf(error), `prototype of ${String(error)} (no subclass, no Node internal error)`).to.equal(TypeError.prototype);
  expect((error as TypeError).name).to.equal('TypeError');
  return error as TypeError;
}

export function expectThrowsTypeError(fn: () => unknown): TypeError {
  return expectPlainTypeError(thrownBy(fn));
}

/** Awaits `promise`, expecting it to reject, and returns the reason. */
export { rejectionOf } from './conn.js';

/** A tag error thrown by user callbacks (toString, valueOf, iterators), to check it passes through. */
export class Marker extends Error {
  constructor(readonly tag: string) {
    super(`marker ${tag}`);
  }
}

/** The cause chain of an error: the error, its cause, that cause's cause… (bounded). */
export function causeChain(error: unknown): unknown[] {
  const chain: unknown[] = [];
  let current: unknown = error;
  while (current !== undefined && current !== null && chain.length < 10 && !chain.includes(current)) {
    chain.push(current);
    current = typeof current === 'object' ? (current as { cause?: unknown }).cause : undefined;
  }
  return chain;
}
