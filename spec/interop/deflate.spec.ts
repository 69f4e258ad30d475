// permessage-deflate against `ws` in both directions, and our client against our server: every
// parameter combination, tiny and 16 MiB messages, many messages in order, context takeover on and
// off (seen on the wire: a repeated message costs fewer bytes the second time only with takeover),
// and `opened.extensions` being exactly the server's Sec-WebSocket-Extensions value.
import { expect } from 'chai';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import WebSocket, { WebSocketServer, type PerMessageDeflateOptions as WsDeflateOptions } from 'ws';
import {
  WebSocketStream,
  WebSocketStreamServer,
  type PerMessageDeflateOptions,
  type ServerWebSocketStream,
  type WebSocketOpenInfo,
  type WebSocketStreamOptions,
} from '../../lib/index.js';
import { extensionParams, pseudoRandom, textOfBytes } from '../helpers/deflate-helpers.js';

type Message = string | Uint8Array;
type Params = Record<string, string | true>;

const MiB = 1024 * 1024;
/** 200 random bytes: incompressible alone, nearly free the second time with context takeover (within any window). */
const REPEATED = pseudoRandom(200, 3);
/** 3000 bytes of very compressible text. */
const COMPRESSIBLE = textOfBytes(3000);

function bytes(message: Message): Buffer {
  return typeof message === 'string' ? Buffer.from(message) : Buffer.from(message.buffer, message.byteOffset, message.byteLength);
}

function describeMessage(message: Message): string {
  return `${typeof message === 'string' ? 'text' : 'binary'} of ${bytes(message).length} bytes`;
}

function expectSameMessage(got: Message | undefined, want: Message, where = ''): void {
  const what = `${where}${where === '' ? '' : ': '}${describeMessage(want)}`;
  if (typeof want === 'string') {
    expect(typeof got, `${what} comes back as text`).to.equal('string');
    expect(got === want, `${what} comes back intact`).to.equal(true);
  } else {
    expect(got, `${what} comes back as a Uint8Array`).to.be.an.instanceOf(Uint8Array);
    expect(bytes(got!).equals(bytes(want)), `${what} comes back intact`).to.equal(true);
  }
}

/** Options without the undefined members (ws treats an explicit `false` differently from absent). */
function defined<T extends object>(options: T): T {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as T;
}

function label(options: object): string {
  const entries = Object.entries(defined(options));
  return entries.length === 0 ? 'defaults' : entries.map(([key, value]) => `${key}=${String(value)}`).join(', ');
}

/** Differences between consecutive counter readings: the wire size of each message after the first. */
function deltas(counters: number[]): number[] {
  return counters.map((value, index) => (index === 0 ? NaN : value - counters[index - 1]!));
}

/** With context takeover the second copy of REPEATED costs a fraction; without, exactly the same. */
function expectTakeover(sizes: number[], first: number, resets: boolean, who: string): void {
  const a = sizes[first]!;
  const b = sizes[first + 1]!;
  expect(a, `${who}: wire size of the first copy`).to.be.greaterThan(200);
  if (resets) expect(b, `${who} resets its context: the second copy costs the same`).to.equal(a);
  else expect(b, `${who} keeps its context: the second copy costs a fraction (first: ${a})`).to.be.lessThan(a / 3);
}

// ---------------------------------------------------------------------------------------------
// Our client.

interface OurClient {
  wss: WebSocketStream;
  info: WebSocketOpenInfo;
  reader: ReadableStreamDefaultReader<Message>;
  writer: WritableStreamDefaultWriter<unknown>;
}

async function openClient(url: string, options?: WebSocketStreamOptions): Promise<OurClient> {
  const wss = new WebSocketStream(url, options);
  const info = await wss.opened;
  return { wss, info, reader: info.readable.getReader() as ReadableStreamDefaultReader<Message>, writer: info.writable.getWriter() };
}

