/**
 * A Hugging Face `config.json` for the llama family (llama, mistral, qwen2,
 * qwen3) and its mixtures of experts (mixtral, qwen2_moe, qwen3_moe), parsed into one typed shape with transformers' per-model defaults
 * applied, so the rest of llmc never looks at raw JSON.
 *
 * @module
 */

import { LlmcError } from "../errors.ts";

/** How RoPE frequencies are scaled (transformers' `rope_scaling.rope_type`). */
export type RopeScaling =
  | { type: "default" }
  | { type: "linear"; factor: number }
  | { type: "dynamic"; factor: number; originalMaxPositionEmbeddings?: number }
  | {
    type: "llama3";
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositionEmbeddings: number;
  };

/** The model families llmc can run. */
export type ModelType =
  | "llama"
  | "mistral"
  | "qwen2"
  | "qwen3"
  | "mixtral"
  | "qwen2_moe"
  | "qwen3_moe";

/** The model types llmc supports, in the order of {@link ModelType}. */
export const SUPPORTED_MODEL_TYPES: readonly ModelType[] = Object.freeze([
  "llama",
  "mistral",
  "qwen2",
  "qwen3",
  "mixtral",
  "qwen2_moe",
  "qwen3_moe",
]);

/**
 * The class transformers' `AutoModelForCausalLM` builds for each model type:
 * upstream keys its mapping registries on it (`model.__class__.__name__`).
 *
 * @example
 * ```ts
 * import { CAUSAL_LM_ARCHITECTURES } from "./model_config.ts";
 * console.assert(CAUSAL_LM_ARCHITECTURES.mixtral === "MixtralForCausalLM");
 * ```
 */
export const CAUSAL_LM_ARCHITECTURES: Readonly<Record<ModelType, string>> = Object.freeze({
  llama: "LlamaForCausalLM",
  mistral: "MistralForCausalLM",
  qwen2: "Qwen2ForCausalLM",
  qwen3: "Qwen3ForCausalLM",
  mixtral: "MixtralForCausalLM",
  qwen2_moe: "Qwen2MoeForCausalLM",
  qwen3_moe: "Qwen3MoeForCausalLM",
});

/**
 * The sparse MLP of a mixture-of-experts model (transformers'
 * `MixtralSparseMoeBlock`, `Qwen2MoeSparseMoeBlock`, `Qwen3MoeSparseMoeBlock`):
 * a router Linear picks `topK` of `numExperts` SwiGLU experts per token.
 */
export interface MoeConfig {
  /** Routed experts per sparse layer (`num_local_experts` / `num_experts`). */
  numExperts: number;
  /** Experts per token (`num_experts_per_tok`). */
  topK: number;
  /** An expert's intermediate size (mixtral: `intermediate_size`; qwen: `moe_intermediate_size`). */
  expertIntermediateSize: number;
  /** Renormalize the top-k softmax weights to sum to 1 (always for mixtral). */
  normTopkProb: boolean;
  /** qwen2_moe's shared expert (`shared_expert_intermediate_size`); null without one. */
  sharedExpertIntermediateSize: number | null;
  /** Every `decoderSparseStep`-th layer is sparse (`decoder_sparse_step`, 1 for mixtral). */
  decoderSparseStep: number;
  /** Layers with a dense MLP of `intermediate_size` instead (`mlp_only_layers`). */
  mlpOnlyLayers: readonly number[];
}

