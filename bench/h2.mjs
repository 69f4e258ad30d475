// npm run bench:h2 [-- --quick] : WebSockets over HTTP/2 (RFC 8441) against the same library over
// HTTP/1.1 — ours against ours, on 127.0.0.1, without TLS (h2c), server and client in separate
// processes (forked from this script), the two transports interleaved, fresh processes for every
// measurement. Measures:
//   - throughput: 16 B and 64 KiB binary messages, client→server and server→client, counted at the
//     receiver over a timed round after a warm-up (the sender awaits writer.ready, as a user does);
//   - handshakes: open + close cycles per second, one at a time and 50 at once (over HTTP/2 each
//     WebSocket is a stream of one shared session; over HTTP/1.1 a TCP connection each).
// Reports medians over the repetitions, CPU per message on each side, and HTTP/2 ÷ HTTP/1.1.
import { fork } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
// BENCH_LIB=DIR measures another build (a copy, so that rebuilding meanwhile cannot break a run).
const libraryUrl = process.env.BENCH_LIB
  ? new URL(path.join(path.resolve(process.env.BENCH_LIB), 'index.js'), 'file://').href
  : new URL('../dist/esm/index.js', import.meta.url).href;
const now = () => performance.timeOrigin + performance.now();
const cpuNow = () => {
  const { user, system } = process.cpuUsage();
  return user + system;
};

/** Messages received (or handshakes completed) in a child, so far. */
const counter = { count: 0 };

if (process.argv[2] === '--child') {
  await child(JSON.parse(process.argv[3]));
} else {
  await main();
}

// ---------------------------------------------------------------------------------------------
// The parent: schedules the trials, interleaving the transports, and prints the table.

async function main() {
  const argv = process.argv.slice(2);
  const value = (name, fallback) => {
    const i = argv.indexOf(name);
    return i === -1 ? fallback : Number(argv[i + 1]);
  };
  if (argv.includes('--help')) {
    console.log(`usage: node bench/h2.mjs [--quick] [--reps N] [--warm MS] [--round MS] [--only REGEX]
  BENCH_LIB=DIR  measure another build of the library (default dist/esm)
  --quick      one repetition, shorter rounds
  --reps N     repetitions of every measurement, fresh processes each (default 3)
  --warm MS    warm-up before each measured round (default 1000); --round MS: its length (default 1000)
  --only RE    only the scenarios whose name matches RE ("c2s", "64 KiB", "handshakes")`);
    process.exit(0);
  }
  const quick = argv.includes('--quick');
  const config = { reps: value('--reps', quick ? 1 : 3), warmMs: value('--warm', quick ? 600 : 1000), roundMs: value('--round', quick ? 500 : 1000) };
  const only = argv.includes('--only') ? new RegExp(argv[argv.indexOf('--only') + 1]) : null;
  const allScenarios = [
    { id: 'c2s 16 B', kind: 'c2s', size: 16 },
    { id: 'c2s 64 KiB', kind: 'c2s', size: 64 * 1024 },
    { id: 's2c 16 B', kind: 's2c', size: 16 },
    { id: 's2c 64 KiB', kind: 's2c', size: 64 * 1024 },
    { id: 'handshakes, sequential', kind: 'handshakes', concurrency: 1 },
    { id: 'handshakes, 50 at once', kind: 'handshakes', concurrency: 50 },
  ];
  const scenarios = allScenarios.filter((scenario) => only === null || only.test(scenario.id));
  console.log(`node ${process.version}, reps ${config.reps}, warm-up ${config.warmMs} ms, round ${config.roundMs} ms`);
  const results = new Map();
  for (let rep = 0; rep < config.reps; rep++) {
    for (const scenario of scenarios) {
      // Interleaved, and the order flips every repetition.
      const order = rep % 2 === 0 ? ['http1', 'http2'] : ['http2', 'http1'];
      for (const transport of order) {
        const result = await trial({ ...scenario, ...config, transport });
        const key = `${scenario.id}|${transport}`;
        if (!results.has(key)) results.set(key, []);
        results.get(key).push(result);
        process.stderr.write(`  ${scenario.id.padEnd(24)} ${transport}: ${format(result.rate)}/s\n`);
      }
    }
  }
  const median = (values) => {
    const sorted = [...values].sort((a, b) => a - b);
    const middle = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  };
  console.log('');
  console.log('| scenario | HTTP/1.1 | HTTP/2 | HTTP/2 ÷ HTTP/1.1 | CPU µs/msg client (1.1 / 2) | CPU µs/msg server (1.1 / 2) |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const scenario of scenarios) {
    const one = results.get(`${scenario.id}|http1`);
    const two = results.get(`${scenario.id}|http2`);
    const rate1 = median(one.map((r) => r.rate));
    const rate2 = median(two.map((r) => r.rate));
    const unit = scenario.kind === 'handshakes' ? 'handshakes' : scenario.size >= 1024 ? 'msgs' : 'msgs';
    const cpu = (rows, side) => median(rows.map((r) => r[side]));
    const spread = (rows) => (rows.length > 1 ? ` (${format(Math.min(...rows.map((r) => r.rate)))}–${format(Math.max(...rows.map((r) => r.rate)))})` : '');
    console.log(
      `| ${scenario.id} | ${format(rate1)} ${unit}/s${spread(one)} | ${format(rate2)} ${unit}/s${spread(two)} | ${(rate2 / rate1).toFixed(2)} | ` +
        `${cpu(one, 'clientCpu').toFixed(1)} / ${cpu(two, 'clientCpu').toFixed(1)} | ${cpu(one, 'serverCpu').toFixed(1)} / ${cpu(two, 'serverCpu').toFixed(1)} |`,
    );
  }
}

