// The client through HTTP(S) proxies: a small CONNECT proxy written for these tests, in front of a
// real `ws` server (ws: and wss: targets), plus the proxy URL and NO_PROXY rules on their own.
import { expect } from 'chai';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { HandshakeError } from '../../lib/handshake/client.js';
import { bypassesProxy, parseProxyUrl, proxyFromEnvironment, resolveProxy, toProxySetting } from '../../lib/handshake/proxy.js';
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
import { testCert, testKey } from '../helpers/raw-peer.js';

// ---------------------------------------------------------------------------------------------
// The test proxy

interface TestProxyOptions {
  /** TLS to the proxy itself (the fixture certificate: CN=localhost, SAN 127.0.0.1). */
  secure?: boolean;
  /** The exact Proxy-Authorization required; anything else is answered 407. */
  requireAuth?: string;
  /** Answer CONNECT with these bytes and close, instead of opening a tunnel. */
  reply?: string;
  /** Answer CONNECT with these bytes and leave the connection open. */
  replyAndWait?: string;
  /** Never answer (for timeouts and aborts). */
  silent?: boolean;
  /** Status line of a successful CONNECT. */
  established?: string;
  /** Bytes sent right after the successful CONNECT reply, before the target's. */
  afterReply?: Buffer;
}

interface ConnectRequest {
  /** The whole request head, as received. */
  head: string;
  requestLine: string;
  /** Lower-cased names, in order. */
  headers: Array<[string, string]>;
  /** SNI the client sent to an https: proxy. */
  servername: string | false | undefined;
  /** Bytes the client sent into the tunnel (after the CONNECT head). */
  tunnelled: Buffer[];
  /** The proxy-side client socket. */
  socket: net.Socket;
}

interface TestProxy {
  /** `http://127.0.0.1:port` or `https://localhost:port`. */
  url: string;
  port: number;
  requests: ConnectRequest[];
  /** Resolves with the next CONNECT request (or one already received). */
  nextRequest(): Promise<ConnectRequest>;
  connections: number;
}

function header(request: ConnectRequest, name: string): string[] {
  return request.headers.filter(([key]) => key === name).map(([, value]) => value);
}

/**
 * A CONNECT proxy: parses the request head, checks Proxy-Authorization when asked, then connects
 * to the authority's port on 127.0.0.1 (whatever its host: it resolves names itself, like a real
 * proxy would, so tests can use names no resolver knows), or to `route` when the port is 80/443.
 */
async function startProxy(options: TestProxyOptions = {}, route?: number): Promise<TestProxy> {
  const requests: ConnectRequest[] = [];
  const waiting: Array<(request: ConnectRequest) => void> = [];
  let taken = 0;
  const sockets = new Set<net.Socket>();
  const onConnection = (client: net.Socket): void => {
    proxy.connections++;
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) {
        if (received.length > 16384) client.destroy();
        return;
      }
      client.off('data', onData);
      client.pause();
      const head = received.toString('latin1', 0, end);
      const rest = received.subarray(end + 4);
      const [requestLine = '', ...lines] = head.split('\r\n');
      const headers = lines.map((line): [string, string] => {
        const colon = line.indexOf(':');
        return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
      });
      const request: ConnectRequest = {
        head,
        requestLine,
        headers,
        servername: (client as tls.TLSSocket).servername ?? undefined,
        tunnelled: rest.length > 0 ? [Buffer.from(rest)] : [],
        socket: client,
      };
      requests.push(request);
      const waiter = waiting.shift();
      if (waiter) waiter(request);
      handle(client, request);
    };
    client.on('data', onData);
  };
  const handle = (client: net.Socket, request: ConnectRequest): void => {
    if (options.silent) return;
    if (options.reply !== undefined) {
      client.end(options.reply);
      return;
    }
    if (options.replyAndWait !== undefined) {
      client.write(options.replyAndWait);
      return;
    }
    if (options.requireAuth !== undefined && header(request, 'proxy-authorization')[0] !== options.requireAuth) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="tests"\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const match = /^CONNECT (\[[0-9a-f:.]+\]|[^\s:[\]]+):(\d+) HTTP\/1\.1$/i.exec(request.requestLine);
    if (match === null) {
      client.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const requestedPort = Number(match[2]);
    const port = (requestedPort === 80 || requestedPort === 443) && route !== undefined ? route : requestedPort;
    const upstream = net.connect({ host: '127.0.0.1', port });
    sockets.add(upstream);
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => {});
    client.on('close', () => upstream.destroy());
    upstream.on('connect', () => {
      client.write(`${options.established ?? 'HTTP/1.1 200 Connection established'}\r\n\r\n`);
      if (options.afterReply !== undefined) client.write(options.afterReply);
      for (const chunk of request.tunnelled) upstream.write(chunk);
      client.on('data', (chunk: Buffer) => request.tunnelled.push(Buffer.from(chunk)));
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  };
  const server = options.secure ? tls.createServer({ cert: testCert, key: testKey }, onConnection) : net.createServer(onConnection);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
  });
  const { port } = server.address() as AddressInfo;
  const proxy: TestProxy = {
    url: options.secure ? `https://localhost:${port}` : `http://127.0.0.1:${port}`,
    port,
    requests,
    connections: 0,
    nextRequest() {
      // Each call takes the next request in arrival order, received already or yet to come.
      const index = taken++;
      return new Promise((resolve) => {
        if (index < requests.length) resolve(requests[index]!);
        else waiting.push(resolve);
      });
    },
  };
  return proxy;
}

