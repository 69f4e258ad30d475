// `wss serve --workers`: a node:cluster primary and its workers, driven as real processes over
// real sockets on 127.0.0.1. Workers are told apart by the paths their clients connected to,
// which each worker logs with its number.
import { expect } from 'chai';
import net from 'node:net';
import { WebSocketError } from '../lib/index.js';
import { RestartBackoff } from '../lib/cli/workers.js';
import { cleanUp, cli, onCleanup, serve, textClient, type Cli, type TextClient } from './helpers/cli.js';
import { rawConnect } from './helpers/server-helpers.js';

interface Client extends TextClient {
  name: string;
}

/** A client on path /<name>, closed after the test. */
async function connect(port: number, name: string): Promise<Client> {
  return { name, ...(await textClient(`ws://127.0.0.1:${port}/${name}`)) };
}

/** The number of the worker that logged the opening of the client on path /<name>. */
async function workerOf(server: Cli, name: string): Promise<number> {
  const [, worker] = await server.waitFor('stderr', new RegExp(`^worker (\\d+): #\\d+ open from \\S+ /${name}$`, 'm'));
  return Number(worker);
}

/** Clients connected one after another (so that round-robin alternates), with their workers. */
async function connectMany(server: Cli, port: number, names: string[]): Promise<Map<string, { client: Client; worker: number }>> {
  const clients = new Map<string, { client: Client; worker: number }>();
  for (const name of names) {
    const client = await connect(port, name);
    clients.set(name, { client, worker: await workerOf(server, name) });
  }
  return clients;
}

