/**
 * Test helpers for the reference checkpoints in `../shared/reference`: the
 * stories260K module tree, and the config groups + ignore list of each
 * folder's `input_recipe.yaml` (a minimal reading of QuantizationModifier's
 * `config_groups` / `scheme` / `targets` / `ignore`, enough for these data-free
 * recipes; the real recipe parser lives in src/recipe).
 *
 * @module
 */

import { parse as parseYaml } from "yaml";
import { parseQuantizationScheme } from "../../src/quant/scheme.ts";
import type { QuantizationScheme } from "../../src/quant/scheme.ts";
import { presetScheme } from "../../src/quant/presets.ts";

/** The shared data folder, resolved next to the repository root. */
export const SHARED = new URL("../../../shared/", import.meta.url);

/** The reference folders and what they exercise. */
export const REFERENCE_FOLDERS = [
  "a_rtn_w4a16_channel",
  "a2_rtn_w4a16_asym_channel",
  "k_w8a16",
  "e_fp8_dynamic",
  "g1b_nvfp4a16_skipdown",
] as const;

/** A module of the stories260K Llama tree, in `named_modules()` order. */
export interface TreeModule {
  name: string;
  className: string;
}

/** The Linear names of one decoder layer, in module order. */
export const LAYER_LINEARS = [
  "self_attn.q_proj",
  "self_attn.k_proj",
  "self_attn.v_proj",
  "self_attn.o_proj",
  "mlp.gate_proj",
  "mlp.up_proj",
  "mlp.down_proj",
] as const;

/** `LlamaForCausalLM.named_modules()` for a model with `layers` decoder layers. */
export function llamaModuleTree(layers: number): TreeModule[] {
  const out: TreeModule[] = [
    { name: "", className: "LlamaForCausalLM" },
    { name: "model", className: "LlamaModel" },
    { name: "model.embed_tokens", className: "Embedding" },
    { name: "model.layers", className: "ModuleList" },
  ];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    out.push(
      { name: p, className: "LlamaDecoderLayer" },
      { name: `${p}.self_attn`, className: "LlamaAttention" },
      { name: `${p}.self_attn.q_proj`, className: "Linear" },
      { name: `${p}.self_attn.k_proj`, className: "Linear" },
      { name: `${p}.self_attn.v_proj`, className: "Linear" },
      { name: `${p}.self_attn.o_proj`, className: "Linear" },
      { name: `${p}.mlp`, className: "LlamaMLP" },
      { name: `${p}.mlp.gate_proj`, className: "Linear" },
      { name: `${p}.mlp.up_proj`, className: "Linear" },
      { name: `${p}.mlp.down_proj`, className: "Linear" },
      { name: `${p}.mlp.act_fn`, className: "SiLU" },
      { name: `${p}.input_layernorm`, className: "LlamaRMSNorm" },
      { name: `${p}.post_attention_layernorm`, className: "LlamaRMSNorm" },
    );
  }
  out.push(
    { name: "model.norm", className: "LlamaRMSNorm" },
    { name: "model.rotary_emb", className: "LlamaRotaryEmbedding" },
    { name: "lm_head", className: "Linear" },
  );
  return out;
}

/** Config groups and ignore list of a data-free QuantizationModifier recipe. */
export interface RecipeQuantization {
  groups: QuantizationScheme[];
  ignore: string[];
}

/** Reads `input_recipe.yaml` of a reference folder. */
export async function readReferenceRecipe(folder: string): Promise<RecipeQuantization> {
  const text = await Deno.readTextFile(new URL(`reference/${folder}/input_recipe.yaml`, SHARED));
  const doc = parseYaml(text) as Record<
    string,
    Record<string, Record<string, Record<string, unknown>>>
  >;
  const stage = Object.values(doc)[0];
  const mods = Object.values(stage)[0];
  const qm = mods.QuantizationModifier;
  const targets = (qm.targets as string[] | undefined) ?? ["Linear"];
  const ignore = (qm.ignore as string[] | undefined) ?? [];
  if (typeof qm.scheme === "string") return { groups: [presetScheme(qm.scheme, targets)], ignore };
  const groups = Object.entries(qm.config_groups as Record<string, unknown>).map(([name, raw]) =>
    parseQuantizationScheme(raw, `config_groups.${name}`)
  );
  return { groups, ignore };
}
