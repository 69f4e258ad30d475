// `node autobahn/run.mjs client|server`: runs the Autobahn|Testsuite against our client or server,
// then reads the report with autobahn/report-reader. Uses a local suite when one is installed
// ($AUTOBAHN_HOME, or ../shared/autobahn beside this repository), else Docker (Dockerfile.autobahn).
// Environment: CASES and EXCLUDE (comma-separated case patterns), STRICT=1 to fail on UNIMPLEMENTED.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const role = process.argv[2];
if (role !== 'client' && role !== 'server') {
  console.error('usage: node autobahn/run.mjs client|server');
  process.exit(2);
}
const agent = 'websocketstream-node';
const reports = path.join(root, 'reports', `autobahn-${role}`);
rmSync(reports, { recursive: true, force: true });
mkdirSync(reports, { recursive: true });
const localSuite = [process.env.AUTOBAHN_HOME, path.join(root, '..', 'shared', 'autobahn')].find(
  (dir) => dir !== undefined && existsSync(path.join(dir, 'wstest')),
);

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

function readReport(index) {
  const args = [path.join(root, 'build', 'autobahn', 'report-reader.js'), index, '--agent', agent];
  if (process.env.STRICT === '1') args.push('--strict');
  return spawnSync(process.execPath, args, { stdio: 'inherit' }).status ?? 2;
}

const env = { ...process.env, CASES: process.env.CASES ?? '*', EXCLUDE: process.env.EXCLUDE ?? '' };
let index;
if (localSuite !== undefined) {
  console.log(`== local Autobahn|Testsuite at ${localSuite}`);
  env.WORKDIR = reports;
  env.OUT = path.join(reports, 'summary.json');
  if (role === 'client') {
    await run(path.join(localSuite, 'run-client.sh'), [agent, process.execPath, 'autobahn/client.mjs'], { env });
    index = path.join(reports, 'reports', 'clients', 'index.json');
  } else {
    const port = await freePort();
    const server = spawn(process.execPath, ['autobahn/server.mjs', String(port)], { cwd: root, stdio: 'inherit' });
    await waitForPort(port);
    await run(path.join(localSuite, 'run-server.sh'), [agent, String(port)], { env });
    server.kill();
    index = path.join(reports, 'reports', 'servers', 'index.json');
  }
} else {
  if (spawnSync('docker', ['info'], { stdio: 'ignore' }).status !== 0) {
    console.error('run: no local Autobahn|Testsuite and no running Docker engine');
    process.exit(2);
  }
  const image = 'websocketstream-node-autobahn';
  if ((await run('docker', ['build', '-f', 'Dockerfile.autobahn', '-t', image, '.'])) !== 0) process.exit(2);
  const volume = ['-v', `${reports}:/reports`];
  if (role === 'client') {
    const name = `${image}-${process.pid}`;
    await run('docker', ['run', '-d', '--rm', '--name', name, '-p', '127.0.0.1:9001:9001', ...volume, image]);
    try {
      await waitForPort(9001);
      await run(process.execPath, ['autobahn/client.mjs'], { env: { ...env, AUTOBAHN_URL: 'ws://127.0.0.1:9001', AGENT: agent } });
    } finally {
      await run('docker', ['stop', name]);
    }
    index = path.join(reports, 'clients', 'index.json');
  } else {
    const server = spawn(process.execPath, ['autobahn/server.mjs', '9001'], { cwd: root, stdio: 'inherit' });
    await waitForPort(9001);
    await run('docker', ['run', '--rm', '--network', 'host', ...volume, image, 'wstest', '-m', 'fuzzingclient', '-s', '/config/fuzzingclient.json']);
    server.kill();
    index = path.join(reports, 'servers', 'index.json');
  }
}
if (!existsSync(index)) {
  console.error(`run: no report at ${index}`);
  process.exit(2);
}
process.exit(readReport(index));
