/**
 * SparseGPT's `mask_structure`: `"N:M"` prunes N of every M consecutive
 * weights of a row (`"2:4"`), `"0:0"` means unstructured.
 *
 * @module
 */

import { SparseGptConfigError } from "./errors.ts";

/** A parsed mask structure. */
export type MaskStructure =
  | { readonly kind: "unstructured" }
  | { readonly kind: "n:m"; readonly n: number; readonly m: number };

/**
 * Parses a mask structure string.
 *
 * @param s `"N:M"`, e.g. `"2:4"`, or `"0:0"` for unstructured
 * @returns the structure
 * @throws {SparseGptConfigError} for anything else, or N > M
 *
 * @example
 * ```ts
 * import { parseMaskStructure } from "./mask_structure.ts";
 * parseMaskStructure("2:4"); // { kind: "n:m", n: 2, m: 4 }
 * parseMaskStructure("0:0"); // { kind: "unstructured" }
 * ```
 */
export function parseMaskStructure(s: string): MaskStructure {
  const m = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(s);
  if (!m) throw new SparseGptConfigError(`mask_structure ${JSON.stringify(s)}: expected "N:M"`);
  const n = Number(m[1]);
  const mm = Number(m[2]);
  if (n === 0) return { kind: "unstructured" };
  if (mm === 0 || n > mm) {
    throw new SparseGptConfigError(`mask_structure "${s}": needs 0 < N ≤ M`);
  }
  return { kind: "n:m", n, m: mm };
}
