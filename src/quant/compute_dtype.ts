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
      return roundF16;
  }
}

const f32 = new Float32Array(1);
const f32Bits = new Int32Array(f32.buffer);
/** 1.5 · 2^28: adding and subtracting it rounds a magnitude below 2^27 to a multiple of 2^-24. */
const F16_SUBNORMAL_MAGIC = 402653184;

/**
 * `roundToF16(Math.fround(x))` of io/floats.ts (c10's float32 → float16,
 * round to nearest even, overflow to ±inf, NaN to the plain NaN) on the
 * float32's bits, without io's decode (a power per value) or a call per
 * op: a float16 normal keeps the float32's top 10 mantissa bits, rounded
 * by an integer add as bfloat16's 7 are; a float16 subnormal is a multiple
 * of 2^-24, rounded by the float64 magic-number add. Checked against io's
 * on every float32 rounding case (tests/quant/compute_dtype_test.ts).
 */
function roundF16(x: number): number {
  f32[0] = x;
  const b = f32Bits[0];
  const a = b & 0x7fffffff;
  // |x| ≥ 65520 (halfway past 65504, the largest float16): ±inf; or inf / NaN.
  if (a >= 0x477ff000) return a > 0x7f800000 ? NaN : b < 0 ? -Infinity : Infinity;
  // ±0 takes the normal path, which keeps it (half of a pruned weight is
  // zeros, at random places: a branch of their own would mispredict).
  if (((a - 1) >>> 0) < 0x38800000 - 1) {
    // Below 2^-14, the smallest float16 normal.
    const r = (f32[0] + F16_SUBNORMAL_MAGIC) - F16_SUBNORMAL_MAGIC;
    return r === 0 ? (b < 0 ? -0 : 0) : r;
  }
  f32Bits[0] = (b + 0xfff + ((b >> 13) & 1)) & ~0x1fff;
  return f32[0];
}

/**
 * `rounderFor("F16")` over float32 values in place, by their bits: a
 * float16 normal is the float32 with its low 13 mantissa bits rounded away,
 * an integer add on the array itself with no scratch round trip per value;
 * only float16 subnormals, overflows and NaN go through the scalar rounding.
 *
 * @param values the values, rounded in place
 * @param bits an Int32Array view of `values`' buffer (from its start)
 * @param from the first element to round
 * @param n how many to round
 * @example
 * ```ts
 * import { roundF16InPlace } from "./compute_dtype.ts";
 * const v = new Float32Array([0.1, -0, 1e-6, 70000]);
 * roundF16InPlace(v, new Int32Array(v.buffer));
 * v; // Float32Array [0.0999755859375, -0, 0.0000010132789611816406, Infinity]
 * ```
 */
export function roundF16InPlace(
  values: Float32Array,
  bits: Int32Array,
  from = 0,
  n: number = values.length - from,
): void {
  for (let i = from; i < from + n; i++) {
    const b = bits[i];
    const a = b & 0x7fffffff;
    // ±0 takes the integer path too, which keeps it.
    if (((a - 1) >>> 0) < 0x38800000 - 1 || a >= 0x477ff000) values[i] = roundF16(values[i]);
    else bits[i] = (b + 0xfff + ((b >> 13) & 1)) & ~0x1fff;
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