/** A parsed, validated decoder config. */
export interface ModelConfig {
  /** `model_type`. */
  modelType: ModelType;
  /** `hidden_size`: the width of the residual stream. */
  hiddenSize: number;
  /** `intermediate_size`: the width of the MLP. */
  intermediateSize: number;
  /** `num_hidden_layers`: decoder layers. */
  numHiddenLayers: number;
  /** `num_attention_heads`: query heads. */
  numAttentionHeads: number;
  /** `num_key_value_heads` (GQA); equal to the query heads for MHA. */
  numKeyValueHeads: number;
  /** `head_dim`, else hidden size / query heads. */
  headDim: number;
  /** `vocab_size`. */
  vocabSize: number;
  /** `rms_norm_eps`. */
  rmsNormEps: number;
  /** `rope_theta`. */
  ropeTheta: number;
  /** `rope_scaling`, parsed. */
  ropeScaling: RopeScaling;
  /** `max_position_embeddings`. */
  maxPositionEmbeddings: number;
  /** `tie_word_embeddings`: lm_head shares the embedding table. */
  tieWordEmbeddings: boolean;
  /** q/k/v (and for llama o) projections carry a bias: always for qwen2. */
  attentionBias: boolean;
  /** The MLP projections carry a bias. */
  mlpBias: boolean;
  /** RMSNorm on q and k per head (qwen3). */
  qkNorm: boolean;
  /** The sparse MLP of a mixture-of-experts model; null for a dense one. */
  moe: MoeConfig | null;
  /** Attention window; null for full attention. */
  slidingWindow: number | null;
  /** `hidden_act` (only SiLU is supported). */
  hiddenAct: "silu";
  /** `bos_token_id`, or null. */
  bosTokenId: number | null;
  /** `eos_token_id`, always as a list. */
  eosTokenIds: number[];
  /** `torch_dtype` (or `dtype`) as written, e.g. `"bfloat16"`. */
  torchDtype: string;
  /** The JSON object as read, for fields this type does not model. */
  raw: Record<string, unknown>;
}

/** A config.json is missing a field, has a wrong one, or names an unsupported model. */
export class ModelConfigError extends LlmcError {
  /** The config file at fault. */
  readonly file: string;
  /** The JSON field at fault, when one is. */
  readonly field: string | null;

  /**
   * @param file the config file
   * @param field the JSON field at fault, or null
   * @param message what was wrong and what was expected
   */
  constructor(file: string, field: string | null, message: string) {
    super(`${file}: ${field === null ? "" : `field '${field}' `}${message}`);
    this.file = file;
    this.field = field;
  }
}

// transformers' constructor defaults where they differ by model type.
const DEFAULTS: Record<ModelType, {
  numKeyValueHeads: number | null; // null: equal to num_attention_heads
  headDim: number | null; // null: hidden_size / num_attention_heads
  maxPositionEmbeddings: number;
  bosTokenId: number | null;
  eosTokenId: number | null;
}> = {
  llama: {
    numKeyValueHeads: null,
    headDim: null,
    maxPositionEmbeddings: 2048,
    bosTokenId: 1,
    eosTokenId: 2,
  },
  mistral: {
    numKeyValueHeads: 8,
    headDim: null,
    maxPositionEmbeddings: 4096 * 32,
    bosTokenId: 1,
    eosTokenId: 2,
  },
  qwen2: {
    numKeyValueHeads: 32,
    headDim: null,
    maxPositionEmbeddings: 32768,
    bosTokenId: null,
    eosTokenId: null,
  },
  qwen3: {
    numKeyValueHeads: 32,
    headDim: 128,
    maxPositionEmbeddings: 32768,
    bosTokenId: null,
    eosTokenId: null,
  },
  mixtral: {
    numKeyValueHeads: 8,
    headDim: null,
    maxPositionEmbeddings: 4096 * 32,
    bosTokenId: 1,
    eosTokenId: 2,
  },
  qwen2_moe: {
    numKeyValueHeads: 16,
    headDim: null,
    maxPositionEmbeddings: 32768,
    bosTokenId: null,
    eosTokenId: null,
  },
  // Qwen3MoeAttention reads head_dim with getattr(config, "head_dim", hidden / heads).
  qwen3_moe: {
    numKeyValueHeads: 4,
    headDim: null,
    maxPositionEmbeddings: 32768,
    bosTokenId: null,
    eosTokenId: null,
  },
};

const INTERMEDIATE_DEFAULTS: Partial<Record<ModelType, number>> = {
  mixtral: 14336,
  qwen2_moe: 5632,
  qwen3_moe: 6144,
};

