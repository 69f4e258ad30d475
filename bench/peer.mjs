// One side of one measurement, in its own process: forked by run.mjs, driven over the IPC channel.
//
// argv[2] is a JSON job: { role: 'server' | 'client' | 'mask', impl, kind, size, text, url, ... }.
// kind: 'c2s' | 's2c' (throughput), 'echo' (latency), 'echo-many' (a server echoing on many
// connections), 'handshake' (open-then-close cycles), 'idle' (many idle connections).
// The parent sends { cmd: 'run', start, marks, stop } with absolute times (ms, timeOrigin-based);
// each side snapshots its counters and CPU time at every mark and reports them.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { IMPLEMENTATIONS } from './impls.mjs';

const job = JSON.parse(process.argv[2]);
const now = () => performance.timeOrigin + performance.now();
const cpuNow = () => {
  const { user, system } = process.cpuUsage();
  return user + system;
};
const report = (message) => process.send(message);
const yieldToLoop = () => new Promise((resolve) => setImmediate(resolve));

let onRun = null;
const commands = {};
process.on('message', (message) => {
  if (message.cmd === 'exit') process.exit(0);
  if (message.cmd === 'run') onRun?.(message);
  commands[message.cmd]?.(message);
});
process.on('disconnect', () => process.exit(0));

function makePayload() {
  if (job.text) {
    // ASCII JSON of exactly `size` bytes, with pseudo-random values: deflate shrinks it about 3-4×.
    let seed = 12345;
    const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet'];
    let text = '[';
    while (text.length < job.size) {
      text += `{"id":${Math.floor(random() * 1e6)},"name":"${words[Math.floor(random() * words.length)]}",`;
      text += `"score":${(random() * 100).toFixed(3)},"ok":${random() < 0.5}},`;
    }
    return text.slice(0, job.size);
  }
  return randomFillSync(Buffer.allocUnsafeSlow(job.size));
}

// ---------------------------------------------------------------------------------------------
// Marks: snapshots of { t, msgs, bytes, cpu } at the times the parent chose.

function markRecorder(counter, schedule, onDone) {
  const marks = [];
  let next = 0;
  const take = () => {
    const t = now();
    while (next < schedule.marks.length && t >= schedule.marks[next]) {
      marks.push({ t, msgs: counter.msgs, bytes: counter.bytes, cpu: cpuNow() });
      next++;
      if (next === schedule.marks.length) onDone(marks);
    }
    return next;
  };
  const arm = () => {
    if (next >= schedule.marks.length) return;
    setTimeout(() => {
      take();
      arm();
    }, Math.max(0, schedule.marks[next] - now()));
  };
  arm();
  take.marks = marks;
  return take;
}

/** Sends as fast as flow control lets it until `schedule.stop`, then reports its marks. */
async function runSender(sendOne, schedule) {
  const counter = { msgs: 0, bytes: 0 };
  let done = false;
  const take = markRecorder(counter, schedule, () => {});
  const finish = (reason) => {
    if (done) return;
    done = true;
    take();
    report({ type: 'marks', marks: take.marks, stoppedBy: reason });
  };
  setTimeout(() => finish('timer'), Math.max(0, schedule.stop - now()));
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, schedule.start - now())));
  const size = job.size;
  let n = 0;
  while (!done) {
    const pending = sendOne();
    counter.msgs++;
    counter.bytes += size;
    if (pending !== undefined) await pending;
    // Writes that the kernel takes at once never give the event loop a turn: give it one now and then.
    if ((++n & 255) === 0) await yieldToLoop();
    if (now() >= schedule.stop) finish('loop');
    else take();
  }
}

function runReceiver(counter, schedule) {
  markRecorder(counter, schedule, (marks) => report({ type: 'marks', marks }));
}

// ---------------------------------------------------------------------------------------------
// Raw TCP, the limit: the same bytes without any WebSocket framing.

