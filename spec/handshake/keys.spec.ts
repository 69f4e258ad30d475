import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { acceptKeyFor, generateKey, isValidKey } from '../../lib/handshake/keys.js';
import { prng, randomBytes } from '../helpers/codec.js';

describe('handshake keys', () => {
  describe('acceptKeyFor', () => {
    it('gives the RFC 6455 §1.3 example', () => {
      // RFC 6455 §1.3: "the server would ... return s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" (checked with SHA-1 by hand).
      expect(acceptKeyFor('dGhlIHNhbXBsZSBub25jZQ==')).to.equal('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    });

    it('is base64(SHA-1(key + the RFC 6455 GUID)) for any key', () => {
      const rand = prng(6455);
      for (let i = 0; i < 50; i++) {
        const key = randomBytes(rand, 16).toString('base64');
        const expected = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`, 'latin1').digest('base64');
        expect(acceptKeyFor(key), key).to.equal(expected);
      }
    });
  });

  describe('generateKey', () => {
    it('makes valid, random 16-byte nonces', () => {
      const keys = new Set<string>();
      for (let i = 0; i < 200; i++) {
        const key = generateKey();
        expect(key).to.have.length(24);
        expect(Buffer.from(key, 'base64')).to.have.length(16);
        expect(isValidKey(key), key).to.equal(true);
        keys.add(key);
      }
      expect(keys.size).to.equal(200);
    });
  });

  describe('isValidKey', () => {
    it('accepts the base64 form of 16 bytes', () => {
      expect(isValidKey('dGhlIHNhbXBsZSBub25jZQ==')).to.equal(true);
      expect(isValidKey(Buffer.alloc(16).toString('base64'))).to.equal(true);
      expect(isValidKey(Buffer.alloc(16, 0xff).toString('base64'))).to.equal(true);
      const rand = prng(16);
      for (let i = 0; i < 50; i++) expect(isValidKey(randomBytes(rand, 16).toString('base64'))).to.equal(true);
    });

    it('rejects other lengths, alphabets and paddings', () => {
      const invalid = [
        '',
        'dGhlIHNhbXBsZSBub25jZQ', // no padding
        'dGhlIHNhbXBsZSBub25jZQ=', // half the padding
        'dGhlIHNhbXBsZSBub25jZQ===',
        ' dGhlIHNhbXBsZSBub25jZQ==',
        'dGhlIHNhbXBsZSBub25jZQ== ',
        'dGhlIHNhbXBsZSBub25jZQ==\n',
        Buffer.alloc(15).toString('base64'),
        Buffer.alloc(17).toString('base64'),
        Buffer.alloc(32).toString('base64'),
        Buffer.alloc(12).toString('base64'), // 16 characters, 12 bytes
        '-_-_-_-_-_-_-_-_-_-_-_==', // base64url alphabet
        'dGhlIHNhbXBsZ!Bub25jZQ==',
        'dGhlIHNhbXBsZSBub25jZ===',
        'dGhlIHNhbXBsZSBub25j\u00e9Q==',
      ];
      for (const key of invalid) expect(isValidKey(key), JSON.stringify(key)).to.equal(false);
    });
  });
});