function basic(credentials: string): string {
  return `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;
}

describe('client through a proxy', () => {
  afterEach(runCleanups);

  describe('ws: targets through an http: proxy', () => {
    it('tunnels the handshake and messages, with exactly CONNECT host:port and Host', async () => {
      const target = await startTarget();
      const proxy = await startProxy();
      const stream = connect(`ws://127.0.0.1:${target.port}/chat?room=1`, { proxy: proxy.url });
      await echoThrough(stream);
      expect(proxy.requests).to.have.length(1);
      const request = proxy.requests[0]!;
      expect(request.requestLine).to.equal(`CONNECT 127.0.0.1:${target.port} HTTP/1.1`);
      expect(request.headers).to.deep.equal([['host', `127.0.0.1:${target.port}`]]);
      // The upgrade request went into the tunnel, not to the proxy.
      const tunnelled = Buffer.concat(request.tunnelled).toString('latin1');
      expect(tunnelled.startsWith('GET /chat?room=1 HTTP/1.1\r\n')).to.equal(true);
      expect(target.upgrades).to.deep.equal([{ host: `127.0.0.1:${target.port}`, servername: undefined }]);
    });

    it('leaves name resolution to the proxy: a host name only the proxy can reach', async () => {
      const target = await startTarget();
      const proxy = await startProxy();
      const stream = connect(`ws://echo.proxy-test.invalid:${target.port}/`, { proxy: proxy.url });
      await echoThrough(stream);
      expect(proxy.requests[0]!.requestLine).to.equal(`CONNECT echo.proxy-test.invalid:${target.port} HTTP/1.1`);
      expect(target.upgrades[0]!.host).to.equal(`echo.proxy-test.invalid:${target.port}`);
    });

    it('always names the port, the default one included', async () => {
      const target = await startTarget();
      const proxy = await startProxy({}, target.port);
      const stream = connect('ws://Echo.Proxy-Test.invalid/', { proxy: proxy.url });
      await echoThrough(stream);
      expect(proxy.requests[0]!.requestLine).to.equal('CONNECT echo.proxy-test.invalid:80 HTTP/1.1');
      expect(header(proxy.requests[0]!, 'host')).to.deep.equal(['echo.proxy-test.invalid:80']);
    });

    it('keeps IPv6 literals in brackets', async () => {
      const target = await startTarget();
      const proxy = await startProxy();
      const stream = connect(`ws://[::1]:${target.port}/`, { proxy: proxy.url });
      await echoThrough(stream);
      expect(proxy.requests[0]!.requestLine).to.equal(`CONNECT [::1]:${target.port} HTTP/1.1`);
      expect(header(proxy.requests[0]!, 'host')).to.deep.equal([`[::1]:${target.port}`]);
    });

    it('accepts a URL object and an HTTP/1.0 reply with any 2xx status', async () => {
      const target = await startTarget();
      const proxy = await startProxy({ established: 'HTTP/1.0 201 Tunnel ready\r\nX-Proxy: test' });
      const stream = connect(`ws://127.0.0.1:${target.port}/`, { proxy: new URL(proxy.url) });
      await echoThrough(stream);
      expect(proxy.requests).to.have.length(1);
    });

    it('sends no Proxy-Authorization without credentials', async () => {
      const target = await startTarget();
      const proxy = await startProxy();
      await echoThrough(connect(`ws://127.0.0.1:${target.port}/`, { proxy: `${proxy.url}/` }));
      expect(header(proxy.requests[0]!, 'proxy-authorization')).to.deep.equal([]);
    });
  });

  describe('wss: targets', () => {
    it('runs TLS with the target end to end through the tunnel, SNI the target host name', async () => {
      const target = await startTarget(true);
      const proxy = await startProxy();
      const stream = connect(`wss://localhost:${target.port}/secure`, { proxy: proxy.url, tls: { ca: testCert } });
      await echoThrough(stream);
      const request = proxy.requests[0]!;
      expect(request.requestLine).to.equal(`CONNECT localhost:${target.port} HTTP/1.1`);
      // The proxy relayed a TLS handshake record (0x16), never the HTTP upgrade in clear.
      const tunnelled = Buffer.concat(request.tunnelled);
      expect(tunnelled[0]).to.equal(0x16);
      expect(tunnelled.includes('GET /secure')).to.equal(false);
      expect(target.upgrades).to.deep.equal([{ host: `localhost:${target.port}`, servername: 'localhost' }]);
    });

    it('checks the certificate against an IP target and sends no SNI for it', async () => {
      const target = await startTarget(true);
      const proxy = await startProxy();
      const stream = connect(`wss://127.0.0.1:${target.port}/`, { proxy: proxy.url, tls: { ca: testCert } });
      await echoThrough(stream);
      expect(target.upgrades[0]!.servername).to.equal(false);
    });

    it('checks the certificate against the target host, not the proxy: a mismatch fails', async () => {
      const target = await startTarget(true);
      const proxy = await startProxy();
      const stream = connect(`wss://wrong-name.proxy-test.invalid:${target.port}/`, { proxy: proxy.url, tls: { ca: testCert } });
      const error = await handshakeFailure(stream);
      expect(error.message).to.include(`through proxy ${proxy.url}`);
      expect((error.cause as NodeJS.ErrnoException).code).to.equal('ERR_TLS_CERT_ALTNAME_INVALID');
      expect(proxy.requests[0]!.requestLine).to.equal(`CONNECT wrong-name.proxy-test.invalid:${target.port} HTTP/1.1`);
    });

    it('uses the target TLS options for the target: no ca, no trust', async () => {
      const target = await startTarget(true);
      const proxy = await startProxy();
      const error = await handshakeFailure(connect(`wss://localhost:${target.port}/`, { proxy: proxy.url }));
      expect(error.message).to.match(/connection failed: .*certificate/);
      expect(error.message).to.include('through proxy');
      expect(target.upgrades).to.deep.equal([]);
    });

    it('maps https: targets to wss: and uses port 443 by default', async () => {
      const target = await startTarget(true);
      const proxy = await startProxy({}, target.port);
      const stream = connect('https://localhost/', { proxy: proxy.url, tls: { ca: testCert } });
      expect(stream.url).to.equal('wss://localhost/');
      await echoThrough(stream);
      expect(proxy.requests[0]!.requestLine).to.equal('CONNECT localhost:443 HTTP/1.1');
    });
  });

  describe('https: proxies', () => {
    it('connects to the proxy over TLS with its own options and SNI, to a ws: target', async () => {
      const target = await startTarget();
      const proxy = await startProxy({ secure: true });
      const stream = connect(`ws://127.0.0.1:${target.port}/`, { proxy: { url: proxy.url, tls: { ca: testCert } } });
      await echoThrough(stream);
      expect(proxy.requests[0]!.servername).to.equal('localhost');
      expect(proxy.requests[0]!.requestLine).to.equal(`CONNECT 127.0.0.1:${target.port} HTTP/1.1`);
    });

    it('carries TLS inside TLS to a wss: target, each with its own trust', async () => {
      const target = await startTarget(true);
      const proxy = await startProxy({ secure: true });
      const stream = connect(`wss://localhost:${target.port}/`, { proxy: { url: proxy.url, tls: { ca: testCert } }, tls: { ca: testCert } });
      await echoThrough(stream);
      expect(Buffer.concat(proxy.requests[0]!.tunnelled)[0]).to.equal(0x16);
      expect(target.upgrades[0]!.servername).to.equal('localhost');
    });

    it('fails, naming the proxy, when the proxy certificate is not trusted', async () => {
      const target = await startTarget();
      const proxy = await startProxy({ secure: true });
      const error = await handshakeFailure(connect(`ws://127.0.0.1:${target.port}/`, { proxy: proxy.url }));
      expect(error.message).to.include(`connection to proxy ${proxy.url} failed`);
      expect((error.cause as NodeJS.ErrnoException).code).to.equal('DEPTH_ZERO_SELF_SIGNED_CERT');
      expect(proxy.requests).to.deep.equal([]);
    });

    it('an IP literal proxy gets no SNI and is checked against its IP', async () => {
      const target = await startTarget();
      const proxy = await startProxy({ secure: true });
      const stream = connect(`ws://127.0.0.1:${target.port}/`, { proxy: { url: `https://127.0.0.1:${proxy.port}`, tls: { ca: testCert } } });
      await echoThrough(stream);
      expect(proxy.requests[0]!.servername).to.equal(false);
    });
  });

  describe('proxy authorization', () => {
    it('sends Basic credentials from the URL, percent-decoded', async () => {
      const target = await startTarget();
      const expected = basic('us er:p@ss:w%rd');
      const proxy = await startProxy({ requireAuth: expected });
      const proxyUrl = `http://us%20er:p%40ss%3Aw%25rd@127.0.0.1:${proxy.port}`;
      await echoThrough(connect(`ws://127.0.0.1:${target.port}/`, { proxy: proxyUrl }));
      expect(header(proxy.requests[0]!, 'proxy-authorization')).to.deep.equal([expected]);
      expect(proxy.requests[0]!.headers.map(([name]) => name)).to.deep.equal(['host', 'proxy-authorization']);
    });

    it('encodes non-ASCII credentials as UTF-8', async () => {
      const target = await startTarget();
      const proxy = await startProxy({ requireAuth: basic('jürgen:пароль') });
      await echoThrough(connect(`ws://127.0.0.1:${target.port}/`, { proxy: `http://jürgen:пароль@127.0.0.1:${proxy.port}` }));
    });

    it('sends credentials to an https: proxy too', async () => {
      const target = await startTarget();
      const proxy = await startProxy({ secure: true, requireAuth: basic('user:secret') });
      await echoThrough(connect(`ws://127.0.0.1:${target.port}/`, { proxy: { url: `https://user:secret@localhost:${proxy.port}`, tls: { ca: testCert } } }));
    });

    it('407 without credentials: opened rejects with a WebSocketError naming the proxy and the status', async () => {
      const target = await startTarget();
      const proxy = await startProxy({ requireAuth: basic('user:secret') });
      const error = await handshakeFailure(connect(`ws://127.0.0.1:${target.port}/`, { proxy: proxy.url }));
      expect(error.message).to.include(`proxy ${proxy.url} refused the tunnel to 127.0.0.1:${target.port}: 407 Proxy Authentication Required`);
      expect(error.message).to.include('put the credentials in the proxy URL');
      const cause = error.cause as HandshakeError;
      expect(cause).to.be.an.instanceOf(HandshakeError);
      expect(cause.statusCode).to.equal(407);
      expect(cause.proxy).to.equal(proxy.url);
      expect(cause.headers!.get('proxy-authenticate')).to.deep.equal(['Basic realm="tests"']);
      expect(target.upgrades).to.deep.equal([]);
    });

    it('407 with wrong credentials: says they were refused, and never shows the password', async () => {
      const target = await startTarget();
      const proxy = await startProxy({ requireAuth: basic('user:secret') });
      const stream = connect(`ws://127.0.0.1:${target.port}/`, { proxy: `http://user:hunter2@127.0.0.1:${proxy.port}` });
      const error = await handshakeFailure(stream);
      expect(error.message).to.include('407');
      expect(error.message).to.include('the credentials were refused');
      expect(error.message).to.not.include('hunter2');
      expect((error.cause as HandshakeError).message).to.not.include('hunter2');
      expect(header(proxy.requests[0]!, 'proxy-authorization')).to.deep.equal([basic('user:hunter2')]);
    });
  });

  describe('proxy failures', () => {
    it('403: the status and headers of the refusal are on the cause', async () => {
      const proxy = await startProxy({ reply: 'HTTP/1.1 403 Forbidden\r\nX-Reason: policy\r\nContent-Length: 6\r\n\r\nno way' });
      const error = await handshakeFailure(connect('ws://127.0.0.1:9/', { proxy: proxy.url }));
      expect(error.message).to.equal(`WebSocket handshake with ws://127.0.0.1:9/ failed: proxy ${proxy.url} refused the tunnel to 127.0.0.1:9: 403 Forbidden`);
      const cause = error.cause as HandshakeError;
      expect(cause.statusCode).to.equal(403);
      expect(cause.proxy).to.equal(proxy.url);
      expect(cause.headers!.get('x-reason')).to.deep.equal(['policy']);
    });

    it('a redirect or other non-2xx reply is a refusal too', async () => {
      const proxy = await startProxy({ reply: 'HTTP/1.1 302 Found\r\nLocation: http://elsewhere/\r\n\r\n' });
      const error = await handshakeFailure(connect('ws://127.0.0.1:9/', { proxy: proxy.url }));
      expect(error.message).to.include('refused the tunnel to 127.0.0.1:9: 302 Found');
      expect((error.cause as HandshakeError).statusCode).to.equal(302);
    });

    it('nothing listening at the proxy: the system error is the cause', async () => {
      const probe = net.createServer();
      probe.listen(0, '127.0.0.1');
      await once(probe, 'listening');
      const { port } = probe.address() as AddressInfo;
      await new Promise<void>((resolve) => probe.close(() => resolve()));
      const error = await handshakeFailure(connect('ws://127.0.0.1:9/', { proxy: `http://127.0.0.1:${port}` }));
      expect(error.message).to.include(`connection to proxy http://127.0.0.1:${port} failed: `);
      expect((error.cause as NodeJS.ErrnoException).code).to.equal('ECONNREFUSED');
    });

    it('the proxy closing without a reply', async () => {
      const proxy = await startProxy({ reply: '' });
      const error = await handshakeFailure(connect('ws://127.0.0.1:9/', { proxy: proxy.url }));
      expect(error.message).to.include(`proxy ${proxy.url} closed the connection before answering CONNECT`);
      expect((error.cause as HandshakeError).proxy).to.equal(proxy.url);
    });

    it('a malformed reply', async () => {
      const proxy = await startProxy({ reply: 'SSH-2.0-OpenSSH\r\n\r\n' });
      const error = await handshakeFailure(connect('ws://127.0.0.1:9/', { proxy: proxy.url }));
      expect(error.message).to.include(`invalid response from proxy ${proxy.url}: malformed status line`);
    });

    it('a reply head larger than maxHandshakeHead', async () => {
      const proxy = await startProxy({ replyAndWait: `HTTP/1.1 200 OK\r\nX-Pad: ${'x'.repeat(2000)}\r\n` });
      const error = await handshakeFailure(connect('ws://127.0.0.1:9/', { proxy: proxy.url, maxHandshakeHead: 1024 }));
      expect(error.message).to.include(`invalid response from proxy ${proxy.url}: response head larger than 1024 bytes`);
    });

    it('bytes after the 2xx reply are refused rather than taken for the target’s', async () => {
      const target = await startTarget();
      const proxy = await startProxy({ established: 'HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 101 Switching Protocols' });
      const error = await handshakeFailure(connect(`ws://127.0.0.1:${target.port}/`, { proxy: proxy.url }));
      expect(error.message).to.include(`proxy ${proxy.url} sent 36 unexpected bytes after its CONNECT reply`);
    });

    it('the handshake timeout covers CONNECT; the proxy connection is closed', async () => {
      const proxy = await startProxy({ silent: true });
      const { value: stream, fire } = withHandshakeTimer(987_654, () => connect('ws://127.0.0.1:9/', { proxy: proxy.url, handshakeTimeout: 987_654 }));
      const request = await proxy.nextRequest();
      fire();
      const error = await handshakeFailure(stream);
      expect(error.message).to.include(`opening handshake timed out after 987654 ms (connecting to proxy ${proxy.url})`);
      expect((error.cause as HandshakeError).proxy).to.equal(proxy.url);
      await closedSocket(request.socket);
    });

    it('the handshake timeout covers the target behind the tunnel too', async () => {
      // A target that accepts the TCP connection, reads the upgrade request and never answers.
      const upgradeRequests: Buffer[] = [];
      const received: Array<() => void> = [];
      const accepted: net.Socket[] = [];
      const silent = net.createServer((socket) => {
        accepted.push(socket);
        socket.on('error', () => {});
        socket.on('data', (chunk: Buffer) => {
          upgradeRequests.push(chunk);
          received.shift()?.();
        });
      });
      silent.listen(0, '127.0.0.1');
      await once(silent, 'listening');
      cleanups.push(async () => {
        for (const socket of accepted) socket.destroy();
        await new Promise<void>((resolve) => silent.close(() => resolve()));
      });
      const proxy = await startProxy();
      const { port } = silent.address() as AddressInfo;
      const { value: stream, fire } = withHandshakeTimer(987_654, () =>
        connect(`ws://127.0.0.1:${port}/`, { proxy: proxy.url, handshakeTimeout: 987_654 }),
      );
      await new Promise<void>((resolve) => received.push(resolve));
      expect(Buffer.concat(upgradeRequests).toString('latin1')).to.match(/^GET \/ HTTP\/1\.1\r\n/);
      fire();
      const error = await handshakeFailure(stream);
      expect(error.message).to.include(`opening handshake timed out after 987654 ms (through proxy ${proxy.url})`);
      expect((error.cause as HandshakeError).proxy).to.equal(undefined);
      expect(proxy.requests).to.have.length(1);
      await closedSocket(proxy.requests[0]!.socket);
    });

    it('the target refusing the WebSocket is the target’s status, not a proxy failure', async () => {
      const http = net.createServer((socket) => {
        socket.on('error', () => {});
        socket.once('data', () => socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'));
      });
      http.listen(0, '127.0.0.1');
      await once(http, 'listening');
      cleanups.push(() => new Promise<void>((resolve) => http.close(() => resolve())));
      const proxy = await startProxy();
      const { port } = http.address() as AddressInfo;
      const error = await handshakeFailure(connect(`ws://127.0.0.1:${port}/`, { proxy: proxy.url }));
      expect(error.message).to.include('unexpected response status 404 Not Found');
      const cause = error.cause as HandshakeError;
      expect(cause.statusCode).to.equal(404);
      expect(cause.proxy).to.equal(undefined);
    });

    it('aborting the signal during CONNECT rejects with its reason and closes the proxy connection', async () => {
      const proxy = await startProxy({ silent: true });
      const controller = new AbortController();
      const stream = connect('ws://127.0.0.1:9/', { proxy: proxy.url, signal: controller.signal });
      const request = await proxy.nextRequest();
      const reason = new Error('stop');
      controller.abort(reason);
      expect(await rejectionOf(stream.opened)).to.equal(reason);
      expect(await rejectionOf(stream.closed)).to.equal(reason);
      await closedSocket(request.socket);
    });

    it('close() during CONNECT fails the handshake and closes the proxy connection', async () => {
      const proxy = await startProxy({ silent: true });
      const stream = connect('ws://127.0.0.1:9/', { proxy: proxy.url });
      const request = await proxy.nextRequest();
      stream.close();
      const error = await handshakeFailure(stream);
      expect(error.message).to.include('closed before the connection was established');
      await closedSocket(request.socket);
    });
  });

  describe("the environment, with proxy: 'env'", () => {
    isolateProxyEnvironment();

    it('HTTP_PROXY for ws: targets', async () => {
      const target = await startTarget();
      const proxy = await startProxy();
      process.env.HTTP_PROXY = proxy.url;
      await echoThrough(connect(`ws://127.0.0.1:${target.port}/`, { proxy: 'env' }));
      expect(proxy.requests.map((request) => request.requestLine)).to.deep.equal([`CONNECT 127.0.0.1:${target.port} HTTP/1.1`]);
    });

    it('HTTPS_PROXY for wss: targets, with credentials and proxy.tls for an https: proxy', async () => {
      const target = await startTarget(true);
      const proxy = await startProxy({ secure: true, requireAuth: basic('u:p w') });
      process.env.HTTPS_PROXY = `https://u:p%20w@localhost:${proxy.port}`;
      process.env.HTTP_PROXY = 'http://127.0.0.1:9';
      const stream = connect(`wss://localhost:${target.port}/`, { proxy: { url: 'env', tls: { ca: testCert } }, tls: { ca: testCert } });
      await echoThrough(stream);
      expect(proxy.requests[0]!.requestLine).to.equal(`CONNECT localhost:${target.port} HTTP/1.1`);
    });

    it('is not read without proxy: "env"', async () => {
      const target = await startTarget();
      const proxy = await startProxy();
      process.env.HTTP_PROXY = proxy.url;
      await echoThrough(connect(`ws://127.0.0.1:${target.port}/`, {}));
      await echoThrough(connect(`ws://127.0.0.1:${target.port}/`, { proxy: false }));
      expect(proxy.connections).to.equal(0);
      expect(target.upgrades).to.have.length(2);
    });

    it('HTTP_PROXY alone does not apply to wss: targets', async () => {
      const target = await startTarget(true);
      const proxy = await startProxy();
      process.env.HTTP_PROXY = proxy.url;
      await echoThrough(connect(`wss://localhost:${target.port}/`, { proxy: 'env', tls: { ca: testCert } }));
      expect(proxy.connections).to.equal(0);
    });

    it('NO_PROXY bypasses the proxy for matching targets only', async () => {
      const target = await startTarget();
      const proxy = await startProxy();
      process.env.HTTP_PROXY = proxy.url;
      process.env.NO_PROXY = `example.com, 127.0.0.1:${target.port}`;
      await echoThrough(connect(`ws://127.0.0.1:${target.port}/`, { proxy: 'env' }));
      expect(proxy.connections).to.equal(0);
      await echoThrough(connect(`ws://echo.proxy-test.invalid:${target.port}/`, { proxy: 'env' }));
      expect(proxy.requests.map((request) => request.requestLine)).to.deep.equal([`CONNECT echo.proxy-test.invalid:${target.port} HTTP/1.1`]);
    });

    it('a value without a scheme means http://', async () => {
      const target = await startTarget();
      const proxy = await startProxy();
      process.env.HTTP_PROXY = `127.0.0.1:${proxy.port}`;
      await echoThrough(connect(`ws://127.0.0.1:${target.port}/`, { proxy: 'env' }));
      expect(proxy.requests).to.have.length(1);
    });

    it('an unusable variable throws TypeError from the constructor, naming it', () => {
      process.env.HTTPS_PROXY = 'socks4://127.0.0.1:1080';
      const error = expectThrowsTypeError(() => new WebSocketStream('wss://example.com/', { proxy: 'env' }));
      expect(error.message).to.include('HTTPS_PROXY');
      // Not for ws: targets (another variable), nor for targets NO_PROXY exempts.
      const plain = new WebSocketStream('ws://example.com/', { proxy: 'env', signal: AbortSignal.abort() });
      expect(plain.url).to.equal('ws://example.com/');
      process.env.NO_PROXY = 'example.com';
      const exempt = new WebSocketStream('wss://example.com/', { proxy: 'env', signal: AbortSignal.abort() });
      expect(exempt.url).to.equal('wss://example.com/');
    });

    it('an explicit proxy ignores NO_PROXY', async () => {
      const target = await startTarget();
      const proxy = await startProxy();
      process.env.NO_PROXY = '*';
      await echoThrough(connect(`ws://127.0.0.1:${target.port}/`, { proxy: proxy.url }));
      expect(proxy.requests).to.have.length(1);
    });
  });

  describe('the proxy option: conversion', () => {
    const invalid: Array<[string, unknown]> = [
      ['a number', 42],
      ['true', true],
      ['an object without url', {}],
      ['a non-string url', { url: 3128 }],
      ['a non-object tls', { url: 'http://h:3128', tls: 'ca' }],
      ['a null tls', { url: 'http://h:3128', tls: null }],
      ['not a URL', 'proxy.example:3128'],
      ['a relative URL', '/proxy'],
      ['"ENV" (case matters)', 'ENV'],
      ['a socks4: URL', 'socks4://h:1080'],
      ['a socks: URL (SOCKS4 to curl, SOCKS5 to others)', 'socks://h:1080'],
      ['an ftp: URL', 'ftp://h/'],
      ['a ws: URL', 'ws://h:3128'],
      ['a path', 'http://h:3128/path'],
      ['a query', 'http://h:3128/?x=1'],
      ['a fragment', 'http://h:3128/#'],
      ['malformed percent-encoding in the credentials', 'http://us%zzer:pw@h:3128'],
      ['a colon in the user name', 'http://a%3Ab:pw@h:3128'],
    ];
    for (const [what, value] of invalid) {
      it(`${what}: TypeError`, () => {
        expectThrowsTypeError(() => new WebSocketStream('ws://127.0.0.1:1/', { proxy: value as string }));
      });
    }

    it('errors never echo the credentials', () => {
      for (const value of ['http://user:hunter2@h:3128/path', 'http://user:hunter2@h:3128?q', 'gopher://user:hunter2@h']) {
        const error = expectThrowsTypeError(() => new WebSocketStream('ws://127.0.0.1:1/', { proxy: value }));
        expect(error.message).to.not.include('hunter2');
      }
    });

    it('converts with the other options, before the URL is checked', () => {
      expectThrowsTypeError(() => new WebSocketStream('ftp://h/', { proxy: 'socks4://h:1080' }));
    });

    it('reads proxy once, and url and tls once each', () => {
      const reads: string[] = [];
      const proxyObject = {
        get url() {
          reads.push('url');
          return 'http://127.0.0.1:9';
        },
        get tls() {
          reads.push('tls');
          return undefined;
        },
      };
      const options = {
        get proxy() {
          reads.push('proxy');
          return proxyObject;
        },
        signal: AbortSignal.abort(),
      };
      new WebSocketStream('ws://127.0.0.1:1/', options);
      expect(reads).to.deep.equal(['proxy', 'url', 'tls']);
    });

    it('undefined, null and false mean no proxy', () => {
      expect(toProxySetting(undefined)).to.equal(null);
      expect(toProxySetting(null)).to.equal(null);
      expect(toProxySetting(false)).to.equal(null);
    });

    it("'env' and { url: 'env' } read the environment", () => {
      const ca = 'x';
      expect(toProxySetting('env')).to.deep.equal({ kind: 'env', tls: undefined });
      expect(toProxySetting({ url: 'env', tls: { ca } })).to.deep.equal({ kind: 'env', tls: { ca } });
    });

    it('resolveProxy: a fixed proxy for every target, env per target', () => {
      const fixed = toProxySetting('http://p:1')!;
      expect(resolveProxy(fixed, new URL('wss://a/'), { NO_PROXY: '*' })!.origin).to.equal('http://p:1');
      const fromEnv = toProxySetting('env')!;
      expect(resolveProxy(fromEnv, new URL('ws://a/'), { HTTP_PROXY: 'http://p:2' })!.origin).to.equal('http://p:2');
      expect(resolveProxy(fromEnv, new URL('wss://a/'), { HTTP_PROXY: 'http://p:2' })).to.equal(null);
      expect(resolveProxy(null, new URL('ws://a/'), { HTTP_PROXY: 'http://p:2' })).to.equal(null);
    });
  });

  describe('parseProxyUrl', () => {
    it('default ports, hosts without brackets, origins without credentials', () => {
      expect(parseProxyUrl('http://proxy.example', 'p')).to.deep.include({ secure: false, host: 'proxy.example', port: 80, origin: 'http://proxy.example', authorization: null });
      expect(parseProxyUrl('https://proxy.example', 'p')).to.deep.include({ secure: true, port: 443, origin: 'https://proxy.example' });
      expect(parseProxyUrl('HTTP://u:pw@[::1]:3128/', 'p')).to.deep.include({ host: '::1', port: 3128, origin: 'http://[::1]:3128', authorization: basic('u:pw') });
    });

    it('credentials: user only, password only, percent-decoded', () => {
      const authorization = (url: string): string | null => {
        const endpoint = parseProxyUrl(url, 'p');
        if (endpoint.kind !== 'http') throw new Error(`${url} is not an HTTP proxy`);
        return endpoint.authorization;
      };
      expect(authorization('http://user@h')).to.equal(basic('user:'));
      expect(authorization('http://:pw@h')).to.equal(basic(':pw'));
      expect(authorization('http://a%2Fb:c%3Ad%40e@h')).to.equal(basic('a/b:c:d@e'));
    });

    it('names the option or variable in its errors', () => {
      const error = expectPlainTypeError(thrownBy(() => parseProxyUrl('socks://h', 'HTTPS_PROXY')));
      expect(error.message).to.match(/^HTTPS_PROXY must be an http: or https: proxy URL \(CONNECT\), or socks5: or socks5h: \(SOCKS5\), not socks:$/);
    });
  });

  describe('proxyFromEnvironment', () => {
    const ws = new URL('ws://target.example/');
    const wss = new URL('wss://target.example/');

    it('lower-case names win over upper-case ones; empty values count as unset', () => {
      expect(proxyFromEnvironment(ws, { http_proxy: 'http://lower:1', HTTP_PROXY: 'http://upper:1' })!.host).to.equal('lower');
      expect(proxyFromEnvironment(ws, { http_proxy: '', HTTP_PROXY: 'http://upper:1' })!.host).to.equal('upper');
      expect(proxyFromEnvironment(wss, { https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:1' })!.host).to.equal('lower');
      expect(proxyFromEnvironment(ws, { no_proxy: 'target.example', NO_PROXY: 'other' })).to.equal(null);
      expect(proxyFromEnvironment(ws, { HTTP_PROXY: 'http://p:1', no_proxy: 'target.example' })).to.equal(null);
      expect(proxyFromEnvironment(ws, { HTTP_PROXY: 'http://p:1', no_proxy: ' ', NO_PROXY: 'target.example' })).to.equal(null);
    });

    it('each scheme its own variable, no fallback', () => {
      expect(proxyFromEnvironment(wss, { HTTP_PROXY: 'http://p:1' })).to.equal(null);
      expect(proxyFromEnvironment(ws, { HTTPS_PROXY: 'http://p:1' })).to.equal(null);
      expect(proxyFromEnvironment(ws, {})).to.equal(null);
    });

    it('an https: proxy from the environment gets the proxy TLS options', () => {
      const proxyTls = { ca: 'x' };
      expect(proxyFromEnvironment(wss, { HTTPS_PROXY: 'https://p' }, proxyTls)).to.deep.include({ secure: true, port: 443, tls: proxyTls });
    });

    it('NO_PROXY is checked against the effective port', () => {
      expect(proxyFromEnvironment(wss, { HTTPS_PROXY: 'http://p:1', NO_PROXY: 'target.example:443' })).to.equal(null);
      expect(proxyFromEnvironment(ws, { HTTP_PROXY: 'http://p:1', NO_PROXY: 'target.example:443' })).to.not.equal(null);
    });
  });

  describe('NO_PROXY matching', () => {
    const cases: Array<[string, string, number, boolean]> = [
      // [NO_PROXY, URL hostname, port, bypass?]
      ['*', 'anything.example', 80, true],
      ['', 'example.com', 80, false],
      [' , ,', 'example.com', 80, false],
      ['example.com', 'example.com', 80, true],
      ['example.com', 'www.example.com', 80, true],
      ['example.com', 'a.b.example.com', 443, true],
      ['example.com', 'notexample.com', 80, false],
      ['example.com', 'example.com.evil', 80, false],
      ['example.com', 'example.org', 80, false],
      ['.example.com', 'www.example.com', 80, true],
      ['.example.com', 'example.com', 80, true],
      ['*.example.com', 'www.example.com', 80, true],
      ['EXAMPLE.Com', 'www.example.com', 80, true],
      ['example.com.', 'www.example.com', 80, true],
      ['example.com', 'www.example.com.', 80, true],
      ['other.org,example.com', 'example.com', 80, true],
      ['other.org example.com', 'example.com', 80, true],
      ['other.org;example.com', 'example.com', 80, false],
      ['example.com:8080', 'example.com', 8080, true],
      ['example.com:8080', 'example.com', 80, false],
      ['.example.com:443', 'www.example.com', 443, true],
      ['example.com:http', 'example.com', 80, false],
      ['127.0.0.1', '127.0.0.1', 80, true],
      ['127.0.0.1', '127.0.0.2', 80, false],
      ['127.0.0.1:8080', '127.0.0.1', 8080, true],
      ['127.0.0.1:8080', '127.0.0.1', 8081, false],
      ['0.0.1', '127.0.0.1', 80, false],
      ['.0.0.1', '127.0.0.1', 80, false],
      ['localhost', '127.0.0.1', 80, false],
      ['127.0.0.1', 'localhost', 80, false],
      ['10.0.0.0/8', '10.1.2.3', 80, true],
      ['10.0.0.0/8', '11.1.2.3', 80, false],
      ['10.0.0.0/33', '10.1.2.3', 80, false],
      ['::1', '[::1]', 80, true],
      ['[::1]', '[::1]', 80, true],
      ['0:0:0:0:0:0:0:1', '[::1]', 80, true],
      ['[::1]:8080', '[::1]', 8080, true],
      ['[::1]:8080', '[::1]', 80, false],
      ['::1', '127.0.0.1', 80, false],
      ['fd00::/8', '[fd12:3456::1]', 80, true],
      ['[fd00::]/8', '[fd12:3456::1]', 80, true],
      ['fd00::/8', '[fe80::1]', 80, false],
      ['bücher.example', 'xn--bcher-kva.example', 80, true],
      ['xn--bcher-kva.example', 'www.xn--bcher-kva.example', 80, true],
      ['[::1', '[::1]', 80, false],
    ];
    for (const [noProxy, hostname, port, expected] of cases) {
      it(`${JSON.stringify(noProxy)} ${expected ? 'matches' : 'does not match'} ${hostname}:${port}`, () => {
        expect(bypassesProxy(noProxy, hostname, port)).to.equal(expected);
      });
    }

    it('matches the hostname a parsed URL gives (punycode, lower case, brackets)', () => {
      const url = new URL('ws://WWW.Bücher.Example:8080/');
      expect(bypassesProxy('bücher.example:8080', url.hostname, Number(url.port))).to.equal(true);
      const v6 = new URL('ws://[0::1]/');
      expect(bypassesProxy('::1', v6.hostname, 80)).to.equal(true);
    });
  });
});
