// Long fuzz runs: `npm run fuzz -- --runs N [--seed S] [--jobs J] [--only a,b] [--tcp T] [--path P]`.
// N inputs in total are split among the properties of properties.ts by weight, and each
// property's share among J worker threads (default: one per CPU), worker k using seed S + k.
// Prints progress and throughput; on any failure prints the property, seed, path and shrunk
// counterexample with the command that replays it, and exits 1.
import fc from 'fast-check';
import os from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { onProgress, PROPERTIES } from './properties.js';
import { TcpFuzzFixture } from './tcp-server.js';

interface Task {
  property: string;
  runs: number;
  seed: number;
  path?: string;
}

type WorkerMessage =
  | { type: 'progress'; count: number; property: string }
  | { type: 'done'; property: string; runs: number; ms: number }
  | { type: 'failure'; property: string; seed: number; runs: number; report: string; path: string | null };

const USAGE = `usage: node build/spec/fuzz/run.js [--runs N] [--seed S] [--jobs J] [--only name,name] [--tcp T] [--path P] [--list]
  --runs N   inputs in total, split among the properties by weight (default 100000)
  --seed S   base seed (default: random); worker k uses S + k
  --jobs J   worker threads (default: CPUs, ${os.availableParallelism()} here)
  --only     run only these properties (comma-separated names, see --list)
  --tcp T    also feed T garbage request heads to a real server over TCP (default 0)
  --path P   with --only NAME --jobs 1: replay a failure's path`;

