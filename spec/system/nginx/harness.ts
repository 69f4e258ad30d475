// Debian's nginx in front of `wss serve` backends: the reverse-proxy recipe of docs/scaling.md,
// run as it is written there, with only its addresses, certificate and timeouts changed for the
// test. Each nginx runs in the foreground in its own process group, with its pid file, logs and
// temporary files in a directory of its own, and is stopped (group and all) after the test.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Cli, closedPort } from '../../helpers/cli.js';
import { fixtures } from '../../helpers/raw-peer.js';
import { requireProgram } from '../support/services.js';

export const RECIPE_FILE = 'docs/scaling.md';

/** The ```nginx block of docs/scaling.md: the map, the upstream and the server. */
export function recipe(): string {
  const match = /^```nginx\n([^]*?)^```$/m.exec(readFileSync(RECIPE_FILE, 'utf8'));
  if (match === null) throw new Error(`${RECIPE_FILE} has no nginx block`);
  return match[1]!;
}

/** What the recipe says in docs/scaling.md, and what it becomes in a test. */
function substitute(text: string, from: string, to: string): string {
  if (!text.includes(from)) throw new Error(`the nginx recipe in ${RECIPE_FILE} no longer holds ${JSON.stringify(from)}`);
  return text.replaceAll(from, to);
}

export interface NginxOptions {
  /** The two backends' ports, for 127.0.0.1:9001 and 127.0.0.1:9002 in the recipe. */
  backends: [number, number];
  /** proxy_read_timeout and proxy_send_timeout (60s in the recipe). */
  readTimeout?: string;
  /** Changes to the recipe's text, to show what a line is for by leaving it out. */
  edit?: (recipe: string) => string;
}

export interface Nginx {
  /** ws:// (the recipe's `listen 80`). */
  port: number;
  /** wss://, with the certificate of spec/fixtures (the recipe's `listen 443 ssl`). */
  tlsPort: number;
  /** The error log so far (nginx's stderr). */
  readonly errors: string;
  waitForError(pattern: RegExp): Promise<RegExpMatchArray>;
  /**
   * One line per finished request: "<uri> <status> <upstream addresses> <upstream statuses>",
   * the upstreams tried in order ("127.0.0.1:1, 127.0.0.1:2 502, 101": a failover).
   */
  accessLog(): Promise<string[]>;
  /** Stops nginx and removes its directory; the access log stays readable. */
  stop(): Promise<void>;
}

const running = new Set<Nginx>();

/** For afterEach: stops every nginx a test started. */
export async function stopNginx(): Promise<void> {
  await Promise.all([...running].map((nginx) => nginx.stop()));
}

export async function startNginx(options: NginxOptions): Promise<Nginx> {
  const binary = requireProgram('nginx', 'nginx', 'the nginx reverse-proxy spec');
  const directory = await mkdtemp(path.join(os.tmpdir(), 'wss-nginx-'));
  const [port, tlsPort] = [await closedPort(), await closedPort()];
  const readTimeout = options.readTimeout ?? '60s';
  let server = recipe();
  server = substitute(server, '127.0.0.1:9001', `127.0.0.1:${options.backends[0]}`);
  server = substitute(server, '127.0.0.1:9002', `127.0.0.1:${options.backends[1]}`);
  server = substitute(server, 'listen 80;', `listen 127.0.0.1:${port};`);
  server = substitute(server, 'listen 443 ssl;', `listen 127.0.0.1:${tlsPort} ssl;`);
  server = substitute(server, '/etc/ssl/certs/example.org.pem', path.join(fixtures, 'cert.pem'));
  server = substitute(server, '/etc/ssl/private/example.org.key', path.join(fixtures, 'key.pem'));
  server = substitute(server, 'proxy_read_timeout 60s;', `proxy_read_timeout ${readTimeout};`);
  server = substitute(server, 'proxy_send_timeout 60s;', `proxy_send_timeout ${readTimeout};`);
  if (options.edit !== undefined) server = options.edit(server);
  const accessLog = path.join(directory, 'access.log');
  // Everything around the recipe is the test's: one worker (so that round-robin is one
  // sequence), files in `directory`, the error log on stderr down to info (where nginx puts
  // "upstream timed out"; "start worker processes", which we wait for, is a notice).
  const config = `daemon off;
worker_processes 1;
pid ${directory}/nginx.pid;
error_log stderr info;
events { worker_connections 256; }
http {
    log_format upstreams '$request_uri $status $upstream_addr $upstream_status';
    access_log ${accessLog} upstreams;
    client_body_temp_path ${directory}/client_body;
    proxy_temp_path ${directory}/proxy;
    fastcgi_temp_path ${directory}/fastcgi;
    uwsgi_temp_path ${directory}/uwsgi;
    scgi_temp_path ${directory}/scgi;
${server}
}
`;
  const configFile = path.join(directory, 'nginx.conf');
  await writeFile(configFile, config);
  // -p: relative paths (none here) and the prefix; -e: errors before the config is read.
  const child = spawn(binary, ['-p', directory, '-c', configFile, '-e', 'stderr'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const run = new Cli(child);
  let stopped: Promise<void> | null = null;
  let finalAccessLog: string | null = null;
  const nginx: Nginx = {
    port,
    tlsPort,
    get errors() {
      return run.stderr;
    },
    waitForError: (pattern) => run.waitFor('stderr', pattern),
    async accessLog() {
      const text = finalAccessLog ?? (await readFile(accessLog, 'utf8').catch(() => ''));
      return text.split('\n').filter(Boolean);
    },
    stop() {
      stopped ??= (async () => {
        running.delete(nginx);
        try {
          // SIGTERM: nginx's fast shutdown; the master stops its workers, then exits.
          process.kill(-child.pid!, 'SIGTERM');
        } catch {
          // Already gone.
        }
        await run.exited;
        finalAccessLog = await readFile(accessLog, 'utf8').catch(() => '');
        await rm(directory, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
  running.add(nginx);
  try {
    // The listening sockets are open before the master starts its workers.
    await run.waitFor('stderr', /start worker processes/);
  } catch (error) {
    await nginx.stop();
    throw new Error(`nginx did not start:\n${run.stderr}\nconfig:\n${config}`, { cause: error });
  }
  return nginx;
}
