// Mounting the server on the frameworks' own node:http/http2 servers, beyond what the examples in
// docs/frameworks.md run: what node:http2 does with an HTTP/1.1 upgrade under allowHTTP1, paths
// that are not ours, shutdown through the framework, and what the usual plugins allow beside us.
import cookie from '@fastify/cookie';
import websocket from '@fastify/websocket';
import { serve } from '@hono/node-server';
import { expect } from 'chai';
import express from 'express';
import session from 'express-session';
import Fastify from 'fastify';
import { Hono } from 'hono';
import http from 'node:http';
import http2 from 'node:http2';
import type https from 'node:https';
import type net from 'node:net';
import tls from 'node:tls';
import { handleUpgrade, WebSocketError, WebSocketStream, WebSocketStreamServer, type ServerWebSocketStream } from '../lib/index.js';
import { rejectionOf } from './helpers/conn.js';
import { testCert, testKey } from './helpers/raw-peer.js';
import { Acceptor, closeServer, echo } from './helpers/server-helpers.js';

declare module 'express-session' {
  interface SessionData {
    user: string;
  }
}

function portOfServer(server: net.Server | http2.Http2SecureServer): number {
  return (server.address() as net.AddressInfo).port;
}

/** The status of the HTTP response that refused a client's handshake. */
async function refusalStatus(client: WebSocketStream): Promise<number | undefined> {
  const error = await rejectionOf(client.opened);
  expect(error).to.be.an.instanceOf(WebSocketError);
  return ((error as WebSocketError).cause as { statusCode?: number } | undefined)?.statusCode;
}

/** Sends one message and returns the next one received. */
async function roundTrip(client: WebSocketStream, message: string): Promise<unknown> {
  const { readable, writable } = await client.opened;
  const writer = writable.getWriter();
  await writer.write(message);
  writer.releaseLock();
  const reader = readable.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  return value;
}

function cookiesOf(response: Response): string {
  return response.headers
    .getSetCookie()
    .map((line) => line.split(';')[0])
    .join('; ');
}

