// RFC 6455 §5.3 masking: XOR with a 4-byte key, the hottest loop of a client (and of a server's
// reader). A WebAssembly SIMD kernel (mask-simd.ts) does the work above the sizes below; the
// JavaScript loop does it under them, and everywhere when WebAssembly SIMD is unavailable.
import { maskKernel, MASK_SCRATCH_OFFSET, SCRATCH_BYTES, UNMASK_SCRATCH_OFFSET, type MaskKernel } from './mask-simd.js';

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** Below this many bytes a plain byte loop beats setting up a 32-bit view. */
const WORD_LOOP_THRESHOLD = 32;

/**
 * From how many bytes each path through the kernel beats the JavaScript loop doing the same work:
 * the smallest size from which `node bench/run.mjs --only mask --mask-crossover --mask-sizes
 * 32,64,128,192,256,384,512,768,1024,2048` showed the kernel faster by 10% or more, in two runs
 * (bench/README.md, "Masking"). Under them the call into WebAssembly, and for bytes outside
 * its memory the copies through scratch, cost more than they save. Tests and benchmarks lower
 * them to force a path.
 */
export const KERNEL_MIN_BYTES = {
  /** applyMask on bytes that already live in the kernel's memory (pooled frames): no copy. */
  inPlace: 32,
  /** applyMask on other bytes: copied into scratch, masked, copied back. */
  roundTrip: 384,
  /** copyMasked into a target outside the kernel's memory, masked in scratch on the way. */
  copy: 128,
  /** unmaskedCopy: copied into scratch and unmasked there, instead of unmasked in place. */
  unmaskCopy: 192,
};

/** The key bytes key[keyOffset..+3] as a little-endian word, rotated so that key byte `phase` comes first. */
function keyWordAt(key: Uint8Array, keyOffset: number, phase: number): number {
  const word = (key[keyOffset]! | (key[keyOffset + 1]! << 8) | (key[keyOffset + 2]! << 16) | (key[keyOffset + 3]! << 24)) >>> 0;
  const shift = (phase & 3) << 3;
  return shift === 0 ? word : ((word >>> shift) | (word << (32 - shift))) >>> 0;
}

/**
 * XORs `data[start, end)` in place with the 4-byte key at `key[keyOffset]`, starting at key byte
 * `phase` (0..3).
 */
export function applyMask(data: Uint8Array, start: number, end: number, key: Uint8Array, phase: number, keyOffset = 0): void {
  const length = end - start;
  if (length >= KERNEL_MIN_BYTES.inPlace) {
    const kernel = maskKernel();
    if (kernel !== null) {
      if (data.buffer === kernel.arrayBuffer) {
        kernel.mask(data.byteOffset + start, length, keyWordAt(key, keyOffset, phase));
        return;
      }
      if (length >= KERNEL_MIN_BYTES.roundTrip) {
        roundTrip(kernel, data, start, end, keyWordAt(key, keyOffset, phase));
        return;
      }
    }
  }
  applyMaskJs(data, start, end, key, phase, keyOffset);
}

/** Masks bytes outside the kernel's memory by way of its scratch, a page at a time. */
function roundTrip(kernel: MaskKernel, data: Uint8Array, start: number, end: number, word: number): void {
  const bytes = kernel.bytes;
  for (let from = start; from < end; from += SCRATCH_BYTES) {
    const count = Math.min(SCRATCH_BYTES, end - from);
    const piece = data.subarray(from, from + count);
    bytes.set(piece, MASK_SCRATCH_OFFSET);
    kernel.mask(MASK_SCRATCH_OFFSET, count, word);
    piece.set(bytes.subarray(MASK_SCRATCH_OFFSET, MASK_SCRATCH_OFFSET + count));
  }
}

/**
 * Writes `source` masked (key at `key[keyOffset]`, phase 0) into `target` at `targetStart`: the
 * copy and the mask of a client frame. A target in the kernel's memory (a pooled frame) is copied
 * into and masked where it is; any other large one is masked in scratch on the way, so that the
 * bytes are copied twice rather than three times.
 */
export function copyMasked(source: Uint8Array, target: Uint8Array, targetStart: number, key: Uint8Array, keyOffset = 0): void {
  const length = source.length;
  const kernel = length >= KERNEL_MIN_BYTES.inPlace ? maskKernel() : null;
  if (kernel !== null && target.buffer === kernel.arrayBuffer) {
    target.set(source, targetStart);
    kernel.mask(target.byteOffset + targetStart, length, keyWordAt(key, keyOffset, 0));
  } else if (kernel !== null && length >= KERNEL_MIN_BYTES.copy) {
    // Whole pages keep the phase at 0 for every piece.
    const bytes = kernel.bytes;
    const word = keyWordAt(key, keyOffset, 0);
    for (let from = 0; from < length; from += SCRATCH_BYTES) {
      const count = Math.min(SCRATCH_BYTES, length - from);
      bytes.set(count === length ? source : source.subarray(from, from + count), MASK_SCRATCH_OFFSET);
      kernel.mask(MASK_SCRATCH_OFFSET, count, word);
      target.set(bytes.subarray(MASK_SCRATCH_OFFSET, MASK_SCRATCH_OFFSET + count), targetStart + from);
    }
  } else {
    target.set(source, targetStart);
    applyMaskJs(target, targetStart, targetStart + length, key, 0, keyOffset);
  }
}

/** The unmask scratch is lent to a frame handler; a nested parser unmasks in place meanwhile. */
let unmaskScratchLent = false;

/**
 * Unmasks `data[start, end)`, or its first page, into the unmask scratch (unmaskScratch()) and
 * returns how many bytes it did there; 0 when the caller should unmask in place instead (a small
 * range, no kernel, or the scratch already lent). `data` is left as it was. The scratch is the
 * caller's until releaseUnmaskedCopy().
 *
 * For a server this saves a pass: its payload is copied out of the socket's chunk anyway (into
 * the message), and copying from the scratch instead costs the same.
 */
export function unmaskedCopy(data: Uint8Array, start: number, end: number, key: Uint8Array, phase: number): number {
  if (end - start < KERNEL_MIN_BYTES.unmaskCopy || end <= start || unmaskScratchLent) return 0;
  const kernel = maskKernel();
  if (kernel === null) return 0;
  const count = Math.min(SCRATCH_BYTES, end - start);
  kernel.bytes.set(data.subarray(start, start + count), UNMASK_SCRATCH_OFFSET);
  kernel.mask(UNMASK_SCRATCH_OFFSET, count, keyWordAt(key, 0, phase));
  unmaskScratchLent = true;
  return count;
}

let unmaskScratchView: Buffer | null = null;

/** The page unmaskedCopy writes to, from its first byte (a Buffer made once). Only valid with a kernel. */
export function unmaskScratch(): Buffer {
  unmaskScratchView ??= maskKernel()!.memory.subarray(UNMASK_SCRATCH_OFFSET, UNMASK_SCRATCH_OFFSET + SCRATCH_BYTES);
  return unmaskScratchView;
}

/** Gives back the scratch that unmaskedCopy lent. */
export function releaseUnmaskedCopy(): void {
  unmaskScratchLent = false;
}

/**
 * The JavaScript loop: the same as applyMask, on aligned 32-bit words where it can (about 5x
 * faster than a byte loop). Used under the kernel's thresholds and where it is unavailable.
 */
export function applyMaskJs(data: Uint8Array, start: number, end: number, key: Uint8Array, phase: number, keyOffset = 0): void {
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
