// The `wss` command, driven as a child process over real sockets on 127.0.0.1.
import { expect } from 'chai';
import { mkdtemp, readFile, readdir, rm, symlink } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import { WebSocketStream, WebSocketStreamServer, type ServerWebSocketStream, type WebSocketMessage } from '../lib/index.js';
import { acceptHandshake, CLI, cleanUp, cli, closedPort, onCleanup, plainEnv, program, rawServer, serve, SGR } from './helpers/cli.js';
import { fixtures } from './helpers/raw-peer.js';
import { Acceptor, echo, portOf, rawConnect } from './helpers/server-helpers.js';
import { startSocksServer } from './helpers/socks-server.js';

const CERT = path.join(fixtures, 'cert.pem');
const KEY = path.join(fixtures, 'key.pem');

/** Server side: every message the client sends, until it closes. */
async function collect(stream: ServerWebSocketStream, into: WebSocketMessage[]): Promise<void> {
  try {
    const { readable } = await stream.opened;
    for await (const message of readable as unknown as AsyncIterable<WebSocketMessage>) into.push(message);
  } catch {
    // An unclean close: the test says what it expected.
  }
}

/** Our own server in this process, echoing unless told otherwise. */
async function server(
  options: ConstructorParameters<typeof WebSocketStreamServer>[0] = {},
  onStream: (stream: ServerWebSocketStream) => void = (stream) => void echo(stream),
): Promise<{ server: WebSocketStreamServer; acceptor: Acceptor; url: string }> {
  const wsServer = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', ...options });
  await wsServer.listening;
  const acceptor = new Acceptor(wsServer, onStream);
  onCleanup(async () => {
    await wsServer.close();
    await acceptor.done;
  });
  return { server: wsServer, acceptor, url: `ws://127.0.0.1:${portOf(wsServer)}/` };
}

/** A CONNECT proxy (RFC 9110 §9.3.6) that records each request head and tunnels to 127.0.0.1. */
async function connectProxy(): Promise<{ url: string; heads: string[] }> {
  const heads: string[] = [];
  const port = await rawServer((socket) => {
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      const text = head.subarray(0, end).toString('latin1');
      heads.push(text);
      const target = /^CONNECT 127\.0\.0\.1:(\d+) HTTP\/1\.1/.exec(text);
      if (target === null) {
        socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
        return;
      }
      const upstream = net.connect(Number(target[1]), '127.0.0.1', () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head.subarray(end + 4));
        socket.pipe(upstream).pipe(socket);
      });
      upstream.on('error', () => socket.destroy());
      socket.on('close', () => upstream.destroy());
    };
    socket.on('data', onData);
  });
  return { url: `http://127.0.0.1:${port}`, heads };
}

function get(port: number, pathname: string, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, path: pathname, method, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (text: string) => (body += text));
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body }));
    });
    request.on('error', reject);
    request.end();
  });
}

/** A client of our library that collects what it receives. */
async function client(url: string, options: ConstructorParameters<typeof WebSocketStream>[1] = {}) {
  const stream = new WebSocketStream(url, options);
  const { readable, writable, protocol, extensions } = await stream.opened;
  const writer = writable.getWriter();
  const reader = readable.getReader();
  onCleanup(() => {
    stream.close();
    return stream.closed.then(
      () => undefined,
      () => undefined,
    );
  });
  return {
    stream,
    protocol,
    extensions,
    send: (message: string | Uint8Array) => writer.write(message),
    async next(): Promise<WebSocketMessage> {
      const { value, done } = await reader.read();
      expect(done, 'a message, not the end of the readable').to.equal(false);
      return value!;
    },
  };
}

afterEach(cleanUp);

