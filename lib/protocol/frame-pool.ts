// Reusable buffers for large outgoing frames: a fresh 64 KiB–1 MiB buffer per message costs page
// faults and GC work that can exceed the copy itself. A frame's buffer is free again once its
// socket write has called back, so a few buffers serve every connection in turn.
//
// Where WebAssembly SIMD is available the buffers are cut from an arena in the masking kernel's
// memory (mask-simd.ts), so that a client's payload is masked where it was copied to, with no
// trip through scratch. Elsewhere, and when the arena is full, they are ordinary buffers.
import { FRAME_ARENA_BYTES, FRAME_ARENA_OFFSET, maskKernel } from './mask-simd.js';

/** Frames smaller than this come from Node's own pool (Buffer.allocUnsafe) instead. */
export const POOLED_FRAME_MIN = 16 * 1024;
/** Frames larger than this get a buffer of their own, used once. */
export const POOLED_FRAME_MAX = 1024 * 1024 + 16;
/** Spare ordinary buffers kept, process-wide: at most this many × POOLED_FRAME_MAX bytes stay allocated. */
const MAX_SPARES = 8;
/** Sizes are rounded up to this, so that messages of slightly different sizes share buffers. */
const GRANULE = 64 * 1024;
const ARENA_GRANULES = FRAME_ARENA_BYTES / GRANULE;

const spares: Buffer[] = [];

/**
 * The arena: which granules are handed out (1) or free (0). A buffer covers a run of granules,
 * found first-fit, so the lowest pages are the ones reused and the rest are never touched.
 */
const arenaUsed = new Uint8Array(ARENA_GRANULES);
/** One view per run ever handed out (start granule × 256 + granules), so a run's buffer is reused as such. */
const arenaViews = new Map<number, Buffer>();
/** The kernel's memory, once a buffer has been cut from it. */
let arenaMemory: ArrayBufferLike | null = null;

/** A buffer of at least `size` bytes for a frame, or undefined when the size is not pooled. */
export function acquireFrameBuffer(size: number): Buffer | undefined {
  if (size < POOLED_FRAME_MIN || size > POOLED_FRAME_MAX) return undefined;
  const granules = Math.ceil(size / GRANULE);
  const fromArena = acquireFromArena(granules);
  if (fromArena !== undefined) return fromArena;
  for (let i = spares.length - 1; i >= 0; i--) {
    const spare = spares[i]!;
    if (spare.length >= size) {
      spares.splice(i, 1);
      return spare;
    }
  }
  return Buffer.allocUnsafeSlow(granules * GRANULE);
}

/**
 * Gives a buffer back once nothing refers to it any more (its write has called back). A buffer
 * that is never given back is never handed out again: it costs pool space, not correctness.
 */
export function releaseFrameBuffer(buffer: Buffer): void {
  if (buffer.buffer === arenaMemory) {
    const first = (buffer.byteOffset - FRAME_ARENA_OFFSET) / GRANULE;
    arenaUsed.fill(0, first, first + buffer.length / GRANULE);
  } else if (spares.length < MAX_SPARES) {
    spares.push(buffer);
  }
}

function acquireFromArena(granules: number): Buffer | undefined {
  const kernel = maskKernel();
  if (kernel === null) return undefined;
  let run = 0;
  for (let g = 0; g < ARENA_GRANULES; g++) {
    run = arenaUsed[g] === 0 ? run + 1 : 0;
    if (run === granules) {
      const first = g - granules + 1;
      arenaUsed.fill(1, first, g + 1);
      const key = first * 256 + granules;
      let view = arenaViews.get(key);
      if (view === undefined) {
        const offset = FRAME_ARENA_OFFSET + first * GRANULE;
        view = kernel.memory.subarray(offset, offset + granules * GRANULE);
        arenaViews.set(key, view);
        arenaMemory = kernel.arrayBuffer;
      }
      return view;
    }
  }
  return undefined;
}
