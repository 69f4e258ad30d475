// The published type declarations, as a TypeScript user meets them: a small project in a temp dir
// that installs this package (a symlink in node_modules, the way `npm link` does) and compiles the
// README's client and server examples with this repository's `typescript`, with `skipLibCheck:
// false` so that our .d.ts files are checked too, under each module set-up users have, with and
// without the DOM lib.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// Compiled to build/spec/types.spec.js: the repository is two levels up.
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const requireFromRepo = createRequire(path.join(repoRoot, 'package.json'));
const tsc = requireFromRepo.resolve('typescript/bin/tsc');
const typesNode = path.dirname(requireFromRepo.resolve('@types/node/package.json'));

// The README's examples, each in a function so the same text is valid in CommonJS (no top-level
// await there), plus the exported types a user names. Under `noImplicitAny` the destructured
// `readable`/`writable` fail to compile if `connections` does not iterate to typed streams.
const consumerSource = `import * as http from 'node:http';
import * as http2 from 'node:http2';
import {
  handleHttp2Stream,
  handleUpgrade,
  WebSocketError,
  WebSocketStream,
  WebSocketStreamServer,
  type ExtendedConnectRequest,
  type HandshakeRequest,
  type ServerWebSocketStream,
  type VerifyResult,
  type WebSocketMessage,
} from 'websocketstream-node';

export async function client(): Promise<void> {
  const wss = new WebSocketStream('ws://localhost:8080/echo', { protocols: ['chat'] });
  const { readable, writable, protocol, extensions } = await wss.opened;
  const writer = writable.getWriter();
  const reader = readable.getReader();

  await writer.write('hello');
  await writer.write(new Uint8Array([1, 2, 3]));
  const message: WebSocketMessage | undefined = (await reader.read()).value;
  console.log(message);

  wss.close({ closeCode: 1000, reason: 'done' });
  const { closeCode, reason } = await wss.closed;
  console.log(protocol, extensions, closeCode, reason);
}

export async function clientWithOptions(): Promise<void> {
  const wss = new WebSocketStream('ws://localhost:8080/', {
    headers: { authorization: 'Bearer token' },
    signal: AbortSignal.timeout(5000),
    heartbeat: { interval: 30_000, timeout: 10_000 },
    tls: { rejectUnauthorized: true },
  });
  const { readable } = await wss.opened;
  // for await over a connection's readable, without "DOM.AsyncIterable" too.
  for await (const message of readable) {
    const text: string | Uint8Array = message;
    console.log(text);
    break;
  }
  const reader = readable.getReader();
  await reader.cancel(new WebSocketError('finished', { closeCode: 4000, reason: 'bye' }));
  const error: unknown = await wss.closed.catch((e: unknown) => e);
  if (error instanceof WebSocketError) console.log(error.closeCode, error.reason);
}

export async function server(): Promise<void> {
  const server = new WebSocketStreamServer({
    port: 8080,
    protocols: ['chat'],
    verify: (request: http.IncomingMessage): VerifyResult => request.headers.authorization === 'Bearer token',
  });
  await server.listening;
  process.once('SIGINT', () => server.close());
  for await (const peer of server.connections) {
    console.log('from', peer.request.remoteAddress, peer.request.url);
    peer.opened.then(({ readable, writable }) => readable.pipeTo(writable)).catch(() => {});
  }
}

export function attached(): http.Server {
  const app = http.createServer((req, res) => res.end('plain HTTP still works\\n'));
  const chat = new WebSocketStreamServer({ server: app, path: '/chat' });
  void chat.connections.getReader().read().then(({ value }) => value?.close());
  app.on('upgrade', async (request: http.IncomingMessage, socket, head: Buffer) => {
    if (request.url !== '/echo') return;
    const peer: ServerWebSocketStream | null = await handleUpgrade(request, socket, head, { protocols: ['chat'] });
    if (peer === null) return;
    const { readable, writable } = await peer.opened;
    await readable.pipeTo(writable).catch(() => {});
  });
  const owned = new WebSocketStreamServer({ port: 0 });
  app.on('upgrade', (request, socket, head) => void owned.handleUpgrade(request, socket, head));
  return app;
}

export async function overHttp2(session: http2.ClientHttp2Session): Promise<http2.Http2SecureServer> {
  const app = http2.createSecureServer({ allowHTTP1: true }, (request, response) => response.end(request.httpVersion));
  const live = new WebSocketStreamServer({
    server: app,
    verify: (request: HandshakeRequest): VerifyResult =>
      request.httpVersionMajor === 2 ? (request as ExtendedConnectRequest).authority === 'example.com' : request.headers.host === 'example.com',
  });
  void live.connections.getReader().read().then(({ value }) => value?.request.httpVersion === '2.0');
  const own = http2.createServer({ settings: { enableConnectProtocol: true } });
  own.on('stream', (stream, headers) => void handleHttp2Stream(stream, headers, { protocols: ['chat'] }));
  new WebSocketStreamServer({ port: 0, http2: true, tls: {} });
  const pooled = new WebSocketStream('wss://example.com/', { http2: true, http2IdleTimeout: 1000 });
  const preferring = new WebSocketStream('wss://example.com/', { http2: 'prefer' });
  const onSession = new WebSocketStream('wss://example.com/', { http2: session });
  await Promise.all([pooled.opened, preferring.opened, onSession.opened]);
  return app;
}
`;

