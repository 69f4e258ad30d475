// The `wss` command, driven as a child process over real sockets on 127.0.0.1.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketStream, WebSocketStreamServer, type ServerWebSocketStream, type WebSocketMessage } from '../lib/index.js';
import { acceptFor, fixtures } from './helpers/raw-peer.js';
import { Acceptor, echo, portOf, rawConnect } from './helpers/server-helpers.js';
import { startSocksServer } from './helpers/socks-server.js';

// Compiled next to this spec: <outDir>/spec/cli.spec.js and <outDir>/lib/cli.js.
const CLI = fileURLToPath(new URL('../lib/cli.js', import.meta.url));
const CERT = path.join(fixtures, 'cert.pem');
const KEY = path.join(fixtures, 'key.pem');
const ANSI = /\u001b\[/;

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running CLI: its output so far, and waits on output or exit without ever sleeping. */
class Cli {
  stdout = '';
  stderr = '';
  readonly exited: Promise<Exit>;
  private readonly listeners = new Set<() => void>();
  private exit: Exit | null = null;

  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      this.stdout += text;
      this.notify();
    });
    child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      this.stderr += text;
      this.notify();
    });
    // stdin may be closed by the CLI before a test's last write reaches it.
    child.stdin?.on('error', () => {});
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
        this.notify();
      });
    });
  }

  /** Resolves with the first match of `pattern` in stdout or stderr; rejects if the CLI exits first. */
  waitFor(stream: 'stdout' | 'stderr', pattern: RegExp): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const match = pattern.exec(this[stream]);
        if (match !== null) {
          this.listeners.delete(check);
          resolve(match);
        } else if (this.exit !== null) {
          this.listeners.delete(check);
          reject(new Error(`the CLI exited (${JSON.stringify(this.exit)}) before ${stream} matched ${pattern}\nstdout: ${this.stdout}\nstderr: ${this.stderr}`));
        }
      };
      this.listeners.add(check);
      check();
    });
  }

  write(text: string): void {
    this.child.stdin!.write(text);
  }

  end(text?: string): void {
    this.child.stdin!.end(text);
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

const running = new Set<Cli>();
const cleanups: Array<() => Promise<void> | void> = [];

/** The environment of a child whose stdout and stderr are pipes: no colour or proxy settings but `extra`. */
function plainEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  const controlled = ['NO_COLOR', 'FORCE_COLOR', 'NODE_DISABLE_COLORS', 'HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'NO_PROXY'];
  for (const name of Object.keys(env)) if (controlled.includes(name.toUpperCase()) && !(name in extra)) delete env[name];
  return env;
}

function cli(args: string[], options: { env?: NodeJS.ProcessEnv; stdin?: string } = {}): Cli {
  const child = spawn(process.execPath, [CLI, ...args], { env: options.env ?? plainEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  const run = new Cli(child);
  running.add(run);
  void run.exited.then(() => running.delete(run));
  if (options.stdin !== undefined) run.end(options.stdin);
  return run;
}

/** `wss serve …` on a free port; resolves once it listens. */
async function serve(args: string[] = []): Promise<{ cli: Cli; port: number }> {
  const run = cli(['serve', '--port', '0', ...args]);
  const [, port] = await run.waitFor('stderr', /listening on wss?:\/\/127\.0\.0\.1:(\d+)\//);
  return { cli: run, port: Number(port) };
}

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
  cleanups.push(async () => {
    await wsServer.close();
    await acceptor.done;
  });
  return { server: wsServer, acceptor, url: `ws://127.0.0.1:${portOf(wsServer)}/` };
}

/** A TCP server for peers our library cannot imitate; its sockets are destroyed after the test. */
async function rawServer(onConnection: (socket: net.Socket) => void): Promise<number> {
  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onConnection(socket);
  });
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        tcp.close(() => resolve());
      }),
  );
  return (tcp.address() as net.AddressInfo).port;
}

