// `serve`: a WebSocket server in echo, broadcast or print mode, with the demo page at GET /.
import cluster from 'node:cluster';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import tls from 'node:tls';
import { WebSocketStreamServer, type ServerWebSocketStream, type WebSocketMessage, type WebSocketStreamServerOptions } from '../index.js';
import { flag, integerOption, MAX_MILLISECONDS, parse, splitList, stringListOption, stringOption, UsageError, type OptionSpec } from './args.js';
import { readOptionFile } from './connect.js';
import { DEFAULT_DRAIN_TIMEOUT, MAX_WORKERS } from './defaults.js';
import { DEMO_PAGE_CSP, demoPage } from './demo-page.js';
import { ExitStatus, SERVE_USAGE } from './help.js';
import { BINARY_FORMATS, formatBinary, type BinaryFormat } from './lines.js';
import { binaryLine, closeDescription, describeError, messageRecord, styleFor, writeText, type Io, type Style } from './output.js';
import { runPrimary } from './workers.js';

const MODES = ['echo', 'broadcast', 'print'] as const;
type Mode = (typeof MODES)[number];

const OPTIONS: OptionSpec = {
  mode: { type: 'string', short: 'm' },
  port: { type: 'string' },
  host: { type: 'string' },
  socket: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  protocols: { type: 'string', multiple: true },
  deflate: { type: 'boolean' },
  ping: { type: 'string' },
  json: { type: 'boolean', short: 'j' },
  'binary-format': { type: 'string' },
  workers: { type: 'string' },
  'drain-timeout': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

export const DEFAULT_PORT = 8080;
export const DEFAULT_HOST = '127.0.0.1';
/**
 * Broadcast mode: bytes that may wait for one client before it is dropped. Broadcasting does not
 * wait for the slowest client (that would let one stalled browser freeze everyone), so without a
 * cap a client that stops reading would make the server buffer every message for it, forever.
 */
export const MAX_BROADCAST_BACKLOG = 16 * 1024 * 1024;
/** The private-use close code (RFC 6455 §7.4.2) sent to a client dropped for being too slow. */
export const SLOW_CLIENT_CLOSE_CODE = 4008;
/** What open connections get when the server stops: 1001, "going away" (RFC 6455 §7.4.1). */
const SHUTDOWN_CLOSE = { closeCode: 1001, reason: 'server shutting down' };

interface ServeSettings {
  mode: Mode;
  port: number;
  host: string;
  /** A Unix domain socket path to listen on instead of host and port. */
  socketPath: string | undefined;
  tls: { cert: Buffer; key: Buffer } | null;
  protocols: string[];
  deflate: boolean;
  ping: number | undefined;
  /** Print mode: one JSON record per message instead of its text. */
  json: boolean;
  binaryFormat: BinaryFormat;
  /** null: one process, no cluster. */
  workers: number | null;
  drainTimeout: number;
}

export async function runServe(args: string[], io: Io): Promise<number> {
  const parsed = parse(args, OPTIONS, 0);
  if (flag(parsed, 'help')) {
    await writeText(io.stdout, SERVE_USAGE);
    return ExitStatus.OK;
  }
  const settings = await serveSettings(parsed);
  const style = styleFor(io.stderr, io.env);
  if (settings.workers === null) return runServer(settings, io, style, null);
  // A worker runs the same command line as its primary (cluster.fork runs the script again).
  if (cluster.isWorker) {
    try {
      return await runServer(settings, io, style, cluster.worker!.id);
    } finally {
      // The IPC channel to the primary would keep this process alive when the server is done.
      cluster.worker!.disconnect();
    }
  }
  if (io.script === undefined) throw new UsageError('--workers needs the path of the wss script, to run it in each worker');
  // Every worker would fail on a certificate that does not load: say it once, before forking.
  if (settings.tls !== null) checkTls(settings.tls);
  return runPrimary({
    count: settings.workers,
    script: io.script,
    args,
    drainTimeout: settings.drainTimeout,
    describeListening: (address) => listeningLines(settings, address, style, `${settings.workers} worker${settings.workers === 1 ? '' : 's'}`),
    log: (line) => void writeText(io.stderr, `${line}\n`),
    style,
  });
}

/** One server: the whole of `wss serve` without --workers, or one worker (`workerId`) of it. */
async function runServer(settings: ServeSettings, io: Io, style: Style, workerId: number | null): Promise<number> {
  const prefix = workerId === null ? '' : `worker ${workerId}: `;
  const log = (line: string): void => void writeText(io.stderr, `${prefix}${line}\n`);

  const page = demoPage({ mode: settings.mode, protocols: settings.protocols });
  const onRequest = (request: http.IncomingMessage, response: http.ServerResponse): void => servePage(request, response, page);
  let httpServer: http.Server | https.Server;
  try {
    httpServer = settings.tls === null ? http.createServer(onRequest) : https.createServer({ ...settings.tls }, onRequest);
  } catch (error) {
    // Only TLS options can fail here: a file that is not a PEM certificate or key, or a mismatch.
    throw new UsageError(`--tls-cert/--tls-key: ${describeError(error).join('; ')}`);
  }
  const serverOptions: WebSocketStreamServerOptions = { server: httpServer, perMessageDeflate: settings.deflate };
  if (settings.protocols.length > 0) serverOptions.protocols = settings.protocols;
  if (settings.ping !== undefined) serverOptions.heartbeat = { interval: settings.ping };
  const wsServer = new WebSocketStreamServer(serverOptions);

  try {
    await new Promise<void>((resolve, reject) => {
      httpServer.once('error', reject);
      const onListening = (): void => {
        httpServer.off('error', reject);
        resolve();
      };
      if (settings.socketPath !== undefined) httpServer.listen(settings.socketPath, onListening);
      else httpServer.listen(settings.port, settings.host, onListening);
    });
  } catch (error) {
    const [first, ...causes] = describeError(error);
    const where = settings.socketPath ?? `${settings.host}:${settings.port}`;
    log(`${style.red('error:')} cannot listen on ${where}: ${first}${causes.map((line) => `\n  ${line}`).join('')}`);
    return ExitStatus.FAILED;
  }
  // Errors on client sockets are handled by node:http and the library; this catches the rest.
  httpServer.on('error', (error) => log(`${style.red('error:')} ${describeError(error).join('; ')}`));
  // A worker's primary says where they all listen, once they all do.
  if (workerId === null) log(listeningLines(settings, httpServer.address() as AddressInfo | string, style, null));

  let stopping = false;
  const stopped = new Promise<NodeJS.Signals>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        // One process: a second signal does not wait for clients that ignore our close frames.
        // A worker leaves that to its primary, which gets the same Ctrl-C (a terminal signals the
        // whole process group) and sends its own SIGTERM besides.
        if (workerId === null) process.exit(ExitStatus.INTERRUPTED);
        return;
      }
      stopping = true;
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });

  const { mode, json, binaryFormat } = settings;
  const context: ConnectionContext = {
    mode,
    json,
    binaryFormat,
    workerId,
    broadcast: new Broadcast(log),
    io,
    style,
    outStyle: styleFor(io.stdout, io.env),
    log,
  };
  const handlers = new Set<Promise<void>>();
  const accepting = (async () => {
    let nextId = 1;
    for await (const peer of wsServer.connections) {
      const id = nextId++;
      // One connection's failure is logged, never allowed to take the server down.
      const handler = handleConnection(peer, id, context).catch((error: unknown) => log(`#${id} ${style.red('error:')} ${describeError(error).join('; ')}`));
      handlers.add(handler);
      void handler.then(() => handlers.delete(handler));
    }
  })();

  const signal = await stopped;
  log(`${signal}: closing ${wsServer.connectionCount} connection(s) with 1001`);
  const drained = (async () => {
    await wsServer.close(SHUTDOWN_CLOSE);
    await accepting;
    await Promise.all(handlers);
    await new Promise<void>((resolve) => {
      httpServer.close(() => resolve());
      // Keep-alive connections of browsers that loaded the page would hold close() open.
      httpServer.closeAllConnections();
    });
  })();
  let timer: NodeJS.Timeout | undefined;
  const inTime = await Promise.race([drained.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), settings.drainTimeout)))]);
  clearTimeout(timer);
  if (!inTime) {
    log(`${wsServer.connectionCount} connection(s) still open after ${settings.drainTimeout} ms (--drain-timeout): dropping them`);
    // Their sockets are the library's to close; leaving the process drops them all at once.
    // stdout and stderr are synchronous for files and pipes on Linux, so nothing printed is lost.
    process.exit(ExitStatus.OK);
  }
  log('stopped');
  return ExitStatus.OK;
}

