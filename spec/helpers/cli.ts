// Driving the `wss` command as a child process: its output so far, waits on output or exit that
// never sleep, and cleanup of every process, server and socket a test started.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { WebSocketStream, type WebSocketMessage } from '../../lib/index.js';
import { acceptFor } from './raw-peer.js';

/** The compiled command: <outDir>/spec/helpers/cli.js → <outDir>/lib/cli.js. */
export const CLI = fileURLToPath(new URL('../../lib/cli.js', import.meta.url));

/** An SGR escape (colour, bold, dim): what colours look like on a terminal. */
export const SGR = /\u001b\[[0-9;]*m/;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running program: its output so far, and waits on output or exit without ever sleeping. */
export class Cli {
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
    child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      this.stderr += text;
      this.notify();
    });
    // stdin may be closed by the program before a test's last write reaches it.
    child.stdin?.on('error', () => {});
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
        this.notify();
      });
    });
  }

  /** Resolves with the first match of `pattern` in stdout or stderr; rejects if the program exits first. */
  waitFor(stream: 'stdout' | 'stderr', pattern: RegExp): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const match = pattern.exec(this[stream]);
        if (match !== null) {
          this.listeners.delete(check);
          resolve(match);
        } else if (this.exit !== null) {
          this.listeners.delete(check);
          reject(new Error(`the program exited (${JSON.stringify(this.exit)}) before ${stream} matched ${pattern}\nstdout: ${this.stdout}\nstderr: ${this.stderr}`));
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

/** Runs `cleanup` when the current test ends (after the programs it started are killed). */
export function onCleanup(cleanup: () => Promise<void> | void): void {
  cleanups.push(cleanup);
}

/** For afterEach: kills every program still running, then runs the cleanups, last first. */
export async function cleanUp(): Promise<void> {
  for (const run of running) run.child.kill('SIGKILL');
  await Promise.all([...running].map((run) => run.exited));
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
}

/** The environment of a child: no colour or proxy settings but `extra`'s. */
export function plainEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  const controlled = ['NO_COLOR', 'FORCE_COLOR', 'NODE_DISABLE_COLORS', 'HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'NO_PROXY'];
  for (const name of Object.keys(env)) if (controlled.includes(name.toUpperCase()) && !(name in extra)) delete env[name];
  return env;
}

/** Starts any program, tracked for cleanup. */
export function program(command: string, args: string[], options: SpawnOptions = {}): Cli {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
  const run = new Cli(child);
  running.add(run);
  void run.exited.then(() => running.delete(run));
  return run;
}

/** `wss <args>` with pipes for stdin, stdout and stderr; `stdin` is written and ended at once. */
export function cli(args: string[], options: { env?: NodeJS.ProcessEnv; stdin?: string; cwd?: string } = {}): Cli {
  const run = program(process.execPath, [CLI, ...args], { env: options.env ?? plainEnv(), ...(options.cwd === undefined ? {} : { cwd: options.cwd }) });
  if (options.stdin !== undefined) run.end(options.stdin);
  return run;
}

/** `wss serve …` on a free port; resolves once it listens. */
export async function serve(args: string[] = []): Promise<{ cli: Cli; port: number }> {
  const run = cli(['serve', '--port', '0', ...args]);
  const [, port] = await run.waitFor('stderr', /listening on wss?:\/\/127\.0\.0\.1:(\d+)\//);
  return { cli: run, port: Number(port) };
}

/** A TCP server for peers our library cannot imitate; its sockets are destroyed after the test. */
export async function rawServer(onConnection: (socket: net.Socket) => void): Promise<number> {
  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onConnection(socket);
  });
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  onCleanup(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        tcp.close(() => resolve());
      }),
  );
  return (tcp.address() as net.AddressInfo).port;
}

/** Answers the opening handshake with a valid 101, then hands the socket to `then`. */
export function acceptHandshake(socket: net.Socket, then: (socket: net.Socket) => void): void {
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

/** A free port with nothing listening on it: listen on port 0, then close. */
export async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** A client of our library, as the `wss serve` specs use it: text in, replies out. */
export interface TextClient {
  stream: WebSocketStream;
  send(text: string): Promise<void>;
  /** The next message; fails the test if the readable ends instead. */
  next(): Promise<WebSocketMessage>;
  /** Sends `text` and resolves with the next message. */
  echo(text: string): Promise<WebSocketMessage>;
}

/** Opens a client to `url`; it is closed when the test ends. */
export async function textClient(url: string, options: ConstructorParameters<typeof WebSocketStream>[1] = {}): Promise<TextClient> {
  const stream = new WebSocketStream(url, options);
  onCleanup(() => {
    stream.close();
    return stream.closed.then(
      () => undefined,
      () => undefined,
    );
  });
  const { readable, writable } = await stream.opened;
  const writer = writable.getWriter();
  const reader = readable.getReader();
  const next = async (): Promise<WebSocketMessage> => {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${url}: the readable ended where a message was expected`);
    return value;
  };
  return {
    stream,
    send: (text) => writer.write(text),
    next,
    async echo(text) {
      await writer.write(text);
      return next();
    },
  };
}
