/**
 * Kernels on host arrays that work the same whichever engine runs: code that
 * builds weights on the host (AWQ's grid candidates) calls these instead of
 * reaching into an engine. They run on the CPU kernels (native or
 * WebAssembly, threaded), as `hostBlockTransform` does for float64 rotations,
 * and give the bits of their TypeScript references.
 *
 * @example
 * ```ts
 * import { hostFakeQuantizeRows, hostRowMinMax } from "./host_kernels.ts";
 * import { parseQuantizationArgs } from "../quant/args.ts";
 * const x = new Float32Array([0.3, -1, 2, 4]);
 * const min = new Float32Array(2), max = new Float32Array(2);
 * hostRowMinMax(x, 2, 2, min, max);
 * console.assert(min.join() === "-1,2" && max.join() === "0.30000001192092896,4");
 * const args = parseQuantizationArgs({ num_bits: 8, strategy: "tensor" }, "in");
 * const y = hostFakeQuantizeRows(x, 2, new Float32Array([0.25, 1]), null, args, new Float32Array(4));
 * console.assert(y.join() === "0.25,-1,2,4");
 * ```
 *
 * @module
 */

export { fakeQuantizeRowRuns as hostFakeQuantizeRows } from "./cpu/fake_quantize.ts";
export { rowMinMax as hostRowMinMax } from "./cpu/gemm.ts";
