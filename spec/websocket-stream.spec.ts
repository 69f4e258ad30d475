// WebSocketStream, the client: constructor semantics, signal, close() and the opening handshake
// (docs/semantics.md, from #webidl-conversions to #close-and-websocketerror).
import { expect } from 'chai';
import diagnosticsChannel from 'node:diagnostics_channel';
import { getEventListeners, once } from 'node:events';
import net from 'node:net';
import { WebSocketError, WebSocketStream, type WebSocketStreamOptions } from '../lib/index.js';
import {
  causeChain,
  expectExactDOMException,
  expectPlainTypeError,
  expectThrowsDOMException,
  expectThrowsTypeError,
  Marker,
  rejectionOf,
  thrownBy,
} from './helpers/facade.js';
import { acceptFor, type RawPeer, type RawRequest, type RawServer, type RawServerOptions, startRawServer, testCert } from './helpers/raw-peer.js';

// ---------------------------------------------------------------------------------------------
// Resources: every server and stream a test makes is released after it, pass or fail.

const cleanups: Array<() => unknown> = [];

/** Runs (in reverse order) every cleanup the test registered; hooked in the top describe. */
async function runCleanups(): Promise<void> {
  while (cleanups.length > 0) {
    const cleanup = cleanups.pop()!;
    await cleanup();
  }
}

/** Constructs a stream (untyped arguments allowed) and closes it after the test. */
function track(stream: WebSocketStream): WebSocketStream {
  cleanups.push(() => {
    try {
      stream.close();
    } catch {
      // close() with no argument cannot throw; nothing to do.
    }
  });
  return stream;
}

function construct(...args: unknown[]): WebSocketStream {
  const Constructor = WebSocketStream as unknown as new (...a: unknown[]) => WebSocketStream;
  return track(new Constructor(...args));
}

async function rawServer(options: RawServerOptions = {}): Promise<RawServer> {
  const server = await startRawServer(options);
  cleanups.push(() => server.close());
  return server;
}

interface CapturedRequest {
  socket: net.Socket;
  requestLine: string;
  /** Header lines in order, names as sent. */
  headerLines: Array<[string, string]>;
  /** Every value of a header, case-insensitive name. */
  header(name: string): string[];
  /** Bytes after the head. */
  rest: Buffer;
}

interface TestServer {
  port: number;
  url: string;
  /** TCP connections accepted so far (probes included). */
  readonly connections: number;
  nextSocket(): Promise<net.Socket>;
  nextRequest(): Promise<CapturedRequest>;
  /**
   * Connects a plain socket and waits until the server has accepted it; returns how many
   * connections the server had accepted before it (connections are accepted in order).
   */
  probe(): Promise<number>;
  close(): Promise<void>;
}

function queue<T>(): { push(value: T): void; next(): Promise<T> } {
  const items: T[] = [];
  const waiters: Array<(value: T) => void> = [];
  return {
    push(value) {
      const waiter = waiters.shift();
      if (waiter) waiter(value);
      else items.push(value);
    },
    next() {
      const item = items.shift();
      if (item !== undefined) return Promise.resolve(item);
      return new Promise((resolve) => waiters.push(resolve));
    },
  };
}

/**
 * A TCP server that records each request head as sent, and answers it with `respond` (or never,
 * when `respond` is absent or returns null).
 */
