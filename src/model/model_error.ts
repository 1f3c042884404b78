/**
 * The error the layer-wise decoder throws on a model or input it cannot run.
 *
 * @module
 */

import { LlmcError } from "../errors.ts";

/**
 * A decoder checkpoint or an input the forward pass cannot use: a missing or
 * misshapen tensor, an unsupported config value, token ids out of range, a
 * sequence longer than the sliding window allows. The message names the
 * tensor, field or argument and what was expected.
 *
 * @example
 * ```ts
 * import { DecoderModelError } from "./model_error.ts";
 * const e = new DecoderModelError("model.norm.weight: expected shape [64], got [32]");
 * e.name; // "DecoderModelError"
 * ```
 */
export class DecoderModelError extends LlmcError {}
