// Port of web-platform-tests websockets/stream/tentative/close.any.js: close(), writer.close(),
// abort() and cancel() (docs/semantics.md#opened-and-closed to #the-writable).
import { expect } from 'chai';
import { WebSocketError, WebSocketStream, type WebSocketOpenInfo } from '../../lib/index.js';
import { expectThrowsDom, expectThrowsJs, handled, rejection, wptSuite } from './harness.js';

function isWebSocketError(error: unknown): boolean {
  return (error as { constructor?: unknown } | null)?.constructor === WebSocketError;
}

/** close() with arguments TypeScript would refuse. */
function looseClose(wss: WebSocketStream, ...args: unknown[]): void {
  (wss.close as (...a: unknown[]) => void)(...args);
}

wptSuite('close.any.js', (t) => {
  it('close code should be sent to server and reflected back', async function () {
    const wss = t.open(t.ECHOURL);
    await wss.opened;
    wss.close({ closeCode: 3456, reason: 'pizza' });
    const { closeCode, reason } = await wss.closed;
    expect(closeCode, 'code should match').to.equal(3456);
    expect(reason, 'reason should match').to.equal('pizza');
    const session = await t.server.session();
    expect(session.closeReceived, 'the server should have received the code and reason').to.deep.equal({ code: 3456, reason: 'pizza' });
  });

  it('no close argument should send empty Close frame', async function () {
    const wss = t.open(t.ECHOURL);
    await wss.opened;
    wss.close();
    const { closeCode, reason } = await wss.closed;
    expect(closeCode, 'code should be unset').to.equal(1005);
    expect(reason, 'reason should be empty').to.equal('');
    expect((await t.server.session()).closeReceived, 'the close frame should have no body').to.deep.equal({ code: null, reason: '' });
  });

  it('unspecified close code should send empty Close frame', async function () {
    const wss = t.open(t.ECHOURL);
    await wss.opened;
    wss.close({});
    const { closeCode, reason } = await wss.closed;
    expect(closeCode, 'code should be unset').to.equal(1005);
    expect(reason, 'reason should be empty').to.equal('');
    expect((await t.server.session()).closeReceived).to.deep.equal({ code: null, reason: '' });
  });

  it('unspecified close code with empty reason should send empty Close frame', async function () {
    const wss = t.open(t.ECHOURL);
    await wss.opened;
    wss.close({ reason: '' });
    const { closeCode, reason } = await wss.closed;
    expect(closeCode, 'code should be unset').to.equal(1005);
    expect(reason, 'reason should be empty').to.equal('');
    expect((await t.server.session()).closeReceived).to.deep.equal({ code: null, reason: '' });
  });

  it('unspecified close code with non-empty reason should set code to 1000', async function () {
    const wss = t.open(t.ECHOURL);
    await wss.opened;
    wss.close({ reason: 'non-empty' });
    const { closeCode, reason } = await wss.closed;
    expect(closeCode, 'code should be set').to.equal(1000);
    expect(reason, 'reason should match').to.equal('non-empty');
  });

  it('close(true) should throw a TypeError', async function () {
    const wss = t.open(t.ECHOURL);
    await wss.opened;
    expectThrowsJs(() => looseClose(wss, true), TypeError);
  });

  it('close() with an overlong reason should throw', async function () {
    const wss = t.open(t.ECHOURL);
    await wss.opened;
    const reason = '.'.repeat(124);
    expectThrowsDom(() => wss.close({ reason }), 'SyntaxError');
  });

  it('close during handshake should work', async function () {
    const wss = t.open(t.ECHOURL);
    wss.close();
    const [openedError, closedError] = await Promise.all([rejection(wss.opened, 'opened'), rejection(wss.closed, 'closed')]);
    expect(isWebSocketError(openedError), 'opened should reject with a WebSocketError').to.equal(true);
    expect(isWebSocketError(closedError), 'closed should reject with a WebSocketError').to.equal(true);
    // docs/semantics.md#handshake-failures: opened's error has no code, closed's has 1006; they are different objects.
    expect((openedError as WebSocketError).closeCode).to.equal(null);
    expect((closedError as WebSocketError).closeCode).to.equal(1006);
    expect(openedError).to.not.equal(closedError);
  });

  for (const invalidCode of [999, 1001, 2999, 5000]) {
    it(`close() with invalid code ${invalidCode} should throw`, async function () {
      const wss = t.open(t.ECHOURL);
      await wss.opened;
      expectThrowsDom(() => wss.close({ closeCode: invalidCode }), 'InvalidAccessError');
    });
  }

  it('closing the writable should result in a clean close', async function () {
    const wss = t.open(t.ECHOURL);
    const { writable } = await wss.opened;
    const closing = handled(writable.getWriter().close());
    const { closeCode, reason } = await wss.closed;
    expect(closeCode, 'code should be unset').to.equal(1005);
    expect(reason, 'reason should be empty').to.equal('');
    await closing;
  });

  it('writer close() promise should not resolve until handshake completes', async function () {
    // WPT measures that at least one second (the handler's delay) elapsed. Without timing: the
    // promise must settle only after the server has sent its close frame, which it does a second
    // after it received the client's.
    const wss = t.open(`${t.BASEURL}/delayed-passive-close`);
    const { writable } = await wss.opened;
    const session = await t.server.session();
    const events: string[] = [];
    session.once('close-received', () => events.push('server received close'));
    session.once('close-sent', () => events.push('server sent close'));
    await writable.getWriter().close();
    events.push('writer close resolved');
    expect(events).to.deep.equal(['server received close', 'server sent close', 'writer close resolved']);
    expect(await wss.closed).to.deep.equal({ closeCode: 1005, reason: '' });
  });

  it('incomplete closing handshake should be considered unclean close', async function () {
    const wss = t.open(`${t.BASEURL}/passive-close-abort`);
    await wss.opened;
    wss.close({ closeCode: 4000, reason: 'because' });
    const error = await rejection(wss.closed, 'closed');
    expect((error as object).constructor, 'error should be WebSocketError').to.equal(WebSocketError);
    expect((error as WebSocketError).closeCode, 'close code should be Abnormal Closure').to.equal(1006);
    const session = await t.server.session();
    expect(session.closeReceived).to.deep.equal({ code: 4000, reason: 'because' });
    expect(session.wasAborted, 'the server should have dropped TCP').to.equal(true);
  });

  const abortOrCancel = [
    { voweling: 'aborting', stream: 'writable', run: (info: WebSocketOpenInfo, reason?: unknown) => info.writable.abort(reason) },
    { voweling: 'canceling', stream: 'readable', run: (info: WebSocketOpenInfo, reason?: unknown) => info.readable.cancel(reason) },
  ] as const;

  for (const { voweling, stream, run } of abortOrCancel) {
    it(`${voweling} the ${stream} should result in a clean close`, async function () {
      const wss = t.open(t.ECHOURL);
      const info = await wss.opened;
      const done = handled(run(info));
      const { closeCode, reason } = await wss.closed;
      expect(closeCode, 'code should be unset').to.equal(1005);
      expect(reason, 'reason should be empty').to.equal('');
      await done;
    });

    it(`${voweling} the ${stream} with attributes not wrapped in a WebSocketError should be ignored`, async function () {
      const wss = t.open(t.ECHOURL);
      const info = await wss.opened;
      const done = handled(run(info, { closeCode: 3333, reason: 'obsolete' }));
      const { closeCode, reason } = await wss.closed;
      expect(closeCode, 'code should be unset').to.equal(1005);
      expect(reason, 'reason should be empty').to.equal('');
      await done;
    });

    it(`${voweling} the ${stream} with a code should send that code`, async function () {
      const wss = t.open(t.ECHOURL);
      const info = await wss.opened;
      const done = handled(run(info, new WebSocketError('', { closeCode: 3333 })));
      const { closeCode, reason } = await wss.closed;
      expect(closeCode, 'code should be used').to.equal(3333);
      expect(reason, 'reason should be empty').to.equal('');
      await done;
    });

    it(`${voweling} the ${stream} with a code and reason should use them`, async function () {
      const wss = t.open(t.ECHOURL);
      const info = await wss.opened;
      const done = handled(run(info, new WebSocketError('', { closeCode: 3456, reason: 'set' })));
      const { closeCode, reason } = await wss.closed;
      expect(closeCode, 'code should be used').to.equal(3456);
      expect(reason, 'reason should be used').to.equal('set');
      await done;
    });

    it(`${voweling} the ${stream} with a reason but no code should default the close code`, async function () {
      const wss = t.open(t.ECHOURL);
      const info = await wss.opened;
      const done = handled(run(info, new WebSocketError('', { reason: 'specified' })));
      const { closeCode, reason } = await wss.closed;
      expect(closeCode, 'code should be defaulted').to.equal(1000);
      expect(reason, 'reason should be used').to.equal('specified');
      await done;
    });

    it(`${voweling} the ${stream} with a DOMException not set code or reason`, async function () {
      const wss = t.open(t.ECHOURL);
      const info = await wss.opened;
      const domException = new DOMException('yes', 'DataCloneError');
      Object.assign(domException, { closeCode: 1000, reason: 'should be ignored' });
      const done = handled(run(info, domException));
      const { closeCode, reason } = await wss.closed;
      expect(closeCode, 'code should be unset').to.equal(1005);
      expect(reason, 'reason should be empty').to.equal('');
      await done;
    });
  }
});
