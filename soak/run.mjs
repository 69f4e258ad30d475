// npm run soak [-- --quick] [-- --only churn,bulk] : soak scenarios against the library build, with
// the server in its own process and the clients in others, all on 127.0.0.1. Prints the figures of
// every scenario and exits non-zero if an invariant failed. See soak/README.md.
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { GiB, here, KiB, libraryEntry, MAX_ECHO_SIZE, MiB, root } from './common.mjs';

// ---------------------------------------------------------------------------------------------
// Options.

const SCENARIOS = ['echo', 'churn', 'bulk-c2s', 'bulk-s2c'];
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const value = (name, fallback) => {
  const i = argv.indexOf(name);
  if (i === -1) return fallback;
  if (i + 1 >= argv.length) usage(`${name} needs a value`);
  return argv[i + 1];
};
const number = (name, fallback) => {
  const raw = value(name, null);
  if (raw === null) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) usage(`${name} must be a positive number`);
  return n;
};

function usage(error) {
  const text = `usage: node soak/run.mjs [--quick] [--only NAMES] [options]
  --quick             scaled-down counts (under a minute): 100×50 echo, 1,000 churn, 64 MiB bulk
  --only NAMES        comma-separated scenarios: ${SCENARIOS.join(', ')}; a prefix picks several ("bulk")
  --connections N     echo: concurrent connections (default 1000, quick 100)
  --messages N        echo: messages per connection (default 200, quick 50)
  --max-size BYTES    echo: largest message, up to ${MAX_ECHO_SIZE} (default 16384)
  --churn N           churn: connections opened and closed (default 10000, quick 1000)
  --concurrency N     churn: connections at once, over all client processes (default 100)
  --clients N         client processes for echo and churn (default 2)
  --rounds N          echo: rounds of all connections (default 3); churn: the connections in N batches (default 3)
  --bytes MIB         bulk: MiB moved in each direction (default 1024, quick 64)
  --read-rate MIBS    bulk: the slow reader's rate cap in MiB/s (default 128)
  --close-timeout MS  the closeTimeout option of every client and server (default 30000; the library's is 5000)
  --deflate           echo and churn with permessage-deflate negotiated
  SOAK_LIB=DIR        the library build to load (default dist/esm), relative to the repository root`;
  if (error) {
    console.error(`soak: ${error}\n${text}`);
    process.exit(2);
  }
  console.log(text);
  process.exit(0);
}
if (flag('--help') || flag('-h')) usage();
for (const arg of argv) {
  if (arg.startsWith('--') && !['--quick', '--deflate', '--only', '--connections', '--messages', '--max-size', '--churn', '--concurrency', '--clients', '--rounds', '--bytes', '--read-rate', '--close-timeout'].includes(arg)) {
    usage(`unknown option ${arg}`);
  }
}

const quick = flag('--quick');
const only = value('--only', null);
const selected = only === null ? SCENARIOS : SCENARIOS.filter((name) => only.split(',').some((wanted) => wanted !== '' && name.startsWith(wanted.trim())));
if (selected.length === 0) usage(`--only ${only} picks no scenario`);

const config = {
  quick,
  deflate: flag('--deflate'),
  clients: Math.floor(number('--clients', 2)),
  rounds: Math.floor(number('--rounds', 3)),
  // The soak checks what arrives and what leaks, not latency: on a starved machine an event loop
  // can lag for seconds, and the library's 5 s close timeout then turns clean closes into 1006.
  closeTimeout: number('--close-timeout', 30_000),
  echo: {
    connections: Math.floor(number('--connections', quick ? 100 : 1000)),
    messages: Math.floor(number('--messages', quick ? 50 : 200)),
    maxSize: Math.min(MAX_ECHO_SIZE, Math.floor(number('--max-size', 16 * KiB))),
    openConcurrency: 100,
    idleTimeoutMs: quick ? 10_000 : 60_000,
    timeoutMs: quick ? 120_000 : 300_000,
    warmConnections: 10,
    warmMessages: 20,
  },
  churn: {
    connections: Math.floor(number('--churn', quick ? 1000 : 10_000)),
    concurrency: Math.floor(number('--concurrency', 100)),
    maxSize: 1024,
    timeoutMs: quick ? 120_000 : 300_000,
    warmConnections: 50,
  },
  bulk: {
    bytes: Math.floor(number('--bytes', quick ? 64 : 1024) * MiB),
    minSize: 64 * KiB,
    maxSize: MiB,
    readRate: number('--read-rate', 128) * MiB,
    readEvery: 4,
    sampleEvery: quick ? 16 : 128,
    warmBytes: 8 * MiB,
    idleTimeoutMs: 60_000,
    timeoutMs: quick ? 120_000 : 300_000,
  },
};
// The soak's own deadline for a close handshake: beyond the library's (close frame, then TCP close).
config.closeWaitMs = 2 * config.closeTimeout + 10_000;
config.churn.connectionTimeoutMs = config.closeWaitMs + 20_000;

