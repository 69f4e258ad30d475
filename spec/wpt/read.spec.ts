// Port of web-platform-tests websockets/stream/tentative/read.any.js (docs/semantics.md#the-readable).
import { expect } from 'chai';
import { wptSuite } from './harness.js';

wptSuite('read.any.js', (t) => {
  it('read type for binary messages is Uint8Array', async function () {
    const wss = t.open(t.ECHOURL);
    const { readable, writable } = await wss.opened;
    const writer = writable.getWriter();
    const MESSAGE_SIZE = 16;
    const written = writer.write(new Uint8Array(MESSAGE_SIZE));
    const reader = readable.getReader();
    const { value, done } = await reader.read();
    expect(done, 'done should be false').to.equal(false);
    expect(value, 'instanceof should give Uint8Array').to.be.instanceOf(Uint8Array);
    const bytes = value as Uint8Array;
    expect(bytes.constructor, 'value should be a Uint8Array').to.equal(Uint8Array);
    expect(ArrayBuffer.isView(bytes), 'value should be a view').to.equal(true);
    expect(bytes.length, 'length should match').to.equal(MESSAGE_SIZE);
    expect(bytes.byteLength, 'binary_length should match').to.equal(MESSAGE_SIZE);
    await written;
    wss.close();
  });
});
