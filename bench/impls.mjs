// The implementations under test, behind one small interface each child process uses.
//
// A connection adapter ("conn") offers:
//   sender(payload)  -> sendOne(): sends one message and returns undefined, or a promise to await
//                       before the next one (flow control, the way a user of that API does it)
//   receive(counter) -> counts every message into counter.msgs / counter.bytes
//   echo()           -> sends every message it receives back
//   pinger(payload)  -> ping(): a promise that resolves when the echo of one message came back
//   idle()           -> holds the connection open with a pending read, as an idle server would
//   handle           -> the library's own object (a WebSocket, a WebSocketStream), which an
//                       application keeps to close the connection later
//
// An implementation also offers handshake(url): one open-then-close cycle as a client, resolving
// to true when the connection closed cleanly with 1000 (see bench/README.md, "Handshakes").
//
// Every adapter is written the way a user of that library would write it, nothing cleverer.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const require = createRequire(import.meta.url);
const noop = () => {};

/**
 * How many bytes ws / undici's WebSocket may hold in `bufferedAmount` before the sender waits:
 * Node's default writableHighWaterMark for sockets, i.e. where socket.write() starts returning false.
 */
export const BUFFERED_HIGH_WATER_MARK = 16 * 1024;

/** Where the library's built ESM lives: BENCH_LIB (relative to the repository root) or dist/esm. */
export function libraryDir() {
  const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
  return path.resolve(root, process.env.BENCH_LIB || 'dist/esm');
}

export async function importLibrary(file = 'index.js') {
  return import(pathToFileURL(path.join(libraryDir(), file)).href);
}

// ---------------------------------------------------------------------------------------------
// This library (and undici's WebSocketStream: the same WHATWG API).

/**
 * A WebSocketStream connection. `opened.readable` and `opened.writable` are read only where a
 * method needs them, never up front: the library may build its streams on first access, and an
 * idle connection that never touches its writable must not be charged for one.
 *
 * idleMode: 'read' (hold a pending read, nothing else) or 'rw' (what an application that may
 * also write holds: `const { readable, writable } = opened`, a reader with a pending read and a
 * writer).
 */
function streamConn(opened, handle, idleMode = 'read') {
  return {
    handle,
    extensions: opened.extensions,
    sender(payload) {
      const writer = opened.writable.getWriter();
      // for (;;) { await writer.ready; writer.write(chunk); }: the WebSocketStream way.
      return () => {
        writer.write(payload).catch(noop);
        return writer.ready;
      };
    },
    receive(counter) {
      const reader = opened.readable.getReader();
      (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          counter.msgs++;
          counter.bytes += typeof value === 'string' ? value.length : value.byteLength;
        }
      })().catch(noop);
    },
    echo() {
      // The README's echo loop.
      const { readable, writable } = opened;
      readable.pipeTo(writable).catch(noop);
    },
    pinger(payload) {
      const { readable, writable } = opened;
      const writer = writable.getWriter();
      const reader = readable.getReader();
      return async () => {
        writer.write(payload).catch(noop);
        const { done } = await reader.read();
        if (done) throw new Error('the connection closed');
      };
    },
    idle() {
      if (idleMode === 'rw') {
        const { readable, writable } = opened;
        readable.getReader().read().catch(noop);
        writable.getWriter();
      } else {
        opened.readable.getReader().read().catch(noop);
      }
    },
  };
}

/** One WebSocketStream handshake cycle: opened, close(1000), closed. */
async function streamHandshake(stream) {
  await stream.opened;
  stream.close({ closeCode: 1000 });
  const { closeCode } = await stream.closed;
  return closeCode === 1000;
}

// ---------------------------------------------------------------------------------------------
// ws (with or without bufferutil: decided by WS_NO_BUFFER_UTIL in the child's environment).

