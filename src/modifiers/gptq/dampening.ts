/**
 * The host decisions of GPTQ's and SparseGPT's step 4 that every engine
 * shares: the dampening fractions tried in turn, the activation order, and
 * the configured fraction's check.
 *
 * @module
 */

import { GptqConfigError } from "./errors.ts";

/**
 * The dampening fractions tried in turn: the given one, then ×10 each retry
 * (from 0.001 when the given one is 0).
 *
 * @param frac the configured dampening fraction
 * @param maxRetries number of retries
 * @returns the fractions, first attempt first
 *
 * @example
 * ```ts
 * import { dampeningSchedule } from "./dampening.ts";
 * dampeningSchedule(0.01, 3); // [0.01, 0.1, 1, 10] (up to float rounding)
 * ```
 */
export function dampeningSchedule(frac: number, maxRetries: number): number[] {
  const base = frac > 0 ? frac : 0.001;
  const out = [frac];
  for (let i = 1; i <= maxRetries; i++) out.push(base * 10 ** i);
  return out;
}

/**
 * Stable argsort of diag(H), descending (ties keep column order; torch's
 * argsort leaves tie order unspecified).
 *
 * @param diag the diagonal
 * @returns perm with diag[perm[0]] ≥ diag[perm[1]] ≥ …
 *
 * @example
 * ```ts
 * import { activationOrder } from "./dampening.ts";
 * activationOrder(new Float32Array([1, 3, 3, 2])); // Int32Array [1, 2, 3, 0]
 * ```
 */
export function activationOrder(diag: ArrayLike<number>): Int32Array {
  const idx = Array.from({ length: diag.length }, (_, i) => i);
  idx.sort((a, b) => (diag[b] - diag[a]) || a - b);
  return Int32Array.from(idx);
}

/**
 * The configured dampening fraction (default 0.01), checked.
 *
 * @param dampeningFrac the fraction of mean(diag(H)) added to the diagonal
 * @returns it
 * @throws {GptqConfigError} for a negative or non-finite fraction
 * @example
 * ```ts
 * import { checkDampeningFrac } from "./dampening.ts";
 * console.assert(checkDampeningFrac(undefined) === 0.01);
 * ```
 */
export function checkDampeningFrac(dampeningFrac: number | undefined): number {
  const frac = dampeningFrac ?? 0.01;
  if (!(frac >= 0) || !Number.isFinite(frac)) {
    throw new GptqConfigError(`dampening_frac must be a finite number ≥ 0, got ${frac}`);
  }
  return frac;
}