/**
 * The stated bounds (see soak/README.md, "What is checked").
 * - rssReturnSlack: server RSS after everything closed and a forced GC, over its start. What stays
 *   is V8's grown young generation and old-space pages (heapTotal) and glibc's free lists; the
 *   heap, ArrayBuffer and handle checks below catch a real leak long before this would.
 * - roundGrowthSlack: server RSS after the last round over RSS after round 2 (round 1 if there are
 *   only two): the first round grows V8's young generation and the allocator's pools, after that
 *   RSS must be steady. A native leak of 16 KiB per connection would fail it.
 * - heapReturnSlack / arrayBufferReturnSlack: live JS heap and ArrayBuffer memory after GC, over start.
 * - bulkPeakSlack: a bulk reader's RSS peak over its start. Every message is a new Uint8Array, and
 *   V8 collects unreachable ArrayBuffers only once about 64 MiB of them were allocated since the
 *   last GC: garbage alone takes up to 64 MiB, V8's young generation up to 32 MiB more. A socket
 *   that kept flowing past a full readable would queue hundreds of MiB (the writer is faster).
 * - bulkLiveSlack: memory still live after a forced GC, sampled while the reader lags: the readable's
 *   1 MiB high-water mark, a message being assembled (up to 1 MiB) and socket buffers.
 */
const BOUNDS = {
  rssReturnSlack: 80 * MiB,
  roundGrowthSlack: 16 * MiB,
  heapReturnSlack: 4 * MiB,
  arrayBufferReturnSlack: 4 * MiB,
  bulkPeakSlack: 96 * MiB,
  bulkLiveSlack: 8 * MiB,
};

// ---------------------------------------------------------------------------------------------
// Child processes.

const CHILD_ENV = { ...process.env };

/** Forks soak/<script> with --expose-gc; resolves once it is ready, with call(cmd, args, timeoutMs) and stop(). */
function startChild(script, name) {
  const child = fork(path.join(here, script), [], {
    execArgv: ['--expose-gc'],
    env: CHILD_ENV,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
  const pending = new Map();
  let nextId = 1;
  let exited = null;
  const exit = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exited = signal ?? code;
      for (const { reject } of pending.values()) reject(new Error(`${name} exited (${exited}) during a call`));
      pending.clear();
      resolve(exited);
    });
  });
  const ready = new Promise((resolve, reject) => {
    child.on('message', (message) => {
      if (message?.ready) resolve();
      const call = message?.rpc === undefined ? undefined : pending.get(message.rpc);
      if (call === undefined) return;
      pending.delete(message.rpc);
      if (message.error !== undefined) call.reject(new Error(`${name}: ${message.error}`));
      else call.resolve(message.result);
    });
    child.once('exit', () => reject(new Error(`${name} exited before it was ready`)));
  });
  const handle = {
    name,
    pid: child.pid,
    call(cmd, args = {}, timeoutMs = 30_000) {
      if (exited !== null) return Promise.reject(new Error(`${name} has exited (${exited})`));
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${name}: ${cmd} gave no answer within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, {
          resolve: (result) => (clearTimeout(timer), resolve(result)),
          reject: (error) => (clearTimeout(timer), reject(error)),
        });
        child.send({ rpc: id, cmd, args });
      });
    },
    /** Asks the child to exit; kills it (this child only, by its pid) if it has not within 3 s. */
    async stop() {
      if (exited !== null) return;
      child.send({ rpc: 0, cmd: 'exit' }, () => {});
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exit;
      clearTimeout(timer);
    },
  };
  return ready.then(() => handle);
}

async function startChildren(scripts) {
  const started = await Promise.allSettled(scripts.map(([script, name]) => startChild(script, name)));
  const children = started.filter((s) => s.status === 'fulfilled').map((s) => s.value);
  const failed = started.find((s) => s.status === 'rejected');
  if (failed !== undefined) {
    await Promise.all(children.map((c) => c.stop()));
    throw failed.reason;
  }
  return children;
}

// ---------------------------------------------------------------------------------------------
// Figures.

