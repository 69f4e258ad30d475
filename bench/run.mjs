// npm run bench [-- --quick] : this library against ws and undici, client and server in separate
// processes over 127.0.0.1. See bench/README.md for what is measured and how.
import { execFileSync, fork } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { hasNativeBufferutil, hasUndiciWebSocketStream, IMPLEMENTATIONS, libraryDir, BUFFERED_HIGH_WATER_MARK } from './impls.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const peerPath = path.join(here, 'peer.mjs');
const now = () => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------------------------------------
// Options.

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const value = (name, fallback) => {
  const i = argv.indexOf(name);
  return i === -1 ? fallback : argv[i + 1];
};
if (flag('--help') || flag('-h')) {
  console.log(`usage: node bench/run.mjs [--quick] [--reps N] [--reps-new N] [--warm MS] [--warm-large MS] [--round MS]
                        [--rounds N] [--only REGEX] [--cpu-prof] [--no-idle] [--no-mask] [--no-pm-qos]
                        [--mask-sizes LIST] [--mask-crossover]
  --quick           a one-minute subset: 16 B and 64 KiB, echo 16 B, server echo with many
                    connections, 50 concurrent handshakes, idle connections (fewer), masking;
                    this library and ws + bufferutil only, no raw TCP rows
  --reps N          repetitions of every measurement, each with fresh processes (default 2)
  --reps-new N      repetitions of the server echo with many connections, the handshakes and the
                    idle connections (default: --reps, quick 1)
  --warm MS         warm-up of a pair before measuring, thrown away (default 1000)
  --warm-large MS   the same for 64 KiB and 1 MiB messages (default 600)
  --round MS        one measured round (default 250, quick 200); --rounds N per pair (default 2)
  --only RE         only the trials whose id matches RE; ids look like "c2s:bin1m:ours>ws-bufferutil",
                    "echo:bin1k:ws-bufferutil>ours", "echo-many:bin16:raw>ours", "handshake:c50:ours>ws-bufferutil",
                    "idle:server:ws-bufferutil>ours-rw", "idle:client:undici-wss>ws-bufferutil"; "mask" for masking
  --cpu-prof        write a V8 CPU profile of every child to bench/results/prof-<date>/
  --no-idle, --no-mask  skip the idle connections or the masking measurement
  --no-pm-qos       do not hold /dev/cpu_dma_latency at 0 (idle cores then halt and wake up slowly)
  --mask-sizes LIST the masking part's sizes in bytes, comma-separated (default 16,1024,65536,1048576)
  --mask-crossover  the masking part measures each WebAssembly path against the JavaScript loop
                    instead, to find lib/protocol/mask.ts's KERNEL_MIN_BYTES (with --only mask)
  BENCH_LIB=DIR     measure another build of the library (default dist/esm), e.g. .build/bench-dist
  BENCH_LIB_B=DIR   add a second build as its own rows ("websocketstream-node B"), interleaved`);
  process.exit(0);
}
const quick = flag('--quick');
const reps = Number(value('--reps', 2));
const config = {
  quick,
  reps,
  newReps: Number(value('--reps-new', quick ? 1 : reps)),
  warmMs: Number(value('--warm', 1000)),
  // 64 KiB and 1 MiB messages: the per-byte code is hot after a few thousand messages.
  warmLargeMs: Number(value('--warm-large', 600)),
  roundMs: Number(value('--round', quick ? 200 : 250)),
  rounds: Number(value('--rounds', 2)),
  idleConnections: quick ? 500 : 2000,
  idleClientConnections: quick ? 300 : 1000,
  idleWarmConnections: 100,
  idleConcurrency: 64,
  // The server echo with many connections: connections, and messages in flight on each.
  manyConnections: 200,
  manyInFlight: 4,
  handshakeConcurrency: 50,
  bufferedHighWaterMark: BUFFERED_HIGH_WATER_MARK,
  only: value('--only', null),
  cpuProf: flag('--cpu-prof'),
  // Hold /dev/cpu_dma_latency at 0 while the run lasts (Linux PM QoS, needs root): idle cores
  // then poll instead of halting, so a message never waits for a core to wake up. On this VM a
  // wake-up from halt costs 50-80 µs, and how often it happens depends on whatever else runs.
  pmQos: !flag('--no-pm-qos'),
  idle: !flag('--no-idle'),
  mask: !flag('--no-mask'),
  maskSizes: value('--mask-sizes', '16,1024,65536,1048576').split(',').map(Number),
  maskCrossover: flag('--mask-crossover'),
};

const CHILD_ENV = {
  // glibc's adaptive mmap threshold makes large-buffer costs depend on a process's history: fix it.
  MALLOC_MMAP_THRESHOLD_: '33554432',
  MALLOC_TRIM_THRESHOLD_: '134217728',
};

// ---------------------------------------------------------------------------------------------
// What runs.

const KiB = 1024;
const MESSAGES = [
  { id: 'bin16', size: 16, text: false, label: 'binary 16 B' },
  { id: 'bin1k', size: KiB, text: false, label: 'binary 1 KiB' },
  { id: 'bin64k', size: 64 * KiB, text: false, label: 'binary 64 KiB' },
  { id: 'bin1m', size: KiB * KiB, text: false, label: 'binary 1 MiB' },
  { id: 'text16', size: 16, text: true, label: 'text 16 B' },
  { id: 'text1k', size: KiB, text: true, label: 'text 1 KiB' },
];
const DIRECTIONS = { c2s: 'client→server', s2c: 'server→client' };

const bufferutil = hasNativeBufferutil();
/**
 * The baseline of every ratio: ws with bufferutil, as users install it (ws without native addons
 * only if bufferutil does not load here). Plain ws is measured as well where bufferutil runs.
 */
const BASE = bufferutil ? 'ws-bufferutil' : 'ws';
config.baseline = BASE;
/** BENCH_LIB_B: a second build of this library, measured as its own rows ("B"). */
const libB = process.env.BENCH_LIB_B ? path.resolve(root, process.env.BENCH_LIB_B) : null;
const undiciStream = hasUndiciWebSocketStream();

/**
 * Whether ws's bufferutil does any work in a scenario: it masks what a client sends from 48 bytes
 * and unmasks what a server receives from 32 bytes, nothing else (ws/lib/buffer-util.js). Where
 * it does nothing, ws with and without it run the same code, and plain ws is not measured again.
 */
const bufferutilRuns = (kind, message) => bufferutil && (kind === 'c2s' || kind === 'echo') && message.size >= 48;

/**
 * A pair: which implementation runs the client and which the server, and which table rows it
 * feeds ("client" rows compare clients against one common server, "server" rows servers against
 * one common client). The common peer is ws + bufferutil, and ws + bufferutil against itself is
 * the baseline row of both tables. Plain ws is measured against the same peer where bufferutil
 * runs (client→server messages and echoes of 48 bytes and more).
 */
