/**
 * The error of model-free PTQ.
 *
 * @module
 */

import { LlmcError } from "../errors.ts";

/**
 * Model-free PTQ cannot run: the scheme needs calibration, a weight cannot be
 * quantized, a fused set is split across files, or the folder has no
 * safetensors files. The message names the file or tensor at fault.
 *
 * @example
 * ```ts
 * import { ModelFreeError } from "./errors.ts";
 * const e = new ModelFreeError("model-00002-of-00003.safetensors: k_proj is in another file");
 * e.name; // "ModelFreeError"
 * ```
 */
export class ModelFreeError extends LlmcError {}