async function tcpServer({ onConnection }) {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    onConnection({
      receive(counter) {
        socket.on('data', (chunk) => {
          counter.bytes += chunk.length;
          counter.msgs = Math.floor(counter.bytes / job.size);
        });
      },
      echo() {
        socket.on('data', (chunk) => socket.write(chunk));
      },
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: server.address().port };
}

async function tcpClient(url) {
  const { port } = new URL(url);
  const socket = net.connect({ port: Number(port), host: '127.0.0.1' });
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.setNoDelay(true);
  return {
    sender(payload) {
      return () => (socket.write(payload) ? undefined : new Promise((resolve) => socket.once('drain', resolve)));
    },
    pinger(payload) {
      let next = null;
      let got = 0;
      socket.on('data', (chunk) => {
        got += chunk.length;
        if (got >= payload.length) {
          got -= payload.length;
          const resolve = next;
          next = null;
          resolve?.();
        }
      });
      return () =>
        new Promise((resolve) => {
          next = resolve;
          socket.write(payload);
        });
    },
  };
}

const TCP = { client: tcpClient, server: tcpServer, info: () => ({}) };

// ---------------------------------------------------------------------------------------------
// The raw client: the common peer of the server-side rows with many connections or many
// handshakes. A minimal RFC 6455 client over node:net: a hand-written upgrade request, masked
// frames built once, one write per batch of echoes. It costs its process far less per message
// and per handshake than any library client, so that on two cores the server under test, not
// the peer, sets the pace.

const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'; // RFC 6455 §1.3

/** Connects and upgrades; resolves with the paused socket and any bytes after the 101 response. */
function rawUpgrade(url) {
  const { port, pathname } = new URL(url);
  const key = randomBytes(16).toString('base64');
  const accept = createHash('sha1').update(key + WEBSOCKET_GUID).digest('base64');
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port: Number(port), host: '127.0.0.1' });
    socket.setNoDelay(true);
    let head = Buffer.alloc(0);
    const fail = (error) => {
      socket.destroy();
      reject(error);
    };
    const onData = (chunk) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) {
        if (head.length > 16384) fail(new Error('raw client: no end of the response head'));
        return;
      }
      socket.off('data', onData);
      socket.off('error', fail);
      // Until the caller listens: an error on a waiting socket must not take the process down.
      socket.on('error', () => {});
      socket.pause();
      const text = head.subarray(0, end).toString('latin1');
      if (!text.startsWith('HTTP/1.1 101 ')) return fail(new Error(`raw client: ${text.split('\r\n', 1)[0]}`));
      if (!new RegExp(`\r\nsec-websocket-accept: *${accept.replace(/[+/]/g, '\\$&')} *(\r\n|$)`, 'i').test(text)) return fail(new Error('raw client: wrong Sec-WebSocket-Accept'));
      resolve({ socket, rest: head.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.once('error', fail);
    socket.write(`GET ${pathname} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  });
}

/** A client frame (FIN, masked) of a payload under 126 bytes. */
function maskedFrame(opcode, payload) {
  const key = randomBytes(4);
  const frame = Buffer.alloc(6 + payload.length);
  frame[0] = 0x80 | opcode;
  frame[1] = 0x80 | payload.length;
  key.copy(frame, 2);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i] ^ key[i & 3];
  return frame;
}

/**
 * Keeps `inFlight` binary messages in flight on an upgraded socket: every echo that comes back
 * (checked frame by frame: FIN, binary, the payload's length) is counted and sent again, all the
 * echoes of one read in one write.
 */
function rawFlood({ socket, rest }, payload, inFlight, counter) {
  const frame = maskedFrame(0x2, payload);
  const frames = Buffer.concat(Array.from({ length: inFlight }, () => frame));
  const echoSize = 2 + payload.length;
  let at = 0; // position within the echo being read
  const onData = (chunk) => {
    let n = 0;
    for (let i = 0; i < chunk.length; ) {
      if (at < 2) {
        if (chunk[i] !== (at === 0 ? 0x82 : payload.length)) {
          report({ type: 'error', message: `raw client: unexpected byte 0x${chunk[i].toString(16)} at ${at} of an echo` });
          socket.destroy();
          return;
        }
        at++;
        i++;
        continue;
      }
      const take = Math.min(echoSize - at, chunk.length - i);
      at += take;
      i += take;
      if (at === echoSize) {
        n++;
        at = 0;
      }
    }
    if (n === 0) return;
    if (n > inFlight) {
      report({ type: 'error', message: `raw client: ${n} echoes in one read, with ${inFlight} messages in flight` });
      socket.destroy();
      return;
    }
    counter.msgs += n;
    counter.bytes += n * payload.length;
    socket.write(frames.subarray(0, n * frame.length));
  };
  socket.on('data', onData);
  socket.on('error', (error) => report({ type: 'error', message: `raw client: ${error.message}` }));
  if (rest.length > 0) onData(rest);
  socket.resume();
  socket.write(frames);
}

const CLOSE_1000 = Buffer.from([0x03, 0xe8]);

/**
 * One handshake cycle of the raw client: upgrade, send a close frame (1000), read the server's,
 * and wait for the server to close the TCP connection (RFC 6455 §7.1.1: the server closes it
 * first). True when the server's close frame said 1000.
 */
async function rawHandshake(url) {
  const { socket, rest } = await rawUpgrade(url);
  return new Promise((resolve, reject) => {
    let got = rest;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('raw client: the server did not close within 5 s'));
    }, 5000);
    socket.on('data', (chunk) => {
      if (got.length < 4) got = got.length === 0 ? chunk : Buffer.concat([got, chunk]);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(got.length >= 4 && got[0] === 0x88 && got[1] === 2 && got.readUInt16BE(2) === 1000);
    });
    socket.write(maskedFrame(0x8, CLOSE_1000));
    socket.resume();
  });
}

const RAW = { info: () => ({}) };
const impl = job.impl === 'tcp' ? TCP : job.impl === 'raw' ? RAW : IMPLEMENTATIONS[job.impl];

/** Runs `open` n times, at most `concurrency` at once; rejects on the first failure. */
async function openMany(n, concurrency, open) {
  let started = 0;
  const worker = async () => {
    while (started < n) {
      started++;
      await open();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
}

/** The server's URL: in the job, or sent by the parent once the server listens. */
function serverUrl() {
  return job.url ?? new Promise((resolve) => (commands.connect = ({ url }) => resolve(url)));
}

// ---------------------------------------------------------------------------------------------
// Echo latency: one message in flight, timed on the client.

async function runPinger(ping, schedule) {
  const rtts = new Float64Array(4_000_000);
  let count = 0;
  let warmCount = 0;
  const counter = { msgs: 0, bytes: 0 };
  const marks = [];
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, schedule.start - now())));
  const measureFrom = schedule.marks[0];
  const measureTo = schedule.marks[schedule.marks.length - 1];
  for (;;) {
    const t0 = now();
    if (t0 >= measureTo) break;
    await ping();
    const t1 = now();
    counter.msgs++;
    if (t0 >= measureFrom) {
      if (marks.length === 0) marks.push({ t: t0, msgs: counter.msgs - 1, bytes: 0, cpu: cpuNow() });
      if (count < rtts.length) rtts[count++] = (t1 - t0) * 1000;
    } else warmCount++;
  }
  marks.push({ t: now(), msgs: counter.msgs, bytes: 0, cpu: cpuNow() });
  const sorted = rtts.subarray(0, count).sort();
  const pick = (q) => sorted[Math.min(count - 1, Math.floor(q * count))];
  report({ type: 'marks', marks, latency: { count, warmCount, medianUs: pick(0.5), p90Us: pick(0.9), p99Us: pick(0.99), minUs: sorted[0] } });
}

// ---------------------------------------------------------------------------------------------
// A server echoing on many connections (the raw client keeps a few messages in flight on each).

async function manyEchoServer() {
  let count = 0;
  const { port } = await impl.server({
    isText: false,
    onConnection(conn) {
      conn.echo();
      if (++count === job.connections) report({ type: 'connected', extensions: conn.extensions ?? '' });
    },
  });
  // The client counts the echoes; the server reports its CPU time at the marks.
  onRun = (schedule) => runReceiver({ msgs: 0, bytes: 0 }, schedule);
  report({ type: 'listening', port, info: impl.info?.() });
}

async function manyEchoClient() {
  const url = await serverUrl();
  const payload = makePayload();
  const upgraded = [];
  await openMany(job.connections, 50, async () => upgraded.push(await rawUpgrade(url)));
  const counter = { msgs: 0, bytes: 0 };
  onRun = (schedule) => {
    runReceiver(counter, schedule);
    setTimeout(() => {
      for (const connection of upgraded) rawFlood(connection, payload, job.inFlight, counter);
    }, Math.max(0, schedule.start - now()));
  };
  report({ type: 'open', info: {}, extensions: '' });
}

// ---------------------------------------------------------------------------------------------
// Handshakes: the client opens and closes connections, one at a time or `concurrency` at once.

async function handshakeServer() {
  let count = 0;
  const { port } = await impl.server({
    isText: false,
    onConnection(conn) {
      // An application reads, so it sees the close; the implementation answers the close itself.
      conn.idle();
      if (++count === 1) report({ type: 'connected', extensions: conn.extensions ?? '' });
    },
  });
  onRun = (schedule) => runReceiver({ msgs: 0, bytes: 0 }, schedule);
  report({ type: 'listening', port, info: impl.info?.() });
}

async function handshakeClient() {
  const url = await serverUrl();
  const cycle = job.impl === 'raw' ? () => rawHandshake(url) : () => impl.handshake(url);
  if (!(await cycle())) throw new Error('the first open-then-close cycle did not close cleanly with 1000');
  onRun = (schedule) => runCycles(cycle, schedule, job.concurrency).catch((error) => report({ type: 'error', message: String(error?.stack ?? error) }));
  report({ type: 'open', info: impl.info?.(), extensions: '' });
}

/** Counts completed clean cycles (msgs) until `schedule.stop`; unclean and failed ones apart. */
async function runCycles(cycle, schedule, concurrency) {
  const counter = { msgs: 0, bytes: 0 };
  const problems = { unclean: 0, failed: 0, lastError: null };
  let done = false;
  const take = markRecorder(counter, schedule, () => {});
  setTimeout(() => {
    done = true;
    take();
    report({ type: 'marks', marks: take.marks, problems });
  }, Math.max(0, schedule.stop - now()));
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, schedule.start - now())));
  const worker = async () => {
    while (!done) {
      try {
        if (await cycle()) counter.msgs++;
        else problems.unclean++;
      } catch (error) {
        problems.failed++;
        problems.lastError = String(error?.message ?? error);
        if (problems.failed > 1000) throw new Error(`over 1000 cycles failed, the last: ${problems.lastError}`);
        await yieldToLoop();
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

// ---------------------------------------------------------------------------------------------
// Idle connections: the server holds them and the client opens them; the side under test (the
// job's `measure`) reports its memory after gc().

function memoryCommand(count) {
  commands.memory = async ({ expect }) => {
    const deadline = now() + 10_000;
    while (count() < expect && now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    for (let i = 0; i < 4; i++) {
      globalThis.gc?.();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const memory = process.memoryUsage();
    report({ type: 'memory', count: count(), memory, gc: typeof globalThis.gc === 'function' });
  };
}

async function idleServer() {
  let count = 0;
  const { port } = await impl.server({
    isText: false,
    onConnection(conn) {
      count++;
      conn.idle();
    },
  });
  memoryCommand(() => count);
  report({ type: 'listening', port, info: impl.info?.() });
}

async function idleClient() {
  // What an application keeps of each connection: the object it would close it with.
  const held = [];
  const one = async () => {
    const conn = await impl.client(job.url, { isText: false });
    conn.idle();
    held.push(conn.handle);
  };
  commands.open = async ({ n }) => {
    const t0 = now();
    const cpu0 = cpuNow();
    try {
      await openMany(n, job.concurrency, one);
    } catch (error) {
      report({ type: 'error', message: `opening idle connections: ${error?.message ?? error}` });
      return;
    }
    report({ type: 'opened', n, ms: now() - t0, cpuMs: (cpuNow() - cpu0) / 1000 });
  };
  memoryCommand(() => held.length);
  report({ type: 'ready', info: impl.info?.() });
}

// ---------------------------------------------------------------------------------------------
// Masking speed, in one process: lib/protocol/mask.ts against a plain copy, ws's JavaScript loop
// and bufferutil's native one.

/**
 * GB/s of each of `candidates` over `size` bytes, job.rounds rounds each after a warm-up. The
 * rounds are interleaved, so that whatever else the machine does weighs on every candidate alike.
 */
function throughputs(candidates, size) {
  const timeFor = (fn, ms) => {
    let iterations = 0;
    const batch = Math.max(1, Math.floor(65536 / size));
    const t0 = now();
    let t = t0;
    while (t - t0 < ms) {
      for (let i = 0; i < batch; i++) fn();
      iterations += batch;
      t = now();
    }
    return (iterations * size) / ((t - t0) / 1000) / 1e9;
  };
  const gbps = {};
  for (const [name, fn] of Object.entries(candidates)) {
    timeFor(fn, job.warmMs);
    gbps[name] = [];
  }
  for (let r = 0; r < job.rounds; r++) {
    for (const [name, fn] of Object.entries(candidates)) gbps[name].push(timeFor(fn, job.roundMs));
  }
  return gbps;
}

async function maskBench() {
  const { importLibrary } = await import('./impls.mjs');
  const mask = await importLibrary('protocol/mask.js');
  // Builds from before the WebAssembly kernel (BENCH_LIB) have applyMask alone.
  const simd = mask.copyMasked === undefined ? null : await importLibrary('protocol/mask-simd.js');
  const pool = await importLibrary('protocol/frame-pool.js');
  const { createRequire } = await import('node:module');
  const require = createRequire(import.meta.url);
  let bufferutil = null;
  try {
    bufferutil = require('bufferutil');
  } catch {}
  if (simd !== null && simd.maskKernel() === null) throw new Error('WebAssembly SIMD is unavailable here: only the JavaScript loop would be measured');
  const key = randomFillSync(Buffer.alloc(4));
  const results = job.crossover ? crossover(mask, simd, key) : asShipped(mask, simd, pool, bufferutil, key);
  report({ type: 'mask', results });
}

/**
 * Every size through the paths the library takes for it. The payload sits where a frame puts it,
 * after a 6, 8 or 14 byte header, in the buffer the encoder would get (a pooled one from 16 KiB).
 */
function asShipped(mask, simd, pool, bufferutil, key) {
  const bytewise = (source, mask, output, offset, length) => {
    // ws's JavaScript fallback, for reference.
    for (let i = 0; i < length; i++) output[offset + i] = source[i] ^ mask[i & 3];
  };
  const results = [];
  for (const size of job.sizes) {
    const header = size <= 125 ? 6 : size <= 65535 ? 8 : 14;
    const frame = pool.acquireFrameBuffer(size + header) ?? Buffer.allocUnsafeSlow(size + header);
    randomFillSync(frame, 0, size + header);
    const source = randomFillSync(Buffer.allocUnsafeSlow(size));
    // A chunk as a socket delivers it: its own buffer, the payload after the header.
    const chunk = randomFillSync(Buffer.allocUnsafeSlow(size + header));
    const payload = chunk.subarray(header, header + size);
    const js = mask.applyMaskJs ?? mask.applyMask;
    const candidates = {
      copy: () => frame.set(source, header),
      // In place in the frame: masking as a fraction of a plain copy of the same bytes.
      applyMask: () => mask.applyMask(frame, header, header + size, key, 0),
    };
    if (simd !== null) {
      // A client: copy the payload into its frame and mask it (encodeFrame).
      candidates['mask: ours'] = () => mask.copyMasked(source, frame, header, key);
      candidates['mask: ours-js'] = () => {
        frame.set(source, header);
        js(frame, header, header + size, key, 0);
      };
    }
    if (bufferutil !== null) candidates['mask: bufferutil'] = () => bufferutil.mask(source, key, frame, header, size);
    candidates['mask: ws-js'] = () => bytewise(source, key, frame, header, size);
    // A server: unmask a chunk's payload and copy it into the message's own buffer, as FrameParser
    // and MessageReader do (ws + bufferutil: unmask in place, then copy).
    const message = Buffer.allocUnsafeSlow(size);
    if (simd !== null) {
      candidates['unmask: ours'] = () => {
        for (let from = header, phase = 0; from < header + size; ) {
          const unmasked = mask.unmaskedCopy(chunk, from, header + size, key, phase);
          if (unmasked === 0) {
            mask.applyMask(chunk, from, header + size, key, phase);
            chunk.copy(message, from - header, from, header + size);
            break;
          }
          mask.unmaskScratch().copy(message, from - header, 0, unmasked);
          mask.releaseUnmaskedCopy();
          from += unmasked;
          phase = (phase + unmasked) & 3;
        }
      };
      candidates['unmask: ours-js'] = () => {
        js(chunk, header, header + size, key, 0);
        chunk.copy(message, 0, header, header + size);
      };
    }
    if (bufferutil !== null) {
      candidates['unmask: bufferutil'] = () => {
        bufferutil.unmask(payload, key);
        chunk.copy(message, 0, header, header + size);
      };
    }
    const row = { size, gbps: throughputs(candidates, size) };
    pool.releaseFrameBuffer?.(frame);
    results.push(row);
  }
  return results;
}

/**
 * Each path through the WebAssembly kernel against the JavaScript loop doing the same work, with
 * the thresholds lifted: where each path starts to win is where mask.ts's KERNEL_MIN_BYTES are.
 */
function crossover(mask, simd, key) {
  if (simd === null) throw new Error('--mask-crossover needs a build with the WebAssembly kernel');
  const kernel = simd.maskKernel();
  const saved = { ...mask.KERNEL_MIN_BYTES };
  for (const name of Object.keys(mask.KERNEL_MIN_BYTES)) mask.KERNEL_MIN_BYTES[name] = 0;
  const results = [];
  try {
    for (const size of job.sizes) {
      const header = size <= 125 ? 6 : size <= 65535 ? 8 : 14;
      const plain = randomFillSync(Buffer.allocUnsafeSlow(size + header));
      const source = randomFillSync(Buffer.allocUnsafeSlow(size));
      // Bytes in the kernel's memory, as in a pooled frame (the frame arena is past the scratch).
      const at = simd.FRAME_ARENA_OFFSET;
      const inKernel = kernel.memory.subarray(at, at + size + header);
      const paths = {
        inPlace: [() => mask.applyMask(inKernel, header, header + size, key, 0), () => mask.applyMaskJs(inKernel, header, header + size, key, 0)],
        roundTrip: [() => mask.applyMask(plain, header, header + size, key, 0), () => mask.applyMaskJs(plain, header, header + size, key, 0)],
        copy: [
          () => mask.copyMasked(source, plain, header, key),
          () => {
            plain.set(source, header);
            mask.applyMaskJs(plain, header, header + size, key, 0);
          },
        ],
        unmaskCopy: [
          () => {
            mask.unmaskedCopy(plain, header, header + size, key, 0);
            mask.releaseUnmaskedCopy();
          },
          () => mask.applyMaskJs(plain, header, header + size, key, 0),
        ],
      };
      const candidates = {};
      for (const [name, [viaKernel, viaJs]] of Object.entries(paths)) {
        candidates[`${name}: kernel`] = viaKernel;
        candidates[`${name}: js`] = viaJs;
      }
      const row = { size, gbps: throughputs(candidates, size) };
      results.push(row);
    }
  } finally {
    Object.assign(mask.KERNEL_MIN_BYTES, saved);
  }
  return results;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  if (job.role === 'mask') return maskBench();
  if (job.kind === 'idle') return job.role === 'server' ? idleServer() : idleClient();
  if (job.kind === 'handshake') return job.role === 'server' ? handshakeServer() : handshakeClient();
  if (job.kind === 'echo-many') return job.role === 'server' ? manyEchoServer() : manyEchoClient();
  const payload = makePayload();
  if (job.role === 'server') {
    let connected = false;
    let serverExtensions = '';
    const { port } = await impl.server({
      isText: job.text,
      deflate: job.deflate === true,
      onConnection(conn) {
        if (connected) return;
        serverExtensions = conn.extensions;
        connected = true;
        if (job.kind === 'c2s') {
          const counter = { msgs: 0, bytes: 0 };
          conn.receive(counter);
          onRun = (schedule) => runReceiver(counter, schedule);
        } else if (job.kind === 's2c') {
          const sendOne = conn.sender(payload);
          onRun = (schedule) => runSender(sendOne, schedule).catch((error) => report({ type: 'error', message: String(error?.stack ?? error) }));
        } else if (job.kind === 'echo') {
          conn.echo();
          // The client counts the round trips; the server reports its CPU time at the marks.
          onRun = (schedule) => runReceiver({ msgs: 0, bytes: 0 }, schedule);
        }
        report({ type: 'connected', extensions: serverExtensions });
      },
    });
    report({ type: 'listening', port, info: impl.info?.() });
  } else {
    // The client process starts while the server does; it learns the URL once the server listens.
    const url = await serverUrl();
    const conn = await impl.client(url, { isText: job.text, deflate: job.deflate === true });
    if (job.kind === 'c2s') {
      const sendOne = conn.sender(payload);
      onRun = (schedule) => runSender(sendOne, schedule).catch((error) => report({ type: 'error', message: String(error?.stack ?? error) }));
    } else if (job.kind === 's2c') {
      const counter = { msgs: 0, bytes: 0 };
      conn.receive(counter);
      onRun = (schedule) => runReceiver(counter, schedule);
    } else if (job.kind === 'echo') {
      const ping = conn.pinger(payload);
      onRun = (schedule) => runPinger(ping, schedule).catch((error) => report({ type: 'error', message: String(error?.stack ?? error) }));
    }
    report({ type: 'open', info: impl.info?.(), extensions: conn.extensions ?? '' });
  }
}

main().catch((error) => {
  report({ type: 'error', message: String(error?.stack ?? error) });
  setTimeout(() => process.exit(1), 100);
});