/**
 * Parses a config.json object.
 *
 * @param raw the parsed JSON
 * @param file the file it came from, for messages
 * @returns the typed config with defaults applied
 * @throws {ModelConfigError} naming the file and field: a required size is
 *   missing or not a positive integer, `model_type` is unsupported,
 *   `hidden_act` is not silu, or `rope_scaling` is malformed or unsupported
 * @example
 * ```ts
 * import { parseModelConfig } from "./model_config.ts";
 * const c = parseModelConfig({
 *   model_type: "llama", hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5,
 *   num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 512,
 * }, "config.json");
 * c.headDim; // 8
 * ```
 */
export function parseModelConfig(raw: unknown, file: string): ModelConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ModelConfigError(file, null, "is not a JSON object");
  }
  const r = raw as Record<string, unknown>;
  const modelType = r.model_type;
  if (typeof modelType !== "string") {
    throw new ModelConfigError(
      file,
      "model_type",
      `is ${describe(modelType)}; expected one of ${SUPPORTED_MODEL_TYPES.join(", ")}`,
    );
  }
  if (!(SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType)) {
    throw new ModelConfigError(
      file,
      "model_type",
      `'${modelType}' is not supported; supported model types: ${SUPPORTED_MODEL_TYPES.join(", ")}`,
    );
  }
  const type = modelType as ModelType;
  const d = DEFAULTS[type];
  const f = new Fields(r, file);

  const hiddenSize = f.positiveInt("hidden_size");
  const numAttentionHeads = f.positiveInt("num_attention_heads");
  const numKeyValueHeads = f.positiveInt(
    "num_key_value_heads",
    d.numKeyValueHeads ?? numAttentionHeads,
    numAttentionHeads,
  );
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    throw new ModelConfigError(
      file,
      "num_key_value_heads",
      `${numKeyValueHeads} does not divide num_attention_heads ${numAttentionHeads}`,
    );
  }
  const derivedHeadDim = Math.floor(hiddenSize / numAttentionHeads);
  const headDim = f.positiveInt("head_dim", d.headDim ?? derivedHeadDim, derivedHeadDim);

  const hiddenAct = r.hidden_act ?? "silu";
  // transformers maps "swish" to the same SiLU module.
  if (hiddenAct !== "silu" && hiddenAct !== "swish") {
    throw new ModelConfigError(
      file,
      "hidden_act",
      `${JSON.stringify(hiddenAct)} is not supported; llmc implements silu only`,
    );
  }

  const ropeParams = r.rope_parameters;
  const ropeSource = isObject(ropeParams) ? "rope_parameters" : "rope_scaling";
  const ropeTheta = isObject(ropeParams) && ropeParams.rope_theta !== undefined
    ? new Fields(ropeParams, file, "rope_parameters.").positiveNumber("rope_theta")
    : f.positiveNumber("rope_theta", 10000);

  let slidingWindow: number | null = null;
  if (type === "mistral") {
    slidingWindow = f.nullablePositiveInt("sliding_window", 4096);
  } else if (type === "mixtral") {
    slidingWindow = f.nullablePositiveInt("sliding_window", null);
  } else if (type !== "llama" && f.bool("use_sliding_window", false)) {
    slidingWindow = f.nullablePositiveInt("sliding_window", 4096);
  }
  const numHiddenLayers = f.positiveInt("num_hidden_layers");

  return {
    modelType: type,
    hiddenSize,
    // The MoE configs default it (qwen: the dense layers' MLP; mixtral: every expert's).
    intermediateSize: f.positiveInt("intermediate_size", INTERMEDIATE_DEFAULTS[type]),
    numHiddenLayers,
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    vocabSize: f.positiveInt("vocab_size"),
    rmsNormEps: f.positiveNumber("rms_norm_eps", 1e-6),
    ropeTheta,
    ropeScaling: parseRopeScaling(r[ropeSource], file, ropeSource),
    maxPositionEmbeddings: f.positiveInt("max_position_embeddings", d.maxPositionEmbeddings),
    tieWordEmbeddings: f.bool("tie_word_embeddings", false),
    attentionBias: type === "qwen2"
      ? true
      : type === "qwen2_moe"
      ? f.bool("qkv_bias", true)
      : type === "mistral" || type === "mixtral"
      ? false
      : f.bool("attention_bias", false),
    mlpBias: type === "llama" ? f.bool("mlp_bias", false) : false,
    qkNorm: type === "qwen3" || type === "qwen3_moe",
    moe: parseMoe(type, f, numHiddenLayers),
    slidingWindow,
    hiddenAct: "silu",
    bosTokenId: f.tokenId("bos_token_id", d.bosTokenId),
    eosTokenIds: f.tokenIds("eos_token_id", d.eosTokenId),
    torchDtype: f.string("torch_dtype", null) ?? f.string("dtype", null) ?? "float32",
    raw: r,
  };
}

