/**
 * The Linear sets of one decoder layer whose NVFP4 global scales are fused,
 * found the way llm-compressor finds them: from the layer's module tree
 * (an attention module with q/k/v, an MLP module with gate/up).
 *
 * @module
 */

import type { ModelType } from "../../io/model_config.ts";
import { LAYER_LINEARS, layerPrefix, linearModuleName } from "../../model/module_names.ts";
import { fusedGlobalScaleGroups } from "../../quant/fused_global_scales.ts";
import type { NamedModule } from "../../quant/fused_global_scales.ts";

const CLASS_PREFIX: Readonly<Record<ModelType, string>> = {
  llama: "Llama",
  mistral: "Mistral",
  qwen2: "Qwen2",
  qwen3: "Qwen3",
};

/**
 * The modules of decoder layer `k` with their transformers class names, in
 * `named_modules()` order (containers and Linears; norms are not needed here).
 *
 * @param k the layer index
 * @param modelType the model family
 * @returns the modules
 * @example
 * ```ts
 * import { decoderLayerModules } from "./layer_fused_sets.ts";
 * decoderLayerModules(0, "llama")[1]; // { name: "model.layers.0.self_attn", className: "LlamaAttention" }
 * ```
 */
export function decoderLayerModules(k: number, modelType: ModelType): NamedModule[] {
  const p = layerPrefix(k);
  const c = CLASS_PREFIX[modelType];
  const linear = (l: (typeof LAYER_LINEARS)[number]) => ({
    name: linearModuleName(k, l),
    className: "Linear",
  });
  return [
    { name: p, className: `${c}DecoderLayer` },
    { name: `${p}.self_attn`, className: `${c}Attention` },
    ...LAYER_LINEARS.filter((l) => l.startsWith("self_attn.")).map(linear),
    { name: `${p}.mlp`, className: `${c}MLP` },
    ...LAYER_LINEARS.filter((l) => l.startsWith("mlp.")).map(linear),
  ];
}

/**
 * The fused global-scale sets of decoder layer `k`: q/k/v and gate/up, each
 * only when all members are tensor_group quantized.
 *
 * @param k the layer index
 * @param modelType the model family
 * @param isTensorGroup whether a module's weights use tensor_group quantization
 * @returns the sets of module names
 * @example
 * ```ts
 * import { layerFusedSets } from "./layer_fused_sets.ts";
 * layerFusedSets(2, "llama", (n) => !n.endsWith("down_proj")).length; // 2
 * ```
 */
export function layerFusedSets(
  k: number,
  modelType: ModelType,
  isTensorGroup: (name: string) => boolean,
): string[][] {
  return fusedGlobalScaleGroups(decoderLayerModules(k, modelType), isTensorGroup);
}
