// permessage-deflate (RFC 7692): negotiation both ways, option validation, and the compressor /
// inflater of one connection (context takeover, trailer removal, bounded inflation).
import { expect } from 'chai';
import { syncBuiltinESMExports } from 'node:module';
import zlib from 'node:zlib';
import { DEFLATE_TRAILER, InflateLimitError, PerMessageDeflate, type DeflateParams } from '../../lib/protocol/permessage-deflate.js';
import { acceptClientOffers, acceptServerResponse, clientOffer, DEFAULT_DEFLATE_THRESHOLD, NegotiationError, normalizeDeflateOptions, type PerMessageDeflateOptions } from '../../lib/handshake/deflate-negotiation.js';
import { WebSocketStream, WebSocketStreamServer } from '../../lib/index.js';
import { deflateMessage, inflateMessage, pseudoRandom, TRAILER } from '../helpers/deflate-helpers.js';

function negotiationError(fn: () => unknown, what: string): NegotiationError {
  let caught: unknown = null;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught, `${what} must fail the negotiation`).to.be.an.instanceOf(NegotiationError);
  expect((caught as Error).name).to.equal('NegotiationError');
  return caught as NegotiationError;
}

/** Parameters of one side; everything at its default unless overridden. */
function deflateParams(overrides: Partial<DeflateParams> = {}): DeflateParams {
  return {
    sendNoContextTakeover: false,
    sendMaxWindowBits: 15,
    receiveNoContextTakeover: false,
    receiveMaxWindowBits: 15,
    threshold: 0,
    level: undefined,
    memLevel: undefined,
    ...overrides,
  };
}

const DEFAULTS = deflateParams({ threshold: DEFAULT_DEFLATE_THRESHOLD });

function compress(deflate: PerMessageDeflate, data: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    deflate.compress(data, (error, result) => (error === null ? resolve(result!) : reject(error)));
  });
}

function decompress(deflate: PerMessageDeflate, data: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    deflate.decompress(data, (error, result) => (error === null ? resolve(result!) : reject(error)));
  });
}

async function failureOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a failure');
}

