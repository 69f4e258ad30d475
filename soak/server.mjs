// The soak server: one WebSocketStreamServer on 127.0.0.1 in its own process (forked by run.mjs
// with --expose-gc), so its memory is measured apart from the clients'. Modes:
//   echo        every message is written back, in order, awaiting writer.ready (backpressure)
//   slow-sink   reads every message slowly (a timer every N messages caps the read rate), tallies them
//   fast-source writes ?bytes=N bytes of 64 KiB–1 MiB messages as fast as backpressure allows, then closes
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { activeResources, bulkMessages, collect, ErrorLog, loadLibrary, memory, messageBytes, MiB, serveRpc, sleep, slowRead, Tally } from './common.mjs';

const { WebSocketStreamServer } = await loadLibrary();

/** How late the event loop ran since the last reset: a server busy for seconds answers nothing meanwhile. */
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

let server = null;
let config = null;
let stats = freshStats();

function freshStats() {
  return {
    accepted: 0,
    openFailed: 0,
    closedClean: 0,
    closedUnclean: 0,
    closeCodes: {},
    messages: 0,
    bytes: 0,
    writesRejected: 0,
    bulk: [],
    errors: new ErrorLog(),
  };
}

function handle(peer) {
  stats.accepted++;
  const own = stats;
  peer.closed.then(
    ({ closeCode }) => {
      own.closedClean++;
      own.closeCodes[closeCode] = (own.closeCodes[closeCode] ?? 0) + 1;
    },
    (error) => {
      own.closedUnclean++;
      own.errors.add('server: closed rejected', error);
    },
  );
  peer.opened.then(
    (info) => MODES[config.mode](peer, info, own).catch((error) => own.errors.add(`server: ${config.mode} handler`, error)),
    (error) => {
      own.openFailed++;
      own.errors.add('server: opened rejected', error);
    },
  );
}

const MODES = {
  async echo(peer, { readable, writable }, own) {
    const reader = readable.getReader();
    const writer = writable.getWriter();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      own.messages++;
      own.bytes += messageBytes(value);
      await writer.ready;
      writer.write(value).catch((error) => {
        own.writesRejected++;
        own.errors.add('server: echo write rejected', error);
      });
    }
  },

  async 'slow-sink'(peer, { readable }, own) {
    own.bulk.push(await slowRead(readable.getReader(), { ...config, idleTimeoutMs: 60_000 }));
  },

  async 'fast-source'(peer, { writable }, own) {
    const total = Number(new URL(peer.request.url, 'ws://x').searchParams.get('bytes'));
    const { minSize, maxSize, seed } = config;
    const tally = new Tally();
    const writer = writable.getWriter();
    const start = performance.now();
    let readyWait = 0;
    let last = Promise.resolve();
    for (const chunk of bulkMessages(total, minSize, maxSize, seed)) {
      const before = performance.now();
      await writer.ready;
      readyWait += performance.now() - before;
      tally.add(chunk);
      last = writer.write(chunk);
      last.catch((error) => {
        own.writesRejected++;
        own.errors.add('server: bulk write rejected', error);
      });
    }
    await last.catch(() => {});
    const ms = performance.now() - start;
    // writer.close() waits for the queued writes, sends a close frame and settles once closed.
    await writer.close();
    own.bulk.push({ ...tally.result(), ms, readyWaitMs: readyWait });
  },
};

async function sockets() {
  return activeResources().TCPSocketWrap ?? 0;
}

serveRpc({
  async start(args) {
    config = args;
    const options = { port: 0, host: '127.0.0.1', ...(args.serverOptions ?? {}) };
    server = new WebSocketStreamServer(options);
    await server.listening;
    void (async () => {
      for await (const peer of server.connections) handle(peer);
    })().catch((error) => stats.errors.add('server: connections', error));
    return { port: server.address().port, pid: process.pid, memory: await collect() };
  },

  /** Zeroes the counters (after a warm-up); the new figures start now. */
  reset() {
    stats = freshStats();
    loopDelay.reset();
  },

  stats() {
    return { ...stats, errors: stats.errors.toJSON(), connectionCount: server.connectionCount, memory: memory(), resources: activeResources() };
  },

  /**
   * Waits (up to timeoutMs) for no connection and no TCP socket left, and for `bulk` results if
   * asked, then collects garbage and reports. `settled` says whether that state was reached.
   */
  async settle({ timeoutMs = 10_000, bulk = 0 } = {}) {
    const deadline = performance.now() + timeoutMs;
    let settled = false;
    while (performance.now() < deadline) {
      if (server.connectionCount === 0 && (await sockets()) === 0 && stats.bulk.length >= bulk) {
        settled = true;
        break;
      }
      await sleep(20);
    }
    const mem = await collect();
    return { settled, ...stats, errors: stats.errors.toJSON(), connectionCount: server.connectionCount, memory: mem, resources: activeResources(), loopDelayMaxMs: loopDelay.max / 1e6 };
  },

  async close() {
    await server.close();
    return { resources: activeResources() };
  },

  exit() {
    setImmediate(() => process.exit(0));
  },
});

process.send({ ready: true, maxRssStartMiB: memory().maxRss / MiB });