/** "listening on ws://host:port/ (mode …)" and the demo page's URL. */
function listeningLines(settings: ServeSettings, address: { address: string; port: number } | string, style: Style, extra: string | null): string {
  const secure = settings.tls !== null;
  const details = [`mode ${settings.mode}`, settings.protocols.length > 0 ? `subprotocols ${settings.protocols.join(', ')}` : '', settings.deflate ? 'permessage-deflate' : '', extra ?? ''].filter(Boolean);
  if (typeof address === 'string' || settings.socketPath !== undefined) {
    // The same URL grammar the client (and ws) take for a Unix domain socket.
    return `${style.green('listening')} on ${secure ? 'wss' : 'ws'}+unix://${encodeURI(typeof address === 'string' ? address : (settings.socketPath ?? ''))}:/ (${details.join(', ')})`;
  }
  const host = address.address.includes(':') ? `[${address.address}]` : address.address;
  return (
    `${style.green('listening')} on ${secure ? 'wss' : 'ws'}://${host}:${address.port}/ (${details.join(', ')})\n` +
    `demo page: ${secure ? 'https' : 'http'}://${host}:${address.port}/`
  );
}

/** The certificate and key load, and belong together. */
function checkTls(pair: { cert: Buffer; key: Buffer }): void {
  try {
    tls.createSecureContext({ ...pair });
  } catch (error) {
    throw new UsageError(`--tls-cert/--tls-key: ${describeError(error).join('; ')}`);
  }
}

