// Every ```js example in README.md and docs/*.md runs here, as its own process, against a local
// server: "localhost:8080" in a client example means our echo server, and "localhost:1080" a
// SOCKS5 proxy (user alice, password s3cret) in front of it; an example that listens on 8080
// itself gets a free port instead; an example that runs until SIGINT is exercised, then
// interrupted, and must exit cleanly.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketStream, WebSocketStreamServer } from '../lib/index.js';
import { startSocksServer, type ScriptedSocksServer } from './helpers/socks-server.js';

interface Example {
  file: string;
  line: number;
  code: string;
}

function examplesOf(file: string): Example[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const examples: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== '```js') continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end]!.trim() !== '```') end++;
    examples.push({ file, line: start + 1, code: lines.slice(start, end).join('\n') });
    i = end;
  }
  return examples;
}

const documents = ['README.md', ...readdirSync('docs').filter((name) => name.endsWith('.md')).map((name) => path.join('docs', name))];
const examples = documents.flatMap(examplesOf);
const workDir = fileURLToPath(new URL('../docs-examples/', import.meta.url));

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** Connects until the example's server answers, then checks one echo round trip. */
async function echoThrough(port: number): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const client = new WebSocketStream(`ws://127.0.0.1:${port}/`);
    const opened = await client.opened.then(
      (info) => info,
      () => null,
    );
    if (opened === null) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      continue;
    }
    const writer = opened.writable.getWriter();
    await writer.write('docs');
    const { value } = await opened.readable.getReader().read();
    expect(value).to.equal('docs');
    client.close();
    await client.closed;
    return;
  }
  throw new Error(`the example's server never answered on port ${port}`);
}

describe('documentation examples', function () {
  this.timeout(30_000);
  let echoServer: WebSocketStreamServer;
  let echoPort: number;
  let socksServer: ScriptedSocksServer;

  before(async () => {
    mkdirSync(workDir, { recursive: true });
    echoServer = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', protocols: ['chat'], perMessageDeflate: true });
    await echoServer.listening;
    echoPort = (echoServer.address() as net.AddressInfo).port;
    socksServer = await startSocksServer({ credentials: { user: 'alice', password: 's3cret' } });
    void (async () => {
      for await (const peer of echoServer.connections) {
        peer.opened.then(({ readable, writable }) => readable.pipeTo(writable)).catch(() => {});
      }
    })();
  });

  after(async () => {
    await socksServer.close();
    await echoServer.close();
  });

  it('finds the examples', () => {
    expect(examples.length).to.be.at.least(5);
  });

  for (const example of examples) {
    it(`${example.file}:${example.line} runs`, async () => {
      const ownsPort = /port: 8080|listen\(8080/.test(example.code);
      const port = ownsPort ? await freePort() : echoPort;
      const code = (ownsPort ? example.code.replaceAll('8080', String(port)) : example.code.replaceAll('localhost:8080', `127.0.0.1:${port}`)).replaceAll(
        'localhost:1080',
        `127.0.0.1:${socksServer.port}`,
      );
      const script = path.join(workDir, `${path.basename(example.file, '.md')}-${example.line}.mjs`);
      writeFileSync(script, code);
      const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (status) => resolve(status)));
      if (code.includes('SIGINT')) {
        await echoThrough(port);
        child.kill('SIGINT');
      }
      const status = await exited;
      expect(status, `${example.file}:${example.line} exited with ${status}:\n${output}`).to.equal(0);
    });
  }
});
