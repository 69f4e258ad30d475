// The ways masking can run (the WebAssembly kernel or the JavaScript loop), for specs that must
// hold on each of them.
import { expect } from 'chai';
import { KERNEL_MIN_BYTES } from '../../lib/protocol/mask.js';
import { maskKernel, setMaskKernelEnabled } from '../../lib/protocol/mask-simd.js';

export interface MaskPath {
  name: string;
  /** Whether the WebAssembly kernel is in use. */
  kernel: boolean;
  enter(): void;
  leave(): void;
}

const shipped = { ...KERNEL_MIN_BYTES };

export const MASK_PATHS: readonly MaskPath[] = [
  {
    name: 'the JavaScript loop (the kernel turned off, as where WebAssembly SIMD is missing)',
    kernel: false,
    enter: () => setMaskKernelEnabled(false),
    leave: () => setMaskKernelEnabled(true),
  },
  {
    name: 'the WebAssembly kernel from the first byte (thresholds lifted)',
    kernel: true,
    enter: () => {
      for (const name of Object.keys(KERNEL_MIN_BYTES) as (keyof typeof KERNEL_MIN_BYTES)[]) KERNEL_MIN_BYTES[name] = 0;
    },
    leave: () => Object.assign(KERNEL_MIN_BYTES, shipped),
  },
  {
    name: 'the thresholds as shipped',
    kernel: true,
    enter: () => Object.assign(KERNEL_MIN_BYTES, shipped),
    leave: () => Object.assign(KERNEL_MIN_BYTES, shipped),
  },
];

/** One describe() per path, with that path in force for its tests. */
export function forEachMaskPath(body: (path: MaskPath) => void): void {
  for (const path of MASK_PATHS) {
    describe(`on ${path.name}`, () => {
      before(() => path.enter());
      after(() => path.leave());
      it(path.kernel ? 'has the WebAssembly kernel loaded (Node 20+ has WebAssembly SIMD)' : 'has the kernel turned off', () => {
        expect(maskKernel() !== null).to.equal(path.kernel);
      });
      body(path);
    });
  }
}