async function serveSettings(parsed: ReturnType<typeof parse>): Promise<ServeSettings> {
  const mode = stringOption(parsed, 'mode') ?? 'echo';
  if (!(MODES as readonly string[]).includes(mode)) throw new UsageError(`--mode must be ${MODES.join(', ')}, not ${JSON.stringify(mode)}`);
  const port = stringOption(parsed, 'port');
  const cert = stringOption(parsed, 'tls-cert');
  const key = stringOption(parsed, 'tls-key');
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  const ping = stringOption(parsed, 'ping');
  const json = flag(parsed, 'json');
  const format = stringOption(parsed, 'binary-format') ?? 'hex';
  if (!(BINARY_FORMATS as readonly string[]).includes(format)) throw new UsageError(`--binary-format must be ${BINARY_FORMATS.join(' or ')}, not ${JSON.stringify(format)}`);
  if ((json || stringOption(parsed, 'binary-format') !== undefined) && mode !== 'print') throw new UsageError('--json and --binary-format apply to --mode print only');
  const socketPath = stringOption(parsed, 'socket');
  if (socketPath !== undefined && (port !== undefined || stringOption(parsed, 'host') !== undefined)) {
    throw new UsageError('--socket listens on a Unix domain socket instead of --host and --port');
  }
  if (socketPath === '') throw new UsageError('--socket needs a path');
  const workers = workerCount(stringOption(parsed, 'workers'));
  if (mode === 'broadcast' && workers !== null && workers > 1) {
    // Round-robin hands each client to any worker, so a per-worker broadcast would reach an
    // arbitrary share of the clients: messages that look lost. Refused until a pub/sub links them.
    throw new UsageError(
      `--mode broadcast needs one process: with ${workers} workers, a message would reach only the clients of the worker that received it; ` +
        'run it without --workers (or with --workers 1)',
    );
  }
  const drainTimeout = stringOption(parsed, 'drain-timeout');
  return {
    mode: mode as Mode,
    port: port === undefined ? DEFAULT_PORT : integerOption(port, '--port', 0, 65535),
    host: stringOption(parsed, 'host') ?? DEFAULT_HOST,
    socketPath,
    tls: cert === undefined || key === undefined ? null : { cert: await readOptionFile(cert, '--tls-cert'), key: await readOptionFile(key, '--tls-key') },
    protocols: subprotocols(splitList(stringListOption(parsed, 'protocols'))),
    deflate: flag(parsed, 'deflate'),
    ping: ping === undefined ? undefined : integerOption(ping, '--ping', 1, MAX_MILLISECONDS),
    json,
    binaryFormat: format as BinaryFormat,
    workers,
    drainTimeout: drainTimeout === undefined ? DEFAULT_DRAIN_TIMEOUT : integerOption(drainTimeout, '--drain-timeout', 0, MAX_MILLISECONDS),
  };
}

/** --workers: a number, or "auto" for one per core this process may use. */
function workerCount(value: string | undefined): number | null {
  if (value === undefined) return null;
  if (value === 'auto') return Math.min(os.availableParallelism(), MAX_WORKERS);
  if (!/^\d+$/.test(value)) throw new UsageError(`--workers must be a number of processes or "auto", not ${JSON.stringify(value)}`);
  return integerOption(value, '--workers', 1, MAX_WORKERS);
}

/**
 * RFC 6455 §4.1: a subprotocol is an HTTP token; anything else could never match a client's
 * offer, so it is refused here rather than silently never selected.
 */
function subprotocols(names: string[]): string[] {
  for (const name of names) {
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) throw new UsageError(`--protocols: ${JSON.stringify(name)} is not a valid subprotocol name (an HTTP token)`);
  }
  return names;
}