interface SetUp {
  name: string;
  compilerOptions: Record<string, unknown>;
  /** Consumer file names: the extension decides CommonJS or ESM under node16/nodenext. */
  files: string[];
}

const moduleSetUps: SetUp[] = [
  // CommonJS the old way: `exports` is ignored (package.json "types"), no esModuleInterop, so a
  // default import of a Node built-in in our declarations is an error (TS1192).
  { name: 'module commonjs, moduleResolution node10, no esModuleInterop', compilerOptions: { module: 'commonjs', moduleResolution: 'node10' }, files: ['consumer.ts'] },
  // Node's own rules: the .mts file gets the "import" declarations, the .cts file the "require" ones.
  { name: 'module nodenext (an ESM and a CommonJS file)', compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext' }, files: ['consumer.mts', 'consumer.cts'] },
  { name: 'module preserve, moduleResolution bundler', compilerOptions: { module: 'preserve', moduleResolution: 'bundler' }, files: ['consumer.ts'] },
];

const libs: Array<{ name: string; lib: string[] }> = [
  { name: 'without the DOM lib', lib: ['ES2022'] },
  // DOM's ReadableStream type has no Symbol.asyncIterator unless "DOM.AsyncIterable" is there too.
  { name: 'with the DOM lib (no DOM.AsyncIterable)', lib: ['ES2022', 'DOM'] },
];

function compile(project: string): Promise<{ status: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [tsc, '-p', project], { encoding: 'utf8' }, (error, stdout, stderr) => {
      const status = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ status, output: stdout + stderr });
    });
  });
}

describe('type declarations in consumer projects', function () {
  // Each compilation loads @types/node and our declarations in a fresh tsc: a few seconds.
  this.timeout(60_000);
  let dir: string;

  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'wss-types-'));
    mkdirSync(path.join(dir, 'node_modules', '@types'), { recursive: true });
    symlinkSync(repoRoot, path.join(dir, 'node_modules', 'websocketstream-node'), 'dir');
    symlinkSync(typesNode, path.join(dir, 'node_modules', '@types', 'node'), 'dir');
    for (const file of ['consumer.ts', 'consumer.mts', 'consumer.cts']) writeFileSync(path.join(dir, file), consumerSource);
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const setUp of moduleSetUps) {
    for (const { name, lib } of libs) {
      it(`compiles with ${setUp.name}, ${name}, skipLibCheck false`, async () => {
        const config = `tsconfig.${moduleSetUps.indexOf(setUp)}-${lib.length}.json`;
        const compilerOptions = { target: 'ES2022', lib, strict: true, noEmit: true, skipLibCheck: false, ...setUp.compilerOptions };
        writeFileSync(path.join(dir, config), JSON.stringify({ compilerOptions, files: setUp.files }, null, 2));
        const { status, output } = await compile(path.join(dir, config));
        expect(output, `tsc -p ${config} (${JSON.stringify(compilerOptions)}) reported`).to.equal('');
        expect(status).to.equal(0);
      });
    }
  }
});
