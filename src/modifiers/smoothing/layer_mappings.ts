/**
 * Smoothing mappings (SmoothQuant §4.7, AWQ §4.6) resolved in one decoder
 * layer: which layer's output is divided by per-channel scales (the smooth
 * layer: a norm, or a Linear whose output rows are scaled) and which
 * Linears' input columns absorb them (the balance layers), and how the
 * scales are applied to the layer's tensors. Only mappings that are an exact
 * rescaling of llmc's decoder layer are accepted:
 *
 * | smooth layer               | balance layers            |
 * |----------------------------|---------------------------|
 * | `input_layernorm`          | any of q/k/v_proj         |
 * | `post_attention_layernorm` | any of gate/up_proj       |
 * | `self_attn.v_proj`         | `self_attn.o_proj` (no GQA) |
 * | `mlp.up_proj`              | `mlp.down_proj`           |
 *
 * @module
 */

import { LlmcError } from "../../errors.ts";
import type { ModelConfig } from "../../io/model_config.ts";
import { layerPrefix } from "../../model/module_names.ts";
import { matchesTarget } from "../../quant/match.ts";

/** A mapping llmc cannot apply to its decoder layer. */
export class SmoothingMappingError extends LlmcError {}

/** A mapping as a recipe gives it (patterns). */
export interface MappingPatterns {
  readonly smooth: string;
  readonly balance: readonly string[];
}

/** The part of the decoder layer whose output a mapping's loss is measured on (AWQ). */
export type MappingParent = "self_attn" | "mlp";

/** A mapping resolved in one layer. */
export interface LayerMapping {
  /** Full module name of the smooth layer. */
  readonly smooth: string;
  /** Whether the smooth layer is a norm (else a Linear). */
  readonly smoothIsNorm: boolean;
  /** Full module names of the balance layers, in layer order. */
  readonly balance: readonly string[];
  /** The sub-graph whose output the balance layers feed (AWQ's parent module). */
  readonly parent: MappingParent;
  /** The parent's module name (upstream's lowest common ancestor), for messages and metrics. */
  readonly parentName: string;
}

/** AWQ's default mappings for llama, mistral, qwen2 and qwen3 (§4.6). */
export const AWQ_DEFAULT_MAPPINGS: readonly MappingPatterns[] = Object.freeze([
  { smooth: "re:.*input_layernorm$", balance: ["re:.*q_proj$", "re:.*k_proj$", "re:.*v_proj$"] },
  { smooth: "re:.*v_proj$", balance: ["re:.*o_proj$"] },
  {
    smooth: "re:.*post_attention_layernorm$",
    balance: ["re:.*gate_proj$", "re:.*up_proj$"],
  },
  { smooth: "re:.*up_proj$", balance: ["re:.*down_proj$"] },
]);

/** SmoothQuant's default mappings for llama, mistral, qwen2 (and the fallback: qwen3) (§4.7). */
export const SMOOTHQUANT_DEFAULT_MAPPINGS: readonly MappingPatterns[] = Object.freeze([
  { smooth: "re:.*input_layernorm", balance: ["re:.*q_proj", "re:.*k_proj", "re:.*v_proj"] },
  { smooth: "re:.*post_attention_layernorm", balance: ["re:.*gate_proj", "re:.*up_proj"] },
]);

interface LayerModule {
  readonly rel: string;
  readonly className: string;
  readonly norm: boolean;
}

const LAYER_MODULES: readonly LayerModule[] = [
  { rel: "input_layernorm", className: "RMSNorm", norm: true },
  { rel: "self_attn.q_proj", className: "Linear", norm: false },
  { rel: "self_attn.k_proj", className: "Linear", norm: false },
  { rel: "self_attn.v_proj", className: "Linear", norm: false },
  { rel: "self_attn.o_proj", className: "Linear", norm: false },
  { rel: "post_attention_layernorm", className: "RMSNorm", norm: true },
  { rel: "mlp.gate_proj", className: "Linear", norm: false },
  { rel: "mlp.up_proj", className: "Linear", norm: false },
  { rel: "mlp.down_proj", className: "Linear", norm: false },
];

/** The balance layers each smooth layer may feed, and the parent they sit in. */
const ALLOWED: Readonly<Record<string, { balance: readonly string[]; parent: MappingParent }>> = {
  "input_layernorm": {
    balance: ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
    parent: "self_attn",
  },
  "post_attention_layernorm": { balance: ["mlp.gate_proj", "mlp.up_proj"], parent: "mlp" },
  "self_attn.v_proj": { balance: ["self_attn.o_proj"], parent: "self_attn" },
  "mlp.up_proj": { balance: ["mlp.down_proj"], parent: "mlp" },
};

/**
 * Resolves mappings in decoder layer `k`.
 *
 * @param k the layer
 * @param config the model config (GQA check)
 * @param mappings the mappings' patterns
 * @param where the modifier's path, for messages
 * @param skipped receives a note per mapping skipped in this layer (v_proj → o_proj under GQA)
 * @returns the mappings that apply in this layer, in the given order
 * @throws {SmoothingMappingError} for a mapping that matches several smooth layers or one
 *   llmc's layer cannot rescale exactly
 * @example
 * ```ts ignore
 * const maps = resolveLayerMappings(0, config, AWQ_DEFAULT_MAPPINGS, "AWQModifier", console.log);
 * maps[0].balance; // ["model.layers.0.self_attn.q_proj", ...k_proj, ...v_proj]
 * ```
 */
