// WebSockets over HTTP/2 (RFC 8441) through a real proxy: Debian's HAProxy 2.6, which takes
// extended CONNECT on its HTTP/2 frontends (turning it into an HTTP/1.1 upgrade for an HTTP/1.1
// server) and sends it to HTTP/2 servers (turning an HTTP/1.1 upgrade into extended CONNECT).
import { expect } from 'chai';
import dc from 'node:diagnostics_channel';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketStream, WebSocketStreamServer, type ServerWebSocketStream, type WebSocketStreamOptions, type WebSocketStreamServerOptions } from '../../../lib/index.js';
import { testCert, testKey } from '../../helpers/raw-peer.js';
import { Acceptor, echo } from '../../helpers/server-helpers.js';
import { startHaproxy, type Haproxy } from '../support/haproxy.js';

/** HAProxy's `ssl crt` takes the certificate and its key in one PEM. */
const COMBINED_PEM = Buffer.concat([testCert, Buffer.from('\n'), testKey]);

describe('HAProxy 2.6 between our peers: WebSockets over HTTP/2 (RFC 8441) on either side', function () {
  this.timeout(60_000);

  let cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    const pending = cleanups;
    cleanups = [];
    while (pending.length > 0) {
      try {
        await pending.pop()!();
      } catch {
        // Keep cleaning up.
      }
    }
  });

  async function ourServer(options: Partial<WebSocketStreamServerOptions>, onStream = (stream: ServerWebSocketStream) => void echo(stream)): Promise<{ server: WebSocketStreamServer; port: number; acceptor: Acceptor }> {
    const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', ...options } as WebSocketStreamServerOptions);
    cleanups.push(() => server.close());
    await server.listening;
    return { server, port: (server.address() as AddressInfo).port, acceptor: new Acceptor(server, onStream) };
  }

  async function haproxy(sections: Parameters<typeof startHaproxy>[0]): Promise<Haproxy> {
    const instance = await startHaproxy(sections);
    cleanups.push(() => instance.stop());
    return instance;
  }

  function client(url: string, options: WebSocketStreamOptions = {}): WebSocketStream {
    const stream = new WebSocketStream(url, { http2IdleTimeout: 100, ...options });
    cleanups.push(async () => {
      stream.close();
      await stream.closed.catch(() => {});
    });
    return stream;
  }

  async function echoes(stream: WebSocketStream, messages: Array<string | Uint8Array>): Promise<void> {
    const { readable, writable } = await stream.opened;
    const writer = writable.getWriter();
    const reader = readable.getReader();
    for (const message of messages) {
      await writer.write(message);
      const { value } = await reader.read();
      if (typeof message === 'string') expect(value).to.equal(message);
      else expect(Buffer.from(value as Uint8Array).equals(Buffer.from(message)), `${message.byteLength} bytes echoed`).to.equal(true);
    }
    writer.releaseLock();
    reader.releaseLock();
  }

  const MESSAGES = ['hello through HAProxy', new Uint8Array(300_000).map((_, i) => i % 251), 'x'.repeat(70_000)];

  describe('our HTTP/2 client → HAProxy (HTTP/2 frontend) → our HTTP/1.1 server', () => {
    it('h2c frontend: HAProxy announces extended CONNECT; echo, subprotocol and permessage-deflate end to end, close codes both ways', async () => {
      const { port: backend, acceptor } = await ourServer({ protocols: ['chat'], perMessageDeflate: true });
      const proxy = await haproxy((port) => `
frontend fe
  bind 127.0.0.1:${port} proto h2
  default_backend be
backend be
  server ours 127.0.0.1:${backend}
`);
      const stream = client(`ws://127.0.0.1:${proxy.port}/chat?room=1`, { http2: true, protocols: ['chat'] });
      const { protocol, extensions } = await stream.opened;
      expect(protocol).to.equal('chat');
      expect(extensions).to.match(/^permessage-deflate/);
      const peer = await acceptor.next();
      expect(peer.request.httpVersion, 'HAProxy turned the extended CONNECT into an HTTP/1.1 upgrade').to.equal('1.1');
      expect(peer.request.url).to.equal('/chat?room=1');
      await echoes(stream, MESSAGES);
      stream.close({ closeCode: 4000, reason: 'client done' });
      expect(await stream.closed).to.deep.equal({ closeCode: 4000, reason: 'client done' });
      expect(await peer.closed).to.deep.equal({ closeCode: 4000, reason: 'client done' });

      const second = client(`ws://127.0.0.1:${proxy.port}/`, { http2: true, protocols: ['chat'] });
      await second.opened;
      const secondPeer = await acceptor.next();
      secondPeer.close({ closeCode: 4001, reason: 'server done' });
      expect(await second.closed).to.deep.equal({ closeCode: 4001, reason: 'server done' });
    });

    it('TLS frontend with ALPN h2: wss: through HAProxy', async () => {
      const { port: backend, acceptor } = await ourServer({});
      const proxy = await haproxy((port, file) => `
frontend fe
  bind 127.0.0.1:${port} ssl crt ${file('combined.pem', COMBINED_PEM)} alpn h2,http/1.1
  default_backend be
backend be
  server ours 127.0.0.1:${backend}
`);
      const stream = client(`wss://localhost:${proxy.port}/secure`, { http2: true, tls: { ca: testCert } });
      await echoes(stream, MESSAGES);
      expect((await acceptor.next()).request.url).to.equal('/secure');
      stream.close({ closeCode: 4002 });
      expect(await stream.closed).to.deep.equal({ closeCode: 4002, reason: '' });
    });

    it('several WebSockets of our client share one TCP connection to HAProxy, one stream each; closing one leaves the others', async () => {
      const { port: backend } = await ourServer({});
      const proxy = await haproxy((port) => `
frontend fe
  bind 127.0.0.1:${port} proto h2
  default_backend be
backend be
  server ours 127.0.0.1:${backend}
`);
      const sockets: Socket[] = [];
      const onSocket = (message: unknown): void => void sockets.push((message as { socket: Socket }).socket);
      dc.subscribe('net.client.socket', onSocket);
      let streams: WebSocketStream[];
      try {
        streams = [1, 2, 3].map((i) => client(`ws://127.0.0.1:${proxy.port}/${i}`, { http2: true }));
        for (const stream of streams) await echoes(stream, ['one of three']);
      } finally {
        dc.unsubscribe('net.client.socket', onSocket);
      }
      expect(sockets, 'TCP connections our client opened').to.have.length(1);
      streams[1]!.close({ closeCode: 4002 });
      expect(await streams[1]!.closed).to.deep.equal({ closeCode: 4002, reason: '' });
      await echoes(streams[0]!, ['still open']);
      await echoes(streams[2]!, ['still open']);
    });

    it('a refusal by our server reaches our client as a failed handshake with its status', async () => {
      const { port: backend } = await ourServer({ verify: () => ({ status: 403, message: 'not you' }) });
      const proxy = await haproxy((port) => `
frontend fe
  bind 127.0.0.1:${port} proto h2
  default_backend be
backend be
  server ours 127.0.0.1:${backend}
`);
      const stream = client(`ws://127.0.0.1:${proxy.port}/`, { http2: true });
      const error = await stream.opened.then(
        () => null,
        (reason: unknown) => reason as Error & { cause: { statusCode?: number } },
      );
      expect(error, 'the handshake failed').to.not.equal(null);
      expect(error!.cause.statusCode).to.equal(403);
    });
  });

  describe('an HTTP/1.1 client → HAProxy (HTTP/1.1 frontend) → our HTTP/2 server', () => {
    it('h2c backend (proto h2): HAProxy opens an extended CONNECT stream to us; echo, deflate, close codes both ways', async () => {
      const { port: backend, acceptor } = await ourServer({ http2: true, protocols: ['chat'], perMessageDeflate: true });
      const proxy = await haproxy((port) => `
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  server ours 127.0.0.1:${backend} proto h2
`);
      const stream = client(`ws://127.0.0.1:${proxy.port}/feed`, { protocols: ['chat'] });
      const { protocol, extensions } = await stream.opened;
      expect(protocol).to.equal('chat');
      expect(extensions).to.match(/^permessage-deflate/);
      const peer = await acceptor.next();
      expect(peer.request.httpVersion, 'HAProxy reached us over HTTP/2').to.equal('2.0');
      expect(peer.request.headers[':protocol']).to.equal('websocket');
      expect(peer.request.url).to.equal('/feed');
      await echoes(stream, MESSAGES);
      peer.close({ closeCode: 4003, reason: 'from the HTTP/2 side' });
      expect(await stream.closed).to.deep.equal({ closeCode: 4003, reason: 'from the HTTP/2 side' });
      expect(await peer.closed).to.deep.equal({ closeCode: 4003, reason: 'from the HTTP/2 side' });
    });

    it('TLS backend with ALPN h2; several clients at once; server.close() sends each 1001', async () => {
      const { server, port: backend, acceptor } = await ourServer({ http2: true, tls: { key: testKey, cert: testCert } });
      const proxy = await haproxy((port) => `
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  server ours 127.0.0.1:${backend} ssl verify none alpn h2
`);
      const streams = Array.from({ length: 6 }, (_, i) => client(`ws://127.0.0.1:${proxy.port}/${i}`));
      await Promise.all(streams.map((stream) => echoes(stream, [`through TLS and HTTP/2`])));
      for (const peer of acceptor.all) expect(peer.request.httpVersion).to.equal('2.0');
      expect(acceptor.all).to.have.length(6);
      await server.close();
      for (const stream of streams) expect(await stream.closed).to.deep.equal({ closeCode: 1001, reason: '' });
    });

    it('a client that drops its TCP connection: HAProxy resets the stream, and our server sees 1006 for that WebSocket alone', async () => {
      const { port: backend, acceptor } = await ourServer({ http2: true });
      const proxy = await haproxy((port) => `
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  server ours 127.0.0.1:${backend} proto h2
`);
      const sockets: Socket[] = [];
      const onSocket = (message: unknown): void => void sockets.push((message as { socket: Socket }).socket);
      dc.subscribe('net.client.socket', onSocket);
      let dropped: WebSocketStream;
      try {
        dropped = client(`ws://127.0.0.1:${proxy.port}/dropped`);
        await dropped.opened;
      } finally {
        dc.unsubscribe('net.client.socket', onSocket);
      }
      const staying = client(`ws://127.0.0.1:${proxy.port}/staying`);
      await staying.opened;
      const peers = [await acceptor.next(), await acceptor.next()];
      const droppedPeer = peers.find((peer) => peer.request.url === '/dropped')!;
      sockets[0]!.destroy();
      const error = await droppedPeer.closed.then(
        () => null,
        (reason: unknown) => reason as { closeCode: number },
      );
      expect(error?.closeCode).to.equal(1006);
      await echoes(staying, ['unaffected']);
    });
  });
});
