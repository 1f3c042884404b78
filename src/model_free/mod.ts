/**
 * Model-free PTQ: quantize a safetensors checkpoint without a model
 * definition (any architecture), streaming one tensor at a time.
 *
 * @example
 * ```ts ignore
 * import { modelFreePtq } from "./mod.ts";
 * await modelFreePtq("models/llama", "out/llama-fp8", "FP8_DYNAMIC", ["re:.*embed_tokens$", "lm_head"]);
 * ```
 *
 * @module
 */

export { ModelFreeError } from "./errors.ts";
export { type FusedTensorSets, fusedTensorSets } from "./fused_tensor_sets.ts";
export { type ModelFreeScheme, modelFreeScheme } from "./model_free_scheme.ts";
export {
  type ModelFreeProgress,
  modelFreePtq,
  type ModelFreePtqOptions,
  type ModelFreePtqResult,
} from "./model_free_ptq.ts";
