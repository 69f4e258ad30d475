// RFC 6455 §5.3 masking: XOR with a 4-byte key, the hottest loop of a client.

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** Below this many bytes a plain byte loop beats setting up a 32-bit view. */
const WORD_LOOP_THRESHOLD = 32;

/**
 * XORs `data[start, end)` in place with the 4-byte key at `key[keyOffset]`, starting at key byte
 * `phase` (0..3). Works on aligned 32-bit words where it can: about 5x faster than a byte loop.
 */
export function applyMask(data: Uint8Array, start: number, end: number, key: Uint8Array, phase: number, keyOffset = 0): void {
  // The key as a little-endian word: key byte n is (keyWord >>> 8n) & 0xff.
  const keyWord = (key[keyOffset]! | (key[keyOffset + 1]! << 8) | (key[keyOffset + 2]! << 16) | (key[keyOffset + 3]! << 24)) >>> 0;
  let i = start;
  let p = phase & 3;
  if (end - start >= WORD_LOOP_THRESHOLD && LITTLE_ENDIAN) {
    // Bytes up to a 4-byte aligned address, since a Uint32Array view must be aligned.
    const base = data.byteOffset;
    while (((base + i) & 3) !== 0) {
      data[i] = data[i]! ^ ((keyWord >>> (p << 3)) & 0xff);
      p = (p + 1) & 3;
      i++;
    }
    const words = (end - i) >>> 2;
    // Rotated so that the word's lowest byte is key byte p.
    const word = p === 0 ? keyWord : ((keyWord >>> (p << 3)) | (keyWord << (32 - (p << 3)))) >>> 0;
    const view = new Uint32Array(data.buffer, base + i, words);
    for (let w = 0; w < words; w++) view[w] = view[w]! ^ word;
    i += words << 2;
  }
  for (; i < end; i++) {
    data[i] = data[i]! ^ ((keyWord >>> (p << 3)) & 0xff);
    p = (p + 1) & 3;
  }
}
