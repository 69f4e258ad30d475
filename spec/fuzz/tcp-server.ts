// Property 7: a real WebSocketStreamServer (node:http's parser, then checkUpgradeRequest) fed
// arbitrary request heads over TCP. It must never crash the process, close every such
// connection, and keep serving a normal client afterwards. Slow (a few ms per input): it runs a
// bounded number of times in npm test, and in run.ts only when asked (--tcp N).
import fc from 'fast-check';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { WebSocketStream, WebSocketStreamServer, type ServerWebSocketStream } from '../../lib/index.js';

const SAMPLE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const HTTP_CHARS = [...'GETHTP/1.0 :;,-\t\r\n\r\n\0aAzZ=?#%"\\é\x7f\x01'];
const httpString = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(...HTTP_CHARS), maxLength });

/** A header's value: mostly one of `valid` (the first one makes a correct upgrade), else missing or arbitrary. */
const value = (valid: readonly string[]): fc.Arbitrary<string | null> =>
  fc.oneof(
    { weight: 30, arbitrary: fc.constant(valid[0]!) },
    { weight: 4, arbitrary: fc.constantFrom(...valid) },
    { weight: 1, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: httpString(24) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 24 }) },
  );

export interface TcpInput {
  bytes: Uint8Array;
  /** How the fuzzing client leaves: half-close (FIN) or reset right after writing. */
  ending: 'end' | 'destroy';
}

/** Request heads: near-valid upgrades with any part broken, or plain garbage; then maybe frames. */
export const tcpInputArb: fc.Arbitrary<TcpInput> = fc.record({
  bytes: fc.oneof(
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }) },
    {
      weight: 4,
      arbitrary: fc
        .record({
          method: fc.oneof({ weight: 10, arbitrary: fc.constant('GET') }, { weight: 1, arbitrary: fc.constantFrom('POST', 'CONNECT', 'OPTIONS', 'get', '') }, { weight: 1, arbitrary: httpString(8) }),
          target: fc.oneof({ weight: 10, arbitrary: fc.constant('/') }, { weight: 1, arbitrary: fc.constantFrom('*', 'http://x/', '/a?b#c', '//', '') }, { weight: 1, arbitrary: httpString(12) }),
          version: fc.oneof({ weight: 10, arbitrary: fc.constant('HTTP/1.1') }, { weight: 1, arbitrary: fc.constantFrom('HTTP/1.0', 'HTTP/2.0', 'HTTP/0.9', 'http/1.1', '') }, { weight: 1, arbitrary: httpString(10) }),
          host: value(['localhost', '127.0.0.1']),
          upgrade: value(['websocket', 'WebSocket', 'h2c']),
          connection: value(['Upgrade', 'keep-alive, Upgrade', 'close']),
          key: value([SAMPLE_KEY, 'AAAAAAAAAAAAAAAAAAAAAA==', 'short']),
          version13: value(['13', '8', '13, 8']),
          protocol: fc.option(value(['chat', 'chat, superchat', 'a b']), { nil: null }),
          extensions: fc.option(value(['permessage-deflate; client_max_window_bits', 'permessage-deflate; server_max_window_bits=7', 'x;;']), { nil: null }),
          extra: fc.oneof(
            { weight: 3, arbitrary: fc.constant<Array<[string, string]>>([]) },
            { weight: 1, arbitrary: fc.array(fc.tuple(fc.oneof(fc.constantFrom('Content-Length', 'Transfer-Encoding', 'Expect', 'Host', 'Upgrade', 'Origin'), httpString(10)), httpString(20)), { maxLength: 3 }) },
          ),
          lineEnd: fc.oneof({ weight: 8, arbitrary: fc.constant('\r\n') }, { weight: 1, arbitrary: fc.constant('\n') }),
          terminator: fc.oneof({ weight: 8, arbitrary: fc.constant('\r\n\r\n') }, { weight: 1, arbitrary: fc.constantFrom('\r\n', '', '\n\n') }),
          after: fc.oneof(
            { weight: 2, arbitrary: fc.constant(new Uint8Array(0)) },
            // A masked text frame "hi", a masked close frame, or garbage.
            { weight: 1, arbitrary: fc.constantFrom(Uint8Array.from([0x81, 0x82, 1, 2, 3, 4, 0x69, 0x6b]), Uint8Array.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8])) },
            { weight: 1, arbitrary: fc.uint8Array({ maxLength: 32 }) },
          ),
          flips: fc.oneof(
            { weight: 3, arbitrary: fc.constant<Array<{ pos: number; bit: number }>>([]) },
            { weight: 1, arbitrary: fc.array(fc.record({ pos: fc.nat(), bit: fc.nat({ max: 7 }) }), { minLength: 1, maxLength: 2 }) },
          ),
        })
        .map((r) => {
          const lines = [`${r.method} ${r.target} ${r.version}`];
          const named: Array<[string, string | null]> = [
            ['Host', r.host],
            ['Upgrade', r.upgrade],
            ['Connection', r.connection],
            ['Sec-WebSocket-Key', r.key],
            ['Sec-WebSocket-Version', r.version13],
            ['Sec-WebSocket-Protocol', r.protocol],
            ['Sec-WebSocket-Extensions', r.extensions],
          ];
          for (const [name, v] of named) if (v !== null) lines.push(`${name}: ${v}`);
          for (const [name, v] of r.extra) lines.push(`${name}: ${v}`);
          const bytes = Buffer.concat([Buffer.from(lines.join(r.lineEnd) + r.terminator, 'latin1'), r.after]);
          for (const flip of r.flips) if (bytes.length > 0) bytes[flip.pos % bytes.length] = bytes[flip.pos % bytes.length]! ^ (1 << flip.bit);
          return bytes as Uint8Array;
        }),
    },
  ),
  ending: fc.constantFrom<TcpInput['ending']>('end', 'end', 'end', 'destroy'),
});

