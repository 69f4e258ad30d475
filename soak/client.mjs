// A soak client process (forked by run.mjs with --expose-gc): opens WebSocketStreams to the soak
// server on 127.0.0.1 and checks everything that comes back. Every wait is bounded.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import {
  activeResources,
  bulkMessages,
  collect,
  echoMessage,
  echoNumbers,
  ErrorLog,
  loadLibrary,
  memory,
  messageBytes,
  pool,
  sameMessage,
  serveRpc,
  sleep,
  slowRead,
  Tally,
  within,
} from './common.mjs';

const { WebSocketStream } = await loadLibrary();

/** How late the event loop ran, in ms at most, since the last call that started work. */
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
const loopDelayMaxMs = () => loopDelay.max / 1e6;

/** Connections opened by `open`, used by `echo`. */
let connections = [];
/** The slowest close handshake (close() or writer.close() until `closed` settled) since the last reset. */
let closeMsMax = 0;
function resetFigures() {
  loopDelay.reset();
  closeMsMax = 0;
}

function clientOptions(args) {
  const options = args.closeTimeout === undefined ? {} : { closeTimeout: args.closeTimeout };
  // The client offers permessage-deflate by default; the server accepts it only with --deflate.
  if (!args.deflate) options.perMessageDeflate = false;
  return options;
}

/** Both ways of closing are exercised: close({code, reason}) on even numbers, writer.close() on odd ones. */
function expectedClose(conn) {
  return conn % 2 === 0 ? { closeCode: 1000, reason: `soak done ${conn}` } : { closeCode: 1005, reason: '' };
}

/** Closes (both ways, by number) and checks that `closed` resolved with the expected code and reason. */
async function closeConnection(conn, ws, writer, closeTimeoutMs) {
  const expected = expectedClose(conn);
  const start = performance.now();
  if (conn % 2 === 0) ws.close(expected);
  else writer.close().catch(() => {}); // its outcome is the same as `closed`'s
  const info = await within(ws.closed, closeTimeoutMs, `connection ${conn} closed`).finally(() => {
    closeMsMax = Math.max(closeMsMax, performance.now() - start);
  });
  if (info.closeCode !== expected.closeCode || info.reason !== expected.reason) {
    throw new Error(`closed with ${info.closeCode} ${JSON.stringify(info.reason)}, expected ${expected.closeCode} ${JSON.stringify(expected.reason)}`);
  }
}