/** The pid of each worker that said it is ready, by worker number. */
function readyWorkers(server: Cli): Map<number, number> {
  return new Map([...server.stderr.matchAll(/^worker (\d+) \(pid (\d+)\) ready/gm)].map(([, worker, pid]) => [Number(worker), Number(pid)]));
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('wss serve --workers (node:cluster)', function () {
  this.timeout(30_000);
  afterEach(cleanUp);

  it('spreads connections over the workers; a killed worker drops only its own clients (1006) and is replaced', async () => {
    const { cli: server, port } = await serve(['--workers', '2']);
    expect(server.stderr).to.match(/listening on ws:\/\/127\.0\.0\.1:\d+\/ \(mode echo, 2 workers\)/);
    const pids = readyWorkers(server);
    expect(pids.size).to.equal(2);

    const clients = await connectMany(server, port, ['c1', 'c2', 'c3', 'c4', 'c5', 'c6']);
    const byWorker = (worker: number) => [...clients.values()].filter((entry) => entry.worker === worker).map((entry) => entry.client);
    const [first, second] = [...pids.keys()];
    expect(byWorker(first!), 'clients of the first worker').to.not.be.empty;
    expect(byWorker(second!), 'clients of the second worker').to.not.be.empty;
    for (const { client } of clients.values()) expect(await client.echo(`hello from ${client.name}`)).to.equal(`hello from ${client.name}`);

    const victim = clients.get('c1')!.worker;
    const survivor = victim === first ? second! : first!;
    process.kill(pids.get(victim)!, 'SIGKILL');
    // The victim's clients see their TCP connection end without a closing handshake.
    for (const client of byWorker(victim)) {
      const error = await client.stream.closed.then(
        () => null,
        (reason: unknown) => reason,
      );
      expect(error, client.name).to.be.instanceOf(WebSocketError);
      expect((error as WebSocketError).closeCode, client.name).to.equal(1006);
    }
    // The survivor's clients carry on as if nothing happened.
    for (const client of byWorker(survivor)) expect(await client.echo('still here')).to.equal('still here');

    const [, replacement, replacementPid] = await server.waitFor('stderr', new RegExp(`^worker (\\d+) \\(pid (\\d+)\\) ready \\(replaces worker ${victim}\\)$`, 'm'));
    expect(server.stderr).to.match(new RegExp(`^worker ${victim} \\(pid ${pids.get(victim)}\\) was killed by SIGKILL: starting a replacement`, 'm'));
    expect(Number(replacementPid)).to.not.equal(pids.get(victim));
    expect(isRunning(Number(replacementPid))).to.equal(true);

    // New clients are served, by the survivor and by the replacement alike.
    const later = await connectMany(server, port, ['n1', 'n2', 'n3', 'n4']);
    for (const { client } of later.values()) expect(await client.echo(client.name)).to.equal(client.name);
    expect([...later.values()].map((entry) => entry.worker)).to.include(Number(replacement)).and.include(survivor);

    server.child.kill('SIGTERM');
    expect(await server.exited).to.deep.equal({ code: 0, signal: null });
  });

  it('SIGTERM to the primary: every client of every worker gets 1001, then the primary exits 0', async () => {
    const { cli: server, port } = await serve(['--workers', '2']);
    const clients = await connectMany(server, port, ['a', 'b', 'c', 'd']);
    expect(new Set([...clients.values()].map((entry) => entry.worker)).size, 'workers with clients').to.equal(2);
    server.child.kill('SIGTERM');
    for (const { client } of clients.values()) expect(await client.stream.closed, client.name).to.deep.equal({ closeCode: 1001, reason: 'server shutting down' });
    expect(await server.exited).to.deep.equal({ code: 0, signal: null });
    expect(server.stderr).to.match(/^SIGTERM: draining 2 worker\(s\)/m);
    for (const worker of readyWorkers(server).keys()) expect(server.stderr).to.match(new RegExp(`^worker ${worker}: stopped$`, 'm'));
    expect(server.stderr).to.match(/\nstopped\n$/);
  });

  it('the drain is bounded: a client that never answers the close is dropped after --drain-timeout, and the primary still exits 0', async () => {
    const { cli: server, port } = await serve(['--workers', '2', '--drain-timeout', '300']);
    // A raw client: it completes the opening handshake, then never reads nor answers anything.
    const { socket: silent } = await rawConnect(port);
    onCleanup(() => void silent.destroy());
    const dropped = new Promise<void>((resolve) => silent.once('close', () => resolve()));
    const polite = await connect(port, 'polite');
    server.child.kill('SIGTERM');
    expect(await polite.stream.closed).to.deep.equal({ closeCode: 1001, reason: 'server shutting down' });
    expect(await server.exited).to.deep.equal({ code: 0, signal: null });
    await dropped;
    expect(server.stderr).to.match(/^worker \d+: 1 connection\(s\) still open after 300 ms \(--drain-timeout\): dropping them$/m);
  });

  it('a second signal does not wait for the drain: the workers are killed and the primary exits 130', async () => {
    const { cli: server, port } = await serve(['--workers', '2']);
    const { socket: silent } = await rawConnect(port);
    onCleanup(() => void silent.destroy());
    const dropped = new Promise<void>((resolve) => silent.once('close', () => resolve()));
    server.child.kill('SIGTERM');
    await server.waitFor('stderr', /SIGTERM: draining/);
    server.child.kill('SIGTERM');
    expect(await server.exited).to.deep.equal({ code: 130, signal: null });
    await dropped;
    expect(server.stderr).to.match(/SIGTERM again: killing \d worker\(s\)/);
  });

  it('workers that cannot listen (a port in use) stop the primary with status 1, without being replaced', async () => {
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    onCleanup(() => new Promise<void>((resolve) => busy.close(() => resolve())));
    const run = cli(['serve', '--workers', '2', '--port', String((busy.address() as net.AddressInfo).port)]);
    expect(await run.exited).to.deep.equal({ code: 1, signal: null });
    expect(run.stderr).to.match(/cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
    expect(run.stderr).to.match(/worker \d \(pid \d+\) exited with status 1 before it listened: stopping/);
    expect(run.stderr).to.not.include('replacement');
  });

  it('print --json: each record names the worker and its connection', async () => {
    const { cli: server, port } = await serve(['--mode', 'print', '--json', '--workers', '2']);
    const clients = await connectMany(server, port, ['p1', 'p2']);
    for (const { client } of clients.values()) await client.send(client.name);
    await server.waitFor('stdout', /^(?:.*\n){2}/);
    const records = server.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { worker: number; connection: number; data: string });
    expect(records.map(({ worker, connection, data }) => ({ worker, connection, data })).sort((a, b) => a.data.localeCompare(b.data))).to.deep.equal([
      { worker: clients.get('p1')!.worker, connection: 1, data: 'p1' },
      { worker: clients.get('p2')!.worker, connection: 1, data: 'p2' },
    ]);
  });
});

describe('wss serve --drain-timeout (one process)', function () {
  this.timeout(30_000);
  afterEach(cleanUp);

  it('drops a client that never answers the close after --drain-timeout and exits 0', async () => {
    const { cli: server, port } = await serve(['--drain-timeout', '300']);
    const { socket: silent } = await rawConnect(port);
    onCleanup(() => void silent.destroy());
    const dropped = new Promise<void>((resolve) => silent.once('close', () => resolve()));
    server.child.kill('SIGTERM');
    expect(await server.exited).to.deep.equal({ code: 0, signal: null });
    await dropped;
    expect(server.stderr).to.match(/^1 connection\(s\) still open after 300 ms \(--drain-timeout\): dropping them$/m);
  });
});

describe('RestartBackoff (when a dead worker is replaced)', () => {
  const limits = { stableUptime: 10_000, first: 100, max: 1_000 };

  it('replaces a worker that ran long at once', () => {
    const backoff = new RestartBackoff(limits);
    expect(backoff.delayAfter(60_000, 100_000)).to.equal(0);
    expect(backoff.delayAfter(10_000, 100_001)).to.equal(0);
  });

  it('doubles the delay for each young death in a row, up to the maximum', () => {
    const backoff = new RestartBackoff(limits);
    const delays: number[] = [];
    let now = 50_000;
    for (let i = 0; i < 6; i++) {
      const delay = backoff.delayAfter(200, now);
      delays.push(delay);
      now += delay + 200;
    }
    expect(delays).to.deep.equal([100, 200, 400, 800, 1_000, 1_000]);
  });

  it('starts again from the first delay after a long-lived worker dies, or after a quiet spell', () => {
    const backoff = new RestartBackoff(limits);
    expect([backoff.delayAfter(200, 1_000), backoff.delayAfter(200, 1_400)]).to.deep.equal([100, 200]);
    expect(backoff.delayAfter(20_000, 1_500)).to.equal(0);
    expect(backoff.delayAfter(200, 1_700)).to.equal(100);
    expect(backoff.delayAfter(200, 1_900)).to.equal(200);
    // The last replacement was forked at 2 100; ten seconds without a death since then.
    expect(backoff.delayAfter(200, 12_100)).to.equal(100);
  });
});
