// The client through SOCKS5 proxies (RFC 1928, RFC 1929): a scripted SOCKS5 server on 127.0.0.1
// (spec/helpers/socks-server.ts) in front of a real `ws` server, for every reply code, every
// malformed reply and every way a proxy can stop; then the negotiation state machine on its own,
// and the proxy URL rules. spec/system/socks.spec.ts runs the client against Dante.
import { expect } from 'chai';
import dns from 'node:dns';
import net from 'node:net';
import { inspect } from 'node:util';
import { HandshakeError } from '../../lib/handshake/client.js';
import { parseProxyUrl, proxyFromEnvironment, toProxySetting } from '../../lib/handshake/proxy.js';
import { encodeSocksAddress, ipv6Bytes, Socks5Negotiation, SocksError, SocksProxyEndpoint, SOCKS_REPLY_MESSAGES } from '../../lib/handshake/socks.js';
import { WebSocketStream } from '../../lib/index.js';
import { expectPlainTypeError, expectThrowsTypeError, rejectionOf, thrownBy } from '../helpers/facade.js';
import {
  cleanups,
  closedSocket,
  connect,
  echoThrough,
  handshakeFailure,
  isolateProxyEnvironment,
  runCleanups,
  startTarget,
  withHandshakeTimer,
} from '../helpers/proxy-peers.js';
import { testCert } from '../helpers/raw-peer.js';
import { startSocksServer, type ScriptedSocksOptions, type ScriptedSocksServer } from '../helpers/socks-server.js';

async function socksServer(options: ScriptedSocksOptions = {}): Promise<ScriptedSocksServer> {
  const server = await startSocksServer(options);
  cleanups.push(() => server.close());
  return server;
}

/** The HandshakeError behind a failed handshake through `proxy`, which it names. */
async function proxyFailure(stream: WebSocketStream, proxyOrigin: string): Promise<HandshakeError> {
  const error = await handshakeFailure(stream);
  const cause = error.cause as HandshakeError;
  expect(cause).to.be.an.instanceOf(HandshakeError);
  expect(cause.proxy).to.equal(proxyOrigin);
  expect(error.message).to.include(cause.message);
  return cause;
}

/** Everything a user could print of an error, its causes included. */
function everythingShownOf(error: unknown): string {
  const parts: string[] = [inspect(error, { depth: 10, showHidden: true })];
  for (let current: unknown = error; current instanceof Error; current = current.cause) {
    parts.push(String(current), current.message, current.stack ?? '', JSON.stringify(current));
  }
  return parts.join('\n');
}

const USER = 'üser name';
const PASSWORD = 'p@ss:wörd/hunter2';

