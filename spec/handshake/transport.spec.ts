// The client's transports besides TCP and proxies: Unix domain sockets (ws+unix:, wss+unix:, and
// the server's socketPath), against our server and `ws` in both roles; and `createConnection`, over
// a real net.Socket, a tls.TLSSocket and an in-process stream.duplexPair (Node 20.17+), with every
// way it can fail.
import { expect } from 'chai';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Duplex, duplexPair, PassThrough, Readable } from 'node:stream';
import tls from 'node:tls';
import { WebSocket as WsClient, WebSocketServer } from 'ws';
import { connectOptionsOf, connectTargetOf } from '../../lib/handshake/transport.js';
import {
  WebSocketStream,
  WebSocketStreamServer,
  type ServerWebSocketStream,
  type WebSocketStreamOptions,
  type WebSocketStreamServerOptions,
} from '../../lib/index.js';
import { expectThrowsDOMException, expectThrowsTypeError, rejectionOf } from '../helpers/facade.js';
import { cleanups, echoThrough, handshakeFailure, isolateProxyEnvironment, runCleanups, withHandshakeTimer } from '../helpers/proxy-peers.js';
import { testCert, testKey } from '../helpers/raw-peer.js';

/** A fresh directory for socket files, removed after the test. */
function socketDirectory(name = 'wss-sock-'): string {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), name));
  cleanups.push(() => fs.rmSync(directory, { recursive: true, force: true }));
  return directory;
}

interface EchoServer {
  server: WebSocketStreamServer;
  /** The accepted streams' requests: target and Host header. */
  requests: Array<{ url: string; host: string | undefined; streamUrl: string }>;
}

/** Our server, echoing every message, closed after the test. */
async function echoServer(options: WebSocketStreamServerOptions): Promise<EchoServer> {
  const server = new WebSocketStreamServer(options);
  cleanups.push(() => server.close());
  await server.listening;
  const requests: EchoServer['requests'] = [];
  void (async () => {
    for await (const peer of server.connections as unknown as AsyncIterable<ServerWebSocketStream>) {
      requests.push({ url: peer.request.url, host: peer.request.headers.host, streamUrl: peer.url });
      peer.opened.then(({ readable, writable }) => readable.pipeTo(writable)).catch(() => {});
    }
  })();
  return { server, requests };
}

/**
 * Two connected Duplexes made of two PassThroughs. Unlike stream.duplexPair, whose end() waits
 * until the other side has read the end (never, once the server destroyed its side: TLS then
 * cannot finish its shutdown, and only the close timer ends the connection), each side finishes
 * as a socket does, once its data is handed over.
 */
function passThroughPair(): [Duplex, Duplex] {
  const aToB = new PassThrough();
  const bToA = new PassThrough();
  return [Duplex.from({ readable: bToA, writable: aToB }), Duplex.from({ readable: aToB, writable: bToA })];
}

function client(url: string, options: WebSocketStreamOptions = {}): WebSocketStream {
  const stream = new WebSocketStream(url, options);
  cleanups.push(async () => {
    stream.close();
    await stream.closed.catch(() => {});
  });
  return stream;
}

