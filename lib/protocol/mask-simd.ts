// The WebAssembly SIMD masking kernel (mask-simd.wat) and the memory it works in. WebAssembly code
// reaches only its own linear memory, so bytes are masked where they already live in it (pooled
// outgoing frames, see frame-pool.ts) or are copied through one of its scratch areas.
import { MASK_SIMD_WASM } from './mask-simd-wasm.js';

/** WebAssembly's page, and the unit of the layout below. */
export const KERNEL_PAGE_BYTES = 64 * 1024;
/** Scratch for masking bytes that live outside the kernel's memory (applyMask, copyMasked). */
export const MASK_SCRATCH_OFFSET = 0;
/** Scratch that unmasked payload is copied into and lent to a frame handler (unmaskedCopy). */
export const UNMASK_SCRATCH_OFFSET = KERNEL_PAGE_BYTES;
/** Both scratch areas are one page each. */
export const SCRATCH_BYTES = KERNEL_PAGE_BYTES;
/** Where the outgoing-frame arena starts (frame-pool.ts manages it). */
export const FRAME_ARENA_OFFSET = 2 * KERNEL_PAGE_BYTES;
/**
 * Size of the outgoing-frame arena: as many bytes as the pool kept in spare buffers before it lived
 * here (8 buffers of up to 1 MiB + 64 KiB). Pages count against memory only once written to.
 */
export const FRAME_ARENA_BYTES = 8 * 17 * KERNEL_PAGE_BYTES;

export interface MaskKernel {
  /**
   * The whole of the kernel's memory as one Buffer. The memory never grows (growing would detach
   * every view of it), so this view and every subarray of it stay valid for good.
   */
  readonly memory: Buffer;
  /** The same bytes as a plain Uint8Array, whose subarrays are cheaper to make than a Buffer's. */
  readonly bytes: Uint8Array;
  /** The memory's ArrayBuffer: `view.buffer === kernel.arrayBuffer` tells a view of it. */
  readonly arrayBuffer: ArrayBuffer;
  /** XORs memory[at, at + length) in place with `keyWord` (key byte 0 in its low byte). */
  readonly mask: (at: number, length: number, keyWord: number) => void;
}

/** undefined: not loaded yet; null: WebAssembly SIMD is unavailable here. */
let loaded: MaskKernel | null | undefined;
let enabled = true;

/**
 * Compiles and instantiates the kernel from its module's bytes, with a memory of its own; null
 * where the runtime cannot run it.
 */
export function instantiateMaskKernel(bytes: Uint8Array<ArrayBuffer>): MaskKernel | null {
  // No WebAssembly at all under `node --jitless`; no SIMD in some embeddings.
  if (typeof WebAssembly !== 'object') return null;
  try {
    if (!WebAssembly.validate(bytes)) return null;
    const pages = (FRAME_ARENA_OFFSET + FRAME_ARENA_BYTES) / KERNEL_PAGE_BYTES;
    // maximum = initial: a memory that cannot grow, so that no view of it is ever detached.
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
    const mask = instance.exports.mask as MaskKernel['mask'];
    const arrayBuffer = memory.buffer;
    return { memory: Buffer.from(arrayBuffer), bytes: new Uint8Array(arrayBuffer), arrayBuffer, mask };
  } catch {
    // Out of address space for the memory, or a runtime that rejects the module: the JavaScript
    // loop does the same work.
    return null;
  }
}

/** The kernel, loaded on first use; null where WebAssembly SIMD is unavailable or disabled. */
export function maskKernel(): MaskKernel | null {
  if (!enabled) return null;
  if (loaded === undefined) loaded = instantiateMaskKernel(Buffer.from(MASK_SIMD_WASM, 'base64'));
  return loaded;
}

/**
 * Turns the kernel off (masking falls back to the JavaScript loop) or back on. For tests and
 * benchmarks, which compare the two paths in one process.
 */
export function setMaskKernelEnabled(on: boolean): void {
  enabled = on;
}