function wsConn(ws, isText) {
  const options = { binary: !isText };
  return {
    handle: ws,
    extensions: ws.extensions ?? '',
    sender(payload) {
      // ws.send(data, cb) queues without limit; a careful user waits for the callback of a send
      // made while bufferedAmount is high, which is what this does.
      return () => {
        if (ws.bufferedAmount >= BUFFERED_HIGH_WATER_MARK) {
          return new Promise((resolve) => ws.send(payload, options, resolve));
        }
        ws.send(payload, options);
        return undefined;
      };
    },
    receive(counter) {
      ws.on('message', (data, isBinary) => {
        counter.msgs++;
        // A text message is wanted as a string, which WebSocketStream hands over: decode it here too.
        counter.bytes += isBinary ? data.length : data.toString().length;
      });
    },
    echo() {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    },
    pinger(payload) {
      let next = null;
      ws.on('message', () => {
        const resolve = next;
        next = null;
        resolve?.();
      });
      return () =>
        new Promise((resolve) => {
          next = resolve;
          ws.send(payload, options);
        });
    },
    idle() {
      ws.on('message', noop);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// undici's WebSocket (the browser API: no send callback, so bufferedAmount is polled).

function undiciWebSocketConn(ws) {
  ws.binaryType = 'arraybuffer';
  const drained = (resolve) => {
    if (ws.bufferedAmount < BUFFERED_HIGH_WATER_MARK || ws.readyState !== 1) resolve();
    else setImmediate(drained, resolve);
  };
  return {
    handle: ws,
    sender(payload) {
      return () => {
        ws.send(payload);
        if (ws.bufferedAmount >= BUFFERED_HIGH_WATER_MARK) return new Promise((resolve) => setImmediate(drained, resolve));
        return undefined;
      };
    },
    receive(counter) {
      ws.addEventListener('message', (event) => {
        counter.msgs++;
        const data = event.data;
        counter.bytes += typeof data === 'string' ? data.length : data.byteLength;
      });
    },
    echo() {
      ws.addEventListener('message', (event) => ws.send(event.data));
    },
    pinger(payload) {
      let next = null;
      ws.addEventListener('message', () => {
        const resolve = next;
        next = null;
        resolve?.();
      });
      return () =>
        new Promise((resolve) => {
          next = resolve;
          ws.send(payload);
        });
    },
    idle() {
      ws.addEventListener('message', noop);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The implementations: a client, and where there is one, a server.

function wsInfo() {
  // ws picks bufferutil or its JS loop when it loads: ask the same module instance ws uses.
  const bufferUtil = require(path.join(path.dirname(require.resolve('ws')), 'lib', 'buffer-util.js'));
  return { bufferutil: bufferUtil.mask.toString().includes('bufferUtil') };
}

async function wsServer({ onConnection, isText, deflate = false }) {
  const { WebSocketServer } = require('ws');
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: deflate, maxPayload: 256 * 1024 * 1024 });
  await new Promise((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  server.on('connection', (ws) => {
    // An application listens for errors, or one reset connection takes the process down.
    ws.on('error', noop);
    onConnection(wsConn(ws, isText));
  });
  return { port: server.address().port };
}

async function wsClient(url, { isText, deflate = false } = {}) {
  const { WebSocket } = require('ws');
  const ws = new WebSocket(url, { perMessageDeflate: deflate, maxPayload: 256 * 1024 * 1024 });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  ws.on('error', noop);
  return wsConn(ws, isText);
}

function wsHandshake(url) {
  const { WebSocket } = require('ws');
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => ws.close(1000));
    ws.once('error', reject);
    ws.once('close', (code) => resolve(code === 1000));
  });
}

/** This library; idleMode picks what an idle connection holds (see streamConn). */
function ours(idleMode) {
  return {
    label: 'websocketstream-node',
    async client(url, { deflate = false } = {}) {
      const { WebSocketStream } = await importLibrary();
      // The client offers permessage-deflate by default: say what each scenario wants.
      const stream = new WebSocketStream(url, { maxPayload: 256 * 1024 * 1024, perMessageDeflate: deflate });
      return streamConn(await stream.opened, stream, idleMode);
    },
    async server({ onConnection, deflate = false }) {
      const { WebSocketStreamServer } = await importLibrary();
      const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1', maxPayload: 256 * 1024 * 1024, perMessageDeflate: deflate });
      await server.listening;
      (async () => {
        for await (const stream of server.connections) stream.opened.then((opened) => onConnection(streamConn(opened, stream, idleMode)), noop);
      })().catch(noop);
      return { port: server.address().port };
    },
    async handshake(url) {
      const { WebSocketStream } = await importLibrary();
      return streamHandshake(new WebSocketStream(url, { perMessageDeflate: false }));
    },
    info: () => ({ lib: libraryDir() }),
  };
}

export const IMPLEMENTATIONS = {
  ours: ours('read'),
  // The same, but an idle connection holds a reader with a pending read and a writer.
  'ours-rw': ours('rw'),
  ws: { label: 'ws', client: wsClient, server: wsServer, handshake: wsHandshake, info: wsInfo, env: { WS_NO_BUFFER_UTIL: '1' } },
  'ws-bufferutil': { label: 'ws + bufferutil', client: wsClient, server: wsServer, handshake: wsHandshake, info: wsInfo, env: {} },
  'undici-ws': {
    label: 'undici WebSocket',
    async client(url) {
      const { WebSocket } = require('undici');
      const ws = new WebSocket(url);
      await new Promise((resolve, reject) => {
        ws.addEventListener('open', resolve, { once: true });
        ws.addEventListener('error', (event) => reject(event.error ?? new Error('undici WebSocket failed')), { once: true });
      });
      return { ...undiciWebSocketConn(ws), extensions: ws.extensions };
    },
    handshake(url) {
      const { WebSocket } = require('undici');
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(url);
        ws.addEventListener('open', () => ws.close(1000), { once: true });
        ws.addEventListener('error', (event) => reject(event.error ?? new Error('undici WebSocket failed')), { once: true });
        ws.addEventListener('close', (event) => resolve(event.wasClean && event.code === 1000), { once: true });
      });
    },
    info: () => ({ version: require('undici/package.json').version }),
  },
  'undici-wss': {
    label: 'undici WebSocketStream',
    async client(url) {
      const { WebSocketStream } = require('undici');
      const stream = new WebSocketStream(url);
      return streamConn(await stream.opened, stream);
    },
    handshake(url) {
      const { WebSocketStream } = require('undici');
      return streamHandshake(new WebSocketStream(url));
    },
    info: () => ({ version: require('undici/package.json').version }),
  },
};

// Another build of this library (BENCH_LIB_B), for before/after comparisons in one run: run.mjs
// points the child's BENCH_LIB at it.
IMPLEMENTATIONS['ours-b'] = IMPLEMENTATIONS.ours;
IMPLEMENTATIONS['ours-b-rw'] = IMPLEMENTATIONS['ours-rw'];

/** Whether undici exports a WebSocketStream (it does from 7.x on). */
export function hasUndiciWebSocketStream() {
  try {
    return typeof require('undici').WebSocketStream === 'function';
  } catch {
    return false;
  }
}

/** Whether bufferutil loads as a native addon here (its JS fallback does not count). */
export function hasNativeBufferutil() {
  try {
    const dir = path.dirname(require.resolve('bufferutil/package.json'));
    require('node-gyp-build')(dir);
    return true;
  } catch {
    return false;
  }
}
