// The client's side of WebSockets over HTTP/2 (RFC 8441): the `http2` option (true, 'prefer', a
// session of the application's), the pool of sessions per origin, and the handshake's failures,
// timeout, abort and close-before-open, against raw node:http2 servers and against our server.
import { expect } from 'chai';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import type * as tls from 'node:tls';
import { WebSocketError, WebSocketStream, WebSocketStreamServer, type WebSocketStreamOptions, type WebSocketStreamServerOptions } from '../../lib/index.js';
import { tlsOptionsKey } from '../../lib/handshake/h2-pool.js';
import { expectWebSocketError, leakFree, rejection, type Guard } from '../helpers/faults.js';
import { closeServer, closeSession, listenH2, rstCodeOf, trackSessions } from '../helpers/h2.js';
import { testCert, testKey } from '../helpers/raw-peer.js';
import { Acceptor, echo } from '../helpers/server-helpers.js';

const TLS = { key: testKey, cert: testCert };
/** One object for every client of a test: equal options share a session anyway (tlsOptionsKey). */
const CLIENT_TLS = { ca: testCert };
/** Short, so that pooled sessions are gone before the leak check looks. */
const IDLE = { http2IdleTimeout: 50 };

/** Opens a client that the test closes (and waits for) at its end. */
function client(guard: Guard, url: string, options: WebSocketStreamOptions = {}): WebSocketStream {
  const stream = new WebSocketStream(url, { ...IDLE, ...options });
  guard.defer(async () => {
    stream.close();
    await stream.closed.catch(() => {});
  });
  return stream;
}

/** A raw node:http2 server (h2c, or TLS with allowHTTP1 when `secure`), its sessions closed at the end. */
async function rawH2Server(
  guard: Guard,
  options: { secure?: boolean; enableConnectProtocol?: boolean },
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void,
): Promise<{ server: http2.Http2Server | http2.Http2SecureServer; port: number; sessions: http2.ServerHttp2Session[] }> {
  const settings = { enableConnectProtocol: options.enableConnectProtocol ?? true };
  const server = options.secure ? http2.createSecureServer({ ...TLS, settings }) : http2.createServer({ settings });
  server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    stream.on('error', () => {});
    onStream(stream, headers);
  });
  guard.defer(() => closeServer(server));
  const sessions = trackSessions(guard, server);
  const port = await listenH2(server);
  return { server, port, sessions };
}

/** Our server with http2: true, echoing; its sessions are counted. */
async function ourServer(guard: Guard, options: Partial<WebSocketStreamServerOptions> = {}): Promise<{ server: WebSocketStreamServer; port: number; acceptor: Acceptor }> {
  const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', http2: true, ...options } as WebSocketStreamServerOptions);
  guard.defer(() => server.close());
  await server.listening;
  const acceptor = new Acceptor(server, (stream) => void echo(stream));
  return { server, port: (server.address() as AddressInfo).port, acceptor };
}

async function roundTrip(stream: WebSocketStream, message: string): Promise<void> {
  const { readable, writable } = await stream.opened;
  const writer = writable.getWriter();
  const reader = readable.getReader();
  await writer.write(message);
  expect((await reader.read()).value).to.equal(message);
  writer.releaseLock();
  reader.releaseLock();
}

function causeOf(error: unknown): Error & { statusCode?: number; headers?: Map<string, string[]> } {
  return (error as Error).cause as Error & { statusCode?: number; headers?: Map<string, string[]> };
}

