// An echo server for the Autobahn fuzzingclient: `node autobahn/server.mjs [port] [--http2]`
// (--http2: WebSockets over HTTP/2 only, h2c, for autobahn/run-h2.mjs).
import { WebSocketStreamServer } from '../dist/esm/index.js';

const port = Number(process.argv[2] ?? 9001);
const http2 = process.argv.includes('--http2');
const server = new WebSocketStreamServer({ port, host: '127.0.0.1', perMessageDeflate: true, http2 });
await server.listening;
console.log(`echo server on ws://127.0.0.1:${port}${http2 ? ' (HTTP/2, h2c)' : ''}`);
for await (const peer of server.connections) {
  peer.opened.then(({ readable, writable }) => readable.pipeTo(writable)).catch(() => {});
}
