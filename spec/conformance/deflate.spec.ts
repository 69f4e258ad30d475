// The Autobahn|Testsuite permessage-deflate families in miniature (no Docker, no Python): 12.x
// (echo of many compressed messages cut from five kinds of data, with Autobahn's sizes and
// auto-fragmentation), 13.x (the same with each of the negotiated parameter sets: context takeover
// off either way, window bits 8, 9 and 15), and the 9.x shapes (large, fragmented and chopped
// messages, many small ones) over a compressed connection. Each runs against our client (the peer
// is the server) and our server (the peer is the client); the peer compresses and inflates with
// node:zlib itself and checks that everything our side sends honours the negotiated parameters.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import {
  WebSocketStream,
  WebSocketStreamServer,
  type PerMessageDeflateOptions,
  type ServerWebSocketStream,
  type WebSocketClosedInfo,
} from '../../lib/index.js';
import { startRawServer, switchingProtocols, type RawPeer, type RawRequest, type RawServer } from '../helpers/raw-peer.js';
import { bitmapBytes, htmlText, jsonText, proseText, pseudoRandom, rawClient } from '../helpers/deflate-helpers.js';
import { clientSideOf, DeflateEchoPeer, parseExtensionHeader, type DirectionParams } from './deflate-peer.js';

type Role = 'client' | 'server';

// ---------------------------------------------------------------------------------------------
// Test data: Autobahn's five kinds, generated (deterministic), sliced as Autobahn slices them.

interface TestData {
  key: string;
  description: string;
  binary: boolean;
  /** Binary data as bytes; text data as code points, so a slice never splits a character. */
  bytes?: Buffer;
  codePoints?: string[];
}

let dataSets: TestData[] | null = null;

function testData(): TestData[] {
  if (dataSets !== null) return dataSets;
  const pdfLike = Buffer.concat(
    Array.from({ length: 64 }, (_, i) => (i % 3 === 0 ? pseudoRandom(4096, i + 1) : Buffer.from(`${i} 0 obj << /Type /Page /Parent 3 0 R /Contents ${i + 1} 0 R >> endobj\n`.repeat(40)))),
  );
  dataSets = [
    { key: 'json_data1', description: 'JSON data (utf8)', binary: false, codePoints: Array.from(jsonText(190_000, 1)) },
    { key: 'lena512', description: 'a 512×512 grey bitmap (binary)', binary: true, bytes: bitmapBytes(2) },
    { key: 'gutenberg_faust', description: 'human readable text, German (sent as binary)', binary: true, bytes: Buffer.from(proseText(200_000, 3)) },
    { key: 'html_data1', description: 'HTML (utf8)', binary: false, codePoints: Array.from(htmlText(250_000, 4)) },
    { key: 'ooms', description: 'a PDF-like mix of compressed streams and text (binary)', binary: true, bytes: pdfLike },
  ];
  return dataSets;
}

/** Autobahn's sendOne: the next LEN units of the data, wrapping around at its end. */
class Slicer {
  private pointer = 0;
  constructor(private readonly data: TestData) {}

  next(length: number): Buffer {
    const units: ArrayLike<unknown> = this.data.binary ? this.data.bytes! : this.data.codePoints!;
    const total = units.length;
    const from = this.pointer;
    const to = (from + length) % total;
    this.pointer = to;
    if (this.data.binary) {
      const bytes = this.data.bytes!;
      return to > from ? bytes.subarray(from, to) : Buffer.concat([bytes.subarray(from), bytes.subarray(0, to)]);
    }
    const points = this.data.codePoints!;
    const text = to > from ? points.slice(from, to).join('') : points.slice(from).join('') + points.slice(0, to).join('');
    return Buffer.from(text, 'utf8');
  }
}

/** Autobahn's MSG_SIZES (payload length, auto-fragment size), with a miniature message count. */
const MSG_SIZES: Array<[number, number]> = [
  [16, 0],
  [64, 0],
  [256, 0],
  [1024, 0],
  [4096, 0],
  [8192, 0],
  [16384, 0],
  [32768, 0],
  [65536, 0],
  [131072, 0],
  [8192, 256],
  [16384, 256],
  [32768, 256],
  [65536, 256],
  [131072, 256],
  [131072, 1024],
  [131072, 4096],
  [131072, 32768],
];