/** The echo exchange of one connection: `messages` numbered messages out, every one checked back. */
async function exchange(c, { messages, maxSize, idleTimeoutMs, closeTimeoutMs }, totals, errors) {
  const { conn, ws, info } = c;
  const reader = info.readable.getReader();
  const writer = info.writable.getWriter();
  const resolved = new Uint8Array(messages);
  const seen = new Uint8Array(messages);
  let attempted = 0;
  let allWritten = false;
  let next = 0;
  let received = 0;
  let wake = null;

  const readLoop = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      received++;
      totals.received++;
      totals.bytesIn += messageBytes(value);
      const expected = next < messages ? echoMessage(conn, next, maxSize) : null;
      if (expected !== null && sameMessage(value, expected)) {
        seen[next++] = 1;
      } else {
        let numbers = echoNumbers(value);
        if (numbers === null) {
          // Too short to carry its numbers: is it one of the next few messages?
          for (let k = next + 1; k < Math.min(messages, next + 16); k++) {
            if (sameMessage(value, echoMessage(conn, k, maxSize))) {
              numbers = { conn, seq: k };
              break;
            }
          }
        }
        const genuine = numbers !== null && numbers.seq < messages && sameMessage(value, echoMessage(numbers.conn, numbers.seq, maxSize));
        if (!genuine) {
          totals.corrupt++;
          errors.add(`connection ${conn}`, new Error(`message ${received} is not message ${next} nor any message of ours`));
        } else if (numbers.conn !== conn) {
          totals.crossed++;
          errors.add(`connection ${conn}`, new Error(`got message ${numbers.seq} of connection ${numbers.conn}`));
        } else if (seen[numbers.seq] === 1) {
          totals.duplicated++;
          errors.add(`connection ${conn}`, new Error(`message ${numbers.seq} came back twice`));
        } else if (numbers.seq < next) {
          // An earlier message, skipped over before: out of order.
          totals.reordered++;
          errors.add(`connection ${conn}`, new Error(`message ${numbers.seq} came back after message ${next - 1}`));
          seen[numbers.seq] = 1;
        } else {
          // A gap: messages next … seq-1 are missing so far (lost, unless they come later out of order).
          errors.add(`connection ${conn}`, new Error(`message ${numbers.seq} came back while ${next} was expected`));
          seen[numbers.seq] = 1;
          next = numbers.seq + 1;
        }
      }
      if (allWritten && received >= attempted) wake?.();
    }
  })();
  readLoop.catch(() => {});

  let lastWrite = Promise.resolve();
  try {
    for (let seq = 0; seq < messages; seq++) {
      await writer.ready;
      const message = echoMessage(conn, seq, maxSize);
      attempted++;
      totals.attempted++;
      totals.bytesOut += messageBytes(message);
      lastWrite = writer.write(message).then(
        () => {
          resolved[seq] = 1;
          totals.resolved++;
        },
        (error) => {
          totals.rejected++;
          errors.add(`connection ${conn} write ${seq}`, error);
        },
      );
    }
  } catch (error) {
    errors.add(`connection ${conn} writer.ready`, error);
  }
  await lastWrite;
  allWritten = true;
  // Wait for the echoes, as long as they keep coming (each gap at most idleTimeoutMs).
  while (received < attempted) {
    const before = received;
    let timer;
    const ended = await new Promise((resolve) => {
      wake = () => resolve(false);
      readLoop.then(() => resolve(true), () => resolve(true));
      timer = setTimeout(() => resolve(false), idleTimeoutMs);
    });
    clearTimeout(timer);
    wake = null;
    if (ended) break;
    if (received === before && received < attempted) {
      errors.add(`connection ${conn}`, new Error(`${attempted - received} echoes missing after ${idleTimeoutMs} ms without progress`));
      break;
    }
  }
  try {
    await closeConnection(conn, ws, writer, closeTimeoutMs);
    totals.closedClean++;
  } catch (error) {
    totals.closedUnclean++;
    errors.add(`connection ${conn} close`, error);
  }
  await within(readLoop, closeTimeoutMs, `connection ${conn} readable end`).catch((error) => errors.add(`connection ${conn} readable`, error));
  for (let seq = 0; seq < messages; seq++) if (resolved[seq] === 1 && seen[seq] === 0) totals.lost++;
}

function echoTotals() {
  return {
    connections: 0,
    attempted: 0,
    resolved: 0,
    rejected: 0,
    received: 0,
    bytesOut: 0,
    bytesIn: 0,
    lost: 0,
    duplicated: 0,
    reordered: 0,
    corrupt: 0,
    crossed: 0,
    closedClean: 0,
    closedUnclean: 0,
  };
}

async function settleSockets(timeoutMs) {
  const deadline = performance.now() + timeoutMs;
  while ((activeResources().TCPSocketWrap ?? 0) > 0 && performance.now() < deadline) await sleep(20);
  const mem = await collect();
  return { memory: mem, resources: activeResources() };
}

