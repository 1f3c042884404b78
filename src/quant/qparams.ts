/**
 * Scales and zero points from observed ranges: compressed-tensors'
 * `calculate_qparams` (§1.4) with its float arithmetic emulated step by step,
 * the NVFP4 global scale (§1.6) and the quantized ranges of each number system.
 *
 * @module
 */

import { roundToBf16, roundToF16, roundToF8E4M3, roundToF8E5M2 } from "../io/floats.ts";
import type { QuantizationArgs } from "./args.ts";
import { computeDTypeEps, rounderFor } from "./compute_dtype.ts";
import type { ComputeDType } from "./compute_dtype.ts";
import { QuantizationConfigError } from "./errors.ts";
import { FP4_MAX } from "./fp4.ts";
import { mxExponent } from "./mx.ts";
import { roundHalfEven } from "./round_half_even.ts";
import type { TorchDtypeName } from "./torch_dtype.ts";
import { isFloatTorchDtype } from "./torch_dtype.ts";

export { roundHalfEven } from "./round_half_even.ts";

/** Largest finite float8_e4m3fn value. */
export const FP8_E4M3_MAX = 448;

/** Per-slot scales and zero points, flattened in the qparam shape's row-major order. */
export interface QParams {
  /** Scales; values representable in the compute dtype (or F32 when a global scale was applied). */
  readonly scale: Float32Array;
  /** Zero points, already rounded/cast to zp_dtype (all 0 for symmetric args). */
  readonly zeroPoint: Float32Array;
}

/**
 * The quantized range `[q_min, q_max]` of args: int ±2^(N−1) (q_max one
 * less), FP8 ±448, FP4 ±6.
 *
 * @param args quantization args
 * @returns `[q_min, q_max]`
 * @throws {QuantizationConfigError} for float args that are neither 4 nor 8 bits
 * @example
 * ```ts
 * import { quantizedRange } from "./qparams.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * quantizedRange(parseQuantizationArgs({ num_bits: 4 }, "w")); // [-8, 7]
 * ```
 */
export function quantizedRange(args: QuantizationArgs): [number, number] {
  if (args.type === "int") {
    const half = 2 ** args.numBits / 2;
    return [-half, half - 1];
  }
  if (args.numBits === 8) return [-FP8_E4M3_MAX, FP8_E4M3_MAX];
  if (args.numBits === 4) return [-FP4_MAX, FP4_MAX];
  throw new QuantizationConfigError(
    `float quantization range is defined for 4 and 8 bits, got num_bits ${args.numBits}`,
  );
}

/**
 * Whether args are MXFP4 (power-of-two E8M0 group scales): float, 4 bits, group size 32.
 *
 * @param args quantization args
 * @returns true for MXFP4 args
 * @example
 * ```ts
 * import { isMxArgs } from "./qparams.ts";
 * import { presetScheme } from "./presets.ts";
 * isMxArgs(presetScheme("MXFP4A16", ["Linear"]).weights!); // true
 * ```
 */
export function isMxArgs(args: QuantizationArgs): boolean {
  return args.type === "float" && args.numBits === 4 && args.groupSize === 32;
}

const TINY_F32 = 2 ** -126;

/**
 * The NVFP4 global scale of a tensor (`generate_gparam`): 448·6 / amax, with
 * amax clamped to float32's smallest normal, computed in the tensor's dtype
 * as PyTorch does (reciprocal, then times 2688) and stored as F32.
 *
 * @param amax max(|min(x, 0)|, |max(x, 0)|) over the whole tensor
 * @param dtype the tensor's dtype
 * @returns the global scale (≈ 2688 / amax; not a reciprocal)
 * @example
 * ```ts
 * import { globalScaleFor } from "./qparams.ts";
 * globalScaleFor(12); // 224
 * ```
 */
export function globalScaleFor(amax: number, dtype: ComputeDType = "F32"): number {
  const r = rounderFor(dtype);
  // Python's `2688.0 / tensor` is Tensor.__rtruediv__, which PyTorch computes
  // as `tensor.reciprocal() * 2688.0`: two roundings, not one division.
  const reciprocal = r(1 / Math.max(amax, TINY_F32));
  return Math.fround(r(reciprocal * (FP8_E4M3_MAX * FP4_MAX)));
}

/** `torch.finfo(dtype).max` for float dtypes, `iinfo` bounds for ints. */
function dtypeRange(d: TorchDtypeName): [number, number] {
  switch (d) {
    case "float8_e4m3fn":
      return [-448, 448];
    case "float8_e5m2":
      return [-57344, 57344];
    case "float16":
      return [-65504, 65504];
    case "bfloat16":
      return [-3.3895313892515355e38, 3.3895313892515355e38];
    case "float32":
      return [-3.4028234663852886e38, 3.4028234663852886e38];
    case "float64":
      return [-Number.MAX_VALUE, Number.MAX_VALUE];
    case "int64":
      return [-(2 ** 63), 2 ** 63 - 1];
    case "int32":
      return [-(2 ** 31), 2 ** 31 - 1];
    case "int16":
      return [-(2 ** 15), 2 ** 15 - 1];
    case "int8":
      return [-128, 127];
    case "uint8":
      return [0, 255];
    case "bool":
      return [0, 1];
  }
}

function castToTorchDtype(x: number, d: TorchDtypeName): number {
  switch (d) {
    case "float8_e4m3fn":
      return roundToF8E4M3(x);
    case "bfloat16":
      return roundToBf16(x);
    case "float16":
      return roundToF16(x);
    case "float32":
      return Math.fround(x);
    case "float8_e5m2":
      return roundToF8E5M2(x);
    default:
      return x;
  }
}

