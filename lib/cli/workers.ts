// `serve --workers`: the primary process of a node:cluster. It serves nothing itself: it forks the
// workers (each a whole `wss serve` sharing the one listening socket), replaces those that die,
// and on SIGTERM or SIGINT has them all close their clients with 1001 before it exits.
import cluster, { type Worker } from 'node:cluster';
import { FIRST_RESTART_DELAY, MAX_RESTART_DELAY, WORKER_EXIT_GRACE, WORKER_STABLE_UPTIME } from './defaults.js';
import { ExitStatus } from './help.js';
import type { Style } from './output.js';

export interface BackoffLimits {
  stableUptime: number;
  first: number;
  max: number;
}

/**
 * When to replace a dead worker. One that ran for `stableUptime` is replaced at once. One that died
 * younger (it crashes at start-up, or on every request) is replaced after `first` ms, then twice
 * as long after each young death in a row, up to `max`: a worker that cannot start costs a fork
 * every `max` ms rather than a fork bomb. A quiet `stableUptime` ends a run of young deaths.
 */
export class RestartBackoff {
  #youngDeaths = 0;
  #lastDeath = -Infinity;
  #lastDelay = 0;

  constructor(private readonly limits: BackoffLimits = { stableUptime: WORKER_STABLE_UPTIME, first: FIRST_RESTART_DELAY, max: MAX_RESTART_DELAY }) {}

  /** The delay before replacing a worker that ran `uptime` ms and died at `now` (a monotonic ms clock). */
  delayAfter(uptime: number, now: number): number {
    const { stableUptime, first, max } = this.limits;
    const quietSince = this.#lastDeath + this.#lastDelay;
    if (uptime >= stableUptime || now - quietSince >= stableUptime) this.#youngDeaths = 0;
    this.#lastDeath = now;
    if (uptime >= stableUptime) {
      this.#lastDelay = 0;
      return 0;
    }
    this.#youngDeaths++;
    this.#lastDelay = Math.min(max, first * 2 ** (this.#youngDeaths - 1));
    return this.#lastDelay;
  }
}

export interface PrimaryOptions {
  /** How many workers to keep running. */
  count: number;
  /** The `wss` script and the `serve` arguments each worker runs (the primary's own). */
  script: string;
  args: string[];
  drainTimeout: number;
  /** "listening on …" and "demo page: …", once every first worker listens on `port`. */
  describeListening(address: { address: string; port: number }): string;
  log: (line: string) => void;
  style: Style;
}

interface WorkerRecord {
  worker: Worker;
  pid: number;
  forkedAt: number;
  listening: boolean;
  /** The id of the worker this one replaces, if any. */
  replaces: number | null;
}

/**
 * starting: until every first worker listens; a worker that dies then stops everything (a port in
 * use, a bad certificate: no replacement would fare better). running: the dead are replaced.
 * draining: a signal came; nothing is replaced, the primary exits once no worker is left.
 */
type Phase = 'starting' | 'running' | 'draining' | 'failed';