/** The full size list runs on the first data set (JSON); the others run a spread of it. */
const MSG_SIZES_SHORT: Array<[number, number]> = MSG_SIZES.filter(([length, fragmentSize]) =>
  [16, 256, 4096, 16384, 131072].includes(length) && (fragmentSize === 0 || (length === 16384 && fragmentSize === 256) || (length === 131072 && fragmentSize !== 256 && fragmentSize !== 4096)),
);

function countFor(length: number): number {
  return length <= 1024 ? 12 : length <= 16384 ? 6 : 3;
}

// ---------------------------------------------------------------------------------------------
// Parameter sets (13.x): what our client offers and the peer answers; what the peer offers and
// how our server is configured to answer.

interface ParamSet {
  id: string;
  title: string;
  /** Our client's perMessageDeflate, the offer it must make, and the peer server's answer. */
  clientOptions: boolean | PerMessageDeflateOptions;
  clientOffer: string;
  serverResponse: string;
  /** The peer client's offer (Autobahn's offer strings) and our server's perMessageDeflate. */
  peerOffer: string;
  serverOptions: boolean | PerMessageDeflateOptions;
  /** Parameters our server's response must carry (beyond what the offer alone demands). */
  serverMustSend: Record<string, string | true>;
}

/** Autobahn's PerMessageDeflateOffer string: accept flags first, then the requests. */
function autobahnOffer(requestNoContextTakeover: boolean, requestMaxWindowBits: number): string {
  return (
    'permessage-deflate; client_no_context_takeover; client_max_window_bits' +
    (requestNoContextTakeover ? '; server_no_context_takeover' : '') +
    (requestMaxWindowBits !== 0 ? `; server_max_window_bits=${requestMaxWindowBits}` : '')
  );
}

const DEFAULT_SET: ParamSet = {
  id: '12',
  title: 'default offer, accepted as offered',
  clientOptions: true,
  clientOffer: 'permessage-deflate; client_max_window_bits',
  serverResponse: 'permessage-deflate',
  peerOffer: autobahnOffer(false, 0),
  serverOptions: true,
  serverMustSend: {},
};

