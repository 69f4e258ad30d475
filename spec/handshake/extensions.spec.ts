// Sec-WebSocket-Extensions values (RFC 6455 §9.1): parseExtensions and serializeExtension.
//   extension-list = 1#extension
//   extension = extension-token *( ";" extension-param )
//   extension-param = token [ "=" (token | quoted-string) ]
import { expect } from 'chai';
import { ExtensionHeaderError, parseExtensions, serializeExtension, type ExtensionOffer } from '../../lib/handshake/extensions.js';

function parseError(header: string): ExtensionHeaderError {
  let caught: unknown = null;
  try {
    parseExtensions(header);
  } catch (error) {
    caught = error;
  }
  expect(caught, `parseExtensions(${JSON.stringify(header)}) must throw`).to.be.an.instanceOf(ExtensionHeaderError);
  expect((caught as Error).name).to.equal('ExtensionHeaderError');
  expect(caught).to.be.an.instanceOf(Error);
  return caught as ExtensionHeaderError;
}

describe('Sec-WebSocket-Extensions parsing (RFC 6455 §9.1)', function () {
  describe('parseExtensions: lists', function () {
    it('parses a single extension without parameters', function () {
      expect(parseExtensions('permessage-deflate')).to.deep.equal([{ name: 'permessage-deflate', params: [] }]);
    });

    it('parses a comma-separated list in order', function () {
      expect(parseExtensions('permessage-deflate, x-webkit-deflate-frame, foo')).to.deep.equal([
        { name: 'permessage-deflate', params: [] },
        { name: 'x-webkit-deflate-frame', params: [] },
        { name: 'foo', params: [] },
      ]);
    });

    it('keeps several offers of the same extension as separate elements', function () {
      expect(parseExtensions('permessage-deflate; server_max_window_bits=10, permessage-deflate')).to.deep.equal([
        { name: 'permessage-deflate', params: [['server_max_window_bits', '10']] },
        { name: 'permessage-deflate', params: [] },
      ]);
    });

    it('lower-cases extension and parameter names, but not parameter values', function () {
      expect(parseExtensions('PerMessage-Deflate; Server_Max_Window_Bits=AbC')).to.deep.equal([
        { name: 'permessage-deflate', params: [['server_max_window_bits', 'AbC']] },
      ]);
    });

    it('accepts every token character in names and values', function () {
      const token = "!#$%&'*+-.^_`|~09azAZ";
      expect(parseExtensions(`${token}; ${token}=${token}`)).to.deep.equal([
        { name: token.toLowerCase(), params: [[token.toLowerCase(), token]] },
      ]);
    });
  });

  describe('parseExtensions: parameters', function () {
    it('gives `true` for a parameter without a value', function () {
      expect(parseExtensions('permessage-deflate; client_max_window_bits')).to.deep.equal([
        { name: 'permessage-deflate', params: [['client_max_window_bits', true]] },
      ]);
    });

    it('gives the string for a parameter with a token value', function () {
      expect(parseExtensions('permessage-deflate; server_max_window_bits=10')).to.deep.equal([
        { name: 'permessage-deflate', params: [['server_max_window_bits', '10']] },
      ]);
    });

    it('keeps parameters in order, with and without values mixed', function () {
      expect(
        parseExtensions('permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_no_context_takeover; client_max_window_bits=8'),
      ).to.deep.equal([
        {
          name: 'permessage-deflate',
          params: [
            ['server_no_context_takeover', true],
            ['server_max_window_bits', '9'],
            ['client_no_context_takeover', true],
            ['client_max_window_bits', '8'],
          ],
        },
      ]);
    });

    it('keeps duplicate parameters (the extension decides what they mean)', function () {
      expect(parseExtensions('x; a; a=1; A=2')).to.deep.equal([
        {
          name: 'x',
          params: [
            ['a', true],
            ['a', '1'],
            ['a', '2'],
          ],
        },
      ]);
    });

    it('unquotes a quoted-string value', function () {
      expect(parseExtensions('permessage-deflate; server_max_window_bits="10"')).to.deep.equal([
        { name: 'permessage-deflate', params: [['server_max_window_bits', '10']] },
      ]);
    });

    it('unescapes quoted-pairs in a quoted-string value', function () {
      expect(parseExtensions('x; a="q\\"uote\\\\back\\slash"')).to.deep.equal([{ name: 'x', params: [['a', 'q"uote\\backslash']] }]);
    });

    it('keeps separators, spaces, commas and semicolons inside a quoted-string', function () {
      expect(parseExtensions('x; a="1, 2; b=3", y')).to.deep.equal([
        { name: 'x', params: [['a', '1, 2; b=3']] },
        { name: 'y', params: [] },
      ]);
    });

    it('accepts an empty quoted-string', function () {
      expect(parseExtensions('x; a=""')).to.deep.equal([{ name: 'x', params: [['a', '']] }]);
    });
  });

  describe('parseExtensions: whitespace and empty elements', function () {
    it('allows spaces and tabs around every separator', function () {
      expect(parseExtensions(' \t permessage-deflate \t ;\t server_max_window_bits \t=\t 10 \t; client_max_window_bits \t,\t x \t')).to.deep.equal([
        { name: 'permessage-deflate', params: [['server_max_window_bits', '10'], ['client_max_window_bits', true]] },
        { name: 'x', params: [] },
      ]);
    });

    it('allows no whitespace at all', function () {
      expect(parseExtensions('a;b=1;c,d')).to.deep.equal([
        {
          name: 'a',
          params: [
            ['b', '1'],
            ['c', true],
          ],
        },
        { name: 'd', params: [] },
      ]);
    });

    it('skips empty list elements (RFC 7230 §7 #rule)', function () {
      expect(parseExtensions(', a,, ,b ,')).to.deep.equal([
        { name: 'a', params: [] },
        { name: 'b', params: [] },
      ]);
    });

    it('returns an empty list for an empty or blank header', function () {
      expect(parseExtensions('')).to.deep.equal([]);
      expect(parseExtensions('   ')).to.deep.equal([]);
      expect(parseExtensions(' , ,\t,')).to.deep.equal([]);
    });
  });

  describe('parseExtensions: malformed headers throw ExtensionHeaderError', function () {
    const malformed: Array<[string, string]> = [
      ['a parameter with no extension name', '; a'],
      ['a semicolon with no parameter after it', 'permessage-deflate;'],
      ['two semicolons in a row', 'permessage-deflate;; a'],
      ['an equals sign with no value', 'permessage-deflate; server_max_window_bits='],
      ['an equals sign with only spaces after it', 'permessage-deflate; server_max_window_bits=  '],
      ['a value on the extension name itself', 'permessage-deflate=1'],
      ['two tokens separated by a space', 'permessage deflate'],
      ['a parameter value with a space inside', 'x; a=1 2'],
      ['an unterminated quoted-string', 'x; a="10'],
      ['a quoted-string ending in a lone backslash', 'x; a="10\\'],
      ['text right after a quoted-string', 'x; a="1"0'],
      ['a separator as the name', '(x)'],
      ['a non-token character in a parameter name', 'x; a@b'],
      ['a non-token character as the value', 'x; a=@'],
      ['a non-ASCII name', 'pérmessage'],
      ['an equals sign with no parameter name', 'x; =1'],
      ['a quoted extension name', '"permessage-deflate"'],
    ];
    for (const [what, header] of malformed) {
      it(`${what}: ${JSON.stringify(header)}`, function () {
        const error = parseError(header);
        expect(error.message).to.be.a('string').and.not.equal('');
      });
    }
  });

  describe('serializeExtension', function () {
    it('serializes a name alone', function () {
      expect(serializeExtension({ name: 'permessage-deflate', params: [] })).to.equal('permessage-deflate');
    });

    it('joins parameters with "; ", with and without values, in order', function () {
      expect(
        serializeExtension({
          name: 'permessage-deflate',
          params: [
            ['server_no_context_takeover', true],
            ['server_max_window_bits', '10'],
            ['client_max_window_bits', true],
          ],
        }),
      ).to.equal('permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits');
    });

    it('round-trips through parseExtensions', function () {
      const offers: ExtensionOffer[] = [
        { name: 'permessage-deflate', params: [] },
        { name: 'permessage-deflate', params: [['client_max_window_bits', true]] },
        {
          name: 'permessage-deflate',
          params: [
            ['server_no_context_takeover', true],
            ['client_no_context_takeover', true],
            ['server_max_window_bits', '8'],
            ['client_max_window_bits', '15'],
          ],
        },
        { name: 'x-custom', params: [['a', 'b'], ['a', true]] },
      ];
      for (const offer of offers) {
        expect(parseExtensions(serializeExtension(offer)), serializeExtension(offer)).to.deep.equal([offer]);
      }
    });

    it('produces a header that parses back when a value is not a token (quoted-string)', function () {
      // ExtensionOffer allows any string as a value; RFC 6455 §9.1 only allows a token or a
      // quoted-string on the wire, so such a value must be quoted (and `"`/`\` escaped).
      const offer: ExtensionOffer = { name: 'x', params: [['a', 'two words, "quoted"; \\']] };
      expect(parseExtensions(serializeExtension(offer))).to.deep.equal([offer]);
    });
  });
});