// transformers' MoE config fields and defaults (configuration_mixtral.py,
// configuration_qwen2_moe.py, configuration_qwen3_moe.py).
function parseMoe(type: ModelType, f: Fields, layers: number): MoeConfig | null {
  if (type === "mixtral") {
    const numExperts = f.positiveInt("num_local_experts", 8);
    return {
      numExperts,
      topK: f.topK("num_experts_per_tok", 2, numExperts),
      expertIntermediateSize: f.positiveInt("intermediate_size", 14336),
      // MixtralSparseMoeBlock always divides by the top-k sum.
      normTopkProb: true,
      sharedExpertIntermediateSize: null,
      decoderSparseStep: 1,
      mlpOnlyLayers: [],
    };
  }
  if (type !== "qwen2_moe" && type !== "qwen3_moe") return null;
  const qwen2 = type === "qwen2_moe";
  const numExperts = f.positiveInt("num_experts", qwen2 ? 60 : 128);
  return {
    numExperts,
    topK: f.topK("num_experts_per_tok", qwen2 ? 4 : 8, numExperts),
    expertIntermediateSize: f.positiveInt("moe_intermediate_size", qwen2 ? 1408 : 768),
    normTopkProb: f.bool("norm_topk_prob", false),
    sharedExpertIntermediateSize: qwen2
      ? f.positiveInt("shared_expert_intermediate_size", 5632)
      : null,
    decoderSparseStep: f.positiveInt("decoder_sparse_step", 1),
    mlpOnlyLayers: f.layerList("mlp_only_layers", layers),
  };
}

/**
 * Parses a `rope_scaling` (or `rope_parameters`) object; null or absent is
 * the default RoPE. The variant is read from `rope_type`, or the legacy `type`.
 *
 * @param v the JSON value
 * @param file the config file, for messages
 * @param field the field name, for messages
 * @returns the scaling variant
 * @throws {ModelConfigError} for unsupported types or missing parameters
 * @example
 * ```ts
 * import { parseRopeScaling } from "./model_config.ts";
 * parseRopeScaling({ type: "linear", factor: 2 }, "config.json", "rope_scaling");
 * // { type: "linear", factor: 2 }
 * ```
 */
export function parseRopeScaling(v: unknown, file: string, field = "rope_scaling"): RopeScaling {
  if (v === undefined || v === null) return { type: "default" };
  if (!isObject(v)) {
    throw new ModelConfigError(file, field, `is ${describe(v)}; expected an object or null`);
  }
  const kind = v.rope_type ?? v.type ?? "default";
  const f = new Fields(v, file, `${field}.`);
  switch (kind) {
    case "default":
      return { type: "default" };
    case "linear":
      return { type: "linear", factor: f.positiveNumber("factor") };
    case "dynamic": {
      const omp = f.nullablePositiveInt("original_max_position_embeddings", null);
      return omp === null ? { type: "dynamic", factor: f.positiveNumber("factor") } : {
        type: "dynamic",
        factor: f.positiveNumber("factor"),
        originalMaxPositionEmbeddings: omp,
      };
    }
    case "llama3":
      return {
        type: "llama3",
        factor: f.positiveNumber("factor"),
        lowFreqFactor: f.positiveNumber("low_freq_factor"),
        highFreqFactor: f.positiveNumber("high_freq_factor"),
        originalMaxPositionEmbeddings: f.positiveInt("original_max_position_embeddings"),
      };
    default:
      throw new ModelConfigError(
        file,
        `${field}.rope_type`,
        `${JSON.stringify(kind)} is not supported; supported: default, linear, dynamic, llama3`,
      );
  }
}

