/**
 * The project's one rounding helper for integer quantization: PyTorch's
 * `torch.round`, which rounds half to even (JavaScript's `Math.round` rounds
 * half up and is never used for codes).
 *
 * @module
 */

/**
 * Rounds to the nearest integer, ties to the even neighbour.
 *
 * @param x any number (NaN and ±Infinity pass through)
 * @returns the nearest integer; 2.5 → 2, 3.5 → 4, −7.5 → −8
 * @example
 * ```ts
 * import { roundHalfEven } from "./round_half_even.ts";
 * roundHalfEven(2.5); // 2
 * roundHalfEven(-7.5); // -8
 * ```
 */
export function roundHalfEven(x: number): number {
  if (x < TWO_51 && x > -TWO_51) {
    // Below 2^51 in magnitude, adding 1.5·2^52 leaves no fraction bits, so
    // the FPU's own round-half-even does the work (Math.round is far slower
    // in V8). Only the sign of a zero result is lost: x · 0 restores it.
    const r = (x + RNE_MAGIC) - RNE_MAGIC;
    return r === 0 ? x * 0 : r;
  }
  // NaN, ±Infinity and huge values. Math.round sends exact halves up; an odd
  // result there must come down.
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const TWO_51 = 2 ** 51;
const RNE_MAGIC = 2 ** 52 + 2 ** 51;
