/**
 * Typed errors of the rotation transforms.
 *
 * @module
 */

import { LlmcError } from "../errors.ts";

/**
 * A transform that cannot be built or applied: a Hadamard size llmc cannot
 * construct, `hadamard` on a size that is not a power of two, a dimension
 * that is not a multiple of the block size, an unsupported architecture.
 *
 * @example
 * ```ts
 * import { TransformError } from "./errors.ts";
 * const e = new TransformError("Cannot construct deterministic hadamard of size != 2^n: 172");
 * e.name; // "TransformError"
 * ```
 */
export class TransformError extends LlmcError {}