const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
const fmtMiB = (bytes) => `${(bytes / MiB).toFixed(1)} MiB`;
function fmtBytes(bytes) {
  if (bytes >= GiB) return `${(bytes / GiB).toFixed(2)} GiB`;
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(1)} MiB`;
  if (bytes >= KiB) return `${(bytes / KiB).toFixed(1)} KiB`;
  return `${bytes} B`;
}
const fmtSeconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
const fmtDelta = (bytes) => `${bytes >= 0 ? '+' : '−'}${fmtMiB(Math.abs(bytes))}`;

class Report {
  constructor(name, title) {
    this.name = name;
    this.title = title;
    this.checks = [];
    this.lines = [];
    this.row = { scenario: name };
  }
  line(text) {
    this.lines.push(text);
  }
  check(label, ok, detail = '') {
    this.checks.push({ label, ok: Boolean(ok), detail });
  }
  get failures() {
    return this.checks.filter((c) => !c.ok).length;
  }
  print() {
    console.log(`\n== ${this.name}: ${this.title}`);
    for (const text of this.lines) console.log(`   ${text}`);
    for (const c of this.checks) console.log(`   [${c.ok ? ' ok ' : 'FAIL'}] ${c.label}${c.detail ? `: ${c.detail}` : ''}`);
  }
}

const sum = (items, key) => items.reduce((total, item) => total + (item[key] ?? 0), 0);
const shares = (total, parts) => Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));

/** The slowest close handshake seen by a client, and the worst event-loop lag of the server and the clients. */
function latencyLine(results, ends) {
  const close = Math.max(...results.map((r) => r.closeMsMax ?? 0));
  const serverLag = Math.max(...ends.map((e) => e.loopDelayMaxMs ?? 0));
  const clientLag = Math.max(...results.map((r) => r.loopDelayMaxMs ?? 0));
  return `slowest close handshake ${fmtSeconds(close)} (closeTimeout ${fmtSeconds(config.closeTimeout)}); event loop lag at most ${fmtSeconds(serverLag)} in the server, ${fmtSeconds(clientLag)} in a client`;
}

/** The server's state once every connection is gone: the checks every scenario shares. */
function checkServerSettled(report, start, end, { reference = null, memoryReturn = true } = {}) {
  report.check('server: connectionCount back to 0, no TCP socket left', end.settled && end.connectionCount === 0 && (end.resources.TCPSocketWrap ?? 0) === 0,
    `connectionCount ${end.connectionCount}, active resources ${JSON.stringify(end.resources)}`);
  const timersBefore = start.resources.Timeout ?? 0;
  const timersAfter = end.resources.Timeout ?? 0;
  report.check('server: no timer left behind', timersAfter <= timersBefore, `Timeout handles ${timersBefore} at start, ${timersAfter} at end`);
  report.check('server: no error', end.errors.count === 0, end.errors.samples.join(' | '));
  if (!memoryReturn) return;
  const rss = end.memory.rss - start.memory.rss;
  report.check(`server: RSS back near its start after GC (within ${fmtMiB(BOUNDS.rssReturnSlack)})`, rss <= BOUNDS.rssReturnSlack,
    `start ${fmtMiB(start.memory.rss)}, peak ${fmtMiB(end.memory.maxRss)}, end ${fmtMiB(end.memory.rss)} (${fmtDelta(rss)}; V8 heap committed ${fmtDelta(end.memory.heapTotal - start.memory.heapTotal)})`);
  if (reference !== null) {
    const growth = end.memory.rss - reference.end.memory.rss;
    report.check(`server: RSS steady from round to round (last round's end within ${fmtMiB(BOUNDS.roundGrowthSlack)} of round ${reference.round}'s)`, growth <= BOUNDS.roundGrowthSlack,
      `${fmtMiB(reference.end.memory.rss)} → ${fmtMiB(end.memory.rss)} (${fmtDelta(growth)})`);
  }
  const heap = end.memory.heapUsed - start.memory.heapUsed;
  report.check(`server: live heap back near its start after GC (within ${fmtMiB(BOUNDS.heapReturnSlack)})`, heap <= BOUNDS.heapReturnSlack,
    `${fmtMiB(start.memory.heapUsed)} → ${fmtMiB(end.memory.heapUsed)} (${fmtDelta(heap)})`);
  const buffers = end.memory.arrayBuffers - start.memory.arrayBuffers;
  report.check(`server: ArrayBuffer memory back near its start after GC (within ${fmtMiB(BOUNDS.arrayBufferReturnSlack)})`, buffers <= BOUNDS.arrayBufferReturnSlack,
    `${fmtMiB(start.memory.arrayBuffers)} → ${fmtMiB(end.memory.arrayBuffers)} (${fmtDelta(buffers)})`);
}

/** The round whose end the last round's end is compared with: round 2, or round 1 if there are two. */
function steadyReference(ends) {
  if (ends.length < 2) return null;
  const index = ends.length >= 3 ? 1 : 0;
  return { round: index + 1, end: ends[index] };
}

function checkClientsSettled(report, results) {
  const left = results.reduce((n, r) => n + (r.resources?.TCPSocketWrap ?? 0), 0);
  report.check('clients: no TCP socket left', left === 0, `${left} left`);
  const errors = results.flatMap((r) => r.errors.samples);
  const count = sum(results.map((r) => r.errors), 'count');
  report.check('clients: no error', count === 0, errors.slice(0, 6).join(' | '));
}

function serverRssCells(report, start, end) {
  report.row.rssStart = start.memory.rss;
  report.row.rssPeak = end.memory.maxRss;
  report.row.rssEnd = end.memory.rss;
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

function serverOptions(deflate = config.deflate) {
  return { closeTimeout: config.closeTimeout, ...(deflate ? { perMessageDeflate: true } : {}) };
}

async function echoScenario() {
  const c = config.echo;
  const rounds = config.rounds;
  const report = new Report('echo', `${fmtInt(c.connections)} concurrent connections × ${fmtInt(c.messages)} numbered messages (1 B–${fmtBytes(c.maxSize)}, text and binary) through an echo server, ${rounds} round${rounds === 1 ? '' : 's'}${config.deflate ? ', permessage-deflate' : ''}`);
  const [server, ...clients] = await startChildren([['server.mjs', 'server'], ...Array.from({ length: config.clients }, (_, i) => ['client.mjs', `client ${i + 1}`])]);
  try {
    const { port } = await server.call('start', { mode: 'echo', serverOptions: serverOptions() });
    const url = `ws://127.0.0.1:${port}/echo`;
    const common = { url, deflate: config.deflate, closeTimeout: config.closeTimeout, maxSize: c.maxSize, idleTimeoutMs: c.idleTimeoutMs, closeTimeoutMs: config.closeWaitMs, openTimeoutMs: 30_000 };
    // Warm-up (code loaded and compiled on both sides), then the server's start figures.
    await clients[0].call('open', { ...common, first: 10_000_000, count: c.warmConnections, concurrency: c.warmConnections });
    await clients[0].call('echo', { ...common, messages: c.warmMessages }, c.timeoutMs);
    const start = await server.call('settle');
    await server.call('reset');

    const split = shares(c.connections, clients.length);
    const concurrency = Math.max(1, Math.floor(c.openConcurrency / clients.length));
    const opens = [];
    const results = [];
    const ends = [];
    let ms = 0;
    for (let round = 0; round < rounds; round++) {
      const t0 = performance.now();
      const roundOpens = await Promise.all(clients.map((client, i) => client.call('open', { ...common, first: round * c.connections + split.slice(0, i).reduce((a, b) => a + b, 0), count: split[i], concurrency }, c.timeoutMs)));
      const openMs = performance.now() - t0;
      const open = await server.call('stats');
      const t1 = performance.now();
      const roundResults = await Promise.all(clients.map((client) => client.call('echo', { ...common, messages: c.messages }, c.timeoutMs)));
      const roundMs = performance.now() - t1;
      const end = await server.call('settle', { timeoutMs: 15_000 });
      const opened = sum(roundOpens, 'opened');
      const received = sum(roundResults, 'received');
      const bytes = sum(roundResults, 'bytesOut');
      report.line(`round ${round + 1}: opened ${fmtInt(opened)} in ${fmtSeconds(openMs)} (${fmtInt(opened / (openMs / 1000))}/s), server held ${fmtInt(open.connectionCount)} at once (RSS ${fmtMiB(open.memory.rss)} with all idle); ` +
        `${fmtInt(received)} echoes, ${fmtBytes(bytes)} each way in ${fmtSeconds(roundMs)} (${fmtInt(received / (roundMs / 1000))} msg/s); server RSS after close + GC ${fmtMiB(end.memory.rss)}`);
      report.check(`round ${round + 1}: all ${fmtInt(c.connections)} connections open at once on the server`, open.connectionCount === c.connections, `${open.connectionCount}`);
      opens.push(...roundOpens);
      results.push(...roundResults);
      ends.push(end);
      ms += roundMs;
    }
    const end = ends.at(-1);
    const expected = rounds * c.connections;
    const opened = sum(opens, 'opened');
    const t = Object.fromEntries(['attempted', 'resolved', 'rejected', 'received', 'bytesOut', 'bytesIn', 'lost', 'duplicated', 'reordered', 'corrupt', 'crossed', 'closedClean', 'closedUnclean'].map((k) => [k, sum(results, k)]));
    report.line(`in all: ${fmtInt(t.attempted)} messages written, ${fmtInt(t.resolved)} writes resolved, ${fmtInt(t.received)} echoes received (${fmtBytes(t.bytesIn)}); the server echoed ${fmtInt(end.messages)}`);
    report.line(`exchange time ${fmtSeconds(ms)}: ${fmtInt(t.received / (ms / 1000))} messages/s, ${(t.bytesOut / MiB / (ms / 1000)).toFixed(1)} MiB/s each way`);
    report.line(latencyLine(results, ends));
    report.line(`server RSS: start ${fmtMiB(start.memory.rss)}, peak ${fmtMiB(end.memory.maxRss)}, end ${fmtMiB(end.memory.rss)} (after GC); heap used ${fmtMiB(start.memory.heapUsed)} → ${fmtMiB(end.memory.heapUsed)}, ` +
      `V8 heap committed ${fmtMiB(start.memory.heapTotal)} → ${fmtMiB(end.memory.heapTotal)}, ArrayBuffers ${fmtMiB(start.memory.arrayBuffers)} → ${fmtMiB(end.memory.arrayBuffers)}; client RSS peak ${results.slice(-clients.length).map((r) => fmtMiB(r.memory.maxRss)).join(', ')}`);
    report.check('every connection opened', opened === expected && sum(opens, 'failed') === 0, `${fmtInt(opened)}/${fmtInt(expected)}${opens.flatMap((o) => o.errors.samples).slice(0, 3).map((e) => ` ${e}`).join('')}`);
    report.check('every write resolved', t.resolved === expected * c.messages && t.rejected === 0, `${fmtInt(t.resolved)}/${fmtInt(expected * c.messages)}, ${t.rejected} rejected`);
    report.check('every resolved write echoed exactly once, in order', t.lost + t.duplicated + t.reordered + t.corrupt + t.crossed === 0 && t.received === t.attempted,
      `lost ${t.lost}, duplicated ${t.duplicated}, out of order ${t.reordered}, corrupt ${t.corrupt}, from another connection ${t.crossed}, received ${fmtInt(t.received)}/${fmtInt(t.attempted)}`);
    report.check('the server saw every message once', end.messages === t.attempted && end.writesRejected === 0, `${fmtInt(end.messages)}/${fmtInt(t.attempted)}, ${end.writesRejected} echo writes rejected`);
    report.check('every client closed resolved cleanly (1000 + reason after close(), 1005 after writer.close())', t.closedClean === expected && t.closedUnclean === 0, `${fmtInt(t.closedClean)} clean, ${t.closedUnclean} not`);
    report.check('every server-side closed resolved cleanly', end.closedClean === expected && end.closedUnclean === 0 && end.openFailed === 0, `${fmtInt(end.closedClean)} clean, ${end.closedUnclean} not, codes ${JSON.stringify(end.closeCodes)}`);
    checkServerSettled(report, start, end, { reference: steadyReference(ends) });
    checkClientsSettled(report, [...opens, ...results]);
    serverRssCells(report, start, end);
    Object.assign(report.row, {
      connections: rounds === 1 ? fmtInt(c.connections) : `${fmtInt(c.connections)} ×${rounds}`,
      messages: t.received,
      bytes: t.bytesOut,
      ms,
      throughput: `${fmtInt(t.received / (ms / 1000))} msg/s, ${(t.bytesOut / MiB / (ms / 1000)).toFixed(1)} MiB/s`,
      clientRss: Math.max(...results.map((r) => r.memory.maxRss)),
      failures: t.lost + t.duplicated + t.reordered + t.corrupt + t.crossed + t.rejected + t.closedUnclean + (expected - opened) + end.closedUnclean,
    });
  } finally {
    await Promise.all([server, ...clients].map((child) => child.stop()));
  }
  return report;
}

