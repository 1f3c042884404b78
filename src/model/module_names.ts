/**
 * Hugging Face module and tensor names of a Llama-family decoder, and the
 * groups of Linear modules that read the same input activations.
 *
 * @module
 */

/** A Linear module inside a decoder layer, relative to `model.layers.{k}`. */
export type LayerLinear =
  | "self_attn.q_proj"
  | "self_attn.k_proj"
  | "self_attn.v_proj"
  | "self_attn.o_proj"
  | "mlp.gate_proj"
  | "mlp.up_proj"
  | "mlp.down_proj";

/**
 * The Linear modules of a decoder layer, grouped by the activation they read,
 * in forward order: q/k/v read the normed hidden state, o_proj the attention
 * output, gate/up the normed residual, down_proj the gated product.
 */
export const LINEAR_INPUT_GROUPS: readonly (readonly LayerLinear[])[] = Object.freeze([
  Object.freeze(["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"] as const),
  Object.freeze(["self_attn.o_proj"] as const),
  Object.freeze(["mlp.gate_proj", "mlp.up_proj"] as const),
  Object.freeze(["mlp.down_proj"] as const),
]);

/** Every Linear of a decoder layer, in forward order. */
export const LAYER_LINEARS: readonly LayerLinear[] = Object.freeze(LINEAR_INPUT_GROUPS.flat());

/**
 * The module name prefix of decoder layer `k`.
 *
 * @param k the layer index
 * @returns `model.layers.{k}`
 * @example
 * ```ts
 * import { layerPrefix } from "./module_names.ts";
 * layerPrefix(3); // "model.layers.3"
 * ```
 */
export function layerPrefix(k: number): string {
  return `model.layers.${k}`;
}

/**
 * The full module name of a Linear in decoder layer `k`.
 *
 * @param k the layer index
 * @param linear the Linear, relative to the layer
 * @returns e.g. `model.layers.3.self_attn.q_proj`
 * @example
 * ```ts
 * import { linearModuleName } from "./module_names.ts";
 * linearModuleName(3, "mlp.down_proj"); // "model.layers.3.mlp.down_proj"
 * ```
 */
export function linearModuleName(k: number, linear: LayerLinear): string {
  return `${layerPrefix(k)}.${linear}`;
}

/** The embedding table's tensor name. */
export const EMBED_TOKENS = "model.embed_tokens.weight";
/** The final RMSNorm's weight. */
export const FINAL_NORM = "model.norm.weight";
/** The untied output projection; absent when embeddings are tied. */
export const LM_HEAD = "lm_head.weight";