async function startTestServer(respond?: (request: CapturedRequest) => string | null): Promise<TestServer> {
  const sockets = new Set<net.Socket>();
  const remotePorts: number[] = [];
  const portWaiters: Array<() => void> = [];
  const socketQueue = queue<net.Socket>();
  const requestQueue = queue<CapturedRequest>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    remotePorts.push(socket.remotePort ?? -1);
    for (const waiter of portWaiters.splice(0)) waiter();
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    socketQueue.push(socket);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      socket.pause();
      const lines = head.subarray(0, end).toString('latin1').split('\r\n');
      const headerLines = lines.slice(1).map((line): [string, string] => {
        const colon = line.indexOf(':');
        return [line.slice(0, colon), line.slice(colon + 1).trim()];
      });
      const request: CapturedRequest = {
        socket,
        requestLine: lines[0] ?? '',
        headerLines,
        header: (name) => headerLines.filter(([key]) => key.toLowerCase() === name.toLowerCase()).map(([, value]) => value),
        rest: head.subarray(end + 4),
      };
      const response = respond?.(request) ?? null;
      if (response !== null) socket.write(Buffer.from(response, 'latin1'));
      requestQueue.push(request);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const testServer: TestServer = {
    port,
    url: `ws://127.0.0.1:${port}`,
    get connections() {
      return remotePorts.length;
    },
    nextSocket: () => socketQueue.next(),
    nextRequest: () => requestQueue.next(),
    probe: async () => {
      const probe = net.connect(port, '127.0.0.1');
      probe.on('error', () => {});
      await once(probe, 'connect');
      const localPort = probe.localPort;
      while (!remotePorts.includes(localPort ?? -2)) await new Promise<void>((resolve) => portWaiters.push(resolve));
      probe.destroy();
      return remotePorts.indexOf(localPort!);
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  cleanups.push(() => testServer.close());
  return testServer;
}

/** A port nothing listens on: listened on, then closed. */
async function refusedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function keyOf(request: CapturedRequest): string {
  return request.header('sec-websocket-key')[0] ?? '';
}

/** A correct 101 for a captured request, plus extra header lines. */
function accept101(request: CapturedRequest, extra: string[] = []): string {
  return ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${acceptFor(keyOf(request))}`, ...extra]
    .join('\r\n')
    .concat('\r\n\r\n');
}

/** A response head from lines, for the raw server's `respond`. */
function head(lines: string[]): string {
  return lines.join('\r\n').concat('\r\n\r\n');
}

function acceptLine(request: RawRequest): string {
  return `Sec-WebSocket-Accept: ${acceptFor(request.headers['sec-websocket-key'] ?? '')}`;
}

const nextMacrotask = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Both promises of a stream whose handshake failed (docs/semantics.md#handshake-failures). */
async function expectHandshakeFailure(stream: WebSocketStream): Promise<{ opened: WebSocketError; closed: WebSocketError; text: string }> {
  const [openedError, closedError] = await Promise.all([rejectionOf(stream.opened), rejectionOf(stream.closed)]);
  for (const error of [openedError, closedError]) {
    expect(error).to.be.an.instanceOf(WebSocketError);
    expect((error as WebSocketError).constructor).to.equal(WebSocketError);
    expect((error as WebSocketError).name).to.equal('WebSocketError');
  }
  const opened = openedError as WebSocketError;
  const closed = closedError as WebSocketError;
  expect(opened.closeCode, 'opened rejection closeCode').to.equal(null);
  expect(opened.reason).to.equal('');
  expect(closed.closeCode, 'closed rejection closeCode').to.equal(1006);
  expect(closed.reason).to.equal('');
  expect(closed, 'opened and closed reject with different errors').to.not.equal(opened);
  // Everything said about why: the messages of the error and of its causes.
  const text = causeChain(opened)
    .map((error) => (error instanceof Error ? error.message : String(error)))
    .join(' | ');
  return { opened, closed, text };
}

/** Opens a stream on a raw server: the stream, its peer and the open info. */
async function openOn(server: RawServer, options?: WebSocketStreamOptions) {
  const stream = track(new WebSocketStream(server.url, options));
  const [{ peer, request }, info] = await Promise.all([server.accept(), stream.opened]);
  return { stream, peer, request, info };
}

/** The peer answers our close frame with `payload` and ends TCP; returns what `closed` resolved with. */
async function answerClose(stream: WebSocketStream, peer: RawPeer, payload: Buffer) {
  peer.send(0x8, payload);
  peer.socket.end();
  return stream.closed;
}

/** Calls close(closeInfo) on an open stream and returns the close frame the peer received. */
async function closeFrameFor(closeInfo: unknown) {
  const server = await rawServer();
  const { stream, peer } = await openOn(server);
  const result = (stream.close as (info?: unknown) => unknown)(closeInfo);
  expect(result).to.equal(undefined);
  const frame = await peer.nextFrame();
  expect(frame.opcode).to.equal(0x8);
  expect(frame.fin).to.equal(true);
  expect(frame.rsv).to.equal(0);
  expect(frame.masked).to.equal(true);
  const closed = await answerClose(stream, peer, frame.payload);
  return { frame, closed };
}

function abortListeners(signal: AbortSignal): number {
  return getEventListeners(signal, 'abort').length;
}

// ---------------------------------------------------------------------------------------------

describe('WebSocketStream', () => {
  afterEach(runCleanups);

  describe('constructor: url', () => {
    it('throws a plain TypeError without a URL', () => {
      const Constructor = WebSocketStream as unknown as new () => WebSocketStream;
      expectThrowsTypeError(() => new Constructor());
    });

    it('converts an explicit undefined URL to "undefined" (a relative URL: SyntaxError)', () => {
      expectThrowsDOMException(() => construct(undefined), 'SyntaxError');
    });

    it('accepts a URL object', () => {
      const url = new URL('ws://example.test:8080/path?q=1');
      const stream = construct(url, { signal: AbortSignal.abort() });
      expect(stream.url).to.equal('ws://example.test:8080/path?q=1');
      expect(stream.url).to.be.a('string');
    });

    it('accepts an object with toString, and passes on what toString throws', () => {
      const stream = construct({ toString: () => 'ws://example.test/' }, { signal: AbortSignal.abort() });
      expect(stream.url).to.equal('ws://example.test/');
      const error = thrownBy(() =>
        construct({
          toString() {
            throw new Marker('url');
          },
        }),
      );
      expect(error).to.be.an.instanceOf(Marker);
    });

    it('throws a plain TypeError for a Symbol URL', () => {
      expectThrowsTypeError(() => construct(Symbol('url')));
    });

    for (const [input, expected] of [
      ['http://h', 'ws://h/'],
      ['https://h', 'wss://h/'],
      ['HTTP://H/Path', 'ws://h/Path'],
      ['http://h:80/', 'ws://h/'],
      ['https://h:443/', 'wss://h/'],
      ['http://h:443/', 'ws://h:443/'],
      ['ws://h:80', 'ws://h/'],
      ['wss://h:443', 'wss://h/'],
      ['ws://h', 'ws://h/'],
      ['wss://h/a/b?c=d&e', 'wss://h/a/b?c=d&e'],
      ['ws://h/a b', 'ws://h/a%20b'],
      ['ws://user:pass@h:9000/', 'ws://user:pass@h:9000/'],
      ['ws://[::1]:9000', 'ws://[::1]:9000/'],
      ['ws://h/\uD800', 'ws://h/%EF%BF%BD'],
    ] as Array<[string, string]>) {
      it(`maps and serializes ${JSON.stringify(input)} as ${JSON.stringify(expected)}`, () => {
        // An aborted signal: no socket is opened, so no name is looked up.
        const stream = construct(input, { signal: AbortSignal.abort() });
        expect(stream.url).to.equal(expected);
      });
    }

    it('starts connecting to the mapped URL (http: → ws:)', async () => {
      const server = await rawServer();
      const stream = construct(`http://127.0.0.1:${server.port}/x`);
      expect(stream.url).to.equal(`ws://127.0.0.1:${server.port}/x`);
      const { request } = await server.accept();
      expect(request.path).to.equal('/x');
      await stream.opened;
    });

    for (const input of ['ftp://h/', 'file:///tmp/x', 'javascript:alert(1)', 'about:blank', 'mailto:a@b.c', 'data:text/plain,x', 'blob:ws://h/x', 'wss+x://h/']) {
      it(`throws SyntaxError for the scheme of ${JSON.stringify(input)}`, () => {
        expectThrowsDOMException(() => construct(input), 'SyntaxError');
      });
    }

    for (const input of ['/path', 'h/path', '', 'ws:', 'ws://', '//h/x', 'ws://h:99999/', 'not a url']) {
      it(`throws SyntaxError for the unparsable or relative URL ${JSON.stringify(input)}`, () => {
        expectThrowsDOMException(() => construct(input), 'SyntaxError');
      });
    }

    for (const input of ['ws://h/#x', 'ws://h/#', 'http://h#', 'wss://h/path?q#frag', 'ws://h/#%20']) {
      it(`throws SyntaxError for the fragment in ${JSON.stringify(input)}`, () => {
        expectThrowsDOMException(() => construct(input), 'SyntaxError');
      });
    }

    it('opens no connection when the URL is refused', async () => {
      const server = await startTestServer();
      expectThrowsDOMException(() => construct(`ws://127.0.0.1:${server.port}/#`), 'SyntaxError');
      expectThrowsDOMException(() => construct(`ftp://127.0.0.1:${server.port}/`), 'SyntaxError');
      expect(await server.probe()).to.equal(0);
    });
  });

  describe('constructor: protocols', () => {
    const separators = ['(', ')', '<', '>', '@', ',', ';', ':', '\\', '"', '/', '[', ']', '?', '=', '{', '}', ' ', '\t'];
    for (const protocol of ['', ...separators.map((c) => `a${c}b`), 'é', '\u0000', 'a\u007f', 'a\u0001', 'ü\uD800']) {
      it(`throws SyntaxError for the invalid protocol ${JSON.stringify(protocol)}`, () => {
        expectThrowsDOMException(() => construct('ws://127.0.0.1:1/', { protocols: [protocol] }), 'SyntaxError');
      });
    }

    it('accepts every token character', async () => {
      const server = await rawServer({ protocol: "!#$%&'*+-.^_`|~09AZaz" });
      const { info, request } = await openOn(server, { protocols: ["!#$%&'*+-.^_`|~09AZaz"] });
      expect(info.protocol).to.equal("!#$%&'*+-.^_`|~09AZaz");
      expect(request.headers['sec-websocket-protocol']).to.equal("!#$%&'*+-.^_`|~09AZaz");
    });

    it('throws SyntaxError for a duplicate protocol', () => {
      expectThrowsDOMException(() => construct('ws://127.0.0.1:1/', { protocols: ['a', 'b', 'a'] }), 'SyntaxError');
    });

    it('compares protocols ASCII case-insensitively for duplicates', () => {
      expectThrowsDOMException(() => construct('ws://127.0.0.1:1/', { protocols: ['chat', 'CHAT'] }), 'SyntaxError');
      expectThrowsDOMException(() => construct('ws://127.0.0.1:1/', { protocols: ['Chat.V1', 'chat.v1'] }), 'SyntaxError');
    });

    for (const [label, value] of [
      ['a string', 'chat'],
      ['the empty string', ''],
      ['a number', 1],
      ['true', true],
      ['null', null],
      ['a non-iterable object', { 0: 'chat', length: 1 }],
    ] as Array<[string, unknown]>) {
      it(`throws a plain TypeError for protocols given as ${label}`, () => {
        expectThrowsTypeError(() => construct('ws://127.0.0.1:1/', { protocols: value }));
      });
    }

    it('throws a plain TypeError for a Symbol protocol', () => {
      expectThrowsTypeError(() => construct('ws://127.0.0.1:1/', { protocols: ['a', Symbol('b')] }));
    });

    it('accepts any iterable, converting items as strings', async () => {
      const server = await startTestServer((request) => accept101(request, ['Sec-WebSocket-Protocol: 2']));
      function* generate(): Generator<unknown> {
        yield 1;
        yield 2;
      }
      const stream = construct(server.url, { protocols: generate() });
      const request = await server.nextRequest();
      expect(request.header('sec-websocket-protocol')).to.deep.equal(['1, 2']);
      const info = await stream.opened;
      expect(info.protocol).to.equal('2');
    });

    it('sends no Sec-WebSocket-Protocol header for an empty list or none', async () => {
      const server = await startTestServer((request) => accept101(request));
      const first = construct(server.url, { protocols: [] });
      const second = construct(server.url);
      const requests = [await server.nextRequest(), await server.nextRequest()];
      for (const request of requests) expect(request.header('sec-websocket-protocol')).to.deep.equal([]);
      expect((await first.opened).protocol).to.equal('');
      expect((await second.opened).protocol).to.equal('');
    });
  });

  describe('constructor: options', () => {
    for (const [label, value] of [
      ['true', true],
      ['1', 1],
      ['"x"', 'x'],
      ['a Symbol', Symbol('o')],
    ] as Array<[string, unknown]>) {
      it(`throws a plain TypeError for options ${label}`, () => {
        expectThrowsTypeError(() => construct('ws://127.0.0.1:1/', value));
      });
    }

    it('accepts null and undefined options', async () => {
      const server = await rawServer();
      for (const options of [null, undefined]) {
        const stream = construct(server.url, options);
        await server.accept();
        const info = await stream.opened;
        expect(info.protocol).to.equal('');
      }
    });

    for (const [label, value] of [
      ['an empty object', {}],
      ['null', null],
      ['true', true],
      ['a string', 'signal'],
      ['an AbortController', new AbortController()],
      ['an EventTarget', new EventTarget()],
      ['a look-alike with aborted and reason', { aborted: true, reason: 'x', addEventListener() {}, removeEventListener() {} }],
    ] as Array<[string, unknown]>) {
      it(`throws a plain TypeError for a signal that is ${label}`, () => {
        expectThrowsTypeError(() => construct('ws://127.0.0.1:1/', { signal: value }));
      });
    }

    it('throws a plain TypeError for an object that only inherits from AbortSignal.prototype', async () => {
      const server = await startTestServer();
      const fake = Object.create(AbortSignal.prototype) as AbortSignal;
      expectThrowsTypeError(() => construct(server.url, { signal: fake }));
      expect(await server.probe()).to.equal(0);
    });

    it('treats signal: undefined as absent', async () => {
      const server = await rawServer();
      const stream = construct(server.url, { signal: undefined });
      await server.accept();
      await stream.opened;
    });
  });

  describe('constructor: conversion order', () => {
    it('an invalid URL with options true throws TypeError (both arguments convert first)', () => {
      expectThrowsTypeError(() => construct('not a url', true));
    });

    it('an invalid URL with protocols given as a string throws TypeError', () => {
      expectThrowsTypeError(() => construct('ftp://h/', { protocols: 'chat' }));
    });

    it('an invalid URL with a non-AbortSignal signal throws TypeError', () => {
      expectThrowsTypeError(() => construct('ws://h/#frag', { signal: {} }));
    });

    it('an invalid URL with a look-alike AbortSignal throws TypeError', () => {
      expectThrowsTypeError(() => construct('ws://h/#frag', { signal: Object.create(AbortSignal.prototype) }));
    });

    it('an invalid URL with a Symbol protocol throws TypeError', () => {
      expectThrowsTypeError(() => construct('/relative', { protocols: [Symbol('p')] }));
    });

    it('an invalid URL with duplicate protocols throws the SyntaxError of the URL', () => {
      const error = expectThrowsDOMException(() => construct('notaurl', { protocols: ['dupproto', 'dupproto'] }), 'SyntaxError');
      expect(error.message).to.not.match(/dupproto|protocol/i);
    });

    it('a URL with a fragment and an invalid protocol throws the SyntaxError of the URL', () => {
      const error = expectThrowsDOMException(() => construct('ws://h/#x', { protocols: ['bad proto'] }), 'SyntaxError');
      expect(error.message).to.not.match(/bad proto|protocol/i);
    });

    it('an invalid URL with an aborted signal throws SyntaxError (the signal is looked at last)', () => {
      expectThrowsDOMException(() => construct('ftp://h/', { signal: AbortSignal.abort() }), 'SyntaxError');
    });

    it('invalid protocols with an aborted signal throw SyntaxError rather than rejecting', async () => {
      const server = await startTestServer();
      expectThrowsDOMException(() => construct(server.url, { protocols: ['a', 'A'], signal: AbortSignal.abort() }), 'SyntaxError');
      expect(await server.probe()).to.equal(0);
    });

    it('valid URL, duplicate protocols and a non-AbortSignal signal: TypeError (conversion before checks)', () => {
      expectThrowsTypeError(() => construct('ws://127.0.0.1:1/', { protocols: ['a', 'a'], signal: 'nope' }));
    });

    it('the URL converts before the options: a throwing URL toString wins over options true', () => {
      const error = thrownBy(() =>
        construct(
          {
            toString() {
              throw new Marker('url');
            },
          },
          true,
        ),
      );
      expect(error).to.be.an.instanceOf(Marker);
    });

    it('protocols convert before the signal: a throwing protocols iterator wins over a bad signal', () => {
      const protocols = {
        *[Symbol.iterator]() {
          yield 'a';
          throw new Marker('protocols');
        },
      };
      const error = thrownBy(() => construct('ws://127.0.0.1:1/', { protocols, signal: {} }));
      expect(error).to.be.an.instanceOf(Marker);
    });

    it('a protocol item converts before the signal is checked', () => {
      const item = {
        toString() {
          throw new Marker('item');
        },
      };
      const error = thrownBy(() => construct('ws://127.0.0.1:1/', { protocols: [item], signal: 42 }));
      expect(error).to.be.an.instanceOf(Marker);
    });

    it('reads protocols, then signal, each exactly once', () => {
      const reads: string[] = [];
      const signal = AbortSignal.abort();
      const options = {
        get protocols() {
          reads.push('protocols');
          return ['p1'];
        },
        get signal() {
          reads.push('signal');
          return signal;
        },
      };
      const stream = construct('ws://127.0.0.1:1/', options);
      expect(stream.url).to.equal('ws://127.0.0.1:1/');
      expect(reads.filter((name) => name === 'protocols' || name === 'signal')).to.deep.equal(['protocols', 'signal']);
    });
  });

  describe('signal', () => {
    it('already aborted: opened and closed reject with signal.reason, and no connection is made', async () => {
      const server = await startTestServer();
      const reason = new Marker('already');
      const stream = construct(server.url, { signal: AbortSignal.abort(reason) });
      expect(await rejectionOf(stream.opened)).to.equal(reason);
      expect(await rejectionOf(stream.closed)).to.equal(reason);
      expect(await server.probe()).to.equal(0);
    });

    it('already aborted without a reason: both reject with the signal’s AbortError', async () => {
      const signal = AbortSignal.abort();
      const stream = construct('ws://127.0.0.1:1/', { signal });
      const openedReason = await rejectionOf(stream.opened);
      expect(openedReason).to.equal(signal.reason);
      expectExactDOMException(openedReason, 'AbortError');
      expect(await rejectionOf(stream.closed)).to.equal(signal.reason);
    });

    it('already aborted: any non-undefined reason is used as it is', async () => {
      for (const reason of ['text', 0, null, false]) {
        const stream = construct('ws://127.0.0.1:1/', { signal: AbortSignal.abort(reason) });
        expect(await rejectionOf(stream.opened)).to.equal(reason);
        expect(await rejectionOf(stream.closed)).to.equal(reason);
      }
    });

    it('already aborted: never adds an abort listener', () => {
      const signal = AbortSignal.abort();
      construct('ws://127.0.0.1:1/', { signal });
      expect(abortListeners(signal)).to.equal(0);
    });

    it('already aborted: a later close() only validates', async () => {
      const reason = new Marker('already');
      const stream = construct('ws://127.0.0.1:1/', { signal: AbortSignal.abort(reason) });
      expect(stream.close()).to.equal(undefined);
      expect(stream.close({ closeCode: 3000, reason: 'x' })).to.equal(undefined);
      expectThrowsDOMException(() => stream.close({ closeCode: 1001 }), 'InvalidAccessError');
      expectThrowsTypeError(() => (stream.close as (info: unknown) => void)(true));
      expect(await rejectionOf(stream.opened)).to.equal(reason);
      expect(await rejectionOf(stream.closed)).to.equal(reason);
    });

    it('aborting during the handshake rejects both with the reason and drops the connection', async () => {
      const server = await startTestServer();
      const controller = new AbortController();
      const stream = construct(server.url, { signal: controller.signal });
      const request = await server.nextRequest();
      const serverSideClosed = once(request.socket, 'close');
      const reason = new Marker('during');
      controller.abort(reason);
      expect(await rejectionOf(stream.opened)).to.equal(reason);
      expect(await rejectionOf(stream.closed)).to.equal(reason);
      await serverSideClosed;
    });

    it('aborting before the TCP connection completes rejects both with the reason', async () => {
      const server = await startTestServer();
      const controller = new AbortController();
      const stream = construct(server.url, { signal: controller.signal });
      controller.abort();
      expect(await rejectionOf(stream.opened)).to.equal(controller.signal.reason);
      expect(await rejectionOf(stream.closed)).to.equal(controller.signal.reason);
    });

    it('aborting after the handshake has no effect on the connection', async () => {
      const server = await rawServer();
      const controller = new AbortController();
      const { stream, peer, info } = await openOn(server, { signal: controller.signal });
      controller.abort(new Marker('late'));
      const writer = info.writable.getWriter();
      await writer.write('still open');
      const message = await peer.nextFrame();
      expect(message.payload.toString()).to.equal('still open');
      stream.close({ closeCode: 3000 });
      const close = await peer.nextFrame();
      expect([...close.payload]).to.deep.equal([0x0b, 0xb8]);
      expect(await answerClose(stream, peer, close.payload)).to.deep.equal({ closeCode: 3000, reason: '' });
    });

    it('removes the abort listener once opened resolves', async () => {
      const server = await rawServer();
      const controller = new AbortController();
      const stream = construct(server.url, { signal: controller.signal });
      expect(abortListeners(controller.signal)).to.equal(1);
      await stream.opened;
      expect(abortListeners(controller.signal)).to.equal(0);
    });

    it('removes the abort listener once opened rejects (handshake failure)', async () => {
      const server = await rawServer({ respond: () => head(['HTTP/1.1 403 Forbidden', 'Content-Length: 0']) });
      const controller = new AbortController();
      const stream = construct(server.url, { signal: controller.signal });
      expect(abortListeners(controller.signal)).to.equal(1);
      await rejectionOf(stream.opened);
      expect(abortListeners(controller.signal)).to.equal(0);
    });

    it('removes the abort listener when close() is called before the handshake completes', async () => {
      const server = await startTestServer();
      const controller = new AbortController();
      const stream = construct(server.url, { signal: controller.signal });
      expect(abortListeners(controller.signal)).to.equal(1);
      stream.close();
      expect(abortListeners(controller.signal)).to.equal(0);
      await rejectionOf(stream.opened);
    });

    it('a reconnect loop sharing one signal removes every listener it added', async () => {
      const server = await rawServer();
      const controller = new AbortController();
      const signal = controller.signal;
      const added: unknown[] = [];
      const removed: unknown[] = [];
      const realAdd = signal.addEventListener.bind(signal);
      const realRemove = signal.removeEventListener.bind(signal);
      signal.addEventListener = ((type: string, listener: unknown, options?: unknown) => {
        if (type === 'abort') added.push(listener);
        return realAdd(type, listener as EventListener, options as AddEventListenerOptions);
      }) as typeof signal.addEventListener;
      signal.removeEventListener = ((type: string, listener: unknown, options?: unknown) => {
        if (type === 'abort') removed.push(listener);
        return realRemove(type, listener as EventListener, options as EventListenerOptions);
      }) as typeof signal.removeEventListener;
      for (let i = 0; i < 5; i++) {
        const { stream, peer } = await openOn(server, { signal });
        stream.close();
        const close = await peer.nextFrame();
        await answerClose(stream, peer, close.payload);
      }
      const failing = await rawServer({ respond: () => head(['HTTP/1.1 500 Oops', 'Content-Length: 0']) });
      for (let i = 0; i < 5; i++) {
        const stream = construct(failing.url, { signal });
        await rejectionOf(stream.opened);
      }
      expect(added).to.have.length(10);
      expect(new Set(removed)).to.deep.equal(new Set(added));
      expect(abortListeners(signal)).to.equal(0);
    });
  });

  describe('close() before the connection is established', () => {
    it('close() right after construction: opened rejects (closeCode null), closed rejects (1006, "")', async () => {
      const server = await startTestServer();
      const stream = construct(server.url);
      expect(stream.close()).to.equal(undefined);
      await expectHandshakeFailure(stream);
    });

    it('close() while the server holds the response: same errors, and the connection is dropped', async () => {
      const server = await startTestServer();
      const stream = construct(server.url);
      const request = await server.nextRequest();
      const serverSideClosed = once(request.socket, 'close');
      stream.close({ closeCode: 4000, reason: 'never mind' });
      const { closed } = await expectHandshakeFailure(stream);
      expect(closed.closeCode).to.equal(1006);
      expect(closed.reason).to.equal('');
      await serverSideClosed;
    });

    it('a 101 arriving after close() does not open the stream', async () => {
      const server = await startTestServer();
      const stream = construct(server.url);
      const request = await server.nextRequest();
      stream.close();
      request.socket.write(accept101(request));
      await expectHandshakeFailure(stream);
    });
  });

  describe('close() validation, whatever the state', () => {
    function expectValidation(stream: WebSocketStream): void {
      const close = stream.close as (info?: unknown) => unknown;
      for (const code of [0, 999, 1001, 1005, 1006, 1015, 2999, 5000]) {
        expectThrowsDOMException(() => close.call(stream, { closeCode: code }), 'InvalidAccessError');
      }
      expectThrowsDOMException(() => close.call(stream, { closeCode: null }), 'InvalidAccessError');
      for (const info of [true, 1, 'x']) expectThrowsTypeError(() => close.call(stream, info));
      for (const code of [70000, NaN, Infinity, -1]) expectThrowsTypeError(() => close.call(stream, { closeCode: code }));
      expectThrowsTypeError(() => close.call(stream, { reason: Symbol('r') }));
      expectThrowsDOMException(() => close.call(stream, { reason: 'x'.repeat(124) }), 'SyntaxError');
      expectThrowsDOMException(() => close.call(stream, { closeCode: 1000, reason: '€'.repeat(42) }), 'SyntaxError');
    }

    it('throws before the handshake completes, and the handshake goes on', async () => {
      const server = await rawServer();
      const stream = construct(server.url);
      expectValidation(stream);
      await server.accept();
      const info = await stream.opened;
      expect(info.readable).to.be.an.instanceOf(ReadableStream);
    });

    it('throws while open, and the connection stays open', async () => {
      const server = await rawServer();
      const { stream, peer, info } = await openOn(server);
      expectValidation(stream);
      const writer = info.writable.getWriter();
      await writer.write('after the throws');
      const frame = await peer.nextFrame();
      expect(frame.opcode).to.equal(0x1);
      expect(frame.payload.toString()).to.equal('after the throws');
    });

    it('throws after a clean close', async () => {
      const server = await rawServer();
      const { stream, peer } = await openOn(server);
      stream.close();
      const frame = await peer.nextFrame();
      await answerClose(stream, peer, frame.payload);
      expectValidation(stream);
      expect(stream.close()).to.equal(undefined);
      expect(stream.close({ closeCode: 1000, reason: 'again' })).to.equal(undefined);
    });

    it('throws after a failed handshake', async () => {
      const port = await refusedPort();
      const stream = construct(`ws://127.0.0.1:${port}`);
      await expectHandshakeFailure(stream);
      expectValidation(stream);
      expect(stream.close()).to.equal(undefined);
    });

    it('throws after close() was already called (closing)', async () => {
      const server = await rawServer();
      const { stream, peer } = await openOn(server);
      stream.close();
      expectValidation(stream);
      const frame = await peer.nextFrame();
      await answerClose(stream, peer, frame.payload);
    });
  });

  describe('close() on an open stream', () => {
    it('close() with no argument sends a close frame with no body', async () => {
      const { frame, closed } = await closeFrameFor(undefined);
      expect(frame.payload.length).to.equal(0);
      expect(closed).to.deep.equal({ closeCode: 1005, reason: '' });
    });

    for (const [label, info] of [
      ['null', null],
      ['{}', {}],
      ['{ reason: "" }', { reason: '' }],
      ['{ closeCode: undefined, reason: undefined }', { closeCode: undefined, reason: undefined }],
    ] as Array<[string, unknown]>) {
      it(`close(${label}) sends a close frame with no body`, async () => {
        const { frame } = await closeFrameFor(info);
        expect(frame.payload.length).to.equal(0);
      });
    }

    it('close({ reason: "x" }) sends code 1000 and the reason', async () => {
      const { frame, closed } = await closeFrameFor({ reason: 'x' });
      expect([...frame.payload]).to.deep.equal([0x03, 0xe8, 0x78]);
      expect(closed).to.deep.equal({ closeCode: 1000, reason: 'x' });
    });

    it('close({ closeCode: 4000, reason: "é" }) sends exactly those bytes', async () => {
      const { frame, closed } = await closeFrameFor({ closeCode: 4000, reason: 'é' });
      expect([...frame.payload]).to.deep.equal([0x0f, 0xa0, 0xc3, 0xa9]);
      expect(closed).to.deep.equal({ closeCode: 4000, reason: 'é' });
    });

    it('close({ closeCode: 1000 }) sends the code with no reason', async () => {
      const { frame } = await closeFrameFor({ closeCode: 1000 });
      expect([...frame.payload]).to.deep.equal([0x03, 0xe8]);
    });

    it('close() converts the code: 3000.7 sends 3000, "4001" sends 4001', async () => {
      expect([...(await closeFrameFor({ closeCode: 3000.7 })).frame.payload]).to.deep.equal([0x0b, 0xb8]);
      expect([...(await closeFrameFor({ closeCode: '4001' })).frame.payload]).to.deep.equal([0x0f, 0xa1]);
    });

    it('close() converts the reason: a lone surrogate is sent as U+FFFD, null as "null"', async () => {
      expect([...(await closeFrameFor({ reason: '\uD800' })).frame.payload]).to.deep.equal([0x03, 0xe8, 0xef, 0xbf, 0xbd]);
      expect((await closeFrameFor({ closeCode: 3000, reason: null })).frame.payload.subarray(2).toString()).to.equal('null');
    });

    it('close() with a 123-byte reason sends a 125-byte close payload', async () => {
      const reason = '€'.repeat(41);
      const { frame, closed } = await closeFrameFor({ closeCode: 4999, reason });
      expect(frame.payload.length).to.equal(125);
      expect(frame.payload.readUInt16BE(0)).to.equal(4999);
      expect(frame.payload.subarray(2).toString('utf8')).to.equal(reason);
      expect(closed).to.deep.equal({ closeCode: 4999, reason });
    });

    it('calling close() twice is harmless: one close frame, the first one wins', async () => {
      const server = await rawServer();
      const { stream, peer } = await openOn(server);
      expect(stream.close({ closeCode: 3001, reason: 'first' })).to.equal(undefined);
      expect(stream.close({ closeCode: 3002, reason: 'second' })).to.equal(undefined);
      expect(stream.close()).to.equal(undefined);
      const frame = await peer.nextFrame();
      expect(frame.opcode).to.equal(0x8);
      expect(frame.payload.readUInt16BE(0)).to.equal(3001);
      expect(frame.payload.subarray(2).toString()).to.equal('first');
      const closed = await answerClose(stream, peer, frame.payload);
      expect(closed).to.deep.equal({ closeCode: 3001, reason: 'first' });
      expect(await peer.waitForEnd()).to.deep.equal([]);
      expect(stream.close()).to.equal(undefined);
    });
  });

  describe('handshake failures', () => {
    it('connection refused', async () => {
      const port = await refusedPort();
      const stream = construct(`ws://127.0.0.1:${port}/`);
      const { opened, text } = await expectHandshakeFailure(stream);
      expect(text).to.contain('ECONNREFUSED');
      expect(causeChain(opened).some((error) => (error as { code?: unknown }).code === 'ECONNREFUSED')).to.equal(true);
    });

    it('a non-101 status (403): the cause carries the status code', async () => {
      const server = await rawServer({ respond: () => head(['HTTP/1.1 403 Forbidden', 'X-Why: no entry', 'Content-Length: 0']) });
      const stream = construct(server.url);
      const { opened, text } = await expectHandshakeFailure(stream);
      expect(text).to.contain('403');
      const withStatus = causeChain(opened).find((error) => typeof (error as { statusCode?: unknown }).statusCode === 'number') as
        | { statusCode: number; headers?: unknown }
        | undefined;
      expect(withStatus, 'an error in the cause chain with statusCode').to.not.equal(undefined);
      expect(withStatus!.statusCode).to.equal(403);
      expect(withStatus!.headers).to.not.equal(undefined);
    });

    it('a 200 reply from a plain HTTP server fails', async () => {
      const server = await rawServer({ respond: () => head(['HTTP/1.1 200 OK', 'Content-Length: 2']) + 'ok' });
      const stream = construct(server.url);
      const { text } = await expectHandshakeFailure(stream);
      expect(text).to.contain('200');
    });

    for (const status of [301, 302, 307, 308]) {
      it(`a ${status} redirect is not followed`, async () => {
        const target = await startTestServer((request) => accept101(request));
        const server = await rawServer({
          respond: () => head([`HTTP/1.1 ${status} Moved`, `Location: ws://127.0.0.1:${target.port}/`, 'Content-Length: 0']),
        });
        const stream = construct(server.url);
        const { text } = await expectHandshakeFailure(stream);
        expect(text).to.contain(String(status));
        expect(await target.probe()).to.equal(0);
      });
    }

    it('a missing Upgrade header', async () => {
      const server = await rawServer({ respond: (r) => head(['HTTP/1.1 101 Switching Protocols', 'Connection: Upgrade', acceptLine(r)]) });
      const { text } = await expectHandshakeFailure(construct(server.url));
      expect(text).to.match(/upgrade/i);
    });

    it('a wrong Upgrade header', async () => {
      const server = await rawServer({
        respond: (r) => head(['HTTP/1.1 101 Switching Protocols', 'Upgrade: h2c', 'Connection: Upgrade', acceptLine(r)]),
      });
      const { text } = await expectHandshakeFailure(construct(server.url));
      expect(text).to.match(/upgrade/i);
    });

    it('a Connection header without upgrade', async () => {
      const server = await rawServer({
        respond: (r) => head(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: keep-alive', acceptLine(r)]),
      });
      const { text } = await expectHandshakeFailure(construct(server.url));
      expect(text).to.match(/connection/i);
    });

    it('a missing Connection header', async () => {
      const server = await rawServer({ respond: (r) => head(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', acceptLine(r)]) });
      const { text } = await expectHandshakeFailure(construct(server.url));
      expect(text).to.match(/connection/i);
    });

    it('accepts Upgrade and Connection case-insensitively, and Connection as a token list', async () => {
      const server = await rawServer({
        respond: (r) => head(['HTTP/1.1 101 Switching Protocols', 'upgrade: WebSocket', 'connection: keep-alive, UPGRADE', acceptLine(r)]),
      });
      const stream = construct(server.url);
      await server.accept();
      await stream.opened;
    });

    it('a wrong Sec-WebSocket-Accept', async () => {
      const server = await rawServer({
        respond: () =>
          head(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${acceptFor('AAAAAAAAAAAAAAAAAAAAAA==')}`]),
      });
      const { text } = await expectHandshakeFailure(construct(server.url));
      expect(text).to.match(/accept/i);
    });

    it('a missing Sec-WebSocket-Accept', async () => {
      const server = await rawServer({ respond: () => head(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade']) });
      const { text } = await expectHandshakeFailure(construct(server.url));
      expect(text).to.match(/accept/i);
    });

    it('a subprotocol that was not offered', async () => {
      const server = await rawServer({ protocol: 'other' });
      const { text } = await expectHandshakeFailure(construct(server.url, { protocols: ['chat'] }));
      expect(text).to.match(/protocol/i);
    });

    it('a subprotocol when none was offered', async () => {
      const server = await rawServer({ protocol: 'chat' });
      const { text } = await expectHandshakeFailure(construct(server.url));
      expect(text).to.match(/protocol/i);
    });

    it('no subprotocol when some were offered', async () => {
      const server = await rawServer();
      const { text } = await expectHandshakeFailure(construct(server.url, { protocols: ['chat', 'superchat'] }));
      expect(text).to.match(/protocol/i);
    });

    it('a Sec-WebSocket-Extensions the client did not offer', async () => {
      const server = await rawServer({
        respond: (r) => head(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', acceptLine(r), 'Sec-WebSocket-Extensions: x-unknown-extension']),
      });
      const { text } = await expectHandshakeFailure(construct(server.url));
      expect(text).to.match(/extension/i);
    });

    it('a response head larger than the default maxHandshakeHead', async () => {
      const server = await rawServer({
        respond: (r) => head(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', acceptLine(r), `X-Big: ${'a'.repeat(20_000)}`]),
      });
      const { text } = await expectHandshakeFailure(construct(server.url));
      expect(text).to.match(/large|size|bytes|long/i);
    });

    it('a response head larger than a small maxHandshakeHead', async () => {
      const server = await rawServer({
        respond: (r) => head(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', acceptLine(r), `X-Big: ${'a'.repeat(1024)}`]),
      });
      const { text } = await expectHandshakeFailure(construct(server.url, { maxHandshakeHead: 512 }));
      expect(text).to.match(/large|size|bytes|long/i);
      // The same response is fine under the default limit.
      const stream = construct(server.url);
      await stream.opened;
    });

    it('an unterminated response head that keeps growing fails without waiting for the timeout', async () => {
      const server = await startTestServer(() => `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX-Big: ${'a'.repeat(40_000)}`);
      const { text } = await expectHandshakeFailure(construct(server.url, { handshakeTimeout: 60_000 }));
      expect(text).to.match(/large|size|bytes|long/i);
    });

    it('a malformed status line', async () => {
      const server = await rawServer({ respond: () => head(['SSH-2.0-OpenSSH_9.6']) });
      await expectHandshakeFailure(construct(server.url));
    });

    it('the server closing the connection without an answer', async () => {
      const server = await startTestServer();
      const stream = construct(server.url);
      const request = await server.nextRequest();
      request.socket.end();
      await expectHandshakeFailure(stream);
    });

    it('handshakeTimeout with a server that never answers', async () => {
      const server = await startTestServer();
      const stream = construct(server.url, { handshakeTimeout: 200 });
      const request = await server.nextRequest();
      const serverSideClosed = once(request.socket, 'close');
      const { text } = await expectHandshakeFailure(stream);
      expect(text).to.match(/time/i);
      await serverSideClosed;
    });
  });

  describe('successful handshake', () => {
    it('sends a complete upgrade request', async () => {
      const server = await startTestServer((request) => accept101(request));
      const stream = construct(`${server.url}/chat/room?id=7&x=%20`);
      const request = await server.nextRequest();
      expect(request.requestLine).to.equal('GET /chat/room?id=7&x=%20 HTTP/1.1');
      expect(request.header('host')).to.deep.equal([`127.0.0.1:${server.port}`]);
      expect(request.header('upgrade').map((v) => v.toLowerCase())).to.deep.equal(['websocket']);
      expect(request.header('connection')).to.have.length(1);
      expect(request.header('connection')[0]!.toLowerCase().split(',').map((v) => v.trim())).to.include('upgrade');
      expect(request.header('sec-websocket-version')).to.deep.equal(['13']);
      const keys = request.header('sec-websocket-key');
      expect(keys).to.have.length(1);
      expect(keys[0]).to.match(/^[A-Za-z0-9+/]{22}==$/);
      expect(Buffer.from(keys[0]!, 'base64')).to.have.length(16);
      expect(request.rest.length).to.equal(0);
      await stream.opened;
    });

    it('sends "/" as the path of a URL without one', async () => {
      const server = await startTestServer((request) => accept101(request));
      construct(server.url);
      expect((await server.nextRequest()).requestLine).to.equal('GET / HTTP/1.1');
    });

    it('uses a fresh Sec-WebSocket-Key for each connection', async () => {
      const server = await startTestServer((request) => accept101(request));
      const keys = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const stream = construct(server.url);
        keys.add(keyOf(await server.nextRequest()));
        await stream.opened;
      }
      expect(keys.size).to.equal(4);
    });

    it('offers the protocols joined with ", " and reports the one selected', async () => {
      const server = await startTestServer((request) => accept101(request, ['Sec-WebSocket-Protocol: superchat']));
      const stream = construct(server.url, { protocols: ['chat', 'superchat', 'v2.json'] });
      const request = await server.nextRequest();
      expect(request.header('sec-websocket-protocol')).to.deep.equal(['chat, superchat, v2.json']);
      const info = await stream.opened;
      expect(info.protocol).to.equal('superchat');
    });

    it('opened resolves with real streams, and protocol and extensions strings', async () => {
      const server = await rawServer();
      const { info } = await openOn(server);
      expect(Object.keys(info).sort()).to.deep.equal(['extensions', 'protocol', 'readable', 'writable']);
      expect(info.readable).to.be.an.instanceOf(ReadableStream);
      expect(info.readable.constructor).to.equal(ReadableStream);
      expect(info.writable).to.be.an.instanceOf(WritableStream);
      expect(info.writable.constructor).to.equal(WritableStream);
      expect(info.protocol).to.equal('');
      expect(info.extensions).to.equal('');
      expect(info.readable.locked).to.equal(false);
      expect(info.writable.locked).to.equal(false);
    });

    it('opened resolves with the same info every time it is read', async () => {
      const server = await rawServer();
      const { stream, info } = await openOn(server);
      expect(stream.opened).to.equal(stream.opened);
      expect(stream.closed).to.equal(stream.closed);
      expect(await stream.opened).to.equal(info);
    });

    it('the streams carry messages both ways', async () => {
      const server = await rawServer();
      const { peer, info } = await openOn(server);
      const writer = info.writable.getWriter();
      await writer.write('ping?');
      const frame = await peer.nextFrame();
      expect(frame.masked).to.equal(true);
      expect(frame.payload.toString()).to.equal('ping?');
      peer.send(0x1, 'pong!');
      const reader = info.readable.getReader();
      expect(await reader.read()).to.deep.equal({ done: false, value: 'pong!' });
    });

    it('sends custom headers given as an object', async () => {
      const server = await startTestServer((request) => accept101(request));
      const stream = construct(server.url, { headers: { 'X-Custom': 'v1', Authorization: 'Bearer abc' } });
      const request = await server.nextRequest();
      expect(request.header('x-custom')).to.deep.equal(['v1']);
      expect(request.header('authorization')).to.deep.equal(['Bearer abc']);
      await stream.opened;
    });

    it('sends custom headers given as an array of pairs, repeated names included', async () => {
      const server = await startTestServer((request) => accept101(request));
      const stream = construct(server.url, {
        headers: [
          ['X-Multi', 'one'],
          ['X-Multi', 'two'],
          ['Cookie', 'a=b'],
        ],
      });
      const request = await server.nextRequest();
      expect(request.header('x-multi')).to.deep.equal(['one', 'two']);
      expect(request.header('cookie')).to.deep.equal(['a=b']);
      await stream.opened;
    });

    it('sends custom headers given as a Headers instance', async () => {
      const server = await startTestServer((request) => accept101(request));
      const headers = new Headers();
      headers.append('X-From-Headers', 'yes');
      headers.append('User-Agent', 'facade-test/1');
      const stream = construct(server.url, { headers });
      const request = await server.nextRequest();
      expect(request.header('x-from-headers')).to.deep.equal(['yes']);
      expect(request.header('user-agent')).to.deep.equal(['facade-test/1']);
      await stream.opened;
    });
  });

  describe('headers option validation', () => {
    for (const [label, headers] of [
      ['CR LF in an object value', { 'X-Evil': 'a\r\nX-Injected: 1' }],
      ['LF in an object value', { 'X-Evil': 'a\nb' }],
      ['CR in an object value', { 'X-Evil': 'a\rb' }],
      ['NUL in a value', { 'X-Evil': 'a\0b' }],
      ['CR LF in an array value', [['X-Evil', 'a\r\nb']]],
      ['a name with a space', { 'X Evil': 'v' }],
      ['a name with a colon', { 'X:Evil': 'v' }],
      ['an empty name', { '': 'v' }],
      ['a name with CR LF', [['X-A\r\nX-B', 'v']]],
      ['a non-ASCII name', { 'X-Ünicode': 'v' }],
      ['a pair with one element', [['X-Only']]],
      ['a pair with three elements', [['X-A', 'b', 'c']]],
      ['a string', 'X-A: b'],
      ['a number', 5],
    ] as Array<[string, unknown]>) {
      it(`throws a plain TypeError for ${label}`, () => {
        expectThrowsTypeError(() => construct('ws://127.0.0.1:1/', { headers }));
      });
    }

    for (const name of [
      'Host',
      'host',
      'Upgrade',
      'Connection',
      'Sec-WebSocket-Key',
      'sec-websocket-key',
      'Sec-WebSocket-Protocol',
      'Sec-WebSocket-Version',
      'Sec-WebSocket-Extensions',
      'Sec-WebSocket-Accept',
      'SEC-WEBSOCKET-VERSION',
    ]) {
      it(`throws a plain TypeError for the reserved header ${name}`, () => {
        expectThrowsTypeError(() => construct('ws://127.0.0.1:1/', { headers: { [name]: 'x' } }));
        expectThrowsTypeError(() => construct('ws://127.0.0.1:1/', { headers: [[name, 'x']] }));
        expectThrowsTypeError(() => construct('ws://127.0.0.1:1/', { headers: new Headers([[name, 'x']]) }));
      });
    }

    it('throws synchronously and opens no connection', async () => {
      const server = await startTestServer();
      expectThrowsTypeError(() => construct(server.url, { headers: { Upgrade: 'h2c' } }));
      expectThrowsTypeError(() => construct(server.url, { headers: { 'X-Evil': 'a\r\nb' } }));
      expect(await server.probe()).to.equal(0);
    });
  });

  describe('wss:', () => {
    it('connects to a TLS server with tls: { ca }', async () => {
      const server = await rawServer({ tls: true });
      expect(server.url.startsWith('wss://')).to.equal(true);
      const { stream, peer, info } = await openOn(server, { tls: { ca: testCert } });
      expect(stream.url).to.equal(`${server.url}/`);
      const writer = info.writable.getWriter();
      await writer.write(new Uint8Array([1, 2, 3]));
      const frame = await peer.nextFrame();
      expect(frame.opcode).to.equal(0x2);
      expect([...frame.payload]).to.deep.equal([1, 2, 3]);
      stream.close({ closeCode: 1000, reason: 'tls bye' });
      const close = await peer.nextFrame();
      expect(await answerClose(stream, peer, close.payload)).to.deep.equal({ closeCode: 1000, reason: 'tls bye' });
    });

    it('maps https: to wss: and connects over TLS', async () => {
      const server = await rawServer({ tls: true });
      const stream = construct(`https://127.0.0.1:${server.port}/secure`, { tls: { ca: testCert } });
      expect(stream.url).to.equal(`wss://127.0.0.1:${server.port}/secure`);
      const { request } = await server.accept();
      expect(request.path).to.equal('/secure');
      await stream.opened;
    });

    it('fails against a self-signed certificate without the ca: the cause is a TLS error', async () => {
      const server = await rawServer({ tls: true });
      const stream = construct(server.url);
      const { opened } = await expectHandshakeFailure(stream);
      const codes = causeChain(opened)
        .map((error) => (error as { code?: unknown }).code)
        .filter((code): code is string => typeof code === 'string');
      expect(codes.some((code) => /CERT|SELF_SIGNED/.test(code)), `codes in the cause chain: ${codes.join(', ')}`).to.equal(true);
    });

    it('connects without the ca when the user sets rejectUnauthorized: false', async () => {
      const server = await rawServer({ tls: true });
      const { info } = await openOn(server, { tls: { rejectUnauthorized: false } });
      expect(info.protocol).to.equal('');
    });

    it('fails against a plain TCP server', async () => {
      const server = await startTestServer();
      const stream = construct(`wss://127.0.0.1:${server.port}/`, { tls: { ca: testCert } });
      const socket = await server.nextSocket();
      // The ClientHello is not HTTP; a plain server answers with a 400 that is no TLS record.
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
      await expectHandshakeFailure(stream);
    });
  });

  describe('numeric options', () => {
    for (const name of ['maxPayload', 'closeTimeout', 'handshakeTimeout', 'maxHandshakeHead', 'readableHighWaterMark']) {
      it(`${name}: a negative value throws RangeError`, () => {
        const error = thrownBy(() => construct('ws://127.0.0.1:1/', { [name]: -1 }));
        expect(error).to.be.an.instanceOf(RangeError);
      });

      it(`${name}: NaN throws TypeError or RangeError`, () => {
        const error = thrownBy(() => construct('ws://127.0.0.1:1/', { [name]: NaN }));
        expect(error instanceof TypeError || error instanceof RangeError, String(error)).to.equal(true);
      });

      for (const [label, value] of [
        ['a numeric string', '100'],
        ['an object', {}],
        ['a boolean', true],
        ['a BigInt', 100n],
      ] as Array<[string, unknown]>) {
        it(`${name}: ${label} throws a plain TypeError`, () => {
          expectPlainTypeError(thrownBy(() => construct('ws://127.0.0.1:1/', { [name]: value })));
        });
      }
    }

    it('a bad numeric option throws synchronously and opens no connection', async () => {
      const server = await startTestServer();
      expect(() => construct(server.url, { handshakeTimeout: -5 })).to.throw(RangeError);
      expect(() => construct(server.url, { maxPayload: 'big' })).to.throw(TypeError);
      expect(await server.probe()).to.equal(0);
    });

    for (const value of [2 ** 31, Infinity]) {
      it(`handshakeTimeout ${value} (beyond setTimeout's 2^31-1 ms) is refused with RangeError or honoured, never cut to 1 ms`, async () => {
        // Node turns a setTimeout delay above 2^31-1 ms into 1 ms, and says so with a
        // TimeoutOverflowWarning (emitted on the next tick): the sign that the timer was cut.
        const warnings: Error[] = [];
        const onWarning = (warning: Error): void => {
          warnings.push(warning);
        };
        process.on('warning', onWarning);
        try {
          const server = await startTestServer();
          let stream: WebSocketStream;
          try {
            stream = construct(server.url, { handshakeTimeout: value });
          } catch (error) {
            expect(error).to.be.an.instanceOf(RangeError);
            return;
          }
          await nextMacrotask();
          expect(warnings.map((warning) => warning.name)).to.not.include('TimeoutOverflowWarning');
          const request = await server.nextRequest();
          request.socket.write(accept101(request));
          await stream.opened;
        } finally {
          process.off('warning', onWarning);
        }
      });
    }

    it('closeTimeout Infinity is refused with RangeError or honoured, never cut to 1 ms', async () => {
      const warnings: Error[] = [];
      const onWarning = (warning: Error): void => {
        warnings.push(warning);
      };
      process.on('warning', onWarning);
      try {
        const server = await rawServer();
        let opened: Awaited<ReturnType<typeof openOn>>;
        try {
          opened = await openOn(server, { closeTimeout: Infinity });
        } catch (error) {
          expect(error).to.be.an.instanceOf(RangeError);
          return;
        }
        const { stream, peer } = opened;
        stream.close();
        const frame = await peer.nextFrame();
        await nextMacrotask();
        expect(warnings.map((warning) => warning.name)).to.not.include('TimeoutOverflowWarning');
        expect(await answerClose(stream, peer, frame.payload)).to.deep.equal({ closeCode: 1005, reason: '' });
      } finally {
        process.off('warning', onWarning);
      }
    });
  });

  describe('unhandled rejections', () => {
    let unhandled: unknown[];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    beforeEach(() => {
      unhandled = [];
      process.on('unhandledRejection', onUnhandled);
    });
    afterEach(() => {
      process.off('unhandledRejection', onUnhandled);
    });

    /** Runs `create` and returns the client sockets net.connect made meanwhile. */
    function clientSocketsOf(create: () => void): net.Socket[] {
      const sockets: net.Socket[] = [];
      const onSocket = (message: unknown): void => {
        sockets.push((message as { socket: net.Socket }).socket);
      };
      diagnosticsChannel.subscribe('net.client.socket', onSocket);
      try {
        create();
      } finally {
        diagnosticsChannel.unsubscribe('net.client.socket', onSocket);
      }
      return sockets;
    }

    /** Resolves when the socket has closed (events.once would reject on its 'error'). */
    function closeOf(socket: net.Socket): Promise<void> {
      if (socket.destroyed && socket.closed) return Promise.resolve();
      return new Promise((resolve) => socket.once('close', () => resolve()));
    }

    /** Lets Node run its unhandled-rejection check (it runs after each tick's microtasks). */
    async function settle(): Promise<void> {
      await nextMacrotask();
      await nextMacrotask();
    }

    it('a refused connection nobody observes does not report an unhandled rejection', async () => {
      const port = await refusedPort();
      let stream!: WebSocketStream;
      const sockets = clientSocketsOf(() => {
        stream = construct(`ws://127.0.0.1:${port}/`);
      });
      expect(sockets).to.have.length(1);
      await closeOf(sockets[0]!);
      await settle();
      expect(unhandled).to.deep.equal([]);
      // Someone who looks later still sees the rejections.
      await expectHandshakeFailure(stream);
    });

    it('a 403 nobody observes does not report an unhandled rejection', async () => {
      const server = await rawServer({ respond: () => head(['HTTP/1.1 403 Forbidden', 'Content-Length: 0']) });
      let stream!: WebSocketStream;
      const sockets = clientSocketsOf(() => {
        stream = construct(server.url);
      });
      expect(sockets).to.have.length(1);
      await closeOf(sockets[0]!);
      await settle();
      expect(unhandled).to.deep.equal([]);
      await expectHandshakeFailure(stream);
    });

    it('an aborted signal nobody observes does not report an unhandled rejection', async () => {
      const controller = new AbortController();
      const server = await startTestServer();
      construct('ws://127.0.0.1:1/', { signal: AbortSignal.abort() });
      const stream = construct(server.url, { signal: controller.signal });
      await server.nextRequest();
      controller.abort();
      await settle();
      expect(unhandled).to.deep.equal([]);
      expect(await rejectionOf(stream.closed)).to.equal(controller.signal.reason);
    });

    it('close() before open nobody observes does not report an unhandled rejection', async () => {
      const server = await startTestServer();
      const stream = construct(server.url);
      stream.close();
      await settle();
      expect(unhandled).to.deep.equal([]);
      await expectHandshakeFailure(stream);
    });

    it('an unclean close nobody observes does not report an unhandled rejection', async () => {
      const server = await rawServer();
      const { stream, peer, info } = await openOn(server);
      const reader = info.readable.getReader();
      peer.socket.destroy();
      // The readable errors in the same step that rejects closed.
      await rejectionOf(reader.read());
      await settle();
      expect(unhandled).to.deep.equal([]);
      const error = (await rejectionOf(stream.closed)) as WebSocketError;
      expect(error.closeCode).to.equal(1006);
    });
  });
});
