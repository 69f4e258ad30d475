// `node autobahn/run-h2.mjs client|server`: the Autobahn|Testsuite against our WebSockets over
// HTTP/2 (RFC 8441). wstest speaks HTTP/1.1 only, so Debian's HAProxy stands between:
//   server: wstest fuzzingclient → HAProxy (HTTP/1.1 frontend) → our server with http2: true
//           (HAProxy's h2c backend turns each upgrade into an extended CONNECT stream);
//   client: our client with http2: true → HAProxy (h2c frontend, extended CONNECT) → wstest
//           fuzzingserver (HAProxy turns each stream into an HTTP/1.1 upgrade).
// Needs the local suite ($AUTOBAHN_HOME, or ../shared/autobahn) and haproxy. Environment as for
// run.mjs: CASES, EXCLUDE, STRICT=1.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const role = process.argv[2];
if (role !== 'client' && role !== 'server') {
  console.error('usage: node autobahn/run-h2.mjs client|server');
  process.exit(2);
}
const agent = 'websocketstream-node-h2';
const reports = path.join(root, 'reports', `autobahn-${role}-h2`);
rmSync(reports, { recursive: true, force: true });
mkdirSync(reports, { recursive: true });
const localSuite = [process.env.AUTOBAHN_HOME, path.join(root, '..', 'shared', 'autobahn')].find(
  (dir) => dir !== undefined && existsSync(path.join(dir, 'wstest')),
);
if (localSuite === undefined) {
  console.error('run-h2: needs a local Autobahn|Testsuite ($AUTOBAHN_HOME or ../shared/autobahn)');
  process.exit(2);
}
const haproxy = ['/usr/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/sbin/haproxy'].find((candidate) => existsSync(candidate));
if (haproxy === undefined) {
  console.error('run-h2: needs haproxy (apt-get install -y --no-install-recommends haproxy)');
  process.exit(2);
}

function run(command, args, options = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: 'inherit', cwd: root, ...options });
    child.on('close', (code) => resolve(code ?? 1));
  });
}

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitForPort(port) {
  for (let i = 0; i < 100; i++) {
    const open = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(socket.destroy() ?? true));
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

/** HAProxy in the foreground with one frontend and one backend; stopped on exit. */
async function startHaproxy(frontend, backend) {
  const config = path.join(reports, 'haproxy.cfg');
  writeFileSync(
    config,
    `global
  log stderr format raw local0 warning
defaults
  mode http
  log global
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout tunnel 120s
frontend fe
  ${frontend}
  default_backend be
backend be
  ${backend}
`,
  );
  const child = spawn(haproxy, ['-db', '-f', config], { stdio: ['ignore', 'inherit', 'inherit'] });
  process.on('exit', () => child.kill());
  return child;
}

const env = { ...process.env, CASES: process.env.CASES ?? '*', EXCLUDE: process.env.EXCLUDE ?? '', WORKDIR: reports, OUT: path.join(reports, 'summary.json') };
console.log(`== local Autobahn|Testsuite at ${localSuite}, through HAProxy (${haproxy}) over HTTP/2`);
let index;
const proxyPort = await freePort();
if (role === 'client') {
  // run-client.sh starts the fuzzingserver on PORT; HAProxy forwards to it once it is up.
  const fuzzingPort = await freePort();
  // The fuzzingserver refuses a Host whose port is not its own: HAProxy passes the right one.
  const proxy = await startHaproxy(
    `bind 127.0.0.1:${proxyPort} proto h2`,
    `http-request set-header host 127.0.0.1:${fuzzingPort}\n  server fuzzingserver 127.0.0.1:${fuzzingPort}`,
  );
  await waitForPort(proxyPort);
  env.PORT = String(fuzzingPort);
  env.AUTOBAHN_PROXY_URL = `ws://127.0.0.1:${proxyPort}`;
  env.AUTOBAHN_HTTP2 = '1';
  await run(path.join(localSuite, 'run-client.sh'), [agent, process.execPath, 'autobahn/client.mjs'], { env });
  proxy.kill();
  index = path.join(reports, 'reports', 'clients', 'index.json');
} else {
  const serverPort = await freePort();
  const server = spawn(process.execPath, ['autobahn/server.mjs', String(serverPort), '--http2'], { cwd: root, stdio: 'inherit' });
  process.on('exit', () => server.kill());
  await waitForPort(serverPort);
  const proxy = await startHaproxy(`bind 127.0.0.1:${proxyPort}`, `server ours 127.0.0.1:${serverPort} proto h2`);
  await waitForPort(proxyPort);
  await run(path.join(localSuite, 'run-server.sh'), [agent, String(proxyPort)], { env });
  proxy.kill();
  server.kill();
  index = path.join(reports, 'reports', 'servers', 'index.json');
}
if (!existsSync(index)) {
  console.error(`run-h2: no report at ${index}`);
  process.exit(2);
}
const args = [path.join(root, 'build', 'autobahn', 'report-reader.js'), index, '--agent', agent];
if (process.env.STRICT === '1') args.push('--strict');
process.exit(spawnSync(process.execPath, args, { stdio: 'inherit' }).status ?? 2);
