/**
 * Typed errors of the quantization core: bad configuration (args, schemes,
 * presets) and tensors whose shapes a scheme cannot quantize.
 *
 * @module
 */

import { LlmcError } from "../errors.ts";

/**
 * A quantization config, scheme or preset is invalid. The message starts
 * with where the value came from (e.g. `config_groups.group_0.weights`) and
 * names the field at fault.
 *
 * @example
 * ```ts
 * import { QuantizationConfigError } from "./errors.ts";
 * const e = new QuantizationConfigError("group_0.weights.num_bits: expected an integer, got \"4\"");
 * e instanceof Error; // true
 * ```
 */
export class QuantizationConfigError extends LlmcError {}

/**
 * A tensor's shape does not fit its quantization args (a group size that does
 * not divide the columns, a block that does not tile the weight, an odd FP4
 * column count). Raised before anything is written.
 *
 * @example
 * ```ts
 * import { QuantizationShapeError } from "./errors.ts";
 * const e = new QuantizationShapeError("model.layers.0.mlp.down_proj: 172 columns ...");
 * e.name; // "QuantizationShapeError"
 * ```
 */
export class QuantizationShapeError extends LlmcError {}
