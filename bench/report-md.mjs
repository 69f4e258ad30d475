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
const LABELS = {
  ours: 'websocketstream-node',
  'ours-b': 'websocketstream-node B',
  ws: 'ws',
  'ws-bufferutil': 'ws + bufferutil',
  'undici-ws': 'undici WebSocket',
  'undici-wss': 'undici WebSocketStream',
  tcp: 'raw node:net',
};
const ratio = (v) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : `${v.toFixed(2)}×`);
const percent = (v) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : `${Math.round(v * 100)}%`);
const spread = (v) => (v === null || v === undefined ? '–' : `±${Math.round(v * 50)}%`);
const busy = (v) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(1));
const out = [];
const line = (cells) => out.push(`| ${cells.join(' | ')} |`);
const head = (cells) => {
  line(cells);
  line(cells.map(() => '---'));
};

const env = run.environment;
const loads = run.trials.map((t) => t.otherLoadCores).filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
out.push(`Run of ${run.date.slice(0, 16).replace('T', ' ')} UTC: \`${run.command}\`, ${run.trials.length} trials in ${Math.round(run.durationSeconds)} s.`);
out.push(
  `Library ${env.library} at commit ${env.commit ?? '?'}; Node ${env.node}, ${env.cpus} × ${env.cpuModel}; bufferutil ${env.bufferutil ? 'native' : 'absent'}; ` +
    `${run.config.reps} repetitions × ${run.config.rounds} rounds of ${run.config.roundMs} ms after a ${run.config.warmMs} ms warm-up (${run.config.warmLargeMs} ms from 64 KiB); ` +
    `PM QoS ${run.config.pmQosHeld ? 'held' : 'not held'}.`,
);
if (loads.length > 0) {
  out.push(`Other processes used a median ${loads[loads.length >> 1].toFixed(2)} cores (max ${loads[loads.length - 1].toFixed(2)}) of the ${env.cpus} during the measured windows.`);
}
out.push('');

// Throughput: one table per side, one row per scenario, one column per implementation.
for (const section of ['client', 'server']) {
  const sectionRows = rows.filter((r) => r.section === section && (r.kind === 'c2s' || r.kind === 's2c'));
  if (sectionRows.length === 0) continue;
  const impls = [...new Set(sectionRows.map((r) => r.impl))].filter((i) => i !== 'ws');
  out.push(
    section === 'client'
      ? '**Client side**: throughput of each client against the common ws server, as a ratio to the ws client (no native addons). In brackets: ws CPU per message / this client\'s (above 1 = cheaper).'
      : '**Server side**: throughput of each server against the common ws client, as a ratio to the ws server (no native addons). In brackets: ws CPU per message / this server\'s.',
  );
  out.push('');
  head(['scenario', 'peer', ...impls.map((i) => LABELS[i] ?? i), ...(section === 'client' ? ['ours vs TCP'] : []), 'spread (ours)', 'busy']);
  for (const scenario of [...new Set(sectionRows.map((r) => r.scenario))]) {
    const of = (impl) => sectionRows.find((r) => r.scenario === scenario && r.impl === impl);
    const ours = of('ours');
    const any = sectionRows.find((r) => r.scenario === scenario);
    line([
      any.label,
      any.peer === 'ws-bufferutil' ? 'ws+bu' : 'ws',
      ...impls.map((i) => {
        const r = of(i);
        return r === undefined ? '–' : `${ratio(r.vsWs)} (${ratio(r.cpuVsWs)})`;
      }),
      ...(section === 'client' ? [percent(ours?.vsTcp)] : []),
      spread(ours?.spread ?? null),
      busy(ours?.otherLoadCores),
    ]);
  }
  out.push('');
}

const echo = rows.filter((r) => r.kind === 'echo');
if (echo.length > 0) {
  const ws = echo.find((r) => r.impl === 'ws' && r.section === 'client');
  out.push('**Echo latency**, one 16 B message in flight: the row\'s median and p99 as a ratio to ws\'s (below 1 = faster).');
  out.push('');
  head(['side', 'implementation', 'median × ws', 'p99 × ws', 'CPU per round trip × ws', 'busy']);
  for (const r of echo) {
    if (r.impl === 'ws' && r.section === 'server') continue;
    line([
      r.section === 'limit' ? 'limit' : r.impl === 'ws' ? 'both' : r.section,
      LABELS[r.impl] ?? r.impl,
      ratio(r.medianUs / ws.medianUs),
      ratio(r.p99Us / ws.p99Us),
      ratio(r.cpuUsPerMsg / ws.cpuUsPerMsg),
      busy(r.otherLoadCores),
    ]);
  }
  out.push('');
}

const idle = rows.filter((r) => r.kind === 'idle');
if (idle.length > 0) {
  const ws = idle.find((r) => r.impl === 'ws');
  out.push(`**${run.config.idleConnections} idle connections** on the server under test, as ratios to the ws server (below 1 = better).`);
  out.push('');
  head(['server', 'time to open all × ws', 'RSS per connection × ws', 'heap + external per connection × ws']);
  for (const r of idle) line([LABELS[r.impl] ?? r.impl, ratio(r.openMs / ws.openMs), ratio(r.rssPerConnection / ws.rssPerConnection), ratio(r.heapPerConnection / ws.heapPerConnection)]);
  out.push('');
}

if (run.mask) {
  const median = (values) => [...values].sort((a, b) => a - b)[values.length >> 1];
  const sizeOf = (row) => (row.size >= 1 << 20 ? `${row.size >> 20} MiB` : row.size >= 1024 ? `${row.size >> 10} KiB` : `${row.size} B`);
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
    for (const row of run.mask) line([sizeOf(row), ...pairs.map(([, a, b]) => ratio(gbps(row, a) / gbps(row, b)))]);
  } else {
    const names = Object.keys(run.mask[0].gbps).filter((n) => n !== 'copy');
    out.push('**Masking** speed as a fraction of a plain copy of the same bytes (one process).');
    out.push('');
    head(['size', ...names.map((n) => `${n} / copy`)]);
    for (const row of run.mask) line([sizeOf(row), ...names.map((n) => percent(gbps(row, n) / gbps(row, 'copy')))]);
  }
  out.push('');
}

if (run.targets?.length) {
  out.push('**Targets** (issues 6 and 14), as this run judged them:');
  out.push('');
  for (const t of run.targets) out.push(`- ${t.met ? 'met' : '**not met**'}: ${t.target}. ${t.detail}.`);
  out.push('');
}
console.log(out.join('\n'));
