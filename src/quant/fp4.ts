/**
 * FP4 E2M1: 1 sign bit and a 3-bit magnitude index into
 * [0, 0.5, 1, 1.5, 2, 3, 4, 6]. Rounding follows compressed-tensors'
 * `cast_to_fp4` threshold table (round half to even on the E2M1 grid,
 * saturating at 6); the sign of zero is kept in the nibble.
 *
 * @module
 */

/** The eight E2M1 magnitudes, indexed by the low three nibble bits. */
export const FP4_E2M1_VALUES: readonly number[] = Object.freeze([0, 0.5, 1, 1.5, 2, 3, 4, 6]);

/** Largest E2M1 magnitude: values are clamped to [−6, 6] before the cast. */
export const FP4_MAX = 6;

/**
 * Rounds a value to the E2M1 grid exactly as `cast_to_fp4` does: on |x| by
 * the thresholds ≤0.25→0, <0.75→0.5, ≤1.25→1, <1.75→1.5, ≤2.5→2, <3.5→3,
 * ≤5→4, else 6, then times `torch.sign(x)`. So a negative value that rounds
 * to zero gives −0, and −0 itself gives +0 (sign(−0) is 0).
 *
 * @param x the value (already divided by its scale and clamped to ±6)
 * @returns an E2M1 value, NaN for NaN
 * @example
 * ```ts
 * import { castToFp4 } from "./fp4.ts";
 * castToFp4(2.5); // 2
 * castToFp4(2.7); // 3
 * Object.is(castToFp4(-0.1), -0); // true
 * ```
 */
export function castToFp4(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  let m: number;
  if (a <= 0.25) m = 0;
  else if (a < 0.75) m = 0.5;
  else if (a <= 1.25) m = 1;
  else if (a < 1.75) m = 1.5;
  else if (a <= 2.5) m = 2;
  else if (a < 3.5) m = 3;
  else if (a <= 5) m = 4;
  else m = 6;
  const sign = x > 0 ? 1 : x < 0 ? -1 : 0;
  return m * sign;
}

/**
 * The nibble of an E2M1 value as `pack_fp4_to_uint8` computes it: the index
 * of the nearest magnitude (first on ties) plus the sign bit (`signbit`, so
 * −0 gives 0x8).
 *
 * @param v a value, normally already on the E2M1 grid
 * @returns a 4-bit code 0…15
 * @example
 * ```ts
 * import { fp4Nibble } from "./fp4.ts";
 * fp4Nibble(-0.5); // 9
 * fp4Nibble(-0); // 8
 * fp4Nibble(6); // 7
 * ```
 */
export function fp4Nibble(v: number): number {
  const a = Math.abs(v);
  let best = 0;
  let bestDiff = Math.abs(a - FP4_E2M1_VALUES[0]);
  for (let k = 1; k < 8; k++) {
    const d = Math.abs(a - FP4_E2M1_VALUES[k]);
    if (d < bestDiff) {
      best = k;
      bestDiff = d;
    }
  }
  const negative = v < 0 || Object.is(v, -0);
  return best | (negative ? 8 : 0);
}

/**
 * The value of an E2M1 nibble (bit 3 is the sign; 0x8 is −0).
 *
 * @param nibble a 4-bit code
 * @returns its value
 * @example
 * ```ts
 * import { fp4NibbleValue } from "./fp4.ts";
 * fp4NibbleValue(0xb); // -1.5
 * ```
 */
export function fp4NibbleValue(nibble: number): number {
  const m = FP4_E2M1_VALUES[nibble & 7];
  return nibble & 8 ? -m : m;
}
