// Port of web-platform-tests websockets/stream/tentative/write.any.js (docs/semantics.md#the-writable).
import { expect } from 'chai';
import { WebSocketError, WebSocketStream } from '../../lib/index.js';
import { GOODBYE_MESSAGE } from './handlers.js';
import { expectDomException, garbageCollect, handled, rejection, wptSuite, type WptFixture } from './harness.js';

// This message needs to be large enough that writing it cannot complete synchronously, and to
// fill up the TCP send buffer and any internal send buffers, so that the client has to receive
// the server's close frame before it can complete sending it.
const BIG_MESSAGE_SIZE = 8 * 1024 * 1024;

/**
 * Sends "Goodbye" to tell the echo_exit handler to close, and right after it a big message that
 * cannot be completely sent before the connection closes: the handler sends its close frame and
 * then, reading the big message's header where it wanted the client's close frame, drops the
 * connection. Waits for the "Goodbye" write and for the (unclean) close.
 */
async function sendGoodbyeThenBigMessage(t: WptFixture): Promise<{ writer: WritableStreamDefaultWriter<unknown>; bigMessagePromise: Promise<void> }> {
  const wss = t.open(`${t.BASEURL}/echo_exit`);
  const { writable } = await wss.opened;
  const writer = writable.getWriter();
  const bigMessage = new Uint8Array(BIG_MESSAGE_SIZE);
  const goodbyePromise = writer.write(GOODBYE_MESSAGE);
  const bigMessagePromise = handled(writer.write(bigMessage));
  await goodbyePromise;
  const closedError = await rejection(wss.closed, 'closed');
  expect((closedError as object).constructor, 'a WebSocketError should be thrown').to.equal(WebSocketError);
  // docs/semantics.md#clean-and-unclean-closes: the code of the close frame that did arrive (echo_exit closes with 1000).
  expect((closedError as WebSocketError).closeCode).to.equal(1000);
  expect((await t.server.session()).wasReset, 'the stand-in should have dropped the connection').to.equal(true);
  return { writer, bigMessagePromise };
}

wptSuite('write.any.js', (t) => {
  it('a write that was incomplete at close time should reject', async function () {
    const { writer, bigMessagePromise } = await sendGoodbyeThenBigMessage(t);
    const invalidStateError = await rejection(bigMessagePromise, 'write()');
    expectDomException(invalidStateError, 'InvalidStateError');
    expect(await rejection(writer.write('word'), 'a later write()'), 'stream should be errored with same object').to.equal(
      invalidStateError,
    );
  });

  it('garbage collection after close with a pending write promise should not crash', async function () {
    const { bigMessagePromise } = await sendGoodbyeThenBigMessage(t);
    // "For some reason 5 is the magic number that causes garbage collection to really really
    // collect garbage" (WPT).
    for (let i = 0; i < 5; ++i) {
      await garbageCollect();
    }
    expectDomException(await rejection(bigMessagePromise, 'write()'), 'InvalidStateError');
  });

  it('writing a value that cannot be stringified should cause a rejection', async function () {
    const wss = t.open(t.ECHOURL);
    const { writable } = await wss.opened;
    const writer = writable.getWriter();
    const cannotStringify = {
      toString() {
        return this;
      },
    };
    const error = await rejection(writer.write(cannotStringify), 'write()');
    expect((error as object).constructor, 'write() should reject with a TypeError').to.equal(TypeError);
  });

  it('writing a resizable ArrayBuffer should be rejected', async function () {
    const wss = t.open(t.ECHOURL);
    const { writable } = await wss.opened;
    const writer = writable.getWriter();
    const buffer = new ArrayBuffer(1024, { maxByteLength: 65536 });
    const error = await rejection(writer.write(buffer), 'write()');
    expect((error as object).constructor, 'write() should reject with a TypeError').to.equal(TypeError);
  });

  it('writing a view on a shared buffer should be rejected', async function () {
    const wss = t.open(t.ECHOURL);
    const { writable } = await wss.opened;
    const writer = writable.getWriter();
    // WPT reserves 4096 pages (256 MiB) of shared WebAssembly memory; one page shows the same.
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true });
    const view = new Uint8Array(memory.buffer);
    const error = await rejection(writer.write(view), 'write()');
    expect((error as object).constructor, 'write() should reject with a TypeError').to.equal(TypeError);
  });

  it("Garbage collecting a WebSocket stream doesn't crash while write promise is pending", async function () {
    // In a browser nothing but the page holds the stream; in Node its socket keeps what matters
    // alive, so the collection must simply leave the pending writes intact. Only `closed` and the
    // readable are kept, to end the stream the way a page going away would.
    let wss: WebSocketStream | null = new WebSocketStream(t.ECHOURL, t.tlsOptions);
    const closed = wss.closed;
    const opened = await wss.opened;
    const { readable } = opened;
    t.trackClosed(closed, () => void readable.cancel().catch(() => {}));
    let writable: WritableStream<unknown> | null = opened.writable;
    let writer: WritableStreamDefaultWriter<unknown> | null = writable.getWriter();
    wss = null;
    writable = null;
    const promises: Array<Promise<void>> = [];
    for (let i = 0; i < 20; ++i) {
      promises.push(handled(writer.write(new Uint8Array(100000))));
    }
    writer = null;
    for (let i = 0; i < 5; ++i) {
      await garbageCollect();
    }
    // Not in WPT: the writes were not lost; the echo handler reads them all.
    await Promise.all(promises);
    // Not in WPT: the end of the page. The stream is closed while the echoes of those writes are
    // still arriving (and, with permessage-deflate, still being inflated); that must not crash
    // either, and the echo handler answers the close.
    await readable.cancel();
    expect(await closed).to.deep.equal({ closeCode: 1005, reason: '' });
  });
});
