// Our client through a real SOCKS5 proxy: Debian's Dante (danted), without authentication and with
// the username method (RFC 1929), to our WebSocketStreamServer over ws: and wss:. How danted is
// run (its own mount namespace, a throwaway user) is told in ./dante.ts.
import { expect } from 'chai';
import dns from 'node:dns';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { HandshakeError } from '../../../lib/handshake/client.js';
import { WebSocketError, WebSocketStream, WebSocketStreamServer, type ServerWebSocketStream, type WebSocketStreamOptions } from '../../../lib/index.js';
import { testCert, testKey } from '../../helpers/raw-peer.js';
import { DANTE_PASSWORD, DANTE_USER, startDante, type Dante } from './dante.js';

interface Target {
  port: number;
  /** Where each accepted connection came from, and its Host header. */
  accepted: Array<{ remoteAddress: string | undefined; host: string | undefined }>;
}

describe('SOCKS5 interop: our client through Dante (dante-server)', function () {
  this.timeout(60_000);
  let cleanups: Array<() => unknown> = [];

  afterEach(async () => {
    const pending = cleanups;
    cleanups = [];
    while (pending.length > 0) await pending.pop()!();
  });

  async function dante(method: 'none' | 'username', blockedPort?: number): Promise<Dante> {
    const proxy = await startDante(blockedPort === undefined ? { method } : { method, blockedPort });
    cleanups.push(() => proxy.stop());
    return proxy;
  }

  /** Our echo server on `host` (127.0.0.1 unless told), with TLS when `secure`. */
  async function target(secure: boolean, host = '127.0.0.1'): Promise<Target> {
    const server = new WebSocketStreamServer({ port: 0, host, ...(secure ? { tls: { cert: testCert, key: testKey } } : {}) });
    cleanups.push(() => server.close());
    await server.listening;
    const accepted: Target['accepted'] = [];
    void (async () => {
      for await (const peer of server.connections as unknown as AsyncIterable<ServerWebSocketStream>) {
        accepted.push({ remoteAddress: peer.request.remoteAddress, host: peer.request.headers.host });
        peer.opened.then(({ readable, writable }) => readable.pipeTo(writable)).catch(() => {});
      }
    })();
    return { port: (server.address() as AddressInfo).port, accepted };
  }

  function connect(url: string, options: WebSocketStreamOptions): WebSocketStream {
    const stream = new WebSocketStream(url, options);
    cleanups.push(async () => {
      stream.close();
      await stream.closed.catch(() => {});
    });
    return stream;
  }

  async function echoThrough(stream: WebSocketStream): Promise<void> {
    const { readable, writable } = await stream.opened;
    const reader = readable.getReader();
    const writer = writable.getWriter();
    const big = new Uint8Array(256 * 1024).map((_, index) => index % 251);
    await writer.write('through dante');
    expect((await reader.read()).value).to.equal('through dante');
    await writer.write(big);
    expect(Buffer.from((await reader.read()).value as Uint8Array).equals(Buffer.from(big))).to.equal(true);
    stream.close({ closeCode: 1000, reason: 'done' });
    expect(await stream.closed).to.deep.equal({ closeCode: 1000, reason: 'done' });
  }

  async function failure(stream: WebSocketStream): Promise<WebSocketError> {
    const error = (await stream.opened.then(
      () => expect.fail('the handshake succeeded'),
      (reason: unknown) => reason,
    )) as WebSocketError;
    expect(error).to.be.an.instanceOf(WebSocketError);
    await stream.closed.catch(() => {});
    return error;
  }

  const credentials = `${encodeURIComponent(DANTE_USER)}:${encodeURIComponent(DANTE_PASSWORD)}`;

  describe('without authentication', () => {
    it('ws: with socks5h (Dante resolves localhost)', async () => {
      const proxy = await dante('none');
      const server = await target(false);
      await echoThrough(connect(`ws://localhost:${server.port}/`, { proxy: `socks5h://127.0.0.1:${proxy.port}` }));
      // The connection reached our server from Dante, with the URL's host in Host.
      expect(server.accepted).to.deep.equal([{ remoteAddress: '127.0.0.1', host: `localhost:${server.port}` }]);
      // Dante's own log of the session it passed, to our server's port.
      expect(proxy.log).to.match(new RegExp(`pass\\(\\d+\\): tcp/connect \\[: .* 127\\.0\\.0\\.1\\.${server.port}\\n`));
    });

    it('wss: with socks5h, TLS end to end through Dante', async () => {
      const proxy = await dante('none');
      const server = await target(true);
      await echoThrough(connect(`wss://localhost:${server.port}/`, { proxy: `socks5h://127.0.0.1:${proxy.port}`, tls: { ca: testCert } }));
      expect(server.accepted).to.have.length(1);
    });

    it('ws: with socks5, the client resolving localhost to the address it sends', async () => {
      const proxy = await dante('none');
      const { address } = await dns.promises.lookup('localhost');
      const server = await target(false, address);
      await echoThrough(connect(`ws://localhost:${server.port}/`, { proxy: `socks5://127.0.0.1:${proxy.port}` }));
      expect(server.accepted[0]!.host).to.equal(`localhost:${server.port}`);
    });

    it('an IPv6 literal target (ATYP 4)', async () => {
      const proxy = await dante('none');
      const server = await target(false, '::1');
      await echoThrough(connect(`ws://[::1]:${server.port}/`, { proxy: `socks5://127.0.0.1:${proxy.port}` }));
      expect(server.accepted[0]!.remoteAddress).to.equal('::1');
    });

    it("Dante's refusals: 0x05 for a closed port, 0x02 for a port its rules block, 0x04 for a name it cannot resolve", async () => {
      const closed = await freePort();
      const blocked = await freePort();
      const proxy = await dante('none', blocked);
      const origin = `socks5h://127.0.0.1:${proxy.port}`;
      // A 64-byte label cannot go into a DNS query: Dante's resolver fails without sending one.
      const unresolvable = `${'x'.repeat(64)}.example`;
      const cases: Array<[string, number, string]> = [
        [`ws://127.0.0.1:${closed}/`, 0x05, 'connection refused'],
        [`ws://127.0.0.1:${blocked}/`, 0x02, 'connection not allowed by ruleset'],
        [`ws://${unresolvable}/`, 0x04, 'host unreachable'],
      ];
      for (const [url, code, meaning] of cases) {
        const error = await failure(connect(url, { proxy: origin }));
        const cause = error.cause as HandshakeError;
        expect(cause, url).to.be.an.instanceOf(HandshakeError);
        expect(cause.socksReply, url).to.equal(code);
        expect(cause.proxy, url).to.equal(origin);
        expect(cause.message, url).to.include(`${meaning} (SOCKS5 reply 0x0${code})`);
      }
    });
  });

  describe('with the username method (RFC 1929)', () => {
    it('ws: and wss: with the right credentials, percent-encoded in the URL', async () => {
      const proxy = await dante('username');
      const plain = await target(false);
      const secure = await target(true);
      await echoThrough(connect(`ws://127.0.0.1:${plain.port}/`, { proxy: `socks5h://${credentials}@127.0.0.1:${proxy.port}` }));
      await echoThrough(connect(`wss://localhost:${secure.port}/`, { proxy: `socks5h://${credentials}@127.0.0.1:${proxy.port}`, tls: { ca: testCert } }));
      // Dante logs the authenticated user of each session it passed.
      expect(proxy.log.match(new RegExp(`username%${DANTE_USER}@127\\.0\\.0\\.1`, 'g'))).to.have.length.of.at.least(2);
    });

    it('without credentials: no acceptable method (0xFF), with the hint', async () => {
      const proxy = await dante('username');
      const error = await failure(connect('ws://127.0.0.1:9/', { proxy: `socks5h://127.0.0.1:${proxy.port}` }));
      expect((error.cause as HandshakeError).message).to.include('requires authentication');
    });

    it('a wrong password: refused, and never echoed', async () => {
      const proxy = await dante('username');
      const wrong = 'not the password';
      const error = await failure(connect('ws://127.0.0.1:9/', { proxy: `socks5h://${DANTE_USER}:${encodeURIComponent(wrong)}@127.0.0.1:${proxy.port}` }));
      const cause = error.cause as HandshakeError;
      expect(cause.message).to.equal(`proxy socks5h://127.0.0.1:${proxy.port} refused the credentials (username/password status 0x01)`);
      for (const shown of [error.message, cause.message, String(error.stack), String(cause.stack)]) {
        expect(shown).to.not.include(wrong);
        expect(shown).to.not.include(encodeURIComponent(wrong));
      }
    });
  });
});

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