/** Typed access to one JSON object's fields, with messages naming them. */
class Fields {
  constructor(
    private readonly r: Record<string, unknown>,
    private readonly file: string,
    private readonly prefix = "",
  ) {}

  #fail(key: string, msg: string): never {
    throw new ModelConfigError(this.file, this.prefix + key, msg);
  }

  /** Missing: the fallback (or an error without one); null: `nullMeans` (or an error). */
  positiveInt(key: string, fallback?: number, nullMeans?: number): number {
    const v = this.r[key];
    if (v === undefined) {
      if (fallback === undefined) this.#fail(key, "is missing; expected a positive integer");
      return fallback;
    }
    if (v === null) {
      if (nullMeans === undefined) this.#fail(key, "is null; expected a positive integer");
      return nullMeans;
    }
    if (!Number.isSafeInteger(v) || (v as number) <= 0) {
      this.#fail(key, `is ${JSON.stringify(v)}; expected a positive integer`);
    }
    return v as number;
  }

  /** Missing: the fallback; null: null. */
  nullablePositiveInt(key: string, fallback: number | null): number | null {
    return this.r[key] === null
      ? null
      : this.r[key] === undefined
      ? fallback
      : this.positiveInt(key);
  }

  positiveNumber(key: string, fallback?: number): number {
    const v = this.r[key];
    if (v === undefined || v === null) {
      if (fallback === undefined) this.#fail(key, "is missing; expected a positive number");
      return fallback;
    }
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      this.#fail(key, `is ${JSON.stringify(v)}; expected a positive number`);
    }
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.r[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "boolean") this.#fail(key, `is ${JSON.stringify(v)}; expected true or false`);
    return v;
  }

  string(key: string, fallback: string | null): string | null {
    const v = this.r[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "string") this.#fail(key, `is ${JSON.stringify(v)}; expected a string`);
    return v;
  }

  /** Experts per token: a positive integer up to the number of experts. */
  topK(key: string, fallback: number, experts: number): number {
    const k = this.positiveInt(key, fallback);
    if (k > experts) this.#fail(key, `is ${k}; expected at most the ${experts} experts`);
    return k;
  }

  /** A list of layer indices in [0, layers); missing or null: empty. */
  layerList(key: string, layers: number): number[] {
    const v = this.r[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || !v.every((k) => Number.isSafeInteger(k) && k >= 0 && k < layers)) {
      this.#fail(
        key,
        `is ${JSON.stringify(v)}; expected a list of layer indices in [0, ${layers})`,
      );
    }
    return [...v] as number[];
  }

  tokenId(key: string, fallback: number | null): number | null {
    const v = this.r[key];
    if (v === undefined) return fallback;
    if (v === null) return null;
    if (!Number.isSafeInteger(v) || (v as number) < 0) {
      this.#fail(
        key,
        `is ${JSON.stringify(v)}; expected a token id (non-negative integer) or null`,
      );
    }
    return v as number;
  }

  tokenIds(key: string, fallback: number | null): number[] {
    const v = this.r[key];
    if (v === undefined) return fallback === null ? [] : [fallback];
    if (v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    for (const id of list) {
      if (!Number.isSafeInteger(id) || id < 0) {
        this.#fail(key, `is ${JSON.stringify(v)}; expected a token id, a list of them, or null`);
      }
    }
    return [...list] as number[];
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined) return "missing";
  return JSON.stringify(v);
}