async function readMessage(client: OurClient): Promise<Message> {
  const { value, done } = await client.reader.read();
  expect(done, 'the readable ended early').to.equal(false);
  return value!;
}

async function roundTrip(client: OurClient, message: Message): Promise<Message> {
  await client.writer.write(message);
  return readMessage(client);
}

async function closeClient(client: OurClient): Promise<void> {
  client.wss.close({ closeCode: 1000, reason: 'done' });
  expect(await client.wss.closed).to.deep.equal({ closeCode: 1000, reason: 'done' });
}

// ---------------------------------------------------------------------------------------------
// A ws echo server that notes the socket counters at each message and each echo.

interface WsConnection {
  socket: WebSocket;
  request: IncomingMessage;
  /** The client's Sec-WebSocket-Extensions offer. */
  offer: string | undefined;
  /** ws's Sec-WebSocket-Extensions response. */
  response: string | undefined;
  /** req.socket.bytesRead when each message arrived. */
  inbound: number[];
  /** req.socket.bytesWritten once each echo was written. */
  outbound: number[];
  closed: Promise<unknown>;
}

interface WsEchoServer {
  url: string;
  next(): Promise<WsConnection>;
  close(): Promise<void>;
}

async function startWsEcho(perMessageDeflate: boolean | WsDeflateOptions): Promise<WsEchoServer> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate });
  await once(server, 'listening');
  const responses = new WeakMap<IncomingMessage, string | undefined>();
  server.on('headers', (headers: string[], request: IncomingMessage) => {
    const line = headers.find((header) => /^sec-websocket-extensions:/i.test(header));
    responses.set(request, line === undefined ? undefined : line.slice(line.indexOf(':') + 1).trim());
  });
  const pending: WsConnection[] = [];
  const waiting: Array<(connection: WsConnection) => void> = [];
  server.on('connection', (socket: WebSocket, request: IncomingMessage) => {
    socket.on('error', () => {});
    const connection: WsConnection = {
      socket,
      request,
      offer: request.headers['sec-websocket-extensions'],
      response: responses.get(request),
      inbound: [],
      outbound: [],
      closed: once(socket, 'close'),
    };
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      connection.inbound.push(request.socket.bytesRead);
      socket.send(data, { binary: isBinary }, () => connection.outbound.push(request.socket.bytesWritten));
    });
    const waiter = waiting.shift();
    if (waiter !== undefined) waiter(connection);
    else pending.push(connection);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/`,
    next: () => {
      const connection = pending.shift();
      return connection !== undefined ? Promise.resolve(connection) : new Promise((resolve) => waiting.push(resolve));
    },
    close: () => {
      for (const client of server.clients) client.terminate();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// A ws client that notes its socket counters, and our echo server.

class WsClient {
  readonly inbound: number[] = [];
  readonly outbound: number[] = [];
  private readonly messages: Array<{ data: Buffer; isBinary: boolean }> = [];
  private waiters: Array<() => void> = [];

  private constructor(
    readonly socket: WebSocket,
    readonly raw: Socket,
    /** Our server's Sec-WebSocket-Extensions response. */
    readonly response: string | undefined,
  ) {
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      this.inbound.push(raw.bytesRead);
      this.messages.push({ data, isBinary });
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    });
  }

  static async open(url: string, perMessageDeflate: boolean | WsDeflateOptions): Promise<WsClient> {
    const socket = new WebSocket(url, { perMessageDeflate });
    socket.on('error', () => {});
    let raw: Socket | null = null;
    let response: string | undefined;
    socket.on('upgrade', (res: IncomingMessage) => {
      raw = res.socket as Socket;
      response = res.headers['sec-websocket-extensions'];
    });
    await once(socket, 'open');
    return new WsClient(socket, raw!, response);
  }

  async next(): Promise<{ data: Buffer; isBinary: boolean }> {
    while (this.messages.length === 0) await new Promise<void>((resolve) => this.waiters.push(resolve));
    return this.messages.shift()!;
  }

  send(message: Message): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.send(typeof message === 'string' ? message : bytes(message), { binary: typeof message !== 'string' }, (error) => {
        if (error) return reject(error);
        this.outbound.push(this.raw.bytesWritten);
        resolve();
      });
    });
  }

  async roundTrip(message: Message): Promise<void> {
    await this.send(message);
    const echo = await this.next();
    expect(echo.isBinary, `${describeMessage(message)}: the echo's type`).to.equal(typeof message !== 'string');
    expectSameMessage(echo.isBinary ? new Uint8Array(echo.data) : echo.data.toString('utf8'), message, 'ws client');
  }

  async close(): Promise<void> {
    const closed = once(this.socket, 'close');
    this.socket.close(1000, 'done');
    const [code] = (await closed) as [number, Buffer];
    expect(code).to.equal(1000);
  }
}

