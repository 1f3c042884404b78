/**
 * Seeded random Llama-family checkpoints (and their mixtures of experts:
 * mixtral, qwen2_moe, qwen3_moe, with transformers' tensor names) for tests, benches and the demo's
 * fallback: a config.json and safetensors shards written into a folder.
 * Tensors are generated and streamed to disk one at a time, so a model of
 * several GB costs one tensor of memory.
 *
 * Weights are uniform in ±1/√fan_in so activations stay O(1) through the
 * layers and attention is far from uniform; norm weights are around 1.
 *
 * @module
 */

import { CAUSAL_LM_ARCHITECTURES } from "../io/model_config.ts";
import { ShardedSafetensorsWriter } from "../io/safetensors_write.ts";
import { seededRandom } from "./seeded_random.ts";

/** The mixture of experts of a synthetic mixtral / qwen2_moe / qwen3_moe model. */
export interface SyntheticMoeSpec {
  /** Routed experts per sparse layer. */
  experts: number;
  /** Experts per token. */
  topK: number;
  /** qwen: `moe_intermediate_size` (mixtral's experts use `intermediate`). */
  expertIntermediate?: number;
  /** qwen2_moe: `shared_expert_intermediate_size` (default `intermediate`). */
  sharedIntermediate?: number;
  /** qwen: `norm_topk_prob` (default true). */
  normTopkProb?: boolean;
  /** qwen: `decoder_sparse_step` (default 1). */
  decoderSparseStep?: number;
  /** qwen: `mlp_only_layers` (default none). */
  mlpOnlyLayers?: number[];
  /**
   * Experts (each ≥ topK) the router never picks: their router rows and
   * those of experts 0…topK−1 are made equal, so at least topK experts tie
   * with each of them and win the tie by their lower index.
   */
  unrouted?: number[];
}

/** The shape and architecture of a synthetic model. */
export interface SyntheticSpec {
  modelType: "llama" | "mistral" | "qwen2" | "qwen3" | "mixtral" | "qwen2_moe" | "qwen3_moe";
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim?: number;
  intermediate: number;
  vocab: number;
  tied: boolean;
  maxPositions?: number;
  ropeTheta?: number;
  /** Written verbatim as config.json's rope_scaling. */
  ropeScaling?: Record<string, unknown> | null;
  slidingWindow?: number | null;
  /** qwen2/qwen3: the first layers that attend fully (default: all layers). */
  maxWindowLayers?: number;
  /** llama's attention_bias (qwen2 always has q/k/v biases). */
  attentionBias?: boolean;
  mlpBias?: boolean;
  seed?: number;
  /** Required for mixtral / qwen2_moe / qwen3_moe. */
  moe?: SyntheticMoeSpec;
  /** Shard size bound of the written checkpoint (default: the writer's 5 GB). */
  maxShardBytes?: number;
  /**
   * When set, every weight but the norms (embedding, Linears, routers,
   * biases) is drawn from N(0, weightStd²) and every norm weight is exactly
   * 1, as the benchmark models of llmc's performance issue (weightStd 0.02);
   * by default weights are uniform in ±1/√fan_in and norms around 1.
   */
  weightStd?: number;
}

/** A written synthetic model. */
export interface SyntheticModel {
  dir: string;
  /** Removes the folder. */
  remove(): Promise<void>;
}

function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Writes a synthetic checkpoint into a new temporary folder (or `dir`).
 *
 * @param spec the model's shape and architecture
 * @param dir an existing empty folder to write into; a new temporary one by default
 * @returns the folder and a function that removes it
 * @example
 * ```ts ignore
 * import { writeSyntheticModel } from "./synthetic_model.ts";
 * const m = await writeSyntheticModel({
 *   modelType: "llama", hidden: 64, layers: 2, heads: 4, kvHeads: 2,
 *   intermediate: 128, vocab: 256, tied: true,
 * });
 * await m.remove();
 * ```
 */
