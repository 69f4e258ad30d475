import { expect } from 'chai';
import { fork } from 'node:child_process';
import { WebSocketStream } from '../lib/index.js';

// A peer in another process, so it can answer while this process's event loop is blocked: a raw
// WebSocket server that echoes the client's close frame at once.
const PEER = `
const net = require('node:net');
const crypto = require('node:crypto');
const server = net.createServer((socket) => {
  let buffered = Buffer.alloc(0);
  let upgraded = false;
  socket.on('data', (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    if (!upgraded) {
      const end = buffered.indexOf('\\r\\n\\r\\n');
      if (end === -1) return;
      const key = /sec-websocket-key: *(\\S+)/i.exec(buffered.toString('latin1', 0, end))[1];
      const accept = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
      socket.write('HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: ' + accept + '\\r\\n\\r\\n');
      upgraded = true;
      buffered = buffered.subarray(end + 4);
    }
    // A masked close frame from the client: answer with an unmasked close 1000 "bye", then end.
    if (buffered.length >= 2 && (buffered[0] & 0x0f) === 0x8) {
      socket.end(Buffer.from([0x88, 5, 0x03, 0xe8, 0x62, 0x79, 0x65]));
    }
  });
  socket.on('error', () => {});
});
server.listen(0, '127.0.0.1', () => process.send(server.address().port));
process.on('disconnect', () => process.exit(0));
`;

describe('connection timers on a busy event loop', () => {
  it('a close timer that expires while the peer\'s close frame waits unread still sees the frame', async () => {
    const child = fork('-e', [PEER], { execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    try {
      const port = await new Promise<number>((resolve) => child.once('message', (message) => resolve(message as number)));
      const stream = new WebSocketStream(`ws://127.0.0.1:${port}`, { closeTimeout: 100 });
      await stream.opened;
      stream.close({ closeCode: 1000, reason: 'bye' });
      // Block this loop well past the close timeout; the peer answers meanwhile, so its close
      // frame sits unread in the socket when the expired timer runs.
      const until = Date.now() + 1000;
      while (Date.now() < until) {
        // busy
      }
      expect(await stream.closed).to.deep.equal({ closeCode: 1000, reason: 'bye' });
    } finally {
      child.disconnect();
    }
  });
});