interface OurServer {
  url: string;
  next(): Promise<ServerWebSocketStream>;
  close(): Promise<void>;
}

async function startOurServer(perMessageDeflate: boolean | PerMessageDeflateOptions | undefined): Promise<OurServer> {
  const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', ...(perMessageDeflate === undefined ? {} : { perMessageDeflate }) });
  await server.listening;
  const pending: ServerWebSocketStream[] = [];
  const waiting: Array<(stream: ServerWebSocketStream) => void> = [];
  const loop = (async () => {
    const reader = server.connections.getReader();
    for (;;) {
      const { done, value: stream } = await reader.read();
      if (done) break;
      stream.opened.then(({ readable, writable }) => readable.pipeTo(writable)).catch(() => {});
      const waiter = waiting.shift();
      if (waiter !== undefined) waiter(stream);
      else pending.push(stream);
    }
  })();
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    next: () => {
      const stream = pending.shift();
      return stream !== undefined ? Promise.resolve(stream) : new Promise((resolve) => waiting.push(resolve));
    },
    close: async () => {
      await server.close();
      await loop;
    },
  };
}

// ---------------------------------------------------------------------------------------------

const cleanups: Array<() => Promise<void>> = [];

async function wsEcho(perMessageDeflate: boolean | WsDeflateOptions): Promise<WsEchoServer> {
  const server = await startWsEcho(perMessageDeflate);
  cleanups.push(() => server.close());
  return server;
}

async function ourServer(perMessageDeflate: boolean | PerMessageDeflateOptions | undefined): Promise<OurServer> {
  const server = await startOurServer(perMessageDeflate);
  cleanups.push(() => server.close());
  return server;
}

/** The lockstep script every combination runs: index 3 and 4 are the two copies of REPEATED. */
function script(): Message[] {
  return ['x', '', new Uint8Array(0), REPEATED, REPEATED, COMPRESSIBLE, pseudoRandom(70_000, 4), 'é😀', Uint8Array.of(0, 255), 'bye'];
}
const REPEAT_AT = 3;
const COMPRESSIBLE_AT = 5;

/** Our client through a ws echo server: the script in lockstep, then the wire sizes. */
async function exerciseWithWs(client: OurClient, connection: WsConnection, clientResets: boolean, serverResets: boolean): Promise<void> {
  for (const message of script()) expectSameMessage(await roundTrip(client, message), message, 'our client');
  await closeClient(client);
  await connection.closed;
  const sent = deltas(connection.inbound);
  const echoed = deltas(connection.outbound);
  expectTakeover(sent, REPEAT_AT, clientResets, 'our client');
  expectTakeover(echoed, REPEAT_AT, serverResets, 'the ws server');
  expect(sent[COMPRESSIBLE_AT], 'our client compressed the compressible message').to.be.lessThan(500);
  expect(echoed[COMPRESSIBLE_AT], 'ws compressed the compressible echo').to.be.lessThan(500);
}

