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
 * In the sparse layers of mixtures of experts, `post_attention_layernorm`
 * feeds the router, every expert's gate/up and qwen2_moe's shared expert
 * (gate/up and its `shared_expert_gate`); each expert's (and the shared
 * expert's) up projection feeds its own down projection. A smoothing of the
 * norm must rescale every Linear that reads it, or the routing and the shared
 * expert would see a changed input: readers a mapping leaves out (upstream
 * 0.9's MoE mappings leave out the router) are rescaled too, with a warning;
 * the router and `shared_expert_gate` stay dense, only their columns scale.
 * A smooth pattern that matches several modules (every expert's `up_proj`)
 * pairs each with the balance layers it feeds.
 *
 * @module
 */

import { LlmcError } from "../../errors.ts";
import { CAUSAL_LM_ARCHITECTURES, type ModelConfig } from "../../io/model_config.ts";
import { layerPrefix } from "../../model/module_names.ts";
import { isSparseLayer, moeModuleNames } from "../../model/moe_names.ts";
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

/**
 * AWQ's mappings for Qwen2-MoE / Qwen3-MoE: upstream's `_moe_default_mappings`
 * (the router among the norm's balance layers, as upstream after 0.9), with
 * qwen2_moe's shared expert and its gate added so the rescaling is exact.
 */
export const AWQ_QWEN_MOE_MAPPINGS: readonly MappingPatterns[] = Object.freeze([
  AWQ_DEFAULT_MAPPINGS[0],
  AWQ_DEFAULT_MAPPINGS[1],
  {
    smooth: "re:.*post_attention_layernorm$",
    balance: [
      "re:.*mlp.gate$",
      "re:.*mlp.experts.*.gate_proj$",
      "re:.*mlp.experts.*.up_proj$",
      "re:.*shared_expert.gate_proj$",
      "re:.*shared_expert.up_proj$",
      "re:.*shared_expert_gate$",
    ],
  },
  AWQ_DEFAULT_MAPPINGS[3],
]);

/**
 * AWQ's mappings for Mixtral (upstream has none: its default names match no
 * Mixtral expert): the same structure with Mixtral's names (w1 gate, w3 up, w2 down).
 */
export const AWQ_MIXTRAL_MAPPINGS: readonly MappingPatterns[] = Object.freeze([
  AWQ_DEFAULT_MAPPINGS[0],
  AWQ_DEFAULT_MAPPINGS[1],
  {
    smooth: "re:.*post_attention_layernorm$",
    balance: ["re:.*block_sparse_moe.gate$", "re:.*experts.*.w1$", "re:.*experts.*.w3$"],
  },
  { smooth: "re:.*experts.*.w3$", balance: ["re:.*experts.*.w2$"] },
]);

/** AWQ's default mappings by `model_type` (others: {@link AWQ_DEFAULT_MAPPINGS}). */
const AWQ_MAPPINGS_BY_MODEL_TYPE: Readonly<Record<string, readonly MappingPatterns[]>> = {
  mixtral: AWQ_MIXTRAL_MAPPINGS,
  qwen2_moe: AWQ_QWEN_MOE_MAPPINGS,
  qwen3_moe: AWQ_QWEN_MOE_MAPPINGS,
};

/**
 * AWQ's default mappings for a model (upstream's registry by architecture).
 *
 * @param config the model config
 * @returns the mappings
 * @example
 * ```ts ignore
 * awqDefaultMappings(mixtralConfig) === AWQ_MIXTRAL_MAPPINGS; // true
 * ```
 */
export function awqDefaultMappings(config: ModelConfig): readonly MappingPatterns[] {
  return AWQ_MAPPINGS_BY_MODEL_TYPE[config.modelType] ?? AWQ_DEFAULT_MAPPINGS;
}

/**
 * SmoothQuant's default mappings for llama, mistral, qwen2 and the architectures
 * upstream 0.9's registry does not list (qwen3, qwen2_moe, qwen3_moe) (§4.7).
 */
export const SMOOTHQUANT_DEFAULT_MAPPINGS: readonly MappingPatterns[] = Object.freeze([
  { smooth: "re:.*input_layernorm", balance: ["re:.*q_proj", "re:.*k_proj", "re:.*v_proj"] },
  { smooth: "re:.*post_attention_layernorm", balance: ["re:.*gate_proj", "re:.*up_proj"] },
]);

/**
 * SmoothQuant's mappings for Mixtral: the attention mapping only, as upstream
 * 0.9's `MIXTRAL_SMOOTHQUANT_MAPPINGS`. The MLP side is left alone on purpose
 * (upstream after 0.9 does the same for Qwen MoE: one scale shared by every
 * expert unbalances them).
 */
export const SMOOTHQUANT_MIXTRAL_MAPPINGS: readonly MappingPatterns[] = Object.freeze([
  SMOOTHQUANT_DEFAULT_MAPPINGS[0],
]);

/**
 * Upstream 0.9's `MAPPINGS_REGISTRY` (smoothquant/utils.py), keyed by the
 * model's class name, restricted to the architectures llmc loads; any other
 * gets {@link SMOOTHQUANT_DEFAULT_MAPPINGS}, as upstream's lookup does.
 */
const SMOOTHQUANT_MAPPINGS_BY_ARCHITECTURE: Readonly<Record<string, readonly MappingPatterns[]>> = {
  LlamaForCausalLM: SMOOTHQUANT_DEFAULT_MAPPINGS,
  MixtralForCausalLM: SMOOTHQUANT_MIXTRAL_MAPPINGS,
  MistralForCausalLM: SMOOTHQUANT_DEFAULT_MAPPINGS,
  Qwen2ForCausalLM: SMOOTHQUANT_DEFAULT_MAPPINGS,
};

/**
 * SmoothQuant's default mappings for a model: upstream's
 * `get_layer_mappings_from_architecture` on the class `AutoModelForCausalLM` builds.
 *
 * @param config the model config
 * @returns the mappings
 * @example
 * ```ts ignore
 * smoothQuantDefaultMappings(mixtralConfig) === SMOOTHQUANT_MIXTRAL_MAPPINGS; // true
 * ```
 */
export function smoothQuantDefaultMappings(config: ModelConfig): readonly MappingPatterns[] {
  return SMOOTHQUANT_MAPPINGS_BY_ARCHITECTURE[CAUSAL_LM_ARCHITECTURES[config.modelType]] ??
    SMOOTHQUANT_DEFAULT_MAPPINGS;
}

interface LayerModule {
  readonly rel: string;
  readonly className: string;
  readonly norm: boolean;
}

/** What a smooth layer may be balanced into, and the parent the balance layers sit in. */
interface Allowed {
  /** The Linears that read the smooth layer's output (all may balance it). */
  readonly balance: readonly string[];
  readonly parent: MappingParent;
  /** The parent's name (relative), when it is not the layer's `parent` itself. */
  readonly parentName?: string;
  /** Whether every reader must be balanced for the rescaling to be exact (MoE norms). */
  readonly allReaders?: boolean;
}

const ATTENTION_MODULES: readonly LayerModule[] = [
  { rel: "input_layernorm", className: "RMSNorm", norm: true },
  { rel: "self_attn.q_proj", className: "Linear", norm: false },
  { rel: "self_attn.k_proj", className: "Linear", norm: false },
  { rel: "self_attn.v_proj", className: "Linear", norm: false },
  { rel: "self_attn.o_proj", className: "Linear", norm: false },
  { rel: "post_attention_layernorm", className: "RMSNorm", norm: true },
];

const LAYER_MODULES: readonly LayerModule[] = [
  ...ATTENTION_MODULES,
  { rel: "mlp.gate_proj", className: "Linear", norm: false },
  { rel: "mlp.up_proj", className: "Linear", norm: false },
  { rel: "mlp.down_proj", className: "Linear", norm: false },
];

const ATTENTION_ALLOWED: Readonly<Record<string, Allowed>> = {
  "input_layernorm": {
    balance: ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
    parent: "self_attn",
  },
  "self_attn.v_proj": { balance: ["self_attn.o_proj"], parent: "self_attn" },
};

/** The balance layers each smooth layer may feed, and the parent they sit in. */
const ALLOWED: Readonly<Record<string, Allowed>> = {
  ...ATTENTION_ALLOWED,
  "post_attention_layernorm": { balance: ["mlp.gate_proj", "mlp.up_proj"], parent: "mlp" },
  "mlp.up_proj": { balance: ["mlp.down_proj"], parent: "mlp" },
};

/** A layer's modules and smoothing rules: dense layers' fixed ones, or a sparse MoE layer's. */
function layerStructure(
  config: ModelConfig,
  k: number,
): { modules: readonly LayerModule[]; allowed: Readonly<Record<string, Allowed>> } {
  if (!config.moe || !isSparseLayer(config, k)) return { modules: LAYER_MODULES, allowed: ALLOWED };
  const names = moeModuleNames(config);
  const linear = (rel: string): LayerModule => ({ rel, className: "Linear", norm: false });
  const modules: LayerModule[] = [...ATTENTION_MODULES, linear(names.router)];
  const readers = [names.router];
  const allowed: Record<string, Allowed> = { ...ATTENTION_ALLOWED };
  const shared = names.shared;
  if (shared !== null) {
    modules.push(...[shared.gate, shared.up, shared.down, shared.sharedGate].map(linear));
    readers.push(shared.gate, shared.up, shared.sharedGate);
    allowed[shared.up] = { balance: [shared.down], parent: "mlp" };
  }
  for (let e = 0; e < config.moe!.numExperts; e++) {
    const x = names.expert(e);
    modules.push(linear(x.gate), linear(x.up), linear(x.down));
    readers.push(x.gate, x.up);
    allowed[x.up] = { balance: [x.down], parent: "mlp" };
  }
  allowed["post_attention_layernorm"] = {
    balance: readers,
    parent: "mlp",
    parentName: names.block,
    allReaders: true,
  };
  return { modules, allowed };
}

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
  const { modules, allowed: rules } = layerStructure(config, k);
  const named = modules.map((m) => ({ ...m, name: `${p}.${m.rel}` }));
  const supported = () =>
    [
      ...new Set(
        Object.entries(rules).map(([s, a]) =>
          `${s} → ${a.balance.join("/")}`.replace(/experts\.\d+\./g, "experts.*.")
        ),
      ),
    ].join("; ");
  const out: LayerMapping[] = [];
  mappings.forEach((m, i) => {
    const smooths = named.filter((x) => matchesTarget(m.smooth, x.name, x.className));
    if (smooths.length === 0) return;
    // Several smooth layers (every expert's up projection) each balance the Linears they feed.
    const claims = (x: (typeof named)[number], b: (typeof named)[number]) =>
      rules[x.rel]?.balance.includes(b.rel) ?? false;
    if (smooths.length > 1 && smooths.some((x) => rules[x.rel] === undefined)) {
      throw new SmoothingMappingError(
        `${where}.mappings[${i}]: smooth layer '${m.smooth}' matches ${
          smooths.map((x) => x.name).join(", ")
        } in layer ${k}; it must match one module (or one per expert)`,
      );
    }
    const matched = named.filter((x) =>
      !x.norm && !smooths.includes(x) &&
      m.balance.some((b) => matchesTarget(b, x.name, x.className))
    );
    if (matched.length === 0) {
      skipped(
        `${where}: skipping ${smooths.map((x) => x.name).join(", ")}: no balance layers match ${
          m.balance.join(", ")
        }`,
      );
      return;
    }
    const bad = matched.filter((b) => !smooths.some((x) => claims(x, b)));
    if (bad.length > 0 || rules[smooths[0].rel] === undefined) {
      throw new SmoothingMappingError(
        `${where}.mappings[${i}]: smoothing ${smooths.map((x) => x.name).join(", ")} into ${
          (bad.length > 0 ? bad : matched).map((b) => b.name).join(", ")
        } is not an exact rescaling of a ${config.modelType} decoder layer; supported: ${supported()}`,
      );
    }
    for (const smooth of smooths) {
      const allowed = rules[smooth.rel]!;
      let balance = matched.filter((b) => claims(smooth, b));
      if (balance.length === 0) {
        skipped(
          `${where}: skipping ${smooth.name}: no balance layers match ${m.balance.join(", ")}`,
        );
        continue;
      }
      if (allowed.allReaders) {
        const missing = named.filter((x) => claims(smooth, x) && !balance.includes(x));
        if (missing.length > 0) {
          // Dividing the norm's output without them would change what they compute.
          skipped(
            `${where}: ${smooth.name} also feeds ${
              missing.map((x) => x.name).join(", ")
            }; they are rescaled with it so the layer computes the same`,
          );
          balance = named.filter((x) => claims(smooth, x));
        }
      }
      if (
        smooth.rel === "self_attn.v_proj" && config.numKeyValueHeads !== config.numAttentionHeads
      ) {
        // Upstream skips v_proj → o_proj when v_proj's outputs differ from o_proj's inputs (GQA).
        skipped(
          `${where}: skipping ${smooth.name} → ${balance[0].name}: v_proj has ` +
            `${config.numKeyValueHeads * config.headDim} outputs, o_proj ` +
            `${config.numAttentionHeads * config.headDim} inputs (grouped-query attention)`,
        );
        continue;
      }
      out.push({
        smooth: smooth.name,
        smoothIsNorm: smooth.norm,
        balance: balance.map((b) => b.name),
        parent: allowed.parent,
        parentName: balance.length === 1 && !smooth.norm
          ? balance[0].name
          : `${p}.${allowed.parentName ?? allowed.parent}`,
      });
    }
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
