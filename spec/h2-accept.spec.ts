// The server's side of WebSockets over HTTP/2 (RFC 8441): a WebSocketStreamServer that listens
// with `http2: true`, driven by a raw node:http2 client that writes the extended CONNECT and the
// WebSocket frames by hand, so that every header and every stream event is the test's to check.
import { expect } from 'chai';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { handleHttp2Stream, WebSocketError, WebSocketStream, WebSocketStreamServer, type ExtendedConnectRequest, type ServerWebSocketStream, type WebSocketStreamServerOptions } from '../lib/index.js';
import { closeBody } from './helpers/codec.js';
import { expectWebSocketError, leakFree, rejection, untilStalled, type Guard } from './helpers/faults.js';
import { clientClose, clientFrame, closeSession, connectHeaders, rawConnect, rawSession, rstCodeOf } from './helpers/h2.js';
import { testCert, testKey } from './helpers/raw-peer.js';
import { Acceptor, echo } from './helpers/server-helpers.js';

const OP = { TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

interface Started {
  server: WebSocketStreamServer;
  port: number;
  authority: string;
  acceptor: Acceptor;
}

/** Our server listening with HTTP/2 (h2c unless tls is given), echoing every accepted stream. */
async function startH2(guard: Guard, options: Partial<WebSocketStreamServerOptions> = {}, echoing = true): Promise<Started> {
  const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', http2: true, ...options } as WebSocketStreamServerOptions);
  guard.defer(() => server.close());
  await server.listening;
  const port = (server.address() as AddressInfo).port;
  const acceptor = new Acceptor(server, echoing ? (stream) => void echo(stream) : undefined);
  return { server, port, authority: `127.0.0.1:${port}`, acceptor };
}

function closeCodeOf(payload: Buffer): number {
  return payload.readUInt16BE(0);
}

describe('WebSockets over HTTP/2 (RFC 8441): the server', function () {
  this.timeout(20_000);

  describe('listening itself with http2: true', () => {
    leakFree('announces SETTINGS_ENABLE_CONNECT_PROTOCOL in its SETTINGS (RFC 8441 §3)', async (guard) => {
      const { port } = await startH2(guard);
      const session = await rawSession(guard, port);
      expect(session.remoteSettings.enableConnectProtocol).to.equal(true);
    });

    leakFree('accepts CONNECT with :protocol websocket: :status 200, no Sec-WebSocket-Accept, the subprotocol and permessage-deflate in the headers (§5)', async (guard) => {
      const { port, authority, acceptor } = await startH2(guard, { protocols: ['chat'], perMessageDeflate: true });
      const session = await rawSession(guard, port);
      const { response } = await rawConnect(
        session,
        connectHeaders(authority, '/room?id=7', { 'sec-websocket-protocol': 'v2, chat', 'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits' }),
      );
      expect(response[':status']).to.equal(200);
      expect(response['sec-websocket-protocol']).to.equal('chat');
      expect(response['sec-websocket-extensions']).to.match(/^permessage-deflate\b/);
      expect(response).to.not.have.property('sec-websocket-accept');
      expect(response).to.not.have.property('upgrade');
      const peer = await acceptor.next();
      expect(peer.url).to.equal(`ws://${authority}/room?id=7`);
      expect(peer.request.httpVersion).to.equal('2.0');
      expect(peer.request.url).to.equal('/room?id=7');
      expect((await peer.opened).protocol).to.equal('chat');
    });

    leakFree('echoes over the stream, and the closing handshake ends the stream (END_STREAM, no reset) and only the stream', async (guard) => {
      const { port, authority, acceptor } = await startH2(guard);
      const session = await rawSession(guard, port);
      const { stream, frames } = await rawConnect(session, connectHeaders(authority));
      const peer = await acceptor.next();
      stream.write(clientFrame(OP.TEXT, 'over a stream'));
      const echoed = await frames.frame(0);
      expect([echoed.opcode, echoed.payload.toString()]).to.deep.equal([OP.TEXT, 'over a stream']);
      stream.write(clientClose(4000, 'done'));
      const reply = await frames.frame(1);
      expect([reply.opcode, closeCodeOf(reply.payload), reply.payload.subarray(2).toString()]).to.deep.equal([OP.CLOSE, 4000, 'done']);
      // RFC 8441 §5: the server "closes TCP first" by ending its side of the stream.
      await new Promise<void>((resolve) => (frames.ended ? resolve() : stream.once('end', () => resolve())));
      stream.end();
      expect(await rstCodeOf(stream), 'closed without RST_STREAM').to.equal(http2.constants.NGHTTP2_NO_ERROR);
      expect(await peer.closed).to.deep.equal({ closeCode: 4000, reason: 'done' });
      expect(session.closed || session.destroyed, 'the session stays open').to.equal(false);
    });

    leakFree('a clean close stays clean when node:http2 reports our last writes complete only after the stream closed (as with Chromium)', async (guard) => {
      // node:http2 can destroy a stream whose peer's END_STREAM came back before our close frame's
      // write was reported complete (Chromium does this); the write then looks undelivered. Here
      // every write of the server's stream reports 50 ms late, which makes that order certain.
      const h2 = http2.createServer({ settings: { enableConnectProtocol: true } });
      guard.defer(() => new Promise<void>((resolve) => h2.close(() => resolve())));
      const results: Array<Promise<ServerWebSocketStream | null>> = [];
      const lateReports: Array<Promise<void>> = [];
      h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
        const write = stream.write.bind(stream) as (chunk: unknown, callback?: (error?: Error | null) => void) => boolean;
        (stream as unknown as { write: typeof write }).write = (chunk, callback) =>
          write(chunk, (error) => {
            lateReports.push(new Promise((resolve) => setTimeout(() => resolve(callback?.(error)), 50)));
          });
        results.push(handleHttp2Stream(stream, headers));
      });
      await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', () => resolve()));
      const port = (h2.address() as AddressInfo).port;
      const session = await rawSession(guard, port);
      const { stream } = await rawConnect(session, connectHeaders(`127.0.0.1:${port}`));
      const peer = (await results[0])!;
      stream.on('data', (chunk: Buffer) => {
        if ((chunk[0]! & 0x0f) === OP.CLOSE) stream.end();
      });
      stream.write(clientClose(4000, 'late'));
      expect(await peer.closed).to.deep.equal({ closeCode: 4000, reason: 'late' });
      expect(await rstCodeOf(stream)).to.equal(http2.constants.NGHTTP2_NO_ERROR);
      await Promise.all(lateReports);
    });

    leakFree('many WebSockets share one session: closing one leaves the others open', async (guard) => {
      const { server, port, authority, acceptor } = await startH2(guard);
      const session = await rawSession(guard, port);
      const opened = [];
      for (let i = 0; i < 3; i++) opened.push(await rawConnect(session, connectHeaders(authority, `/${i}`)));
      const peers = [await acceptor.next(), await acceptor.next(), await acceptor.next()];
      expect(server.connectionCount).to.equal(3);
      peers[1]!.close({ closeCode: 4001, reason: 'only you' });
      const closeFrame = await opened[1]!.frames.frame(0);
      expect(closeCodeOf(closeFrame.payload)).to.equal(4001);
      opened[1]!.stream.end(clientClose(4001, 'only you'));
      expect(await peers[1]!.closed).to.deep.equal({ closeCode: 4001, reason: 'only you' });
      expect(server.connectionCount).to.equal(2);
      for (const i of [0, 2]) {
        opened[i]!.stream.write(clientFrame(OP.BINARY, Buffer.from([i])));
        const frame = await opened[i]!.frames.frame(0);
        expect([...frame.payload]).to.deep.equal([i]);
      }
    });

    leakFree('RST_STREAM from the client is an unclean close (1006) of that WebSocket alone', async (guard) => {
      const { port, authority, acceptor } = await startH2(guard);
      const session = await rawSession(guard, port);
      const first = await rawConnect(session, connectHeaders(authority, '/a'));
      const second = await rawConnect(session, connectHeaders(authority, '/b'));
      const [peerA, peerB] = [await acceptor.next(), await acceptor.next()];
      first.stream.close(http2.constants.NGHTTP2_CANCEL);
      expectWebSocketError(await rejection(peerA.closed), 1006);
      second.stream.write(clientFrame(OP.TEXT, 'still here'));
      expect((await second.frames.frame(0)).payload.toString()).to.equal('still here');
      expect(peerB.url).to.match(/\/b$/);
    });

    leakFree('a lost connection is an unclean close (1006) of every WebSocket it carried', async (guard) => {
      const { server, port, authority, acceptor } = await startH2(guard);
      const session = await rawSession(guard, port);
      const socket = guard.lastClientSocket();
      await rawConnect(session, connectHeaders(authority, '/a'));
      await rawConnect(session, connectHeaders(authority, '/b'));
      const peers = [await acceptor.next(), await acceptor.next()];
      await Promise.all(peers.map((peer) => peer.opened));
      socket.destroy();
      for (const peer of peers) expectWebSocketError(await rejection(peer.closed), 1006);
      expect(server.connectionCount).to.equal(0);
    });

    leakFree('an unclean close on our side resets the stream with CANCEL (a heartbeat without pong)', async (guard) => {
      const { port, authority, acceptor } = await startH2(guard, { heartbeat: { interval: 50, timeout: 50 } }, false);
      const session = await rawSession(guard, port);
      const { stream, frames } = await rawConnect(session, connectHeaders(authority));
      const peer = await acceptor.next();
      await peer.opened;
      const ping = await frames.frame(0);
      expect(ping.opcode).to.equal(OP.PING);
      // RFC 8441 §5: TCP's RST becomes RST_STREAM with CANCEL.
      expect(await rstCodeOf(stream)).to.equal(http2.constants.NGHTTP2_CANCEL);
      expectWebSocketError(await rejection(peer.closed), 1006);
      expect(session.destroyed).to.equal(false);
    });

    leakFree('flow control is the backpressure: stream window = readableHighWaterMark, and a reader that stops reading stops the client\'s writes', async (guard) => {
      const { port, authority, acceptor } = await startH2(guard, { readableHighWaterMark: 128 * 1024 }, false);
      const session = await rawSession(guard, port);
      expect(session.remoteSettings.initialWindowSize, 'the stream window').to.equal(128 * 1024);
      const { stream } = await rawConnect(session, connectHeaders(authority));
      const peer = await acceptor.next();
      await peer.opened;
      // Nobody reads on our side: the client may send what the readable and the window hold.
      const message = clientFrame(OP.BINARY, Buffer.alloc(64 * 1024));
      let written = 0;
      const writeMore = (): void => {
        while (stream.write(message)) written += message.length;
        written += message.length;
      };
      writeMore();
      stream.on('drain', writeMore);
      await untilStalled(() => [written, stream.writableLength], 200);
      expect(written, 'bytes the client could hand to its stream').to.be.below(2 * 1024 * 1024);
      expect(stream.writableLength, 'the client\'s stream holds what the window does not let out').to.be.above(0);
      // Reading resumes the flow.
      const reader = (await peer.opened).readable.getReader();
      const before = written;
      for (let i = 0; i < 40; i++) await reader.read();
      expect(written, 'the client could send more once we read').to.be.above(before);
      stream.close(http2.constants.NGHTTP2_CANCEL);
      await rejection(peer.closed);
    });

    leakFree('refusals are HTTP/2 responses on the stream (status, headers, body), and the session stays usable', async (guard) => {
      const { port, authority, acceptor } = await startH2(guard, {
        verify: (request) =>
          request.headers.authorization === 'Bearer ok' || { status: 401, headers: { 'WWW-Authenticate': 'Bearer', Upgrade: 'no', 'Keep-Alive': '1' }, message: 'who are you?' },
      });
      const session = await rawSession(guard, port);
      const refused = await rawConnect(session, connectHeaders(authority));
      expect(refused.response[':status']).to.equal(401);
      expect(refused.response['www-authenticate']).to.equal('Bearer');
      // Connection-specific fields are malformed in HTTP/2 (RFC 9113 §8.2.2): left out.
      expect(refused.response).to.not.have.property('upgrade');
      expect(refused.response).to.not.have.property('keep-alive');
      expect(await refused.body()).to.equal('who are you?\n');
      const accepted = await rawConnect(session, connectHeaders(authority, '/', { authorization: 'Bearer ok' }));
      expect(accepted.response[':status']).to.equal(200);
      await (await acceptor.next()).opened;
    });

    const badRequests: Array<[string, Record<string, string | null>, number, string]> = [
      ['a version other than 13', { 'sec-websocket-version': '8' }, 400, 'unsupported WebSocket version'],
      ['no version', { 'sec-websocket-version': null }, 400, 'unsupported WebSocket version'],
      ['an invalid subprotocol', { 'sec-websocket-protocol': 'a b' }, 400, 'invalid Sec-WebSocket-Protocol'],
      ['an :scheme other than http or https', { ':scheme': 'ftp' }, 400, ':scheme must be'],
    ];
    for (const [label, headers, status, message] of badRequests) {
      leakFree(`refuses an extended CONNECT with ${label}: ${status}`, async (guard) => {
        const { port, authority } = await startH2(guard);
        const session = await rawSession(guard, port);
        const refused = await rawConnect(session, connectHeaders(authority, '/', headers));
        expect(refused.response[':status']).to.equal(status);
        expect(await refused.body()).to.contain(message);
        if (label.includes('version')) expect(refused.response['sec-websocket-version']).to.equal('13');
      });
    }

    leakFree('refuses an extended CONNECT that ends its stream at once (nothing left to carry the WebSocket): 400', async (guard) => {
      const { port, authority } = await startH2(guard);
      const session = await rawSession(guard, port);
      const refused = await rawConnect(session, connectHeaders(authority), { endStream: true });
      expect(refused.response[':status']).to.equal(400);
    });

    leakFree('verify and selectProtocol receive an ExtendedConnectRequest (url, headers with :authority, the socket, the stream)', async (guard) => {
      const seen: ExtendedConnectRequest[] = [];
      let offered: string[] = [];
      const { port, authority, acceptor } = await startH2(guard, {
        verify: (request) => {
          seen.push(request as ExtendedConnectRequest);
          return true;
        },
        selectProtocol: (protocols, request) => {
          offered = protocols;
          expect(request).to.equal(seen[0]);
          return protocols[1];
        },
      });
      const session = await rawSession(guard, port);
      const { response, stream } = await rawConnect(session, connectHeaders(authority, '/feed?x=1', { 'sec-websocket-protocol': 'a, b', cookie: 'id=42', origin: 'https://example.com' }));
      expect(response['sec-websocket-protocol']).to.equal('b');
      expect(offered).to.deep.equal(['a', 'b']);
      const request = seen[0]!;
      expect(request.method).to.equal('CONNECT');
      expect(request.url).to.equal('/feed?x=1');
      expect([request.httpVersion, request.httpVersionMajor, request.httpVersionMinor]).to.deep.equal(['2.0', 2, 0]);
      expect(request.authority).to.equal(authority);
      expect(request.scheme).to.equal('http');
      expect(request.headers[':protocol']).to.equal('websocket');
      expect(request.headers.cookie).to.equal('id=42');
      expect(request.headers.origin).to.equal('https://example.com');
      expect(request.socket.remoteAddress).to.equal('127.0.0.1');
      expect(request.socket.remotePort).to.equal((session.socket as { localPort?: number }).localPort);
      expect(request.stream).to.be.instanceOf(Object);
      expect(request.stream.id).to.be.a('number');
      const peer = await acceptor.next();
      expect(peer.request.remotePort).to.equal(request.socket.remotePort);
      expect(peer.request.headers).to.equal(request.headers);
      stream.close(http2.constants.NGHTTP2_CANCEL);
      await rejection(peer.closed);
    });

    leakFree('maxConnections counts WebSockets, not TCP connections: a third stream on one session gets 503', async (guard) => {
      const { port, authority, acceptor } = await startH2(guard, { maxConnections: 2 });
      const session = await rawSession(guard, port);
      await rawConnect(session, connectHeaders(authority));
      await rawConnect(session, connectHeaders(authority));
      const third = await rawConnect(session, connectHeaders(authority));
      expect(third.response[':status']).to.equal(503);
      expect(third.response['retry-after']).to.equal('1');
      await acceptor.next();
      await acceptor.next();
    });

    leakFree('maxHandshakeHead is the HTTP/2 header list size: announced in SETTINGS, and a larger request never reaches verify', async (guard) => {
      let verified = 0;
      const { port, authority } = await startH2(guard, {
        maxHandshakeHead: 4096,
        verify: () => {
          verified++;
          return true;
        },
      });
      const session = await rawSession(guard, port);
      expect(session.remoteSettings.maxHeaderListSize).to.equal(4096);
      const small = await rawConnect(session, connectHeaders(authority, '/', { 'x-pad': 'a'.repeat(2000) }));
      expect(small.response[':status']).to.equal(200);
      const error = await rawConnect(session, connectHeaders(authority, '/', { 'x-pad': 'a'.repeat(5000) })).then(
        () => null,
        (reason: Error) => reason,
      );
      expect(error?.message, 'no response').to.match(/closed without a response/);
      expect(verified).to.equal(1);
      small.stream.close(http2.constants.NGHTTP2_CANCEL);
    });

    leakFree('a verify that never settles is cut off at handshakeTimeout: 503 on the stream', async (guard) => {
      const { port, authority } = await startH2(guard, { handshakeTimeout: 200, verify: () => new Promise<boolean>(() => {}), onError: () => {} });
      const session = await rawSession(guard, port);
      const refused = await rawConnect(session, connectHeaders(authority));
      expect(refused.response[':status']).to.equal(503);
      expect(await refused.body()).to.equal('handshake timed out\n');
    });

    leakFree('maxPayload applies over HTTP/2: a larger message closes with 1009', async (guard) => {
      const { port, authority, acceptor } = await startH2(guard, { maxPayload: 10 });
      const session = await rawSession(guard, port);
      const { stream, frames } = await rawConnect(session, connectHeaders(authority));
      const peer = await acceptor.next();
      stream.write(clientFrame(OP.BINARY, Buffer.alloc(11)));
      const close = await frames.frame(0);
      expect([close.opcode, closeCodeOf(close.payload)]).to.deep.equal([OP.CLOSE, 1009]);
      stream.end(clientFrame(OP.CLOSE, closeBody(1009)));
      expect(await rejection(peer.closed)).to.be.instanceOf(WebSocketError);
    });

    leakFree('server.close() closes every WebSocket with 1001 and sends GOAWAY; it resolves once they are closed', async (guard) => {
      const { server, port, authority, acceptor } = await startH2(guard);
      const session = await rawSession(guard, port);
      const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
      const { stream, frames } = await rawConnect(session, connectHeaders(authority));
      const peer = await acceptor.next();
      const closing = server.close();
      const close = await frames.frame(0);
      expect(closeCodeOf(close.payload)).to.equal(1001);
      await goaway;
      stream.end(clientFrame(OP.CLOSE, close.payload));
      await closing;
      expect(await peer.closed).to.deep.equal({ closeCode: 1001, reason: '' });
      await new Promise<void>((resolve) => (session.destroyed ? resolve() : session.once('close', () => resolve())));
    });

    leakFree('plain HTTP/2 requests get 405 (Allow: CONNECT), and so does a CONNECT without :protocol', async (guard) => {
      const { port } = await startH2(guard);
      const session = await rawSession(guard, port);
      const get = await rawConnect(session, { ':path': '/' }, { endStream: true });
      expect(get.response[':status']).to.equal(405);
      expect(get.response.allow).to.equal('CONNECT');
      expect(await get.body()).to.contain('WebSocket server');
      const tunnel = await rawConnect(session, { ':method': 'CONNECT', ':authority': 'example.com:443' });
      expect(tunnel.response[':status']).to.equal(405);
    });

    leakFree('an idle session (no stream) is closed after handshakeTimeout, a session with a quiet WebSocket is not', async (guard) => {
      const { port, authority, acceptor } = await startH2(guard, { handshakeTimeout: 300 });
      const carrying = await rawSession(guard, port);
      const { stream, frames } = await rawConnect(carrying, connectHeaders(authority));
      await acceptor.next();
      const idle = await rawSession(guard, port);
      await new Promise<void>((resolve) => idle.once('close', () => resolve()));
      // The session with the WebSocket started its idle clock before the idle one did.
      expect(carrying.closed || carrying.destroyed).to.equal(false);
      stream.write(clientFrame(OP.TEXT, 'quiet, not idle'));
      expect((await frames.frame(0)).payload.toString()).to.equal('quiet, not idle');
    });

    leakFree('with tls: one port serves WebSockets over HTTP/2 (ALPN h2) and over HTTP/1.1, with :scheme https giving wss: URLs', async (guard) => {
      const { port, acceptor } = await startH2(guard, { tls: { key: testKey, cert: testCert } });
      const session = await rawSession(guard, port, true);
      const { response } = await rawConnect(session, connectHeaders(`localhost:${port}`, '/secure', {}, 'https'));
      expect(response[':status']).to.equal(200);
      const peer = await acceptor.next();
      expect(peer.url).to.equal(`wss://localhost:${port}/secure`);
      expect(peer.request.httpVersion).to.equal('2.0');
      const overHttp1 = new WebSocketStream(`wss://localhost:${port}/classic`, { tls: { ca: testCert } });
      const { readable, writable } = await overHttp1.opened;
      const upgraded = await acceptor.next();
      expect(upgraded.request.httpVersion).to.equal('1.1');
      await writable.getWriter().write('over HTTP/1.1');
      expect((await readable.getReader().read()).value).to.equal('over HTTP/1.1');
      overHttp1.close();
      await overHttp1.closed;
    });
  });

  leakFree('http2: true with socketPath serves WebSockets over HTTP/2 on a Unix domain socket', async (guard) => {
    const socketPath = path.join(os.tmpdir(), `wss-h2-${process.pid}-${Date.now()}.sock`);
    const server = new WebSocketStreamServer({ socketPath, http2: true });
    guard.defer(() => server.close());
    await server.listening;
    const acceptor = new Acceptor(server, (stream) => void echo(stream));
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(socketPath) });
    session.on('error', () => {});
    guard.defer(() => closeSession(session));
    await new Promise((resolve) => session.once('remoteSettings', resolve));
    const { response, stream, frames } = await rawConnect(session, connectHeaders('localhost', '/unix'));
    expect(response[':status']).to.equal(200);
    expect((await acceptor.next()).request.httpVersion).to.equal('2.0');
    stream.write(clientFrame(OP.TEXT, 'over a Unix socket'));
    expect((await frames.frame(0)).payload.toString()).to.equal('over a Unix socket');
  });

  describe('attached to an http2 server', () => {
    leakFree('several servers with paths on one h2c server: the exact path wins, any other path gets 404 on its stream', async (guard) => {
      const h2 = http2.createServer();
      guard.defer(() => new Promise<void>((resolve) => h2.close(() => resolve())));
      const accepted: string[] = [];
      for (const path of ['/a', '/b']) {
        const server = new WebSocketStreamServer({ server: h2, path });
        guard.defer(() => server.close());
        new Acceptor(server, (stream) => {
          accepted.push(path);
          void echo(stream);
        });
      }
      await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', () => resolve()));
      const port = (h2.address() as AddressInfo).port;
      const session = await rawSession(guard, port);
      expect(session.remoteSettings.enableConnectProtocol, 'the setting was added for new sessions').to.equal(true);
      const authority = `127.0.0.1:${port}`;
      expect((await rawConnect(session, connectHeaders(authority, '/c'))).response[':status']).to.equal(404);
      expect((await rawConnect(session, connectHeaders(authority, '/b?x'))).response[':status']).to.equal(200);
      expect((await rawConnect(session, connectHeaders(authority, '/a'))).response[':status']).to.equal(200);
      await new Promise<void>((resolve) => setImmediate(resolve));
      expect(accepted).to.deep.equal(['/b', '/a']);
    });

    leakFree('with node:http2 compatibility API (a request handler): WebSockets are ours, other requests and CONNECTs the application\'s', async (guard) => {
      const h2 = http2.createServer((request, response) => response.end(`plain ${request.method}`));
      const connects: string[] = [];
      h2.on('connect', (request: http2.Http2ServerRequest, response: http2.Http2ServerResponse) => {
        connects.push(String(request.headers[':protocol'] ?? request.headers[':authority']));
        // A WebSocket's stream is answered by our server: the application leaves it alone.
        if (request.headers[':protocol'] === 'websocket') return;
        response.writeHead(200);
        response.end('tunnel');
      });
      guard.defer(() => new Promise<void>((resolve) => h2.close(() => resolve())));
      const server = new WebSocketStreamServer({ server: h2, path: '/ws' });
      guard.defer(() => server.close());
      const acceptor = new Acceptor(server, (stream) => void echo(stream));
      await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', () => resolve()));
      const port = (h2.address() as AddressInfo).port;
      const authority = `127.0.0.1:${port}`;
      const session = await rawSession(guard, port);
      const ws = await rawConnect(session, connectHeaders(authority, '/ws'));
      expect(ws.response[':status']).to.equal(200);
      ws.stream.write(clientFrame(OP.TEXT, 'ours'));
      expect((await ws.frames.frame(0)).payload.toString()).to.equal('ours');
      const plain = await rawConnect(session, { ':path': '/page' }, { endStream: true });
      expect(await plain.body()).to.equal('plain GET');
      const tunnel = await rawConnect(session, { ':method': 'CONNECT', ':authority': 'example.com:443' });
      expect(tunnel.response[':status']).to.equal(200);
      // Every WebSocket CONNECT is the router's: a path none of our servers serves gets 404.
      const other = await rawConnect(session, connectHeaders(authority, '/elsewhere'));
      expect(other.response[':status']).to.equal(404);
      expect(connects).to.deep.equal(['websocket', 'example.com:443', 'websocket']);
      await acceptor.next();
    });

    leakFree('without a connect listener of its own, node:http2 would answer CONNECT with 405: so does the router, for what is not ours', async (guard) => {
      const h2 = http2.createServer((_request, response) => response.end('plain'));
      guard.defer(() => new Promise<void>((resolve) => h2.close(() => resolve())));
      const server = new WebSocketStreamServer({ server: h2 });
      guard.defer(() => server.close());
      new Acceptor(server, (stream) => void echo(stream));
      await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', () => resolve()));
      const port = (h2.address() as AddressInfo).port;
      const session = await rawSession(guard, port);
      const tunnel = await rawConnect(session, { ':method': 'CONNECT', ':authority': 'example.com:443' });
      expect(tunnel.response[':status']).to.equal(405);
      const ws = await rawConnect(session, connectHeaders(`127.0.0.1:${port}`, '/any'));
      expect(ws.response[':status']).to.equal(200);
    });

    leakFree('handleHttp2Stream() from the application\'s own \'stream\' listener, with the server\'s options and shutdown', async (guard) => {
      const h2 = http2.createServer({ settings: { enableConnectProtocol: true } });
      guard.defer(() => new Promise<void>((resolve) => h2.close(() => resolve())));
      // A server listening elsewhere lends its options, limits and shutdown.
      const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', protocols: ['v1'] });
      guard.defer(() => server.close());
      await server.listening;
      const taken: ServerWebSocketStream[] = [];
      h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
        if (headers[':protocol'] !== 'websocket') {
          stream.respond({ ':status': 204 });
          stream.end();
          return;
        }
        void server.handleHttp2Stream(stream, headers, rawHeaders).then((peer) => {
          if (peer !== null) taken.push(peer);
        });
      });
      await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', () => resolve()));
      const port = (h2.address() as AddressInfo).port;
      const session = await rawSession(guard, port);
      const { response, frames, stream } = await rawConnect(session, connectHeaders(`127.0.0.1:${port}`, '/', { 'sec-websocket-protocol': 'v1' }));
      expect(response[':status']).to.equal(200);
      expect(response['sec-websocket-protocol']).to.equal('v1');
      expect(taken).to.have.length(1);
      expect(server.connectionCount).to.equal(1);
      const closing = server.close();
      expect(closeCodeOf((await frames.frame(0)).payload)).to.equal(1001);
      stream.end(clientClose(1001));
      await closing;
      expect(await taken[0]!.closed).to.deep.equal({ closeCode: 1001, reason: '' });
    });

    leakFree('handleHttp2Stream(stream, headers, options) without a server object: accepts, or refuses with the options\' verify', async (guard) => {
      const h2 = http2.createServer({ settings: { enableConnectProtocol: true } });
      guard.defer(() => new Promise<void>((resolve) => h2.close(() => resolve())));
      const results: Array<Promise<ServerWebSocketStream | null>> = [];
      h2.on('stream', (stream, headers) => {
        results.push(handleHttp2Stream(stream, headers, { verify: (request) => request.url !== '/forbidden' }));
      });
      await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', () => resolve()));
      const port = (h2.address() as AddressInfo).port;
      const session = await rawSession(guard, port);
      const refused = await rawConnect(session, connectHeaders(`127.0.0.1:${port}`, '/forbidden'));
      expect(refused.response[':status']).to.equal(403);
      expect(await results[0]).to.equal(null);
      const { stream, frames } = await rawConnect(session, connectHeaders(`127.0.0.1:${port}`, '/fine'));
      const peer = (await results[1])!;
      peer.close({ closeCode: 1000 });
      expect(closeCodeOf((await frames.frame(0)).payload)).to.equal(1000);
      stream.end(clientClose(1000));
      expect(await peer.closed).to.deep.equal({ closeCode: 1000, reason: '' });
    });

    it('handleHttp2Stream with invalid options answers 500 on the stream, then rejects with the TypeError', async () => {
      const h2 = http2.createServer({ settings: { enableConnectProtocol: true } });
      const results: Array<Promise<unknown>> = [];
      h2.on('stream', (stream, headers) => {
        results.push(handleHttp2Stream(stream, headers, { maxPayload: 'big' } as never).catch((error: unknown) => error));
      });
      await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', () => resolve()));
      const port = (h2.address() as AddressInfo).port;
      const session = http2.connect(`http://127.0.0.1:${port}`);
      try {
        await new Promise((resolve) => session.once('remoteSettings', resolve));
        const refused = await rawConnect(session, connectHeaders(`127.0.0.1:${port}`));
        expect(refused.response[':status']).to.equal(500);
        expect(await results[0]).to.be.instanceOf(TypeError);
      } finally {
        session.destroy();
        await new Promise<void>((resolve) => h2.close(() => resolve()));
      }
    });
  });
});
