/**
 * The error of the compressed-tensors format writers and readers.
 *
 * @module
 */

import { LlmcError } from "../errors.ts";

/**
 * A module cannot be written in (or read from) a compression format: a
 * precondition of the format fails, a tensor is missing, or shapes disagree.
 * The message names the module and what was expected.
 *
 * @example
 * ```ts
 * import { CompressionError } from "./errors.ts";
 * const e = new CompressionError("model.layers.0.mlp.up_proj: nvfp4-pack-quantized needs an even column count");
 * e.name; // "CompressionError"
 * ```
 */
export class CompressionError extends LlmcError {}