export async function writeSyntheticModel(
  spec: SyntheticSpec,
  dir?: string,
): Promise<SyntheticModel> {
  const random = seededRandom(spec.seed ?? 1234);
  const uniform = (n: number, lo: number, hi: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * random();
    return a;
  };
  const std = spec.weightStd;
  if (std !== undefined && !(std > 0 && Number.isFinite(std))) {
    throw new Error(`synthetic weightStd must be a positive number, got ${std}`);
  }
  // Box–Muller on the seeded uniforms (1 − u keeps the logarithm finite).
  const normal = (n: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const r = std! * Math.sqrt(-2 * Math.log(1 - random()));
      const t = 2 * Math.PI * random();
      a[i] = r * Math.cos(t);
      if (i + 1 < n) a[i + 1] = r * Math.sin(t);
    }
    return a;
  };
  // Weights in ±bound (or normal), norm weights in [0.5, 1.5) (or exactly 1).
  const weight = (n: number, bound: number) =>
    std === undefined ? uniform(n, -bound, bound) : normal(n);
  const normWeight = (n: number) =>
    std === undefined ? uniform(n, 0.5, 1.5) : new Float32Array(n).fill(1);
  const H = spec.hidden;
  const hd = spec.headDim ?? H / spec.heads;
  const I = spec.intermediate;
  const outDir = dir ?? await Deno.makeTempDir({ prefix: "llmc_synthetic_" });
  const writer = new ShardedSafetensorsWriter(outDir, { maxShardBytes: spec.maxShardBytes });
  const add = (name: string, shape: number[], data: Float32Array) =>
    writer.add(name, "F32", shape, f32Bytes(data));
  const linear = async (name: string, outF: number, inF: number, bias: boolean) => {
    await add(`${name}.weight`, [outF, inF], weight(outF * inF, 1 / Math.sqrt(inF)));
    if (bias) await add(`${name}.bias`, [outF], weight(outF, 0.5));
  };

  await add("model.embed_tokens.weight", [spec.vocab, H], weight(spec.vocab * H, 1));
  const moe = spec.moe;
  const isMoe = spec.modelType === "mixtral" || spec.modelType === "qwen2_moe" ||
    spec.modelType === "qwen3_moe";
  if (isMoe !== (moe !== undefined)) {
    throw new Error(`synthetic ${spec.modelType}: give moe exactly for the MoE model types`);
  }
  const qkvBias = spec.modelType === "qwen2" || spec.modelType === "qwen2_moe" ||
    (spec.attentionBias ?? false);
  const oBias = spec.modelType === "llama" && (spec.attentionBias ?? false);
  const sparse = (k: number) =>
    moe !== undefined && !(moe.mlpOnlyLayers ?? []).includes(k) &&
    (k + 1) % (moe.decoderSparseStep ?? 1) === 0;
  const expertI = spec.modelType === "mixtral" ? I : moe?.expertIntermediate ?? I;
  const expert = (p: string, e: number) =>
    spec.modelType === "mixtral"
      ? [
        `${p}.block_sparse_moe.experts.${e}.w1`,
        `${p}.block_sparse_moe.experts.${e}.w3`,
        `${p}.block_sparse_moe.experts.${e}.w2`,
      ]
      : [
        `${p}.mlp.experts.${e}.gate_proj`,
        `${p}.mlp.experts.${e}.up_proj`,
        `${p}.mlp.experts.${e}.down_proj`,
      ];
  const router = (p: string) =>
    spec.modelType === "mixtral" ? `${p}.block_sparse_moe.gate` : `${p}.mlp.gate`;
  const writeRouter = async (name: string) => {
    const { experts, topK, unrouted = [] } = moe!;
    const w = weight(experts * H, 1 / Math.sqrt(H));
    for (const e of unrouted) {
      if (!(e >= topK && e < experts)) {
        throw new Error(`synthetic moe.unrouted: expert ${e} is not in [topK, experts)`);
      }
    }
    // Only when asked: tied rows make top-k depend on tie-breaking, which
    // implementations do not share (torch.topk on CPU often prefers the higher index).
    if (unrouted.length > 0) {
      for (const e of [...Array(topK).keys(), ...unrouted]) w.copyWithin(e * H, 0, H);
    }
    await add(`${name}.weight`, [experts, H], w);
  };
  const mlpBias = spec.modelType === "llama" && (spec.mlpBias ?? false);
  for (let k = 0; k < spec.layers; k++) {
    const p = `model.layers.${k}`;
    await add(`${p}.input_layernorm.weight`, [H], normWeight(H));
    await linear(`${p}.self_attn.q_proj`, spec.heads * hd, H, qkvBias);
    await linear(`${p}.self_attn.k_proj`, spec.kvHeads * hd, H, qkvBias);
    await linear(`${p}.self_attn.v_proj`, spec.kvHeads * hd, H, qkvBias);
    await linear(`${p}.self_attn.o_proj`, H, spec.heads * hd, oBias);
    if (spec.modelType === "qwen3" || spec.modelType === "qwen3_moe") {
      await add(`${p}.self_attn.q_norm.weight`, [hd], normWeight(hd));
      await add(`${p}.self_attn.k_norm.weight`, [hd], normWeight(hd));
    }
    await add(`${p}.post_attention_layernorm.weight`, [H], normWeight(H));
    if (sparse(k)) {
      await writeRouter(router(p));
      for (let e = 0; e < moe!.experts; e++) {
        const [gate, up, down] = expert(p, e);
        await linear(gate, expertI, H, false);
        await linear(up, expertI, H, false);
        await linear(down, H, expertI, false);
      }
      if (spec.modelType === "qwen2_moe") {
        const Is = moe!.sharedIntermediate ?? I;
        await linear(`${p}.mlp.shared_expert.gate_proj`, Is, H, false);
        await linear(`${p}.mlp.shared_expert.up_proj`, Is, H, false);
        await linear(`${p}.mlp.shared_expert.down_proj`, H, Is, false);
        await linear(`${p}.mlp.shared_expert_gate`, 1, H, false);
      }
      continue;
    }
    await linear(`${p}.mlp.gate_proj`, I, H, mlpBias);
    await linear(`${p}.mlp.up_proj`, I, H, mlpBias);
    await linear(`${p}.mlp.down_proj`, H, I, mlpBias);
  }
  await add("model.norm.weight", [H], normWeight(H));
  if (!spec.tied) await linear("lm_head", spec.vocab, H, false);

  const config: Record<string, unknown> = {
    architectures: [CAUSAL_LM_ARCHITECTURES[spec.modelType]],
    model_type: spec.modelType,
    hidden_size: H,
    intermediate_size: I,
    num_hidden_layers: spec.layers,
    num_attention_heads: spec.heads,
    num_key_value_heads: spec.kvHeads,
    head_dim: hd,
    vocab_size: spec.vocab,
    max_position_embeddings: spec.maxPositions ?? 512,
    rms_norm_eps: 1e-6,
    rope_theta: spec.ropeTheta ?? 10000,
    rope_scaling: spec.ropeScaling ?? null,
    hidden_act: "silu",
    tie_word_embeddings: spec.tied,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: "float32",
  };
  if (spec.modelType === "llama") {
    config.attention_bias = spec.attentionBias ?? false;
    config.mlp_bias = spec.mlpBias ?? false;
  }
  if (spec.modelType === "mistral" || spec.modelType === "mixtral") {
    config.sliding_window = spec.slidingWindow ?? null;
  }
  if (spec.modelType === "mixtral") {
    config.num_local_experts = moe!.experts;
    config.num_experts_per_tok = moe!.topK;
  } else if (moe !== undefined) {
    config.num_experts = moe.experts;
    config.num_experts_per_tok = moe.topK;
    config.moe_intermediate_size = expertI;
    config.norm_topk_prob = moe.normTopkProb ?? true;
    config.decoder_sparse_step = moe.decoderSparseStep ?? 1;
    config.mlp_only_layers = moe.mlpOnlyLayers ?? [];
    if (spec.modelType === "qwen2_moe") {
      config.shared_expert_intermediate_size = moe.sharedIntermediate ?? I;
      config.qkv_bias = true;
    }
  }
  if (spec.modelType !== "llama" && spec.modelType !== "mistral" && spec.modelType !== "mixtral") {
    config.use_sliding_window = spec.slidingWindow != null;
    config.sliding_window = spec.slidingWindow ?? null;
    config.max_window_layers = spec.maxWindowLayers ?? spec.layers;
  }

  await Deno.writeTextFile(`${outDir}/config.json`, JSON.stringify(config, null, 2));
  await writer.finish();
  return { dir: outDir, remove: () => Deno.remove(outDir, { recursive: true }) };
}