/** GET / (and /index.html) is the demo page; upgrades never get here, node:http routes them. */
function servePage(request: http.IncomingMessage, response: http.ServerResponse, page: string): void {
  const path = (request.url ?? '/').split('?')[0];
  if (path !== '/' && path !== '/index.html') {
    response.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
    response.end('Not found: the demo page is at /, WebSocket connections are accepted on any path.\n');
    return;
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { 'Content-Type': 'text/plain; charset=utf-8', Allow: 'GET, HEAD' });
    response.end('Method not allowed\n');
    return;
  }
  response.writeHead(200, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(page),
    'Content-Security-Policy': DEMO_PAGE_CSP,
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-store',
  });
  response.end(request.method === 'HEAD' ? undefined : page);
}

interface ConnectionContext {
  mode: Mode;
  json: boolean;
  binaryFormat: BinaryFormat;
  /** With --workers, the worker this connection is on: print --json records name it. */
  workerId: number | null;
  broadcast: Broadcast;
  io: Io;
  /** For the log on stderr. */
  style: Style;
  /** For messages printed on stdout. */
  outStyle: Style;
  log: (line: string) => void;
}

async function handleConnection(peer: ServerWebSocketStream, id: number, { mode, json, binaryFormat, workerId, broadcast, io, style, outStyle, log }: ConnectionContext): Promise<void> {
  const { remoteAddress, remotePort, url } = peer.request;
  let opened;
  try {
    opened = await peer.opened;
  } catch (error) {
    log(`#${id} handshake failed: ${describeError(error).join('; ')}`);
    return;
  }
  const details = [opened.protocol !== '' ? `protocol ${opened.protocol}` : '', opened.extensions !== '' ? `extensions ${opened.extensions}` : ''].filter(Boolean);
  log(`#${id} ${style.green('open')} from ${remoteAddress}:${remotePort} ${url}${details.length > 0 ? ` (${details.join('; ')})` : ''}`);
  const writer = opened.writable.getWriter();
  const messages = opened.readable as unknown as AsyncIterable<WebSocketMessage>;
  try {
    if (mode === 'echo') {
      // Awaiting each write reads no faster than the client takes its echoes back.
      for await (const message of messages) await writer.write(message);
    } else if (mode === 'broadcast') {
      broadcast.add(id, peer, writer);
      for await (const message of messages) await broadcast.send(id, message);
    } else {
      for await (const message of messages) {
        let line: string;
        if (json) line = messageRecord(message, binaryFormat, workerId === null ? { connection: id } : { worker: workerId, connection: id });
        else if (typeof message === 'string') line = message;
        else line = binaryLine(message.byteLength, formatBinary(message, binaryFormat), outStyle);
        await writeText(io.stdout, `${line}\n`);
      }
    }
  } catch {
    // The connection closed while a message was being written: `closed` says how.
  } finally {
    broadcast.remove(id);
  }
  try {
    const { closeCode, reason } = await peer.closed;
    log(`#${id} ${style.yellow('closed')}: ${closeDescription(closeCode, reason)}`);
  } catch (error) {
    const { closeCode, reason } = error as { closeCode?: number | null; reason?: string };
    log(`#${id} ${style.red('closed uncleanly')}: ${closeDescription(closeCode ?? null, reason ?? '')}; ${describeError(error).join('; ')}`);
  }
}

interface BroadcastClient {
  peer: ServerWebSocketStream;
  writer: WritableStreamDefaultWriter<unknown>;
  /** Bytes given to the writer and not yet flushed to the socket. */
  backlog: number;
}

/** Every message to every client, the sender included, with a per-client cap on what may wait. */
class Broadcast {
  readonly #clients = new Map<number, BroadcastClient>();

  constructor(private readonly log: (line: string) => void) {}

  add(id: number, peer: ServerWebSocketStream, writer: WritableStreamDefaultWriter<unknown>): void {
    this.#clients.set(id, { peer, writer, backlog: 0 });
  }

  remove(id: number): void {
    this.#clients.delete(id);
  }

  /** Resolves once the sender's own copy is flushed: each client is read as fast as it reads. */
  async send(senderId: number, message: WebSocketMessage): Promise<void> {
    const size = typeof message === 'string' ? Buffer.byteLength(message) : message.byteLength;
    let own: Promise<void> = Promise.resolve();
    for (const [id, client] of this.#clients) {
      if (client.backlog + size > MAX_BROADCAST_BACKLOG) {
        this.remove(id);
        this.log(`#${id} dropped: over ${MAX_BROADCAST_BACKLOG} bytes of messages waiting for it`);
        client.peer.close({ closeCode: SLOW_CLIENT_CLOSE_CODE, reason: 'too slow: broadcast backlog full' });
        continue;
      }
      client.backlog += size;
      // Each write copies the message, so one Uint8Array can go to every client.
      const write = client.writer.write(message).finally(() => (client.backlog -= size));
      write.catch(() => {
        // That client is closing; its handler logs how it closed.
      });
      if (id === senderId) own = write;
    }
    await own;
  }
}