describe('wss (the command-line tool)', () => {
  describe('help and usage errors', () => {
    it('--help prints the tool usage and exits 0', async () => {
      const run = cli(['--help']);
      expect(await run.exited).to.deep.equal({ code: 0, signal: null });
      expect(run.stdout).to.match(/^Usage: wss <command>/);
      expect(run.stdout).to.include('connect <url>').and.include('serve');
    });

    it('each command has its own --help, also as `help <command>`', async () => {
      const connect = cli(['connect', '--help']);
      const serveHelp = cli(['serve', '-h']);
      const helpConnect = cli(['help', 'connect']);
      for (const run of [connect, serveHelp, helpConnect]) expect((await run.exited).code).to.equal(0);
      expect(connect.stdout).to.match(/^Usage: wss connect \[options\] <url>/);
      for (const option of ['--header', '--origin', '--protocol', '--binary', '--binary-format', '--save-binary', '--json', '--no-deflate', '--insecure', '--ca', '--proxy', '--ping', '--close-code', '--close-reason', '--wait', '--keep-open', '--verbose', '--quiet']) {
        expect(connect.stdout).to.include(option);
      }
      expect(serveHelp.stdout).to.match(/^Usage: wss serve \[options\]/);
      for (const option of ['--mode', '--port', '--host', '--socket', '--tls-cert', '--tls-key', '--protocols', '--deflate', '--ping', '--json', '--binary-format', '--workers', '--drain-timeout', 'broadcast', 'print']) {
        expect(serveHelp.stdout).to.include(option);
      }
      expect(helpConnect.stdout).to.equal(connect.stdout);
    });

    it('no command, an unknown command or option, or a bad value: a message on stderr and exit 2', async () => {
      const cases: Array<[string[], RegExp]> = [
        [[], /^Usage: wss/],
        [['launch'], /unknown command "launch"/],
        [['connect'], /connect needs a URL/],
        [['connect', '--bogus', 'ws://127.0.0.1:1/'], /Unknown option '--bogus'/],
        [['connect', '--close-code', '1001', 'ws://127.0.0.1:1/'], /--close-code must be 1000 or 3000-4999/],
        [['connect', '--close-reason', 'x'.repeat(124), 'ws://127.0.0.1:1/'], /at most 123/],
        [['connect', '-H', 'no colon', 'ws://127.0.0.1:1/'], /--header must look like "Name: value"/],
        [['connect', '-H', 'Sec-WebSocket-Key: x', 'ws://127.0.0.1:1/'], /set by the WebSocket handshake itself/],
        [['connect', 'ftp://127.0.0.1/'], /scheme/],
        [['serve', '--mode', 'mirror'], /--mode must be echo, broadcast, print/],
        [['serve', '--port', '70000'], /--port must be from 0 to 65535/],
        [['serve', '--tls-cert', CERT], /--tls-cert and --tls-key go together/],
        [['serve', '--tls-cert', KEY, '--tls-key', KEY], /--tls-cert\/--tls-key: /],
        [['serve', '--protocols', 'chat,two words'], /"two words" is not a valid subprotocol name/],
        [['connect', '--binary-format', 'base32', 'ws://127.0.0.1:1/'], /--binary-format must be hex or base64, not "base32"/],
        [['connect', '--verbose', '--quiet', 'ws://127.0.0.1:1/'], /--verbose and --quiet contradict each other/],
        [['connect', '--wait', 'soon', 'ws://127.0.0.1:1/'], /--wait must be a whole number/],
        [['serve', '--json'], /--json and --binary-format apply to --mode print only/],
        [['serve', '--socket', '/tmp/x.sock', '--port', '1'], /--socket listens on a Unix domain socket instead of --host and --port/],
        [['serve', '--socket', ''], /--socket needs a path/],
        [['serve', '--workers', 'many'], /--workers must be a number of processes or "auto", not "many"/],
        [['serve', '--workers', '0'], /--workers must be from 1 to 1024, not 0/],
        [['serve', '--mode', 'broadcast', '--workers', '2'], /--mode broadcast needs one process: with 2 workers, a message would reach only the clients of the worker that received it/],
        [['serve', '--workers', '2', '--tls-cert', KEY, '--tls-key', KEY], /--tls-cert\/--tls-key: /],
        [['serve', '--drain-timeout', 'soon'], /--drain-timeout must be a whole number/],
      ];
      const runs = cases.map(([args]) => cli(args));
      for (const [index, run] of runs.entries()) {
        expect(await run.exited, `exit of ${cases[index]![0].join(' ')}`).to.deep.equal({ code: 2, signal: null });
        expect(run.stderr).to.match(cases[index]![1]);
        expect(run.stdout).to.equal('');
      }
    });
  });

  describe('--version', () => {
    it('-V and --version print the version in package.json, also when run through a symlink as npm installs it', async () => {
      const { version } = JSON.parse(await readFile('package.json', 'utf8')) as { version: string };
      const directory = await mkdtemp(path.join(os.tmpdir(), 'wss-bin-'));
      onCleanup(() => rm(directory, { recursive: true, force: true }));
      // npm links node_modules/.bin/wss to the package's cli.js; above the link lies another project.
      await symlink(CLI, path.join(directory, 'wss'));
      const runs = [cli(['-V']), cli(['--version']), program(process.execPath, [path.join(directory, 'wss'), '--version'], { env: plainEnv() })];
      for (const run of runs) {
        expect(await run.exited).to.deep.equal({ code: 0, signal: null });
        expect(run.stdout).to.equal(`wss ${version} (Node.js ${process.version})\n`);
      }
      const help = cli(['--help']);
      await help.exited;
      expect(help.stdout).to.include('-V, --version');
    });
  });

  describe('serve', () => {
    it('echo (the default): every message comes back to its sender, with the subprotocol and deflate asked for', async () => {
      const { cli: run, port } = await serve(['--protocols', 'chat,json', '--deflate']);
      expect(run.stderr).to.include('mode echo');
      const peer = await client(`ws://127.0.0.1:${port}/room?x=1`, { protocols: ['json'] });
      expect(peer.protocol).to.equal('json');
      expect(peer.extensions).to.include('permessage-deflate');
      await peer.send('hello');
      expect(await peer.next()).to.equal('hello');
      await peer.send(new Uint8Array([0, 1, 255]));
      expect(await peer.next()).to.deep.equal(new Uint8Array([0, 1, 255]));
      peer.stream.close({ closeCode: 4001, reason: 'done' });
      expect(await peer.stream.closed).to.deep.equal({ closeCode: 4001, reason: 'done' });
      await run.waitFor('stderr', /#1 closed: code 4001, reason "done"/);
      expect(run.stderr).to.match(/#1 open from 127\.0\.0\.1:\d+ \/room\?x=1 \(protocol json; extensions permessage-deflate/);
    });

    it('without --deflate it declines permessage-deflate', async () => {
      const { port } = await serve();
      const peer = await client(`ws://127.0.0.1:${port}/`);
      expect(peer.extensions).to.equal('');
      await peer.send('x');
      expect(await peer.next()).to.equal('x');
    });

    it('broadcast: every message goes to every client, the sender included', async () => {
      const { port } = await serve(['--mode', 'broadcast']);
      // Each client is known to the server once its own first message came back to it.
      const alice = await client(`ws://127.0.0.1:${port}/`);
      await alice.send('alice here');
      expect(await alice.next()).to.equal('alice here');
      const bob = await client(`ws://127.0.0.1:${port}/`);
      await bob.send(new Uint8Array([7, 8]));
      expect(await bob.next()).to.deep.equal(new Uint8Array([7, 8]));
      expect(await alice.next()).to.deep.equal(new Uint8Array([7, 8]));
      await alice.send('to everyone');
      expect(await alice.next()).to.equal('to everyone');
      expect(await bob.next()).to.equal('to everyone');
    });

    it('broadcast: a client that stops reading is dropped once 16 MiB wait for it; the others go on', async () => {
      const { cli: run, port } = await serve(['--mode', 'broadcast']);
      const sender = await client(`ws://127.0.0.1:${port}/`);
      const { socket: stalled } = await rawConnect(port);
      onCleanup(() => void stalled.destroy());
      stalled.pause();
      const chunk = new Uint8Array(1024 * 1024).fill(0x61);
      // Until the cap is hit, the sender's own copies keep flowing: broadcasting never waits for
      // the stalled client.
      while (!run.stderr.includes('#2 dropped')) {
        await sender.send(chunk);
        expect(((await sender.next()) as Uint8Array).byteLength).to.equal(chunk.byteLength);
      }
      expect(run.stderr).to.include('#2 dropped: over 16777216 bytes of messages waiting for it');
      await sender.send('still here');
      expect(await sender.next()).to.equal('still here');
    });

    it('print: messages go to stdout (binary as hex), nothing is sent back, the close is logged', async () => {
      const { cli: run, port } = await serve(['--mode', 'print']);
      const peer = await client(`ws://127.0.0.1:${port}/`);
      await peer.send('first line');
      await peer.send(new Uint8Array([0xde, 0xad, 0xbe, 0xef]));
      await peer.send('last line');
      await run.waitFor('stdout', /last line\n/);
      expect(run.stdout).to.equal('first line\n[binary 4 bytes] deadbeef\nlast line\n');
      peer.stream.close({ closeCode: 4002, reason: 'enough' });
      expect(await peer.stream.closed).to.deep.equal({ closeCode: 4002, reason: 'enough' });
      await run.waitFor('stderr', /#1 closed: code 4002, reason "enough"/);
    });

    it('print --json: one JSON record per message, with the connection it came from; --binary-format base64', async () => {
      const { cli: run, port } = await serve(['--mode', 'print', '--json', '--binary-format', 'base64']);
      const peer = await client(`ws://127.0.0.1:${port}/`);
      await peer.send('héllo');
      await peer.send(new Uint8Array([0xde, 0xad, 0xbe, 0xef]));
      await run.waitFor('stdout', /"kind":"binary".*\n/);
      const records = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
      for (const record of records) expect(new Date(record.time as string).toISOString()).to.equal(record.time);
      expect(records.map(({ time, ...rest }) => rest)).to.deep.equal([
        { connection: 1, type: 'message', kind: 'text', size: 6, data: 'héllo' },
        { connection: 1, type: 'message', kind: 'binary', size: 4, encoding: 'base64', data: '3q2+7w==' },
      ]);
    });

    it('GET / is the demo page (WebSocketStream with a WebSocket fallback); other paths are 404', async () => {
      const { port } = await serve(['--mode', 'broadcast', '--protocols', 'chat']);
      const page = await get(port, '/');
      expect(page.status).to.equal(200);
      expect(page.headers['content-type']).to.equal('text/html; charset=utf-8');
      expect(page.headers['content-security-policy']).to.match(/script-src 'sha256-/);
      expect(page.body).to.match(/^<!doctype html>/).and.include('<title>WebSocketStream demo</title>');
      expect(page.body).to.include("'WebSocketStream' in globalThis").and.include('new WebSocket(');
      expect(page.body).to.include('id="mode">broadcast<').and.include('value="chat"');
      expect(page.body).to.not.match(/\b(?:src|href)="?https?:/);
      const head = await get(port, '/', 'HEAD');
      expect([head.status, head.body]).to.deep.equal([200, '']);
      expect((await get(port, '/nope')).status).to.equal(404);
      expect((await get(port, '/', 'POST')).status).to.equal(405);
    });

    it('serves wss:// and https:// with --tls-cert and --tls-key', async () => {
      const { cli: run, port } = await serve(['--tls-cert', CERT, '--tls-key', KEY]);
      expect(run.stderr).to.include(`demo page: https://127.0.0.1:${port}/`);
      const peer = await client(`wss://127.0.0.1:${port}/`, { tls: { ca: await readFile(CERT) } });
      await peer.send('secure');
      expect(await peer.next()).to.equal('secure');
    });

    it('SIGTERM closes open connections with 1001 and exits 0', async () => {
      const { cli: run, port } = await serve();
      const peer = await client(`ws://127.0.0.1:${port}/`);
      run.child.kill('SIGTERM');
      expect(await peer.stream.closed).to.deep.equal({ closeCode: 1001, reason: 'server shutting down' });
      expect(await run.exited).to.deep.equal({ code: 0, signal: null });
      expect(run.stderr).to.match(/stopped\n$/);
    });

    it('--socket listens on a Unix domain socket; SIGTERM removes it', async () => {
      const directory = await mkdtemp(path.join(os.tmpdir(), 'wss-cli-'));
      onCleanup(() => rm(directory, { recursive: true, force: true }));
      const socketPath = path.join(directory, 'serve.sock');
      const run = cli(['serve', '--socket', socketPath]);
      await run.waitFor('stderr', /listening on ws\+unix:\/\/\S+ \(mode echo\)/);
      expect(run.stderr).to.include(`listening on ws+unix://${socketPath}:/ (mode echo)`);
      const peer = await client(`ws+unix://${socketPath}:/`);
      await peer.send('over a Unix socket');
      expect(await peer.next()).to.equal('over a Unix socket');
      run.child.kill('SIGTERM');
      expect(await peer.stream.closed).to.deep.equal({ closeCode: 1001, reason: 'server shutting down' });
      expect(await run.exited).to.deep.equal({ code: 0, signal: null });
      expect(await readdir(directory)).to.deep.equal([]);
    });

    it('a port in use: the cause on stderr and exit 1', async () => {
      const { server: busy } = await server();
      const run = cli(['serve', '--port', String(portOf(busy))]);
      expect(await run.exited).to.deep.equal({ code: 1, signal: null });
      expect(run.stderr).to.match(/cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
    });
  });

  describe('connect', () => {
    it('sends stdin lines, prints the echoes, and closes with --close-code/--close-reason at EOF', async () => {
      const { acceptor, url } = await server();
      const run = cli(['connect', '--wait', '0', '--close-code', '4000', '--close-reason', 'bye', url]);
      await run.waitFor('stderr', /connected to ws:\/\/127\.0\.0\.1:\d+\//);
      run.write('hello\n');
      await run.waitFor('stdout', /hello\n/);
      run.write('two words\r\n\n');
      await run.waitFor('stdout', /two words\n\n/);
      run.end();
      expect(await run.exited).to.deep.equal({ code: 0, signal: null });
      expect(run.stdout).to.equal('hello\ntwo words\n\n');
      expect(run.stderr).to.match(/closed: code 4000, reason "bye"\n$/);
      expect(await acceptor.all[0]!.closed).to.deep.equal({ closeCode: 4000, reason: 'bye' });
    });

    it('after stdin ends, prints the replies still on their way before it closes (`wss serve` echoing)', async () => {
      const { cli: server, port } = await serve();
      const run = cli(['connect', `127.0.0.1:${port}/`], { stdin: 'one\ntwo\nthree' });
      expect(await run.exited).to.deep.equal({ code: 0, signal: null });
      expect(run.stdout).to.equal('one\ntwo\nthree\n');
      expect(run.stderr).to.match(/closed: code 1000, reason ""\n$/);
      await server.waitFor('stderr', /#1 closed: code 1000/);
    });

    it('after stdin ends, prints the replies of a `ws` echo server too', async () => {
      const wsServer = new WebSocketServer({ port: 0, host: '127.0.0.1' });
      await new Promise<void>((resolve) => wsServer.once('listening', resolve));
      wsServer.on('connection', (socket) => socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary })));
      onCleanup(() => new Promise<void>((resolve) => {
        for (const client of wsServer.clients) client.terminate();
        wsServer.close(() => resolve());
      }));
      const { port } = wsServer.address() as net.AddressInfo;
      const run = cli(['connect', `ws://127.0.0.1:${port}/`], { stdin: 'hello\n' });
      expect(await run.exited).to.deep.equal({ code: 0, signal: null });
      expect(run.stdout).to.equal('hello\n');
    });

    it('the quiet period restarts with every message: a server still sending is not cut off', async () => {
      // After stdin ends, this server sends 15 messages 100 ms apart, then falls silent. A client
      // that closed --wait ms after EOF, whatever arrived meanwhile, would close mid-stream.
      const ticks = 15;
      let closeSeenAfter = -1;
      const { url } = await server({}, (stream) => {
        void (async () => {
          const { readable, writable } = await stream.opened;
          const writer = writable.getWriter();
          let sent = 0;
          const reader = readable.getReader();
          await reader.read();
          const closing = reader.read().then(() => (closeSeenAfter = sent));
          for (; sent < ticks && closeSeenAfter === -1; sent++) {
            await writer.write(`tick ${sent + 1}`);
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
          await closing;
        })().catch(() => {});
      });
      const run = cli(['connect', '--wait', '1000', url], { stdin: 'start\n' });
      expect(await run.exited).to.deep.equal({ code: 0, signal: null });
      expect(run.stdout.split('\n').filter(Boolean)).to.deep.equal(Array.from({ length: ticks }, (_, i) => `tick ${i + 1}`));
      expect(closeSeenAfter, 'messages the server had sent when the close arrived').to.equal(ticks);
    });

    it('--wait 0 closes as soon as stdin ends; --keep-open waits for the server to close', async () => {
      const holdUntilClosed = (stream: ServerWebSocketStream): void => void stream.opened.catch(() => {});
      const { acceptor, url } = await server({}, holdUntilClosed);
      const now = cli(['connect', '--wait', '0', url], { stdin: '' });
      expect(await now.exited).to.deep.equal({ code: 0, signal: null });
      expect(await acceptor.all[0]!.closed).to.deep.equal({ closeCode: 1000, reason: '' });
      const kept = cli(['connect', '--keep-open', '--wait', '0', url], { stdin: '' });
      await kept.waitFor('stderr', /connected/);
      const stream = acceptor.all[1]!;
      stream.close({ closeCode: 4005, reason: 'server done' });
      expect(await kept.exited).to.deep.equal({ code: 0, signal: null });
      expect(kept.stderr).to.match(/closed: code 4005, reason "server done"\n$/);
    });

    it('--binary sends hex lines as binary messages and prints binary messages as hex', async () => {
      const { url } = await server();
      const run = cli(['connect', '--wait', '0', '--binary', url]);
      await run.waitFor('stderr', /connected/);
      run.write('00 01 fF\nnot hex\n\n');
      await run.waitFor('stdout', /\[binary 0 bytes\]\n/);
      run.end();
      expect((await run.exited).code).to.equal(0);
      expect(run.stdout).to.equal('[binary 3 bytes] 0001ff\n[binary 0 bytes]\n');
      expect(run.stderr).to.include('line 2 is not hex, not sent: "not hex"');
    });

    it('--save-binary writes binary messages to files instead of printing them', async () => {
      const directory = await mkdtemp(path.join(os.tmpdir(), 'wss-cli-'));
      onCleanup(() => rm(directory, { recursive: true, force: true }));
      const { url } = await server();
      const run = cli(['connect', '-w', '0', '-b', '--save-binary', directory, url]);
      await run.waitFor('stderr', /connected/);
      run.write('cafe\n');
      await run.waitFor('stdout', /saved to .*message-1\.bin\n/);
      run.end('\n');
      expect((await run.exited).code).to.equal(0);
      expect(await readdir(directory)).to.deep.equal(['message-1.bin']);
      expect(await readFile(path.join(directory, 'message-1.bin'))).to.deep.equal(Buffer.from([0xca, 0xfe]));
    });

    it('-H headers and -p subprotocols reach the server; --no-deflate offers no compression', async () => {
      const { acceptor, url } = await server({ protocols: ['v2'], perMessageDeflate: true });
      const run = cli(['connect', '-w', '0', '-H', 'Authorization: Bearer t0k3n', '--header', 'X-Trace:  abc ', '-o', 'https://app.example', '-p', 'v1', '--protocol', 'v2,v3', '--no-deflate', url], { stdin: '' });
      expect((await run.exited).code).to.equal(0);
      const { request } = acceptor.all[0]!;
      expect(request.headers.authorization).to.equal('Bearer t0k3n');
      expect(request.headers['x-trace']).to.equal('abc');
      expect(request.headers.origin).to.equal('https://app.example');
      expect(request.headers['sec-websocket-protocol']).to.equal('v1, v2, v3');
      expect(request.headers['sec-websocket-extensions']).to.equal(undefined);
      expect(run.stderr).to.include('(protocol v2)');
    });

    it('offers permessage-deflate by default', async () => {
      const { acceptor, url } = await server({ perMessageDeflate: true });
      const run = cli(['connect', '-w', '0', url], { stdin: 'squeeze\n' });
      expect((await run.exited).code).to.equal(0);
      expect(acceptor.all[0]!.request.headers['sec-websocket-extensions']).to.include('permessage-deflate');
      expect(run.stderr).to.include('extensions permessage-deflate');
    });

    it('--proxy goes through an HTTP CONNECT proxy with Basic credentials, or the one in HTTP_PROXY with "env"', async () => {
      const { url } = await server();
      const target = new URL(url).host;
      const proxy = await connectProxy();
      const explicit = cli(['connect', '-w', '0', '--proxy', proxy.url.replace('//', '//user:p%40ss@'), url], { stdin: 'via proxy\n' });
      expect(await explicit.exited).to.deep.equal({ code: 0, signal: null });
      expect(proxy.heads[0]).to.match(new RegExp(`^CONNECT ${target} HTTP/1\\.1\r\n`));
      expect(proxy.heads[0]).to.include(`Proxy-Authorization: Basic ${Buffer.from('user:p@ss').toString('base64')}`);
      const fromEnv = cli(['connect', '-w', '0', '--proxy', 'env', url], { env: plainEnv({ HTTP_PROXY: proxy.url, NO_PROXY: '' }), stdin: 'via env\n' });
      expect(await fromEnv.exited).to.deep.equal({ code: 0, signal: null });
      expect(proxy.heads).to.have.length(2);
      expect(proxy.heads[1]).to.match(new RegExp(`^CONNECT ${target} `));
      const bad = cli(['connect', '--proxy', 'ftp://127.0.0.1:1', url], { stdin: '' });
      expect((await bad.exited).code).to.equal(2);
    });

    it('--proxy goes through a SOCKS5 proxy with credentials; refused ones are never printed', async () => {
      const received: WebSocketMessage[] = [];
      const { url } = await server({}, (stream) => void collect(stream, received));
      const socks = await startSocksServer({ credentials: { user: 'user', password: 'hunter2' } });
      onCleanup(() => socks.close());
      const good = cli(['connect', '--proxy', socks.url('socks5h', { user: 'user', password: 'hunter2' }), url], { stdin: 'via socks\n' });
      expect(await good.exited).to.deep.equal({ code: 0, signal: null });
      expect(received).to.deep.equal(['via socks']);
      expect(socks.sessions[0]!.request!.port).to.equal(Number(new URL(url).port));
      const bad = cli(['connect', '--proxy', socks.url('socks5h', { user: 'user', password: 'hunter3' }), url], { stdin: '' });
      expect((await bad.exited).code).to.equal(1);
      expect(bad.stderr).to.include(`proxy socks5h://127.0.0.1:${socks.port} refused the credentials`);
      expect(bad.stderr + bad.stdout).to.not.include('hunter3');
    });

    it('connects to a ws+unix: URL', async () => {
      const directory = await mkdtemp(path.join(os.tmpdir(), 'wss-cli-'));
      onCleanup(() => rm(directory, { recursive: true, force: true }));
      const socketPath = path.join(directory, 'ours.sock');
      const received: WebSocketMessage[] = [];
      await server({ port: undefined, host: undefined, socketPath }, (stream) => void collect(stream, received));
      const run = cli(['connect', `ws+unix://${socketPath}:/chat`], { stdin: 'unix line\n' });
      expect(await run.exited).to.deep.equal({ code: 0, signal: null });
      expect(received).to.deep.equal(['unix line']);
      expect(run.stderr).to.include(`connected to ws+unix://${socketPath}:/chat`);
    });

    it('prints the close code and reason when the server closes first, and exits 0', async () => {
      const { url } = await server({}, (stream) => {
        void stream.opened.then(() => stream.close({ closeCode: 4100, reason: 'server says bye' }));
      });
      // stdin stays open: the server's close must end the command by itself.
      const run = cli(['connect', url]);
      expect(await run.exited).to.deep.equal({ code: 0, signal: null });
      expect(run.stderr).to.match(/closed: code 4100, reason "server says bye"\n$/);
    });

    it('Ctrl-C (SIGINT) closes cleanly with the close code and reason', async () => {
      const { acceptor, url } = await server();
      const run = cli(['connect', '--close-code', '4321', '--close-reason', 'interrupted', url]);
      await run.waitFor('stderr', /connected/);
      run.child.kill('SIGINT');
      expect(await run.exited).to.deep.equal({ code: 0, signal: null });
      expect(await acceptor.all[0]!.closed).to.deep.equal({ closeCode: 4321, reason: 'interrupted' });
      expect(run.stderr).to.match(/closed: code 4321, reason "interrupted"\n$/);
    });

    it('Ctrl-C before the handshake completes gives up at once (exit 130)', async () => {
      let reached!: () => void;
      const connected = new Promise<void>((resolve) => (reached = resolve));
      const port = await rawServer(() => reached());
      const run = cli(['connect', `ws://127.0.0.1:${port}/`]);
      await connected;
      run.child.kill('SIGINT');
      expect(await run.exited).to.deep.equal({ code: 130, signal: null });
      expect(run.stderr).to.include('interrupted before the connection opened');
    });

    it('a second Ctrl-C does not wait for a peer that ignores the close frame (exit 130)', async () => {
      let closeFrameSeen!: () => void;
      const closeFrame = new Promise<void>((resolve) => (closeFrameSeen = resolve));
      // 0x88: FIN and the close opcode (RFC 6455 §5.2), the first byte of the client's close frame.
      const port = await rawServer((socket) => acceptHandshake(socket, (accepted) => accepted.on('data', (chunk: Buffer) => chunk[0] === 0x88 && closeFrameSeen())));
      const run = cli(['connect', `ws://127.0.0.1:${port}/`]);
      await run.waitFor('stderr', /connected/);
      run.child.kill('SIGINT');
      await closeFrame;
      run.child.kill('SIGINT');
      expect(await run.exited).to.deep.equal({ code: 130, signal: null });
    });

    it('a refused connection: exit 1 with the cause on stderr', async () => {
      const port = await closedPort();
      const run = cli(['connect', `ws://127.0.0.1:${port}/`], { stdin: 'never sent\n' });
      expect(await run.exited).to.deep.equal({ code: 1, signal: null });
      expect(run.stderr).to.match(/^error: .*handshake with ws:\/\/127\.0\.0\.1:\d+\/ failed/);
      expect(run.stderr).to.include('ECONNREFUSED');
      expect(run.stdout).to.equal('');
    });

    it('a refused handshake: exit 1 with the HTTP status on stderr', async () => {
      const { url } = await server({ verify: () => ({ status: 403, message: 'go away' }) });
      const run = cli(['connect', url], { stdin: '' });
      expect(await run.exited).to.deep.equal({ code: 1, signal: null });
      expect(run.stderr).to.match(/unexpected response status 403/);
    });

    it('an unclean close (the connection dropped without a close frame): exit 3', async () => {
      const port = await rawServer((socket) => acceptHandshake(socket, (accepted) => accepted.once('data', () => accepted.destroy())));
      const run = cli(['connect', `ws://127.0.0.1:${port}/`]);
      await run.waitFor('stderr', /connected/);
      run.write('this message gets the connection dropped\n');
      expect(await run.exited).to.deep.equal({ code: 3, signal: null });
      expect(run.stderr).to.match(/closed uncleanly: code 1006/);
    });

    it('--ping drops a peer that never answers pings (exit 3)', async () => {
      const port = await rawServer((socket) => acceptHandshake(socket, () => {}));
      const run = cli(['connect', '--ping', '100', `ws://127.0.0.1:${port}/`]);
      expect(await run.exited).to.deep.equal({ code: 3, signal: null });
      expect(run.stderr).to.match(/closed uncleanly: code 1006/);
      expect(run.stderr).to.match(/pong/i);
    });

    it('connect and serve together: a line typed in one comes out of the other', async () => {
      const { cli: printer, port } = await serve(['--mode', 'print']);
      const run = cli(['connect', '-w', '0', `ws://127.0.0.1:${port}/`], { stdin: 'through two processes\n0102\n' });
      expect((await run.exited).code).to.equal(0);
      await printer.waitFor('stderr', /#1 closed: code 1000/);
      expect(printer.stdout).to.equal('through two processes\n0102\n');
    });
  });

  describe('connect --json, --binary-format, --verbose, --quiet', () => {
    /** The records on stdout, each checked to have an ISO 8601 time, then without it. */
    function records(stdout: string): Array<Record<string, unknown>> {
      return stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .map(({ time, ...rest }) => {
          expect(new Date(time as string).toISOString(), `time ${String(time)}`).to.equal(time);
          return rest;
        });
    }

    it('--json: open, each message with its kind, size and data (binary in hex), and the close', async () => {
      const { url } = await server();
      const run = cli(['connect', '--json', url], { stdin: 'héllo\n{"a":1}\n' });
      const binary = cli(['connect', '--json', '-b', url], { stdin: '00ff10\n' });
      expect(await run.exited).to.deep.equal({ code: 0, signal: null });
      expect(await binary.exited).to.deep.equal({ code: 0, signal: null });
      expect(records(run.stdout)).to.deep.equal([
        { type: 'open', url, protocol: '', extensions: '' },
        { type: 'message', kind: 'text', size: 6, data: 'héllo' },
        { type: 'message', kind: 'text', size: 7, data: '{"a":1}' },
        { type: 'close', clean: true, code: 1000, reason: '' },
      ]);
      expect(records(binary.stdout)[1]).to.deep.equal({ type: 'message', kind: 'binary', size: 3, encoding: 'hex', data: '00ff10' });
      // Status lines stay on stderr, for people; stdout is only records.
      expect(run.stderr).to.include('connected to');
    });

    it('--json with --save-binary names the file; an unclean close and a failure to connect are records too', async () => {
      const directory = await mkdtemp(path.join(os.tmpdir(), 'wss-cli-'));
      onCleanup(() => rm(directory, { recursive: true, force: true }));
      const port = await rawServer((socket) =>
        acceptHandshake(socket, (accepted) => {
          // A 2-byte binary frame (FIN + opcode 2, unmasked as a server's must be), then a drop.
          accepted.write(Buffer.from([0x82, 0x02, 0xca, 0xfe]));
          accepted.once('data', () => accepted.destroy());
        }),
      );
      const run = cli(['connect', '-j', '--save-binary', directory, `ws://127.0.0.1:${port}/`]);
      await run.waitFor('stdout', /"kind":"binary"/);
      run.write('drop it\n');
      expect(await run.exited).to.deep.equal({ code: 3, signal: null });
      const [, saved, closed] = records(run.stdout);
      expect(saved).to.deep.equal({ type: 'message', kind: 'binary', size: 2, file: path.join(directory, 'message-1.bin') });
      expect(closed).to.include({ type: 'close', clean: false, code: 1006, reason: '' });
      expect(closed!.error).to.be.a('string');

      const refusedPort = await closedPort();
      const refused = cli(['connect', '--json', `ws://127.0.0.1:${refusedPort}/`], { stdin: '' });
      expect(await refused.exited).to.deep.equal({ code: 1, signal: null });
      const [failure] = records(refused.stdout);
      expect(failure).to.include({ type: 'error' });
      expect(failure!.message).to.match(/handshake with ws:\/\/127\.0\.0\.1:\d+\/ failed/);
      expect(failure!.causes).to.be.an('array').with.length.above(0);
      expect(failure!.hints).to.deep.equal([`nothing is listening on 127.0.0.1:${refusedPort}: is the server running, on this port?`]);
    });

    it('--binary-format base64: stdin lines are read as base64 and binary messages printed in it', async () => {
      const { url } = await server();
      const run = cli(['connect', '-b', '--binary-format', 'base64', url], { stdin: 'AAH/\nnot base64!\n3q2+7w\n' });
      expect(await run.exited).to.deep.equal({ code: 0, signal: null });
      expect(run.stdout).to.equal('[binary 3 bytes] AAH/\n[binary 4 bytes] 3q2+7w==\n');
      expect(run.stderr).to.include('warning: line 2 is not base64, not sent: "not base64!"');
    });

    it('--verbose reports each message, when and why the close is sent, and the traffic; --quiet only problems', async () => {
      const { url } = await server();
      const verbose = cli(['connect', '-v', '--wait', '300', url], { stdin: 'hello\n' });
      const quiet = cli(['connect', '-q', url], { stdin: 'hello\n' });
      expect(await verbose.exited).to.deep.equal({ code: 0, signal: null });
      expect(await quiet.exited).to.deep.equal({ code: 0, signal: null });
      expect(verbose.stdout).to.equal('hello\n');
      const lines = verbose.stderr.split('\n');
      const order = [
        `* connecting to ${url}`,
        `connected to ${url}`,
        '* > text message, 5 bytes',
        '* < text message, 5 bytes',
        '* stdin ended; closing once no message has arrived for 300 ms (--wait)',
        '* sending close (code 1000, reason "")',
        'closed: code 1000, reason ""',
      ];
      for (const line of order) expect(lines, verbose.stderr).to.include(line);
      // What must come before what: the close is sent only after the reply was received.
      expect(lines.indexOf('* < text message, 5 bytes')).to.be.below(lines.indexOf('* sending close (code 1000, reason "")'));
      expect(lines.indexOf('* sending close (code 1000, reason "")')).to.be.below(lines.indexOf('closed: code 1000, reason ""'));
      expect(verbose.stderr).to.match(/\* open for \d+ ms: sent 1 message\(s\), 5 bytes; received 1 message\(s\), 5 bytes\n$/);
      expect(quiet.stdout).to.equal('hello\n');
      expect(quiet.stderr).to.equal('');
    });

    it('--verbose with --ping says that pings are sent and that pongs cannot be shown', async () => {
      const { url } = await server();
      const run = cli(['connect', '-v', '--ping', '60000', '-w', '0', url], { stdin: '' });
      expect(await run.exited).to.deep.equal({ code: 0, signal: null });
      expect(run.stderr).to.include('* pinging every 60000 ms');
    });
  });

  describe('connect: hints when the connection cannot be opened', () => {
    it('ws:// to a TLS port: "did you mean wss://?"', async () => {
      const { port } = await serve(['--tls-cert', CERT, '--tls-key', KEY]);
      const run = cli(['connect', `ws://127.0.0.1:${port}/chat`], { stdin: '' });
      expect(await run.exited).to.deep.equal({ code: 1, signal: null });
      expect(run.stderr).to.include(`hint: 127.0.0.1:${port} speaks TLS; did you mean wss://127.0.0.1:${port}/chat ?`);
    });

    it('wss:// to a plain port: "did you mean ws://?", without OpenSSL\'s noise', async () => {
      const { port } = await serve();
      const run = cli(['connect', `wss://127.0.0.1:${port}/`], { stdin: '' });
      expect(await run.exited).to.deep.equal({ code: 1, signal: null });
      expect(run.stderr).to.include(`hint: 127.0.0.1:${port} did not answer in TLS; did you mean ws://127.0.0.1:${port}/ ?`);
      expect(run.stderr).to.not.match(/SSL routines|\.c:\d+/);
    });

    it('a self-signed certificate: --ca or --insecure (-k), which then work', async () => {
      const { port } = await serve(['--tls-cert', CERT, '--tls-key', KEY]);
      for (const host of ['127.0.0.1', 'localhost']) {
        const url = `wss://${host}:${port}/`;
        const untrusted = cli(['connect', url], { stdin: '' });
        expect(await untrusted.exited).to.deep.equal({ code: 1, signal: null });
        expect(untrusted.stderr).to.include('DEPTH_ZERO_SELF_SIGNED_CERT');
        expect(untrusted.stderr).to.include('hint: the server\'s certificate is not signed by a CA this machine trusts').and.include('--ca <file.pem>').and.include('--insecure (-k)');
        const trusted = cli(['connect', '--ca', CERT, url], { stdin: 'over tls\n' });
        const insecure = cli(['connect', '-k', url], { stdin: 'unchecked\n' });
        expect(await trusted.exited).to.deep.equal({ code: 0, signal: null });
        expect(trusted.stdout).to.equal('over tls\n');
        expect(await insecure.exited).to.deep.equal({ code: 0, signal: null });
        expect(insecure.stdout).to.equal('unchecked\n');
      }
    });

    it('a redirect: where to, since WebSocket clients do not follow it', async () => {
      const { url } = await server({ verify: () => ({ status: 302, headers: { Location: 'ws://127.0.0.1:1/elsewhere' } }) });
      const run = cli(['connect', url], { stdin: '' });
      expect(await run.exited).to.deep.equal({ code: 1, signal: null });
      expect(run.stderr).to.include('hint: the server redirects to ws://127.0.0.1:1/elsewhere; WebSocket clients do not follow redirects');
    });

    it('a plain TCP server that hangs up is not mistaken for TLS', async () => {
      const port = await rawServer((socket) => socket.destroy());
      const run = cli(['connect', `ws://127.0.0.1:${port}/`], { stdin: '' });
      expect(await run.exited).to.deep.equal({ code: 1, signal: null });
      expect(run.stderr).to.not.include('hint:');
    });
  });

  describe('colours', () => {
    it('none when stdout and stderr are not terminals', async () => {
      const { port } = await serve();
      const ok = cli(['connect', `ws://127.0.0.1:${port}/`], { stdin: 'plain\n' });
      const failed = cli(['connect', `ws://127.0.0.1:${await closedPort()}/`], { stdin: '' });
      expect((await ok.exited).code).to.equal(0);
      expect((await failed.exited).code).to.equal(1);
      expect(ok.stdout).to.equal('plain\n');
      for (const text of [ok.stdout, ok.stderr, failed.stderr]) expect(text).to.not.match(SGR);
      expect(ok.stderr).to.include('connected');
    });

    it('FORCE_COLOR turns them on off a terminal, and NO_COLOR always wins', async () => {
      const port = await closedPort();
      const forced = cli(['connect', `ws://127.0.0.1:${port}/`], { env: plainEnv({ FORCE_COLOR: '1' }), stdin: '' });
      const both = cli(['connect', `ws://127.0.0.1:${port}/`], { env: plainEnv({ FORCE_COLOR: '1', NO_COLOR: '1' }), stdin: '' });
      expect((await forced.exited).code).to.equal(1);
      expect((await both.exited).code).to.equal(1);
      expect(forced.stderr).to.match(SGR);
      expect(both.stderr).to.not.match(SGR);
    });
  });
});