function format(rate) {
  return rate >= 1e5 ? `${(rate / 1e3).toFixed(0)}k` : rate >= 1e4 ? `${(rate / 1e3).toFixed(1)}k` : rate.toFixed(0);
}

/** One measurement with a fresh server and client process. */
async function trial(job) {
  const env = { ...process.env, MALLOC_MMAP_THRESHOLD_: '33554432', MALLOC_TRIM_THRESHOLD_: '134217728' };
  const server = fork(fileURLToPath(import.meta.url), ['--child', JSON.stringify({ ...job, role: 'server' })], { env });
  try {
    const { port } = await message(server, 'listening');
    const client = fork(fileURLToPath(import.meta.url), ['--child', JSON.stringify({ ...job, role: 'client', port })], { env });
    try {
      const start = now() + 100;
      const measureFrom = start + job.warmMs;
      const measureTo = measureFrom + job.roundMs;
      const schedule = { cmd: 'run', start, measureFrom, measureTo };
      server.send(schedule);
      client.send(schedule);
      const [serverReport, clientReport] = await Promise.all([message(server, 'report'), message(client, 'report')]);
      // The receiver counts messages; for handshakes the client counts completed cycles.
      const counted = job.kind === 's2c' || job.kind === 'handshakes' ? clientReport : serverReport;
      const rate = counted.count / (counted.seconds || 1);
      const perMessage = (report) => (counted.count > 0 ? report.cpu / counted.count : 0);
      return { rate, clientCpu: perMessage(clientReport), serverCpu: perMessage(serverReport) };
    } finally {
      client.kill();
    }
  } finally {
    server.kill();
  }
}

function message(child, type) {
  return new Promise((resolve, reject) => {
    const onMessage = (m) => {
      if (m.type !== type) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(m);
    };
    const onExit = (code) => reject(new Error(`a ${type === 'listening' ? 'server' : 'child'} exited with ${code} before '${type}'`));
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

// ---------------------------------------------------------------------------------------------
// The children.

async function child(job) {
  const { WebSocketStream, WebSocketStreamServer } = await import(libraryUrl);
  const http2 = job.transport === 'http2';
  const schedule = await new Promise((resolve) => {
    process.on('message', (m) => m.cmd === 'run' && resolve(m));
    if (job.role === 'server') {
      const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', http2, acceptBacklog: 1024 });
      void server.listening.then(() => {
        process.send({ type: 'listening', port: server.address().port });
        void serve(server, job);
      });
    }
  });
  await sleepUntil(schedule.start);
  if (job.role === 'server') {
    // The server's part runs from serve(); here it only measures its CPU over the round.
    await sleepUntil(schedule.measureFrom);
    const cpu = cpuNow();
    const count = counter.count;
    await sleepUntil(schedule.measureTo);
    process.send({ type: 'report', count: counter.count - count, seconds: (schedule.measureTo - schedule.measureFrom) / 1000, cpu: cpuNow() - cpu });
    return;
  }
  const url = `ws://127.0.0.1:${job.port}/`;
  const options = { http2, perMessageDeflate: false };
  if (job.kind === 'handshakes') {
    const cycle = async () => {
      const stream = new WebSocketStream(url, options);
      await stream.opened;
      stream.close();
      await stream.closed;
      counter.count++;
    };
    let running = true;
    const workers = Array.from({ length: job.concurrency }, async () => {
      while (running) await cycle();
    });
    const report = await measure(schedule);
    running = false;
    await Promise.all(workers);
    process.send(report);
    return;
  }
  const stream = new WebSocketStream(url, options);
  const { readable, writable } = await stream.opened;
  if (job.kind === 'c2s') {
    const writer = writable.getWriter();
    const payload = new Uint8Array(job.size).fill(7);
    let running = true;
    void (async () => {
      for (let n = 1; running; n++) {
        await writer.ready;
        void writer.write(payload).catch(() => {});
        await yieldNowAndThen(n);
      }
    })();
    const report = await measure(schedule);
    running = false;
    process.send(report);
  } else {
    const reader = readable.getReader();
    void (async () => {
      for (;;) {
        const { done } = await reader.read();
        if (done) return;
        counter.count++;
      }
    })();
    process.send(await measure(schedule));
  }
}

/** Counts (counter.count) and CPU between the schedule's marks. */
async function measure(schedule) {
  await sleepUntil(schedule.measureFrom);
  const count = counter.count;
  const cpu = cpuNow();
  const from = now();
  await sleepUntil(schedule.measureTo);
  return { type: 'report', count: counter.count - count, seconds: (now() - from) / 1000, cpu: cpuNow() - cpu };
}

/** The server's side: counts what arrives (c2s), sends as fast as it may (s2c), or just accepts. */
async function serve(server, job) {
  const payload = new Uint8Array(job.size ?? 16).fill(9);
  for await (const peer of server.connections) {
    void (async () => {
      try {
        const { readable, writable } = await peer.opened;
        if (job.kind === 's2c') {
          const writer = writable.getWriter();
          for (let n = 1; ; n++) {
            await writer.ready;
            void writer.write(payload).catch(() => {});
            await yieldNowAndThen(n);
          }
        }
        for await (const _ of readable) counter.count++;
      } catch {
        // The client went away: the trial is over.
      }
    })();
  }
}

/** Writes the kernel takes at once never give the event loop a turn: give it one now and then. */
function yieldNowAndThen(n) {
  return (n & 255) === 0 ? new Promise((resolve) => setImmediate(resolve)) : undefined;
}

function sleepUntil(time) {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, time - now())));
}
