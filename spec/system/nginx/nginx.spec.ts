// The reverse-proxy recipe of docs/scaling.md on Debian's nginx, in front of two backends: the
// upgrade headers, round-robin, TLS ending at nginx, proxy_read_timeout against the heartbeat,
// and what clients see when a backend dies or drains. Backends are `wss serve` processes (or, to
// read the headers nginx adds, our library's server in this process); each logs the path a client
// connected to, which tells which backend got which client.
import { expect } from 'chai';
import { WebSocketError, WebSocketStream, WebSocketStreamServer, type ServerWebSocketStream } from '../../../lib/index.js';
import { cleanUp, onCleanup, serve, textClient, type Cli, type TextClient } from '../../helpers/cli.js';
import { testCert } from '../../helpers/raw-peer.js';
import { Acceptor, echo, portOf } from '../../helpers/server-helpers.js';
import { startNginx, stopNginx } from './harness.js';

/** Which of `backends` logged the opening of the connection on path /<name>. */
function backendOf(backends: Cli[], name: string): Promise<number> {
  const pattern = new RegExp(`#\\d+ open from \\S+ /${name}$`, 'm');
  const waits = backends.map((backend, index) => backend.waitFor('stderr', pattern).then(() => index));
  // The backends that did not get it reject when they exit, after the test.
  for (const wait of waits) wait.catch(() => {});
  return Promise.any(waits);
}

/** A client through nginx on path /<name>, checked with one echo, and the backend it reached. */
async function through(url: string, backends: Cli[], name: string, options: ConstructorParameters<typeof WebSocketStream>[1] = {}): Promise<{ client: TextClient; backend: number }> {
  const client = await textClient(`${url}/${name}`, options);
  expect(await client.echo(`hello from ${name}`)).to.equal(`hello from ${name}`);
  return { client, backend: await backendOf(backends, name) };
}

/** How a connection ended: its close code and reason, or the unclean close's code. */
async function howClosed(stream: WebSocketStream): Promise<{ clean: boolean; closeCode: number | null; reason: string }> {
  try {
    return { clean: true, ...(await stream.closed) };
  } catch (error) {
    expect(error).to.be.instanceOf(WebSocketError);
    return { clean: false, closeCode: (error as WebSocketError).closeCode, reason: (error as WebSocketError).reason };
  }
}

/** The HTTP status in an opening-handshake failure's chain of causes. */
function statusOf(error: unknown): number | undefined {
  for (let current = error; typeof current === 'object' && current !== null; current = (current as { cause?: unknown }).cause) {
    const { statusCode } = current as { statusCode?: unknown };
    if (typeof statusCode === 'number') return statusCode;
  }
  return undefined;
}

