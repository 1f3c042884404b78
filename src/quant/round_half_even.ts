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
  const r = Math.round(x);
  // Math.round sends exact halves up; an odd result there must come down.
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