describe('permessage-deflate (RFC 7692)', function () {
  describe('clientOffer', function () {
    it('offers `permessage-deflate; client_max_window_bits` by default, as browsers do', function () {
      expect(clientOffer({})).to.equal('permessage-deflate; client_max_window_bits');
    });

    it('clientMaxWindowBits: true is the default offer', function () {
      expect(clientOffer({ clientMaxWindowBits: true })).to.equal('permessage-deflate; client_max_window_bits');
    });

    it('clientMaxWindowBits: false leaves client_max_window_bits out', function () {
      expect(clientOffer({ clientMaxWindowBits: false })).to.equal('permessage-deflate');
    });

    it('clientMaxWindowBits: a number offers client_max_window_bits with that value', function () {
      expect(clientOffer({ clientMaxWindowBits: 10 })).to.equal('permessage-deflate; client_max_window_bits=10');
      expect(clientOffer({ clientMaxWindowBits: 8 })).to.equal('permessage-deflate; client_max_window_bits=8');
      expect(clientOffer({ clientMaxWindowBits: 15 })).to.equal('permessage-deflate; client_max_window_bits=15');
    });

    it('serverNoContextTakeover offers server_no_context_takeover', function () {
      expect(clientOffer({ serverNoContextTakeover: true })).to.equal('permessage-deflate; server_no_context_takeover; client_max_window_bits');
      expect(clientOffer({ serverNoContextTakeover: false })).to.equal('permessage-deflate; client_max_window_bits');
    });

    it('clientNoContextTakeover offers client_no_context_takeover', function () {
      expect(clientOffer({ clientNoContextTakeover: true })).to.equal('permessage-deflate; client_no_context_takeover; client_max_window_bits');
      expect(clientOffer({ clientNoContextTakeover: false })).to.equal('permessage-deflate; client_max_window_bits');
    });

    it('serverMaxWindowBits offers server_max_window_bits with its value', function () {
      expect(clientOffer({ serverMaxWindowBits: 9 })).to.equal('permessage-deflate; server_max_window_bits=9; client_max_window_bits');
      expect(clientOffer({ serverMaxWindowBits: 8, clientMaxWindowBits: false })).to.equal('permessage-deflate; server_max_window_bits=8');
    });

    it('offers every parameter at once', function () {
      expect(
        clientOffer({ serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 12, clientMaxWindowBits: 11 }),
      ).to.equal('permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11');
    });

    it('never puts local settings (threshold, level, memLevel) in the offer', function () {
      expect(clientOffer({ threshold: 0, level: 9, memLevel: 1 })).to.equal('permessage-deflate; client_max_window_bits');
    });
  });

  describe('acceptServerResponse (the client checks the 101)', function () {
    it('an empty header means the server declined: null', function () {
      expect(acceptServerResponse('', {})).to.equal(null);
      expect(acceptServerResponse('', { serverNoContextTakeover: true, serverMaxWindowBits: 9 })).to.equal(null);
      expect(acceptServerResponse('', null)).to.equal(null);
    });

    it('a blank header (empty list elements only) is a decline too', function () {
      expect(acceptServerResponse(' , ', {})).to.equal(null);
    });

    it('`permessage-deflate` alone: full windows, context takeover both ways, the default threshold', function () {
      expect(acceptServerResponse('permessage-deflate', {})).to.deep.equal(DEFAULTS);
    });

    it('takes threshold, level and memLevel from the options', function () {
      expect(acceptServerResponse('permessage-deflate', { threshold: 0, level: 1, memLevel: 9 })).to.deep.equal(
        deflateParams({ threshold: 0, level: 1, memLevel: 9 }),
      );
    });

    it('server_no_context_takeover: the server resets, so may our inflater', function () {
      expect(acceptServerResponse('permessage-deflate; server_no_context_takeover', {})).to.deep.equal({ ...DEFAULTS, receiveNoContextTakeover: true });
    });

    it('client_no_context_takeover (asked for by the server even if not offered): our compressor resets', function () {
      expect(acceptServerResponse('permessage-deflate; client_no_context_takeover', {})).to.deep.equal({ ...DEFAULTS, sendNoContextTakeover: true });
    });

    it('the client resets its own context when it offered client_no_context_takeover, even if the server leaves it out', function () {
      expect(acceptServerResponse('permessage-deflate', { clientNoContextTakeover: true })).to.deep.equal({ ...DEFAULTS, sendNoContextTakeover: true });
    });

    it('server_max_window_bits sets the window the server compresses with (allowed even if not offered)', function () {
      for (const bits of [8, 9, 10, 11, 12, 13, 14, 15]) {
        expect(acceptServerResponse(`permessage-deflate; server_max_window_bits=${bits}`, {}), `bits ${bits}`).to.deep.equal({
          ...DEFAULTS,
          receiveMaxWindowBits: bits,
        });
      }
    });

    it('server_max_window_bits equal to or smaller than offered is accepted', function () {
      expect(acceptServerResponse('permessage-deflate; server_max_window_bits=10', { serverMaxWindowBits: 10 })!.receiveMaxWindowBits).to.equal(10);
      expect(acceptServerResponse('permessage-deflate; server_max_window_bits=8', { serverMaxWindowBits: 10 })!.receiveMaxWindowBits).to.equal(8);
    });

    it('client_max_window_bits with a value, after an offer without one: our compressor uses that window', function () {
      for (const bits of [8, 12, 15]) {
        expect(acceptServerResponse(`permessage-deflate; client_max_window_bits=${bits}`, {}), `bits ${bits}`).to.deep.equal({
          ...DEFAULTS,
          sendMaxWindowBits: bits,
        });
      }
    });

    it('client_max_window_bits equal to or smaller than offered is accepted', function () {
      expect(acceptServerResponse('permessage-deflate; client_max_window_bits=11', { clientMaxWindowBits: 11 })!.sendMaxWindowBits).to.equal(11);
      expect(acceptServerResponse('permessage-deflate; client_max_window_bits=9', { clientMaxWindowBits: 11 })!.sendMaxWindowBits).to.equal(9);
    });

    it('an offered client_max_window_bits value holds when the response leaves it out', function () {
      expect(acceptServerResponse('permessage-deflate', { clientMaxWindowBits: 10 })!.sendMaxWindowBits).to.equal(10);
    });

    it('accepts quoted values (RFC 7692 §7.1.2: the value after unquoting must be valid)', function () {
      expect(acceptServerResponse('permessage-deflate; server_max_window_bits="10"; client_max_window_bits="9"', {})).to.deep.equal({
        ...DEFAULTS,
        receiveMaxWindowBits: 10,
        sendMaxWindowBits: 9,
      });
    });

    it('accepts every parameter at once, in any order and case, with odd whitespace', function () {
      const header = 'Permessage-Deflate ;client_max_window_bits=8;\tSERVER_MAX_WINDOW_BITS = 9 ; client_no_context_takeover;server_no_context_takeover';
      expect(acceptServerResponse(header, { serverNoContextTakeover: true, serverMaxWindowBits: 12, clientMaxWindowBits: true })).to.deep.equal({
        ...DEFAULTS,
        sendNoContextTakeover: true,
        receiveNoContextTakeover: true,
        sendMaxWindowBits: 8,
        receiveMaxWindowBits: 9,
      });
    });

    describe('failures (NegotiationError: the client fails the connection)', function () {
      const cases: Array<[string, string, PerMessageDeflateOptions | null]> = [
        ['an extension that was not offered', 'x-webkit-deflate-frame', {}],
        ['permessage-deflate when nothing was offered', 'permessage-deflate', null],
        ['an unknown extension after permessage-deflate', 'permessage-deflate, x-foo', {}],
        ['an unknown extension before permessage-deflate', 'x-foo, permessage-deflate', {}],
        ['permessage-deflate twice (more than one element)', 'permessage-deflate, permessage-deflate', {}],
        ['an unknown parameter', 'permessage-deflate; foo', {}],
        ['an unknown parameter with a value', 'permessage-deflate; foo=1', {}],
        ['a duplicate server_no_context_takeover', 'permessage-deflate; server_no_context_takeover; server_no_context_takeover', {}],
        ['a duplicate client_no_context_takeover', 'permessage-deflate; client_no_context_takeover; client_no_context_takeover', {}],
        ['a duplicate server_max_window_bits', 'permessage-deflate; server_max_window_bits=10; server_max_window_bits=10', {}],
        ['a duplicate client_max_window_bits', 'permessage-deflate; client_max_window_bits=10; client_max_window_bits=11', {}],
        ['server_max_window_bits=7', 'permessage-deflate; server_max_window_bits=7', {}],
        ['server_max_window_bits=16', 'permessage-deflate; server_max_window_bits=16', {}],
        ['server_max_window_bits=08 (leading zero)', 'permessage-deflate; server_max_window_bits=08', {}],
        ['server_max_window_bits=abc', 'permessage-deflate; server_max_window_bits=abc', {}],
        ['server_max_window_bits=0', 'permessage-deflate; server_max_window_bits=0', {}],
        ['server_max_window_bits=100', 'permessage-deflate; server_max_window_bits=100', {}],
        ['server_max_window_bits=+9', 'permessage-deflate; server_max_window_bits=+9', {}],
        ['server_max_window_bits=9.0', 'permessage-deflate; server_max_window_bits=9.0', {}],
        ['server_max_window_bits="" (empty quoted value)', 'permessage-deflate; server_max_window_bits=""', {}],
        ['server_max_window_bits=" 9" (space inside quotes)', 'permessage-deflate; server_max_window_bits=" 9"', {}],
        ['server_max_window_bits without a value', 'permessage-deflate; server_max_window_bits', {}],
        ['client_max_window_bits=7', 'permessage-deflate; client_max_window_bits=7', {}],
        ['client_max_window_bits=16', 'permessage-deflate; client_max_window_bits=16', {}],
        ['client_max_window_bits=08', 'permessage-deflate; client_max_window_bits=08', {}],
        ['client_max_window_bits=abc', 'permessage-deflate; client_max_window_bits=abc', {}],
        ['client_max_window_bits without a value (a response must carry one)', 'permessage-deflate; client_max_window_bits', {}],
        ['a value on server_no_context_takeover', 'permessage-deflate; server_no_context_takeover=1', {}],
        ['a quoted value on client_no_context_takeover', 'permessage-deflate; client_no_context_takeover="x"', {}],
        ['an empty quoted value on server_no_context_takeover', 'permessage-deflate; server_no_context_takeover=""', {}],
        ['client_max_window_bits when it was not offered', 'permessage-deflate; client_max_window_bits=15', { clientMaxWindowBits: false }],
        ['client_max_window_bits larger than offered', 'permessage-deflate; client_max_window_bits=12', { clientMaxWindowBits: 11 }],
        ['server_max_window_bits larger than offered', 'permessage-deflate; server_max_window_bits=12', { serverMaxWindowBits: 10 }],
        ['the server ignoring an offered server_no_context_takeover', 'permessage-deflate', { serverNoContextTakeover: true }],
        ['the server ignoring an offered server_max_window_bits', 'permessage-deflate', { serverMaxWindowBits: 10 }],
        ['the server ignoring an offered server_max_window_bits (other parameters present)', 'permessage-deflate; server_no_context_takeover', { serverMaxWindowBits: 10, serverNoContextTakeover: true }],
        ['a malformed header', 'permessage-deflate;', {}],
        ['a malformed parameter value', 'permessage-deflate; server_max_window_bits="10', {}],
      ];
      for (const [what, header, options] of cases) {
        it(`${what}: ${JSON.stringify(header)}${options === null ? ' (nothing offered)' : options && Object.keys(options).length > 0 ? ` after offering ${JSON.stringify(options)}` : ''}`, function () {
          const error = negotiationError(() => acceptServerResponse(header, options), what);
          expect(error.message).to.be.a('string').and.not.equal('');
        });
      }
    });
  });

  describe('acceptClientOffers (the server picks an offer and answers it)', function () {
    it('returns null without a header, with an empty one, or a malformed one', function () {
      expect(acceptClientOffers(undefined, {})).to.equal(null);
      expect(acceptClientOffers('', {})).to.equal(null);
      expect(acceptClientOffers('permessage-deflate;', {})).to.equal(null);
      expect(acceptClientOffers('permessage-deflate; server_max_window_bits="10', {})).to.equal(null);
    });

    it('returns null when no permessage-deflate is offered', function () {
      expect(acceptClientOffers('x-webkit-deflate-frame, foo; bar=1', {})).to.equal(null);
    });

    it('accepts a bare offer with a bare response and all defaults', function () {
      expect(acceptClientOffers('permessage-deflate', {})).to.deep.equal({ response: 'permessage-deflate', params: DEFAULTS });
    });

    it("accepts a browser's offer (client_max_window_bits without a value) with a bare response", function () {
      expect(acceptClientOffers('permessage-deflate; client_max_window_bits', {})).to.deep.equal({ response: 'permessage-deflate', params: DEFAULTS });
    });

    it('finds permessage-deflate after other extensions', function () {
      expect(acceptClientOffers('x-foo; a=1, permessage-deflate', {})).to.deep.equal({ response: 'permessage-deflate', params: DEFAULTS });
    });

    it('picks the first acceptable offer among several', function () {
      const result = acceptClientOffers(
        'permessage-deflate; server_max_window_bits=10; client_max_window_bits, permessage-deflate; server_no_context_takeover, permessage-deflate',
        {},
      );
      expect(result).to.deep.equal({
        response: 'permessage-deflate; server_max_window_bits=10',
        params: { ...DEFAULTS, sendMaxWindowBits: 10 },
      });
    });

    describe('declines (skips) offers with invalid parameters and takes the next', function () {
      const invalid: Array<[string, string]> = [
        ['an unknown parameter', 'permessage-deflate; foo'],
        ['an unknown parameter with a value', 'permessage-deflate; foo=bar'],
        ['a duplicate parameter', 'permessage-deflate; client_max_window_bits; client_max_window_bits'],
        ['a duplicate server_no_context_takeover', 'permessage-deflate; server_no_context_takeover; server_no_context_takeover'],
        ['a value on server_no_context_takeover', 'permessage-deflate; server_no_context_takeover=1'],
        ['a value on client_no_context_takeover', 'permessage-deflate; client_no_context_takeover=true'],
        ['server_max_window_bits=7', 'permessage-deflate; server_max_window_bits=7'],
        ['server_max_window_bits=16', 'permessage-deflate; server_max_window_bits=16'],
        ["server_max_window_bits='08'", 'permessage-deflate; server_max_window_bits=08'],
        ['server_max_window_bits=abc', 'permessage-deflate; server_max_window_bits=abc'],
        ['server_max_window_bits without a value', 'permessage-deflate; server_max_window_bits'],
        ['client_max_window_bits=7', 'permessage-deflate; client_max_window_bits=7'],
        ['client_max_window_bits=16', 'permessage-deflate; client_max_window_bits=16'],
        ['client_max_window_bits=08', 'permessage-deflate; client_max_window_bits=08'],
        ['client_max_window_bits=abc', 'permessage-deflate; client_max_window_bits=abc'],
      ];
      for (const [what, offer] of invalid) {
        it(`${what}: ${JSON.stringify(offer)}`, function () {
          expect(acceptClientOffers(offer, {}), 'alone').to.equal(null);
          expect(acceptClientOffers(`${offer}, permessage-deflate; client_no_context_takeover`, {}), 'followed by a valid offer').to.deep.equal({
            response: 'permessage-deflate; client_no_context_takeover',
            params: { ...DEFAULTS, receiveNoContextTakeover: true },
          });
        });
      }
    });

    it('accepts quoted parameter values in an offer', function () {
      expect(acceptClientOffers('permessage-deflate; server_max_window_bits="9"', {})).to.deep.equal({
        response: 'permessage-deflate; server_max_window_bits=9',
        params: { ...DEFAULTS, sendMaxWindowBits: 9 },
      });
    });

    it('agrees to an offered server_no_context_takeover: echoes it and resets its compressor', function () {
      expect(acceptClientOffers('permessage-deflate; server_no_context_takeover', {})).to.deep.equal({
        response: 'permessage-deflate; server_no_context_takeover',
        params: { ...DEFAULTS, sendNoContextTakeover: true },
      });
    });

    it('acknowledges an offered client_no_context_takeover (its inflater may reset)', function () {
      expect(acceptClientOffers('permessage-deflate; client_no_context_takeover', {})).to.deep.equal({
        response: 'permessage-deflate; client_no_context_takeover',
        params: { ...DEFAULTS, receiveNoContextTakeover: true },
      });
    });

    it('agrees to an offered server_max_window_bits: answers with it and compresses with it', function () {
      for (const bits of [8, 9, 12, 15]) {
        expect(acceptClientOffers(`permessage-deflate; server_max_window_bits=${bits}`, {}), `bits ${bits}`).to.deep.equal({
          response: `permessage-deflate; server_max_window_bits=${bits}`,
          params: { ...DEFAULTS, sendMaxWindowBits: bits },
        });
      }
    });

    it('notes an offered client_max_window_bits value as the window it will inflate (no response parameter needed)', function () {
      expect(acceptClientOffers('permessage-deflate; client_max_window_bits=10', {})).to.deep.equal({
        response: 'permessage-deflate',
        params: { ...DEFAULTS, receiveMaxWindowBits: 10 },
      });
    });

    it('serverNoContextTakeover: server_no_context_takeover in the response, unasked', function () {
      expect(acceptClientOffers('permessage-deflate; client_max_window_bits', { serverNoContextTakeover: true })).to.deep.equal({
        response: 'permessage-deflate; server_no_context_takeover',
        params: { ...DEFAULTS, sendNoContextTakeover: true },
      });
    });

    it('clientNoContextTakeover: client_no_context_takeover in the response, unasked', function () {
      expect(acceptClientOffers('permessage-deflate; client_max_window_bits', { clientNoContextTakeover: true })).to.deep.equal({
        response: 'permessage-deflate; client_no_context_takeover',
        params: { ...DEFAULTS, receiveNoContextTakeover: true },
      });
    });

    it('serverMaxWindowBits: server_max_window_bits in the response even when not offered', function () {
      expect(acceptClientOffers('permessage-deflate', { serverMaxWindowBits: 10 })).to.deep.equal({
        response: 'permessage-deflate; server_max_window_bits=10',
        params: { ...DEFAULTS, sendMaxWindowBits: 10 },
      });
    });

    it('serverMaxWindowBits and an offered server_max_window_bits: the smaller wins', function () {
      expect(acceptClientOffers('permessage-deflate; server_max_window_bits=12', { serverMaxWindowBits: 10 })!.response).to.equal(
        'permessage-deflate; server_max_window_bits=10',
      );
      const smaller = acceptClientOffers('permessage-deflate; server_max_window_bits=9', { serverMaxWindowBits: 10 })!;
      expect(smaller.response).to.equal('permessage-deflate; server_max_window_bits=9');
      expect(smaller.params.sendMaxWindowBits).to.equal(9);
    });

    it('clientMaxWindowBits: client_max_window_bits in the response when the client offered the parameter', function () {
      expect(acceptClientOffers('permessage-deflate; client_max_window_bits', { clientMaxWindowBits: 10 })).to.deep.equal({
        response: 'permessage-deflate; client_max_window_bits=10',
        params: { ...DEFAULTS, receiveMaxWindowBits: 10 },
      });
    });

    it('clientMaxWindowBits and an offered client_max_window_bits value: the smaller wins', function () {
      expect(acceptClientOffers('permessage-deflate; client_max_window_bits=9', { clientMaxWindowBits: 10 })).to.deep.equal({
        response: 'permessage-deflate; client_max_window_bits=9',
        params: { ...DEFAULTS, receiveMaxWindowBits: 9 },
      });
      expect(acceptClientOffers('permessage-deflate; client_max_window_bits=12', { clientMaxWindowBits: 10 })!.response).to.equal(
        'permessage-deflate; client_max_window_bits=10',
      );
    });

    it('clientMaxWindowBits never puts client_max_window_bits in a response to an offer without it (RFC 7692 §7.1.2.2)', function () {
      const result = acceptClientOffers('permessage-deflate', { clientMaxWindowBits: 10 });
      // Declining the offer is allowed too; accepting it with the parameter is not.
      expect(result === null || !result.response.includes('client_max_window_bits'), JSON.stringify(result)).to.equal(true);
    });

    it('builds the full response with every option and every offered parameter', function () {
      const result = acceptClientOffers(
        'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=13',
        { serverMaxWindowBits: 12, clientMaxWindowBits: 12, threshold: 16, level: 9, memLevel: 4 },
      );
      expect(result).to.deep.equal({
        response: 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=12',
        params: {
          sendNoContextTakeover: true,
          sendMaxWindowBits: 11,
          receiveNoContextTakeover: true,
          receiveMaxWindowBits: 12,
          threshold: 16,
          level: 9,
          memLevel: 4,
        },
      });
    });

    it('every client offer against every server configuration: the client accepts the response and both sides agree', function () {
      const clientChoices: PerMessageDeflateOptions[] = [];
      for (const serverNoContextTakeover of [false, true])
        for (const clientNoContextTakeover of [false, true])
          for (const serverMaxWindowBits of [undefined, 8, 11, 15])
            for (const clientMaxWindowBits of [false, true, 8, 12, 15])
              clientChoices.push({ serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits });
      const serverChoices: PerMessageDeflateOptions[] = [];
      for (const serverNoContextTakeover of [false, true])
        for (const clientNoContextTakeover of [false, true])
          for (const serverMaxWindowBits of [undefined, 9, 15])
            for (const clientMaxWindowBits of [undefined, 10, 15])
              serverChoices.push({ serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits });
      let pairs = 0;
      for (const client of clientChoices) {
        const offer = clientOffer(client);
        for (const server of serverChoices) {
          const where = `offer ${JSON.stringify(offer)} to ${JSON.stringify(server)}`;
          const accepted = acceptClientOffers(offer, server);
          expect(accepted, where).to.not.equal(null);
          const { response, params: serverSide } = accepted!;
          const clientSide = acceptServerResponse(response, client);
          expect(clientSide, `${where}: response ${response}`).to.not.equal(null);
          expect(clientSide!.sendNoContextTakeover, `${where}: client resets ⇔ server expects it`).to.equal(serverSide.receiveNoContextTakeover);
          expect(clientSide!.receiveNoContextTakeover, `${where}: server resets`).to.equal(serverSide.sendNoContextTakeover);
          expect(clientSide!.sendMaxWindowBits, `${where}: client window`).to.equal(serverSide.receiveMaxWindowBits);
          expect(clientSide!.receiveMaxWindowBits, `${where}: server window`).to.equal(serverSide.sendMaxWindowBits);
          // What each side asked for, it gets.
          if (client.serverNoContextTakeover || server.serverNoContextTakeover) expect(serverSide.sendNoContextTakeover, where).to.equal(true);
          if (client.clientNoContextTakeover || server.clientNoContextTakeover) expect(clientSide!.sendNoContextTakeover, where).to.equal(true);
          if (client.serverMaxWindowBits !== undefined) expect(serverSide.sendMaxWindowBits, where).to.be.at.most(client.serverMaxWindowBits);
          if (server.serverMaxWindowBits !== undefined) expect(serverSide.sendMaxWindowBits, where).to.be.at.most(server.serverMaxWindowBits);
          if (typeof client.clientMaxWindowBits === 'number') expect(clientSide!.sendMaxWindowBits, where).to.be.at.most(client.clientMaxWindowBits);
          if (server.clientMaxWindowBits !== undefined && client.clientMaxWindowBits !== false) {
            expect(clientSide!.sendMaxWindowBits, where).to.be.at.most(server.clientMaxWindowBits as number);
          }
          pairs++;
        }
      }
      expect(pairs).to.equal(clientChoices.length * serverChoices.length);
    });
  });

  describe('normalizeDeflateOptions', function () {
    it('undefined and false mean off (null); true means all defaults', function () {
      expect(normalizeDeflateOptions(undefined, 'perMessageDeflate')).to.equal(null);
      expect(normalizeDeflateOptions(false, 'perMessageDeflate')).to.equal(null);
      expect(normalizeDeflateOptions(true, 'perMessageDeflate')).to.deep.equal({});
    });

    it('copies a valid options object', function () {
      const options: PerMessageDeflateOptions = {
        serverNoContextTakeover: true,
        clientNoContextTakeover: false,
        serverMaxWindowBits: 8,
        clientMaxWindowBits: 15,
        threshold: 0,
        level: 9,
        memLevel: 1,
      };
      const normalized = normalizeDeflateOptions(options, 'perMessageDeflate');
      expect(normalized).to.deep.equal(options);
      expect(normalized).to.not.equal(options);
    });

    it('accepts the bounds of every numeric option', function () {
      const valid: PerMessageDeflateOptions[] = [
        { serverMaxWindowBits: 8 },
        { serverMaxWindowBits: 15 },
        { clientMaxWindowBits: 8 },
        { clientMaxWindowBits: 15 },
        { clientMaxWindowBits: true },
        { clientMaxWindowBits: false },
        { threshold: 0 },
        { threshold: 1e9 },
        { level: 0 },
        { level: 9 },
        { memLevel: 1 },
        { memLevel: 9 },
      ];
      for (const options of valid) expect(normalizeDeflateOptions(options, 'x'), JSON.stringify(options)).to.deep.equal(options);
    });

    it('throws TypeError for anything but a boolean or an object', function () {
      for (const value of [null, 0, 1, 'true', 'permessage-deflate', Symbol('x'), 10n]) {
        expect(() => normalizeDeflateOptions(value, 'perMessageDeflate'), String(value)).to.throw(TypeError, /perMessageDeflate/);
      }
    });

    it('throws RangeError for window bits outside 8–15 or not integers', function () {
      for (const bits of [7, 16, 0, -1, 9.5, NaN, Infinity]) {
        expect(() => normalizeDeflateOptions({ serverMaxWindowBits: bits }, 'x'), `serverMaxWindowBits ${bits}`).to.throw(RangeError, /serverMaxWindowBits/);
        expect(() => normalizeDeflateOptions({ clientMaxWindowBits: bits }, 'x'), `clientMaxWindowBits ${bits}`).to.throw(RangeError, /clientMaxWindowBits/);
      }
    });

    it('refuses window bits given as strings', function () {
      expect(() => normalizeDeflateOptions({ serverMaxWindowBits: '10' as unknown as number }, 'x')).to.throw(/serverMaxWindowBits/);
      expect(() => normalizeDeflateOptions({ clientMaxWindowBits: '10' as unknown as number }, 'x')).to.throw(/clientMaxWindowBits/);
    });

    it('throws RangeError for a negative or non-numeric threshold', function () {
      for (const threshold of [-1, NaN, '10' as unknown as number]) {
        expect(() => normalizeDeflateOptions({ threshold }, 'x'), String(threshold)).to.throw(RangeError, /threshold/);
      }
    });

    it('throws RangeError for a level outside 0–9 and a memLevel outside 1–9', function () {
      for (const level of [-1, 10, 1.5]) expect(() => normalizeDeflateOptions({ level }, 'x'), `level ${level}`).to.throw(RangeError, /level/);
      for (const memLevel of [0, 10, 2.5]) expect(() => normalizeDeflateOptions({ memLevel }, 'x'), `memLevel ${memLevel}`).to.throw(RangeError, /memLevel/);
    });

    it('the client constructor validates perMessageDeflate synchronously, before connecting', function () {
      expect(() => new WebSocketStream('ws://127.0.0.1:1/', { perMessageDeflate: { serverMaxWindowBits: 16 } })).to.throw(RangeError);
      expect(() => new WebSocketStream('ws://127.0.0.1:1/', { perMessageDeflate: { clientMaxWindowBits: 7 } })).to.throw(RangeError);
      expect(() => new WebSocketStream('ws://127.0.0.1:1/', { perMessageDeflate: 'yes' as unknown as boolean })).to.throw(TypeError);
    });

    it('the server constructor validates perMessageDeflate synchronously, before listening', function () {
      expect(() => new WebSocketStreamServer({ port: 0, perMessageDeflate: { serverMaxWindowBits: 7 } })).to.throw(RangeError);
      expect(() => new WebSocketStreamServer({ port: 0, perMessageDeflate: { level: 10 } })).to.throw(RangeError);
      expect(() => new WebSocketStreamServer({ port: 0, perMessageDeflate: 1 as unknown as boolean })).to.throw(TypeError);
    });
  });

  describe('PerMessageDeflate: compress and decompress', function () {
    const open: PerMessageDeflate[] = [];
    function codec(params: Partial<DeflateParams> = {}, maxPayload = 64 * 1024 * 1024): PerMessageDeflate {
      const deflate = new PerMessageDeflate(deflateParams(params), maxPayload);
      open.push(deflate);
      return deflate;
    }
    afterEach(function () {
      for (const deflate of open.splice(0)) deflate.close();
    });

    it('round-trips text-like, random, single-byte and empty messages', async function () {
      const sender = codec();
      const receiver = codec();
      const messages = [
        Buffer.from('Hello, permessage-deflate! '.repeat(100)),
        pseudoRandom(10_000, 7),
        Buffer.from([0x42]),
        Buffer.alloc(0),
        Buffer.from('€😀é'.repeat(1000)),
        pseudoRandom(300_000, 9),
      ];
      for (const message of messages) {
        const compressed = await compress(sender, message);
        const inflated = await decompress(receiver, compressed);
        expect(inflated.equals(message), `message of ${message.length} bytes`).to.equal(true);
      }
    });

    it('removes the trailing 00 00 ff ff of the sync flush (RFC 7692 §7.2.1), and raw inflate restores the message', async function () {
      const sender = codec({ sendNoContextTakeover: true });
      for (const message of [Buffer.from('abc'.repeat(500)), pseudoRandom(5000, 3), Buffer.alloc(0), Buffer.from('x')]) {
        const compressed = await compress(sender, message);
        expect(compressed.length).to.be.greaterThan(0);
        expect(compressed.length >= 4 && compressed.subarray(-4).equals(TRAILER), `no trailer on ${compressed.toString('hex').slice(-16)}`).to.equal(false);
        expect(inflateMessage(compressed).equals(message), `independent inflate of ${message.length} bytes`).to.equal(true);
      }
    });

    it('DEFLATE_TRAILER is 00 00 ff ff', function () {
      expect(Buffer.from(DEFLATE_TRAILER).toString('hex')).to.equal('0000ffff');
    });

    it('compresses a repetitive message well', async function () {
      const compressed = await compress(codec(), Buffer.alloc(1024 * 1024, 'a'));
      expect(compressed.length).to.be.lessThan(8 * 1024);
    });

    it('with context takeover, a repeated message compresses much smaller the second time', async function () {
      const sender = codec({ sendNoContextTakeover: false });
      const receiver = codec({ receiveNoContextTakeover: false });
      const message = pseudoRandom(4000, 11);
      const first = await compress(sender, message);
      const second = await compress(sender, message);
      expect(first.length).to.be.greaterThan(3900);
      expect(second.length).to.be.lessThan(first.length / 10);
      // The second needs the first's context: a fresh inflater cannot read it, ours can.
      expect(() => inflateMessage(second)).to.throw();
      expect((await decompress(receiver, first)).equals(message)).to.equal(true);
      expect((await decompress(receiver, second)).equals(message)).to.equal(true);
    });

    it('without context takeover, a repeated message compresses to the same size (and the same bytes) each time', async function () {
      const sender = codec({ sendNoContextTakeover: true });
      const receiver = codec({ receiveNoContextTakeover: true });
      const message = pseudoRandom(4000, 11);
      const sizes: number[] = [];
      let previous: Buffer | null = null;
      for (let i = 0; i < 3; i++) {
        const compressed = await compress(sender, message);
        sizes.push(compressed.length);
        if (previous !== null) expect(compressed.equals(previous), `message ${i + 1} differs from the one before`).to.equal(true);
        previous = compressed;
        // Each stands alone: a fresh raw inflater reads it.
        expect(inflateMessage(compressed).equals(message)).to.equal(true);
        expect((await decompress(receiver, compressed)).equals(message)).to.equal(true);
      }
      expect(sizes[0]).to.be.greaterThan(3900);
    });

    it('honours sendMaxWindowBits: the output inflates with a window of that size', async function () {
      // A 2 KiB block repeated: a 15-bit window would refer 2 KiB back, a 9-bit one cannot.
      const block = pseudoRandom(2048, 5);
      const message = Buffer.concat([block, block, block, block]);
      const wide = await compress(codec({ sendMaxWindowBits: 15 }), message);
      expect(wide.length).to.be.lessThan(3000);
      // The window check: a 9-bit inflater writing 64 bytes at a time cannot look 2 KiB back.
      expect(() => inflateMessage(wide, 9)).to.throw(/distance too far back/);
      for (const bits of [8, 9, 10]) {
        const narrow = await compress(codec({ sendMaxWindowBits: bits }), message);
        expect(inflateMessage(narrow, bits).equals(message), `window ${bits}`).to.equal(true);
      }
    });

    it('inflates messages from a peer compressing with any window size', async function () {
      const receiver = codec({ receiveMaxWindowBits: 9 });
      const message = Buffer.from('the quick brown fox '.repeat(2000));
      for (const bits of [9, 12, 15]) {
        const compressed = zlib.deflateRawSync(message, { windowBits: bits, finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
        expect((await decompress(receiver, compressed)).equals(message), `window ${bits}`).to.equal(true);
      }
    });

    it('uses the level it was given (level 0 stores, so nothing shrinks)', async function () {
      const message = Buffer.alloc(10_000, 'a');
      const stored = await compress(codec({ level: 0 }), message);
      expect(stored.length).to.be.greaterThan(message.length);
      expect(inflateMessage(stored).equals(message)).to.equal(true);
      const best = await compress(codec({ level: 9 }), message);
      expect(best.length).to.be.lessThan(200);
    });

    it('inflates messages that end with a final block (BFINAL = 1, RFC 7692 §7.2.3.4), and the messages after them', async function () {
      // A sender without a sync flush may end each message's DEFLATE stream with a final block;
      // the next message then starts a new DEFLATE stream.
      const receiver = codec();
      expect((await decompress(receiver, zlib.deflateRawSync(Buffer.from('Hello')))).toString()).to.equal('Hello');
      expect((await decompress(receiver, zlib.deflateRawSync(Buffer.from('World')))).toString()).to.equal('World');
      expect((await decompress(receiver, deflateMessage('sync-flushed')))).to.deep.equal(Buffer.from('sync-flushed'));
    });

    it('fails on invalid compressed data with an error that is not an InflateLimitError', async function () {
      const error = await failureOf(decompress(codec(), Buffer.from([0xff, 0xff, 0xff, 0xff])));
      expect(error).to.be.an.instanceOf(Error);
      expect(error).to.not.be.an.instanceOf(InflateLimitError);
    });

    it('accepts a message that inflates to exactly maxPayload bytes, and refuses one byte more', async function () {
      const limit = 100_000;
      const exact = zlib.deflateRawSync(Buffer.alloc(limit, 'z'));
      const ok = await decompress(codec({}, limit), exact);
      expect(ok.length).to.equal(limit);
      const over = zlib.deflateRawSync(Buffer.alloc(limit + 1, 'z'));
      const error = await failureOf(decompress(codec({}, limit), over));
      expect(error).to.be.an.instanceOf(InflateLimitError);
      expect((error as InflateLimitError).limit).to.equal(limit);
      expect(error.name).to.equal('InflateLimitError');
    });

    it('a bomb (16 MiB of zeros in ~16 KiB) fails with InflateLimitError without inflating much past maxPayload', async function () {
      const maxPayload = 1024 * 1024;
      const bomb = zlib.deflateRawSync(Buffer.alloc(16 * 1024 * 1024), { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
      expect(bomb.length).to.be.lessThan(20 * 1024);
      // Count every byte any raw inflater produces while the bomb is inflated (the property is
      // read-only but configurable, so it is swapped by redefining it, and restored after; lib/
      // imports node:zlib as a namespace, whose bindings follow the module object once synced).
      const descriptor = Object.getOwnPropertyDescriptor(zlib, 'createInflateRaw')!;
      const original = zlib.createInflateRaw;
      const inflaters: zlib.InflateRaw[] = [];
      let produced = 0;
      const counting = (options?: zlib.ZlibOptions): zlib.InflateRaw => {
        const stream = original(options);
        inflaters.push(stream);
        stream.on('data', (chunk: Buffer) => {
          produced += chunk.length;
        });
        return stream;
      };
      Object.defineProperty(zlib, 'createInflateRaw', { ...descriptor, value: counting });
      syncBuiltinESMExports();
      let error: Error;
      try {
        error = await failureOf(decompress(codec({}, maxPayload), bomb));
      } finally {
        Object.defineProperty(zlib, 'createInflateRaw', descriptor);
        syncBuiltinESMExports();
      }
      expect(error).to.be.an.instanceOf(InflateLimitError);
      expect(inflaters.length, 'the codec inflates with zlib.createInflateRaw').to.equal(1);
      // The inflater is closed once the limit is crossed; wait for that, then nothing more can come.
      const inflater = inflaters[0]!;
      if (!inflater.closed) await new Promise<void>((resolve) => inflater.once('close', () => resolve()));
      expect(produced, `bytes inflated (limit ${maxPayload})`).to.be.greaterThan(maxPayload);
      expect(produced, `bytes inflated (limit ${maxPayload})`).to.be.at.most(maxPayload + 128 * 1024);
    });

    it('a failed inflate does not break the next message of the connection', async function () {
      const receiver = codec({}, 1000);
      const error = await failureOf(decompress(receiver, zlib.deflateRawSync(Buffer.alloc(5000))));
      expect(error).to.be.an.instanceOf(InflateLimitError);
      const message = Buffer.from('still fine');
      expect((await decompress(receiver, zlib.deflateRawSync(message, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4))).equals(message)).to.equal(true);
    });

    it('many codecs at once (more than the zlib concurrency bound) all complete, each in order', async function () {
      const pairs = Array.from({ length: 40 }, () => ({ sender: codec(), receiver: codec() }));
      await Promise.all(
        pairs.map(async ({ sender, receiver }, index) => {
          for (let i = 0; i < 5; i++) {
            const message = Buffer.from(`connection ${index} message ${i} `.repeat(200 + i));
            const compressed = await compress(sender, message);
            expect((await decompress(receiver, compressed)).equals(message)).to.equal(true);
          }
        }),
      );
    });

    it('jobs running when close() is called report an error, exactly once', async function () {
      const deflate = codec();
      const big = pseudoRandom(2 * 1024 * 1024, 13);
      const calls: Array<Error | null> = [];
      const done = new Promise<void>((resolve) => {
        deflate.compress(big, (error) => {
          calls.push(error);
          resolve();
        });
      });
      deflate.close();
      await done;
      // Give a stray second callback the chance to show up.
      await new Promise<void>((resolve) => setImmediate(resolve));
      expect(calls).to.have.length(1);
      expect(calls[0]).to.be.an.instanceOf(Error);
    });

    it('after close(), compress and decompress report an error', async function () {
      const deflate = codec();
      deflate.close();
      expect(await failureOf(compress(deflate, Buffer.from('x')))).to.be.an.instanceOf(Error);
      expect(await failureOf(decompress(deflate, Buffer.from([0x00])))).to.be.an.instanceOf(Error);
    });
  });
});