describe('framework integrations', function () {
  this.timeout(20_000);

  describe('node:http2 secure server with allowHTTP1', () => {
    let server: http2.Http2SecureServer;
    let port: number;
    const seen: Array<{ kind: string; httpVersion: string; upgrade: string | undefined }> = [];

    beforeEach(async () => {
      seen.length = 0;
      server = http2.createSecureServer({ key: testKey, cert: testCert, allowHTTP1: true }, (request, response) => {
        seen.push({ kind: 'request', httpVersion: request.httpVersion, upgrade: request.headers.upgrade });
        response.writeHead(418).end('plain request\n');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = portOfServer(server);
    });

    afterEach(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it('an HTTP/1.1 upgrade (ALPN http/1.1, as browsers offer) emits upgrade on the Http2SecureServer with an http.IncomingMessage and the TLSSocket; handleUpgrade accepts it', async () => {
      const upgrades: Array<{ incoming: boolean; tlsSocket: boolean; alpn: string | false | null }> = [];
      server.on('upgrade', (request: http.IncomingMessage, socket: tls.TLSSocket, head: Buffer) => {
        upgrades.push({ incoming: request instanceof http.IncomingMessage, tlsSocket: socket instanceof tls.TLSSocket, alpn: socket.alpnProtocol });
        void handleUpgrade(request, socket, head).then((peer) => peer && echo(peer));
      });
      const client = new WebSocketStream(`wss://localhost:${port}/x`, { tls: { ca: testCert, ALPNProtocols: ['http/1.1'] } });
      expect(await roundTrip(client, 'over HTTP/1.1')).to.equal('over HTTP/1.1');
      expect(upgrades).to.deep.equal([{ incoming: true, tlsSocket: true, alpn: 'http/1.1' }]);
      expect(seen).to.deep.equal([]);

      // HTTP/2 requests on the same port still reach the request handler.
      const h2 = http2.connect(`https://localhost:${port}`, { ca: testCert });
      const stream = h2.request({ ':path': '/' });
      const status = await new Promise<unknown>((resolve) => stream.once('response', (headers) => resolve(headers[':status'])));
      stream.resume();
      await new Promise((resolve) => stream.once('end', resolve));
      h2.close();
      expect(status).to.equal(418);
      expect(seen).to.deep.equal([{ kind: 'request', httpVersion: '2.0', upgrade: undefined }]);

      client.close();
      expect(await client.closed).to.deep.equal({ closeCode: 1005, reason: '' });
    });

    it('without an upgrade listener, the upgrade reaches the request handler as a plain HTTP/1.1 request, and the client gets its status', async () => {
      const client = new WebSocketStream(`wss://localhost:${port}/x`, { tls: { ca: testCert } });
      expect(await refusalStatus(client)).to.equal(418);
      expect(seen).to.deep.equal([{ kind: 'request', httpVersion: '1.1', upgrade: 'websocket' }]);
    });

    it('a WebSocketStreamServer attached to it accepts HTTP/1.1 upgrades on its path, 404 elsewhere; close() ends them with 1001', async () => {
      // The option is typed for http/https servers; an Http2SecureServer emits the same events.
      const chat = new WebSocketStreamServer({ server: server as unknown as https.Server, path: '/chat' });
      const acceptor = new Acceptor(chat, (peer) => void echo(peer));
      const client = new WebSocketStream(`wss://localhost:${port}/chat`, { tls: { ca: testCert } });
      expect(await roundTrip(client, 'attached')).to.equal('attached');
      expect(await refusalStatus(new WebSocketStream(`wss://localhost:${port}/other`, { tls: { ca: testCert } }))).to.equal(404);
      await chat.close();
      expect((await client.closed).closeCode).to.equal(1001);
      await acceptor.done;
    });
  });

  describe('Express 5', () => {
    it('a WebSocketStreamServer on the server of app.listen(): verify loads the express-session session of the upgrade; routes share the port', async () => {
      const sessions = session({ secret: 'test secret', resave: false, saveUninitialized: false });
      const app = express();
      app.use(sessions);
      app.post('/login', (request, response) => {
        request.session.user = 'alice';
        response.send('ok');
      });
      app.get('/', (request, response) => response.send(`user: ${request.session.user ?? 'none'}`));
      const server = app.listen(0, '127.0.0.1');
      await new Promise((resolve) => server.once('listening', resolve));
      const port = portOfServer(server);
      const users: Array<string | undefined> = [];
      const chat = new WebSocketStreamServer({
        server,
        path: '/chat',
        verify: (request) =>
          new Promise((resolve) =>
            sessions(request as express.Request, {} as express.Response, () => {
              const user = (request as express.Request).session?.user;
              users.push(user);
              resolve(user !== undefined || { status: 401 });
            }),
          ),
      });
      const acceptor = new Acceptor(chat, (peer) => void echo(peer));
      try {
        expect(await refusalStatus(new WebSocketStream(`ws://127.0.0.1:${port}/chat`))).to.equal(401);
        const cookieHeader = cookiesOf(await fetch(`http://127.0.0.1:${port}/login`, { method: 'POST' }));
        expect(cookieHeader).to.match(/^connect\.sid=/);
        const client = new WebSocketStream(`ws://127.0.0.1:${port}/chat`, { headers: { cookie: cookieHeader } });
        expect(await roundTrip(client, 'with a session')).to.equal('with a session');
        expect(users).to.deep.equal([undefined, 'alice']);
        expect(await (await fetch(`http://127.0.0.1:${port}/`, { headers: { cookie: cookieHeader } })).text()).to.equal('user: alice');
        await chat.close();
        expect((await client.closed).closeCode).to.equal(1001);
        await acceptor.done;
      } finally {
        await chat.close();
        await closeServer(server);
      }
    });
  });

  describe('Fastify 5', () => {
    it('a WebSocketStreamServer on fastify.server with a signed @fastify/cookie; other paths get 404; fastify.close() ends the connections through a preClose hook', async () => {
      const fastify = Fastify();
      await fastify.register(cookie, { secret: 'test secret' });
      fastify.post('/login', (request, reply) => reply.setCookie('user', 'alice', { signed: true, path: '/' }).send('ok'));
      fastify.get('/', () => 'fastify route');
      const userOf = (header: string | undefined): string | null => {
        const signed = fastify.parseCookie(header ?? '').user;
        if (signed === undefined) return null;
        const { valid, value } = fastify.unsignCookie(signed);
        return valid ? value : null;
      };
      const chat = new WebSocketStreamServer({ server: fastify.server, path: '/chat', verify: (request) => userOf(request.headers.cookie) !== null || { status: 401 } });
      fastify.addHook('preClose', () => chat.close());
      const users: Array<string | null> = [];
      const acceptor = new Acceptor(chat, (peer) => {
        users.push(userOf(peer.request.headers.cookie));
        void echo(peer);
      });
      await fastify.listen({ port: 0, host: '127.0.0.1' });
      const port = portOfServer(fastify.server);
      let closed = false;
      try {
        const cookieHeader = cookiesOf(await fetch(`http://127.0.0.1:${port}/login`, { method: 'POST' }));
        const client = new WebSocketStream(`ws://127.0.0.1:${port}/chat`, { headers: { cookie: cookieHeader } });
        expect(await roundTrip(client, 'signed')).to.equal('signed');
        expect(users).to.deep.equal(['alice']);
        const forged = cookieHeader.replace(/^user=[^;]*/, 'user=alice.AAAA');
        expect(await refusalStatus(new WebSocketStream(`ws://127.0.0.1:${port}/chat`, { headers: { cookie: forged } }))).to.equal(401);
        expect(await refusalStatus(new WebSocketStream(`ws://127.0.0.1:${port}/elsewhere`, { headers: { cookie: cookieHeader } }))).to.equal(404);
        expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).to.equal('fastify route');
        await fastify.close();
        closed = true;
        expect((await client.closed).closeCode).to.equal(1001);
        await acceptor.done;
      } finally {
        if (!closed) await fastify.close();
      }
    });

    it('@fastify/websocket answers every upgrade on fastify.server, ours included, so the two cannot share one server', async () => {
      const fastify = Fastify();
      await fastify.register(websocket);
      fastify.get('/theirs', { websocket: true }, (socket) => {
        socket.on('message', (data: Buffer, isBinary: boolean) => socket.send(data, { binary: isBinary }));
      });
      const accepted: ServerWebSocketStream[] = [];
      const ours = new WebSocketStreamServer({ server: fastify.server, path: '/ours' });
      const acceptor = new Acceptor(ours, (peer) => accepted.push(peer));
      fastify.addHook('preClose', () => ours.close());
      await fastify.listen({ port: 0, host: '127.0.0.1' });
      try {
        const port = portOfServer(fastify.server);
        const theirs = new WebSocketStream(`ws://127.0.0.1:${port}/theirs`);
        expect(await roundTrip(theirs, 'ws')).to.equal('ws');
        theirs.close();
        await theirs.closed;
        // Fastify's router has no route for /ours: its 404 goes out on the socket ours is taking.
        expect(await refusalStatus(new WebSocketStream(`ws://127.0.0.1:${port}/ours`))).to.equal(404);
      } finally {
        await fastify.close();
      }
      await acceptor.done;
      for (const peer of accepted) await peer.closed.catch(() => {});
    });
  });

  describe('Hono on @hono/node-server', () => {
    it('serve() with http2.createSecureServer and allowHTTP1: Hono answers HTTP/2 and HTTP/1.1 requests, a WebSocketStreamServer the HTTP/1.1 upgrades', async () => {
      const app = new Hono();
      app.get('/', (c) => c.text(`hono over ${c.req.header('upgrade') ?? 'no upgrade'}`));
      const server = await new Promise<http2.Http2SecureServer>((resolve) => {
        const created = serve(
          { fetch: app.fetch, port: 0, hostname: '127.0.0.1', createServer: http2.createSecureServer, serverOptions: { key: testKey, cert: testCert, allowHTTP1: true } },
          () => resolve(created as http2.Http2SecureServer),
        );
      });
      const chat = new WebSocketStreamServer({ server: server as unknown as https.Server, path: '/chat', verify: (request) => request.headers.authorization === 'Bearer t' || { status: 401 } });
      const acceptor = new Acceptor(chat, (peer) => void echo(peer));
      try {
        const port = portOfServer(server);
        const h2 = http2.connect(`https://localhost:${port}`, { ca: testCert });
        const stream = h2.request({ ':path': '/' });
        let body = '';
        for await (const chunk of stream.setEncoding('utf8')) body += chunk as string;
        h2.close();
        expect(body).to.equal('hono over no upgrade');
        const client = new WebSocketStream(`wss://localhost:${port}/chat`, { headers: { authorization: 'Bearer t' }, tls: { ca: testCert } });
        expect(await roundTrip(client, 'hono')).to.equal('hono');
        expect(await refusalStatus(new WebSocketStream(`wss://localhost:${port}/chat`, { tls: { ca: testCert } }))).to.equal(401);
        await chat.close();
        expect((await client.closed).closeCode).to.equal(1001);
        await acceptor.done;
      } finally {
        await chat.close();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });
  });
});