/** A ws client through our echo server: the script in lockstep, then the wire sizes. */
async function exerciseWithWsClient(client: WsClient, clientResets: boolean, serverResets: boolean): Promise<void> {
  for (const message of script()) await client.roundTrip(message);
  await client.close();
  const sent = deltas(client.outbound);
  const echoed = deltas(client.inbound);
  expectTakeover(sent, REPEAT_AT, clientResets, 'the ws client');
  expectTakeover(echoed, REPEAT_AT, serverResets, 'our server');
  expect(sent[COMPRESSIBLE_AT], 'ws compressed the compressible message').to.be.lessThan(500);
  expect(echoed[COMPRESSIBLE_AT], 'our server compressed the compressible echo').to.be.lessThan(500);
}

function expectNegotiated(header: string | undefined, params: Params): void {
  expect(extensionParams(header), `Sec-WebSocket-Extensions: ${header}`).to.deep.equal([{ name: 'permessage-deflate', params }]);
}

interface DeflateCombo {
  serverNoContextTakeover?: boolean;
  clientNoContextTakeover?: boolean;
  serverMaxWindowBits?: number;
  clientMaxWindowBits?: number;
}

function combos(): DeflateCombo[] {
  const all: DeflateCombo[] = [];
  for (const serverNoContextTakeover of [undefined, true])
    for (const clientNoContextTakeover of [undefined, true])
      for (const serverMaxWindowBits of [undefined, 8, 15])
        for (const clientMaxWindowBits of [undefined, 8, 15])
          all.push(defined({ serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits }));
  return all;
}

/** The response parameters a server configured with `combo` sends to `permessage-deflate; client_max_window_bits`. */
function responseFor(combo: DeflateCombo): Params {
  const params: Params = {};
  if (combo.serverNoContextTakeover) params.server_no_context_takeover = true;
  if (combo.clientNoContextTakeover) params.client_no_context_takeover = true;
  if (combo.serverMaxWindowBits !== undefined) params.server_max_window_bits = String(combo.serverMaxWindowBits);
  if (combo.clientMaxWindowBits !== undefined) params.client_max_window_bits = String(combo.clientMaxWindowBits);
  return params;
}

