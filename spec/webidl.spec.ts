// The WebIDL conversion helpers (docs/semantics.md#webidl-conversions).
import { expect } from 'chai';
import { toDictionary, toEnforcedUnsignedShort, toUSVString, toUSVStringSequence } from '../lib/webidl.js';
import { expectThrowsTypeError, Marker, thrownBy } from './helpers/facade.js';

describe('webidl', () => {
  describe('toDictionary', () => {
    it('turns undefined and null into an empty object', () => {
      for (const value of [undefined, null]) {
        const dictionary = toDictionary(value, 'options');
        expect(dictionary).to.be.an('object');
        expect(Object.keys(dictionary)).to.deep.equal([]);
        expect((dictionary as { closeCode?: unknown }).closeCode).to.equal(undefined);
      }
    });

    it('returns objects (including arrays and functions) as they are', () => {
      const object = { a: 1 };
      const array: unknown[] = [];
      const fn = (): void => {};
      expect(toDictionary(object, 'x')).to.equal(object);
      expect(toDictionary(array, 'x')).to.equal(array);
      expect(toDictionary(fn, 'x')).to.equal(fn);
    });

    for (const [label, value] of [
      ['true', true],
      ['false', false],
      ['1', 1],
      ['0', 0],
      ['"x"', 'x'],
      ['""', ''],
      ['a Symbol', Symbol('s')],
      ['1n', 1n],
    ] as Array<[string, unknown]>) {
      it(`throws a plain TypeError for ${label}`, () => {
        const error = expectThrowsTypeError(() => toDictionary(value, 'closeInfo'));
        expect(error.message).to.contain('closeInfo');
      });
    }
  });

  describe('toUSVString', () => {
    it('returns well-formed strings unchanged', () => {
      expect(toUSVString('')).to.equal('');
      expect(toUSVString('hello')).to.equal('hello');
      expect(toUSVString('é€😀')).to.equal('é€😀');
    });

    it('replaces lone surrogates with U+FFFD', () => {
      expect(toUSVString('\uD800')).to.equal('\uFFFD');
      expect(toUSVString('\uDFFF')).to.equal('\uFFFD');
      expect(toUSVString('a\uD800b')).to.equal('a\uFFFDb');
      expect(toUSVString('\uDC00\uD800')).to.equal('\uFFFD\uFFFD');
      expect(toUSVString('x\uD83D')).to.equal('x\uFFFD');
      expect(toUSVString('\uD83D\uDE00\uD83D')).to.equal('😀\uFFFD');
    });

    it('converts primitives with ToString', () => {
      expect(toUSVString(null)).to.equal('null');
      expect(toUSVString(undefined)).to.equal('undefined');
      expect(toUSVString(42)).to.equal('42');
      expect(toUSVString(-0)).to.equal('0');
      expect(toUSVString(true)).to.equal('true');
      expect(toUSVString(10n)).to.equal('10');
    });

    it('converts objects with the string hint (toString before valueOf, Symbol.toPrimitive first)', () => {
      expect(toUSVString({ toString: () => 'ts', valueOf: () => 'vo' })).to.equal('ts');
      expect(toUSVString({ [Symbol.toPrimitive]: (hint: string) => `hint:${hint}` })).to.equal('hint:string');
      expect(toUSVString(new URL('ws://h/a'))).to.equal('ws://h/a');
      expect(toUSVString([1, 2])).to.equal('1,2');
      expect(toUSVString({ toString: () => '\uD800' })).to.equal('\uFFFD');
    });

    it('throws a plain TypeError for Symbols (unlike String())', () => {
      expectThrowsTypeError(() => toUSVString(Symbol('s')));
    });

    it('throws a TypeError for an object that cannot become a primitive', () => {
      const selfish = {
        toString() {
          return this;
        },
        valueOf() {
          return this;
        },
      };
      expectThrowsTypeError(() => toUSVString(selfish));
      expectThrowsTypeError(() => toUSVString(Object.create(null)));
    });

    it('passes on what toString throws', () => {
      const error = thrownBy(() =>
        toUSVString({
          toString() {
            throw new Marker('toString');
          },
        }),
      );
      expect(error).to.be.an.instanceOf(Marker);
    });
  });

  describe('toEnforcedUnsignedShort', () => {
    it('returns integers in 0..65535 unchanged', () => {
      for (const value of [0, 1, 1000, 3000, 65535]) expect(toEnforcedUnsignedShort(value, 'n')).to.equal(value);
    });

    it('returns +0, never -0', () => {
      expect(Object.is(toEnforcedUnsignedShort(-0, 'n'), 0)).to.equal(true);
      expect(Object.is(toEnforcedUnsignedShort(-0.9, 'n'), 0)).to.equal(true);
    });

    it('truncates toward zero', () => {
      expect(toEnforcedUnsignedShort(3000.7, 'n')).to.equal(3000);
      expect(toEnforcedUnsignedShort(65535.99, 'n')).to.equal(65535);
      expect(toEnforcedUnsignedShort(0.5, 'n')).to.equal(0);
    });

    it('converts with ToNumber: strings, null, booleans, objects', () => {
      expect(toEnforcedUnsignedShort('3000', 'n')).to.equal(3000);
      expect(toEnforcedUnsignedShort(' 42 ', 'n')).to.equal(42);
      expect(toEnforcedUnsignedShort('0x10', 'n')).to.equal(16);
      expect(toEnforcedUnsignedShort('', 'n')).to.equal(0);
      expect(toEnforcedUnsignedShort(null, 'n')).to.equal(0);
      expect(toEnforcedUnsignedShort(true, 'n')).to.equal(1);
      expect(toEnforcedUnsignedShort(false, 'n')).to.equal(0);
      expect(toEnforcedUnsignedShort({ valueOf: () => 4000 }, 'n')).to.equal(4000);
      expect(toEnforcedUnsignedShort([7], 'n')).to.equal(7);
    });

    for (const [label, value] of [
      ['65536', 65536],
      ['70000', 70000],
      ['-1', -1],
      ['-65535', -65535],
      ['1e20', 1e20],
      ['NaN', NaN],
      ['Infinity', Infinity],
      ['-Infinity', -Infinity],
      ['undefined (NaN)', undefined],
      ['"abc"', 'abc'],
      ['{}', {}],
      ['a Symbol', Symbol('n')],
    ] as Array<[string, unknown]>) {
      it(`throws a plain TypeError for ${label}`, () => {
        expectThrowsTypeError(() => toEnforcedUnsignedShort(value, 'closeCode'));
      });
    }

    it('throws a TypeError for a BigInt, as ToNumber does (Number() would accept it)', () => {
      expectThrowsTypeError(() => toEnforcedUnsignedShort(1000n, 'closeCode'));
      expectThrowsTypeError(() => toEnforcedUnsignedShort({ valueOf: () => 3000n }, 'closeCode'));
    });

    it('names the argument in its message', () => {
      const error = expectThrowsTypeError(() => toEnforcedUnsignedShort(70000, 'closeCode'));
      expect(error.message).to.contain('closeCode');
    });

    it('passes on what valueOf throws', () => {
      const error = thrownBy(() =>
        toEnforcedUnsignedShort(
          {
            valueOf() {
              throw new Marker('valueOf');
            },
          },
          'n',
        ),
      );
      expect(error).to.be.an.instanceOf(Marker);
    });
  });

  describe('toUSVStringSequence', () => {
    it('converts an array, converting each item as a USVString', () => {
      expect(toUSVStringSequence(['a', 1, null, '\uD800', { toString: () => 'o' }], 'p')).to.deep.equal(['a', '1', 'null', '\uFFFD', 'o']);
    });

    it('returns a new array', () => {
      const input = ['a', 'b'];
      const output = toUSVStringSequence(input, 'p');
      expect(output).to.deep.equal(['a', 'b']);
      expect(output).to.not.equal(input);
    });

    it('accepts any iterable object: a Set, a generator, a String object, a custom iterable', () => {
      expect(toUSVStringSequence(new Set(['x', 'y']), 'p')).to.deep.equal(['x', 'y']);
      function* generate(): Generator<string> {
        yield 'g1';
        yield 'g2';
      }
      expect(toUSVStringSequence(generate(), 'p')).to.deep.equal(['g1', 'g2']);
      expect(toUSVStringSequence(new String('ab'), 'p')).to.deep.equal(['a', 'b']);
      const custom = {
        *[Symbol.iterator]() {
          yield 'c';
        },
      };
      expect(toUSVStringSequence(custom, 'p')).to.deep.equal(['c']);
      expect(toUSVStringSequence([], 'p')).to.deep.equal([]);
    });

    it('reads holes in an array as undefined', () => {
      // eslint-disable-next-line no-sparse-arrays
      expect(toUSVStringSequence([, 'a'], 'p')).to.deep.equal(['undefined', 'a']);
    });

    for (const [label, value] of [
      ['a string', 'chat'],
      ['the empty string', ''],
      ['a number', 1],
      ['true', true],
      ['null', null],
      ['undefined', undefined],
      ['a Symbol', Symbol('p')],
      ['a plain object', { 0: 'a', length: 1 }],
      ['an object whose @@iterator is not callable', { [Symbol.iterator]: 5 }],
    ] as Array<[string, unknown]>) {
      it(`throws a plain TypeError for ${label}`, () => {
        const error = expectThrowsTypeError(() => toUSVStringSequence(value, 'protocols'));
        expect(error.message).to.contain('protocols');
      });
    }

    it('throws a TypeError for a Symbol item', () => {
      expectThrowsTypeError(() => toUSVStringSequence(['a', Symbol('b')], 'p'));
    });

    it('passes on what the iterator or an item throws', () => {
      const failingIterable = {
        *[Symbol.iterator]() {
          yield 'a';
          throw new Marker('iterator');
        },
      };
      expect((thrownBy(() => toUSVStringSequence(failingIterable, 'p')) as Marker).tag).to.equal('iterator');
      const failingItem = {
        toString() {
          throw new Marker('item');
        },
      };
      expect((thrownBy(() => toUSVStringSequence([failingItem], 'p')) as Marker).tag).to.equal('item');
    });
  });
});
