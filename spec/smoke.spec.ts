import { expect } from 'chai';
import { WebSocketStream } from '../lib/index.js';
import { startRawServer } from './helpers/raw-peer.js';

describe('smoke', () => {
  it('opens and echoes against the raw peer', async () => {
    const server = await startRawServer();
    try {
      const stream = new WebSocketStream(server.url);
      const { peer } = await server.accept();
      const { writable } = await stream.opened;
      const writer = writable.getWriter();
      await writer.write('hi');
      const frame = await peer.nextFrame();
      expect(frame.masked).to.equal(true);
      expect(frame.payload.toString()).to.equal('hi');
      stream.close();
      const close = await peer.nextFrame();
      expect(close.opcode).to.equal(8);
      expect(close.payload.length).to.equal(0);
      peer.sendClose();
      peer.socket.end();
      expect(await stream.closed).to.deep.equal({ closeCode: 1005, reason: '' });
    } finally {
      await server.close();
    }
  });
});