describe('WebSockets over HTTP/2 (RFC 8441): the client', function () {
  this.timeout(20_000);

  describe('the extended CONNECT request', () => {
    leakFree('is RFC 8441 §5\'s: :method CONNECT, :protocol websocket, :scheme http for ws:, :authority, :path with the query; version 13, offers, user headers; no Upgrade, Connection, Host or key', async (guard) => {
      const seen: http2.IncomingHttpHeaders[] = [];
      const { port } = await rawH2Server(guard, {}, (stream, headers) => {
        seen.push(headers);
        stream.respond({ ':status': 403 });
        stream.end();
      });
      const stream = client(guard, `ws://127.0.0.1:${port}/chat?room=1`, { http2: true, protocols: ['a', 'b'], headers: { authorization: 'Bearer x', 'X-Two': '2' } });
      const error = await rejection(stream.opened);
      expect(causeOf(error).statusCode).to.equal(403);
      const headers = seen[0]!;
      expect(headers[':method']).to.equal('CONNECT');
      expect(headers[':protocol']).to.equal('websocket');
      expect(headers[':scheme']).to.equal('http');
      expect(headers[':authority']).to.equal(`127.0.0.1:${port}`);
      expect(headers[':path']).to.equal('/chat?room=1');
      expect(headers['sec-websocket-version']).to.equal('13');
      expect(headers['sec-websocket-protocol']).to.equal('a, b');
      expect(headers['sec-websocket-extensions']).to.equal('permessage-deflate; client_max_window_bits');
      expect(headers.authorization).to.equal('Bearer x');
      expect(headers['x-two']).to.equal('2');
      for (const name of ['upgrade', 'connection', 'host', 'sec-websocket-key']) expect(headers, name).to.not.have.property(name);
    });

    leakFree(':scheme is https for wss:, over a TLS connection that negotiated h2 by ALPN', async (guard) => {
      const seen: http2.IncomingHttpHeaders[] = [];
      const { port } = await rawH2Server(guard, { secure: true }, (stream, headers) => {
        seen.push(headers);
        stream.respond({ ':status': 404 });
        stream.end();
      });
      const stream = client(guard, `wss://localhost:${port}/`, { http2: true, tls: CLIENT_TLS });
      expect(causeOf(await rejection(stream.opened)).statusCode).to.equal(404);
      expect(seen[0]![':scheme']).to.equal('https');
      expect(seen[0]![':authority']).to.equal(`localhost:${port}`);
    });
  });

  describe('against our server', () => {
    leakFree('opens, echoes and closes cleanly; the server sees HTTP/2', async (guard) => {
      const { port, acceptor } = await ourServer(guard, { protocols: ['chat'], perMessageDeflate: true });
      const stream = client(guard, `ws://127.0.0.1:${port}/echo`, { http2: true, protocols: ['chat'] });
      const { protocol, extensions } = await stream.opened;
      expect(protocol).to.equal('chat');
      expect(extensions).to.match(/^permessage-deflate/);
      const peer = await acceptor.next();
      expect(peer.request.httpVersion).to.equal('2.0');
      await roundTrip(stream, 'x'.repeat(5000));
      stream.close({ closeCode: 4000, reason: 'bye' });
      expect(await stream.closed).to.deep.equal({ closeCode: 4000, reason: 'bye' });
      expect(await peer.closed).to.deep.equal({ closeCode: 4000, reason: 'bye' });
    });

    leakFree('WebSockets to one origin share one session; equal tls options share it, other tls options get their own', async (guard) => {
      const { port } = await ourServer(guard, { tls: TLS });
      const before = guard.serverSockets.length;
      const clients = [
        client(guard, `wss://localhost:${port}/1`, { http2: true, tls: { ca: testCert } }),
        client(guard, `wss://localhost:${port}/2`, { http2: true, tls: { ca: Buffer.from(testCert) } }),
        client(guard, `wss://localhost:${port}/3`, { http2: true, tls: { ca: testCert } }),
      ];
      for (const stream of clients) await roundTrip(stream, 'shared');
      expect(guard.serverSockets.length - before, 'TCP connections').to.equal(1);
      const other = client(guard, `wss://localhost:${port}/4`, { http2: true, tls: { ca: testCert, servername: 'localhost' } });
      await roundTrip(other, 'apart');
      expect(guard.serverSockets.length - before, 'TCP connections').to.equal(2);
    });

    leakFree('a session passed as http2 carries the WebSocket and stays open after it', async (guard) => {
      const { port, acceptor } = await ourServer(guard);
      const session = http2.connect(`http://127.0.0.1:${port}`);
      guard.defer(() => closeSession(session));
      const stream = client(guard, `ws://127.0.0.1:${port}/`, { http2: session });
      await roundTrip(stream, 'on your session');
      const peer = await acceptor.next();
      expect(peer.request.remotePort).to.equal((session.socket as { localPort?: number }).localPort);
      stream.close();
      await stream.closed;
      expect(session.closed || session.destroyed).to.equal(false);
      // The same session serves the next one.
      const again = client(guard, `ws://127.0.0.1:${port}/`, { http2: session });
      await roundTrip(again, 'again');
    });

    leakFree('a session passed as http2 that fails to connect fails the handshake at once; one whose encryption does not match the URL too', async (guard) => {
      const closed = http.createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', () => resolve()));
      const closedPort = (closed.address() as AddressInfo).port;
      await closeServer(closed);
      const failing = http2.connect(`http://127.0.0.1:${closedPort}`);
      failing.on('error', () => {});
      const stream = client(guard, `ws://127.0.0.1:${closedPort}/`, { http2: failing });
      expect((await rejection(stream.opened) as Error).message).to.contain('closed before the handshake');

      const { port } = await ourServer(guard);
      const plain = http2.connect(`http://127.0.0.1:${port}`);
      guard.defer(() => closeSession(plain));
      const mismatch = client(guard, `wss://127.0.0.1:${port}/`, { http2: plain });
      expect((await rejection(mismatch.opened) as Error).message).to.contain('is not encrypted, and the URL is wss:');
    });

    leakFree('a server reset (RST_STREAM) is an unclean close (1006) of that WebSocket alone', async (guard) => {
      const streams = new Map<string, http2.ServerHttp2Stream>();
      const { port } = await rawH2Server(guard, {}, (stream, headers) => {
        streams.set(String(headers[':path']), stream);
        stream.respond({ ':status': 200 });
      });
      const first = client(guard, `ws://127.0.0.1:${port}/a`, { http2: true, closeTimeout: 100 });
      const second = client(guard, `ws://127.0.0.1:${port}/b`, { http2: true, closeTimeout: 100 });
      await first.opened;
      const { readable } = await second.opened;
      streams.get('/a')!.close(http2.constants.NGHTTP2_CANCEL);
      expectWebSocketError(await rejection(first.closed), 1006);
      // The other WebSocket on the same session still receives: an unmasked text frame "hi".
      streams.get('/b')!.write(Buffer.from([0x81, 0x02, 0x68, 0x69]));
      expect((await readable.getReader().read()).value).to.equal('hi');
    });
  });

  describe('when the server does not take WebSockets over HTTP/2', () => {
    leakFree('http2: true fails with a HandshakeError naming RFC 8441 when the SETTINGS lack SETTINGS_ENABLE_CONNECT_PROTOCOL', async (guard) => {
      let streams = 0;
      const { port } = await rawH2Server(guard, { enableConnectProtocol: false }, () => streams++);
      const stream = client(guard, `ws://127.0.0.1:${port}/`, { http2: true });
      const error = expectWebSocketError(await rejection(stream.opened), null);
      expect(error.message).to.contain('does not support WebSockets over HTTP/2 (RFC 8441)');
      expect(causeOf(error).name).to.equal('HandshakeError');
      expectWebSocketError(await rejection(stream.closed), 1006);
      expect(streams, 'no CONNECT was sent').to.equal(0);
    });

    leakFree('http2: true to an HTTPS server without h2 fails: ALPN chose HTTP/1.1', async (guard) => {
      const server = https.createServer({ ...TLS, ALPNProtocols: ['http/1.1'] });
      guard.defer(() => closeServer(server));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
      const stream = client(guard, `wss://localhost:${(server.address() as AddressInfo).port}/`, { http2: true, tls: CLIENT_TLS });
      expect((await rejection(stream.opened) as Error).message).to.contain('did not negotiate HTTP/2 (ALPN: http/1.1)');
    });

    leakFree('http2: true to a plain HTTP/1.1 server over ws: fails: it does not speak h2c', async (guard) => {
      const server = http.createServer((_request, response) => response.end());
      guard.defer(() => {
        server.closeAllConnections();
        return closeServer(server);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
      const stream = client(guard, `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`, { http2: true });
      expect((await rejection(stream.opened) as Error).message).to.contain('did not speak HTTP/2 without TLS (h2c)');
    });

    leakFree("'prefer' falls back to HTTP/1.1 over the TLS connection on which ALPN chose HTTP/1.1 (one connection in all)", async (guard) => {
      const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', tls: TLS });
      guard.defer(() => server.close());
      await server.listening;
      const acceptor = new Acceptor(server, (peer) => void echo(peer));
      const before = guard.serverSockets.length;
      const stream = client(guard, `wss://localhost:${(server.address() as AddressInfo).port}/`, { http2: 'prefer', tls: CLIENT_TLS });
      await roundTrip(stream, 'over HTTP/1.1');
      expect((await acceptor.next()).request.httpVersion).to.equal('1.1');
      expect(guard.serverSockets.length - before, 'TCP connections').to.equal(1);
    });

    leakFree("'prefer' falls back to HTTP/1.1 when an HTTP/2 server lacks SETTINGS_ENABLE_CONNECT_PROTOCOL (allowHTTP1)", async (guard) => {
      const server = http2.createSecureServer({ ...TLS, allowHTTP1: true });
      guard.defer(() => closeServer(server));
      trackSessions(guard, server);
      const { handleUpgrade } = await import('../../lib/index.js');
      const upgrades: string[] = [];
      server.on('upgrade', (request: http.IncomingMessage, socket, head) => {
        upgrades.push(request.httpVersion);
        void handleUpgrade(request, socket, head).then((peer) => peer && echo(peer));
      });
      const port = await listenH2(server);
      const stream = client(guard, `wss://localhost:${port}/`, { http2: 'prefer', tls: CLIENT_TLS });
      await roundTrip(stream, 'fell back');
      expect(upgrades).to.deep.equal(['1.1']);
    });

    leakFree("'prefer' falls back to HTTP/1.1 when ws: finds a server that does not speak h2c", async (guard) => {
      const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1' });
      guard.defer(() => server.close());
      await server.listening;
      const acceptor = new Acceptor(server, (peer) => void echo(peer));
      const stream = client(guard, `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`, { http2: 'prefer' });
      await roundTrip(stream, 'plain');
      expect((await acceptor.next()).request.httpVersion).to.equal('1.1');
    });

    leakFree("'prefer' uses HTTP/2 when the server allows it", async (guard) => {
      const { port, acceptor } = await ourServer(guard);
      const stream = client(guard, `ws://127.0.0.1:${port}/`, { http2: 'prefer' });
      await roundTrip(stream, 'h2');
      expect((await acceptor.next()).request.httpVersion).to.equal('2.0');
    });
  });

  describe('handshake failures, timeout, abort and close() before open (as over HTTP/1.1)', () => {
    leakFree('a non-200 response fails with its status and headers (cause: HandshakeError), and the stream is reset', async (guard) => {
      let serverStream: http2.ServerHttp2Stream | null = null;
      const { port } = await rawH2Server(guard, {}, (stream) => {
        serverStream = stream;
        // A 2xx other than 200 is a refusal too (RFC 8441 §5).
        stream.respond({ ':status': 202, 'x-why': 'because' });
      });
      const stream = client(guard, `ws://127.0.0.1:${port}/`, { http2: true });
      const error = expectWebSocketError(await rejection(stream.opened), null);
      expect(error.message).to.contain('unexpected response status 202');
      expect(causeOf(error).statusCode).to.equal(202);
      expect(causeOf(error).headers!.get('x-why')).to.deep.equal(['because']);
      expect(await rstCodeOf(serverStream!)).to.equal(http2.constants.NGHTTP2_CANCEL);
    });

    leakFree('a subprotocol that was not offered fails the handshake', async (guard) => {
      const { port } = await rawH2Server(guard, {}, (stream) => stream.respond({ ':status': 200, 'sec-websocket-protocol': 'other' }));
      const stream = client(guard, `ws://127.0.0.1:${port}/`, { http2: true, protocols: ['mine'] });
      expect((await rejection(stream.opened) as Error).message).to.contain('not offered: other');
    });

    leakFree('handshakeTimeout: a CONNECT never answered fails with "timed out" and is reset with CANCEL', async (guard) => {
      const streams: http2.ServerHttp2Stream[] = [];
      const { port } = await rawH2Server(guard, {}, (stream) => streams.push(stream));
      const stream = client(guard, `ws://127.0.0.1:${port}/`, { http2: true, handshakeTimeout: 200 });
      const error = expectWebSocketError(await rejection(stream.opened), null);
      expect(error.message).to.contain('opening handshake timed out after 200 ms');
      expectWebSocketError(await rejection(stream.closed), 1006);
      expect(await rstCodeOf(streams[0]!)).to.equal(http2.constants.NGHTTP2_CANCEL);
    });

    leakFree('an AbortSignal during the handshake rejects opened and closed with its reason and resets the stream', async (guard) => {
      const streams: http2.ServerHttp2Stream[] = [];
      let arrived!: () => void;
      const arrival = new Promise<void>((resolve) => (arrived = resolve));
      const { port } = await rawH2Server(guard, {}, (stream) => {
        streams.push(stream);
        arrived();
      });
      const controller = new AbortController();
      const stream = client(guard, `ws://127.0.0.1:${port}/`, { http2: true, signal: controller.signal });
      await arrival;
      const reason = new Error('changed my mind');
      controller.abort(reason);
      expect(await rejection(stream.opened)).to.equal(reason);
      expect(await rejection(stream.closed)).to.equal(reason);
      expect(await rstCodeOf(streams[0]!)).to.equal(http2.constants.NGHTTP2_CANCEL);
    });

    leakFree('close() before the response: opened rejects (closeCode null), closed rejects with 1006, the stream is reset', async (guard) => {
      const streams: http2.ServerHttp2Stream[] = [];
      let arrived!: () => void;
      const arrival = new Promise<void>((resolve) => (arrived = resolve));
      const { port } = await rawH2Server(guard, {}, (stream) => {
        streams.push(stream);
        arrived();
      });
      const stream = client(guard, `ws://127.0.0.1:${port}/`, { http2: true });
      await arrival;
      stream.close();
      expectWebSocketError(await rejection(stream.opened), null);
      expectWebSocketError(await rejection(stream.closed), 1006, '');
      expect(await rstCodeOf(streams[0]!)).to.equal(http2.constants.NGHTTP2_CANCEL);
    });

    leakFree('close() right after construction, before the session exists: the same errors', async (guard) => {
      const { port } = await ourServer(guard);
      const stream = client(guard, `ws://127.0.0.1:${port}/`, { http2: true });
      stream.close();
      expectWebSocketError(await rejection(stream.opened), null);
      expectWebSocketError(await rejection(stream.closed), 1006);
    });

    leakFree('connection refused: opened rejects with the system error as cause', async (guard) => {
      const server = http.createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
      const port = (server.address() as AddressInfo).port;
      await closeServer(server);
      const stream = client(guard, `ws://127.0.0.1:${port}/`, { http2: true });
      const error = expectWebSocketError(await rejection(stream.opened), null);
      expect(error.message).to.contain('ECONNREFUSED');
    });
  });

  describe('the session pool', () => {
    leakFree('one session per origin: three WebSockets, one TCP connection; it closes once idle for http2IdleTimeout', async (guard) => {
      const { port } = await ourServer(guard);
      const before = guard.serverSockets.length;
      const clients = [0, 1, 2].map((i) => client(guard, `ws://127.0.0.1:${port}/${i}`, { http2: true, http2IdleTimeout: 100 }));
      for (const stream of clients) await roundTrip(stream, 'pooled');
      expect(guard.serverSockets.length - before, 'TCP connections').to.equal(1);
      const socket = guard.serverSockets[before]!;
      for (const stream of clients) {
        stream.close();
        await stream.closed;
      }
      expect(socket.destroyed, 'still open right after the last close').to.equal(false);
      await new Promise<void>((resolve) => socket.once('close', () => resolve()));
      // A new WebSocket opens a new session.
      const later = client(guard, `ws://127.0.0.1:${port}/later`, { http2: true });
      await roundTrip(later, 'new session');
      expect(guard.serverSockets.length - before).to.equal(2);
    });

    leakFree('a session that received GOAWAY takes no new WebSocket: the next one opens a new session', async (guard) => {
      const { port, sessions } = await rawH2Server(guard, {}, (stream) => stream.respond({ ':status': 200 }));
      const before = guard.serverSockets.length;
      const first = client(guard, `ws://127.0.0.1:${port}/`, { http2: true, closeTimeout: 100 });
      await first.opened;
      sessions[0]!.goaway(http2.constants.NGHTTP2_NO_ERROR);
      // Frames are read in order: once the PING comes back, the client has read the GOAWAY.
      await new Promise<void>((resolve) => sessions[0]!.ping(() => resolve()));
      const second = client(guard, `ws://127.0.0.1:${port}/`, { http2: true, closeTimeout: 100 });
      await second.opened;
      expect(guard.serverSockets.length - before, 'TCP connections').to.equal(2);
    });

    it('tlsOptionsKey: equal values give equal keys (buffers by content), functions and other objects by identity', () => {
      const check = (): undefined => undefined;
      expect(tlsOptionsKey(undefined)).to.equal('');
      expect(tlsOptionsKey({ ca: testCert })).to.equal(tlsOptionsKey({ ca: Buffer.from(testCert) }));
      expect(tlsOptionsKey({ ca: [testCert], servername: 'a' })).to.equal(tlsOptionsKey({ servername: 'a', ca: [Buffer.from(testCert)] }));
      expect(tlsOptionsKey({ ca: testCert })).to.not.equal(tlsOptionsKey({ ca: testKey }));
      expect(tlsOptionsKey({ rejectUnauthorized: false })).to.not.equal(tlsOptionsKey({ rejectUnauthorized: true }));
      expect(tlsOptionsKey({ checkServerIdentity: check })).to.equal(tlsOptionsKey({ checkServerIdentity: check }));
      expect(tlsOptionsKey({ checkServerIdentity: check })).to.not.equal(tlsOptionsKey({ checkServerIdentity: () => undefined }));
      expect(tlsOptionsKey({ ca: 'ab' } as tls.ConnectionOptions)).to.not.equal(tlsOptionsKey({ ca: ['ab'] } as tls.ConnectionOptions));
    });
  });

  describe('option checks', () => {
    const invalid: Array<[string, WebSocketStreamOptions]> = [
      ["http2: 'yes'", { http2: 'yes' as never }],
      ['http2: 1', { http2: 1 as never }],
      ['http2: {} (not a session)', { http2: {} as never }],
      ['http2 with a proxy', { http2: true, proxy: 'http://127.0.0.1:3128' }],
      ['a session with tls options', { http2: { request() {}, remoteSettings: {} } as never, tls: {} }],
      ['a Keep-Alive header (connection-specific, RFC 9113 §8.2.2)', { http2: 'prefer', headers: { 'Keep-Alive': '5' } }],
      ['http2IdleTimeout: -1', { http2: true, http2IdleTimeout: -1 }],
      ['http2 with createConnection', { http2: true, createConnection: () => new PassThrough() }],
    ];
    for (const [label, options] of invalid) {
      it(`throws for ${label}`, () => {
        expect(() => new WebSocketStream('ws://127.0.0.1:1/', options)).to.throw(label.includes('-1') ? RangeError : TypeError);
      });
    }

    it('throws for http2 with a ws+unix: URL', () => {
      expect(() => new WebSocketStream('ws+unix:/tmp/x.sock:/path', { http2: true })).to.throw(TypeError, /Unix domain sockets/);
    });

    it('http2: false is HTTP/1.1, as without the option', async () => {
      const stream = new WebSocketStream('ws://127.0.0.1:1/', { http2: false });
      expect(await rejection(stream.opened)).to.be.instanceOf(WebSocketError);
    });
  });
});
