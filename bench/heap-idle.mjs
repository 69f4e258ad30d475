// What an idle server connection holds on the V8 heap, by constructor: a heap snapshot before and
// after N connections (opened by ws clients in a child process), divided by N.
// usage: node --expose-gc bench/heap-idle.mjs ours|ws [N]   (BENCH_LIB picks the library build)
import { fork } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import { importLibrary } from './impls.mjs';

const noop = () => {};

if (process.argv[2] === '--client') {
  const { WebSocket } = await import('ws');
  const [url, n] = [process.argv[3], Number(process.argv[4])];
  const sockets = [];
  let open = 0;
  for (let i = 0; i < n; i++) {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    sockets.push(ws);
    ws.once('open', () => {
      if (++open === n) process.send('open');
    });
  }
  setInterval(noop, 1000);
} else {
  const impl = process.argv[2];
  const n = Number(process.argv[3] ?? 1000);
  if (!['ours', 'ws'].includes(impl) || typeof globalThis.gc !== 'function') {
    console.error('usage: node --expose-gc bench/heap-idle.mjs ours|ws [N]');
    process.exit(1);
  }
  let count = 0;
  const held = [];
  let port;
  if (impl === 'ws') {
    const { WebSocketServer } = await import('ws');
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
    await new Promise((resolve) => server.once('listening', resolve));
    port = server.address().port;
    server.on('connection', (ws) => {
      count++;
      ws.on('message', noop);
    });
  } else {
    const { WebSocketStreamServer } = await importLibrary();
    const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1' });
    await server.listening;
    port = server.address().port;
    (async () => {
      for await (const stream of server.connections) {
        stream.opened.then(({ readable }) => {
          count++;
          held.push(stream);
          readable.getReader().read().catch(noop);
        }, noop);
      }
    })();
  }
  const byConstructor = () => {
    globalThis.gc();
    const file = v8.writeHeapSnapshot(path.join(os.tmpdir(), `heap-idle-${process.pid}-${Date.now()}.heapsnapshot`));
    const snapshot = JSON.parse(readFileSync(file, 'utf8'));
    rmSync(file);
    const fields = snapshot.snapshot.meta.node_fields;
    const types = snapshot.snapshot.meta.node_types[0];
    const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
    const totals = new Map();
    for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
      const type = types[snapshot.nodes[i + typeAt]];
      const name = type === 'object' || type === 'closure' ? snapshot.strings[snapshot.nodes[i + nameAt]] || '(anonymous)' : `(${type})`;
      const entry = totals.get(name) ?? { count: 0, bytes: 0 };
      entry.count++;
      entry.bytes += snapshot.nodes[i + sizeAt];
      totals.set(name, entry);
    }
    return totals;
  };
  const before = byConstructor();
  const client = fork(new URL(import.meta.url).pathname, ['--client', `ws://127.0.0.1:${port}/`, String(n)]);
  await new Promise((resolve) => client.once('message', resolve));
  while (count < n) await new Promise((resolve) => setTimeout(resolve, 10));
  await new Promise((resolve) => setTimeout(resolve, 300));
  const after = byConstructor();
  const rows = [...after].map(([name, { count: c, bytes }]) => {
    const base = before.get(name) ?? { count: 0, bytes: 0 };
    return { name, count: (c - base.count) / n, bytes: (bytes - base.bytes) / n };
  });
  rows.sort((a, b) => b.bytes - a.bytes);
  console.log(`${impl}: ${rows.reduce((sum, r) => sum + r.bytes, 0).toFixed(0)} bytes of heap per idle connection (${n} connections)`);
  console.log('  bytes  count  constructor or kind');
  for (const r of rows.slice(0, 25)) console.log(`${r.bytes.toFixed(0).padStart(7)}  ${r.count.toFixed(1).padStart(5)}  ${r.name.slice(0, 70)}`);
  client.kill();
  process.exit(0);
}
