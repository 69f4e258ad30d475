import { expect } from 'chai';
import { encodeClosePayload, isUserCloseCode, isValidWireCloseCode, parseClosePayload } from '../../lib/protocol/close.js';
import { closeBody } from '../helpers/codec.js';

/** RFC 6455 §7.4 (docs/semantics.md#close-codes-on-the-wire), written out independently of lib/. */
function expectedWireValid(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

describe('close payloads', () => {
  describe('isValidWireCloseCode', () => {
    it('accepts 1000-1003, 1007-1014 and 3000-4999, and nothing else in 0..65535', () => {
      for (let code = 0; code <= 65535; code++) {
        if (isValidWireCloseCode(code) !== expectedWireValid(code)) expect.fail(`code ${code}: expected ${expectedWireValid(code)}`);
      }
    });

    it('rejects the reserved codes by name', () => {
      for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
        expect(isValidWireCloseCode(code), `code ${code}`).to.equal(false);
      }
      for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]) {
        expect(isValidWireCloseCode(code), `code ${code}`).to.equal(true);
      }
    });
  });

  describe('isUserCloseCode', () => {
    it('accepts 1000 and 3000-4999 only (WHATWG close())', () => {
      for (let code = 0; code <= 65535; code++) {
        const expected = code === 1000 || (code >= 3000 && code <= 4999);
        if (isUserCloseCode(code) !== expected) expect.fail(`code ${code}: expected ${expected}`);
      }
      for (const code of [1001, 1005, 1006, 1011, 2999, 5000, 0]) expect(isUserCloseCode(code), `code ${code}`).to.equal(false);
    });
  });

  describe('parseClosePayload', () => {
    it('reads an empty payload as no code', () => {
      expect(parseClosePayload(new Uint8Array(0))).to.deep.equal({ ok: true, code: null, reason: '' });
    });

    it('fails with 1002 on a one-byte payload', () => {
      for (const byte of [0x00, 0x03, 0xe8, 0xff]) {
        const result = parseClosePayload(Uint8Array.from([byte]));
        expect(result.ok).to.equal(false);
        if (!result.ok) {
          expect(result.errorCode).to.equal(1002);
          expect(result.message).to.be.a('string').and.not.equal('');
        }
      }
    });

    it('reads a code without a reason', () => {
      expect(parseClosePayload(closeBody(1000))).to.deep.equal({ ok: true, code: 1000, reason: '' });
      expect(parseClosePayload(closeBody(4999))).to.deep.equal({ ok: true, code: 4999, reason: '' });
    });

    it('reads a code and a UTF-8 reason', () => {
      expect(parseClosePayload(closeBody(1001, 'going away'))).to.deep.equal({ ok: true, code: 1001, reason: 'going away' });
      expect(parseClosePayload(closeBody(3000, 'é€𝄞'))).to.deep.equal({ ok: true, code: 3000, reason: 'é€𝄞' });
      expect(parseClosePayload(closeBody(1000, '€'.repeat(41)))).to.deep.equal({ ok: true, code: 1000, reason: '€'.repeat(41) });
    });

    it('fails with 1002 on every code that may not be on the wire', () => {
      for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
        const result = parseClosePayload(closeBody(code, 'x'));
        expect(result.ok, `code ${code}`).to.equal(false);
        if (!result.ok) expect(result.errorCode, `code ${code}`).to.equal(1002);
      }
    });

    it('accepts every valid code', () => {
      for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]) {
        expect(parseClosePayload(closeBody(code, 'ok')), `code ${code}`).to.deep.equal({ ok: true, code, reason: 'ok' });
      }
    });

    it('fails with 1007 on a reason that is not UTF-8', () => {
      for (const bad of [[0xff], [0x61, 0x80], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80]]) {
        const result = parseClosePayload(closeBody(1000, Uint8Array.from(bad)));
        expect(result.ok, Buffer.from(bad).toString('hex')).to.equal(false);
        if (!result.ok) expect(result.errorCode).to.equal(1007);
      }
    });

    it('checks the code before the reason (a bad code with a bad reason is 1002)', () => {
      const result = parseClosePayload(closeBody(1005, Uint8Array.from([0xff])));
      expect(result.ok === false && result.errorCode).to.equal(1002);
    });

    it('reads a payload that is a view into a larger buffer', () => {
      const backing = Buffer.concat([Buffer.from([0xff, 0xff, 0xff]), closeBody(4001, 'view'), Buffer.from([0xff, 0xfe])]);
      const view = new Uint8Array(backing.buffer, backing.byteOffset + 3, 6);
      expect(parseClosePayload(view)).to.deep.equal({ ok: true, code: 4001, reason: 'view' });
      const plain = Uint8Array.from(closeBody(1000, 'plain'));
      expect(parseClosePayload(plain)).to.deep.equal({ ok: true, code: 1000, reason: 'plain' });
    });
  });

  describe('encodeClosePayload', () => {
    it('is empty without a code (1005 never goes on the wire)', () => {
      expect(encodeClosePayload(null)).to.have.length(0);
      expect(encodeClosePayload(null, '')).to.have.length(0);
    });

    it('writes the code big-endian, then the UTF-8 reason', () => {
      expect([...encodeClosePayload(1000)]).to.deep.equal([0x03, 0xe8]);
      expect([...encodeClosePayload(4999, 'é')]).to.deep.equal([0x13, 0x87, 0xc3, 0xa9]);
      expect(encodeClosePayload(3000, 'bye').equals(closeBody(3000, 'bye'))).to.equal(true);
    });

    it('keeps a 123-byte reason whole', () => {
      expect(encodeClosePayload(1000, 'a'.repeat(123)).equals(closeBody(1000, 'a'.repeat(123)))).to.equal(true);
      expect(encodeClosePayload(1000, '€'.repeat(41)).equals(closeBody(1000, '€'.repeat(41)))).to.equal(true);
    });

    it('cuts a longer reason to at most 123 bytes on a character boundary', () => {
      const cases: Array<[string, string]> = [
        ['a'.repeat(124), 'a'.repeat(123)],
        ['a'.repeat(500), 'a'.repeat(123)],
        ['€'.repeat(42), '€'.repeat(41)],
        [`a${'€'.repeat(41)}`, `a${'€'.repeat(40)}`],
        [`ab${'€'.repeat(41)}`, `ab${'€'.repeat(40)}`],
        [`abc${'€'.repeat(41)}`, `abc${'€'.repeat(40)}`],
        ['𝄞'.repeat(31), '𝄞'.repeat(30)],
        [`${'x'.repeat(121)}é!`, `${'x'.repeat(121)}é`],
        [`${'x'.repeat(122)}é`, 'x'.repeat(122)],
      ];
      for (const [reason, kept] of cases) {
        const payload = encodeClosePayload(1000, reason);
        expect(payload.length, JSON.stringify(reason.slice(0, 5))).to.be.at.most(125);
        expect(payload.readUInt16BE(0)).to.equal(1000);
        expect(payload.subarray(2).toString('utf8'), `${JSON.stringify(reason.slice(0, 5))}…`).to.equal(kept);
        expect(parseClosePayload(payload)).to.deep.equal({ ok: true, code: 1000, reason: kept });
      }
    });

    it('round-trips through parseClosePayload', () => {
      for (const [code, reason] of [
        [1000, ''],
        [1001, 'going'],
        [1011, 'internal error: €'],
        [4000, '𝄞 music'],
      ] as const) {
        expect(parseClosePayload(encodeClosePayload(code, reason))).to.deep.equal({ ok: true, code, reason });
      }
    });
  });
});