describe('permessage-deflate interop', function () {
  this.timeout(30_000);

  afterEach(async function () {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  describe('our client ↔ ws server', function () {
    describe('every ws server parameter combination (threshold 0 on both sides)', function () {
      for (const combo of combos()) {
        it(`ws server ${label(combo)}`, async function () {
          const server = await wsEcho({ ...combo, threshold: 0 });
          const client = await openClient(server.url, { perMessageDeflate: { threshold: 0 } });
          const connection = await server.next();
          expect(connection.offer).to.equal('permessage-deflate; client_max_window_bits');
          expect(client.info.extensions, 'opened.extensions is the server response, verbatim').to.equal(connection.response);
          expectNegotiated(connection.response, responseFor(combo));
          await exerciseWithWs(client, connection, combo.clientNoContextTakeover === true, combo.serverNoContextTakeover === true);
        });
      }
    });

    describe('our client options against a ws server with default deflate settings', function () {
      const cases: Array<{ options: PerMessageDeflateOptions; offer: string; response: Params; clientResets: boolean; serverResets: boolean }> = [
        { options: {}, offer: 'permessage-deflate; client_max_window_bits', response: {}, clientResets: false, serverResets: false },
        {
          options: { serverNoContextTakeover: true },
          offer: 'permessage-deflate; server_no_context_takeover; client_max_window_bits',
          response: { server_no_context_takeover: true },
          clientResets: false,
          serverResets: true,
        },
        {
          options: { clientNoContextTakeover: true },
          offer: 'permessage-deflate; client_no_context_takeover; client_max_window_bits',
          response: { client_no_context_takeover: true },
          clientResets: true,
          serverResets: false,
        },
        {
          options: { serverMaxWindowBits: 10 },
          offer: 'permessage-deflate; server_max_window_bits=10; client_max_window_bits',
          response: { server_max_window_bits: '10' },
          clientResets: false,
          serverResets: false,
        },
        { options: { clientMaxWindowBits: 11 }, offer: 'permessage-deflate; client_max_window_bits=11', response: { client_max_window_bits: '11' }, clientResets: false, serverResets: false },
        { options: { clientMaxWindowBits: false }, offer: 'permessage-deflate', response: {}, clientResets: false, serverResets: false },
        {
          options: { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 8, clientMaxWindowBits: 8 },
          offer: 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=8',
          response: { server_no_context_takeover: true, client_no_context_takeover: true, server_max_window_bits: '8', client_max_window_bits: '8' },
          clientResets: true,
          serverResets: true,
        },
      ];
      for (const { options, offer, response, clientResets, serverResets } of cases) {
        it(`perMessageDeflate ${label(options)} offers ${JSON.stringify(offer)}`, async function () {
          const server = await wsEcho({ threshold: 0 });
          const client = await openClient(server.url, { perMessageDeflate: { ...options, threshold: 0 } });
          const connection = await server.next();
          expect(connection.offer).to.equal(offer);
          expect(client.info.extensions).to.equal(connection.response);
          expectNegotiated(connection.response, response);
          await exerciseWithWs(client, connection, clientResets, serverResets);
        });
      }
    });

    it('perMessageDeflate: false offers nothing; nothing is compressed either way', async function () {
      const server = await wsEcho({ threshold: 0 });
      const client = await openClient(server.url, { perMessageDeflate: false });
      const connection = await server.next();
      expect(connection.offer).to.equal(undefined);
      expect(connection.response).to.equal(undefined);
      expect(client.info.extensions).to.equal('');
      for (const message of script()) expectSameMessage(await roundTrip(client, message), message);
      await closeClient(client);
      await connection.closed;
      expect(deltas(connection.inbound)[COMPRESSIBLE_AT], 'sent uncompressed').to.be.greaterThan(3000);
      expect(deltas(connection.outbound)[COMPRESSIBLE_AT], 'echoed uncompressed').to.be.greaterThan(3000);
    });

    it('a ws server without permessage-deflate: extensions is "" and our client compresses nothing', async function () {
      const server = await wsEcho(false);
      const client = await openClient(server.url, { perMessageDeflate: { threshold: 0 } });
      const connection = await server.next();
      expect(connection.offer).to.equal('permessage-deflate; client_max_window_bits');
      expect(connection.response).to.equal(undefined);
      expect(client.info.extensions).to.equal('');
      for (const message of script()) expectSameMessage(await roundTrip(client, message), message);
      await closeClient(client);
      await connection.closed;
      expect(deltas(connection.inbound)[COMPRESSIBLE_AT], 'sent uncompressed').to.be.greaterThan(3000);
    });

    it('a tiny message and a 16 MiB message, text and binary, both ways (context takeover on)', async function () {
      const server = await wsEcho(true);
      const client = await openClient(server.url);
      const connection = await server.next();
      expect(client.info.extensions).to.equal(connection.response);
      const text = textOfBytes(16 * MiB);
      const binary = pseudoRandom(16 * MiB, 21);
      const messages: Message[] = ['t', text, Uint8Array.of(7), binary, 'after', text];
      for (const message of messages) expectSameMessage(await roundTrip(client, message), message, 'our client');
      await closeClient(client);
      await connection.closed;
      const sent = deltas(connection.inbound);
      expect(sent[1], 'the 16 MiB text went compressed').to.be.lessThan(MiB);
      expect(sent[3], 'the 16 MiB random binary went (compressed, barely larger)').to.be.within(16 * MiB, 16 * MiB + 64 * 1024);
      expect(deltas(connection.outbound)[1], 'the 16 MiB text came back compressed').to.be.lessThan(MiB);
    });

    it('a tiny message and 16 MiB messages, both ways (context takeover off)', async function () {
      const server = await wsEcho({ serverNoContextTakeover: true, clientNoContextTakeover: true });
      const client = await openClient(server.url);
      const connection = await server.next();
      expectNegotiated(client.info.extensions, { server_no_context_takeover: true, client_no_context_takeover: true });
      const text = textOfBytes(16 * MiB);
      const messages: Message[] = [Uint8Array.of(7), text, 't', text, 'after'];
      for (const message of messages) expectSameMessage(await roundTrip(client, message), message, 'our client');
      await closeClient(client);
      await connection.closed;
      const sent = deltas(connection.inbound);
      expect(sent[1], 'the 16 MiB text went compressed').to.be.lessThan(MiB);
      expect(sent[3], 'without context takeover, the second copy costs the same').to.equal(sent[1]);
    });

    it('many messages of mixed sizes (below and above the threshold), written without waiting, arrive in order', async function () {
      const server = await wsEcho(true);
      const client = await openClient(server.url);
      await server.next();
      const sizes = [0, 1, 100, 1023, 1024, 1025, 5000, 70_000, 3];
      const messages: Message[] = [];
      for (let i = 0; i < 300; i++) {
        const size = sizes[i % sizes.length]!;
        messages.push(i % 2 === 0 ? `${i}:`.padEnd(size, 'abc') : pseudoRandom(size, i + 1));
      }
      const writes = messages.map((message) => client.writer.write(message));
      for (const [index, message] of messages.entries()) expectSameMessage(await readMessage(client), message, `message ${index}`);
      await Promise.all(writes);
      await closeClient(client);
    });
  });

  describe('ws client ↔ our server', function () {
    describe('every parameter combination of our server (ws client: default offer, threshold 0)', function () {
      for (const combo of combos()) {
        it(`our server ${label(combo)}`, async function () {
          const server = await ourServer({ ...combo, threshold: 0 });
          const client = await WsClient.open(server.url, { threshold: 0 });
          const stream = await server.next();
          expect(stream.request.headers['sec-websocket-extensions']).to.equal('permessage-deflate; client_max_window_bits');
          expect((await stream.opened).extensions, 'opened.extensions is our response, verbatim').to.equal(client.response);
          expectNegotiated(client.response, responseFor(combo));
          expect(client.socket.extensions).to.equal('permessage-deflate');
          await exerciseWithWsClient(client, combo.clientNoContextTakeover === true, combo.serverNoContextTakeover === true);
        });
      }
    });

    describe('every ws client offer (our server: perMessageDeflate with threshold 0)', function () {
      for (const combo of combos()) {
        it(`ws client ${label(combo)}`, async function () {
          const server = await ourServer({ threshold: 0 });
          const client = await WsClient.open(server.url, { ...combo, threshold: 0 });
          const stream = await server.next();
          const offered = extensionParams(stream.request.headers['sec-websocket-extensions']);
          expect(offered).to.have.length(1);
          expect((await stream.opened).extensions).to.equal(client.response);
          // RFC 7692: server_no_context_takeover and server_max_window_bits offered are granted;
          // client_no_context_takeover offered is acknowledged; a server not limiting the client's
          // window leaves client_max_window_bits out.
          const expected: Params = {};
          if (combo.serverNoContextTakeover) expected.server_no_context_takeover = true;
          if (combo.clientNoContextTakeover) expected.client_no_context_takeover = true;
          if (combo.serverMaxWindowBits !== undefined) expected.server_max_window_bits = String(combo.serverMaxWindowBits);
          expectNegotiated(client.response, expected);
          expect(client.socket.extensions).to.equal('permessage-deflate');
          await exerciseWithWsClient(client, combo.clientNoContextTakeover === true, combo.serverNoContextTakeover === true);
        });
      }
    });

    it('our server with perMessageDeflate off (the default) ignores the offer; nothing is compressed', async function () {
      const server = await ourServer(undefined);
      const client = await WsClient.open(server.url, { threshold: 0 });
      const stream = await server.next();
      expect(stream.request.headers['sec-websocket-extensions']).to.equal('permessage-deflate; client_max_window_bits');
      expect(client.response).to.equal(undefined);
      expect(client.socket.extensions).to.equal('');
      expect((await stream.opened).extensions).to.equal('');
      for (const message of script()) await client.roundTrip(message);
      await client.close();
      expect(deltas(client.inbound)[COMPRESSIBLE_AT], 'our server echoed uncompressed').to.be.greaterThan(3000);
    });

    it('our server with perMessageDeflate: false ignores the offer too', async function () {
      const server = await ourServer(false);
      const client = await WsClient.open(server.url, true);
      const stream = await server.next();
      expect(client.response).to.equal(undefined);
      expect((await stream.opened).extensions).to.equal('');
      await client.roundTrip(COMPRESSIBLE);
      await client.close();
    });

    it('a tiny message and a 16 MiB message, text and binary, both ways (context takeover on)', async function () {
      const server = await ourServer(true);
      const client = await WsClient.open(server.url, true);
      const stream = await server.next();
      expect((await stream.opened).extensions).to.equal(client.response);
      const text = textOfBytes(16 * MiB);
      const binary = pseudoRandom(16 * MiB, 22);
      for (const message of ['t', text, Uint8Array.of(7), binary, 'after', text] as Message[]) await client.roundTrip(message);
      await client.close();
      const echoed = deltas(client.inbound);
      expect(echoed[1], 'our server compressed the 16 MiB text').to.be.lessThan(MiB);
      expect(echoed[3], 'the 16 MiB random binary came back (compressed, barely larger)').to.be.within(16 * MiB, 16 * MiB + 64 * 1024);
      expect(echoed[5], 'the second copy of the text, with context takeover, costs less').to.be.lessThan(echoed[1]!);
    });

    it('a tiny message and 16 MiB messages, both ways (context takeover off)', async function () {
      const server = await ourServer({ serverNoContextTakeover: true, clientNoContextTakeover: true });
      const client = await WsClient.open(server.url, true);
      const stream = await server.next();
      expect((await stream.opened).extensions).to.equal(client.response);
      expectNegotiated(client.response, { server_no_context_takeover: true, client_no_context_takeover: true });
      const text = textOfBytes(16 * MiB);
      for (const message of [Uint8Array.of(7), text, 't', text, 'after'] as Message[]) await client.roundTrip(message);
      await client.close();
      const echoed = deltas(client.inbound);
      expect(echoed[1], 'our server compressed the 16 MiB text').to.be.lessThan(MiB);
      expect(echoed[3], 'without context takeover, the second copy costs the same').to.equal(echoed[1]);
    });

    it('many messages of mixed sizes, sent without waiting, come back in order', async function () {
      const server = await ourServer(true);
      const client = await WsClient.open(server.url, true);
      await server.next();
      const sizes = [0, 1, 100, 1023, 1024, 1025, 5000, 70_000, 3];
      const messages: Message[] = [];
      for (let i = 0; i < 300; i++) {
        const size = sizes[i % sizes.length]!;
        messages.push(i % 2 === 0 ? `${i}:`.padEnd(size, 'xyz') : pseudoRandom(size, i + 7));
      }
      const sends = messages.map((message) => client.send(message));
      for (const [index, message] of messages.entries()) {
        const echo = await client.next();
        expectSameMessage(echo.isBinary ? new Uint8Array(echo.data) : echo.data.toString('utf8'), message, `message ${index}`);
      }
      await Promise.all(sends);
      await client.close();
    });
  });

  describe('our client ↔ our server', function () {
    const clientOptions: Array<boolean | PerMessageDeflateOptions> = [
      true,
      { threshold: 0 },
      { clientNoContextTakeover: true, threshold: 0 },
      { serverNoContextTakeover: true, threshold: 0 },
      { serverMaxWindowBits: 9, threshold: 0 },
      { clientMaxWindowBits: 8, threshold: 0 },
      { clientMaxWindowBits: false, threshold: 0 },
      false,
    ];
    const serverOptions: Array<boolean | PerMessageDeflateOptions> = [
      true,
      { serverNoContextTakeover: true, threshold: 0 },
      { clientNoContextTakeover: true, threshold: 0 },
      { serverMaxWindowBits: 10, threshold: 0 },
      { clientMaxWindowBits: 9, threshold: 0 },
      false,
    ];
    for (const ours of serverOptions) {
      for (const theirs of clientOptions) {
        it(`client ${typeof theirs === 'boolean' ? theirs : label(theirs)} ↔ server ${typeof ours === 'boolean' ? ours : label(ours)}`, async function () {
          const server = await ourServer(ours);
          const client = await openClient(server.url, { perMessageDeflate: theirs });
          const stream = await server.next();
          const serverSide = await stream.opened;
          expect(serverSide.extensions, 'both ends report the same extensions').to.equal(client.info.extensions);
          const negotiated = extensionParams(client.info.extensions);
          if (ours === false || theirs === false) {
            expect(client.info.extensions).to.equal('');
          } else {
            expect(negotiated).to.have.length(1);
            expect(negotiated[0]!.name).to.equal('permessage-deflate');
            const params = negotiated[0]!.params;
            const o = ours === true ? {} : ours;
            const t = theirs === true ? {} : theirs;
            expect(params.server_no_context_takeover === true, 'server_no_context_takeover').to.equal(Boolean(o.serverNoContextTakeover || t.serverNoContextTakeover));
            expect(params.client_no_context_takeover === true, 'client_no_context_takeover').to.equal(Boolean(o.clientNoContextTakeover || t.clientNoContextTakeover));
            const serverBits = [o.serverMaxWindowBits, t.serverMaxWindowBits].filter((bits): bits is number => bits !== undefined);
            expect(params.server_max_window_bits, 'server_max_window_bits').to.equal(serverBits.length === 0 ? undefined : String(Math.min(...serverBits)));
            if (typeof o.clientMaxWindowBits === 'number' && t.clientMaxWindowBits !== false) {
              const limit = Math.min(o.clientMaxWindowBits, typeof t.clientMaxWindowBits === 'number' ? t.clientMaxWindowBits : 15);
              expect(params.client_max_window_bits, 'client_max_window_bits').to.equal(String(limit));
            } else {
              expect(params.client_max_window_bits, 'client_max_window_bits').to.equal(undefined);
            }
          }
          for (const message of script()) expectSameMessage(await roundTrip(client, message), message);
          await closeClient(client);
          expect(await stream.closed).to.deep.equal({ closeCode: 1000, reason: 'done' });
        });
      }
    }

    it('a tiny message and a 16 MiB message, text and binary, both ways', async function () {
      const server = await ourServer(true);
      const client = await openClient(server.url);
      await server.next();
      expect(client.info.extensions).to.equal('permessage-deflate');
      for (const message of ['t', textOfBytes(16 * MiB), Uint8Array.of(1), pseudoRandom(16 * MiB, 23), 'end'] as Message[]) {
        expectSameMessage(await roundTrip(client, message), message);
      }
      await closeClient(client);
    });

    it('twenty connections at once, each with many compressed messages in flight, keep their order', async function () {
      const server = await ourServer({ threshold: 64 });
      await Promise.all(
        Array.from({ length: 20 }, async (_, connection) => {
          const client = await openClient(server.url, { perMessageDeflate: { threshold: 64 } });
          const messages: Message[] = [];
          for (let i = 0; i < 40; i++) {
            const size = [10, 100, 2000, 40_000][i % 4]!;
            messages.push(i % 3 === 0 ? pseudoRandom(size, connection * 100 + i + 1) : `${connection}/${i} `.repeat(Math.ceil(size / 6)));
          }
          const writes = messages.map((message) => client.writer.write(message));
          for (const [index, message] of messages.entries()) expectSameMessage(await readMessage(client), message, `connection ${connection} message ${index}`);
          await Promise.all(writes);
          await closeClient(client);
        }),
      );
    });
  });
});
