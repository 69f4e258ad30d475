// An echo server for the Autobahn fuzzingclient: `node autobahn/server.mjs [port]`.
import { WebSocketStreamServer } from '../dist/esm/index.js';

const port = Number(process.argv[2] ?? 9001);
const server = new WebSocketStreamServer({ port, host: '127.0.0.1', perMessageDeflate: true });
await server.listening;
console.log(`echo server on ws://127.0.0.1:${port}`);
for await (const peer of server.connections) {
  peer.opened.then(({ readable, writable }) => readable.pipeTo(writable)).catch(() => {});
}
