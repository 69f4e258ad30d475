// The UTF-8 vectors of Autobahn's 6.5–6.23 cases (from Markus Kuhn's UTF-8 decoder stress test),
// numbered as Autobahn numbers them, and the suite's own fail-fast reading of RFC 3629.

/**
 * Where a byte string stops being the start of any valid UTF-8 text (RFC 3629 §4): the index of
 * the first byte that no continuation can rescue; `bytes.length` if the text only ends inside a
 * sequence; null if it is valid. A fail-fast receiver knows it must fail exactly there.
 */
export function firstInvalidByte(bytes: Uint8Array): number | null {
  let owed = 0;
  let low = 0x80;
  let high = 0xbf;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    if (owed > 0) {
      if (byte < low || byte > high) return i;
      owed--;
      low = 0x80;
      high = 0xbf;
    } else if (byte <= 0x7f) {
      // ASCII
    } else if (byte >= 0xc2 && byte <= 0xdf) {
      owed = 1;
    } else if (byte >= 0xe0 && byte <= 0xef) {
      owed = 2;
      if (byte === 0xe0) low = 0xa0; // below U+0800 would be overlong
      if (byte === 0xed) high = 0x9f; // U+D800..U+DFFF are surrogates
    } else if (byte >= 0xf0 && byte <= 0xf4) {
      owed = 3;
      if (byte === 0xf0) low = 0x90; // below U+10000 would be overlong
      if (byte === 0xf4) high = 0x8f; // above U+10FFFF
    } else {
      // 80..BF without a lead byte, C0/C1 (overlong), F5..FF (beyond U+10FFFF or never valid)
      return i;
    }
  }
  return owed === 0 ? null : bytes.length;
}

export interface Utf8Vector {
  /** Autobahn's case number, e.g. "6.12.3". */
  id: string;
  bytes: Buffer;
  valid: boolean;
}

export interface Utf8VectorGroup {
  id: string;
  title: string;
  vectors: Utf8Vector[];
}

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const ascii = (text: string): Buffer => Buffer.from(text, 'latin1');
const cat = (...parts: Buffer[]): Buffer => Buffer.concat(parts);

/** Every byte from `from` to `to` (exclusive), each followed by a space: "lonely start bytes". */
function lonely(from: number, to: number): Buffer {
  const bytes: number[] = [];
  for (let byte = from; byte < to; byte++) bytes.push(byte, 0x20);
  return Buffer.from(bytes);
}

/** κόσμε, the Greek word of the stress test, in five code points of 2 and 3 bytes. */
const KOSME = hex('ceba e1bdb9 cf83 cebc ceb5');

const missingLast = ['c0', 'e080', 'f08080', 'f8808080', 'fc80808080', 'df', 'efbf', 'f7bfbf', 'fbbfbfbf', 'fdbfbfbfbf'].map(hex);

function nonCharacters(): Buffer[] {
  const out = [hex('efbfbe'), hex('efbfbf')];
  for (const lead of [0xf0, 0xf1, 0xf2, 0xf3, 0xf4]) {
    for (const second of [0x8f, 0x9f, 0xaf, 0xbf]) {
      // F4 9F.. and up are beyond U+10FFFF; F0 8F.. is overlong: neither is a code point.
      if (lead === 0xf4 && second !== 0x8f) continue;
      if (lead === 0xf0 && second === 0x8f) continue;
      for (const last of [0xbe, 0xbf]) out.push(Buffer.from([lead, second, 0xbf, last]));
    }
  }
  return out;
}

