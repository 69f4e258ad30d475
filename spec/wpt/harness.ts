// Shared scaffolding for the mocha ports of web-platform-tests `websockets/stream/tentative/`.
//
// WPT runs each file in the variants `?default`, `?wss` and `?wpt_flags=h2`, all three ported:
// plain TCP, TLS, and WebSockets over HTTP/2 (RFC 8441: the client's `http2: true`, against the
// stand-in handlers of ./handlers.ts behind an HTTP/2 server with extended CONNECT).
import v8 from 'node:v8';
import vm from 'node:vm';
import { expect } from 'chai';
import { WebSocketStream, type WebSocketStreamOptions } from '../../lib/index.js';
import { testCert, testKey } from '../helpers/raw-peer.js';
import { startWptServer, type WptServer } from './handlers.js';

export type Variant = 'default' | 'wss' | 'h2';
export const VARIANTS: readonly Variant[] = ['default', 'wss', 'h2'];

/** How long afterEach waits for every stream's `closed` to settle once the server is gone. */
const CLEANUP_LIMIT_MS = 5000;

/** Per-test state: the stand-in server, the URLs of the WPT tests, and the streams to clean up. */
export class WptFixture {
  private currentServer: WptServer | null = null;
  private readonly streams: Array<{ closed: Promise<unknown>; close(): void }> = [];

  constructor(readonly variant: Variant) {}

  get server(): WptServer {
    if (this.currentServer === null) throw new Error('the stand-in server runs only inside a test');
    return this.currentServer;
  }

  /** WPT's BASEURL. */
  get BASEURL(): string {
    return this.server.baseUrl;
  }

  /** WPT's ECHOURL. */
  get ECHOURL(): string {
    return this.server.echoUrl;
  }

  /** Options every stream of this variant needs: the test CA for wss (and h2, which is wss). */
  get tlsOptions(): WebSocketStreamOptions {
    if (this.variant === 'h2') return { tls: { ca: testCert }, http2: true };
    return this.variant === 'wss' ? { tls: { ca: testCert } } : {};
  }

  /** `new WebSocketStream(url, options)`, trusting the test certificate, cleaned up after the test. */
  open(url: string, options: WebSocketStreamOptions = {}): WebSocketStream {
    const stream = new WebSocketStream(url, { ...this.tlsOptions, ...options });
    this.streams.push({ closed: stream.closed, close: () => stream.close() });
    return stream;
  }

  /**
   * Registers a stream the fixture must not hold: its `closed` promise, to wait for, and how to
   * start closing it.
   */
  trackClosed(closed: Promise<unknown>, close: () => void): void {
    this.streams.push({ closed, close });
  }

  async setUp(): Promise<void> {
    this.currentServer = await startWptServer(this.variant === 'default' ? {} : { tls: { cert: testCert, key: testKey }, http2: this.variant === 'h2' });
  }