const PARAM_SETS: ParamSet[] = [
  {
    id: '13.1',
    title: 'default offer / accepted as offered (context takeover, 15-bit windows)',
    clientOptions: { threshold: 0 },
    clientOffer: 'permessage-deflate; client_max_window_bits',
    serverResponse: 'permessage-deflate',
    peerOffer: autobahnOffer(false, 0),
    serverOptions: { threshold: 0 },
    serverMustSend: {},
  },
  {
    id: '13.2',
    title: 'server_no_context_takeover requested / client_no_context_takeover requested',
    clientOptions: { serverNoContextTakeover: true, threshold: 0 },
    clientOffer: 'permessage-deflate; server_no_context_takeover; client_max_window_bits',
    serverResponse: 'permessage-deflate; server_no_context_takeover; client_no_context_takeover',
    peerOffer: autobahnOffer(true, 0),
    serverOptions: { clientNoContextTakeover: true, threshold: 0 },
    serverMustSend: { server_no_context_takeover: true, client_no_context_takeover: true },
  },
  {
    id: '13.3',
    title: 'server_max_window_bits=9 requested / client_max_window_bits=9 requested',
    clientOptions: { serverMaxWindowBits: 9, threshold: 0 },
    clientOffer: 'permessage-deflate; server_max_window_bits=9; client_max_window_bits',
    serverResponse: 'permessage-deflate; server_max_window_bits=9; client_max_window_bits=9',
    peerOffer: autobahnOffer(false, 9),
    serverOptions: { clientMaxWindowBits: 9, threshold: 0 },
    serverMustSend: { server_max_window_bits: '9', client_max_window_bits: '9' },
  },
  {
    id: '13.4',
    title: 'server_max_window_bits=15 requested / client_max_window_bits=15 requested',
    clientOptions: { serverMaxWindowBits: 15, threshold: 0 },
    clientOffer: 'permessage-deflate; server_max_window_bits=15; client_max_window_bits',
    serverResponse: 'permessage-deflate; server_max_window_bits=15; client_max_window_bits=15',
    peerOffer: autobahnOffer(false, 15),
    serverOptions: { clientMaxWindowBits: 15, threshold: 0 },
    serverMustSend: { server_max_window_bits: '15', client_max_window_bits: '15' },
  },
  {
    id: '13.5',
    title: 'no context takeover and window 9, both ways',
    clientOptions: { serverNoContextTakeover: true, serverMaxWindowBits: 9, threshold: 0 },
    clientOffer: 'permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits',
    serverResponse: 'permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_no_context_takeover; client_max_window_bits=9',
    peerOffer: autobahnOffer(true, 9),
    serverOptions: { clientNoContextTakeover: true, clientMaxWindowBits: 9, threshold: 0 },
    serverMustSend: { server_no_context_takeover: true, server_max_window_bits: '9', client_no_context_takeover: true, client_max_window_bits: '9' },
  },
  {
    id: '13.6',
    title: 'no context takeover and window 15, both ways',
    clientOptions: { serverNoContextTakeover: true, serverMaxWindowBits: 15, threshold: 0 },
    clientOffer: 'permessage-deflate; server_no_context_takeover; server_max_window_bits=15; client_max_window_bits',
    serverResponse: 'permessage-deflate; server_no_context_takeover; server_max_window_bits=15; client_no_context_takeover; client_max_window_bits=15',
    peerOffer: autobahnOffer(true, 15),
    serverOptions: { clientNoContextTakeover: true, clientMaxWindowBits: 15, threshold: 0 },
    serverMustSend: { server_no_context_takeover: true, server_max_window_bits: '15', client_no_context_takeover: true, client_max_window_bits: '15' },
  },
  {
    id: '13.7',
    title: 'several offers, the first acceptable one wins / a default offer answered with every parameter',
    clientOptions: { threshold: 0 },
    clientOffer: 'permessage-deflate; client_max_window_bits',
    // RFC 7692 lets a server add server_no_context_takeover and server_max_window_bits unasked.
    serverResponse: 'permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_no_context_takeover; client_max_window_bits=9',
    peerOffer: [autobahnOffer(true, 9), autobahnOffer(true, 0), autobahnOffer(false, 0)].join(', '),
    serverOptions: { clientNoContextTakeover: true, clientMaxWindowBits: 9, threshold: 0 },
    // Only the first offer asks for server_max_window_bits=9: answering it proves it was chosen.
    serverMustSend: { server_no_context_takeover: true, server_max_window_bits: '9', client_no_context_takeover: true, client_max_window_bits: '9' },
  },
  {
    id: '13.8',
    title: 'no context takeover and window 8, both ways',
    clientOptions: { serverNoContextTakeover: true, serverMaxWindowBits: 8, clientMaxWindowBits: 8, threshold: 0 },
    clientOffer: 'permessage-deflate; server_no_context_takeover; server_max_window_bits=8; client_max_window_bits=8',
    serverResponse: 'permessage-deflate; server_no_context_takeover; server_max_window_bits=8; client_no_context_takeover; client_max_window_bits=8',
    peerOffer: autobahnOffer(true, 8),
    serverOptions: { clientNoContextTakeover: true, clientMaxWindowBits: 8, threshold: 0 },
    serverMustSend: { server_no_context_takeover: true, server_max_window_bits: '8', client_no_context_takeover: true, client_max_window_bits: '8' },
  },
  {
    id: '13.9',
    title: 'window 8 with context takeover, both ways',
    clientOptions: { serverMaxWindowBits: 8, threshold: 0 },
    clientOffer: 'permessage-deflate; server_max_window_bits=8; client_max_window_bits',
    serverResponse: 'permessage-deflate; server_max_window_bits=8; client_max_window_bits=8',
    peerOffer: 'permessage-deflate; client_max_window_bits; server_max_window_bits=8',
    serverOptions: { clientMaxWindowBits: 8, threshold: 0 },
    serverMustSend: { server_max_window_bits: '8', client_max_window_bits: '8' },
  },
];

const SIZES_13: Array<[number, number]> = [
  [16, 0],
  [256, 0],
  [4096, 0],
  [65536, 0],
  [131072, 0],
  [65536, 256],
  [131072, 4096],
];

// ---------------------------------------------------------------------------------------------
// The two roles.

interface CaseConnection {
  peer: DeflateEchoPeer;
  ourClosed: Promise<WebSocketClosedInfo>;
}

interface Endpoint {
  open(set: ParamSet): Promise<CaseConnection>;
  stop(): Promise<void>;
}

/** Peers of the running case: a failed case must not leave its connection to the next one. */
const livePeers = new Set<RawPeer>();

