// An echo round trip against a local server, both from this library: `npm run example`.
import { WebSocketStream, WebSocketStreamServer } from '../dist/esm/index.js';

// The server: every accepted connection echoes what it reads.
const server = new WebSocketStreamServer({ port: 0, host: '127.0.0.1' });
await server.listening;
(async () => {
  for await (const peer of server.connections) {
    peer.opened.then(({ readable, writable }) => readable.pipeTo(writable)).catch(() => {});
  }
})();
const url = `ws://127.0.0.1:${server.address().port}/echo`;

// The client.
const wss = new WebSocketStream(url);
const { readable, writable } = await wss.opened;
const writer = writable.getWriter();
const reader = readable.getReader();

await writer.write('hello, WebSocketStream');
console.log('text echoed:  ', (await reader.read()).value);
await writer.write(new Uint8Array([1, 2, 3, 4]));
console.log('binary echoed:', (await reader.read()).value);

wss.close({ closeCode: 1000, reason: 'done' });
console.log('closed:       ', await wss.closed);
await server.close();