async function churnScenario() {
  const c = config.churn;
  const rounds = config.rounds;
  const report = new Report('churn', `${fmtInt(c.connections)} connections opened and closed, ${c.concurrency} at a time, one echo each, in ${rounds} batch${rounds === 1 ? '' : 'es'}${config.deflate ? ', permessage-deflate' : ''}`);
  const [server, ...clients] = await startChildren([['server.mjs', 'server'], ...Array.from({ length: config.clients }, (_, i) => ['client.mjs', `client ${i + 1}`])]);
  try {
    const { port } = await server.call('start', { mode: 'echo', serverOptions: serverOptions() });
    const url = `ws://127.0.0.1:${port}/churn`;
    const common = { url, deflate: config.deflate, closeTimeout: config.closeTimeout, maxSize: c.maxSize, connectionTimeoutMs: c.connectionTimeoutMs };
    await Promise.all(clients.map((client, i) => client.call('churn', { ...common, first: 10_000_000 + i * c.warmConnections, count: c.warmConnections, concurrency: 10 }, c.timeoutMs)));
    const start = await server.call('settle');
    await server.call('reset');

    const batches = shares(c.connections, rounds);
    const concurrency = shares(c.concurrency, clients.length);
    const results = [];
    const ends = [];
    let ms = 0;
    let first = 0;
    for (let round = 0; round < rounds; round++) {
      const split = shares(batches[round], clients.length);
      const t0 = performance.now();
      const roundResults = await Promise.all(clients.map((client, i) => client.call('churn', { ...common, first: first + split.slice(0, i).reduce((a, b) => a + b, 0), count: split[i], concurrency: Math.max(1, concurrency[i]) }, c.timeoutMs)));
      const roundMs = performance.now() - t0;
      first += batches[round];
      const end = await server.call('settle', { timeoutMs: 15_000 });
      report.line(`batch ${round + 1}: ${fmtInt(batches[round])} connections in ${fmtSeconds(roundMs)} (${fmtInt(batches[round] / (roundMs / 1000))}/s), ${sum(roundResults, 'failed')} failures; server RSS after GC ${fmtMiB(end.memory.rss)}, connectionCount ${end.connectionCount}`);
      results.push(...roundResults);
      ends.push(end);
      ms += roundMs;
    }
    const end = ends.at(-1);
    const t = Object.fromEntries(['opened', 'failed', 'echoed', 'mismatched', 'closedClean', 'bytes'].map((k) => [k, sum(results, k)]));
    const rate = c.connections / (ms / 1000);
    report.line(`in all: ${fmtInt(c.connections)} connections in ${fmtSeconds(ms)}: ${fmtInt(rate)} connections/s (open, one echo, close), ${fmtInt(t.failed)} failures; the server accepted ${fmtInt(end.accepted)}`);
    report.line(latencyLine(results, ends));
    report.line(`server RSS: start ${fmtMiB(start.memory.rss)}, peak ${fmtMiB(end.memory.maxRss)}, end ${fmtMiB(end.memory.rss)} (after GC); heap used ${fmtMiB(start.memory.heapUsed)} → ${fmtMiB(end.memory.heapUsed)}, ` +
      `V8 heap committed ${fmtMiB(start.memory.heapTotal)} → ${fmtMiB(end.memory.heapTotal)}, ArrayBuffers ${fmtMiB(start.memory.arrayBuffers)} → ${fmtMiB(end.memory.arrayBuffers)}`);
    report.check('no failure (every connection opened, echoed its message and closed cleanly)', t.failed === 0 && t.closedClean === c.connections && t.echoed === c.connections,
      `${t.failed} failed, ${fmtInt(t.echoed)} echoed, ${t.mismatched} mismatched, ${fmtInt(t.closedClean)} closed cleanly`);
    report.check('every server-side closed resolved cleanly', end.accepted === c.connections && end.closedClean === c.connections && end.closedUnclean === 0,
      `${fmtInt(end.accepted)} accepted, ${fmtInt(end.closedClean)} clean, ${end.closedUnclean} not, codes ${JSON.stringify(end.closeCodes)}`);
    checkServerSettled(report, start, end, { reference: steadyReference(ends) });
    checkClientsSettled(report, results);
    serverRssCells(report, start, end);
    Object.assign(report.row, {
      connections: c.connections,
      messages: t.echoed,
      bytes: t.bytes,
      ms,
      throughput: `${fmtInt(rate)} conn/s`,
      clientRss: Math.max(...results.map((r) => r.memory.maxRss)),
      failures: t.failed + end.closedUnclean,
    });
  } finally {
    await Promise.all([server, ...clients].map((child) => child.stop()));
  }
  return report;
}

