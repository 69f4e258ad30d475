// Prints the hottest functions of V8 CPU profiles (from `npm run bench -- --cpu-prof --only …`).
// usage: node bench/prof-top.mjs FILE.cpuprofile [FILE…] [--top N]
//   self: time spent in the function itself; total: with everything it called.
import { readFileSync } from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const topIndex = args.indexOf('--top');
const top = topIndex === -1 ? 25 : Number(args.splice(topIndex, 2)[1]);
if (args.length === 0) {
  console.error('usage: node bench/prof-top.mjs FILE.cpuprofile [FILE…] [--top N]');
  process.exit(1);
}

for (const file of args) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const selfTicks = new Map();
  for (const id of profile.samples) selfTicks.set(id, (selfTicks.get(id) ?? 0) + 1);
  const totalSamples = profile.samples.length;
  const durationMs = (profile.endTime - profile.startTime) / 1000;
  const keyOf = (node) => {
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url ? `${path.basename(url)}:${lineNumber + 1}` : '';
    return `${functionName || '(anonymous)'} ${where}`.trim();
  };
  const self = new Map();
  const total = new Map();
  for (const [id, ticks] of selfTicks) {
    const node = nodes.get(id);
    self.set(keyOf(node), (self.get(keyOf(node)) ?? 0) + ticks);
    // Count each function once per sample in its stack (recursion does not double-count).
    const seen = new Set();
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const key = keyOf(nodes.get(at));
      if (seen.has(key)) continue;
      seen.add(key);
      total.set(key, (total.get(key) ?? 0) + ticks);
    }
  }
  const idle = self.get('(idle)') ?? 0;
  console.log(`\n${file}: ${durationMs.toFixed(0)} ms, ${totalSamples} samples, ${((100 * idle) / totalSamples).toFixed(1)}% idle`);
  const busy = totalSamples - idle;
  const pct = (ticks) => `${((100 * ticks) / busy).toFixed(1)}%`.padStart(6);
  console.log(`  self%  total%  function (percent of non-idle samples)`);
  for (const [key, ticks] of [...self].filter(([key]) => key !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`  ${pct(ticks)}  ${pct(total.get(key) ?? 0)}  ${key}`);
  }
}