serveRpc({
  /** Opens `count` connections numbered from `first`, at most `concurrency` handshakes at once, and keeps them. */
  async open(args) {
    const { url, first, count, concurrency, openTimeoutMs } = args;
    const errors = new ErrorLog();
    const start = performance.now();
    let failed = 0;
    await pool(count, concurrency, async (i) => {
      const conn = first + i;
      const ws = new WebSocketStream(url, clientOptions(args));
      try {
        const info = await within(ws.opened, openTimeoutMs, `connection ${conn} opened`);
        connections.push({ conn, ws, info });
      } catch (error) {
        failed++;
        errors.add(`connection ${conn} open`, error);
        ws.close();
      }
    });
    return { opened: connections.length, failed, ms: performance.now() - start, errors: errors.toJSON(), memory: memory() };
  },

  /** Runs the echo exchange on every open connection at once, then closes them. */
  async echo(args) {
    resetFigures();
    const totals = echoTotals();
    const errors = new ErrorLog();
    const start = performance.now();
    totals.connections = connections.length;
    await Promise.all(connections.map((c) => exchange(c, args, totals, errors)));
    const ms = performance.now() - start;
    connections = [];
    const settled = await settleSockets(5000);
    return { ...totals, ms, closeMsMax, loopDelayMaxMs: loopDelayMaxMs(), errors: errors.toJSON(), ...settled };
  },

  /** Churn: `count` connections, `concurrency` at a time, each open → one echo → clean close. */
  async churn(args) {
    const { url, first, count, concurrency, maxSize, connectionTimeoutMs } = args;
    const errors = new ErrorLog();
    resetFigures();
    const totals = { opened: 0, failed: 0, echoed: 0, mismatched: 0, closedClean: 0, bytes: 0 };
    const start = performance.now();
    await pool(count, concurrency, async (i) => {
      const conn = first + i;
      const ws = new WebSocketStream(url, clientOptions(args));
      const run = async () => {
        const { readable, writable } = await ws.opened;
        totals.opened++;
        const writer = writable.getWriter();
        const reader = readable.getReader();
        const message = echoMessage(conn, conn % 50, maxSize);
        await writer.write(message);
        const { value, done } = await reader.read();
        if (done || !sameMessage(value, message)) {
          totals.mismatched++;
          throw new Error(done ? 'the readable ended before the echo' : 'the echo differs from the message');
        }
        totals.echoed++;
        totals.bytes += messageBytes(message);
        await closeConnection(conn, ws, writer, connectionTimeoutMs);
        totals.closedClean++;
      };
      try {
        await within(run(), connectionTimeoutMs, `connection ${conn}`);
      } catch (error) {
        totals.failed++;
        errors.add(`connection ${conn}`, error);
        ws.close();
      }
    });
    const ms = performance.now() - start;
    const settled = await settleSockets(5000);
    return { ...totals, count, ms, closeMsMax, loopDelayMaxMs: loopDelayMaxMs(), errors: errors.toJSON(), ...settled };
  },

  /** The fast writer: `total` bytes of binary messages as fast as writer.ready allows, then writer.close(). */
  async bulkSend(args) {
    const { url, total, minSize, maxSize, seed, closeTimeoutMs } = args;
    const errors = new ErrorLog();
    const ws = new WebSocketStream(url, clientOptions(args));
    const { writable } = await within(ws.opened, 10_000, 'bulk connection opened');
    const writer = writable.getWriter();
    const tally = new Tally();
    let readyWait = 0;
    let rejected = 0;
    let last = Promise.resolve();
    const start = performance.now();
    try {
      for (const chunk of bulkMessages(total, minSize, maxSize, seed)) {
        const before = performance.now();
        await writer.ready;
        readyWait += performance.now() - before;
        tally.add(chunk);
        last = writer.write(chunk);
        last.catch((error) => {
          rejected++;
          errors.add('bulk write', error);
        });
      }
    } catch (error) {
      errors.add('bulk writer.ready', error);
    }
    await last.catch(() => {});
    const ms = performance.now() - start;
    let closed = null;
    try {
      await within(writer.close(), closeTimeoutMs, 'bulk writer.close()');
      closed = await ws.closed;
    } catch (error) {
      errors.add('bulk close', error);
    }
    return { ...tally.result(), ms, readyWaitMs: readyWait, rejected, closed, errors: errors.toJSON(), memory: memory() };
  },

  /** The slow reader: reads every message, with a timer every `readEvery` messages capping the rate at `readRate` B/s. */
  async bulkReceive(args) {
    const { url, idleTimeoutMs } = args;
    const errors = new ErrorLog();
    const ws = new WebSocketStream(url, clientOptions(args));
    const { readable } = await within(ws.opened, 10_000, 'bulk connection opened');
    const startMemory = await collect();
    let read = { messages: 0, bytes: 0, checksum: '-', ms: 0, sleeps: 0, liveMax: 0 };
    try {
      read = await slowRead(readable.getReader(), args);
    } catch (error) {
      errors.add('bulk read', error);
    }
    let closed = null;
    try {
      closed = await within(ws.closed, idleTimeoutMs, 'bulk closed');
    } catch (error) {
      errors.add('bulk closed', error);
    }
    const peak = memory().maxRss;
    const settled = await settleSockets(5000);
    return { ...read, closed, errors: errors.toJSON(), startMemory, peakRss: peak, ...settled };
  },

  stats() {
    return { memory: memory(), resources: activeResources() };
  },

  exit() {
    setImmediate(() => process.exit(0));
  },
});

process.send({ ready: true });
