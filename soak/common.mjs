// Shared by the soak orchestrator and its child processes: loading the library build, the
// parent/child RPC, deterministic messages, checksums and memory figures.
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, '..');
export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** The library build under test: SOAK_LIB (a directory or an index.js, relative to the repository root) or dist/esm. */
export function libraryEntry() {
  const setting = process.env.SOAK_LIB;
  if (setting === undefined || setting === '') return path.join(root, 'dist', 'esm', 'index.js');
  const resolved = path.resolve(root, setting);
  return resolved.endsWith('.js') ? resolved : path.join(resolved, 'index.js');
}

export async function loadLibrary() {
  return import(pathToFileURL(libraryEntry()).href);
}

// ---------------------------------------------------------------------------------------------
// RPC between the orchestrator and a forked child: { rpc, cmd, args } → { rpc, result | error }.

/** In a child: answer the orchestrator's calls with `handlers[cmd](args)`. */
export function serveRpc(handlers) {
  process.on('message', async (message) => {
    if (message === null || typeof message !== 'object' || message.rpc === undefined) return;
    const handler = handlers[message.cmd];
    try {
      if (handler === undefined) throw new Error(`unknown command ${message.cmd}`);
      const result = await handler(message.args ?? {});
      process.send({ rpc: message.rpc, result: result ?? null });
    } catch (error) {
      process.send({ rpc: message.rpc, error: String(error?.stack ?? error) });
    }
  });
  // A child never outlives the orchestrator.
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------
// Memory and resources.

/** Runs full GCs until the heap settles (needs --expose-gc), then reports memory. */
export async function collect() {
  if (typeof globalThis.gc !== 'function') throw new Error('run with --expose-gc');
  let previous = Infinity;
  for (let i = 0; i < 6; i++) {
    globalThis.gc();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const used = process.memoryUsage().heapUsed;
    if (Math.abs(previous - used) < 64 * KiB) break;
    previous = used;
  }
  return memory();
}

export function memory() {
  const usage = process.memoryUsage();
  return {
    rss: usage.rss,
    heapUsed: usage.heapUsed,
    heapTotal: usage.heapTotal,
    arrayBuffers: usage.arrayBuffers,
    external: usage.external,
    // The kernel's high-water mark of this process's RSS, since it started (KiB in resourceUsage).
    maxRss: process.resourceUsage().maxRSS * KiB,
  };
}

/** process.getActiveResourcesInfo() as counts by kind, e.g. { TCPSocketWrap: 3, Timeout: 1 }. */
export function activeResources() {
  const counts = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

// ---------------------------------------------------------------------------------------------
// Deterministic data.

/** A 32-bit integer hash (lowbias32): the same numbers give the same messages on both sides. */
export function hash32(x) {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** A seeded PRNG (mulberry32) returning floats in [0, 1). */
export function prng(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Pseudo-random bytes from a seed. */
export function randomBytes(size, seed) {
  const bytes = Buffer.allocUnsafe(size);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    // xorshift32
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    bytes[i] = state & 0xff;
  }
  return bytes;
}

/** Largest echo message the pools allow. */
export const MAX_ECHO_SIZE = 64 * KiB;
const POOL_SLACK = 8 * KiB;
const BYTE_POOL = randomBytes(MAX_ECHO_SIZE + POOL_SLACK, 0x5eed);
// ASCII with some 2- and 3-byte UTF-8 characters, and no surrogates (a cut pair would not round-trip).
const TEXT_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:-_éüßλжא€✓';
const TEXT_POOL = Array.from(randomBytes(MAX_ECHO_SIZE + POOL_SLACK, 0x7e47), (b) => TEXT_ALPHABET[b % TEXT_ALPHABET.length]).join('');

/**
 * Message `seq` of connection `conn` in the echo scenarios: 1 B to `maxSize`, text or binary, sizes
 * log-uniform (so small messages are common and large ones present; every 50th is exactly
 * `maxSize`, the next one exactly 1 B). It starts with its numbers when it is large enough:
 * "#conn.seq;" for text, conn and seq as two little-endian uint32 for binary.
 */
export function echoMessage(conn, seq, maxSize) {
  const h = hash32((conn * 0x10001 + seq * 0x9e3779b1) >>> 0);
  const text = (h & 1) === 0;
  let size;
  if (seq % 50 === 0) size = maxSize;
  else if (seq % 50 === 1) size = 1;
  else size = Math.max(1, Math.min(maxSize, Math.floor(Math.exp(((h >>> 8) / 16777216) * Math.log(maxSize + 1)))));
  const offset = (h >>> 4) % POOL_SLACK;
  if (text) {
    const header = `#${conn}.${seq};`;
    if (size <= header.length) return header.slice(0, size);
    return header + TEXT_POOL.slice(offset, offset + size - header.length);
  }
  const bytes = new Uint8Array(size);
  bytes.set(BYTE_POOL.subarray(offset, offset + size));
  const header = Buffer.alloc(8);
  header.writeUInt32LE(conn, 0);
  header.writeUInt32LE(seq, 4);
  bytes.set(header.subarray(0, Math.min(8, size)));
  return bytes;
}

/** The numbers a received echo message claims, when it is large enough to carry them. */
export function echoNumbers(message) {
  if (typeof message === 'string') {
    const match = /^#(\d+)\.(\d+);/.exec(message);
    return match === null ? null : { conn: Number(match[1]), seq: Number(match[2]) };
  }
  if (message.byteLength < 8) return null;
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  return { conn: view.getUint32(0, true), seq: view.getUint32(4, true) };
}

export function sameMessage(a, b) {
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  return a.byteLength === b.byteLength && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

export function messageBytes(message) {
  return typeof message === 'string' ? Buffer.byteLength(message) : message.byteLength;
}

/**
 * The bulk scenario's data: messages of `minSize`–`maxSize` bytes, sizes and contents from `seed`,
 * cut from a random pool, until `total` bytes. Yields views; the library copies them on write.
 */
export function* bulkMessages(total, minSize, maxSize, seed) {
  const pool = randomBytes(maxSize * 2, seed);
  const random = prng(seed);
  let sent = 0;
  while (sent < total) {
    const size = Math.min(total - sent, minSize + Math.floor(random() * (maxSize - minSize + 1)));
    const offset = Math.floor(random() * maxSize);
    sent += size;
    yield pool.subarray(offset, offset + size);
  }
}

/** A running checksum (SHA-256 of all bytes in order) with a byte and message count. */
export class Tally {
  #hash = createHash('sha256');
  messages = 0;
  bytes = 0;
  add(chunk) {
    this.messages++;
    this.bytes += chunk.byteLength;
    this.#hash.update(chunk);
  }
  result() {
    return { messages: this.messages, bytes: this.bytes, checksum: this.#hash.digest('hex').slice(0, 16) };
  }
}

// ---------------------------------------------------------------------------------------------
// Small things.

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves with `promise`'s value, or rejects after `ms` with an Error saying `what` timed out. */
export function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Runs `task(i)` for i in [0, count) with at most `concurrency` at once. */
export async function pool(count, concurrency, task) {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

/** Keeps the first few distinct error messages, and counts them all. */
export class ErrorLog {
  count = 0;
  samples = [];
  add(where, error) {
    this.count++;
    const text = `${where}: ${error?.message ?? error}${error?.cause?.message ? ` (cause: ${error.cause.message})` : ''}`;
    if (this.samples.length < 8 && !this.samples.includes(text)) this.samples.push(text);
  }
  toJSON() {
    return { count: this.count, samples: this.samples };
  }
}

/**
 * Memory still live (heap used + ArrayBuffers), after forced GCs. V8 frees the backing stores of
 * collected ArrayBuffers on a background thread after the GC, which on a busy machine takes a
 * while: up to four rounds of GC and a 10 ms wait, keeping the lowest figures.
 */
async function liveMemory() {
  let best = null;
  for (let i = 0; i < 4; i++) {
    globalThis.gc();
    await sleep(10);
    const { heapUsed, arrayBuffers } = process.memoryUsage();
    // arrayBuffers is Node's allocator's own count; V8's `external` lags further behind.
    if (best === null || heapUsed + arrayBuffers < best.heapUsed + best.arrayBuffers) best = { heapUsed, arrayBuffers };
    if (i > 0 && best.arrayBuffers < 4 * MiB) break;
  }
  return best;
}

/**
 * The slow reader of the bulk scenario: reads every message of `reader` into a Tally; after every
 * `readEvery` messages it waits on a timer long enough to hold the average rate at `readRate`
 * bytes/s (at least 1 ms). Every `sampleEvery` messages it samples the memory still live after a
 * forced GC: what the library holds for this connection while the reader lags, without the
 * garbage V8 has not collected yet.
 */
export async function slowRead(reader, { readRate, readEvery, sampleEvery, idleTimeoutMs }) {
  const tally = new Tally();
  let first = 0;
  let sleeps = 0;
  let liveMax = 0;
  const base = await liveMemory();
  for (;;) {
    const { value, done } = await within(reader.read(), idleTimeoutMs, 'bulk read');
    if (done) break;
    if (first === 0) first = performance.now();
    tally.add(value);
    if (tally.messages % sampleEvery === 0) {
      const live = await liveMemory();
      liveMax = Math.max(liveMax, live.heapUsed + live.arrayBuffers - base.heapUsed - base.arrayBuffers);
    }
    if (tally.messages % readEvery === 0) {
      const ahead = (tally.bytes / readRate) * 1000 - (performance.now() - first);
      await sleep(Math.max(1, ahead));
      sleeps++;
    }
  }
  return { ...tally.result(), ms: first === 0 ? 0 : performance.now() - first, sleeps, liveMax };
}