describe('client transports', () => {
  afterEach(runCleanups);

  describe('Unix domain sockets', () => {
    it('ws+unix: our client and our server (socketPath), request path and query after the colon', async () => {
      const socketPath = path.join(socketDirectory(), 'echo.sock');
      const { server, requests } = await echoServer({ socketPath });
      expect(server.address()).to.equal(socketPath);
      const stream = client(`ws+unix://${socketPath}:/chat?room=1`);
      expect(stream.url).to.equal(`ws+unix://${socketPath}:/chat?room=1`);
      await echoThrough(stream);
      expect(requests).to.deep.equal([{ url: '/chat?room=1', host: 'localhost', streamUrl: 'ws://localhost/chat?room=1' }]);
    });

    it("no request path means '/', a query without one '/?query'; a host in the URL is the Host header", async () => {
      const socketPath = path.join(socketDirectory(), 'echo.sock');
      const { requests } = await echoServer({ socketPath });
      await echoThrough(client(`ws+unix://${socketPath}`));
      await echoThrough(client(`ws+unix://${socketPath}?x=1`));
      await echoThrough(client(`ws+unix://${socketPath}:`));
      await echoThrough(client(`ws+unix://app.internal${socketPath}:/v1`));
      expect(requests.map(({ url, host }) => [url, host])).to.deep.equal([
        ['/', 'localhost'],
        ['/?x=1', 'localhost'],
        ['/', 'localhost'],
        ['/v1', 'app.internal'],
      ]);
    });

    it('the socket path is percent-decoded', async () => {
      const socketPath = path.join(socketDirectory('wss sock '), 'echo server.sock');
      await echoServer({ socketPath });
      const url = `ws+unix://${encodeURI(socketPath)}:/`;
      expect(url).to.include('%20');
      await echoThrough(client(url));
    });

    it("the server's path option still filters the request path", async () => {
      const socketPath = path.join(socketDirectory(), 'echo.sock');
      await echoServer({ socketPath, path: '/chat' });
      await echoThrough(client(`ws+unix://${socketPath}:/chat`));
      const error = await handshakeFailure(client(`ws+unix://${socketPath}:/other`));
      expect(error.message).to.include('unexpected response status 404');
    });

    it('wss+unix: TLS over the socket, the certificate checked against localhost or the URL host', async () => {
      const socketPath = path.join(socketDirectory(), 'tls.sock');
      const { requests } = await echoServer({ socketPath, tls: { cert: testCert, key: testKey } });
      await echoThrough(client(`wss+unix://${socketPath}:/secure`, { tls: { ca: testCert } }));
      await echoThrough(client(`wss+unix://127.0.0.1${socketPath}:/`, { tls: { ca: testCert } }));
      expect(requests.map(({ url, host, streamUrl }) => [url, host, streamUrl])).to.deep.equal([
        ['/secure', 'localhost', 'wss://localhost/secure'],
        ['/', '127.0.0.1', 'wss://127.0.0.1/'],
      ]);
      const mismatch = await handshakeFailure(client(`wss+unix://wrong.example${socketPath}:/`, { tls: { ca: testCert } }));
      expect((mismatch.cause as NodeJS.ErrnoException).code).to.equal('ERR_TLS_CERT_ALTNAME_INVALID');
      const untrusted = await handshakeFailure(client(`wss+unix://${socketPath}:/`));
      expect(untrusted.message).to.match(/certificate/);
    });

    it('our client against a ws server on a Unix socket', async () => {
      const socketPath = path.join(socketDirectory(), 'ws.sock');
      const httpServer = http.createServer();
      const wss = new WebSocketServer({ server: httpServer });
      const seen: string[] = [];
      wss.on('connection', (socket, request) => {
        seen.push(`${request.url} ${request.headers.host}`);
        socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
      });
      httpServer.listen(socketPath);
      await once(httpServer, 'listening');
      cleanups.push(async () => {
        for (const peer of wss.clients) peer.terminate();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
        await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      });
      await echoThrough(client(`ws+unix://${socketPath}:/from-us?x=1`));
      expect(seen).to.deep.equal(['/from-us?x=1 localhost']);
    });

    it("ws's client against our server on a Unix socket", async () => {
      const socketPath = path.join(socketDirectory(), 'ours.sock');
      const { requests } = await echoServer({ socketPath, protocols: ['chat'] });
      const ws = new WsClient(`ws+unix://${socketPath}:/from-ws`, ['chat']);
      cleanups.push(() => ws.terminate());
      await once(ws, 'open');
      expect(ws.protocol).to.equal('chat');
      ws.send('hello over a Unix socket');
      const [data] = (await once(ws, 'message')) as [Buffer];
      expect(data.toString()).to.equal('hello over a Unix socket');
      ws.close(1000, 'done');
      const [code] = (await once(ws, 'close')) as [number];
      expect(code).to.equal(1000);
      expect(requests[0]!.url).to.equal('/from-ws');
    });

    it('no server at the path: the system error', async () => {
      const socketPath = path.join(socketDirectory(), 'nobody.sock');
      const error = await handshakeFailure(client(`ws+unix://${socketPath}:/`));
      expect((error.cause as NodeJS.ErrnoException).code).to.equal('ENOENT');
    });

    it('malformed ws+unix: URLs throw SyntaxError; other schemes still do', () => {
      for (const url of [
        'ws+unix://',
        'ws+unix:///tmp/s.sock:chat',
        'ws+unix:///tmp/%zz.sock:/',
        'ws+unix:///tmp/s.sock:/#',
        'wss+unix:///tmp/s.sock:/#frag',
        'unix:///tmp/s.sock',
        'http+unix:///tmp/s.sock:/',
        'ws+tcp://localhost/',
        'ftp://localhost/',
      ]) {
        expectThrowsDOMException(() => new WebSocketStream(url), 'SyntaxError');
      }
    });

    describe('with proxies', () => {
      isolateProxyEnvironment();

      it('a fixed proxy cannot reach a Unix socket: TypeError', () => {
        expectThrowsTypeError(() => new WebSocketStream('ws+unix:///tmp/s.sock:/', { proxy: 'socks5h://127.0.0.1:1080' }));
        expectThrowsTypeError(() => new WebSocketStream('ws+unix:///tmp/s.sock:/', { proxy: 'http://127.0.0.1:3128' }));
      });

      it("'env' leaves Unix sockets alone", async () => {
        const socketPath = path.join(socketDirectory(), 'echo.sock');
        await echoServer({ socketPath });
        process.env.ALL_PROXY = 'socks5h://127.0.0.1:9';
        process.env.HTTP_PROXY = 'http://127.0.0.1:9';
        await echoThrough(client(`ws+unix://${socketPath}:/`, { proxy: 'env' }));
      });
    });

    describe("the server's socketPath", () => {
      it('cannot go with port, host or server, and must be a non-empty string', () => {
        for (const options of [
          { socketPath: '/tmp/x.sock', port: 0 },
          { socketPath: '/tmp/x.sock', host: '127.0.0.1' },
          { socketPath: '/tmp/x.sock', server: http.createServer() },
          { socketPath: '' },
          { socketPath: 42 },
        ]) {
          expectThrowsTypeError(() => new WebSocketStreamServer(options as WebSocketStreamServerOptions));
        }
      });

      it('a path in use rejects listening; close() removes the socket file', async () => {
        const socketPath = path.join(socketDirectory(), 'taken.sock');
        const first = new WebSocketStreamServer({ socketPath });
        await first.listening;
        expect(fs.statSync(socketPath).isSocket()).to.equal(true);
        const second = new WebSocketStreamServer({ socketPath });
        const error = (await rejectionOf(second.listening)) as NodeJS.ErrnoException;
        expect(error.code).to.equal('EADDRINUSE');
        await first.close();
        expect(fs.existsSync(socketPath)).to.equal(false);
      });
    });

    it('connectTargetOf: socket path, request target and Host of each URL form', () => {
      expect(connectTargetOf(new URL('ws+unix:///run/app.sock:/a/b?c'))).to.deep.equal({
        secure: false,
        host: 'localhost',
        port: 0,
        socketPath: '/run/app.sock',
        requestTarget: '/a/b?c',
        hostHeader: 'localhost',
      });
      expect(connectTargetOf(new URL('wss+unix://[::1]/run/app.sock'))).to.deep.include({ secure: true, host: '::1', socketPath: '/run/app.sock', requestTarget: '/', hostHeader: '[::1]' });
      expect(connectTargetOf(new URL('ws+unix:relative.sock:/x'))).to.deep.include({ socketPath: 'relative.sock', requestTarget: '/x' });
      expect(connectTargetOf(new URL('wss://[::1]:8443/p?q'))).to.deep.equal({
        secure: true,
        host: '::1',
        port: 8443,
        socketPath: null,
        requestTarget: '/p?q',
        hostHeader: '[::1]:8443',
      });
    });
  });

  describe('createConnection', () => {
    it('is called once, from the constructor, with a copy of the URL and the net.connect options; a net.Socket it returns carries the handshake', async () => {
      const { server, requests } = await echoServer({ port: 0, host: '127.0.0.1' });
      const { port } = server.address() as AddressInfo;
      const calls: Array<[URL, unknown]> = [];
      const stream = client(`http://127.0.0.1:${port}/via?user=1`, {
        createConnection: (url, options) => {
          calls.push([url, { ...options }]);
          url.pathname = '/mutated';
          return net.connect(options);
        },
      });
      expect(calls).to.have.length(1);
      const [url, options] = calls[0]!;
      expect(url).to.be.an.instanceOf(URL);
      expect(url.pathname).to.equal('/mutated');
      expect(options).to.deep.equal({ host: '127.0.0.1', port });
      await echoThrough(stream);
      // Changing the URL it was given changed nothing.
      expect(stream.url).to.equal(`ws://127.0.0.1:${port}/via?user=1`);
      expect(requests[0]!.url).to.equal('/via?user=1');
    });

    it('is not called when the signal is already aborted', () => {
      let calls = 0;
      const stream = client('ws://127.0.0.1:9/', {
        signal: AbortSignal.abort(),
        createConnection: () => {
          calls++;
          return new PassThrough();
        },
      });
      expect(calls).to.equal(0);
      expect(stream.url).to.equal('ws://127.0.0.1:9/');
    });

    it('wss: gets the tls.connect options (with the tls option, host and SNI); a TLSSocket is used as is', async () => {
      const { server } = await echoServer({ port: 0, host: '127.0.0.1', tls: { cert: testCert, key: testKey } });
      const { port } = server.address() as AddressInfo;
      let received: tls.ConnectionOptions | null = null;
      await echoThrough(
        client(`wss://localhost:${port}/`, {
          tls: { ca: testCert, minVersion: 'TLSv1.2' },
          createConnection: (_url, options) => {
            received = options;
            return tls.connect({ ...options, host: '127.0.0.1' });
          },
        }),
      );
      expect(received).to.deep.equal({ ca: testCert, minVersion: 'TLSv1.2', host: 'localhost', port, servername: 'localhost' });
    });

    it('wss: over a plain stream the library runs TLS itself, checking the URL host', async () => {
      const { server } = await echoServer({ port: 0, host: '127.0.0.1', tls: { cert: testCert, key: testKey } });
      const { port } = server.address() as AddressInfo;
      let plain: net.Socket | null = null;
      await echoThrough(
        client(`wss://localhost:${port}/`, {
          tls: { ca: testCert },
          createConnection: (_url, { port: target }) => (plain = net.connect({ host: '127.0.0.1', port: target! })),
        }),
      );
      expect(plain).to.not.be.an.instanceOf(tls.TLSSocket);
      const mismatch = await handshakeFailure(
        client(`wss://wrong.example:${port}/`, { tls: { ca: testCert }, createConnection: () => net.connect({ host: '127.0.0.1', port }) }),
      );
      expect((mismatch.cause as NodeJS.ErrnoException).code).to.equal('ERR_TLS_CERT_ALTNAME_INVALID');
    });

    it('an in-process duplexPair into a node:http server that never listens: handshake, messages and a clean close', async () => {
      const httpServer = http.createServer();
      const { server } = await echoServer({ server: httpServer });
      const stream = client('ws://in-process.example/pipe', {
        createConnection: () => {
          const [ours, theirs] = duplexPair();
          // node:http serves any Duplex handed to its 'connection' event.
          httpServer.emit('connection', theirs);
          return ours;
        },
      });
      await echoThrough(stream);
      expect(server.connectionCount).to.equal(0);
    });

    it('wss: over an in-process pair of PassThroughs, TLS and all', async () => {
      const httpsServer = https.createServer({ cert: testCert, key: testKey });
      const { requests } = await echoServer({ server: httpsServer });
      await echoThrough(
        client('wss://localhost/secure-pipe', {
          tls: { ca: testCert },
          createConnection: () => {
            const [ours, theirs] = passThroughPair();
            httpsServer.emit('connection', theirs);
            return ours;
          },
        }),
      );
      expect(requests[0]!.streamUrl).to.equal('wss://localhost/secure-pipe');
    });

    it('a promise of a stream', async () => {
      const { server } = await echoServer({ port: 0, host: '127.0.0.1' });
      const { port } = server.address() as AddressInfo;
      await echoThrough(
        client(`ws://127.0.0.1:${port}/`, {
          createConnection: async (_url, options) => {
            await new Promise((resolve) => setImmediate(resolve));
            const socket = net.connect(options);
            await once(socket, 'connect');
            return socket;
          },
        }),
      );
    });

    it('ws+unix: receives { path }', async () => {
      const socketPath = path.join(socketDirectory(), 'echo.sock');
      await echoServer({ socketPath });
      let received: unknown;
      await echoThrough(
        client(`ws+unix://${socketPath}:/`, {
          createConnection: (_url, options) => {
            received = { ...options };
            return net.connect(options);
          },
        }),
      );
      expect(received).to.deep.equal({ path: socketPath });
    });

    describe('failures: the handshake fails, nothing crashes', () => {
      const thrown = new Error('no route to the moon');
      const cases: Array<{ what: string; create: () => unknown; message: RegExp; cause?: (cause: unknown) => void }> = [
        { what: 'it throws', create: () => { throw thrown; }, message: /createConnection failed: no route to the moon$/, cause: (cause) => expect(cause).to.equal(thrown) },
        { what: 'it throws a string', create: () => { throw 'plain string'; }, message: /createConnection failed: plain string$/, cause: (cause) => expect(cause).to.equal('plain string') },
        { what: 'it throws undefined', create: () => { throw undefined; }, message: /createConnection failed: undefined$/ },
        { what: 'its promise rejects', create: () => Promise.reject(thrown), message: /createConnection failed: no route to the moon$/, cause: (cause) => expect(cause).to.equal(thrown) },
        { what: 'it returns undefined', create: () => undefined, message: /createConnection must return a stream\.Duplex \(or a promise of one\), not undefined$/ },
        { what: 'it returns null', create: () => null, message: /, not null$/ },
        { what: 'it returns a plain object', create: () => ({ write() {}, on() {} }), message: /, not a plain object$/ },
        { what: 'it returns a Readable', create: () => Readable.from(['x']), message: /, not a Readable$/ },
        { what: 'its promise resolves to a string', create: () => Promise.resolve('socket'), message: /, not string$/ },
        {
          what: 'it returns a destroyed stream',
          create: () => {
            const [ours] = duplexPair();
            ours.destroy();
            return ours;
          },
          message: /createConnection returned a destroyed stream$/,
        },
      ];
      for (const { what, create, message, cause } of cases) {
        it(`${what}`, async () => {
          const stream = client('ws://127.0.0.1:9/', { createConnection: create as WebSocketStreamOptions['createConnection'] });
          const error = await handshakeFailure(stream);
          expect(error.message).to.match(message);
          if (cause !== undefined) cause(error.cause);
          else expect(error.cause).to.be.an.instanceOf(Error);
        });
      }

      it('a non-duplex is reported as a TypeError cause', async () => {
        const error = await handshakeFailure(client('ws://127.0.0.1:9/', { createConnection: (() => 42) as never }));
        expect(error.cause).to.be.an.instanceOf(TypeError);
        expect((error.cause as Error).message).to.equal('createConnection must return a stream.Duplex (or a promise of one), not number');
      });

      it('the stream errors: that error is the cause', async () => {
        const failure = new Error('transport broke');
        const error = await handshakeFailure(
          client('ws://127.0.0.1:9/', {
            createConnection: () => {
              const [ours] = duplexPair();
              setImmediate(() => ours.destroy(failure));
              return ours;
            },
          }),
        );
        expect(error.cause).to.equal(failure);
      });

      it('the peer ends the stream before answering', async () => {
        const error = await handshakeFailure(
          client('ws://127.0.0.1:9/', {
            createConnection: () => {
              const [ours, theirs] = duplexPair();
              theirs.once('data', () => theirs.end());
              theirs.resume();
              return ours;
            },
          }),
        );
        expect(error.message).to.include('connection closed before the handshake completed');
      });

      it('the handshake timeout covers a createConnection that never delivers; a late stream is destroyed', async () => {
        let deliver: (stream: Duplex) => void = () => {};
        const { value: stream, fire } = withHandshakeTimer(5432, () =>
          client('ws://127.0.0.1:9/', { handshakeTimeout: 5432, createConnection: () => new Promise<Duplex>((resolve) => (deliver = resolve)) }),
        );
        fire();
        const error = await handshakeFailure(stream);
        expect(error.message).to.include('opening handshake timed out after 5432 ms (waiting for createConnection)');
        const [late, other] = duplexPair();
        deliver(late);
        await once(late, 'close');
        expect(late.destroyed).to.equal(true);
        other.destroy();
      });

      it('aborting while createConnection is pending rejects with the reason', async () => {
        const controller = new AbortController();
        let deliver: (stream: Duplex) => void = () => {};
        const stream = client('ws://127.0.0.1:9/', { signal: controller.signal, createConnection: () => new Promise<Duplex>((resolve) => (deliver = resolve)) });
        const reason = new Error('changed my mind');
        controller.abort(reason);
        expect(await rejectionOf(stream.opened)).to.equal(reason);
        const [late, other] = duplexPair();
        deliver(late);
        await once(late, 'close');
        other.destroy();
      });
    });

    it('must be a function, and cannot go with proxy: TypeError from the constructor', () => {
      for (const value of ['net.connect', 42, {}, true]) {
        expectThrowsTypeError(() => new WebSocketStream('ws://127.0.0.1:9/', { createConnection: value as never }));
      }
      const create = (): Duplex => new PassThrough();
      expectThrowsTypeError(() => new WebSocketStream('ws://127.0.0.1:9/', { createConnection: create, proxy: 'socks5h://127.0.0.1:1080' }));
      expectThrowsTypeError(() => new WebSocketStream('ws://127.0.0.1:9/', { createConnection: create, proxy: 'env' }));
      // undefined and null mean none.
      for (const value of [undefined, null]) {
        const stream = new WebSocketStream('ws://127.0.0.1:9/', { createConnection: value as never, signal: AbortSignal.abort() });
        expect(stream.url).to.equal('ws://127.0.0.1:9/');
      }
    });

    it('connectOptionsOf: no SNI for IP literals; the tls option never overrides where to connect', () => {
      const options = connectOptionsOf(connectTargetOf(new URL('wss://[::1]:8443/')), { ca: 'x', host: 'elsewhere', port: 1 } as tls.ConnectionOptions);
      expect(options).to.deep.equal({ ca: 'x', host: '::1', port: 8443 });
      expect(connectOptionsOf(connectTargetOf(new URL('wss://example.com/')), { servername: 'sni.example' })).to.deep.equal({
        servername: 'sni.example',
        host: 'example.com',
        port: 443,
      });
    });
  });
});