describe('client through a SOCKS5 proxy', () => {
  afterEach(runCleanups);

  describe('tunnels', () => {
    it('socks5h: sends the host name for the proxy to resolve, then the handshake and messages go through', async () => {
      const target = await startTarget();
      const proxy = await socksServer();
      const stream = connect(`ws://echo.socks-test.invalid:${target.port}/chat?room=1`, { proxy: proxy.url('socks5h') });
      await echoThrough(stream);
      expect(proxy.sessions).to.have.length(1);
      const session = proxy.sessions[0]!;
      // RFC 1928 §3: version 5, one method, "no authentication required".
      expect(session.methods).to.deep.equal([0x00]);
      expect(session.auth).to.equal(null);
      // §4: CONNECT with a domain name (ATYP 3).
      expect(session.request).to.deep.equal({ version: 5, command: 1, addressType: 3, host: 'echo.socks-test.invalid', port: target.port });
      const tunnelled = Buffer.concat(session.tunnelled).toString('latin1');
      expect(tunnelled.startsWith('GET /chat?room=1 HTTP/1.1\r\n')).to.equal(true);
      expect(target.upgrades).to.deep.equal([{ host: `echo.socks-test.invalid:${target.port}`, servername: undefined }]);
    });

    it('socks5: resolves the host name itself and sends the address', async () => {
      const target = await startTarget();
      const proxy = await socksServer();
      await echoThrough(connect(`ws://localhost:${target.port}/`, { proxy: proxy.url('socks5') }));
      const { address, family } = await dns.promises.lookup('localhost');
      expect(proxy.sessions[0]!.request).to.deep.include({ addressType: family === 4 ? 1 : 4, host: address, port: target.port });
      // The Host header still names the host of the URL.
      expect(target.upgrades[0]!.host).to.equal(`localhost:${target.port}`);
    });

    for (const scheme of ['socks5', 'socks5h'] as const) {
      it(`${scheme}: sends IPv4 and IPv6 literals as addresses (ATYP 1 and 4)`, async () => {
        const target = await startTarget();
        const proxy = await socksServer();
        await echoThrough(connect(`ws://127.0.0.1:${target.port}/`, { proxy: proxy.url(scheme) }));
        await echoThrough(connect(`ws://[::1]:${target.port}/`, { proxy: proxy.url(scheme) }));
        expect(proxy.sessions.map((session) => session.request)).to.deep.equal([
          { version: 5, command: 1, addressType: 1, host: '127.0.0.1', port: target.port },
          { version: 5, command: 1, addressType: 4, host: '::1', port: target.port },
        ]);
        expect(target.upgrades.map((upgrade) => upgrade.host)).to.deep.equal([`127.0.0.1:${target.port}`, `[::1]:${target.port}`]);
      });
    }

    it('wss: runs TLS with the target end to end through the tunnel, SNI the target host name', async () => {
      const target = await startTarget(true);
      const proxy = await socksServer();
      await echoThrough(connect(`wss://localhost:${target.port}/secure`, { proxy: proxy.url('socks5h'), tls: { ca: testCert } }));
      const session = proxy.sessions[0]!;
      expect(session.request).to.deep.include({ addressType: 3, host: 'localhost', port: target.port });
      // The proxy relayed a TLS handshake record (0x16), never the HTTP upgrade in clear.
      const tunnelled = Buffer.concat(session.tunnelled);
      expect(tunnelled[0]).to.equal(0x16);
      expect(tunnelled.includes('GET /secure')).to.equal(false);
      expect(target.upgrades).to.deep.equal([{ host: `localhost:${target.port}`, servername: 'localhost' }]);
    });

    it('wss: checks the certificate against the target, not the proxy: a mismatch fails', async () => {
      const target = await startTarget(true);
      const proxy = await socksServer();
      const stream = connect(`wss://wrong-name.socks-test.invalid:${target.port}/`, { proxy: proxy.url('socks5h'), tls: { ca: testCert } });
      const error = await handshakeFailure(stream);
      expect(error.message).to.include(`through proxy socks5h://127.0.0.1:${proxy.port}`);
      expect((error.cause as NodeJS.ErrnoException).code).to.equal('ERR_TLS_CERT_ALTNAME_INVALID');
    });

    it('names the default port: 443 for wss: (an https: URL)', async () => {
      const target = await startTarget(true);
      const proxy = await socksServer({ route: target.port });
      const stream = connect('https://localhost/', { proxy: proxy.url('socks5h'), tls: { ca: testCert } });
      await echoThrough(stream);
      expect(proxy.sessions[0]!.request).to.deep.include({ host: 'localhost', port: 443 });
    });

    it('username/password: offers both methods and sends the percent-decoded UTF-8 credentials (RFC 1929)', async () => {
      const target = await startTarget();
      const proxy = await socksServer({ credentials: { user: USER, password: PASSWORD } });
      await echoThrough(connect(`ws://127.0.0.1:${target.port}/`, { proxy: proxy.url('socks5h', { user: USER, password: PASSWORD }) }));
      const session = proxy.sessions[0]!;
      expect(session.methods).to.deep.equal([0x00, 0x02]);
      expect(session.auth!.version).to.equal(1);
      expect(session.auth!.user.equals(Buffer.from(USER, 'utf8'))).to.equal(true);
      expect(session.auth!.password.equals(Buffer.from(PASSWORD, 'utf8'))).to.equal(true);
    });

    it('an empty password is sent as such (PLEN 0)', async () => {
      const target = await startTarget();
      const proxy = await socksServer({ credentials: { user: 'alice', password: '' } });
      await echoThrough(connect(`ws://127.0.0.1:${target.port}/`, { proxy: `socks5h://alice@127.0.0.1:${proxy.port}` }));
      expect(proxy.sessions[0]!.auth!.password.length).to.equal(0);
    });

    it('with credentials, a proxy that needs none may choose no authentication', async () => {
      const target = await startTarget();
      const proxy = await socksServer();
      await echoThrough(connect(`ws://127.0.0.1:${target.port}/`, { proxy: proxy.url('socks5h', { user: USER, password: PASSWORD }) }));
      expect(proxy.sessions[0]!.methods).to.deep.equal([0x00, 0x02]);
      expect(proxy.sessions[0]!.auth).to.equal(null);
    });

    it('reads replies that arrive one byte at a time', async () => {
      const target = await startTarget();
      const proxy = await socksServer({ credentials: { user: USER, password: PASSWORD }, byteByByte: true });
      await echoThrough(connect(`ws://127.0.0.1:${target.port}/`, { proxy: proxy.url('socks5', { user: USER, password: PASSWORD }) }));
      expect(proxy.sessions).to.have.length(1);
    });

    it('takes the proxy URL as a URL object and as { url }', async () => {
      const target = await startTarget();
      const proxy = await socksServer();
      await echoThrough(connect(`ws://127.0.0.1:${target.port}/`, { proxy: new URL(proxy.url('socks5h')) }));
      await echoThrough(connect(`ws://127.0.0.1:${target.port}/`, { proxy: { url: `${proxy.url('socks5h')}/` } }));
      expect(proxy.sessions).to.have.length(2);
    });
  });

  describe('refusals: every RFC 1928 §6 reply code', () => {
    const codes = [...Object.keys(SOCKS_REPLY_MESSAGES).map(Number), 0x09, 0x7f, 0xff];
    for (const code of codes) {
      const meaning = SOCKS_REPLY_MESSAGES[code] ?? 'unassigned reply code';
      it(`reply 0x${code.toString(16).padStart(2, '0')}: "${meaning}"`, async () => {
        const proxy = await socksServer({ refuse: code });
        const stream = connect('ws://refused.socks-test.invalid:8080/', { proxy: proxy.url('socks5h') });
        const cause = await proxyFailure(stream, `socks5h://127.0.0.1:${proxy.port}`);
        expect(cause.message).to.equal(
          `proxy socks5h://127.0.0.1:${proxy.port} could not connect to refused.socks-test.invalid:8080: ${meaning} (SOCKS5 reply 0x${code.toString(16).padStart(2, '0')})`,
        );
        expect(cause.socksReply).to.equal(code);
        expect(cause.statusCode).to.equal(undefined);
      });
    }

    it('a proxy that cannot reach the target answers 0x05, connection refused', async () => {
      const closedPort = await freePort();
      const proxy = await socksServer();
      const stream = connect(`ws://[::1]:${closedPort}/`, { proxy: proxy.url('socks5') });
      const cause = await proxyFailure(stream, `socks5://127.0.0.1:${proxy.port}`);
      expect(cause.message).to.include(`could not connect to [::1]:${closedPort}: connection refused (SOCKS5 reply 0x05)`);
      expect(cause.socksReply).to.equal(5);
    });
  });

  describe('authentication failures', () => {
    it('no acceptable method (0xFF) without credentials: says to put them in the URL', async () => {
      const proxy = await socksServer({ credentials: { user: USER, password: PASSWORD } });
      const cause = await proxyFailure(connect('ws://127.0.0.1:9/', { proxy: proxy.url('socks5h') }), `socks5h://127.0.0.1:${proxy.port}`);
      expect(cause.message).to.equal(
        `proxy socks5h://127.0.0.1:${proxy.port} requires authentication (it accepts no connection without it): put the credentials in the proxy URL, socks5://user:password@host:port`,
      );
      expect(proxy.sessions[0]!.methods).to.deep.equal([0x00]);
      expect(cause.socksReply).to.equal(undefined);
    });

    it('no acceptable method (0xFF) with credentials', async () => {
      const proxy = await socksServer({ methodReply: [0x05, 0xff] });
      const stream = connect('ws://127.0.0.1:9/', { proxy: proxy.url('socks5h', { user: USER, password: PASSWORD }) });
      const cause = await proxyFailure(stream, `socks5h://127.0.0.1:${proxy.port}`);
      expect(cause.message).to.include('accepts none of the offered authentication methods (no authentication, username/password)');
    });

    it('refused credentials (RFC 1929 status other than 0): never echoed in messages, causes or inspection', async () => {
      const proxy = await socksServer({ credentials: { user: USER, password: 'the right one' } });
      const stream = connect('ws://127.0.0.1:9/', { proxy: proxy.url('socks5h', { user: USER, password: PASSWORD }) });
      const error = await handshakeFailure(stream);
      const cause = error.cause as HandshakeError;
      expect(cause.message).to.equal(`proxy socks5h://127.0.0.1:${proxy.port} refused the credentials (username/password status 0x01)`);
      expect(cause.proxy).to.equal(`socks5h://127.0.0.1:${proxy.port}`);
      const shown = everythingShownOf(error) + everythingShownOf(await rejectionOf(stream.closed));
      for (const secret of [USER, PASSWORD, 'hunter2', encodeURIComponent(PASSWORD), encodeURIComponent(USER)]) {
        expect(shown).to.not.include(secret);
      }
      // The proxy did receive them: the request was made.
      expect(proxy.sessions[0]!.auth!.password.toString('utf8')).to.equal(PASSWORD);
    });

    it('any non-zero status is a refusal', async () => {
      const proxy = await socksServer({ credentials: { user: 'u', password: 'p' }, authReply: [0x01, 0x80] });
      const stream = connect('ws://127.0.0.1:9/', { proxy: proxy.url('socks5h', { user: 'u', password: 'p' }) });
      const cause = await proxyFailure(stream, `socks5h://127.0.0.1:${proxy.port}`);
      expect(cause.message).to.include('refused the credentials (username/password status 0x80)');
    });

    it('a method that was not offered: username/password without credentials, GSSAPI', async () => {
      const chosen = [
        { methodReply: [0x05, 0x02], credentials: undefined, method: '0x02' },
        { methodReply: [0x05, 0x01], credentials: { user: 'u', password: 'p' }, method: '0x01' },
      ];
      for (const { methodReply, credentials, method } of chosen) {
        const proxy = await socksServer({ methodReply });
        const cause = await proxyFailure(connect('ws://127.0.0.1:9/', { proxy: proxy.url('socks5h', credentials) }), `socks5h://127.0.0.1:${proxy.port}`);
        expect(cause.message).to.equal(`proxy socks5h://127.0.0.1:${proxy.port} chose authentication method ${method}, which was not offered`);
      }
    });
  });

  describe('malformed replies', () => {
    const cases: Array<{ what: string; script: ScriptedSocksOptions; credentials?: boolean; message: string }> = [
      { what: 'a method selection of another SOCKS version', script: { methodReply: [0x04, 0x00] }, message: 'did not answer as a SOCKS5 proxy (version 0x04)' },
      {
        what: 'an HTTP response (an HTTP proxy)',
        script: { methodReply: [...Buffer.from('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n')] },
        message: 'answered in HTTP: it is an HTTP proxy (use an http:// proxy URL)',
      },
      { what: 'bytes after the method selection', script: { methodReply: [0x05, 0x00, 0x00] }, message: 'sent 1 unexpected bytes after its method selection' },
      {
        what: 'a username/password reply of another version',
        script: { credentials: { user: 'u', password: 'p' }, authReply: [0x05, 0x00] },
        credentials: true,
        message: 'sent a malformed username/password reply (version 0x05, not 0x01)',
      },
      {
        what: 'bytes after the username/password reply',
        script: { credentials: { user: 'u', password: 'p' }, authReply: [0x01, 0x00, 0x05] },
        credentials: true,
        message: 'sent 1 unexpected bytes after its username/password reply',
      },
      { what: 'a CONNECT reply of another version', script: { connectReply: [0x04, 0x5a, 0, 1, 0, 0, 0, 0, 0, 0] }, message: 'sent a malformed reply (version 0x04, not 0x05)' },
      { what: 'an unknown address type in the reply', script: { connectReply: [0x05, 0x00, 0x00, 0x09, 0, 0] }, message: 'sent a malformed reply (address type 0x09)' },
    ];
    for (const { what, script, credentials, message } of cases) {
      it(`${what}: "${message}"`, async () => {
        const proxy = await socksServer(script);
        const stream = connect('ws://127.0.0.1:9/', { proxy: proxy.url('socks5h', credentials ? { user: 'u', password: 'p' } : undefined) });
        const cause = await proxyFailure(stream, `socks5h://127.0.0.1:${proxy.port}`);
        expect(cause.message).to.equal(`proxy socks5h://127.0.0.1:${proxy.port} ${message}`);
      });
    }

    it("bytes after a successful reply are not the target's: the handshake fails", async () => {
      const target = await startTarget();
      const proxy = await socksServer({ afterReply: [0x48, 0x49, 0x0a] });
      const cause = await proxyFailure(connect(`ws://127.0.0.1:${target.port}/`, { proxy: proxy.url('socks5h') }), `socks5h://127.0.0.1:${proxy.port}`);
      expect(cause.message).to.include('sent 3 unexpected bytes after its SOCKS5 reply');
    });
  });

  describe('a proxy that stops', () => {
    const stages = [
      { closeAt: 'greeting' as const, message: 'closed the connection before choosing an authentication method' },
      { closeAt: 'auth' as const, message: 'closed the connection after the credentials were sent (were they refused?)' },
      { closeAt: 'request' as const, message: 'closed the connection before answering the request to connect to gone.socks-test.invalid:8080' },
    ];
    for (const { closeAt, message } of stages) {
      it(`closing at the ${closeAt}: "${message}"`, async () => {
        const proxy = await socksServer({ closeAt, credentials: { user: 'u', password: 'p' } });
        const stream = connect('ws://gone.socks-test.invalid:8080/', { proxy: proxy.url('socks5h', { user: 'u', password: 'p' }) });
        const cause = await proxyFailure(stream, `socks5h://127.0.0.1:${proxy.port}`);
        expect(cause.message).to.equal(`proxy socks5h://127.0.0.1:${proxy.port} ${message}`);
      });
    }

    it('a proxy that is not listening: the system error is the cause, the message names the proxy', async () => {
      const port = await freePort();
      const error = await handshakeFailure(connect('ws://127.0.0.1:9/', { proxy: `socks5://127.0.0.1:${port}` }));
      expect(error.message).to.include(`: connection to proxy socks5://127.0.0.1:${port} failed: connect ECONNREFUSED`);
      expect((error.cause as NodeJS.ErrnoException).code).to.equal('ECONNREFUSED');
    });

    for (const silentAt of ['greeting', 'auth', 'request'] as const) {
      it(`the handshake timeout covers a proxy silent at the ${silentAt}, and the proxy connection is closed`, async () => {
        const proxy = await socksServer({ silentAt, credentials: { user: 'u', password: 'p' } });
        const { value: stream, fire } = withHandshakeTimer(4321, () =>
          connect('ws://127.0.0.1:9/', { proxy: proxy.url('socks5h', { user: 'u', password: 'p' }), handshakeTimeout: 4321 }),
        );
        const session = await proxy.nextSession();
        // Wait until the step that stays silent has been reached.
        while ((silentAt === 'auth' && session.auth === null) || (silentAt === 'request' && session.request === null)) {
          await new Promise((resolve) => setImmediate(resolve));
        }
        fire();
        const cause = await proxyFailure(stream, `socks5h://127.0.0.1:${proxy.port}`);
        expect(cause.message).to.equal(`opening handshake timed out after 4321 ms (connecting to proxy socks5h://127.0.0.1:${proxy.port})`);
        await closedSocket(session.socket);
      });
    }

    it('aborting the signal during the negotiation rejects with its reason and closes the proxy connection', async () => {
      const proxy = await socksServer({ silentAt: 'greeting' });
      const controller = new AbortController();
      const stream = connect('ws://127.0.0.1:9/', { proxy: proxy.url('socks5h'), signal: controller.signal });
      const session = await proxy.nextSession();
      const reason = new Error('stop');
      controller.abort(reason);
      expect(await rejectionOf(stream.opened)).to.equal(reason);
      expect(await rejectionOf(stream.closed)).to.equal(reason);
      await closedSocket(session.socket);
    });

    it('close() during the negotiation fails the handshake and closes the proxy connection', async () => {
      const proxy = await socksServer({ silentAt: 'request' });
      const stream = connect('ws://127.0.0.1:9/', { proxy: proxy.url('socks5h') });
      const session = await proxy.nextSession();
      while (session.request === null) await new Promise((resolve) => setImmediate(resolve));
      stream.close();
      const error = await handshakeFailure(stream);
      expect(error.message).to.include('closed before the connection was established');
      await closedSocket(session.socket);
    });
  });

  describe('target names', () => {
    it('socks5: a name that cannot be resolved fails before the CONNECT request, with a hint', async () => {
      const proxy = await socksServer();
      // A 64-byte label cannot be put in a DNS query: the resolver fails without sending one.
      const host = `${'a'.repeat(64)}.example`;
      const error = await handshakeFailure(connect(`ws://${host}:8080/`, { proxy: proxy.url('socks5') }));
      expect(error.message).to.match(new RegExp(`: cannot resolve ${host} for proxy socks5://127\\.0\\.0\\.1:${proxy.port}: .*\\(with socks5h:// the proxy resolves names itself\\)$`));
      expect((error.cause as NodeJS.ErrnoException).code).to.equal('ENOTFOUND');
      await new Promise((resolve) => setImmediate(resolve));
      expect(proxy.sessions.every((session) => session.request === null)).to.equal(true);
    });

    it('socks5h: a name longer than 255 bytes cannot be sent', async () => {
      const proxy = await socksServer();
      const host = Array.from({ length: 5 }, () => 'b'.repeat(60)).join('.');
      const cause = await proxyFailure(connect(`ws://${host}/`, { proxy: proxy.url('socks5h') }), `socks5h://127.0.0.1:${proxy.port}`);
      expect(cause.message).to.include('SOCKS5 names are 1 to 255 bytes');
      expect(proxy.sessions[0]!.request).to.equal(null);
    });

    it('socks5h: a name of exactly 255 bytes is sent', async () => {
      const target = await startTarget();
      const proxy = await socksServer();
      const host = [...Array.from({ length: 4 }, () => 'c'.repeat(62)), 'ddd'].join('.');
      expect(host).to.have.length(255);
      await echoThrough(connect(`ws://${host}:${target.port}/`, { proxy: proxy.url('socks5h') }));
      expect(proxy.sessions[0]!.request!.host).to.equal(host);
    });
  });

  describe("the environment, with proxy: 'env'", () => {
    isolateProxyEnvironment();

    it('ALL_PROXY names a SOCKS5 proxy for ws: and wss: targets alike', async () => {
      const plain = await startTarget();
      const secure = await startTarget(true);
      const proxy = await socksServer();
      process.env.ALL_PROXY = proxy.url('socks5h');
      await echoThrough(connect(`ws://127.0.0.1:${plain.port}/`, { proxy: 'env' }));
      await echoThrough(connect(`wss://localhost:${secure.port}/`, { proxy: 'env', tls: { ca: testCert } }));
      expect(proxy.sessions.map((session) => session.request!.port)).to.deep.equal([plain.port, secure.port]);
    });

    it('HTTPS_PROXY may name a SOCKS5 proxy, with credentials', async () => {
      const target = await startTarget(true);
      const proxy = await socksServer({ credentials: { user: USER, password: PASSWORD } });
      process.env.HTTPS_PROXY = proxy.url('socks5h', { user: USER, password: PASSWORD });
      await echoThrough(connect(`wss://localhost:${target.port}/`, { proxy: 'env', tls: { ca: testCert } }));
      expect(proxy.sessions[0]!.auth!.user.toString('utf8')).to.equal(USER);
    });

    it('NO_PROXY applies to ALL_PROXY too', async () => {
      const target = await startTarget();
      const proxy = await socksServer();
      process.env.ALL_PROXY = proxy.url('socks5h');
      process.env.NO_PROXY = '127.0.0.1';
      await echoThrough(connect(`ws://127.0.0.1:${target.port}/`, { proxy: 'env' }));
      expect(proxy.connections).to.equal(0);
    });

    it('the scheme variable wins over ALL_PROXY; lower case first; empty is unset', () => {
      const ws = new URL('ws://target.example/');
      const wss = new URL('wss://target.example/');
      const origin = (target: URL, env: NodeJS.ProcessEnv): string | undefined => proxyFromEnvironment(target, env)?.origin;
      expect(origin(ws, { HTTP_PROXY: 'http://h:1', ALL_PROXY: 'socks5://s:2' })).to.equal('http://h:1');
      expect(origin(ws, { HTTPS_PROXY: 'http://h:1', ALL_PROXY: 'socks5://s:2' })).to.equal('socks5://s:2');
      expect(origin(wss, { HTTP_PROXY: 'http://h:1', ALL_PROXY: 'socks5h://s' })).to.equal('socks5h://s:1080');
      expect(origin(ws, { all_proxy: 'socks5://lower:1', ALL_PROXY: 'socks5://upper:1' })).to.equal('socks5://lower:1');
      expect(origin(ws, { all_proxy: '', ALL_PROXY: 'socks5://upper:1' })).to.equal('socks5://upper:1');
      expect(origin(ws, { HTTP_PROXY: ' ', ALL_PROXY: 'socks5://s:1' })).to.equal('socks5://s:1');
      expect(origin(ws, { ALL_PROXY: 'proxy.example:3128' })).to.equal('http://proxy.example:3128');
      expect(origin(ws, { ALL_PROXY: 'socks5://s:1', no_proxy: 'target.example' })).to.equal(undefined);
    });

    it('an unusable ALL_PROXY throws TypeError from the constructor, naming it and not its credentials', () => {
      process.env.ALL_PROXY = 'socks4://user:hunter2@127.0.0.1:1080';
      const error = expectThrowsTypeError(() => new WebSocketStream('ws://example.com/', { proxy: 'env' }));
      expect(error.message).to.include('ALL_PROXY');
      expect(error.message).to.not.include('hunter2');
    });
  });

  describe('the proxy URL', () => {
    it('socks5: and socks5h:, default port 1080, origins without credentials', () => {
      const plain = parseProxyUrl('socks5://proxy.example', 'p');
      expect(plain).to.be.an.instanceOf(SocksProxyEndpoint);
      expect(plain).to.deep.include({ kind: 'socks5', host: 'proxy.example', port: 1080, remoteDns: false, origin: 'socks5://proxy.example:1080' });
      expect(parseProxyUrl('SOCKS5H://u:p@[::1]:1081/', 'p')).to.deep.include({ host: '::1', port: 1081, remoteDns: true, origin: 'socks5h://[::1]:1081' });
      expect((parseProxyUrl('socks5h://u:p@h', 'p') as SocksProxyEndpoint).authenticates).to.equal(true);
      expect((parseProxyUrl('socks5h://h', 'p') as SocksProxyEndpoint).authenticates).to.equal(false);
    });

    it('the endpoint never shows its credentials: inspection, JSON, keys', () => {
      const endpoint = toProxySetting(`socks5h://${encodeURIComponent(USER)}:${encodeURIComponent(PASSWORD)}@proxy.example:1080`);
      const shown = [inspect(endpoint, { depth: 10, showHidden: true }), JSON.stringify(endpoint), Object.keys(endpoint!).join()].join('\n');
      for (const secret of [USER, PASSWORD, 'hunter2', encodeURIComponent(PASSWORD)]) expect(shown).to.not.include(secret);
    });

    const invalid: Array<[string, unknown]> = [
      ['a password without a user name', 'socks5://:hunter2@h'],
      ['a user name over 255 bytes', `socks5://${'ü'.repeat(128)}:hunter2@h`],
      ['a password over 255 bytes', `socks5h://u:${'hunter2'.repeat(37)}@h`],
      ['malformed percent-encoding', 'socks5://u:hunter2%zz@h'],
      ['a path', 'socks5://u:hunter2@h:1080/path'],
      ['a query', 'socks5://u:hunter2@h:1080?q'],
      ['a fragment', 'socks5://u:hunter2@h:1080#'],
      ['no host', 'socks5://'],
      ['proxy.tls (for https: proxies only)', { url: 'socks5://u:hunter2@h', tls: {} }],
    ];
    for (const [what, value] of invalid) {
      it(`${what}: TypeError, without the credentials`, () => {
        const error = expectThrowsTypeError(() => new WebSocketStream('ws://127.0.0.1:1/', { proxy: value as string }));
        expect(error.message).to.not.include('hunter2');
      });
    }

    it('errors name the option or variable', () => {
      const error = expectPlainTypeError(thrownBy(() => parseProxyUrl('socks5://:pw@h', 'ALL_PROXY')));
      expect(error.message).to.equal('ALL_PROXY needs a user name of 1 to 255 bytes for SOCKS5 username/password authentication');
    });

    it('a password of 255 bytes and a user name of 255 bytes are accepted', () => {
      expect(parseProxyUrl(`socks5://${'u'.repeat(255)}:${'p'.repeat(255)}@h`, 'p').kind).to.equal('socks5');
    });
  });

  describe('the negotiation, without sockets', () => {
    const auth = { user: Buffer.from('user'), password: Buffer.from('pw') };

    it('greets with "no authentication", plus username/password when there are credentials', () => {
      expect([...new Socks5Negotiation(null).greeting()]).to.deep.equal([5, 1, 0]);
      expect([...new Socks5Negotiation(auth).greeting()]).to.deep.equal([5, 2, 0, 2]);
    });

    it('walks method, authentication and reply, fed one byte at a time', () => {
      const negotiation = new Socks5Negotiation(auth);
      const feed = (bytes: number[]): ReturnType<Socks5Negotiation['push']> => {
        let step: ReturnType<Socks5Negotiation['push']> = { kind: 'wait' };
        bytes.forEach((byte, index) => {
          step = negotiation.push(Buffer.from([byte]));
          if (index < bytes.length - 1) expect(step, `after byte ${index}`).to.deep.equal({ kind: 'wait' });
        });
        return step;
      };
      const send = feed([5, 2]);
      expect(send.kind).to.equal('send');
      expect([...(send as { bytes: Buffer }).bytes]).to.deep.equal([1, 4, ...Buffer.from('user'), 2, ...Buffer.from('pw')]);
      expect(feed([1, 0])).to.deep.equal({ kind: 'authenticated' });
      const request = negotiation.connectRequest(encodeSocksAddress('example.com'), 443);
      expect([...request]).to.deep.equal([5, 1, 0, 3, 11, ...Buffer.from('example.com'), 0x01, 0xbb]);
      // A reply whose bound address is a domain name (ATYP 3).
      const connected = feed([5, 0, 0, 3, 4, ...Buffer.from('bind'), 0x12, 0x34]);
      expect(connected.kind).to.equal('connected');
      expect((connected as { rest: Buffer }).rest.length).to.equal(0);
    });

    it('hands back bytes that follow the reply; an IPv6 bound address (ATYP 4)', () => {
      const negotiation = new Socks5Negotiation(null);
      expect(negotiation.push(Buffer.from([5, 0]))).to.deep.equal({ kind: 'authenticated' });
      negotiation.connectRequest(encodeSocksAddress('::1'), 80);
      const step = negotiation.push(Buffer.from([5, 0, 0, 4, ...new Array(16).fill(0), 0, 80, 0xaa, 0xbb]));
      expect(step.kind).to.equal('connected');
      expect([...(step as { rest: Buffer }).rest]).to.deep.equal([0xaa, 0xbb]);
    });

    it('throws SocksError for bytes nobody asked for', () => {
      const negotiation = new Socks5Negotiation(null);
      negotiation.push(Buffer.from([5, 0]));
      const error = thrownBy(() => negotiation.push(Buffer.from([1])));
      expect(error).to.be.an.instanceOf(SocksError);
      expect((error as SocksError).message).to.equal('sent 1 bytes it was not asked for');
    });

    it('a refusal carries its reply code even before the rest of the reply arrives', () => {
      const negotiation = new Socks5Negotiation(null);
      negotiation.push(Buffer.from([5, 0]));
      negotiation.connectRequest(encodeSocksAddress('127.0.0.1'), 80);
      const error = thrownBy(() => negotiation.push(Buffer.from([5, 2])));
      expect((error as SocksError).reply).to.equal(2);
      expect((error as SocksError).message).to.equal('connection not allowed by ruleset (SOCKS5 reply 0x02)');
    });

    it('encodes addresses: IPv4, IPv6 (compressed, full, with an IPv4 tail), names', () => {
      expect([...encodeSocksAddress('192.0.2.1')]).to.deep.equal([1, 192, 0, 2, 1]);
      expect(encodeSocksAddress('2001:db8::1').toString('hex')).to.equal('0420010db8000000000000000000000001');
      expect(ipv6Bytes('::').toString('hex')).to.equal('0'.repeat(32));
      expect(ipv6Bytes('1:2:3:4:5:6:7:8').toString('hex')).to.equal('00010002000300040005000600070008');
      expect(ipv6Bytes('::ffff:192.0.2.1').toString('hex')).to.equal('00000000000000000000ffffc0000201');
      expect(ipv6Bytes('fe80::1%eth0').toString('hex')).to.equal('fe800000000000000000000000000001');
      expect(ipv6Bytes('1::').toString('hex')).to.equal('00010000000000000000000000000000');
      expect([...encodeSocksAddress('xn--bcher-kva.example')].slice(0, 2)).to.deep.equal([3, 21]);
      expect(() => encodeSocksAddress('a'.repeat(256))).to.throw(SocksError, /1 to 255 bytes/);
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