/** Runs the primary until the workers have drained (0), or failed to start (1). */
export function runPrimary(options: PrimaryOptions): Promise<number> {
  const { count, drainTimeout, log, style } = options;
  cluster.setupPrimary({ exec: options.script, args: ['serve', ...options.args] });
  const workers = new Map<number, WorkerRecord>();
  const restarts = new Set<NodeJS.Timeout>();
  const backoff = new RestartBackoff();
  let phase: Phase = 'starting';
  let firstReady = 0;
  let announcedPort: number | null = null;
  let killTimer: NodeJS.Timeout | undefined;
  const name = (record: WorkerRecord): string => `worker ${record.worker.id} (pid ${record.pid})`;

  return new Promise<number>((resolve) => {
    const finish = (status: number): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      clearTimeout(killTimer);
      for (const timer of restarts) clearTimeout(timer);
      restarts.clear();
      // A failure was logged when it happened.
      if (status === ExitStatus.OK) log('stopped');
      resolve(status);
    };

    const fork = (replaces: number | null): void => {
      const worker = cluster.fork();
      const record: WorkerRecord = { worker, pid: worker.process.pid ?? 0, forkedAt: performance.now(), listening: false, replaces };
      workers.set(worker.id, record);
      worker.on('listening', (address: { address: string; port: number }) => {
        if (record.listening) return;
        record.listening = true;
        log(`${name(record)} ${style.green('ready')}${replaces === null ? '' : ` (replaces worker ${replaces})`}`);
        if (phase === 'starting' && ++firstReady === count) {
          phase = 'running';
          announcedPort = address.port;
          log(options.describeListening(address));
        } else if (announcedPort !== null && address.port !== announcedPort) {
          // cluster shares a --port 0 socket only while some worker holds it.
          log(`${style.yellow('note:')} ${name(record)} listens on port ${address.port}: every worker had died, and port 0 picked a new one`);
        }
      });
      // 'exit' comes with the status or the signal; an 'error' (a failed send) changes nothing here.
      worker.on('error', () => {});
      worker.on('exit', (code: number | null, signal: NodeJS.Signals | null) => onExit(record, code, signal));
    };

    const onExit = (record: WorkerRecord, code: number | null, signal: NodeJS.Signals | null): void => {
      workers.delete(record.worker.id);
      const how = signal !== null ? `was killed by ${signal}` : `exited with status ${code}`;
      if (phase === 'draining' || phase === 'failed') {
        if (phase === 'draining' && (signal !== null || code !== 0)) log(`${name(record)} ${how}`);
        if (workers.size === 0) finish(phase === 'draining' ? ExitStatus.OK : ExitStatus.FAILED);
        return;
      }
      if (phase === 'starting' && !record.listening) {
        log(`${style.red('error:')} ${name(record)} ${how} before it listened: stopping`);
        phase = 'failed';
        // Their siblings met or will meet the same fate; they have no clients to drain.
        for (const other of workers.values()) other.worker.process.kill('SIGKILL');
        if (workers.size === 0) finish(ExitStatus.FAILED);
        return;
      }
      const now = performance.now();
      const delay = backoff.delayAfter(now - record.forkedAt, now);
      log(`${style.yellow(`${name(record)} ${how}`)}: starting a replacement${delay > 0 ? ` in ${delay} ms` : ''}`);
      const timer = setTimeout(() => {
        restarts.delete(timer);
        fork(record.worker.id);
      }, delay);
      restarts.add(timer);
    };

    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals > 1) {
        // A second signal: do not wait for clients that ignore the close frames.
        log(`${signal} again: killing ${workers.size} worker(s)`);
        for (const record of workers.values()) record.worker.process.kill('SIGKILL');
        process.exit(ExitStatus.INTERRUPTED);
      }
      const wasFailed = phase === 'failed';
      if (!wasFailed) phase = 'draining';
      for (const timer of restarts) clearTimeout(timer);
      restarts.clear();
      if (workers.size === 0) {
        finish(wasFailed ? ExitStatus.FAILED : ExitStatus.OK);
        return;
      }
      log(`${signal}: draining ${workers.size} worker(s): each closes its connections with 1001, for at most ${drainTimeout} ms`);
      // SIGTERM, as a service manager would send a single process: each worker drains itself,
      // gives up on its clients after --drain-timeout, and exits.
      for (const record of workers.values()) record.worker.process.kill('SIGTERM');
      killTimer = setTimeout(() => {
        for (const record of workers.values()) {
          log(`${name(record)} still running ${WORKER_EXIT_GRACE} ms after the drain timeout: killing it`);
          record.worker.process.kill('SIGKILL');
        }
      }, drainTimeout + WORKER_EXIT_GRACE);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);

    for (let i = 0; i < count; i++) fork(null);
  });
}
