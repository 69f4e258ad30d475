// Turns a results file into the Markdown of bench/README.md's "Results" section: ratios only.
// usage: node bench/report-md.mjs bench/results/bench-….json
import { readFileSync } from 'node:fs';

const file = process.argv[2];
if (!file) {
  console.error('usage: node bench/report-md.mjs bench/results/bench-….json');
  process.exit(1);
}
const run = JSON.parse(readFileSync(file, 'utf8'));
const rows = run.rows;
if (run.config.baseline === undefined) {
  console.error(`${file} comes from a bench from before ws + bufferutil became the baseline: read its "report" field instead`);
  process.exit(1);
}
// In the order of the tables' columns.
const LABELS = {
  ours: 'websocketstream-node',
  'ours-rw': 'websocketstream-node (reader + writer)',
  'ours-b': 'websocketstream-node B',
  'ours-b-rw': 'websocketstream-node B (reader + writer)',
  'ws-bufferutil': 'ws + bufferutil',
  ws: 'ws',
  'undici-ws': 'undici WebSocket',
  'undici-wss': 'undici WebSocketStream',
  tcp: 'raw node:net',
  raw: 'raw client',
};
const HOLDS = {
  ours: 'a pending read',
  'ours-b': 'a pending read',
  'ours-rw': 'reader (pending read) + writer',
  'ours-b-rw': 'reader (pending read) + writer',
  ws: "a 'message' listener",
  'ws-bufferutil': "a 'message' listener",
  'undici-ws': "a 'message' listener",
  'undici-wss': 'a pending read',
};
const BASE = run.config.baseline;
const BASE_LABEL = LABELS[BASE];
const ratio = (v) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : `${v.toFixed(2)}×`);
const percent = (v) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : `${Math.round(v * 100)}%`);
const spread = (v) => (v === null || v === undefined ? '–' : `±${Math.round(v * 50)}%`);
const busy = (v) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(1));
const kb = (v) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : (v / 1000).toFixed(1));
const sizeOf = (size) => (size >= 1 << 20 ? `${size >> 20} MiB` : size >= 1024 ? `${size >> 10} KiB` : `${size} B`);
const out = [];
const line = (cells) => out.push(`| ${cells.join(' | ')} |`);
const head = (cells) => {
  line(cells);
  line(cells.map(() => '---'));
};
/** "ratio (CPU ratio)", both to the baseline, both higher-is-better. */
const pair = (r) => (r === undefined ? '–' : `${ratio(r.vsBase)} (${ratio(r.cpuVsBase)})`);

const env = run.environment;
const loads = run.trials.map((t) => t.otherLoadCores).filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
out.push(`Run of ${run.date.slice(0, 16).replace('T', ' ')} UTC: \`${run.command}\`, ${run.trials.length} trials in ${Math.round(run.durationSeconds)} s.`);
out.push(
  `Library ${env.library} at commit ${env.commit ?? '?'}; Node ${env.node}, ${env.cpus} × ${env.cpuModel}; bufferutil ${env.bufferutil ? 'native' : 'absent'}; ` +
    `${run.config.reps} repetitions (${run.config.newReps} for the server echo with many connections, the handshakes and the idle connections) × ${run.config.rounds} rounds of ${run.config.roundMs} ms after a ${run.config.warmMs} ms warm-up (${run.config.warmLargeMs} ms from 64 KiB); ` +
    `PM QoS ${run.config.pmQosHeld ? 'held' : 'not held'}.`,
);
if (loads.length > 0) {
  out.push(`Other processes used a median ${loads[loads.length >> 1].toFixed(2)} cores (max ${loads[loads.length - 1].toFixed(2)}) of the ${env.cpus} during the measured windows.`);
}
out.push(`Every ratio is to ${BASE_LABEL}, and higher is better.`);
out.push('');

// Throughput: one table per side, one row per scenario, one column per implementation.
for (const section of ['client', 'server']) {
  const sectionRows = rows.filter((r) => r.section === section && (r.kind === 'c2s' || r.kind === 's2c'));
  if (sectionRows.length === 0) continue;
  const order = Object.keys(LABELS);
  const impls = [...new Set(sectionRows.map((r) => r.impl))].filter((i) => i !== BASE).sort((a, b) => order.indexOf(a) - order.indexOf(b));
  out.push(
    section === 'client'
      ? `**Client side**: throughput of each client against a common ${BASE_LABEL} server, as a ratio to the ${BASE_LABEL} client. In brackets: its CPU per message / this client's. "ws" is ws without bufferutil, measured where bufferutil runs (client→server from 48 bytes); elsewhere it runs the same code as ${BASE_LABEL} (–).`
      : `**Server side**: throughput of each server against a common ${BASE_LABEL} client, as a ratio to the ${BASE_LABEL} server. In brackets: its CPU per message / this server's.`,
  );
  out.push('');
  head(['scenario', ...impls.map((i) => LABELS[i] ?? i), 'ours vs TCP', 'spread (ours)', 'busy']);
  for (const scenario of [...new Set(sectionRows.map((r) => r.scenario))]) {
    const of = (impl) => sectionRows.find((r) => r.scenario === scenario && r.impl === impl);
    const ours = of('ours');
    line([sectionRows.find((r) => r.scenario === scenario).label, ...impls.map((i) => pair(of(i))), percent(ours?.vsTcp), spread(ours?.spread ?? null), busy(ours?.otherLoadCores)]);
  }
  out.push('');
}