  /**
   * Starts closing every stream, drops every server-side connection, and waits until every stream
   * has noticed. Closing first matters: a stream whose readable is full reads nothing from its
   * socket (backpressure), so it would not see the server go away; once it has sent its close
   * frame it reads again (docs/semantics.md#after-our-close-frame). A `closed` that still never settles is a library bug.
   */
  async tearDown(): Promise<void> {
    const server = this.currentServer;
    this.currentServer = null;
    const streams = this.streams.splice(0);
    for (const stream of streams) {
      try {
        stream.close();
      } catch {
        // Nothing to do: a stream that cannot close is waited for all the same.
      }
    }
    if (server !== null) await server.close();
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`a WebSocketStream's closed promise did not settle within ${CLEANUP_LIMIT_MS} ms of its server going away`)),
        CLEANUP_LIMIT_MS,
      );
    });
    try {
      await Promise.race([Promise.all(streams.map((stream) => stream.closed.then(ignore, ignore))), limit]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function ignore(): void {}

/**
 * One describe block per variant, titled like WPT's test URL (`close.any.js?wss`), with the
 * stand-in server started before and torn down after each test.
 */
export function wptSuite(file: string, body: (t: WptFixture) => void, variants: readonly Variant[] = VARIANTS): void {
  for (const variant of variants) {
    describe(`${file}?${variant === 'h2' ? 'wpt_flags=h2' : variant}`, function () {
      const fixture = new WptFixture(variant);
      beforeEach(async function () {
        await fixture.setUp();
      });
      afterEach(async function () {
        await fixture.tearDown();
      });
      body(fixture);
    });
  }
}

/** The settled value of a promise that must reject: its rejection reason. */
export async function rejection(promise: Promise<unknown>, what = 'promise'): Promise<unknown> {
  let value: unknown;
  try {
    value = await promise;
  } catch (error) {
    return error;
  }
  throw new Error(`${what} should have rejected, but fulfilled with ${String(value)}`);
}

/** WPT's assert_throws_dom: a DOMException (the global class itself) with this name. */
export function expectDomException(error: unknown, name: string): DOMException {
  expect(error, `expected a ${name} DOMException`).to.be.instanceOf(DOMException);
  const exception = error as DOMException;
  expect(exception.constructor, 'the exception must be a plain DOMException').to.equal(DOMException);
  expect(exception.name).to.equal(name);
  return exception;
}

export function expectThrowsDom(fn: () => unknown, name: string): DOMException {
  let thrown: unknown = undefined;
  let threw = false;
  try {
    fn();
  } catch (error) {
    threw = true;
    thrown = error;
  }
  expect(threw, `should throw a ${name} DOMException`).to.equal(true);
  return expectDomException(thrown, name);
}

/** WPT's assert_throws_js: an exception whose constructor is exactly `constructor`. */
export function expectThrowsJs(fn: () => unknown, constructor: new (...args: never[]) => Error): void {
  let thrown: unknown = undefined;
  let threw = false;
  try {
    fn();
  } catch (error) {
    threw = true;
    thrown = error;
  }
  expect(threw, `should throw a ${constructor.name}`).to.equal(true);
  expect((thrown as Error).constructor).to.equal(constructor);
}

/** Marks a promise as handled (awaited later), so a rejection cannot crash the run meanwhile. */
export function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(ignore);
  return promise;
}

/** Tracks whether a promise has settled, without ever leaving a rejection unhandled. */
export function watch<T>(promise: Promise<T>): { readonly settled: boolean; readonly promise: Promise<T> } {
  const state = { settled: false, promise };
  promise.then(
    () => {
      state.settled = true;
    },
    () => {
      state.settled = true;
    },
  );
  return state;
}

/** One turn of the event loop (timers, I/O poll, immediates). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Waits until nothing observable moves: `sample()` returns the same value for `turns` event loop
 * turns in a row while `stalled()` holds, or until `finished()` says the transfer ran to its end.
 * On loopback, bytes a reader takes are replaced within a poll phase or two, so a transfer that
 * shows no progress for many turns is held back by flow control, not by the clock.
 */
export async function untilStalled(
  sample: () => unknown,
  stalled: () => boolean,
  finished: () => boolean,
  turns = 50,
): Promise<void> {
  let last = JSON.stringify(sample());
  let still = 0;
  while (!finished()) {
    await nextTurn();
    const now = JSON.stringify(sample());
    if (now === last && stalled()) {
      if (++still >= turns) return;
    } else {
      still = 0;
      last = now;
    }
  }
}

let gcFunction: (() => void) | null = null;

/** WPT's garbageCollect() (common/gc.js): a full collection, exposing V8's gc() if needed. */
export async function garbageCollect(): Promise<void> {
  if (gcFunction === null) {
    const global = globalThis as { gc?: () => void };
    if (typeof global.gc === 'function') {
      gcFunction = global.gc;
    } else {
      v8.setFlagsFromString('--expose-gc');
      gcFunction = vm.runInNewContext('gc') as () => void;
    }
  }
  gcFunction();
  await nextTurn();
}