/** Milliseconds the server gets to close a fuzzing connection after the client's FIN. */
const CLOSE_DEADLINE = 5_000;

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** Sends the bytes, leaves as asked, and resolves once the server closed the connection. */
function exchange(port: number, input: TcpInput): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(received).toString('latin1'));
    });
    socket.on('connect', () => {
      socket.write(input.bytes);
      if (input.ending === 'destroy') socket.destroy();
      else socket.end();
      timer = setTimeout(() => {
        socket.destroy();
        resolve(`__timeout__${Buffer.concat(received).toString('latin1')}`);
      }, CLOSE_DEADLINE);
    });
  });
}

/** The server under fuzz: it echoes every connection it accepts. */
export class TcpFuzzFixture {
  readonly server: WebSocketStreamServer;
  private loop: Promise<void> = Promise.resolve();
  private probes = 0;

  private constructor() {
    this.server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', handshakeTimeout: 2_000, closeTimeout: 1_000, perMessageDeflate: true });
  }

  static async start(): Promise<TcpFuzzFixture> {
    const fixture = new TcpFuzzFixture();
    await fixture.server.listening;
    fixture.loop = (async () => {
      for await (const stream of fixture.server.connections as unknown as AsyncIterable<ServerWebSocketStream>) void echo(stream);
    })();
    return fixture;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** A normal client: opens, sends a message, gets it echoed, closes cleanly. */
  async probe(): Promise<void> {
    const text = `probe ${++this.probes}`;
    const ws = new WebSocketStream(`ws://127.0.0.1:${this.port}/`, { perMessageDeflate: this.probes % 2 === 0 });
    const { readable, writable } = await withDeadline(ws.opened, 5_000, 'normal client: opened');
    const writer = writable.getWriter();
    const reader = readable.getReader();
    await withDeadline(writer.write(text), 5_000, 'normal client: write');
    const { value } = await withDeadline(reader.read(), 5_000, 'normal client: read');
    if (value !== text) throw new Error(`normal client: sent ${JSON.stringify(text)}, got ${JSON.stringify(value)} back`);
    ws.close();
    await withDeadline(ws.closed, 5_000, 'normal client: closed');
  }

  /** Waits until the server counts no connection or handshake. */
  async settled(ms = 3_000): Promise<void> {
    const start = Date.now();
    while (this.server.connectionCount > 0) {
      if (Date.now() - start > ms) throw new Error(`the server still counts ${this.server.connectionCount} connections ${ms} ms after every client left`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** Every `probeEvery` inputs (and after the last), a normal client must be served. */
  property(probeEvery = 1): fc.IAsyncPropertyWithHooks<[TcpInput]> {
    let n = 0;
    return fc.asyncProperty(tcpInputArb, async (input) => {
      const response = await exchange(this.port, input);
      if (response.startsWith('__timeout__')) {
        throw new Error(`the server kept the connection open ${CLOSE_DEADLINE} ms after the client's FIN; it sent ${JSON.stringify(response.slice(11, 300))}`);
      }
      if (response !== '' && !/^HTTP\/1\.1 \d{3} /.test(response)) throw new Error(`the server answered with something other than an HTTP/1.1 response: ${JSON.stringify(response.slice(0, 200))}`);
      if (++n % probeEvery === 0) {
        await this.probe();
        await this.settled();
      }
    });
  }

  async stop(): Promise<void> {
    await this.server.close();
    await this.loop;
  }
}

async function echo(stream: ServerWebSocketStream): Promise<void> {
  try {
    const { readable, writable } = await stream.opened;
    await readable.pipeTo(writable);
  } catch {
    // Fuzzing clients leave abruptly: errors are expected here.
  }
}
