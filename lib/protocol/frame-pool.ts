// Reusable buffers for large outgoing frames: a fresh 64 KiB–1 MiB buffer per message costs page
// faults and GC work that can exceed the copy itself. A frame's buffer is free again once its
// socket write has called back, so a few buffers serve every connection in turn.

/** Frames smaller than this come from Node's own pool (Buffer.allocUnsafe) instead. */
export const POOLED_FRAME_MIN = 16 * 1024;
/** Frames larger than this get a buffer of their own, used once. */
export const POOLED_FRAME_MAX = 1024 * 1024 + 16;
/** Spare buffers kept, process-wide: at most this many × POOLED_FRAME_MAX bytes stay allocated. */
const MAX_SPARES = 8;
/** Sizes are rounded up to this, so that messages of slightly different sizes share buffers. */
const GRANULE = 64 * 1024;

const spares: Buffer[] = [];

/** A buffer of at least `size` bytes for a frame, or undefined when the size is not pooled. */
export function acquireFrameBuffer(size: number): Buffer | undefined {
  if (size < POOLED_FRAME_MIN || size > POOLED_FRAME_MAX) return undefined;
  for (let i = spares.length - 1; i >= 0; i--) {
    const spare = spares[i]!;
    if (spare.length >= size) {
      spares.splice(i, 1);
      return spare;
    }
  }
  return Buffer.allocUnsafeSlow(Math.ceil(size / GRANULE) * GRANULE);
}

/** Gives a buffer back once nothing refers to it any more (its write has called back). */
export function releaseFrameBuffer(buffer: Buffer): void {
  if (spares.length < MAX_SPARES) spares.push(buffer);
}