/** Our client (echoing) against the peer as a server that answers as `set` says. */
class ClientEndpoint implements Endpoint {
  private server: RawServer | null = null;
  private response = '';

  private async raw(): Promise<RawServer> {
    this.server ??= await startRawServer({ respond: (request: RawRequest) => switchingProtocols(request, [`Sec-WebSocket-Extensions: ${this.response}`]) });
    return this.server;
  }

  async open(set: ParamSet): Promise<CaseConnection> {
    const server = await this.raw();
    this.response = set.serverResponse;
    const wss = new WebSocketStream(server.url, { perMessageDeflate: set.clientOptions });
    const [{ peer, request }, opened] = await Promise.all([server.accept(), wss.opened]);
    livePeers.add(peer);
    const offer = request.headers['sec-websocket-extensions'];
    expect(offer, 'our client offer').to.equal(set.clientOffer);
    expect(opened.extensions, 'opened.extensions').to.equal(set.serverResponse);
    opened.readable.pipeTo(opened.writable).catch(() => {});
    // The peer is the server: it sends with the server_* parameters it answered with.
    const response = parseExtensionHeader(set.serverResponse)[0]!.params;
    const offered = parseExtensionHeader(offer)[0]!.params;
    const offeredClientBits = offered.get('client_max_window_bits');
    const send: DirectionParams = { noContextTakeover: response.has('server_no_context_takeover'), windowBits: Number(response.get('server_max_window_bits') ?? 15) };
    const receive: DirectionParams = {
      noContextTakeover: response.has('client_no_context_takeover'),
      windowBits: Number(response.get('client_max_window_bits') ?? (typeof offeredClientBits === 'string' ? offeredClientBits : 15)),
    };
    return { peer: new DeflateEchoPeer(peer, false, send, receive), ourClosed: wss.closed };
  }

  async stop(): Promise<void> {
    await this.server?.close();
  }
}

/** Our server (echoing), configured as `set` says, against the peer as a client offering as `set` says. */
class ServerEndpoint implements Endpoint {
  private readonly servers = new Map<string, { server: WebSocketStreamServer; port: number; reader: ReadableStreamDefaultReader<ServerWebSocketStream> }>();

  private async serverFor(options: boolean | PerMessageDeflateOptions): Promise<{ port: number; reader: ReadableStreamDefaultReader<ServerWebSocketStream> }> {
    const key = JSON.stringify(options);
    let entry = this.servers.get(key);
    if (entry === undefined) {
      const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', perMessageDeflate: options });
      await server.listening;
      entry = { server, port: (server.address() as AddressInfo).port, reader: server.connections.getReader() };
      this.servers.set(key, entry);
    }
    return entry;
  }

  async open(set: ParamSet): Promise<CaseConnection> {
    const { port, reader } = await this.serverFor(set.serverOptions);
    const [{ peer, headers }, { value: stream }] = await Promise.all([rawClient(port, set.peerOffer), reader.read()]);
    livePeers.add(peer);
    const response = headers['sec-websocket-extensions'];
    const opened = await stream!.opened;
    expect(opened.extensions, 'opened.extensions').to.equal(response ?? '');
    opened.readable.pipeTo(opened.writable).catch(() => {});
    // The peer checks the response as an RFC 7692 client would, and what our server must request.
    const { send, receive } = clientSideOf(set.peerOffer, response);
    const params = parseExtensionHeader(response)[0]!.params;
    for (const [name, value] of Object.entries(set.serverMustSend)) {
      expect(params.get(name), `${name} in our server's response ${JSON.stringify(response)}`).to.equal(value);
    }
    return { peer: new DeflateEchoPeer(peer, true, send, receive), ourClosed: stream!.closed };
  }

  async stop(): Promise<void> {
    for (const { server, reader } of this.servers.values()) {
      reader.releaseLock();
      await server.close();
    }
    this.servers.clear();
  }
}

async function finish(connection: CaseConnection): Promise<void> {
  await connection.peer.closeNormally();
  expect(await connection.ourClosed).to.deep.equal({ closeCode: 1000, reason: '' });
}

