/**
 * Typed errors of the SparseGPT core.
 *
 * @module
 */

import { LlmcError } from "../../errors.ts";

/**
 * SparseGPT was configured in a way it cannot run: a sparsity outside
 * [0, 1), a malformed mask structure, or a preserved mask already sparser
 * than the target.
 *
 * @example
 * ```ts
 * import { SparseGptConfigError } from "./errors.ts";
 * const e = new SparseGptConfigError('mask_structure "2-4": expected "N:M"');
 * e.name; // "SparseGptConfigError"
 * ```
 */
export class SparseGptConfigError extends LlmcError {}