/** [title, [valid?, bytes][]] in Autobahn's order, which fixes the case numbers 6.5 onwards. */
const GROUPS: Array<[string, Array<[boolean, Buffer]>]> = [
  [
    'Some valid UTF-8 sequences',
    [
      [true, ascii('hello$world')],
      [true, cat(ascii('hello'), hex('c2a2'), ascii('world'))],
      [true, cat(ascii('hello'), hex('e282ac'), ascii('world'))],
      [true, cat(ascii('hello'), hex('f0a4ada2'), ascii('world'))],
      [true, KOSME],
    ],
  ],
  [
    'All prefixes of a valid UTF-8 string that contains multi-byte code points',
    // Only the prefixes that end on a code point boundary (2, 5, 7, 9, 11 bytes) are valid.
    Array.from({ length: KOSME.length }, (_, i): [boolean, Buffer] => [[2, 5, 7, 9, 11].includes(i + 1), KOSME.subarray(0, i + 1)]),
  ],
  ['First possible sequence of a certain length', [[true, hex('00')], [true, hex('c280')], [true, hex('e0a080')], [true, hex('f0908080')]]],
  ['First possible sequence length 5/6 (invalid codepoints)', [[false, hex('f888808080')], [false, hex('fc8480808080')]]],
  ['Last possible sequence of a certain length', [[true, hex('7f')], [true, hex('dfbf')], [true, hex('efbfbf')], [true, hex('f48fbfbf')]]],
  ['Last possible sequence length 4/5/6 (invalid codepoints)', [[false, hex('f7bfbfbf')], [false, hex('fbbfbfbfbf')], [false, hex('fdbfbfbfbfbf')]]],
  [
    'Other boundary conditions',
    [[true, hex('ed9fbf')], [true, hex('ee8080')], [true, hex('efbfbd')], [true, hex('f48fbfbf')], [false, hex('f4908080')]],
  ],
  [
    'Unexpected continuation bytes',
    [
      [false, hex('80')],
      [false, hex('bf')],
      [false, hex('80bf')],
      [false, hex('80bf80')],
      [false, hex('80bf80bf')],
      [false, hex('80bf80bf80')],
      [false, hex('80bf80bf80bf')],
      [false, Buffer.from(Array.from({ length: 0xbf - 0x80 }, (_, i) => 0x80 + i))],
    ],
  ],
  ['Lonely start characters', [[false, lonely(0xc0, 0xdf)], [false, lonely(0xe0, 0xef)], [false, lonely(0xf0, 0xf7)], [false, lonely(0xf8, 0xfb)], [false, lonely(0xfc, 0xfd)]]],
  ['Sequences with last continuation byte missing', missingLast.map((bytes): [boolean, Buffer] => [false, bytes])],
  ['Concatenation of incomplete sequences', [[false, cat(...missingLast)]]],
  ['Impossible bytes', [[false, hex('fe')], [false, hex('ff')], [false, hex('fefeffff')]]],
  ['Examples of an overlong ASCII character', ['c0af', 'e080af', 'f08080af', 'f8808080af', 'fc80808080af'].map((h): [boolean, Buffer] => [false, hex(h)])],
  ['Maximum overlong sequences', ['c1bf', 'e09fbf', 'f08fbfbf', 'f887bfbfbf', 'fc83bfbfbfbf'].map((h): [boolean, Buffer] => [false, hex(h)])],
  ['Overlong representation of the NUL character', ['c080', 'e08080', 'f0808080', 'f880808080', 'fc8080808080'].map((h): [boolean, Buffer] => [false, hex(h)])],
  ['Single UTF-16 surrogates', ['eda080', 'edadbf', 'edae80', 'edafbf', 'edb080', 'edbe80', 'edbfbf'].map((h): [boolean, Buffer] => [false, hex(h)])],
  [
    'Paired UTF-16 surrogates',
    ['eda080edb080', 'eda080edbfbf', 'edadbfedb080', 'edadbfedbfbf', 'edae80edb080', 'edae80edbfbf', 'edafbfedb080', 'edafbfedbfbf'].map(
      (h): [boolean, Buffer] => [false, hex(h)],
    ),
  ],
  ['Non-character code points (valid UTF-8)', nonCharacters().map((bytes): [boolean, Buffer] => [true, bytes])],
  ['Unicode specials (i.e. replacement char)', ['efbfb9', 'efbfba', 'efbfbb', 'efbfbc', 'efbfbd', 'efbfbe', 'efbfbf'].map((h): [boolean, Buffer] => [true, hex(h)])],
];

export const UTF8_GROUPS: Utf8VectorGroup[] = GROUPS.map(([title, vectors], g) => ({
  id: `6.${g + 5}`,
  title,
  vectors: vectors.map(([valid, bytes], v) => ({ id: `6.${g + 5}.${v + 1}`, bytes, valid })),
}));

// The table and the validator must agree, and both with Node's own decoder: a typo in a vector
// would otherwise turn into a wrong expectation.
for (const group of UTF8_GROUPS) {
  for (const vector of group.vectors) {
    const validByRule = firstInvalidByte(vector.bytes) === null;
    let validByDecoder = true;
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(vector.bytes);
    } catch {
      validByDecoder = false;
    }
    if (validByRule !== vector.valid || validByDecoder !== vector.valid) {
      throw new Error(`UTF-8 vector ${vector.id} <${vector.bytes.toString('hex')}> is marked ${vector.valid ? 'valid' : 'invalid'}, wrongly`);
    }
  }
}
