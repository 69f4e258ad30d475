// WebSocketError (docs/semantics.md#webidl-conversions, #clean-and-unclean-closes, #websocketerror).
import { expect } from 'chai';
import { WebSocketError } from '../lib/index.js';
import { createWebSocketError, validateCloseInfo } from '../lib/websocket-error.js';
import { expectExactDOMException, expectThrowsDOMException, expectThrowsTypeError, Marker, thrownBy } from './helpers/facade.js';

/** Calls the constructor with arbitrary (untyped) arguments, as JavaScript users may. */
function make(...args: unknown[]): WebSocketError {
  const Constructor = WebSocketError as unknown as new (...a: unknown[]) => WebSocketError;
  return new Constructor(...args);
}

describe('WebSocketError', () => {
  describe('defaults', () => {
    it('has an empty message, a null closeCode and an empty reason with no arguments', () => {
      const error = new WebSocketError();
      expect(error.message).to.equal('');
      expect(error.closeCode).to.equal(null);
      expect(error.reason).to.equal('');
    });

    it('keeps the message and defaults closeCode to null when init is empty', () => {
      const error = new WebSocketError('boom', {});
      expect(error.message).to.equal('boom');
      expect(error.closeCode).to.equal(null);
      expect(error.reason).to.equal('');
    });

    it('defaults closeCode to 1000 when a non-empty reason is given', () => {
      const error = new WebSocketError('', { reason: 'done' });
      expect(error.closeCode).to.equal(1000);
      expect(error.reason).to.equal('done');
    });

    it('keeps closeCode null for an explicitly empty reason', () => {
      const error = new WebSocketError('', { reason: '' });
      expect(error.closeCode).to.equal(null);
      expect(error.reason).to.equal('');
    });

    it('treats reason: undefined as the empty string', () => {
      const error = make('', { reason: undefined });
      expect(error.reason).to.equal('');
      expect(error.closeCode).to.equal(null);
    });

    it('treats closeCode: undefined as absent', () => {
      const error = make('', { closeCode: undefined, reason: 'r' });
      expect(error.closeCode).to.equal(1000);
    });

    it('keeps an explicit code and reason', () => {
      const error = new WebSocketError('m', { closeCode: 4321, reason: 'why' });
      expect(error.closeCode).to.equal(4321);
      expect(error.reason).to.equal('why');
    });

    it('converts the message as a DOMString (undefined is empty, null is "null", numbers stringify)', () => {
      expect(make(undefined).message).to.equal('');
      expect(make(null).message).to.equal('null');
      expect(make(42).message).to.equal('42');
      expect(make({ toString: () => 'from toString' }).message).to.equal('from toString');
    });

    it('throws TypeError for a Symbol message, and passes on what a message toString throws', () => {
      expectThrowsTypeError(() => make(Symbol('m')));
      const error = thrownBy(() =>
        make({
          toString() {
            throw new Marker('message');
          },
        }),
      );
      expect(error).to.be.an.instanceOf(Marker);
    });

    it('converts the message before the init dictionary', () => {
      const error = thrownBy(() =>
        make(
          {
            toString() {
              throw new Marker('message');
            },
          },
          { closeCode: 999 },
        ),
      );
      expect(error).to.be.an.instanceOf(Marker);
    });
  });

  describe('identity', () => {
    it('is named WebSocketError with legacy code 0', () => {
      const error = new WebSocketError('m');
      expect(error.name).to.equal('WebSocketError');
      expect(error.code).to.equal(0);
    });

    it('is an instance of WebSocketError, DOMException and Error', () => {
      const error = new WebSocketError('m');
      expect(error).to.be.an.instanceOf(WebSocketError);
      expect(error).to.be.an.instanceOf(DOMException);
      expect(error).to.be.an.instanceOf(Error);
      expect(error.constructor).to.equal(WebSocketError);
      expect(Object.getPrototypeOf(WebSocketError.prototype)).to.equal(DOMException.prototype);
    });

    it('reports [object WebSocketError] from Object.prototype.toString', () => {
      expect(Object.prototype.toString.call(new WebSocketError('m'))).to.equal('[object WebSocketError]');
      expect(Object.prototype.toString.call(new WebSocketError())).to.equal('[object WebSocketError]');
    });

    it('stringifies as "WebSocketError: <message>", or just the name without a message', () => {
      expect(String(new WebSocketError('went wrong'))).to.equal('WebSocketError: went wrong');
      expect(String(new WebSocketError())).to.equal('WebSocketError');
      expect(`${new WebSocketError('x', { closeCode: 3000 })}`).to.equal('WebSocketError: x');
    });

    it('has a string stack', () => {
      const error = new WebSocketError('with stack');
      expect(error.stack).to.be.a('string');
      expect(error.stack!.length).to.be.greaterThan(0);
    });

    it('has closeCode and reason as prototype getters, not own properties', () => {
      for (const name of ['closeCode', 'reason']) {
        const descriptor = Object.getOwnPropertyDescriptor(WebSocketError.prototype, name);
        expect(descriptor, name).to.not.equal(undefined);
        expect(descriptor!.get, `${name} getter`).to.be.a('function');
        expect(descriptor!.set, `${name} setter`).to.equal(undefined);
        const error = new WebSocketError('m', { closeCode: 3001, reason: 'r' });
        expect(Object.prototype.hasOwnProperty.call(error, name), `own ${name}`).to.equal(false);
      }
      const error = new WebSocketError('m', { closeCode: 3001, reason: 'r' });
      const closeCodeGetter = Object.getOwnPropertyDescriptor(WebSocketError.prototype, 'closeCode')!.get!;
      const reasonGetter = Object.getOwnPropertyDescriptor(WebSocketError.prototype, 'reason')!.get!;
      expect(closeCodeGetter.call(error)).to.equal(3001);
      expect(reasonGetter.call(error)).to.equal('r');
    });

    it('getters refuse an object that is not a WebSocketError', () => {
      const closeCodeGetter = Object.getOwnPropertyDescriptor(WebSocketError.prototype, 'closeCode')!.get!;
      const reasonGetter = Object.getOwnPropertyDescriptor(WebSocketError.prototype, 'reason')!.get!;
      expect(() => closeCodeGetter.call({ closeCode: 1000 })).to.throw(TypeError);
      expect(() => reasonGetter.call(new DOMException('x'))).to.throw(TypeError);
    });

    it('cannot be assigned closeCode or reason from outside', () => {
      const error = new WebSocketError('m', { closeCode: 3000, reason: 'a' });
      expect(() => {
        (error as unknown as { closeCode: number }).closeCode = 4000;
      }).to.throw(TypeError);
      expect(error.closeCode).to.equal(3000);
      expect(error.reason).to.equal('a');
    });

    it('isWebSocketError accepts real errors only, not look-alikes', () => {
      expect(WebSocketError.isWebSocketError(new WebSocketError('m', { closeCode: 3000 }))).to.equal(true);
      const lookAlike = Object.create(WebSocketError.prototype, {
        closeCode: { value: 3000 },
        reason: { value: '' },
      }) as object;
      expect(WebSocketError.isWebSocketError(lookAlike)).to.equal(false);
      expect(WebSocketError.isWebSocketError({ name: 'WebSocketError', closeCode: 3000, reason: '' })).to.equal(false);
      expect(WebSocketError.isWebSocketError(new DOMException('x', 'WebSocketError'))).to.equal(false);
      expect(WebSocketError.isWebSocketError(null)).to.equal(false);
      expect(WebSocketError.isWebSocketError('WebSocketError')).to.equal(false);
    });
  });

  describe('closeCode validation', () => {
    for (const code of [1000, 3000, 3999, 4000, 4999]) {
      it(`accepts ${code}`, () => {
        expect(new WebSocketError('', { closeCode: code }).closeCode).to.equal(code);
      });
    }

    for (const code of [0, 1, 999, 1001, 1002, 1005, 1006, 1011, 1015, 2999, 5000, 65535]) {
      it(`throws InvalidAccessError (legacy code 15) for ${code}`, () => {
        expectThrowsDOMException(() => new WebSocketError('', { closeCode: code }), 'InvalidAccessError');
      });
    }

    it('converts closeCode: null to 0, which is present and throws InvalidAccessError', () => {
      expectThrowsDOMException(() => make('', { closeCode: null }), 'InvalidAccessError');
    });

    it('throws InvalidAccessError for null even with a valid reason (0 is present, so no default to 1000)', () => {
      expectThrowsDOMException(() => make('', { closeCode: null, reason: 'x' }), 'InvalidAccessError');
    });

    for (const [label, value] of [
      ['70000 (no wrapping to 4464)', 70000],
      ['65536', 65536],
      ['-1', -1],
      ['NaN', NaN],
      ['Infinity', Infinity],
      ['-Infinity', -Infinity],
      ['"abc" (NaN)', 'abc'],
      ['a Symbol', Symbol('code')],
      ['an object converting to NaN', {}],
    ] as Array<[string, unknown]>) {
      it(`throws a plain TypeError for closeCode ${label}`, () => {
        expectThrowsTypeError(() => make('', { closeCode: value }));
      });
    }

    it('truncates 3000.7 to 3000 and 4999.99 to 4999', () => {
      expect(make('', { closeCode: 3000.7 }).closeCode).to.equal(3000);
      expect(make('', { closeCode: 4999.99 }).closeCode).to.equal(4999);
    });

    it('converts the string "3000" to 3000 and an object through valueOf', () => {
      expect(make('', { closeCode: '3000' }).closeCode).to.equal(3000);
      expect(make('', { closeCode: { valueOf: () => 4001 } }).closeCode).to.equal(4001);
    });

    it('truncates before the range check: 999.9 is 999 (InvalidAccessError), 1000.5 is 1000', () => {
      expectThrowsDOMException(() => make('', { closeCode: 999.9 }), 'InvalidAccessError');
      expect(make('', { closeCode: 1000.5 }).closeCode).to.equal(1000);
    });

    it('converts -0.5 to 0 (in range, so InvalidAccessError, not TypeError)', () => {
      expectThrowsDOMException(() => make('', { closeCode: -0.5 }), 'InvalidAccessError');
    });

    it('passes on what closeCode valueOf throws', () => {
      const error = thrownBy(() =>
        make('', {
          closeCode: {
            valueOf() {
              throw new Marker('closeCode');
            },
          },
        }),
      );
      expect(error).to.be.an.instanceOf(Marker);
    });

    it('converts closeCode before reason (dictionary members in order)', () => {
      const error = thrownBy(() =>
        make('', {
          closeCode: {
            valueOf() {
              throw new Marker('closeCode');
            },
          },
          reason: {
            toString() {
              throw new Marker('reason');
            },
          },
        }),
      );
      expect((error as Marker).tag).to.equal('closeCode');
    });

    it('converts every member before validating: a bad code with a Symbol reason is a TypeError', () => {
      expectThrowsTypeError(() => make('', { closeCode: 999, reason: Symbol('r') }));
    });

    it('checks the code before the reason length', () => {
      expectThrowsDOMException(() => make('', { closeCode: 999, reason: 'x'.repeat(124) }), 'InvalidAccessError');
    });
  });

  describe('reason validation', () => {
    it('accepts a 123-byte ASCII reason and throws SyntaxError (legacy code 12) for 124 bytes', () => {
      expect(new WebSocketError('', { closeCode: 1000, reason: 'a'.repeat(123) }).reason).to.have.length(123);
      expectThrowsDOMException(() => new WebSocketError('', { closeCode: 1000, reason: 'a'.repeat(124) }), 'SyntaxError');
    });

    it('throws SyntaxError for a 124-byte reason without a code too', () => {
      expectThrowsDOMException(() => new WebSocketError('', { reason: 'b'.repeat(124) }), 'SyntaxError');
    });

    it('counts UTF-8 bytes: 41 × "€" (123 bytes) passes, 42 × "€" (126 bytes) throws', () => {
      const fortyOne = '€'.repeat(41);
      const error = new WebSocketError('', { closeCode: 3000, reason: fortyOne });
      expect(error.reason).to.equal(fortyOne);
      expectThrowsDOMException(() => new WebSocketError('', { closeCode: 3000, reason: '€'.repeat(42) }), 'SyntaxError');
    });

    it('counts a lone surrogate as the three bytes of U+FFFD', () => {
      // 41 × U+FFFD is 123 bytes, 42 is 126; 42 UTF-16 code units would be only 42 "bytes".
      expect(make('', { reason: '\uD800'.repeat(41) }).reason).to.equal('\uFFFD'.repeat(41));
      expectThrowsDOMException(() => make('', { reason: '\uD800'.repeat(42) }), 'SyntaxError');
    });

    it('counts 4-byte characters as 4 bytes', () => {
      // 30 × U+1F600 is 120 bytes (60 UTF-16 code units); 31 is 124 bytes.
      expect(make('', { reason: '😀'.repeat(30) }).reason).to.equal('😀'.repeat(30));
      expectThrowsDOMException(() => make('', { reason: '😀'.repeat(31) }), 'SyntaxError');
    });

    it('converts reason: null to "null" (and then the code defaults to 1000)', () => {
      const error = make('', { reason: null });
      expect(error.reason).to.equal('null');
      expect(error.closeCode).to.equal(1000);
    });

    it('replaces lone surrogates with U+FFFD and keeps valid pairs', () => {
      expect(make('', { reason: 'a\uD800b' }).reason).to.equal('a\uFFFDb');
      expect(make('', { reason: '\uDC00' }).reason).to.equal('\uFFFD');
      expect(make('', { reason: '\uDC00\uD800' }).reason).to.equal('\uFFFD\uFFFD');
      expect(make('', { reason: '\uD83D\uDE00' }).reason).to.equal('😀');
    });

    it('converts numbers and objects with toString', () => {
      expect(make('', { reason: 42 }).reason).to.equal('42');
      expect(make('', { reason: { toString: () => 'obj' } }).reason).to.equal('obj');
    });

    it('throws a plain TypeError for a Symbol reason', () => {
      expectThrowsTypeError(() => make('', { reason: Symbol('r') }));
    });

    it('passes on what a reason toString throws', () => {
      const error = thrownBy(() =>
        make('', {
          reason: {
            toString() {
              throw new Marker('reason');
            },
          },
        }),
      );
      expect(error).to.be.an.instanceOf(Marker);
    });
  });

  describe('init dictionary conversion', () => {
    it('treats undefined and null as {}', () => {
      for (const init of [undefined, null]) {
        const error = make('m', init);
        expect(error.closeCode).to.equal(null);
        expect(error.reason).to.equal('');
        expect(error.message).to.equal('m');
      }
    });

    for (const [label, init] of [
      ['true', true],
      ['1', 1],
      ['"x"', 'x'],
      ['a Symbol', Symbol('init')],
      ['1n', 1n],
    ] as Array<[string, unknown]>) {
      it(`throws a plain TypeError for init ${label}`, () => {
        expectThrowsTypeError(() => make('m', init));
      });
    }

    it('accepts any object, reading only its closeCode and reason', () => {
      const error = make('m', Object.assign(() => {}, { closeCode: 3003 }));
      expect(error.closeCode).to.equal(3003);
      const fromArray = make('m', []);
      expect(fromArray.closeCode).to.equal(null);
    });

    it('reads inherited members', () => {
      const init = Object.create({ closeCode: 3004, reason: 'inherited' }) as object;
      const error = make('m', init);
      expect(error.closeCode).to.equal(3004);
      expect(error.reason).to.equal('inherited');
    });
  });

  describe('thrown errors are exact', () => {
    it('an InvalidAccessError is a plain DOMException with code 15', () => {
      const error = thrownBy(() => new WebSocketError('', { closeCode: 1001 }));
      expectExactDOMException(error, 'InvalidAccessError');
      expect(error).to.not.be.an.instanceOf(WebSocketError);
    });

    it('a SyntaxError is a plain DOMException with code 12', () => {
      const error = thrownBy(() => new WebSocketError('', { reason: 'x'.repeat(200) }));
      expectExactDOMException(error, 'SyntaxError');
      expect(error).to.not.be.an.instanceOf(WebSocketError);
    });

    it('a TypeError is a plain TypeError', () => {
      const error = thrownBy(() => make('', { closeCode: 70000 }));
      expect((error as Error).constructor).to.equal(TypeError);
      expect(error).to.not.be.an.instanceOf(DOMException);
    });
  });

  describe('errors the library builds (createWebSocketError)', () => {
    for (const code of [1001, 1006, 1011, 4567]) {
      it(`builds a real WebSocketError for code ${code} without validation`, () => {
        const error = createWebSocketError('peer went away', code, 'bye', undefined);
        expect(error.constructor).to.equal(WebSocketError);
        expect(error).to.be.an.instanceOf(WebSocketError);
        expect(error).to.be.an.instanceOf(DOMException);
        expect(error.name).to.equal('WebSocketError');
        expect(error.code).to.equal(0);
        expect(error.message).to.equal('peer went away');
        expect(error.closeCode).to.equal(code);
        expect(error.reason).to.equal('bye');
        expect(WebSocketError.isWebSocketError(error)).to.equal(true);
        expect(Object.prototype.toString.call(error)).to.equal('[object WebSocketError]');
      });
    }

    it('keeps a null code and attaches a cause when given one', () => {
      const cause = new Error('root');
      const error = createWebSocketError('handshake failed', null, '', cause);
      expect(error.closeCode).to.equal(null);
      expect(error.reason).to.equal('');
      expect((error as Error & { cause?: unknown }).cause).to.equal(cause);
    });

    it('does not let users reach the unvalidated path with a third argument', () => {
      expectThrowsDOMException(() => make('', { closeCode: 1006 }, Symbol('trusted WebSocketError')), 'InvalidAccessError');
    });
  });

  describe('validateCloseInfo (shared with close())', () => {
    it('returns the converted code and reason, defaulting the code to 1000 for a reason', () => {
      expect(validateCloseInfo(undefined, 'x')).to.deep.equal({ closeCode: null, reason: '' });
      expect(validateCloseInfo(null, 'x')).to.deep.equal({ closeCode: null, reason: '' });
      expect(validateCloseInfo({ reason: 'r' }, 'x')).to.deep.equal({ closeCode: 1000, reason: 'r' });
      expect(validateCloseInfo({ closeCode: '3000', reason: '\uD800' }, 'x')).to.deep.equal({ closeCode: 3000, reason: '\uFFFD' });
    });

    it('throws the same errors as the constructor', () => {
      expectThrowsTypeError(() => validateCloseInfo(true, 'closeInfo'));
      expectThrowsTypeError(() => validateCloseInfo({ closeCode: 70000 }, 'closeInfo'));
      expectThrowsDOMException(() => validateCloseInfo({ closeCode: 1005 }, 'closeInfo'), 'InvalidAccessError');
      expectThrowsDOMException(() => validateCloseInfo({ reason: '€'.repeat(42) }, 'closeInfo'), 'SyntaxError');
    });
  });
});
