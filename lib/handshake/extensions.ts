// Sec-WebSocket-Extensions header values (RFC 6455 §9.1), parsed and serialized.

export interface ExtensionOffer {
  /** The extension token, lower-cased. */
  name: string;
  /** Parameters in order; `true` for a parameter without a value. Duplicates are kept. */
  params: Array<[name: string, value: string | true]>;
}

export class ExtensionHeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExtensionHeaderError';
  }
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/**
 * Parses `extension-list = 1#extension; extension = token *( ";" token [ "=" (token |
 * quoted-string) ] )`. Empty list elements are skipped; anything malformed throws.
 */
export function parseExtensions(header: string): ExtensionOffer[] {
  const result: ExtensionOffer[] = [];
  let pos = 0;
  const length = header.length;
  const skipSpace = (): void => {
    while (pos < length && (header[pos] === ' ' || header[pos] === '\t')) pos++;
  };
  const token = (): string => {
    const start = pos;
    while (pos < length && TOKEN_CHAR.test(header[pos]!)) pos++;
    if (pos === start) throw new ExtensionHeaderError(`expected a token at offset ${start} of ${JSON.stringify(header)}`);
    return header.slice(start, pos);
  };
  const quoted = (): string => {
    pos++; // opening quote
    let value = '';
    while (pos < length && header[pos] !== '"') {
      if (header[pos] === '\\') pos++;
      if (pos >= length) break;
      value += header[pos];
      pos++;
    }
    if (header[pos] !== '"') throw new ExtensionHeaderError('unterminated quoted string');
    pos++;
    return value;
  };
  while (pos < length) {
    skipSpace();
    if (header[pos] === ',') {
      pos++;
      continue;
    }
    if (pos >= length) break;
    const offer: ExtensionOffer = { name: token().toLowerCase(), params: [] };
    skipSpace();
    while (header[pos] === ';') {
      pos++;
      skipSpace();
      const name = token().toLowerCase();
      skipSpace();
      let value: string | true = true;
      if (header[pos] === '=') {
        pos++;
        skipSpace();
        value = header[pos] === '"' ? quoted() : token();
        skipSpace();
      }
      offer.params.push([name, value]);
    }
    if (pos < length && header[pos] !== ',') {
      throw new ExtensionHeaderError(`unexpected ${JSON.stringify(header[pos])} at offset ${pos} of ${JSON.stringify(header)}`);
    }
    result.push(offer);
  }
  return result;
}

export function serializeExtension(offer: ExtensionOffer): string {
  const valueOf = (value: string): string => (isTokenValue(value) ? value : `"${value.replace(/["\\]/g, '\\$&')}"`);
  return [offer.name, ...offer.params.map(([name, value]) => (value === true ? name : `${name}=${valueOf(value)}`))].join('; ');
}

function isTokenValue(value: string): boolean {
  return value.length > 0 && [...value].every((char) => TOKEN_CHAR.test(char));
}