/** One direction of the bulk scenario. c2s: the client writes fast, the server reads slowly; s2c: the reverse. */
async function bulkScenario(direction) {
  const c = config.bulk;
  const c2s = direction === 'c2s';
  const name = `bulk-${direction}`;
  const report = new Report(name, `${c2s ? 'client' : 'server'} writes ${fmtBytes(c.bytes)} in ${fmtBytes(c.minSize)}–${fmtBytes(c.maxSize)} messages as fast as backpressure allows; the ${c2s ? 'server' : 'client'} reads at most ${fmtInt(c.readRate / MiB)} MiB/s (a timer every ${c.readEvery} messages)`);
  const [server, client] = await startChildren([['server.mjs', 'server'], ['client.mjs', 'client']]);
  try {
    const seed = 0xb01c;
    const { port } = await server.call('start', { mode: c2s ? 'slow-sink' : 'fast-source', serverOptions: serverOptions(false), readRate: c.readRate, readEvery: c.readEvery, sampleEvery: c.sampleEvery, minSize: c.minSize, maxSize: c.maxSize, seed });
    const url = (bytes) => `ws://127.0.0.1:${port}/bulk?bytes=${bytes}`;
    const send = (bytes) => client.call('bulkSend', { url: url(bytes), closeTimeout: config.closeTimeout, total: bytes, minSize: c.minSize, maxSize: c.maxSize, seed, closeTimeoutMs: config.closeWaitMs }, c.timeoutMs);
    const receive = (bytes) => client.call('bulkReceive', { url: url(bytes), closeTimeout: config.closeTimeout, readRate: c.readRate, readEvery: c.readEvery, sampleEvery: c.sampleEvery, idleTimeoutMs: c.idleTimeoutMs }, c.timeoutMs);
    // A small warm-up run, so that start figures hold the loaded and compiled code.
    await (c2s ? send(c.warmBytes) : receive(c.warmBytes));
    const start = await server.call('settle', { bulk: 1 });
    await server.call('reset');

    const t0 = performance.now();
    const moved = await (c2s ? send(c.bytes) : receive(c.bytes));
    const ms = performance.now() - t0;
    const end = await server.call('settle', { timeoutMs: 15_000, bulk: 1 });
    const serverSide = end.bulk[0] ?? { messages: 0, bytes: 0, checksum: '-', ms: 0 };
    const sent = c2s ? moved : serverSide;
    const got = c2s ? serverSide : moved;
    const readerMs = got.ms;
    report.line(`${fmtInt(sent.messages)} messages, ${fmtBytes(sent.bytes)} written (checksum ${sent.checksum}); ${fmtInt(got.messages)} messages, ${fmtBytes(got.bytes)} read (checksum ${got.checksum})`);
    report.line(`${fmtSeconds(ms)} in all, reader ${(got.bytes / MiB / (readerMs / 1000)).toFixed(1)} MiB/s; the writer waited on writer.ready ${fmtSeconds(sent.readyWaitMs ?? 0)} of its ${fmtSeconds(sent.ms)}`);
    if (c2s) {
      const peak = end.memory.maxRss - start.memory.rss;
      report.line(`server (reader) RSS: start ${fmtMiB(start.memory.rss)}, peak ${fmtMiB(end.memory.maxRss)} (${fmtDelta(peak)}), end ${fmtMiB(end.memory.rss)} (after GC); client (writer) RSS peak ${fmtMiB(moved.memory.maxRss)}`);
      report.check(`server RSS peak within ${fmtMiB(BOUNDS.bulkPeakSlack)} of its start`, peak <= BOUNDS.bulkPeakSlack, `${fmtMiB(start.memory.rss)} → peak ${fmtMiB(end.memory.maxRss)} (${fmtDelta(peak)})`);
      report.row.clientRss = moved.memory.maxRss;
      report.check(`server: memory still live after a forced GC within ${fmtMiB(BOUNDS.bulkLiveSlack)} (sampled every ${c.sampleEvery} messages)`, got.liveMax <= BOUNDS.bulkLiveSlack, `at most ${fmtMiB(got.liveMax)} over the reader's start`);
    } else {
      const peak = moved.peakRss - moved.startMemory.rss;
      report.line(`client (reader) RSS: start ${fmtMiB(moved.startMemory.rss)}, peak ${fmtMiB(moved.peakRss)} (${fmtDelta(peak)}), end ${fmtMiB(moved.memory.rss)} (after GC); server (writer) RSS start ${fmtMiB(start.memory.rss)}, peak ${fmtMiB(end.memory.maxRss)}, end ${fmtMiB(end.memory.rss)}`);
      report.check(`client RSS peak within ${fmtMiB(BOUNDS.bulkPeakSlack)} of its start`, peak <= BOUNDS.bulkPeakSlack, `${fmtMiB(moved.startMemory.rss)} → peak ${fmtMiB(moved.peakRss)} (${fmtDelta(peak)})`);
      report.row.clientRss = `${fmtMiB(moved.startMemory.rss)} / ${fmtMiB(moved.peakRss)} / ${fmtMiB(moved.memory.rss)}`;
      report.check(`client: memory still live after a forced GC within ${fmtMiB(BOUNDS.bulkLiveSlack)} (sampled every ${c.sampleEvery} messages)`, got.liveMax <= BOUNDS.bulkLiveSlack, `at most ${fmtMiB(got.liveMax)} over the reader's start`);
    }
    report.check('every byte arrived, in order (count and checksum match)', sent.bytes === c.bytes && got.bytes === sent.bytes && got.messages === sent.messages && got.checksum === sent.checksum,
      `${fmtInt(got.bytes)}/${fmtInt(sent.bytes)} bytes of ${fmtInt(c.bytes)}, ${got.messages}/${sent.messages} messages, checksum ${got.checksum} vs ${sent.checksum}`);
    const writesRejected = c2s ? moved.rejected : end.writesRejected;
    report.check('every write resolved', writesRejected === 0, `${writesRejected} rejected`);
    const closed = moved.closed;
    report.check('closed resolved cleanly on both sides (1005 after writer.close())', closed?.closeCode === 1005 && end.closedClean === 1 && end.closedUnclean === 0,
      `client ${closed === null ? 'rejected' : closed.closeCode}, server ${end.closedClean} clean, ${end.closedUnclean} not`);
    checkServerSettled(report, start, end, { memoryReturn: false });
    if (!c2s) checkClientsSettled(report, [moved]);
    else report.check('client: no error', moved.errors.count === 0, moved.errors.samples.join(' | '));
    serverRssCells(report, start, end);
    Object.assign(report.row, {
      connections: 1,
      messages: got.messages,
      bytes: got.bytes,
      ms,
      throughput: `${(got.bytes / MiB / (readerMs / 1000)).toFixed(1)} MiB/s`,
      failures: (got.checksum === sent.checksum && got.bytes === c.bytes ? 0 : 1) + writesRejected + end.closedUnclean,
    });
  } finally {
    await Promise.all([server, client].map((child) => child.stop()));
  }
  return report;
}

