/**
 * Typed errors of the GPTQ and SparseGPT cores.
 *
 * @module
 */

import { LlmcError } from "../../errors.ts";

/**
 * GPTQ / SparseGPT was asked for something it does not do: an unsupported
 * quantization strategy, dynamic weight args, a block size the kernels
 * cannot tile, a sparsity outside [0, 1).
 *
 * @example
 * ```ts
 * import { GptqConfigError } from "./errors.ts";
 * const e = new GptqConfigError("q_proj: strategy token is not supported by GPTQ");
 * e.name; // "GptqConfigError"
 * ```
 */
export class GptqConfigError extends LlmcError {}

/**
 * A weight, activation or Hessian does not have the shape GPTQ expects
 * (e.g. activations whose last dimension is not the Hessian's size).
 *
 * @example
 * ```ts
 * import { GptqShapeError } from "./errors.ts";
 * const e = new GptqShapeError("Hessian of 4096 columns got activations [8, 11008]");
 * e instanceof Error; // true
 * ```
 */
export class GptqShapeError extends LlmcError {}
