// Port of web-platform-tests websockets/stream/tentative/websocket-error.any.js: the
// WebSocketError constructor (docs/semantics.md#websocketerror). No server: WPT runs this file without variants.
import { expect } from 'chai';
import { WebSocketError } from '../../lib/index.js';
import { expectThrowsDom } from './harness.js';

describe('websocket-error.any.js', function () {
  it('WebSocketError defaults should be correct', function () {
    const error = new WebSocketError();
    expect(error.code, 'DOMException code should be 0').to.equal(0);
    expect(error.name, 'name should be correct').to.equal('WebSocketError');
    expect(error.message, 'DOMException message should be empty').to.equal('');
    expect(error.closeCode, 'closeCode should be null').to.equal(null);
    expect(error.reason, 'reason should be empty').to.equal('');
  });

  it('WebSocketError should be initialised from arguments', function () {
    const error = new WebSocketError('message', { closeCode: 3456, reason: 'reason' });
    expect(error.code, 'DOMException code should be 0').to.equal(0);
    expect(error.name, 'name should be correct').to.equal('WebSocketError');
    expect(error.message, 'DOMException message should be set').to.equal('message');
    expect(error.closeCode, 'closeCode should match').to.equal(3456);
    expect(error.reason, 'reason should match').to.equal('reason');
  });

  for (const invalidCode of [999, 1001, 2999, 5000]) {
    it(`new WebSocketError with invalid code ${invalidCode} should throw`, function () {
      expectThrowsDom(() => new WebSocketError('', { closeCode: invalidCode }), 'InvalidAccessError');
    });
  }

  it('passing only close code to WebSocketError should work', function () {
    const error = new WebSocketError('', { closeCode: 3333 });
    expect(error.closeCode, 'code should be used').to.equal(3333);
    expect(error.reason, 'reason should be empty').to.equal('');
  });

  it('passing a non-empty reason should cause the close code to be set to 1000', function () {
    const error = new WebSocketError('', { reason: 'specified' });
    expect(error.closeCode, 'code should be defaulted').to.equal(1000);
    expect(error.reason, 'reason should be used').to.equal('specified');
  });

  it('overlong reason should throw', function () {
    expectThrowsDom(() => new WebSocketError('', { closeCode: 1000, reason: 'x'.repeat(124) }), 'SyntaxError');
  });

  it('reason should be rejected based on utf-8 bytes, not character count', function () {
    // 32 × U+1F50C is 32 characters (64 UTF-16 code units) but 128 UTF-8 bytes.
    const reason = '\u{1F50C}'.repeat(32);
    expect([...reason]).to.have.length(32);
    expectThrowsDom(() => new WebSocketError('', { reason }), 'SyntaxError');
  });
});
