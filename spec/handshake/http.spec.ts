import { expect } from 'chai';
import {
  headerHasToken,
  HttpHeadError,
  HttpResponseHeadReader,
  isToken,
  isValidHeaderValue,
  parseResponseHead,
  type HttpResponseHead,
} from '../../lib/handshake/http.js';
import { chunkings } from '../helpers/codec.js';

const RESPONSE =
  'HTTP/1.1 101 Switching Protocols\r\n' +
  'Upgrade: websocket\r\n' +
  'Connection: Upgrade\r\n' +
  'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n' +
  'Sec-WebSocket-Protocol: chat\r\n' +
  '\r\n';

function headersOf(head: HttpResponseHead): Record<string, string[]> {
  return Object.fromEntries(head.headers);
}

/** Pushes chunks until the reader returns a head; returns it with every byte that came after it. */
function readHead(reader: HttpResponseHeadReader, chunks: readonly Buffer[]): { head: HttpResponseHead; rest: Buffer; pushes: number } | null {
  for (let i = 0; i < chunks.length; i++) {
    const result = reader.push(chunks[i]!);
    if (result !== null) return { head: result.head, rest: Buffer.concat([result.rest, ...chunks.slice(i + 1)]), pushes: i + 1 };
  }
  return null;
}

describe('HTTP head handling', () => {
  describe('HttpResponseHeadReader', () => {
    it('parses a 101 response', () => {
      const result = new HttpResponseHeadReader(16384).push(Buffer.from(RESPONSE));
      expect(result).to.not.equal(null);
      expect(result!.head.httpVersion).to.equal('1.1');
      expect(result!.head.statusCode).to.equal(101);
      expect(result!.head.statusMessage).to.equal('Switching Protocols');
      expect(headersOf(result!.head)).to.deep.equal({
        upgrade: ['websocket'],
        connection: ['Upgrade'],
        'sec-websocket-accept': ['s3pPLMBiTxaQ9kYGzzhZRbK+xOo='],
        'sec-websocket-protocol': ['chat'],
      });
      expect(result!.rest).to.have.length(0);
    });

    it('gives the same head and rest for the head split at every byte, and one byte at a time', () => {
      // A close frame and a text frame right after the head: they belong to the WebSocket.
      const after = Buffer.from([0x81, 0x02, 0x68, 0x69, 0x88, 0x00, 0x0d, 0x0a, 0x0d, 0x0a]);
      const whole = Buffer.concat([Buffer.from(RESPONSE, 'latin1'), after]);
      const expected = parseResponseHead(RESPONSE.slice(0, -4));
      let count = 0;
      for (const { label, chunks } of chunkings(whole)) {
        const reader = new HttpResponseHeadReader(16384);
        const result = readHead(reader, chunks);
        expect(result, label).to.not.equal(null);
        expect(result!.head, label).to.deep.equal(expected);
        expect(result!.rest.toString('hex'), label).to.equal(after.toString('hex'));
        // The head is complete in exactly the push that carries its last byte.
        let sum = 0;
        let expectedPushes = 0;
        while (sum < RESPONSE.length) sum += chunks[expectedPushes++]!.length;
        expect(result!.pushes, label).to.equal(expectedPushes);
        count++;
      }
      expect(count).to.equal(whole.length + 1);
    });

    it('returns null until the head is complete, even when the terminator straddles chunks', () => {
      for (const split of ['\r', '\r\n', '\r\n\r']) {
        const at = RESPONSE.length - 4 + split.length;
        const reader = new HttpResponseHeadReader(16384);
        expect(reader.push(Buffer.from(RESPONSE.slice(0, at))), JSON.stringify(split)).to.equal(null);
        const result = reader.push(Buffer.from(RESPONSE.slice(at) + 'xyz'));
        expect(result?.head.statusCode).to.equal(101);
        expect(result?.rest.toString()).to.equal('xyz');
      }
    });

    it('does not take a lone CRLF CRLF split over three chunks as anything but the end', () => {
      const reader = new HttpResponseHeadReader(16384);
      const chunks = ['HTTP/1.1 101 OK\r', '\n', 'X: y\r\n', '\r', '\n', 'rest'];
      const result = readHead(reader, chunks.map((chunk) => Buffer.from(chunk)));
      expect(result?.head.statusMessage).to.equal('OK');
      expect(headersOf(result!.head)).to.deep.equal({ x: ['y'] });
      expect(result?.rest.toString()).to.equal('rest');
    });

    it('accepts a head of exactly maxBytes, with any amount of WebSocket data after it', () => {
      const head = Buffer.from(RESPONSE);
      const result = new HttpResponseHeadReader(head.length).push(Buffer.concat([head, Buffer.alloc(100_000, 0x82)]));
      expect(result?.head.statusCode).to.equal(101);
      expect(result?.rest).to.have.length(100_000);
    });

    it('throws HttpHeadError on a head one byte over maxBytes', () => {
      const head = Buffer.from(RESPONSE);
      expect(() => new HttpResponseHeadReader(head.length - 1).push(head)).to.throw(HttpHeadError);
      // Split at every byte: it throws by the end, never returns a head.
      for (const { label, chunks } of chunkings(head)) {
        const reader = new HttpResponseHeadReader(head.length - 1);
        let threw = false;
        try {
          expect(readHead(reader, chunks), label).to.equal(null);
        } catch (error) {
          expect(error, label).to.be.instanceOf(HttpHeadError);
          threw = true;
        }
        expect(threw, label).to.equal(true);
      }
    });

    it('throws as soon as more than maxBytes arrive without the end of the head', () => {
      const reader = new HttpResponseHeadReader(100);
      const line = Buffer.from('HTTP/1.1 101 Switching Protocols\r\nX-Filler: ');
      expect(reader.push(line)).to.equal(null);
      let pushed = line.length;
      let error: unknown = null;
      while (error === null && pushed < 10_000) {
        try {
          reader.push(Buffer.from('a'));
          pushed++;
        } catch (caught) {
          error = caught;
          pushed++;
        }
      }
      expect(error).to.be.instanceOf(HttpHeadError);
      expect(error).to.be.instanceOf(Error);
      expect((error as Error).name).to.equal('HttpHeadError');
      expect(pushed).to.equal(101);
    });

    it('throws on a malformed status line', () => {
      for (const status of [
        'HTTP/1.1 1011 Weird',
        'HTTP/1.1 10 Short',
        'HTTP/1.1  101 Two spaces',
        'HTTP/2 101 Switching',
        'http/1.1 101 lower case',
        'HTTP/1.1 abc Letters',
        'ICY 200 OK',
        'GET / HTTP/1.1',
        '',
      ]) {
        const reader = new HttpResponseHeadReader(16384);
        expect(() => reader.push(Buffer.from(`${status}\r\nUpgrade: websocket\r\n\r\n`)), JSON.stringify(status)).to.throw(HttpHeadError);
      }
    });

    it('throws on a malformed header line', () => {
      for (const line of ['NoColon', ': empty name', 'Bad Name: x', 'Name : space before colon', ' folded: line', '\tfolded: tab', 'Nul\u0000: x', 'X: a\u0000b', 'X: a\rb', 'X: a\nb', '(x): y', 'Ünicode: x']) {
        const reader = new HttpResponseHeadReader(16384);
        expect(() => reader.push(Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n${line}\r\n\r\n`, 'latin1')), JSON.stringify(line)).to.throw(
          HttpHeadError,
        );
      }
    });

    it('keeps repeated headers, lower-cases names, and trims values', () => {
      const text =
        'HTTP/1.0 200 OK\r\n' +
        'Set-Cookie: a=1\r\n' +
        'SET-COOKIE:b=2\r\n' +
        'set-cookie: \t c=3 \t\r\n' +
        'X-Empty:\r\n' +
        'X-Inner:  a  b  \r\n' +
        'X-Latin1: caf\u00e9\r\n' +
        'Sec-WebSocket-Extensions: permessage-deflate\r\n' +
        'sec-websocket-extensions: x-other; a=1\r\n\r\n';
      const result = new HttpResponseHeadReader(16384).push(Buffer.from(text, 'latin1'));
      expect(result!.head.httpVersion).to.equal('1.0');
      expect(result!.head.statusCode).to.equal(200);
      expect(headersOf(result!.head)).to.deep.equal({
        'set-cookie': ['a=1', 'b=2', 'c=3'],
        'x-empty': [''],
        'x-inner': ['a  b'],
        'x-latin1': ['café'],
        'sec-websocket-extensions': ['permessage-deflate', 'x-other; a=1'],
      });
    });

    it('parses a status line with no reason phrase, or an empty one', () => {
      for (const [line, message] of [
        ['HTTP/1.1 101', ''],
        ['HTTP/1.1 101 ', ''],
        ['HTTP/1.1 404 Not Found Here', 'Not Found Here'],
      ] as const) {
        const result = new HttpResponseHeadReader(1024).push(Buffer.from(`${line}\r\n\r\n`));
        expect(result?.head.statusMessage, JSON.stringify(line)).to.equal(message);
        expect(result?.head.headers.size).to.equal(0);
      }
    });

    it('can be used again after a head was read', () => {
      const reader = new HttpResponseHeadReader(1024);
      expect(reader.push(Buffer.from('HTTP/1.1 100 Continue\r\n\r\n'))?.head.statusCode).to.equal(100);
      expect(reader.push(Buffer.from('HTTP/1.1 101 Switching'))).to.equal(null);
      const result = reader.push(Buffer.from(' Protocols\r\nUpgrade: websocket\r\n\r\n!'));
      expect(result?.head.statusMessage).to.equal('Switching Protocols');
      expect(result?.rest.toString()).to.equal('!');
    });
  });

  describe('isToken', () => {
    it('accepts RFC 7230 tokens', () => {
      for (const token of ['chat', 'v1.json', 'superchat', "!#$%&'*+-.^_`|~", 'A0z9', 'x']) expect(isToken(token), token).to.equal(true);
    });

    it('rejects empty strings, separators, spaces, controls and non-ASCII', () => {
      const invalid = ['', ' ', 'a b', 'a\tb', 'é', 'a\u0000', 'a\u007f', 'a\r\n', '€', 'ab\u00ff'];
      for (const separator of '()<>@,;:\\"/[]?={}') invalid.push(`a${separator}b`, separator);
      for (const value of invalid) expect(isToken(value), JSON.stringify(value)).to.equal(false);
    });
  });

  describe('isValidHeaderValue', () => {
    it('accepts visible text, spaces, tabs and Latin-1', () => {
      for (const value of ['', 'Bearer abc', 'a\tb', 'caf\u00e9', '\u00ff', ' padded ', 'x'.repeat(10000)]) {
        expect(isValidHeaderValue(value), JSON.stringify(value)).to.equal(true);
      }
    });

    it('rejects CR, LF, NUL and characters beyond Latin-1', () => {
      for (const value of ['a\rb', 'a\nb', 'a\r\nX-Injected: 1', '\u0000', 'a\u0000', '€', 'a\u0100', '𝄞']) {
        expect(isValidHeaderValue(value), JSON.stringify(value)).to.equal(false);
      }
    });
  });

  describe('headerHasToken', () => {
    it('finds a token in a comma-separated list, case-insensitively', () => {
      expect(headerHasToken('Upgrade', 'upgrade')).to.equal(true);
      expect(headerHasToken('keep-alive, Upgrade', 'upgrade')).to.equal(true);
      expect(headerHasToken('keep-alive,upgrade', 'Upgrade')).to.equal(true);
      expect(headerHasToken('  UPGRADE  ,close', 'upgrade')).to.equal(true);
      expect(headerHasToken('websocket', 'WebSocket')).to.equal(true);
    });

    it('does not match parts of tokens, absent headers or empty lists', () => {
      expect(headerHasToken(undefined, 'upgrade')).to.equal(false);
      expect(headerHasToken('', 'upgrade')).to.equal(false);
      expect(headerHasToken('upgrades', 'upgrade')).to.equal(false);
      expect(headerHasToken('keep-alive; upgrade', 'upgrade')).to.equal(false);
      expect(headerHasToken('no-upgrade, close', 'upgrade')).to.equal(false);
    });
  });
});