/**
 * compressed-tensors' `round_to_quantized_type_dtype`: clamp to the dtype's
 * range, then cast (floats: RNE; ints: round half to even, NaN → 0 as
 * PyTorch's float→int conversion gives on x86).
 *
 * @param x the value
 * @param d the target torch dtype
 * @returns the value after the cast, as a number
 * @example
 * ```ts
 * import { roundToTorchDtype } from "./qparams.ts";
 * roundToTorchDtype(44.8, "float8_e4m3fn"); // 44
 * roundToTorchDtype(-4.5, "int8"); // -4
 * ```
 */
export function roundToTorchDtype(x: number, d: TorchDtypeName): number {
  const [lo, hi] = dtypeRange(d);
  const c = x < lo ? lo : x > hi ? hi : x;
  if (isFloatTorchDtype(d)) return castToTorchDtype(c, d);
  if (Number.isNaN(c)) return 0;
  return roundHalfEven(c) + 0; // + 0 turns −0 into the integer 0
}

/** `_get_dtype_eps`: 0.125 for float8_e4m3fn, finfo.eps for floats, 1 for ints. */
function torchDtypeEps(d: TorchDtypeName): number {
  switch (d) {
    case "float8_e4m3fn":
      return 0.125;
    case "float8_e5m2":
      return 0.25;
    case "float16":
      return 2 ** -10;
    case "bfloat16":
      return 2 ** -7;
    case "float32":
      return 2 ** -23;
    case "float64":
      return 2 ** -52;
    default:
      return 1;
  }
}

/**
 * Computes scales and zero points from per-slot minima and maxima exactly as
 * compressed-tensors 0.13.0's `calculate_qparams`, emulating the tensor dtype
 * op by op:
 *
 * ```
 * min ← min(min, 0); max ← max(max, 0)
 * symmetric:  scale ← amax / (bit_range / 2)      (MXFP4: the MX exponent, §1.7)
 * asymmetric: scale ← (max − min) / bit_range;  zp ← clamp(q_min − min / scale)
 * scale ← global_scale · scale                   (if given; F32 from here on)
 * scale ← cast(clamp(scale), scale_dtype)         (if scale_dtype is set)
 * MXFP4: scale ← 2^(scale − 127)
 * scale ← scale == 0 ? eps : scale
 * zp ← round/cast to zp_dtype
 * ```
 *
 * @param minVals per-slot minima (already reduced over each group/channel/tensor)
 * @param maxVals per-slot maxima, same length
 * @param args quantization args
 * @param globalScale the tensor's global scale (tensor_group / NVFP4), if any
 * @param dtype the dtype the observed tensor is held in (F32 by default)
 * @returns scales and zero points, one per slot
 * @throws {QuantizationConfigError} for asymmetric FP4 or mismatched lengths
 * @example
 * ```ts
 * import { calculateQParams } from "./qparams.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * const a = parseQuantizationArgs({ num_bits: 8, symmetric: false }, "w");
 * const q = calculateQParams(new Float32Array([1]), new Float32Array([1]), a);
 * q.zeroPoint[0]; // -128
 * ```
 */
export function calculateQParams(
  minVals: Float32Array,
  maxVals: Float32Array,
  args: QuantizationArgs,
  globalScale?: number | null,
  dtype: ComputeDType = "F32",
): QParams {
  if (minVals.length !== maxVals.length) {
    throw new QuantizationConfigError(
      `calculateQParams: ${minVals.length} minima but ${maxVals.length} maxima`,
    );
  }
  if (!args.symmetric && args.type === "float" && args.numBits === 4) {
    throw new QuantizationConfigError(
      "calculateQParams: asymmetric quantization is not supported for FP4 (set symmetric: true)",
    );
  }
  const r = rounderFor(dtype);
  const [qMin, qMax] = quantizedRange(args);
  const bitRange = qMax - qMin;
  const mx = isMxArgs(args);
  const hasGlobal = globalScale !== undefined && globalScale !== null;
  const g = hasGlobal ? Math.fround(globalScale) : 0;
  // After a F32 global scale the scales are F32 (type promotion).
  const rs = hasGlobal ? Math.fround : r;
  const eps = args.scaleDtype !== null
    ? torchDtypeEps(args.scaleDtype)
    : hasGlobal
    ? computeDTypeEps("F32")
    : computeDTypeEps(dtype);
  const n = minVals.length;
  const scale = new Float32Array(n);
  const zeroPoint = new Float32Array(n);
  // Read once: a property load inside the loop that one run never reaches
  // costs a deoptimization when a later run does.
  const { symmetric, scaleDtype, zpDtype } = args;
  const halfRange = bitRange / 2;
  for (let i = 0; i < n; i++) {
    const lo = Math.min(minVals[i], 0);
    const hi = Math.max(maxVals[i], 0);
    let s: number;
    let zp = 0;
    if (symmetric) {
      const amax = Math.max(Math.abs(lo), Math.abs(hi));
      s = mx ? mxExponent(amax, dtype) : r(amax / halfRange);
    } else {
      s = r(r(hi - lo) / bitRange);
      zp = r(qMin - r(lo / s));
      zp = zp < qMin ? qMin : zp > qMax ? qMax : zp;
    }
    if (hasGlobal) s = Math.fround(g * s);
    if (scaleDtype !== null) s = rs(roundToTorchDtype(s, scaleDtype));
    if (mx) s = rs(2 ** (s - 127));
    if (s === 0) s = rs(eps);
    scale[i] = s;
    if (!symmetric) zeroPoint[i] = roundToTorchDtype(zp, zpDtype);
  }
  // Symmetric zero points are all the cast of 0.
  if (symmetric) zeroPoint.fill(roundToTorchDtype(0, zpDtype));
  return { scale, zeroPoint };
}
