// Port of web-platform-tests websockets/stream/tentative/constructor.any.js (docs/semantics.md#webidl-conversions to #opened-and-closed).
import { expect } from 'chai';
import { WebSocketError, WebSocketStream } from '../../lib/index.js';
import { expectThrowsDom, expectThrowsJs, rejection, wptSuite } from './harness.js';

// Loosely typed access, for the argument-conversion cases that TypeScript would refuse.
const AnyWebSocketStream = WebSocketStream as unknown as new (...args: unknown[]) => WebSocketStream;

function isWebSocketError(error: unknown): boolean {
  return (error as { constructor?: unknown } | null)?.constructor === WebSocketError;
}

wptSuite('constructor.any.js', (t) => {
  it('constructing with no URL should throw', function () {
    expectThrowsJs(() => new AnyWebSocketStream(), TypeError);
  });

  it('constructing with an invalid URL should throw', function () {
    expectThrowsDom(() => new WebSocketStream('invalid:'), 'SyntaxError');
  });

  it('constructing with invalid options should throw', function () {
    expectThrowsJs(() => new AnyWebSocketStream(`${t.BASEURL}/`, true), TypeError);
  });

  it('protocols should be required to be a list', function () {
    expectThrowsJs(() => new AnyWebSocketStream(`${t.BASEURL}/`, { protocols: 'hi' }), TypeError);
  });

  it('constructing with a valid URL should work', async function () {
    const wss = t.open(t.ECHOURL);
    await wss.opened;
    expect(wss.url, 'url should match').to.equal(t.ECHOURL);
    wss.close();
    // Not in WPT: the echo handler answers the empty close frame, so the close is clean.
    expect(await wss.closed).to.deep.equal({ closeCode: 1005, reason: '' });
  });

  it('setting a protocol in the constructor should work', async function () {
    const wss = t.open(`${t.BASEURL}/protocol_array`, { protocols: ['alpha', 'beta'] });
    const { readable, protocol } = await wss.opened;
    expect(protocol, 'protocol should be right').to.equal('alpha');
    const reader = readable.getReader();
    const { value, done } = await reader.read();
    expect(done).to.equal(false);
    expect(value, 'message contents should match').to.equal('alpha');
    // The request offered both protocols, joined with ", " (docs/semantics.md#the-constructor).
    expect((await t.server.request()).headers['sec-websocket-protocol']).to.equal('alpha, beta');
    wss.close();
  });

  it('connection failure should reject the promises', async function () {
    // The stand-in, like wptserve, answers a path with no handler with 404 Not Found.
    const wss = t.open(`${t.BASEURL}/404`);
    const [openedError, closedError] = await Promise.all([rejection(wss.opened, 'opened'), rejection(wss.closed, 'closed')]);
    expect(isWebSocketError(openedError), 'opened should reject with a WebSocketError').to.equal(true);
    expect(isWebSocketError(closedError), 'closed should reject with a WebSocketError').to.equal(true);
    expect((await t.server.request()).path).to.equal('/404');
  });

  it('wss.opened should resolve to the right types', async function () {
    const wss = t.open(t.ECHOURL);
    const { readable, writable, protocol, extensions } = await wss.opened;
    // The brand checks WPT uses: these throw unless the objects are real global streams.
    ReadableStream.prototype.getReader.call(readable).releaseLock();
    WritableStream.prototype.getWriter.call(writable).releaseLock();
    expect(typeof protocol, 'protocol should be a string').to.equal('string');
    expect(typeof extensions, 'extensions should be a string').to.equal('string');
    wss.close();
  });
});
