/**
 * {@link Engine.fakeQuantizeRows} on host arrays: each row fake-quantized
 * as one tensor-strategy block with its own scale (and zero point), through
 * the float32 reference `fakeQuantize` (src/quant/quantize.ts), which the
 * WGSL kernels match bit for bit.
 *
 * @module
 */

import type { QuantizationArgs } from "../../quant/args.ts";
import { quantizedRange } from "../../quant/qparams.ts";
import { fakeQuantize } from "../../quant/quantize.ts";
import { EngineError } from "../engine_error.ts";
import { checkIntBound, fakeQuantizeFp8Rows, fakeQuantizeIntRows } from "./gemm.ts";

/**
 * Fake-quantizes each row r of `x` `[rows, …]` with `scale[r]` (and
 * `zeroPoint[r]`) into `y`. Consecutive rows with the same scale and zero
 * point (a sample's tokens, or every row once the scale is final) go through
 * `fakeQuantize` as one block: the same elementwise ops, without a
 * quantization plan per row. FP8 without a zero point (static FP8
 * activations, in every calibration and propagation forward of such a
 * recipe) and integer grids (a GPTQ layer's round-to-nearest comparison)
 * run on the kernels instead, with the same bits (`fakeQuantizeFp8Rows`,
 * `fakeQuantizeIntRows`, src/engine/cpu/gemm.ts).
 *
 * @param x the values, row-major (not modified)
 * @param rows the rows (x's first dimension)
 * @param scale one per row
 * @param zeroPoint one per row, or null (symmetric)
 * @param args the activation args (type and bits; the strategy is ignored)
 * @param y where the result goes, x's length
 * @returns y
 * @throws {EngineError} when the scales or zero points are not one per row
 * @example
 * ```ts
 * import { fakeQuantizeRowRuns } from "./fake_quantize.ts";
 * import { parseQuantizationArgs } from "../../quant/args.ts";
 * const args = parseQuantizationArgs({ num_bits: 8, strategy: "tensor" }, "in");
 * const y = fakeQuantizeRowRuns(
 *   new Float32Array([0.3, -1, 2, 4]), 2, new Float32Array([0.25, 1]), null, args,
 *   new Float32Array(4),
 * );
 * console.assert(y.join() === "0.25,-1,2,4");
 * ```
 */
export function fakeQuantizeRowRuns(
  x: Float32Array,
  rows: number,
  scale: Float32Array,
  zeroPoint: Float32Array | null,
  args: QuantizationArgs,
  y: Float32Array,
): Float32Array {
  const cols = rows === 0 ? 0 : x.length / rows;
  if (scale.length !== rows || (zeroPoint !== null && zeroPoint.length !== rows)) {
    throw new EngineError(
      `fakeQuantizeRows: [${rows}, ${cols}] needs one scale${
        zeroPoint === null ? "" : " and zero point"
      } per row, got ${scale.length}${zeroPoint === null ? "" : ` and ${zeroPoint.length}`}`,
    );
  }
  if (args.type === "float" && args.numBits === 8 && zeroPoint === null) {
    return fakeQuantizeFp8Rows(x, scale, rows, cols, quantizedRange(args)[1], y);
  }
  const [qMin, qMax] = quantizedRange(args);
  if (args.type === "int" && checkIntBound(qMin, -1) && checkIntBound(qMax, 1)) {
    return fakeQuantizeIntRows(x, scale, zeroPoint, rows, cols, qMin, qMax, y);
  }
  const perTensor: QuantizationArgs = { ...args, strategy: "tensor", dynamic: false };
  const same = (a: number, b: number) =>
    scale[a] === scale[b] && (zeroPoint === null || zeroPoint[a] === zeroPoint[b]);
  for (let r0 = 0; r0 < rows;) {
    let r1 = r0 + 1;
    while (r1 < rows && same(r0, r1)) r1++;
    const q = fakeQuantize(x.subarray(r0 * cols, r1 * cols), [r1 - r0, cols], {
      scale: Float32Array.of(scale[r0]),
      ...(zeroPoint === null ? {} : { zeroPoint: Float32Array.of(zeroPoint[r0]) }),
    }, perTensor);
    y.set(q, r0 * cols);
    r0 = r1;
  }
  return y;
}
