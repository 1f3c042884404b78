/**
 * The Linear sets of one decoder layer whose NVFP4 global scales are fused,
 * found the way llm-compressor finds them: from the layer's module tree
 * (an attention module with q/k/v, an MLP module with gate/up).
 *
 * @module
 */

import type { ModelConfig, ModelType } from "../../io/model_config.ts";
import { LAYER_LINEARS, layerPrefix, linearModuleName } from "../../model/module_names.ts";
import { isSparseLayer, moeModuleNames } from "../../model/moe_names.ts";
import { fusedGlobalScaleGroups } from "../../quant/fused_global_scales.ts";
import type { NamedModule } from "../../quant/fused_global_scales.ts";

const CLASS_PREFIX: Readonly<Record<ModelType, string>> = {
  llama: "Llama",
  mistral: "Mistral",
  qwen2: "Qwen2",
  qwen3: "Qwen3",
  mixtral: "Mixtral",
  qwen2_moe: "Qwen2Moe",
  qwen3_moe: "Qwen3Moe",
};

/** transformers' class of one routed expert. */
const EXPERT_CLASS: Readonly<Partial<Record<ModelType, string>>> = {
  mixtral: "MixtralBlockSparseTop2MLP",
  qwen2_moe: "Qwen2MoeMLP",
  qwen3_moe: "Qwen3MoeMLP",
};

/**
 * The modules of decoder layer `k` with their transformers class names, in
 * `named_modules()` order (containers and Linears; norms are not needed here).
 *
 * @param k the layer index
 * @param model the model family, or the config (needed for the experts of
 *   MoE layers: the sparse block, router, every expert and shared expert)
 * @returns the modules
 * @example
 * ```ts
 * import { decoderLayerModules } from "./layer_fused_sets.ts";
 * decoderLayerModules(0, "llama")[1]; // { name: "model.layers.0.self_attn", className: "LlamaAttention" }
 * ```
 */
export function decoderLayerModules(k: number, model: ModelType | ModelConfig): NamedModule[] {
  const modelType = typeof model === "string" ? model : model.modelType;
  const p = layerPrefix(k);
  const c = CLASS_PREFIX[modelType];
  const linear = (l: (typeof LAYER_LINEARS)[number]) => ({
    name: linearModuleName(k, l),
    className: "Linear",
  });
  const attention = [
    { name: p, className: `${c}DecoderLayer` },
    { name: `${p}.self_attn`, className: `${c}Attention` },
    ...LAYER_LINEARS.filter((l) => l.startsWith("self_attn.")).map(linear),
  ];
  if (typeof model === "string" || !isSparseLayer(model, k)) {
    return [
      ...attention,
      { name: `${p}.mlp`, className: `${c}MLP` },
      ...LAYER_LINEARS.filter((l) => l.startsWith("mlp.")).map(linear),
    ];
  }
  const names = moeModuleNames(model);
  const at = (rel: string, className: string) => ({ name: `${p}.${rel}`, className });
  const out: NamedModule[] = [
    ...attention,
    at(names.block, `${c}SparseMoeBlock`),
    at(names.router, "Linear"),
    at(`${names.block}.experts`, "ModuleList"),
  ];
  for (let e = 0; e < model.moe!.numExperts; e++) {
    const x = names.expert(e);
    out.push(at(`${names.block}.experts.${e}`, EXPERT_CLASS[modelType]!));
    // named_modules() order: the Linears as the expert class declares them.
    const linears = modelType === "mixtral" ? [x.gate, x.down, x.up] : [x.gate, x.up, x.down];
    out.push(...linears.map((l) => at(l, "Linear")));
  }
  if (names.shared !== null) {
    out.push(at(`${names.block}.shared_expert`, `${c}MLP`));
    out.push(
      ...[names.shared.gate, names.shared.up, names.shared.down].map((l) => at(l, "Linear")),
    );
    out.push(at(names.shared.sharedGate, "Linear"));
  }
  return out;
}

/**
 * The fused global-scale sets of decoder layer `k`: q/k/v and gate/up, each
 * only when all members are tensor_group quantized.
 *
 * @param k the layer index
 * @param model the model family, or the config (MoE layers need it)
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
  model: ModelType | ModelConfig,
  isTensorGroup: (name: string) => boolean,
): string[][] {
  return fusedGlobalScaleGroups(decoderLayerModules(k, model), isTensorGroup);
}
