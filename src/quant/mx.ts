/**
 * MX (OCP microscaling) scales for MXFP4: a power of two per group of 32,
 * stored as an E8M0 byte `e` meaning 2^(e − 127) (§1.7).
 *
 * @module
 */

import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from "../io/floats.ts";
import type { ComputeDType } from "./compute_dtype.ts";

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/**
 * compressed-tensors' `round_to_power_2`: on the bit pattern of `x` in its
 * dtype, add a quarter of the mantissa range and clear the mantissa — so the
 * power of two below, except that a mantissa fraction ≥ 0.75 rounds up.
 *
 * @param x the value (e.g. a group's absolute maximum), representable in `dtype`
 * @param dtype the dtype whose bit pattern is used
 * @returns the power of two (sign kept; 0 for 0)
 * @example
 * ```ts
 * import { roundToPowerOf2 } from "./mx.ts";
 * roundToPowerOf2(5.6879); // 4
 * roundToPowerOf2(7.2902); // 8
 * roundToPowerOf2(-6.9441); // -4
 * ```
 */
export function roundToPowerOf2(x: number, dtype: ComputeDType = "F32"): number {
  switch (dtype) {
    case "F32": {
      scratchF32[0] = x;
      scratchU32[0] = ((scratchU32[0] + (1 << 21)) & 0xff800000) >>> 0;
      return scratchF32[0];
    }
    case "BF16":
      return bf16BitsToF32((f32ToBf16Bits(x) + (1 << 5)) & 0xff80);
    case "F16":
      return f16BitsToF32((f32ToF16Bits(x) + (1 << 8)) & 0xfc00);
  }
}

/**
 * The biased MX exponent of a group, before the uint8 cast:
 * `127 + floor(log2(p2(amax))) − 2` (2 = floor(log2(6)), FP4's largest exponent).
 *
 * @param amax the group's absolute maximum (≥ 0)
 * @param dtype the dtype amax is held in
 * @returns the exponent as a number (−Infinity for amax 0; clamped to 0…255 later)
 * @example
 * ```ts
 * import { mxExponent } from "./mx.ts";
 * mxExponent(6); // 127 (p2(6) = 4, log2 4 = 2)
 * mxExponent(1); // 125
 * ```
 */
export function mxExponent(amax: number, dtype: ComputeDType = "F32"): number {
  return 127 + Math.floor(Math.log2(roundToPowerOf2(amax, dtype))) - 2;
}

/**
 * The scale an E8M0 byte stands for.
 *
 * @param e the stored byte
 * @returns 2^(e − 127)
 * @example
 * ```ts
 * import { e8m0Value } from "./mx.ts";
 * e8m0Value(127); // 1
 * ```
 */
export function e8m0Value(e: number): number {
  return 2 ** (e - 127);
}

/**
 * The E8M0 byte of a power-of-two scale: `127 + floor(log2(scale))`, the
 * exponent actually used for quantization. (compressed-tensors 0.13.0 wrote
 * this minus 2 — a bug fixed later; llmc writes the consistent value.)
 *
 * @param scale a power-of-two scale
 * @returns the byte, clamped to 0…255
 * @example
 * ```ts
 * import { e8m0Byte } from "./mx.ts";
 * e8m0Byte(0.25); // 125
 * ```
 */
export function e8m0Byte(scale: number): number {
  return Math.min(255, Math.max(0, 127 + Math.floor(Math.log2(scale))));
}