export function resolveLayerMappings(
  k: number,
  config: ModelConfig,
  mappings: readonly MappingPatterns[],
  where: string,
  skipped: (message: string) => void = () => {},
): LayerMapping[] {
  const p = layerPrefix(k);
  const named = LAYER_MODULES.map((m) => ({ ...m, name: `${p}.${m.rel}` }));
  const out: LayerMapping[] = [];
  mappings.forEach((m, i) => {
    const smooths = named.filter((x) => matchesTarget(m.smooth, x.name, x.className));
    if (smooths.length === 0) return;
    if (smooths.length > 1) {
      throw new SmoothingMappingError(
        `${where}.mappings[${i}]: smooth layer '${m.smooth}' matches ${
          smooths.map((s) => s.name).join(", ")
        } in layer ${k}; it must match one module`,
      );
    }
    const smooth = smooths[0];
    const balance = named.filter((x) =>
      !x.norm && x.name !== smooth.name &&
      m.balance.some((b) => matchesTarget(b, x.name, x.className))
    );
    if (balance.length === 0) {
      skipped(`${where}: skipping ${smooth.name}: no balance layers match ${m.balance.join(", ")}`);
      return;
    }
    const allowed = ALLOWED[smooth.rel];
    const bad = balance.filter((b) => !allowed?.balance.includes(b.rel));
    if (allowed === undefined || bad.length > 0) {
      throw new SmoothingMappingError(
        `${where}.mappings[${i}]: smoothing ${smooth.name} into ${
          (bad.length > 0 ? bad : balance).map((b) => b.name).join(", ")
        } is not an exact rescaling of a ${config.modelType} decoder layer; supported: ` +
          Object.entries(ALLOWED).map(([s, a]) => `${s} → ${a.balance.join("/")}`).join("; "),
      );
    }
    if (smooth.rel === "self_attn.v_proj" && config.numKeyValueHeads !== config.numAttentionHeads) {
      // Upstream skips v_proj → o_proj when v_proj's outputs differ from o_proj's inputs (GQA).
      skipped(
        `${where}: skipping ${smooth.name} → ${balance[0].name}: v_proj has ` +
          `${config.numKeyValueHeads * config.headDim} outputs, o_proj ` +
          `${config.numAttentionHeads * config.headDim} inputs (grouped-query attention)`,
      );
      return;
    }
    out.push({
      smooth: smooth.name,
      smoothIsNorm: smooth.norm,
      balance: balance.map((b) => b.name),
      parent: allowed.parent,
      parentName: balance.length === 1 && !smooth.norm ? balance[0].name : `${p}.${allowed.parent}`,
    });
  });
  return out;
}

/**
 * Applies smoothing scales `s` to a layer's tensors: every balance weight's
 * input column j is multiplied by s_j, the smooth layer's output channel j
 * divided by s_j (a norm's weight, or a Linear's last `s.length` output rows
 * and its bias). The function of the layer is unchanged.
 *
 * @param weights the layer's tensors (not modified)
 * @param mapping the mapping
 * @param s the scales, one per balance input channel
 * @returns the rewritten tensors (full name → new values)
 * @example
 * ```ts ignore
 * const rewritten = applySmoothing(weights, mapping, scales);
 * ```
 */
export function applySmoothing(
  weights: ReadonlyMap<string, Float32Array>,
  mapping: LayerMapping,
  s: Float32Array,
): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  const cols = s.length;
  for (const b of mapping.balance) {
    const w = weights.get(`${b}.weight`)!;
    const scaled = new Float32Array(w.length);
    for (let i = 0; i < w.length; i += cols) {
      for (let j = 0; j < cols; j++) scaled[i + j] = w[i + j] * s[j];
    }
    out.set(`${b}.weight`, scaled);
  }
  const w = weights.get(`${mapping.smooth}.weight`)!;
  const smoothed = Float32Array.from(w);
  if (mapping.smoothIsNorm) {
    for (let j = 0; j < cols; j++) smoothed[j] = w[j] / s[j];
  } else {
    // A Linear (v_proj, up_proj): in llmc's layers its outputs are exactly the balance inputs.
    const rowLen = w.length / cols;
    for (let r = 0; r < cols; r++) {
      for (let c = 0; c < rowLen; c++) smoothed[r * rowLen + c] /= s[r];
    }
  }
  out.set(`${mapping.smooth}.weight`, smoothed);
  const bias = weights.get(`${mapping.smooth}.bias`);
  if (bias !== undefined) {
    const nb = Float32Array.from(bias);
    const first = nb.length - cols;
    for (let r = 0; r < cols; r++) nb[first + r] /= s[r];
    out.set(`${mapping.smooth}.bias`, nb);
  }
  return out;
}