const RUN = {
  echo: echoScenario,
  churn: churnScenario,
  'bulk-c2s': () => bulkScenario('c2s'),
  'bulk-s2c': () => bulkScenario('s2c'),
};

// ---------------------------------------------------------------------------------------------
// Main.

if (!existsSync(libraryEntry())) {
  console.error(`soak: no library build at ${libraryEntry()}: run \`npm run soak\` (which builds dist/), or build one with\n` +
    '  npx tsc -p tsconfig.json --outDir .build/soak-dist && SOAK_LIB=.build/soak-dist node soak/run.mjs');
  process.exit(2);
}
const started = new Date();
console.log(`soak ${quick ? '(quick) ' : ''}${started.toISOString()}: ${selected.join(', ')}`);
console.log(`library ${path.relative(root, libraryEntry())}, closeTimeout ${config.closeTimeout} ms, node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
const reports = [];
for (const name of selected) {
  const t0 = performance.now();
  let report;
  try {
    report = await RUN[name]();
  } catch (error) {
    report = new Report(name, 'did not finish');
    report.check('the scenario ran to its end', false, String(error?.message ?? error));
  }
  report.line(`(scenario took ${fmtSeconds(performance.now() - t0)})`);
  report.print();
  reports.push(report);
}

const cell = (v, f) => (v === undefined ? '–' : typeof v === 'string' ? v : f(v));
console.log(`\nsoak results, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC${quick ? ', --quick' : ''}${config.deflate ? ', --deflate' : ''}:\n`);
const header = ['scenario', 'connections', 'messages', 'bytes', 'duration', 'throughput', 'server RSS start / peak / end', 'client RSS', 'failures', 'result'];
const rows = reports.map((r) => [
  r.name,
  cell(r.row.connections, fmtInt),
  cell(r.row.messages, fmtInt),
  cell(r.row.bytes, fmtBytes),
  cell(r.row.ms, fmtSeconds),
  cell(r.row.throughput, String),
  r.row.rssStart === undefined ? '–' : `${fmtMiB(r.row.rssStart)} / ${fmtMiB(r.row.rssPeak)} / ${fmtMiB(r.row.rssEnd)}`,
  cell(r.row.clientRss, (v) => `peak ${fmtMiB(v)}`),
  cell(r.row.failures, fmtInt),
  r.failures === 0 ? 'pass' : `FAIL (${r.failures} check${r.failures === 1 ? '' : 's'})`,
]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
const printRow = (row) => console.log(`| ${row.map((v, i) => v.padEnd(widths[i])).join(' | ')} |`);
printRow(header);
console.log(`| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`);
rows.forEach(printRow);
const failed = reports.filter((r) => r.failures > 0);
console.log(failed.length === 0 ? '\nall invariants held' : `\nFAILED: ${failed.map((r) => r.name).join(', ')}`);
process.exit(failed.length === 0 ? 0 : 1);