const echo = rows.filter((r) => r.kind === 'echo' && r.impl !== BASE);
if (echo.length > 0) {
  out.push(`**Echo latency**, one message in flight: ${BASE_LABEL}'s p50 and p99 divided by the row's, and its CPU per round trip (side under test) divided by the row's.`);
  out.push('');
  head(['size', 'side', 'implementation', 'p50', 'p99', 'CPU per round trip', 'busy']);
  const order = { client: 0, server: 1, limit: 2 };
  echo.sort((a, b) => a.size - b.size || order[a.section] - order[b.section]);
  for (const r of echo) line([sizeOf(r.size), r.section, LABELS[r.impl] ?? r.impl, ratio(r.vsBase), ratio(r.p99VsBase), ratio(r.cpuVsBase), busy(r.otherLoadCores)]);
  out.push('');
}

const many = rows.filter((r) => r.kind === 'echo-many' && r.impl !== BASE);
if (many.length > 0) {
  out.push(
    `**Server echo with ${run.config.manyConnections} connections** (16 B, ${run.config.manyInFlight} in flight on each, from one raw client process): echoes per second and the server's CPU per echo, as ratios to the ${BASE_LABEL} server; "cores" is the server's CPU time over the wall time (1.00 = one core busy).`,
  );
  out.push('');
  head(['server', 'echoes/s', 'CPU per echo', 'cores (this / ws+bu)', 'spread', 'busy']);
  const base = rows.find((r) => r.kind === 'echo-many' && r.impl === BASE);
  for (const r of many) line([LABELS[r.impl] ?? r.impl, ratio(r.vsBase), ratio(r.cpuVsBase), `${r.cpuShare?.toFixed(2) ?? '–'} / ${base?.cpuShare?.toFixed(2) ?? '–'}`, spread(r.spread), busy(r.otherLoadCores)]);
  out.push('');
}

const handshakes = rows.filter((r) => r.kind === 'handshake' && r.impl !== BASE);
if (handshakes.length > 0) {
  out.push(`**Handshakes** (open, close with 1000, wait for the clean close): cycles per second and the CPU per cycle of the side under test, as ratios to ${BASE_LABEL}. Clients against a ${BASE_LABEL} server, servers against the raw client.`);
  out.push('');
  head(['scenario', 'side', 'implementation', 'cycles/s', 'CPU per cycle', 'unclean / failed', 'busy']);
  for (const r of handshakes) line([r.label, r.section, LABELS[r.impl] ?? r.impl, ratio(r.vsBase), ratio(r.cpuVsBase), `${r.unclean} / ${r.failedCycles}`, busy(r.otherLoadCores)]);
  out.push('');
}

for (const section of ['server', 'client']) {
  const idle = rows.filter((r) => r.kind === 'idle' && r.section === section);
  if (idle.length === 0) continue;
  const n = section === 'server' ? run.config.idleConnections : run.config.idleClientConnections;
  out.push(
    section === 'server'
      ? `**${n} idle connections on the server** under test (opened by ${BASE_LABEL} clients): per connection, in KB (1,000 bytes), and ${BASE_LABEL}'s figure divided by the row's (below 1 = more than ws).`
      : `**${n} idle client connections** in one process, to a ${BASE_LABEL} server: per connection, in KB, and ${BASE_LABEL}'s figure divided by the row's.`,
  );
  out.push('');
  head([section, 'holds', 'heap + external KB', 'RSS KB', 'heap + external', 'RSS', 'time to open all']);
  for (const r of idle) line([LABELS[r.impl] ?? r.impl, HOLDS[r.impl] ?? '', kb(r.heapPerConnection), kb(r.rssPerConnection), ratio(r.heapVsBase), ratio(r.rssVsBase), ratio(r.vsBase)]);
  out.push('');
}

if (run.mask) {
  const median = (values) => [...values].sort((a, b) => a - b)[values.length >> 1];
  const gbps = (row, name) => median(row.gbps[name]);
  if ('mask: ours' in run.mask[0].gbps) {
    // Runs with the WebAssembly kernel: each path against bufferutil doing the same work.
    const pairs = [
      ['applyMask / copy', 'applyMask', 'copy'],
      ['client mask: ours / bufferutil', 'mask: ours', 'mask: bufferutil'],
      ['client mask: ours / ours-js', 'mask: ours', 'mask: ours-js'],
      ['server unmask: ours / bufferutil', 'unmask: ours', 'unmask: bufferutil'],
      ['server unmask: ours / ours-js', 'unmask: ours', 'unmask: ours-js'],
    ].filter(([, a, b]) => a in run.mask[0].gbps && b in run.mask[0].gbps);
    out.push('**Masking** in one process: "client mask" copies the payload into its frame and masks it; "server unmask" unmasks a chunk\'s payload and copies it into the message; applyMask masks in place. Ratios of GB/s.');
    out.push('');
    head(['size', ...pairs.map(([label]) => label)]);
    for (const row of run.mask) line([sizeOf(row.size), ...pairs.map(([, a, b]) => ratio(gbps(row, a) / gbps(row, b)))]);
  } else {
    const names = Object.keys(run.mask[0].gbps).filter((n) => n !== 'copy');
    out.push('**Masking** speed as a fraction of a plain copy of the same bytes (one process).');
    out.push('');
    head(['size', ...names.map((n) => `${n} / copy`)]);
    for (const row of run.mask) line([sizeOf(row.size), ...names.map((n) => percent(gbps(row, n) / gbps(row, 'copy')))]);
  }
  out.push('');
}

if (run.targets?.length) {
  out.push('**Targets** (the performance targets of bench/README.md), as this run judged them:');
  out.push('');
  for (const t of run.targets) out.push(`- ${t.met ? 'met' : '**not met**'}: ${t.target}. ${t.detail}.`);
  out.push('');
}
console.log(out.join('\n'));