describe('nginx in front of two backends (the recipe in docs/scaling.md)', function () {
  this.timeout(30_000);
  afterEach(async () => {
    await cleanUp();
    await stopNginx();
  });

  it('passes the upgrade on and spreads connections round-robin over both backends', async () => {
    const backends = [await serve(), await serve()];
    const nginx = await startNginx({ backends: [backends[0]!.port, backends[1]!.port] });
    const order: number[] = [];
    for (let i = 1; i <= 6; i++) order.push((await through(`ws://127.0.0.1:${nginx.port}`, backends.map((b) => b.cli), `spread-${i}`)).backend);
    expect(order).to.deep.equal([0, 1, 0, 1, 0, 1]);
  });

  it('without proxy_http_version 1.1 and the Upgrade and Connection headers, the backend gets a plain GET and the handshake fails', async () => {
    const backends = [await serve(), await serve()];
    const nginx = await startNginx({
      backends: [backends[0]!.port, backends[1]!.port],
      edit: (recipe) => recipe.replace(/^.*(?:proxy_http_version|proxy_set_header (?:Upgrade|Connection)) .*\n/gm, ''),
    });
    const client = new WebSocketStream(`ws://127.0.0.1:${nginx.port}/`);
    const error = await client.opened.then(
      () => null,
      (reason: unknown) => reason,
    );
    expect(error).to.be.instanceOf(WebSocketError);
    // wss serve answered the GET / it was given with its demo page.
    expect(statusOf(error)).to.equal(200);
    await client.closed.catch(() => {});
    for (const backend of backends) expect(backend.cli.stderr).to.not.include(' open from ');
  });

  it('TLS ends at nginx: wss:// to nginx, ws:// to the backends, which see the scheme and address in X-Forwarded-*', async () => {
    const seen: ServerWebSocketStream[] = [];
    const ports: number[] = [];
    for (let i = 0; i < 2; i++) {
      const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1' });
      await server.listening;
      const acceptor = new Acceptor(server, (stream) => {
        seen.push(stream);
        void echo(stream);
      });
      onCleanup(async () => {
        await server.close();
        await acceptor.done;
      });
      ports.push(portOf(server));
    }
    const nginx = await startNginx({ backends: [ports[0]!, ports[1]!] });
    const secure = await textClient(`wss://localhost:${nginx.tlsPort}/secure`, { tls: { ca: testCert } });
    expect(await secure.echo('over TLS to nginx')).to.equal('over TLS to nginx');
    const plain = await textClient(`ws://127.0.0.1:${nginx.port}/plain`);
    expect(await plain.echo('plain')).to.equal('plain');
    expect(seen.map((stream) => stream.request.url)).to.deep.equal(['/secure', '/plain']);
    const [viaTls, viaPlain] = seen.map((stream) => stream.request.headers);
    expect(viaTls).to.include({ host: 'localhost', 'x-forwarded-proto': 'https', 'x-forwarded-for': '127.0.0.1', upgrade: 'websocket' });
    expect(viaPlain).to.include({ 'x-forwarded-proto': 'http', 'x-forwarded-for': '127.0.0.1' });
    // The backends speak plain ws:// with nginx: the connection reached them without TLS.
    expect(seen.map((stream) => stream.url)).to.deep.equal(['ws://localhost/secure', 'ws://127.0.0.1/plain']);
  });

  it('proxy_read_timeout: an idle connection with a shorter heartbeat lives on; without one nginx cuts it (an unclean close, 1006)', async () => {
    // Round-robin gives the first connection to the first backend, which pings every 500 ms.
    const backends = [await serve(['--ping', '500']), await serve()];
    const nginx = await startNginx({ backends: [backends[0]!.port, backends[1]!.port], readTimeout: '2s' });
    const url = `ws://127.0.0.1:${nginx.port}`;
    const clis = backends.map((b) => b.cli);
    const heartbeat = await through(url, clis, 'with-heartbeat');
    const quiet = await through(url, clis, 'without-heartbeat');
    expect([heartbeat.backend, quiet.backend]).to.deep.equal([0, 1]);
    // Nothing is sent either way from now on.
    expect(await howClosed(quiet.client.stream)).to.include({ clean: false, closeCode: 1006 });
    await nginx.waitForError(/upstream timed out \(110: Connection timed out\) while proxying upgraded connection/);
    // The other connection has been idle longer than that, and was kept alive by the pings.
    expect(await heartbeat.client.echo('still here')).to.equal('still here');
  });

  it('a backend that dies: its clients see an unclean close (1006); they and every new client are served by the other (proxy_next_upstream)', async () => {
    const backends = [await serve(), await serve()];
    const [dying, surviving] = backends;
    const nginx = await startNginx({ backends: [dying!.port, surviving!.port] });
    const url = `ws://127.0.0.1:${nginx.port}`;
    const clis = backends.map((b) => b.cli);
    const before = [];
    for (const name of ['b1', 'b2', 'b3', 'b4']) before.push(await through(url, clis, name));
    expect(before.map((entry) => entry.backend)).to.deep.equal([0, 1, 0, 1]);

    dying!.cli.child.kill('SIGKILL');
    await dying!.cli.exited;
    for (const { client, backend } of before) {
      if (backend === 0) expect(await howClosed(client.stream)).to.include({ clean: false, closeCode: 1006 });
      else expect(await client.echo('unaffected')).to.equal('unaffected');
    }
    // The clients of the dead backend reconnect, and new clients arrive: all go to the survivor.
    // The first of them was sent to the dead backend, refused, and passed on.
    const after = [];
    for (const name of ['re-b1', 're-b3', 'new-1', 'new-2']) after.push(await through(url, clis, name));
    expect(after.map((entry) => entry.backend)).to.deep.equal([1, 1, 1, 1]);
    expect(nginx.errors).to.match(new RegExp(`connect\\(\\) failed \\(111: Connection refused\\) while connecting to upstream.*upstream: "http://127\\.0\\.0\\.1:${dying!.port}/re-b1"`));

    for (const { client } of [...before, ...after]) {
      client.stream.close();
      await howClosed(client.stream);
    }
    await nginx.stop();
    const log = await nginx.accessLog();
    const [dead, alive] = [`127.0.0.1:${dying!.port}`, `127.0.0.1:${surviving!.port}`];
    expect(log.filter((line) => line.startsWith('/re-b1 '))).to.deep.equal([`/re-b1 101 ${dead}, ${alive} 502, 101`]);
    // The dead backend is then left alone for fail_timeout: nobody else tries it.
    for (const name of ['re-b3', 'new-1', 'new-2']) expect(log.filter((line) => line.startsWith(`/${name} `))).to.deep.equal([`/${name} 101 ${alive} 101`]);
  });

  it('a backend that drains (SIGTERM): its clients get its 1001 through nginx, and reconnect to the other', async () => {
    const backends = [await serve(), await serve()];
    const nginx = await startNginx({ backends: [backends[0]!.port, backends[1]!.port] });
    const url = `ws://127.0.0.1:${nginx.port}`;
    const clis = backends.map((b) => b.cli);
    const first = await through(url, clis, 'd1');
    const second = await through(url, clis, 'd2');
    expect([first.backend, second.backend]).to.deep.equal([0, 1]);
    backends[0]!.cli.child.kill('SIGTERM');
    expect(await howClosed(first.client.stream)).to.deep.equal({ clean: true, closeCode: 1001, reason: 'server shutting down' });
    expect(await backends[0]!.cli.exited).to.deep.equal({ code: 0, signal: null });
    const again = await through(url, clis, 're-d1');
    expect(again.backend).to.equal(1);
    expect(await second.client.echo('unaffected')).to.equal('unaffected');
  });
});
