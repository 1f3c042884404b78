/**
 * The QuantizationModifier (round-to-nearest PTQ): plan which Linears get
 * which scheme, validate them before anything is written, and quantize and
 * compress a layer's Linears (with fused NVFP4 global scales).
 *
 * @example
 * ```ts
 * import { rtnQuantizeLinears } from "./mod.ts";
 * import { presetScheme } from "../../quant/presets.ts";
 * const [q] = rtnQuantizeLinears([{
 *   name: "model.layers.0.mlp.up_proj", values: new Float32Array([0.5, -1, 2, 0.25]), shape: [2, 2],
 *   scheme: presetScheme("FP8_DYNAMIC", ["Linear"]), format: "float-quantized", dtype: "BF16",
 * }], { fakeQuantize: true });
 * q.tensors.map((t) => t.dtype); // ["F8_E4M3", "BF16"]
 * ```
 *
 * @module
 */

export { checkWeightQuantizable } from "./check_weight.ts";
export { decoderLayerModules, layerFusedSets } from "./layer_fused_sets.ts";
export {
  computeDTypeOf,
  LINEAR_CLASS,
  type LinearPlan,
  type PlanConfig,
  planLinearQuantization,
  type PlannedLinear,
  type PlanSource,
} from "./linear_plan.ts";
export {
  type LinearToQuantize,
  type QuantizedLinear,
  type RtnLinearsOptions,
  rtnQuantizeLinears,
} from "./rtn_linears.ts";