function pairsFor(kind, message) {
  const pairs = [{ client: BASE, server: BASE, rows: [['client', BASE], ['server', BASE]] }];
  if (BASE !== 'ws' && bufferutilRuns(kind, message) && !quick) {
    pairs.push({ client: 'ws', server: BASE, rows: [['client', 'ws']] });
    pairs.push({ client: BASE, server: 'ws', rows: [['server', 'ws']] });
  }
  pairs.push({ client: 'ours', server: BASE, rows: [['client', 'ours']] });
  pairs.push({ client: BASE, server: 'ours', rows: [['server', 'ours']] });
  if (libB !== null) {
    pairs.push({ client: 'ours-b', server: BASE, rows: [['client', 'ours-b']] });
    pairs.push({ client: BASE, server: 'ours-b', rows: [['server', 'ours-b']] });
  }
  if (message.deflate) return pairs;
  if (!quick) pairs.push({ client: 'undici-ws', server: BASE, rows: [['client', 'undici-ws']] });
  if (undiciStream && !quick) pairs.push({ client: 'undici-wss', server: BASE, rows: [['client', 'undici-wss']] });
  // Raw TCP moving the same bytes: the limit (left out of --quick).
  if (kind === 'c2s' && !message.text && !quick) pairs.push({ client: 'tcp', server: 'tcp', rows: [['limit', 'tcp']] });
  if (kind === 'echo' && !quick) pairs.push({ client: 'tcp', server: 'tcp', rows: [['limit', 'tcp']] });
  return pairs;
}

/** This library's builds, as names of implementations (with `suffix`: a variant of each). */
const ourBuilds = (suffix = '') => (libB === null ? [`ours${suffix}`] : [`ours${suffix}`, `ours-b${suffix}`]);

function buildScenarios() {
  const scenarios = [];
  const messages = quick ? MESSAGES.filter((m) => m.id === 'bin16' || m.id === 'bin64k') : MESSAGES;
  for (const kind of ['c2s', 's2c']) {
    for (const message of messages) {
      scenarios.push({ ...message, id: `${kind}:${message.id}`, kind, label: `${DIRECTIONS[kind]} ${message.label}`, pairs: pairsFor(kind, message) });
    }
  }
  // permessage-deflate (RFC 7692) with both ends' defaults: level 6, 15-bit windows, context takeover.
  // undici takes no part: the comparison is between the two implementations that compress.
  if (!quick) {
    for (const kind of ['c2s', 's2c']) {
      const message = { id: 'deflate16k', size: 16 * KiB, text: true, deflate: true, label: 'text 16 KiB, deflate' };
      scenarios.push({ ...message, id: `${kind}:${message.id}`, kind, label: `${DIRECTIONS[kind]} ${message.label}`, pairs: pairsFor(kind, message) });
    }
  }
  for (const message of quick ? MESSAGES.slice(0, 1) : MESSAGES.slice(0, 2)) {
    const echo = { size: message.size, text: false };
    scenarios.push({ id: `echo:${message.id}`, kind: 'echo', ...echo, label: `echo, ${sizeLabel(message.size)}, one in flight`, pairs: pairsFor('echo', echo) });
  }
  // The server echo with many connections: a raw client (see peer.mjs) keeps a few 16 B messages
  // in flight on each; every server echoes the way its README does.
  scenarios.push({
    id: 'echo-many:bin16',
    kind: 'echo-many',
    size: 16,
    text: false,
    reps: config.newReps,
    label: `server echo, ${config.manyConnections} conns, 16 B`,
    pairs: [BASE, ...ourBuilds()].map((server) => ({ client: 'raw', server, rows: [['server', server]] })),
  });
  // Handshakes: open then close, one at a time or 50 at a time. Client rows against a ws +
  // bufferutil server; server rows against the raw client.
  for (const [mode, concurrency, label] of [
    ['seq', 1, 'handshakes, one at a time'],
    ['c50', config.handshakeConcurrency, `handshakes, ${config.handshakeConcurrency} at a time`],
  ]) {
    if (quick && mode === 'seq') continue;
    const clients = [BASE, ...ourBuilds(), ...(quick ? [] : ['undici-ws', ...(undiciStream ? ['undici-wss'] : [])])];
    scenarios.push({
      id: `handshake:${mode}`,
      kind: 'handshake',
      size: 0,
      concurrency,
      reps: config.newReps,
      label,
      pairs: [
        ...clients.map((client) => ({ client, server: BASE, rows: [['client', client]] })),
        ...[BASE, ...ourBuilds()].map((server) => ({ client: 'raw', server, rows: [['server', server]] })),
      ],
    });
  }
  if (config.idle) {
    scenarios.push({
      id: 'idle:server',
      kind: 'idle',
      size: 0,
      reps: config.newReps,
      label: `${config.idleConnections} idle connections, server`,
      pairs: [BASE, ...ourBuilds(), ...ourBuilds('-rw')].map((server) => ({ client: BASE, server, rows: [['server', server]] })),
    });
    const clients = [BASE, ...ourBuilds(), ...ourBuilds('-rw'), ...(quick ? [] : ['undici-ws', ...(undiciStream ? ['undici-wss'] : [])])];
    scenarios.push({
      id: 'idle:client',
      kind: 'idle',
      size: 0,
      reps: config.newReps,
      label: `${config.idleClientConnections} idle connections, client`,
      pairs: clients.map((client) => ({ client, server: BASE, rows: [['client', client]] })),
    });
  }
  return scenarios;
}

/** Every trial, in order: repetition-major, and within a scenario A B C, then C B A, … */
function buildTrials(scenarios) {
  const trials = [];
  const matcher = config.only === null ? null : new RegExp(config.only);
  for (let rep = 0; rep < Math.max(config.reps, config.newReps); rep++) {
    for (const scenario of scenarios) {
      if (rep >= (scenario.reps ?? config.reps)) continue;
      const order = rep % 2 === 0 ? scenario.pairs : [...scenario.pairs].reverse();
      for (const pair of order) {
        const id = `${scenario.id}:${pair.client}>${pair.server}`;
        if (matcher !== null && !matcher.test(id)) continue;
        trials.push({ id, rep, scenario, pair });
      }
    }
  }
  return trials;
}

// ---------------------------------------------------------------------------------------------
// Child processes.

const profDir = config.cpuProf ? path.join(here, 'results', `prof-${new Date().toISOString().replace(/[:.]/g, '-')}`) : null;
const children = new Set();

