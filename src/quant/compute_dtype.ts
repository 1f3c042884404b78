/**
 * The float dtypes llm-compressor does its quantization arithmetic in, and
 * how to emulate one of them with JavaScript doubles.
 *
 * PyTorch computes an elementwise op on float32 tensors in float32, and on
 * bfloat16/float16 tensors in float32 followed by a rounding to the narrow
 * type. A double op followed by `Math.fround` is exactly the float32 result
 * for + − × ÷ (the double has more than twice float32's precision), so
 * `round(Math.fround(a op b))` reproduces each op bit for bit.
 *
 * @module
 */

import { roundToBf16 } from "../io/floats.ts";

/** A model dtype quantization arithmetic runs in. */
export type ComputeDType = "F32" | "BF16" | "F16";

/**
 * The function that rounds an op's float32 result to a compute dtype.
 *
 * @param dtype the tensor dtype being emulated
 * @returns `Math.fround` for F32; float32 then bf16/f16 rounding otherwise
 * @example
 * ```ts
 * import { rounderFor } from "./compute_dtype.ts";
 * const r = rounderFor("BF16");
 * r(1 / 3); // 0.333984375
 * ```
 */
export function rounderFor(dtype: ComputeDType): (x: number) => number {
  switch (dtype) {
    case "F32":
      return Math.fround;
    case "BF16":
      return (x) => roundToBf16(Math.fround(x));
    case "F16":
      // io's roundToF16 (c10's float32 → float16, round to nearest even)
      // is IEEE's rounding of a float32 to binary16, which the engine does
      // in one builtin; only a NaN's sign differs, and c10's is always
      // the plain NaN (tests/quant/compute_dtype_test.ts compares them on
      // every rounding case).
      return (x) => {
        const y = Math.f16round(Math.fround(x));
        return y === y ? y : NaN;
      };
  }
}

/**
 * `torch.finfo(dtype).eps` of a compute dtype.
 *
 * @param dtype the dtype
 * @returns 2^-23 for F32, 2^-7 for BF16, 2^-10 for F16
 * @example
 * ```ts
 * import { computeDTypeEps } from "./compute_dtype.ts";
 * computeDTypeEps("BF16"); // 0.0078125
 * ```
 */
export function computeDTypeEps(dtype: ComputeDType): number {
  switch (dtype) {
    case "F32":
      return 2 ** -23;
    case "BF16":
      return 2 ** -7;
    case "F16":
      return 2 ** -10;
  }
}