/** A 12.x/13.x case: COUNT messages of LEN units cut from the data, each echoed in turn. */
async function echoCase(endpoint: Endpoint, set: ParamSet, data: TestData, length: number, fragmentSize: number): Promise<void> {
  const connection = await endpoint.open(set);
  const slicer = new Slicer(data);
  const count = countFor(length);
  // The 13.x sets use threshold 0 on our side; the default set, the default threshold of 1024 bytes.
  const threshold = set === DEFAULT_SET ? 1024 : 0;
  for (let i = 0; i < count; i++) {
    const message = slicer.next(length);
    const echo = await connection.peer.echo(message, data.binary, fragmentSize);
    expect(echo.compressed, `echo of ${message.length} bytes compressed (threshold ${threshold})`).to.equal(message.length >= threshold);
  }
  await finish(connection);
}

/** Autobahn's 9.7/9.8 shape: many messages of one size, pipelined, then all echoes in order. */
async function manyMessages(endpoint: Endpoint, binary: boolean, size: number, count: number): Promise<void> {
  const connection = await endpoint.open(DEFAULT_SET);
  const messages = Array.from({ length: count }, (_, i) => (binary ? pseudoRandom(size, i + 1) : Buffer.from(`${i}|`.padEnd(size, '*').slice(0, size))));
  for (const message of messages) connection.peer.sendMessage(message, binary);
  for (const [index, message] of messages.entries()) {
    const got = await connection.peer.nextMessage();
    expect(got.binary, `message ${index} type`).to.equal(binary);
    expect(got.data.equals(message), `message ${index} of ${count} comes back intact and in order`).to.equal(true);
  }
  await finish(connection);
}

/** 9.1/9.2: one large compressed message (Autobahn's repeating payload patterns). */
async function largeMessage(endpoint: Endpoint, binary: boolean, size: number, fragmentSize = 0): Promise<void> {
  const pattern = binary ? Buffer.from([0x00, 0xfe, 0x23, 0xfa, 0xf0]) : Buffer.from('BAsd7&jh23');
  const message = Buffer.alloc(size, pattern);
  const connection = await endpoint.open(DEFAULT_SET);
  const echo = await connection.peer.echo(message, binary, fragmentSize);
  expect(echo.compressed, 'the echo is compressed').to.equal(true);
  await finish(connection);
}

/** 9.5/9.6: one compressed 1 MiB message whose frame is written in chops of `chop` bytes. */
const choppedMessages = new Map<boolean, Buffer>();

async function choppedMessage(endpoint: Endpoint, binary: boolean, chop: number): Promise<void> {
  let message = choppedMessages.get(binary);
  if (message === undefined) {
    // Autobahn's 9.5/9.6 payloads repeat one short pattern; here a less regular 1 MiB, so the
    // compressed frame is long enough to be written in many chops.
    message = binary ? Buffer.concat([pseudoRandom(64 * 1024, 5), Buffer.alloc(1024 * 1024 - 64 * 1024, 0xfe)]) : Buffer.from(proseText(1024 * 1024, 6));
    choppedMessages.set(binary, message);
  }
  const connection = await endpoint.open(DEFAULT_SET);
  const raw = connection.peer.peer;
  const bytes = frameOf(connection.peer, message, binary);
  raw.socket.setNoDelay(true);
  for (let offset = 0; offset < bytes.length; offset += chop) raw.sendRaw(bytes.subarray(offset, offset + chop));
  const got = await connection.peer.nextMessage();
  expect(got.binary).to.equal(binary);
  expect(createHash('sha1').update(got.data).digest('hex'), 'the echo').to.equal(createHash('sha1').update(message).digest('hex'));
  await finish(connection);
}

/** The bytes sendMessage would write, captured (so they can be chopped). */
function frameOf(peer: DeflateEchoPeer, message: Buffer, binary: boolean): Buffer {
  const raw = peer.peer;
  const original = raw.sendRaw.bind(raw);
  let captured = Buffer.alloc(0);
  raw.sendRaw = (bytes: Buffer | Uint8Array) => {
    captured = Buffer.from(bytes);
  };
  try {
    peer.sendMessage(message, binary);
  } finally {
    raw.sendRaw = original;
  }
  return captured;
}

// ---------------------------------------------------------------------------------------------

