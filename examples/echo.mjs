// An echo round trip against a local server: `npm run example`.
import { WebSocketServer } from 'ws';
import { WebSocketStream } from '../dist/esm/index.js';

const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
await new Promise((resolve) => server.once('listening', resolve));
server.on('connection', (socket) => socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary })));
const url = `ws://127.0.0.1:${server.address().port}/echo`;

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
server.close();
