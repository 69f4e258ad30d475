// Port of web-platform-tests websockets/stream/tentative/remote-close.any.js: closes the server
// starts (docs/semantics.md#clean-and-unclean-closes, #the-readable, #the-writable), against the stand-in for remote-close_wsh.py.
import { expect } from 'chai';
import { WebSocketError } from '../../lib/index.js';
import { expectDomException, handled, rejection, wptSuite } from './harness.js';

wptSuite('remote-close.any.js', (t) => {
  it('clean close should be clean', async function () {
    const wss = t.open(`${t.BASEURL}/remote-close?code=1000`);
    const { readable, writable } = await wss.opened;
    const { closeCode, reason } = await wss.closed;
    expect(closeCode, 'code should be 1000').to.equal(1000);
    expect(reason, 'reason should be empty').to.equal('');
    const { done } = await readable.getReader().read();
    expect(done, 'readable should be closed').to.equal(true);
    expectDomException(await rejection(writable.getWriter().ready, 'writer.ready'), 'InvalidStateError');
  });

  it('close frame with no body should result in status code 1005', async function () {
    const wss = t.open(`${t.BASEURL}/remote-close`);
    const { closeCode, reason } = await wss.closed;
    expect(closeCode, 'code should be No Status Rcvd').to.equal(1005);
    expect(reason, 'reason should be empty').to.equal('');
  });

  it('reason should be passed through', async function () {
    const wss = t.open(`${t.BASEURL}/remote-close?code=4000&reason=robot`);
    const { closeCode, reason } = await wss.closed;
    expect(closeCode, 'code should be 4000').to.equal(4000);
    expect(reason, 'reason should be set').to.equal('robot');
  });

  it('UTF-8 reason should work', async function () {
    const wss = t.open(`${t.BASEURL}/remote-close?code=4000&reason=%E3%83%AD%E3%83%9C%E3%83%83%E3%83%88`);
    const { reason } = await wss.closed;
    expect(reason, 'reason should be set').to.equal('ロボット');
  });

  it('close with unwritten data should not be considered clean', async function () {
    // The server's close frame arrives with (or right after) the 101; the 20 MB write, started
    // right after `await opened`, goes first (docs/semantics.md#ordering) and cannot have been flushed when
    // the close frame is processed. The stand-in, like pywebsocket, drops TCP when it reads that
    // data frame's header where it wanted the client's close frame.
    const wss = t.open(`${t.BASEURL}/remote-close?code=4567`);
    const { writable } = await wss.opened;
    const veryLargeMessage = new Uint8Array(20 * 1024 * 1024); // 20MB.
    const writer = writable.getWriter();
    const writePromise = handled(writer.write(veryLargeMessage));
    const closedError = await rejection(wss.closed, 'closed');
    expect((closedError as object).constructor, 'error should be WebSocketError').to.equal(WebSocketError);
    expect((closedError as WebSocketError).closeCode, 'closeCode should be set').to.equal(4567);
    // WPT: `promise_rejects_js(t, WebSocketError, writePromise)`, not awaited (and a DOMException
    // subclass cannot pass assert_throws_js's Error-subtype check). docs/semantics.md#writes-at-close is precise: a
    // write still in progress rejects with the very InvalidStateError the writable was errored
    // with when the peer's close frame arrived, which is its stored error from then on.
    const writeError = await rejection(writePromise, 'write()');
    expectDomException(writeError, 'InvalidStateError');
    expect(await rejection(writer.write('more'), 'a later write()'), 'the write rejects with the stored error').to.equal(writeError);
    expect((await t.server.session()).wasReset, 'the stand-in should have reset the connection').to.equal(true);
  });

  it('remote code and reason should be used', async function () {
    const wss = t.open(`${t.BASEURL}/remote-close?code=4222&reason=remote`);
    await wss.opened;
    wss.close({ closeCode: 4111, reason: 'local' });
    const { closeCode, reason } = await wss.closed;
    expect(closeCode, 'remote code should be used').to.equal(4222);
    expect(reason, 'remote reason should be used').to.equal('remote');
  });

  it('abrupt close should give an error', async function () {
    const wss = t.open(`${t.BASEURL}/remote-close?abrupt=1`);
    const { readable, writable } = await wss.opened;
    const closedError = await rejection(wss.closed, 'closed');
    expect((closedError as object).constructor, 'error should be a WebSocketError').to.equal(WebSocketError);
    expect((closedError as WebSocketError).name, 'error name should be WebSocketError').to.equal('WebSocketError');
    expect((closedError as WebSocketError).closeCode, 'code should be Abnormal Closure').to.equal(1006);
    expect(await rejection(readable.getReader().read(), 'read()'), 'readable should be errored with the same object').to.equal(closedError);
    expect(await rejection(writable.getWriter().ready, 'writer.ready'), 'writable should be errored with the same object').to.equal(closedError);
  });
});
