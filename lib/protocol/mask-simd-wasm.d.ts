// The type of mask-simd-wasm.ts, which scripts/build.mjs generates from mask-simd.wat (and git
// ignores), so that lib/ typechecks before the first build too. Once built, the .ts wins.
/** The assembled WebAssembly module of mask-simd.wat, in base64. */
export declare const MASK_SIMD_WASM: string;