function parseArgs(argv: string[]): { runs: number; seed: number; jobs: number; only: string[] | null; tcp: number; path: string | undefined; list: boolean } {
  const options = { runs: 100_000, seed: (Date.now() ^ (Math.random() * 0x7fffffff)) & 0x7fffffff, jobs: os.availableParallelism(), only: null as string[] | null, tcp: 0, path: undefined as string | undefined, list: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value\n${USAGE}`);
      return v;
    };
    const int = (v: string): number => {
      const n = Number(v.replace(/_/g, ''));
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${arg}: not a count: ${v}`);
      return n;
    };
    if (arg === '--runs') options.runs = int(next());
    else if (arg === '--seed') options.seed = Number(next()) | 0;
    else if (arg === '--jobs') options.jobs = Math.max(1, int(next()));
    else if (arg === '--only') options.only = next().split(',').filter((name) => name !== '');
    else if (arg === '--tcp') options.tcp = int(next());
    else if (arg === '--path') options.path = next();
    else if (arg === '--list') options.list = true;
    else if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${arg}\n${USAGE}`);
  }
  return options;
}

const rate = (count: number, ms: number): string => `${Math.round((count * 1000) / Math.max(ms, 1)).toLocaleString('en-US')} inputs/s`;
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

async function runWorker(tasks: Task[]): Promise<void> {
  const port = parentPort!;
  let current = '';
  onProgress((count) => port.postMessage({ type: 'progress', count, property: current } satisfies WorkerMessage));
  for (const task of tasks) {
    const property = PROPERTIES.find((p) => p.name === task.property)!;
    current = task.property;
    const start = Date.now();
    const parameters: fc.Parameters<unknown> = { numRuns: task.runs, seed: task.seed, includeErrorInReport: true };
    if (task.path !== undefined) parameters.path = task.path;
    const details = await fc.check(property.create(), parameters);
    if (details.failed) {
      port.postMessage({
        type: 'failure',
        property: task.property,
        seed: task.seed,
        runs: task.runs,
        report: fc.defaultReportMessage(details) ?? String(details.errorInstance),
        path: details.counterexamplePath,
      } satisfies WorkerMessage);
    }
    port.postMessage({ type: 'done', property: task.property, runs: details.numRuns, ms: Date.now() - start } satisfies WorkerMessage);
  }
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  if (options.list) {
    for (const p of PROPERTIES) console.log(`${p.name} (weight ${p.weight}): ${p.summary}`);
    console.log(`tcp-server (--tcp T): a real WebSocketStreamServer fed arbitrary request heads over TCP`);
    return;
  }
  const selected = PROPERTIES.filter((p) => options.only === null || options.only.includes(p.name));
  if (options.only !== null) {
    const unknown = options.only.filter((name) => name !== 'tcp-server' && !PROPERTIES.some((p) => p.name === name));
    if (unknown.length > 0) throw new Error(`unknown properties ${unknown.join(', ')}; --list shows them`);
  }
  const totalWeight = selected.reduce((sum, p) => sum + p.weight, 0);
  const jobs = Math.min(options.jobs, Math.max(1, options.runs));
  const perWorker: Task[][] = Array.from({ length: jobs }, () => []);
  // Shares by weight, rounded down; the inputs left over go one each to the largest remainders.
  const planned = new Map<string, number>();
  const shares = selected.map((p) => (options.runs * p.weight) / totalWeight);
  let leftOver = options.runs - shares.reduce((sum, share) => sum + Math.floor(share), 0);
  const byRemainder = selected.map((_, i) => i).sort((a, b) => (shares[b]! % 1) - (shares[a]! % 1));
  for (const i of byRemainder) planned.set(selected[i]!.name, Math.floor(shares[i]!) + (leftOver-- > 0 ? 1 : 0));
  for (const property of selected) {
    const runs = planned.get(property.name)!;
    for (let k = 0; k < jobs; k++) {
      const share = Math.floor(runs / jobs) + (k < runs % jobs ? 1 : 0);
      if (share === 0) continue;
      const task: Task = { property: property.name, runs: share, seed: (options.seed + k) | 0 };
      if (options.path !== undefined) task.path = options.path;
      perWorker[k]!.push(task);
    }
  }
  const plannedTotal = [...planned.values()].reduce((a, b) => a + b, 0);
  console.log(`fuzz: ${plannedTotal.toLocaleString('en-US')} inputs over ${selected.length} properties, seed ${options.seed}, ${jobs} worker thread(s), node ${process.version}`);
  for (const property of selected) console.log(`  ${property.name}: ${planned.get(property.name)!.toLocaleString('en-US')}`);

  const start = Date.now();
  const counts = new Array<number>(jobs).fill(0);
  const currentOf = new Array<string>(jobs).fill('');
  const failures: Array<Extract<WorkerMessage, { type: 'failure' }> & { worker: number }> = [];
  const perProperty = new Map<string, { runs: number; ms: number }>();
  let lastPrint = start;
  const printProgress = (force = false): void => {
    const now = Date.now();
    if (!force && now - lastPrint < 5_000) return;
    lastPrint = now;
    const total = counts.reduce((a, b) => a + b, 0);
    console.log(`  ${seconds(now - start)}: ${total.toLocaleString('en-US')} inputs (${((100 * total) / Math.max(1, plannedTotal)).toFixed(1)}%), ${rate(total, now - start)} [${currentOf.join(' | ')}]`);
  };
  const timer = setInterval(() => printProgress(), 1_000);
  await Promise.all(
    perWorker.map(
      (tasks, k) =>
        new Promise<void>((resolve, reject) => {
          const worker = new Worker(new URL(import.meta.url), { workerData: tasks });
          worker.on('message', (message: WorkerMessage) => {
            if (message.type === 'progress') {
              counts[k] = message.count;
              currentOf[k] = message.property;
            } else if (message.type === 'done') {
              const entry = perProperty.get(message.property) ?? { runs: 0, ms: 0 };
              entry.runs += message.runs;
              entry.ms += message.ms;
              perProperty.set(message.property, entry);
            } else {
              failures.push({ ...message, worker: k });
              console.log(`\nFAILURE in ${message.property} (worker ${k}, seed ${message.seed}):\n${message.report}\n`);
            }
          });
          worker.on('error', reject);
          worker.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker ${k} exited with code ${code}`))));
        }),
    ),
  );
  clearInterval(timer);
  const ms = Date.now() - start;
  const total = [...perProperty.values()].reduce((sum, e) => sum + e.runs, 0);
  console.log(`\nper property (thread time):`);
  for (const [name, entry] of perProperty) console.log(`  ${name}: ${entry.runs.toLocaleString('en-US')} inputs, ${seconds(entry.ms)}, ${rate(entry.runs, entry.ms)}`);
  console.log(`\nfuzz: ${total.toLocaleString('en-US')} inputs in ${seconds(ms)} (${rate(total, ms)}), seed ${options.seed}, ${jobs} worker thread(s), ${failures.length} failure(s)`);

  if (options.tcp > 0 && (options.only === null || options.only.includes('tcp-server'))) {
    const tcpStart = Date.now();
    const fixture = await TcpFuzzFixture.start();
    try {
      const parameters: fc.Parameters<unknown> = { numRuns: options.tcp, seed: options.seed, includeErrorInReport: true };
      if (options.path !== undefined && options.only?.length === 1) parameters.path = options.path;
      const details = await fc.check(fixture.property(5), parameters);
      if (details.failed) {
        failures.push({ type: 'failure', property: 'tcp-server', seed: options.seed, runs: options.tcp, report: fc.defaultReportMessage(details) ?? '', path: details.counterexamplePath, worker: -1 });
        console.log(`\nFAILURE in tcp-server (seed ${options.seed}):\n${fc.defaultReportMessage(details)}\n`);
      } else {
        await fixture.probe();
        await fixture.settled();
      }
    } finally {
      await fixture.stop();
    }
    const tcpMs = Date.now() - tcpStart;
    console.log(`tcp-server: ${options.tcp} request heads in ${seconds(tcpMs)} (${rate(options.tcp, tcpMs)})`);
  }

  if (failures.length > 0) {
    console.log(`\n${failures.length} failure(s). Replay each with:`);
    for (const f of failures) {
      const runs = f.property === 'tcp-server' ? `--runs 0 --tcp ${f.runs}` : `--runs ${f.runs}`;
      console.log(`  node build/spec/fuzz/run.js --only ${f.property} --jobs 1 --seed ${f.seed} ${runs}${f.path === null ? '' : ` --path ${f.path}`}`);
    }
    process.exitCode = 1;
  }
}

if (isMainThread) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 2;
  });
} else {
  runWorker(workerData as Task[]).catch((error: unknown) => {
    console.error(error);
    process.exitCode = 2;
  });
}
