// Debian's HAProxy (2.6 speaks RFC 8441 on both sides) started for one test: a configuration
// written to a temporary directory, `haproxy -db` in the foreground on free 127.0.0.1 ports, and
// stopped (and its directory removed) when the test is done.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { requireProgram } from './services.js';

export interface Haproxy {
  /** The frontend's port. */
  readonly port: number;
  /** A file in the instance's directory (a PEM for `ssl crt`, say). */
  file(name: string, contents: string | Buffer): string;
  /** Everything HAProxy printed, for failure messages. */
  readonly output: string;
  stop(): Promise<void>;
}

/** A port that was free a moment ago (HAProxy binds it itself). */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

const DEFAULTS = `
global
  # No daemon, no master process, no system log: a test's own instance.
  log stderr format raw local0 warning

defaults
  mode http
  log global
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  # A WebSocket is a tunnel once established (RFC 8441 and HTTP/1.1 upgrades alike).
  timeout tunnel 60s
`;

/**
 * Starts HAProxy with `DEFAULTS` plus the sections `sections(port, dir)` writes for a frontend on
 * `port` (files such as PEMs go in `dir`). Resolves once the frontend accepts connections.
 */
export async function startHaproxy(sections: (port: number, file: (name: string, contents: string | Buffer) => string) => string): Promise<Haproxy> {
  const binary = requireProgram('haproxy', 'haproxy', 'the HAProxy specs (RFC 8441 through a real proxy)');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wss-haproxy-'));
  const file = (name: string, contents: string | Buffer): string => {
    const target = path.join(dir, name);
    writeFileSync(target, contents);
    return target;
  };
  const port = await freePort();
  const config = file('haproxy.cfg', DEFAULTS + sections(port, file));
  let output = '';
  const child: ChildProcess = spawn(binary, ['-db', '-f', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await untilListening(port, exited, () => output);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    port,
    file,
    get output() {
      return output;
    },
    stop,
  };
}

async function untilListening(port: number, exited: Promise<void>, output: () => string): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  for (let attempt = 0; attempt < 200; attempt++) {
    if (gone) throw new Error(`haproxy exited at start:\n${output()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`haproxy did not listen on ${port}:\n${output()}`);
}