/** Answers the opening handshake with a valid 101, then hands the socket to `then`. */
function acceptHandshake(socket: net.Socket, then: (socket: net.Socket) => void): void {
  let head = '';
  const onData = (chunk: Buffer): void => {
    head += chunk.toString('latin1');
    if (!head.includes('\r\n\r\n')) return;
    socket.off('data', onData);
    const key = /sec-websocket-key: *(\S+)/i.exec(head)![1]!;
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(key)}\r\n\r\n`);
    then(socket);
  };
  socket.on('data', onData);
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

/** A free port with nothing listening on it: listen on port 0, then close. */
async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
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
  cleanups.push(() => {
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

afterEach(async () => {
  for (const run of running) run.child.kill('SIGKILL');
  await Promise.all([...running].map((run) => run.exited));
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

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
      for (const option of ['--header', '--protocol', '--binary', '--save-binary', '--no-deflate', '--insecure', '--ca', '--ping', '--close-code', '--close-reason']) {
        expect(connect.stdout).to.include(option);
      }
      expect(serveHelp.stdout).to.match(/^Usage: wss serve \[options\]/);
      for (const option of ['--mode', '--port', '--host', '--socket', '--tls-cert', '--tls-key', '--protocols', '--deflate', 'broadcast', 'print']) {
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
        [['serve', '--socket', '/tmp/x.sock', '--port', '1'], /--socket listens on a Unix domain socket instead of --host and --port/],
        [['serve', '--socket', ''], /--socket needs a path/],
      ];
      const runs = cases.map(([args]) => cli(args));
      for (const [index, run] of runs.entries()) {
        expect(await run.exited, `exit of ${cases[index]![0].join(' ')}`).to.deep.equal({ code: 2, signal: null });
        expect(run.stderr).to.match(cases[index]![1]);
        expect(run.stdout).to.equal('');
      }
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
      cleanups.push(() => void stalled.destroy());
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
      cleanups.push(() => rm(directory, { recursive: true, force: true }));
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
      const run = cli(['connect', '--close-code', '4000', '--close-reason', 'bye', url]);
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

    it('--wait keeps the connection open after EOF until the replies stop', async () => {
      const { port } = await serve();
      const run = cli(['connect', '--wait', '1000', `127.0.0.1:${port}/`], { stdin: 'one\ntwo\nthree' });
      expect(await run.exited).to.deep.equal({ code: 0, signal: null });
      expect(run.stdout).to.equal('one\ntwo\nthree\n');
      expect(run.stderr).to.match(/closed: code 1000, reason ""\n$/);
    });

    it('--binary sends hex lines as binary messages and prints binary messages as hex', async () => {
      const { url } = await server();
      const run = cli(['connect', '--binary', url]);
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
      cleanups.push(() => rm(directory, { recursive: true, force: true }));
      const { url } = await server();
      const run = cli(['connect', '-b', '--save-binary', directory, url]);
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
      const run = cli(['connect', '-H', 'Authorization: Bearer t0k3n', '--header', 'X-Trace:  abc ', '-p', 'v1', '--protocol', 'v2,v3', '--no-deflate', url], { stdin: '' });
      expect((await run.exited).code).to.equal(0);
      const { request } = acceptor.all[0]!;
      expect(request.headers.authorization).to.equal('Bearer t0k3n');
      expect(request.headers['x-trace']).to.equal('abc');
      expect(request.headers['sec-websocket-protocol']).to.equal('v1, v2, v3');
      expect(request.headers['sec-websocket-extensions']).to.equal(undefined);
      expect(run.stderr).to.include('(protocol v2)');
    });

    it('offers permessage-deflate by default', async () => {
      const { acceptor, url } = await server({ perMessageDeflate: true });
      const run = cli(['connect', url], { stdin: 'squeeze\n' });
      expect((await run.exited).code).to.equal(0);
      expect(acceptor.all[0]!.request.headers['sec-websocket-extensions']).to.include('permessage-deflate');
      expect(run.stderr).to.include('extensions permessage-deflate');
    });

    it('--proxy goes through an HTTP CONNECT proxy with Basic credentials, or the one in HTTP_PROXY with "env"', async () => {
      const { url } = await server();
      const target = new URL(url).host;
      const proxy = await connectProxy();
      const explicit = cli(['connect', '--proxy', proxy.url.replace('//', '//user:p%40ss@'), url], { stdin: 'via proxy\n' });
      expect(await explicit.exited).to.deep.equal({ code: 0, signal: null });
      expect(proxy.heads[0]).to.match(new RegExp(`^CONNECT ${target} HTTP/1\\.1\r\n`));
      expect(proxy.heads[0]).to.include(`Proxy-Authorization: Basic ${Buffer.from('user:p@ss').toString('base64')}`);
      const fromEnv = cli(['connect', '--proxy', 'env', url], { env: plainEnv({ HTTP_PROXY: proxy.url, NO_PROXY: '' }), stdin: 'via env\n' });
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
      cleanups.push(() => socks.close());
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
      cleanups.push(() => rm(directory, { recursive: true, force: true }));
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

    it('wss://: the certificate is checked; --ca trusts a CA and --insecure skips the check', async () => {
      const { port } = await serve(['--tls-cert', CERT, '--tls-key', KEY]);
      const url = `wss://127.0.0.1:${port}/`;
      const untrusted = cli(['connect', url], { stdin: '' });
      const withCa = cli(['connect', '--ca', CERT, url], { stdin: 'over tls\n' });
      const insecure = cli(['connect', '-k', url], { stdin: '' });
      expect(await untrusted.exited).to.deep.equal({ code: 1, signal: null });
      expect(untrusted.stderr).to.match(/certificate/i);
      expect(await withCa.exited).to.deep.equal({ code: 0, signal: null });
      expect(withCa.stderr).to.include(`connected to ${url}`);
      expect(await insecure.exited).to.deep.equal({ code: 0, signal: null });
    });

    it('connect and serve together: a line typed in one comes out of the other', async () => {
      const { cli: printer, port } = await serve(['--mode', 'print']);
      const run = cli(['connect', `ws://127.0.0.1:${port}/`], { stdin: 'through two processes\n0102\n' });
      expect((await run.exited).code).to.equal(0);
      await printer.waitFor('stderr', /#1 closed: code 1000/);
      expect(printer.stdout).to.equal('through two processes\n0102\n');
    });
  });

  describe('colours', () => {
    it('none when stdout and stderr are not terminals', async () => {
      const { port } = await serve();
      const ok = cli(['connect', `ws://127.0.0.1:${port}/`], { stdin: 'plain\n' });
      const failed = cli(['connect', `ws://127.0.0.1:${await closedPort()}/`], { stdin: '' });
      expect((await ok.exited).code).to.equal(0);
      expect((await failed.exited).code).to.equal(1);
      for (const text of [ok.stdout, ok.stderr, failed.stderr]) expect(text).to.not.match(ANSI);
      expect(ok.stderr).to.include('connected');
    });

    it('FORCE_COLOR turns them on off a terminal, and NO_COLOR always wins', async () => {
      const port = await closedPort();
      const forced = cli(['connect', `ws://127.0.0.1:${port}/`], { env: plainEnv({ FORCE_COLOR: '1' }), stdin: '' });
      const both = cli(['connect', `ws://127.0.0.1:${port}/`], { env: plainEnv({ FORCE_COLOR: '1', NO_COLOR: '1' }), stdin: '' });
      expect((await forced.exited).code).to.equal(1);
      expect((await both.exited).code).to.equal(1);
      expect(forced.stderr).to.match(ANSI);
      expect(both.stderr).to.not.match(ANSI);
    });
  });
});
