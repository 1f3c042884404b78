/**
 * Module names of mixture-of-experts decoder layers as transformers writes
 * them, and the Linear modules of any decoder layer grouped by the
 * activation they read:
 *
 * - mixtral: `block_sparse_moe.gate` (router) and
 *   `block_sparse_moe.experts.{e}.w1` (gate) / `w3` (up) / `w2` (down);
 * - qwen2_moe / qwen3_moe: `mlp.gate` (router) and
 *   `mlp.experts.{e}.gate_proj` / `up_proj` / `down_proj`; qwen2_moe adds
 *   `mlp.shared_expert.{gate,up,down}_proj` and `mlp.shared_expert_gate`.
 *
 * Layers a qwen MoE config makes dense (`decoder_sparse_step`,
 * `mlp_only_layers`) have the dense `mlp.gate_proj` / `up_proj` / `down_proj`.
 *
 * @module
 */

import type { ModelConfig } from "../io/model_config.ts";
import { LINEAR_INPUT_GROUPS } from "./module_names.ts";

/** A Linear of a decoder layer, relative to `model.layers.{k}`, e.g. `mlp.experts.3.up_proj`. */
export type LayerModule = string;

/** Linear modules of one layer that read the same activation. */
export interface LinearInputGroup {
  /**
   * Identifies the activation within the layer: `qkv`, `o`, `gate_up`,
   * `down` (dense MLP); `moe_in` (the router's input, which the shared
   * expert also reads), `expert.{e}.gate_up`, `expert.{e}.down`, `shared.down`.
   */
  readonly key: string;
  /** The Linears, relative to the layer, in forward order. */
  readonly linears: readonly LayerModule[];
}

/** The names an MoE architecture gives its sparse block. */
export interface MoeModuleNames {
  /** The sparse block, relative to the layer. */
  readonly block: string;
  /** The router Linear. */
  readonly router: string;
  /** Expert `e`'s gate, up and down projections. */
  expert(e: number): { gate: string; up: string; down: string };
  /** qwen2_moe's shared expert (gate, up, down) and its gate Linear; null otherwise. */
  readonly shared: { gate: string; up: string; down: string; sharedGate: string } | null;
}

/**
 * Whether decoder layer `k` has a sparse MoE block (transformers: not in
 * `mlp_only_layers`, experts present and `(k + 1) % decoder_sparse_step == 0`).
 *
 * @param config the model config
 * @param k the layer index
 * @returns true for a sparse layer
 * @example
 * ```ts ignore
 * import { isSparseLayer } from "./moe_names.ts";
 * isSparseLayer(qwen3MoeConfig, 0); // true unless 0 is in mlp_only_layers
 * ```
 */
export function isSparseLayer(config: ModelConfig, k: number): boolean {
  const moe = config.moe;
  if (moe === null || moe.mlpOnlyLayers.includes(k)) return false;
  return moe.numExperts > 0 && (k + 1) % moe.decoderSparseStep === 0;
}

/**
 * The module names of an MoE architecture's sparse block.
 *
 * @param config an MoE model's config
 * @returns the names
 * @throws {Error} for a dense model
 * @example
 * ```ts ignore
 * import { moeModuleNames } from "./moe_names.ts";
 * moeModuleNames(mixtralConfig).expert(2).up; // "block_sparse_moe.experts.2.w3"
 * ```
 */
export function moeModuleNames(config: ModelConfig): MoeModuleNames {
  if (config.moe === null) throw new Error(`${config.modelType} is not a mixture of experts`);
  if (config.modelType === "mixtral") {
    const block = "block_sparse_moe";
    return {
      block,
      router: `${block}.gate`,
      expert: (e) => ({
        gate: `${block}.experts.${e}.w1`,
        up: `${block}.experts.${e}.w3`,
        down: `${block}.experts.${e}.w2`,
      }),
      shared: null,
    };
  }
  return {
    block: "mlp",
    router: "mlp.gate",
    expert: (e) => ({
      gate: `mlp.experts.${e}.gate_proj`,
      up: `mlp.experts.${e}.up_proj`,
      down: `mlp.experts.${e}.down_proj`,
    }),
    shared: config.moe.sharedExpertIntermediateSize === null ? null : {
      gate: "mlp.shared_expert.gate_proj",
      up: "mlp.shared_expert.up_proj",
      down: "mlp.shared_expert.down_proj",
      sharedGate: "mlp.shared_expert_gate",
    },
  };
}

/**
 * The Linear modules of decoder layer `k` grouped by the activation they
 * read, in forward order. Dense layers give the four groups of
 * `LINEAR_INPUT_GROUPS`; a sparse layer replaces `gate_up`/`down` by the
 * router's input (router, shared expert gate/up and shared_expert_gate),
 * each expert's gate/up and down inputs, and the shared expert's down input.
 *
 * @param config the model config
 * @param k the layer index
 * @returns the groups
 * @example
 * ```ts ignore
 * import { linearInputGroups } from "./moe_names.ts";
 * linearInputGroups(qwen3MoeConfig, 0).map((g) => g.key);
 * // ["qkv", "o", "moe_in", "expert.0.gate_up", "expert.0.down", ...]
 * ```
 */
export function linearInputGroups(config: ModelConfig, k: number): LinearInputGroup[] {
  const [qkv, o, gateUp, down] = LINEAR_INPUT_GROUPS;
  const attention = [{ key: "qkv", linears: qkv }, { key: "o", linears: o }];
  if (!isSparseLayer(config, k)) {
    return [...attention, { key: "gate_up", linears: gateUp }, { key: "down", linears: down }];
  }
  const names = moeModuleNames(config);
  const s = names.shared;
  const groups: LinearInputGroup[] = [
    ...attention,
    {
      key: "moe_in",
      linears: s === null ? [names.router] : [names.router, s.gate, s.up, s.sharedGate],
    },
  ];
  for (let e = 0; e < config.moe!.numExperts; e++) {
    const x = names.expert(e);
    groups.push({ key: `expert.${e}.gate_up`, linears: [x.gate, x.up] });
    groups.push({ key: `expert.${e}.down`, linears: [x.down] });
  }
  if (s !== null) groups.push({ key: "shared.down", linears: [s.down] });
  return groups;
}

/**
 * Every Linear of decoder layer `k`, relative to the layer, in forward order.
 *
 * @param config the model config
 * @param k the layer index
 * @returns the relative module names
 * @example
 * ```ts ignore
 * import { layerLinearModules } from "./moe_names.ts";
 * layerLinearModules(llamaConfig, 0); // the seven LAYER_LINEARS
 * ```
 */
export function layerLinearModules(config: ModelConfig, k: number): LayerModule[] {
  return linearInputGroups(config, k).flatMap((g) => g.linears);
}

/**
 * The expert index of a full or relative Linear name, or null for a Linear
 * outside the routed experts.
 *
 * @param name e.g. `model.layers.0.mlp.experts.5.down_proj`
 * @returns e.g. 5
 * @example
 * ```ts
 * import { expertIndexOf } from "./moe_names.ts";
 * expertIndexOf("model.layers.0.block_sparse_moe.experts.7.w2"); // 7
 * ```
 */
export function expertIndexOf(name: string): number | null {
  const m = /\.experts\.(\d+)\./.exec(name);
  return m === null ? null : Number(m[1]);
}