function spawnPeer(job, { implName, profName, execArgv = [] }) {
  const env = { ...process.env, ...CHILD_ENV, WS_NO_BUFFER_UTIL: '1' };
  if (implName === 'ws-bufferutil' || job.role === 'mask') delete env.WS_NO_BUFFER_UTIL;
  if (implName.startsWith('ours-b')) env.BENCH_LIB = libB;
  const args = ['--no-warnings', ...execArgv];
  if (profDir !== null) args.push('--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${profName}.cpuprofile`);
  const child = fork(peerPath, [JSON.stringify(job)], { env, execArgv: args, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const inbox = [];
  const waiters = [];
  child.on('message', (message) => {
    if (message.type === 'error') {
      for (const waiter of waiters.splice(0)) waiter.reject(new Error(`${profName}: ${message.message}`));
      child.failure = message.message;
      return;
    }
    const i = waiters.findIndex((waiter) => waiter.type === message.type);
    if (i === -1) inbox.push(message);
    else waiters.splice(i, 1)[0].resolve(message);
  });
  child.on('exit', (code) => {
    children.delete(child);
    for (const waiter of waiters.splice(0)) waiter.reject(new Error(`${profName}: exited (${code}) ${child.failure ?? ''}`));
  });
  /** The next message of this type (or one already received). */
  child.next = (type, timeoutMs = 15_000) => {
    const i = inbox.findIndex((message) => message.type === type);
    if (i !== -1) return Promise.resolve(inbox.splice(i, 1)[0]);
    if (child.exitCode !== null) return Promise.reject(new Error(`${profName}: exited before ${type}`));
    return new Promise((resolve, reject) => {
      const waiter = { type, resolve, reject };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1);
        reject(new Error(`${profName}: no ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      waiter.resolve = (message) => {
        clearTimeout(timer);
        resolve(message);
      };
      waiter.reject = (error) => {
        clearTimeout(timer);
        reject(error);
      };
      waiters.push(waiter);
    });
  };
  children.add(child);
  return child;
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    child.send({ cmd: 'exit' });
  } catch {}
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
process.on('SIGINT', () => process.exit(130));

// ---------------------------------------------------------------------------------------------
// One trial.

function schedule(scenario) {
  const start = now() + 15;
  const warm = scenario.size >= 64 * KiB ? config.warmLargeMs : config.warmMs;
  const marks = [];
  for (let r = 0; r <= config.rounds; r++) marks.push(start + warm + r * config.roundMs);
  return { start, marks, stop: marks[marks.length - 1] + 30 };
}

/** The whole machine's CPU time from /proc/stat (Linux), to tell how busy others kept it. */
function machineCpu() {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = fields;
    const total = fields.slice(0, 8).reduce((a, b) => a + (b || 0), 0);
    return { total, busy: total - idle - iowait, steal: steal || 0 };
  } catch {
    return null;
  }
}

/** Samples machineCpu() at the first and the last mark of a plan. */
function watchMachine(plan) {
  const samples = [];
  const at = [plan.marks[0], plan.marks[plan.marks.length - 1]];
  const timers = at.map((t) => setTimeout(() => samples.push({ t: now(), cpu: machineCpu() }), Math.max(0, t - now())));
  return () => {
    timers.forEach(clearTimeout);
    // The children may report their last mark a hair before this process's own timer fires.
    if (samples.length === 1) samples.push({ t: now(), cpu: machineCpu() });
    if (samples.length < 2 || samples[0].cpu === null) return null;
    const [a, b] = samples;
    const cores = os.cpus().length;
    const total = b.cpu.total - a.cpu.total;
    return { busyCores: ((b.cpu.busy - a.cpu.busy) / total) * cores, stealCores: ((b.cpu.steal - a.cpu.steal) / total) * cores };
  };
}

/** Per-round rates from a list of marks, and CPU microseconds per message by the same marks. */
function rounds(marks) {
  const out = [];
  for (let r = 1; r < marks.length; r++) {
    const seconds = (marks[r].t - marks[r - 1].t) / 1000;
    const msgs = marks[r].msgs - marks[r - 1].msgs;
    out.push({
      seconds,
      msgs,
      bytes: marks[r].bytes - marks[r - 1].bytes,
      rate: msgs / seconds,
      cpuUs: marks[r].cpu - marks[r - 1].cpu,
      cpuUsPerMsg: msgs > 0 ? (marks[r].cpu - marks[r - 1].cpu) / msgs : null,
      cpuShare: (marks[r].cpu - marks[r - 1].cpu) / 1e6 / seconds,
    });
  }
  return out;
}

/**
 * Starts the two processes of a pair trial; the client connects once it is told the server's URL.
 * run.mjs starts the next trial's pair while the current one warms up (a throw-away phase), so
 * that the processes' start-up costs no measured time.
 */
function preparePair(trial) {
  if (trial === undefined || trial.scenario.kind === 'idle') return null;
  const { scenario, pair } = trial;
  const name = trial.id.replace(/[:>]/g, '_') + `_r${trial.rep}`;
  const job = { kind: scenario.kind, size: scenario.size, text: scenario.text, deflate: scenario.deflate === true };
  if (scenario.kind === 'echo-many') Object.assign(job, { connections: config.manyConnections, inFlight: config.manyInFlight });
  if (scenario.kind === 'handshake') job.concurrency = scenario.concurrency;
  const server = spawnPeer({ ...job, role: 'server', impl: pair.server }, { implName: pair.server, profName: `${name}_server` });
  const client = spawnPeer({ ...job, role: 'client', impl: pair.client }, { implName: pair.client, profName: `${name}_client` });
  return { trial, server, client };
}

async function runPairTrial(trial, peers, onWarmUp) {
  const { scenario, pair } = trial;
  const { server, client } = peers ?? preparePair(trial);
  try {
    const { port, info: serverInfo } = await server.next('listening');
    client.send({ cmd: 'connect', url: `ws://127.0.0.1:${port}/bench` });
    const { info: clientInfo, extensions } = await client.next('open');
    await server.next('connected');
    // ws picks bufferutil or its JavaScript loops when it loads: make sure each side got what it stands for.
    for (const [implName, info] of [[pair.client, clientInfo], [pair.server, serverInfo]]) {
      if ((implName === 'ws' || implName === 'ws-bufferutil') && info?.bufferutil !== (implName === 'ws-bufferutil')) {
        throw new Error(`${implName} ${info?.bufferutil ? 'uses' : 'does not use'} bufferutil`);
      }
    }
    if (pair.client !== 'tcp' && pair.client !== 'raw' && /permessage-deflate/.test(extensions) !== (scenario.deflate === true)) {
      throw new Error(`extensions negotiated: "${extensions}", but this scenario wants ${scenario.deflate ? 'permessage-deflate' : 'none'}`);
    }
    const plan = schedule(scenario);
    server.send({ cmd: 'run', ...plan });
    client.send({ cmd: 'run', ...plan });
    onWarmUp?.();
    const machine = watchMachine(plan);
    const timeout = plan.stop - now() + 10_000;
    const [serverMarks, clientMarks] = await Promise.all([server.next('marks', timeout), client.next('marks', timeout)]);
    const result = { id: trial.id, rep: trial.rep, scenario: scenario.id, client: pair.client, server: pair.server, clientInfo, serverInfo };
    // How much of the machine others used while this pair was measured (our two processes excluded).
    const load = machine();
    if (load !== null) {
      const window = (m) => (m[m.length - 1].cpu - m[0].cpu) / 1000 / (m[m.length - 1].t - m[0].t);
      const ours = window(serverMarks.marks) + window(clientMarks.marks);
      result.otherLoadCores = Math.max(0, load.busyCores - ours);
      result.stealCores = load.stealCores;
    }
    if (scenario.kind === 'echo') {
      result.latency = clientMarks.latency;
      const clientRounds = rounds(clientMarks.marks);
      result.rate = clientRounds[0].rate;
      result.clientCpuUsPerMsg = clientRounds[0].cpuUsPerMsg;
      // The server counts nothing: divide its CPU time by the client's round trips, per second.
      const serverRounds = rounds(serverMarks.marks);
      const serverCpuPerSecond = serverRounds.reduce((sum, r) => sum + r.cpuShare * r.seconds, 0) / serverRounds.reduce((sum, r) => sum + r.seconds, 0);
      result.serverCpuUsPerMsg = (serverCpuPerSecond * 1e6) / result.rate;
    } else if (scenario.kind === 'echo-many' || scenario.kind === 'handshake') {
      // The client counts (echoes, or clean open-then-close cycles); the server's CPU time in the
      // same window is divided by the client's count.
      const counted = rounds(clientMarks.marks);
      const serverRounds = rounds(serverMarks.marks);
      result.rounds = counted.map((r, i) => ({
        rate: r.rate,
        mbps: scenario.size > 0 ? (r.rate * scenario.size) / 1e6 : null,
        clientCpuUsPerMsg: r.cpuUsPerMsg,
        serverCpuUsPerMsg: r.msgs > 0 && serverRounds[i] ? serverRounds[i].cpuUs / r.msgs : null,
        clientCpuShare: r.cpuShare,
        serverCpuShare: serverRounds[i]?.cpuShare ?? null,
      }));
      result.rate = median(result.rounds.map((r) => r.rate));
      if (clientMarks.problems) result.problems = clientMarks.problems;
    } else {
      const receiverIsServer = scenario.kind === 'c2s';
      const receiver = receiverIsServer ? serverMarks.marks : clientMarks.marks;
      const sender = receiverIsServer ? clientMarks.marks : serverMarks.marks;
      const received = rounds(receiver);
      const sent = rounds(sender);
      result.rounds = received.map((r, i) => ({
        rate: r.rate,
        mbps: r.bytes / r.seconds / 1e6,
        receiverCpuUsPerMsg: r.cpuUsPerMsg,
        senderCpuUsPerMsg: sent[i]?.cpuUsPerMsg ?? null,
        receiverCpuShare: r.cpuShare,
        senderCpuShare: sent[i]?.cpuShare ?? null,
      }));
      for (const r of result.rounds) {
        r.clientCpuUsPerMsg = receiverIsServer ? r.senderCpuUsPerMsg : r.receiverCpuUsPerMsg;
        r.serverCpuUsPerMsg = receiverIsServer ? r.receiverCpuUsPerMsg : r.senderCpuUsPerMsg;
      }
      result.rate = median(result.rounds.map((r) => r.rate));
    }
    return result;
  } finally {
    await Promise.all([stop(server), stop(client)]);
  }
}

/**
 * Idle connections: the client process opens them (64 handshakes at a time) and the server holds
 * them; the side under test (idle:server or idle:client) measures its memory after gc(), once
 * after 100 connections that warm the code paths up, and again after the measured ones.
 */
async function runIdleTrial(trial) {
  const { scenario, pair } = trial;
  const measureClient = scenario.id === 'idle:client';
  const n = measureClient ? config.idleClientConnections : config.idleConnections;
  const name = trial.id.replace(/[:>]/g, '_') + `_r${trial.rep}`;
  const gc = ['--expose-gc'];
  const server = spawnPeer({ kind: 'idle', role: 'server', impl: pair.server }, { implName: pair.server, profName: `${name}_server`, execArgv: measureClient ? [] : gc });
  let client = null;
  try {
    const { port } = await server.next('listening');
    client = spawnPeer(
      { kind: 'idle', role: 'client', impl: pair.client, url: `ws://127.0.0.1:${port}/idle`, concurrency: config.idleConcurrency },
      { implName: pair.client, profName: `${name}_client`, execArgv: measureClient ? gc : [] },
    );
    await client.next('ready');
    const measured = measureClient ? client : server;
    client.send({ cmd: 'open', n: config.idleWarmConnections });
    await client.next('opened', 30_000);
    measured.send({ cmd: 'memory', expect: config.idleWarmConnections });
    const before = await measured.next('memory');
    client.send({ cmd: 'open', n });
    const opened = await client.next('opened', 120_000);
    measured.send({ cmd: 'memory', expect: config.idleWarmConnections + n });
    const after = await measured.next('memory');
    if (!after.gc) throw new Error('the measured process has no gc()');
    const count = after.count - before.count;
    if (count !== n) throw new Error(`${count} of ${n} connections arrived`);
    const heap = (m) => m.heapUsed + m.external;
    return {
      id: trial.id,
      rep: trial.rep,
      scenario: scenario.id,
      client: pair.client,
      server: pair.server,
      connections: count,
      openMs: opened.ms,
      rate: (n / opened.ms) * 1000,
      rssPerConnection: (after.memory.rss - before.memory.rss) / count,
      heapPerConnection: (heap(after.memory) - heap(before.memory)) / count,
      before: before.memory,
      after: after.memory,
    };
  } finally {
    await Promise.all([stop(server), client === null ? null : stop(client)]);
  }
}

async function runMask() {
  const child = spawnPeer(
    { role: 'mask', sizes: config.maskSizes, crossover: config.maskCrossover, warmMs: quick ? 50 : 100, roundMs: quick ? 40 : 50, rounds: quick ? 3 : 5 },
    { implName: 'mask', profName: 'mask' },
  );
  try {
    return (await child.next('mask', 60_000)).results;
  } finally {
    await stop(child);
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics and formatting.

function median(values) {
  const sorted = values.filter((v) => v !== null && Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** (max - min) / median, as a fraction. */
function spread(values) {
  const finite = values.filter((v) => v !== null && Number.isFinite(v));
  const m = median(finite);
  if (!m || finite.length < 2) return null;
  return (Math.max(...finite) - Math.min(...finite)) / m;
}

const fmtInt = (v) => (v === null || v === undefined ? '-' : Math.round(v).toLocaleString('en-US'));
const fmt = (v, digits = 1) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits));
const fmtRatio = (v) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : `${v.toFixed(2)}×`);
const fmtSpread = (v) => (v === null ? '-' : `±${Math.round((v * 100) / 2)}%`);
const fmtMs = (ms) => {
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
};

function table(headers, rows, align) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) =>
    cells
      .map((c, i) => ((align?.[i] ?? (i < 2 ? 'l' : 'r')) === 'l' ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const PEER_LABELS = { ws: 'ws', 'ws-bufferutil': 'ws+bu', raw: 'raw' };
const LABELS = {
  ours: 'websocketstream-node',
  'ours-rw': 'websocketstream-node (reader + writer)',
  ws: 'ws',
  'ws-bufferutil': 'ws + bufferutil',
  'undici-ws': 'undici WebSocket',
  'undici-wss': 'undici WebSocketStream',
  tcp: 'raw node:net',
  raw: 'raw client',
  'ours-b': 'websocketstream-node B',
  'ours-b-rw': 'websocketstream-node B (reader + writer)',
};
/** What an idle connection's application holds, per implementation. */
const IDLE_HOLDS = {
  ours: 'a pending read',
  'ours-b': 'a pending read',
  'ours-rw': 'reader (pending read) + writer',
  'ours-b-rw': 'reader (pending read) + writer',
  ws: "a 'message' listener",
  'ws-bufferutil': "a 'message' listener",
  'undici-ws': "a 'message' listener",
  'undici-wss': 'a pending read',
};
const BASE_SHORT = PEER_LABELS[BASE];
const isOurs = (impl) => impl === 'ours' || impl === 'ours-rw';

/** Groups trial results into table rows: one per scenario, section and implementation. */
function summarize(scenarios, results) {
  const rows = [];
  for (const scenario of scenarios) {
    const seen = new Set();
    for (const pair of scenario.pairs) {
      for (const [section, implName] of pair.rows) {
        const key = `${section}:${implName}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const trials = results.filter((r) => r.scenario === scenario.id && r.client === pair.client && r.server === pair.server && !r.failed);
        const failed = results.filter((r) => r.scenario === scenario.id && r.client === pair.client && r.server === pair.server && r.failed).length;
        if (trials.length === 0 && failed === 0) continue;
        const peer = section === 'server' ? pair.client : pair.server;
        const row = { scenario: scenario.id, label: scenario.label, kind: scenario.kind, size: scenario.size, text: scenario.text, section, impl: implName, peer, pair: `${pair.client} client → ${pair.server} server`, trials: trials.length, failed };
        const cpuSide = section === 'server' ? 'serverCpuUsPerMsg' : 'clientCpuUsPerMsg';
        const peerSide = section === 'server' ? 'clientCpuUsPerMsg' : 'serverCpuUsPerMsg';
        row.otherLoadCores = median(trials.map((t) => t.otherLoadCores ?? null));
        if (scenario.kind === 'idle') {
          row.connections = median(trials.map((t) => t.connections));
          row.rate = median(trials.map((t) => t.rate));
          row.spread = spread(trials.map((t) => t.rate));
          row.openMs = median(trials.map((t) => t.openMs));
          row.rssPerConnection = median(trials.map((t) => t.rssPerConnection));
          row.heapPerConnection = median(trials.map((t) => t.heapPerConnection));
          row.memorySpread = spread(trials.map((t) => t.rssPerConnection));
          row.heapSpread = spread(trials.map((t) => t.heapPerConnection));
        } else if (scenario.kind === 'echo') {
          row.rate = median(trials.map((t) => t.rate));
          row.spread = spread(trials.map((t) => t.rate));
          row.medianUs = median(trials.map((t) => t.latency.medianUs));
          row.p99Us = median(trials.map((t) => t.latency.p99Us));
          row.medianSpread = spread(trials.map((t) => t.latency.medianUs));
          row.cpuUsPerMsg = median(trials.map((t) => (section === 'server' ? t.serverCpuUsPerMsg : t.clientCpuUsPerMsg)));
          row.peerCpuUsPerMsg = median(trials.map((t) => (section === 'server' ? t.clientCpuUsPerMsg : t.serverCpuUsPerMsg)));
        } else {
          const rounds = trials.flatMap((t) => t.rounds);
          row.samples = rounds.map((r) => r.rate);
          row.rate = median(row.samples);
          row.spread = spread(row.samples);
          row.mbps = row.rate === null || !scenario.size ? null : (row.rate * scenario.size) / 1e6;
          row.cpuUsPerMsg = median(rounds.map((r) => r[cpuSide]));
          row.peerCpuUsPerMsg = median(rounds.map((r) => r[peerSide]));
          if (scenario.kind === 'echo-many' || scenario.kind === 'handshake') {
            row.cpuShare = median(rounds.map((r) => r[section === 'server' ? 'serverCpuShare' : 'clientCpuShare']));
            row.peerCpuShare = median(rounds.map((r) => r[section === 'server' ? 'clientCpuShare' : 'serverCpuShare']));
          }
          if (scenario.kind === 'handshake') {
            row.unclean = trials.reduce((sum, t) => sum + (t.problems?.unclean ?? 0), 0);
            row.failedCycles = trials.reduce((sum, t) => sum + (t.problems?.failed ?? 0), 0);
            row.lastError = trials.map((t) => t.problems?.lastError).find((e) => e) ?? null;
          }
        }
        rows.push(row);
      }
    }
  }
  // Ratios to ws + bufferutil in the same section and scenario (the limit rows against the client
  // row), all "higher is better": throughput, echoes/s and handshakes/s as ours / base; echo
  // latency as base / ours; memory as base / ours; CPU per message as base / ours.
  const positive = (v) => (v !== null && v !== undefined && v > 0 ? v : null);
  for (const row of rows) {
    const base = rows.find((r) => r.scenario === row.scenario && r.impl === BASE && r.section === (row.section === 'limit' ? 'client' : row.section));
    if (base === undefined) continue;
    if (row.kind === 'echo') {
      row.vsBase = base.medianUs && row.medianUs ? base.medianUs / row.medianUs : null;
      row.p99VsBase = base.p99Us && row.p99Us ? base.p99Us / row.p99Us : null;
    } else if (row.kind === 'idle') {
      // Memory can come out at or below zero when a row's growth is within the noise.
      row.rssVsBase = positive(base.rssPerConnection) && positive(row.rssPerConnection) ? base.rssPerConnection / row.rssPerConnection : null;
      row.heapVsBase = positive(base.heapPerConnection) && positive(row.heapPerConnection) ? base.heapPerConnection / row.heapPerConnection : null;
      row.vsBase = base.rate && row.rate ? row.rate / base.rate : null;
    } else {
      row.vsBase = base.rate && row.rate ? row.rate / base.rate : null;
    }
    if (row.cpuUsPerMsg && base.cpuUsPerMsg) row.cpuVsBase = base.cpuUsPerMsg / row.cpuUsPerMsg;
  }
  // Throughput against raw TCP moving the same bytes (client→server, binary: TCP is symmetric).
  for (const row of rows) {
    if (row.kind !== 'c2s' && row.kind !== 's2c') continue;
    if (row.text || row.section === 'limit') continue;
    const tcp = rows.find((r) => r.scenario === `c2s:${row.scenario.split(':')[1]}` && r.impl === 'tcp');
    if (tcp?.mbps && row.mbps) row.vsTcp = row.mbps / tcp.mbps;
  }
  return rows;
}

function printReport(rows, mask) {
  const out = [];
  const vs = `vs ${BASE_SHORT}`;
  const cpuVs = `CPU vs ${BASE_SHORT}`;
  const throughputRows = (section) =>
    rows
      .filter((r) => r.section === section && (r.kind === 'c2s' || r.kind === 's2c'))
      .map((r) => [r.label, LABELS[r.impl], PEER_LABELS[r.peer] ?? r.peer, fmtInt(r.rate), fmt(r.mbps, r.mbps !== null && r.mbps < 10 ? 2 : 0), fmtSpread(r.spread), fmtRatio(r.vsBase), fmtRatio(r.vsTcp), fmt(r.cpuUsPerMsg, 2), fmtRatio(r.cpuVsBase), fmt(r.otherLoadCores, 1)]);
  const headers = ['scenario', 'implementation', 'peer', 'msg/s', 'MB/s', 'spread', vs, 'vs TCP', 'CPU µs/msg', cpuVs, 'busy'];
  const ratioNote = `ratios to ws + bufferutil, higher is better: msg/s ÷ its msg/s; CPU: its CPU per message ÷ this one's`;
  const clientRows = throughputRows('client');
  if (clientRows.length > 0) {
    out.push('');
    out.push(`Client side: each client against a common ${LABELS[BASE]} server; CPU is the client process; ${ratioNote}`);
    out.push(table(headers, clientRows, ['l', 'l', 'l']));
  }
  const serverRows = throughputRows('server');
  if (serverRows.length > 0) {
    out.push('');
    out.push(`Server side: each server against a common ${LABELS[BASE]} client; CPU is the server process`);
    out.push(table(headers, serverRows, ['l', 'l', 'l']));
  }
  const limitRows = rows.filter((r) => r.section === 'limit' && r.kind === 'c2s');
  if (limitRows.length > 0) {
    out.push('');
    out.push(`Limit: raw node:net loopback, the same bytes in writes of the message size (${vs}: the client-side ${BASE_SHORT} row)`);
    out.push(table(['scenario', 'implementation', 'writes/s', 'MB/s', 'spread', vs, 'CPU µs/write', 'busy'], limitRows.map((r) => [r.label, LABELS[r.impl], fmtInt(r.rate), fmt(r.mbps, r.mbps < 10 ? 2 : 0), fmtSpread(r.spread), fmtRatio(r.vsBase), fmt(r.cpuUsPerMsg, 2), fmt(r.otherLoadCores, 1)])));
  }
  const echoRows = rows.filter((r) => r.kind === 'echo');
  if (echoRows.length > 0) {
    out.push('');
    out.push(`Echo latency, one message in flight (p50/p99 ${vs}: ${BASE_SHORT}'s latency ÷ this one's, higher is faster; CPU per round trip, side under test)`);
    out.push(
      table(
        ['size', 'side', 'implementation', 'round trips/s', 'p50 µs', 'p99 µs', 'spread', `p50 ${vs}`, `p99 ${vs}`, 'CPU µs/rt', cpuVs, 'busy'],
        echoRows.map((r) => [sizeLabel(r.size), r.section, LABELS[r.impl], fmtInt(r.rate), fmt(r.medianUs), fmt(r.p99Us), fmtSpread(r.medianSpread), fmtRatio(r.vsBase), fmtRatio(r.p99VsBase), fmt(r.cpuUsPerMsg, 2), fmtRatio(r.cpuVsBase), fmt(r.otherLoadCores, 1)]),
        ['l', 'l', 'l'],
      ),
    );
  }
  const manyRows = rows.filter((r) => r.kind === 'echo-many');
  if (manyRows.length > 0) {
    out.push('');
    out.push(`Server echo, ${config.manyConnections} connections with ${config.manyInFlight} × 16 B in flight on each, from one raw client process (cores: CPU time ÷ wall time of each process)`);
    out.push(
      table(
        ['server', 'echoes/s', 'spread', vs, 'server CPU µs/msg', cpuVs, 'server cores', 'client cores', 'busy'],
        manyRows.map((r) => [LABELS[r.impl], fmtInt(r.rate), fmtSpread(r.spread), fmtRatio(r.vsBase), fmt(r.cpuUsPerMsg, 2), fmtRatio(r.cpuVsBase), fmt(r.cpuShare, 2), fmt(r.peerCpuShare, 2), fmt(r.otherLoadCores, 1)]),
        ['l'],
      ),
    );
  }
  const handshakeRows = rows.filter((r) => r.kind === 'handshake');
  if (handshakeRows.length > 0) {
    out.push('');
    out.push(`Handshakes: open, close(1000), wait for the clean close; clients against a ${LABELS[BASE]} server, servers against the raw client`);
    out.push(
      table(
        ['scenario', 'side', 'implementation', 'peer', 'cycles/s', 'spread', vs, 'CPU µs/cycle', cpuVs, 'cores', 'unclean/failed', 'busy'],
        handshakeRows.map((r) => [r.label, r.section, LABELS[r.impl], PEER_LABELS[r.peer] ?? r.peer, fmtInt(r.rate), fmtSpread(r.spread), fmtRatio(r.vsBase), fmt(r.cpuUsPerMsg, 1), fmtRatio(r.cpuVsBase), fmt(r.cpuShare, 2), `${r.unclean}/${r.failedCycles}`, fmt(r.otherLoadCores, 1)]),
        ['l', 'l', 'l', 'l'],
      ),
    );
  }
  for (const section of ['server', 'client']) {
    const idleRows = rows.filter((r) => r.kind === 'idle' && r.section === section);
    if (idleRows.length === 0) continue;
    const n = section === 'server' ? config.idleConnections : config.idleClientConnections;
    out.push('');
    out.push(
      section === 'server'
        ? `${n} idle connections held by the server under test (opened by ${LABELS[BASE]} clients, ${config.idleConcurrency} at a time); memory of the server process after gc(); KB = 1000 bytes; ${vs}: ${BASE_SHORT}'s ÷ this one's`
        : `${n} idle connections opened by the client under test in one process (${config.idleConcurrency} at a time) to a ${LABELS[BASE]} server; memory of the client process after gc()`,
    );
    out.push(
      table(
        [section, 'holds', 'open all (ms)', 'conn/s', 'RSS KB/conn', 'heap+ext KB/conn', `RSS ${vs}`, `heap+ext ${vs}`, 'spread (RSS)'],
        idleRows.map((r) => [LABELS[r.impl], IDLE_HOLDS[r.impl] ?? '', fmtInt(r.openMs), fmtInt(r.rate), fmt(r.rssPerConnection / 1000, 2), fmt(r.heapPerConnection / 1000, 2), fmtRatio(r.rssVsBase), fmtRatio(r.heapVsBase), fmtSpread(r.memorySpread)]),
        ['l', 'l'],
      ),
    );
  }
  if (mask !== null) out.push('', ...maskReport(mask));
  return out.join('\n');
}

/** The masking part's tables: GB/s, and each row as a fraction of a copy or of the JavaScript loop. */
function maskReport(mask) {
  const names = Object.keys(mask[0].gbps);
  const gbps = (row, name) => median(row.gbps[name]);
  const out = [];
  if (config.maskCrossover) {
    const paths = [...new Set(names.map((n) => n.split(':')[0]))];
    out.push('Masking crossovers: each WebAssembly path / the JavaScript loop doing the same work (median of 5 interleaved rounds; above 1.00× the kernel wins)');
    out.push(table(['size', ...paths], mask.map((row) => [sizeLabel(row.size), ...paths.map((p) => fmtRatio(gbps(row, `${p}: kernel`) / gbps(row, `${p}: js`)))]), ['l']));
    for (const p of paths) {
      // The smallest size from which the kernel wins at every larger size measured.
      let from = null;
      for (const row of [...mask].reverse()) {
        if (gbps(row, `${p}: kernel`) < gbps(row, `${p}: js`)) break;
        from = row.size;
      }
      out.push(`  ${p}: the kernel wins from ${from === null ? 'none of these sizes' : sizeLabel(from)}`);
    }
    return out;
  }
  out.push(`Masking, GB/s in one process (median of ${mask[0].gbps.copy?.length ?? 5} interleaved rounds).`+' "mask": copy the payload into its frame and mask it (a client); "unmask": unmask a chunk\'s payload and copy it into the message (a server); applyMask: mask in place in the frame');
  out.push(table(['size', ...names], mask.map((row) => [sizeLabel(row.size), ...names.map((n) => fmt(gbps(row, n), 2))]), ['l']));
  const vs = (a, b) => (names.includes(a) && names.includes(b) ? [[`${a} / ${b}`, (row) => fmtRatio(gbps(row, a) / gbps(row, b))]] : []);
  const ratios = [...vs('applyMask', 'copy'), ...vs('mask: ours', 'mask: bufferutil'), ...vs('mask: ours', 'mask: ours-js'), ...vs('unmask: ours', 'unmask: bufferutil'), ...vs('unmask: ours', 'unmask: ours-js'), ...vs('mask: ours', 'copy')];
  out.push('');
  out.push(table(['size', ...ratios.map(([label]) => label)], mask.map((row) => [sizeLabel(row.size), ...ratios.map(([, f]) => f(row))]), ['l']));
  return out;
}

function sizeLabel(size) {
  return size >= KiB * KiB ? `${size / KiB / KiB} MiB` : size >= KiB ? `${size / KiB} KiB` : `${size} B`;
}

/**
 * The performance targets (bench/README.md), checked against this run (ratios within ±20% are noise on this box). Every
 * ratio is to ws + bufferutil and higher is better (see summarize()).
 */
function checkTargets(rows, mask) {
  const targets = [];
  // Judged on the ratios as printed (two decimals).
  const atLeast = (value, bound) => value !== null && value !== undefined && Math.round(value * 100) >= Math.round(bound * 100);
  const name = (r) => (r.kind === 'echo' ? `${r.section} ${r.label} p50` : `${r.section} ${r.label}`);
  const judged = rows.filter((r) => r.impl === 'ours' && (r.section === 'client' || r.section === 'server') && ['c2s', 's2c', 'echo', 'handshake'].includes(r.kind));
  if (judged.length > 0) {
    const below = judged.filter((r) => !atLeast(r.vsBase, 1));
    targets.push({
      target: `every throughput, echo (p50) and handshake row ≥ 1.0× ${LABELS[BASE]}, both roles`,
      met: below.length === 0,
      detail: below.length === 0 ? `all ${judged.length} rows` : `${judged.length - below.length} of ${judged.length} rows; below: ${below.map((r) => `${name(r)} ${fmtRatio(r.vsBase)}`).join('; ')}`,
    });
    const small = judged.filter((r) => r.size === 16 || r.size === KiB);
    const under = small.filter((r) => !atLeast(r.vsBase, 1.3));
    if (small.length > 0) targets.push({
      target: `≥ 1.3× ${LABELS[BASE]} at 16 B and 1 KiB (throughput, echo p50)`,
      met: under.length === 0,
      detail: under.length === 0 ? `all ${small.length} rows` : `${small.length - under.length} of ${small.length} rows; below: ${under.map((r) => `${name(r)} ${fmtRatio(r.vsBase)}`).join('; ')}`,
    });
  }
  const many = rows.find((r) => r.kind === 'echo-many' && r.impl === 'ours');
  if (many) {
    targets.push({
      target: `server echo, ${config.manyConnections} connections ≥ 1.0× ${LABELS[BASE]}`,
      met: atLeast(many.vsBase, 1),
      detail: `${fmtInt(many.rate)} echoes/s, ${fmtRatio(many.vsBase)}; CPU per message ${fmtRatio(many.cpuVsBase)}`,
    });
  }
  const idle = rows.filter((r) => r.kind === 'idle' && isOurs(r.impl));
  if (idle.length > 0) {
    const what = (r) => `${r.section}, ${IDLE_HOLDS[r.impl]}`;
    targets.push({
      target: 'idle connection, either role: heap + external ≤ 9 KB (9,000 bytes) per connection',
      met: idle.every((r) => r.heapPerConnection !== null && r.heapPerConnection <= 9000),
      detail: idle.map((r) => `${what(r)} ${fmt(r.heapPerConnection / 1000, 2)} KB`).join('; '),
    });
    targets.push({
      target: `idle connection, either role: RSS ≤ 1.5× ${LABELS[BASE]} (${BASE_SHORT}/ours ≥ 0.67×)`,
      met: idle.every((r) => r.rssVsBase !== null && Math.round((1 / r.rssVsBase) * 100) <= 150),
      detail: idle.map((r) => `${what(r)} ${fmt(r.rssPerConnection / 1000, 2)} KB, ${r.rssVsBase === null ? '-' : `${fmt(1 / r.rssVsBase, 2)}× ${BASE_SHORT}`}`).join('; '),
    });
  }
  const mib = rows.filter((r) => r.impl === 'ours' && r.size === KiB * KiB && r.vsTcp);
  const sends = mib.filter((r) => (r.section === 'client') === (r.kind === 'c2s'));
  if (sends.length > 0) {
    const receives = mib.filter((r) => !sends.includes(r));
    targets.push({
      target: '1 MiB sends ≥ 90% of raw loopback TCP',
      met: sends.every((r) => atLeast(r.vsTcp, 0.9)),
      detail:
        sends.map((r) => `${r.section} sending ${Math.round(r.vsTcp * 100)}%`).join('; ') +
        (receives.length > 0 ? ` (not judged, receiving: ${receives.map((r) => `${r.section} ${Math.round(r.vsTcp * 100)}%`).join('; ')})` : ''),
    });
  }
  if (mask !== null && !config.maskCrossover) {
    const ratio = (row, a, b) => median(row.gbps[a]) / median(row.gbps[b]);
    // The WebAssembly kernel against bufferutil's native loop, same work, from 64 KiB.
    for (const [ours, theirs, what] of [
      ['mask: ours', 'mask: bufferutil', 'masking (copy into the frame + mask)'],
      ['unmask: ours', 'unmask: bufferutil', 'unmasking (unmask + copy into the message)'],
    ]) {
      const large = mask.filter((row) => row.size >= 64 * KiB && row.gbps[ours] && row.gbps[theirs]);
      if (large.length === 0) continue;
      targets.push({
        target: `${what} ≥ bufferutil from 64 KiB`,
        met: large.every((row) => atLeast(ratio(row, ours, theirs), 1)),
        detail: large.map((row) => `${sizeLabel(row.size)} ${fmtRatio(ratio(row, ours, theirs))}`).join('; '),
      });
    }
  }
  return targets;
}

// ---------------------------------------------------------------------------------------------

function gitCommit() {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

async function main() {
  const lib = libraryDir();
  if (!existsSync(path.join(lib, 'index.js'))) {
    console.error(`bench: no built library at ${lib} (run node scripts/build.mjs --no-tests, or set BENCH_LIB)`);
    process.exit(1);
  }
  const scenarios = buildScenarios();
  const trials = buildTrials(scenarios);
  const started = now();
  console.log(`bench: ${trials.length} trials, ${config.reps} repetitions, warm-up ${config.warmMs} ms, ${config.rounds} × ${config.roundMs} ms measured per pair${quick ? ' (quick)' : ''}`);
  console.log(`bench: node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), library ${path.relative(root, lib) || lib}`);
  if (libB !== null) console.log(`bench: "websocketstream-node B" rows measure ${path.relative(root, libB) || libB} (BENCH_LIB_B)`);
  console.log(`bench: bufferutil ${bufferutil ? 'native addon loads' : 'not available'}; undici WebSocketStream ${undiciStream ? 'exported' : 'not exported'}`);
  if (!quick && !IMPLEMENTATIONS['undici-ws']) console.log('bench: undici WebSocket missing');

  let pmQosFd = null;
  if (config.pmQos) {
    try {
      pmQosFd = openSync('/dev/cpu_dma_latency', 'w');
      writeSync(pmQosFd, Buffer.alloc(4)); // a 32-bit 0: no idle state with any exit latency
      console.log('bench: holding /dev/cpu_dma_latency at 0 µs while it runs (idle cores poll; --no-pm-qos to turn off)');
    } catch (error) {
      pmQosFd = null;
      console.log(`bench: could not hold /dev/cpu_dma_latency (${error.code ?? error.message}): latencies include core wake-ups`);
    }
  }
  config.pmQosHeld = pmQosFd !== null;

  let mask = null;
  if (config.mask && (config.only === null || /mask/.test(config.only))) {
    process.stdout.write(config.maskCrossover ? '[mask] crossovers ... ' : '[mask] applyMask vs copy ... ');
    mask = await runMask();
    if (config.maskCrossover) console.log('done');
    else console.log(mask.map((row) => `${sizeLabel(row.size)} ${fmtRatio(median(row.gbps.applyMask) / median(row.gbps.copy))}`).join(', '));
  }

  const results = [];
  const trialsStarted = now();
  let prepared = preparePair(trials[0]);
  for (let i = 0; i < trials.length; i++) {
    const trial = trials[i];
    const t0 = now();
    let result;
    const peers = prepared;
    prepared = null;
    const prepareNext = () => {
      prepared ??= preparePair(trials[i + 1]);
    };
    try {
      result = trial.scenario.kind === 'idle' ? await runIdleTrial(trial) : await runPairTrial(trial, peers, prepareNext);
    } catch (error) {
      result = { id: trial.id, rep: trial.rep, scenario: trial.scenario.id, client: trial.pair.client, server: trial.pair.server, failed: true, error: String(error?.message ?? error) };
    }
    results.push(result);
    if (trials[i + 1]?.scenario.kind !== 'idle' && prepared === null) {
      // Failed before its warm-up, or the next pair could not be started early: start it now.
      await new Promise((resolve) => setTimeout(resolve, 20));
      prepareNext();
    }
    const elapsed = now() - started;
    const eta = ((now() - trialsStarted) / (i + 1)) * (trials.length - i - 1);
    const who = `${trial.pair.client} → ${trial.pair.server}`;
    let detail;
    if (result.failed) detail = `FAILED: ${result.error}`;
    else if (trial.scenario.kind === 'echo') detail = `median ${fmt(result.latency.medianUs)} µs, p99 ${fmt(result.latency.p99Us)} µs`;
    else if (trial.scenario.kind === 'idle') detail = `open ${fmtInt(result.openMs)} ms, ${fmt(result.rssPerConnection / 1000, 2)} KB RSS/conn, ${fmt(result.heapPerConnection / 1000, 2)} KB heap+ext/conn`;
    else if (trial.scenario.kind === 'echo-many') detail = `${fmtInt(result.rate)} echoes/s, server ${fmt(median(result.rounds.map((r) => r.serverCpuUsPerMsg)), 2)} µs CPU/msg`;
    else if (trial.scenario.kind === 'handshake') {
      const side = trial.pair.client === 'raw' ? 'server' : 'client';
      const problems = result.problems && (result.problems.unclean || result.problems.failed) ? `, ${result.problems.unclean} unclean, ${result.problems.failed} failed (${result.problems.lastError})` : '';
      detail = `${fmtInt(result.rate)} cycles/s, ${side} ${fmt(median(result.rounds.map((r) => r[`${side}CpuUsPerMsg`])), 1)} µs CPU/cycle${problems}`;
    }
    else detail = `${fmtInt(result.rate)} msg/s, ${fmt((result.rate * trial.scenario.size) / 1e6, 1)} MB/s`;
    const busy = result.otherLoadCores > 0.15 ? `, others used ${result.otherLoadCores.toFixed(2)} cores` : '';
    console.log(`[${String(i + 1).padStart(3)}/${trials.length} ${fmtMs(elapsed)} eta ${fmtMs(eta)}] rep ${trial.rep + 1} ${trial.scenario.label.padEnd(34)} ${who.padEnd(30)} ${detail} (${((now() - t0) / 1000).toFixed(1)} s${busy})`);
  }

  if (pmQosFd !== null) closeSync(pmQosFd);
  const rows = summarize(scenarios, results);
  const report = printReport(rows, mask);
  const targets = checkTargets(rows, mask);
  const loads = results.map((r) => r.otherLoadCores).filter((v) => Number.isFinite(v));
  if (loads.length > 0) {
    const busyNote = `Other processes used a median ${median(loads).toFixed(2)} cores (max ${Math.max(...loads).toFixed(2)}) of the ${os.cpus().length} while pairs were measured ("busy" column)`;
    console.log(`\n${busyNote}${median(loads) > 0.25 ? ': the machine was shared, treat the figures with care.' : '.'}`);
  }
  console.log(report);
  console.log(`\nTargets (bench/README.md; every ratio to ${LABELS[BASE]}, higher is better; ratios within ±20% are noise on this machine):`);
  for (const t of targets) console.log(`  ${t.met ? 'met    ' : 'NOT MET'}  ${t.target}: ${t.detail}`);
  const failed = results.filter((r) => r.failed);
  if (failed.length > 0) console.log(`\n${failed.length} trial(s) failed: ${failed.map((r) => `${r.id} (${r.error})`).join('; ')}`);

  const date = new Date();
  const resultsDir = path.join(here, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `bench-${date.toISOString().replace(/[:.]/g, '-')}${quick ? '-quick' : ''}.json`);
  const json = {
    date: date.toISOString(),
    command: `node bench/run.mjs ${argv.join(' ')}`.trim(),
    durationSeconds: (now() - started) / 1000,
    config,
    environment: {
      node: process.version,
      platform: `${os.platform()} ${os.release()}`,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? null,
      library: path.relative(root, lib) || lib,
      libraryB: libB === null ? null : path.relative(root, libB) || libB,
      commit: gitCommit(),
      bufferutil,
      undiciWebSocketStream: undiciStream,
      childEnv: CHILD_ENV,
    },
    rows,
    targets,
    mask,
    trials: results,
    report,
  };
  writeFileSync(file, JSON.stringify(json, null, 2) + '\n');
  console.log(`\nbench: ${trials.length} trials in ${fmtMs(now() - started)}; results in ${path.relative(root, file)}`);
  if (profDir !== null) console.log(`bench: CPU profiles in ${path.relative(root, profDir)}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