describe('conformance: permessage-deflate (Autobahn|Testsuite 12.x, 13.x and 9.x shapes, scripted peer)', function () {
  this.timeout(20_000);

  for (const role of ['client', 'server'] as Role[]) {
    describe(`our ${role}`, function () {
      const endpoint: Endpoint = role === 'client' ? new ClientEndpoint() : new ServerEndpoint();

      afterEach(function () {
        for (const peer of livePeers) peer.socket.destroy();
        livePeers.clear();
      });

      after(async function () {
        await endpoint.stop();
      });

      describe(`12.x compressed echo, default offer [${role}]`, function () {
        for (const [j, data] of testData().entries()) {
          describe(`12.${j + 1} ${data.description} [${role}]`, function () {
            for (const [length, fragmentSize] of j === 0 ? MSG_SIZES : MSG_SIZES_SHORT) {
              const i = MSG_SIZES.findIndex(([l, f]) => l === length && f === fragmentSize);
              it(`12.${j + 1}.${i + 1} ${countFor(length)} messages of ${length} ${data.binary ? 'bytes' : 'characters'}${fragmentSize > 0 ? `, frames of ${fragmentSize}` : ''} [${role}]`, async function () {
                await echoCase(endpoint, DEFAULT_SET, data, length, fragmentSize);
              });
            }
          });
        }
      });

      describe(`13.x compressed echo, each parameter set [${role}]`, function () {
        for (const set of PARAM_SETS) {
          describe(`${set.id} ${set.title} [${role}]`, function () {
            it(`${set.id}.0 negotiation: ${role === 'client' ? `offers ${JSON.stringify(set.clientOffer)}, accepts ${JSON.stringify(set.serverResponse)}` : `answers ${JSON.stringify(set.peerOffer)}`} [${role}]`, async function () {
              const connection = await endpoint.open(set);
              await finish(connection);
            });
            for (const [i, [length, fragmentSize]] of SIZES_13.entries()) {
              it(`${set.id}.${i + 1} ${countFor(length)} messages of ${length} characters${fragmentSize > 0 ? `, frames of ${fragmentSize}` : ''} [${role}]`, async function () {
                await echoCase(endpoint, set, testData()[0]!, length, fragmentSize);
              });
            }
            it(`${set.id}.r repeated identical messages honour the context takeover agreement [${role}]`, async function () {
              // A sender that kept its context against the agreement refers to the previous copy,
              // and the peer's fresh inflater refuses that; one that honours it is read fine.
              const connection = await endpoint.open(set);
              const message = Buffer.from(jsonText(3000, 9));
              for (let i = 0; i < 4; i++) await connection.peer.echo(message, false);
              await finish(connection);
            });
          });
        }
      });

      describe(`9.x shapes over a compressed connection [${role}]`, function () {
        for (const [i, size] of [64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024, 16 * 1024 * 1024].entries()) {
          it(`9.1.${i + 1} text message of ${size / 1024} KiB [${role}]`, async function () {
            await largeMessage(endpoint, false, size);
          });
          it(`9.2.${i + 1} binary message of ${size / 1024} KiB [${role}]`, async function () {
            await largeMessage(endpoint, true, size);
          });
        }
        for (const [i, fragmentSize] of [64, 1024, 65536].entries()) {
          it(`9.3.${i + 1} 4 MiB text, compressed payload in frames of ${fragmentSize} [${role}]`, async function () {
            await largeMessage(endpoint, false, 4 * 1024 * 1024, fragmentSize);
          });
          it(`9.4.${i + 1} 4 MiB binary, compressed payload in frames of ${fragmentSize} [${role}]`, async function () {
            await largeMessage(endpoint, true, 4 * 1024 * 1024, fragmentSize);
          });
        }
        for (const [i, chop] of [64, 256, 2048].entries()) {
          it(`9.5.${i + 1} 1 Mi characters of text written in chops of ${chop} bytes [${role}]`, async function () {
            await choppedMessage(endpoint, false, chop);
          });
          it(`9.6.${i + 1} 1 MiB binary written in chops of ${chop} bytes [${role}]`, async function () {
            await choppedMessage(endpoint, true, chop);
          });
        }
        for (const [i, size] of [0, 16, 64, 256, 1024, 4096].entries()) {
          it(`9.7.${i + 1} 100 text messages of ${size} bytes, pipelined [${role}]`, async function () {
            await manyMessages(endpoint, false, size, 100);
          });
          it(`9.8.${i + 1} 100 binary messages of ${size} bytes, pipelined [${role}]`, async function () {
            await manyMessages(endpoint, true, size, 100);
          });
        }
      });
    });
  }
});
