/**
 * Seeded random Llama-family checkpoints for tests, benches and the demo's
 * fallback: a config.json and safetensors shards written into a folder.
 * Tensors are generated and streamed to disk one at a time, so a model of
 * several GB costs one tensor of memory.
 *
 * Weights are uniform in ±1/√fan_in so activations stay O(1) through the
 * layers and attention is far from uniform; norm weights are around 1.
 *
 * @module
 */

import { ShardedSafetensorsWriter } from "../io/safetensors_write.ts";
import { seededRandom } from "./seeded_random.ts";

/** The shape and architecture of a synthetic model. */
export interface SyntheticSpec {
  modelType: "llama" | "mistral" | "qwen2" | "qwen3";
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
  /** Shard size bound of the written checkpoint (default: the writer's 5 GB). */
  maxShardBytes?: number;
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
  const H = spec.hidden;
  const hd = spec.headDim ?? H / spec.heads;
  const I = spec.intermediate;
  const outDir = dir ?? await Deno.makeTempDir({ prefix: "llmc_synthetic_" });
  const writer = new ShardedSafetensorsWriter(outDir, { maxShardBytes: spec.maxShardBytes });
  const add = (name: string, shape: number[], data: Float32Array) =>
    writer.add(name, "F32", shape, f32Bytes(data));
  const linear = async (name: string, outF: number, inF: number, bias: boolean) => {
    const a = 1 / Math.sqrt(inF);
    await add(`${name}.weight`, [outF, inF], uniform(outF * inF, -a, a));
    if (bias) await add(`${name}.bias`, [outF], uniform(outF, -0.5, 0.5));
  };

  await add("model.embed_tokens.weight", [spec.vocab, H], uniform(spec.vocab * H, -1, 1));
  const qkvBias = spec.modelType === "qwen2" || (spec.attentionBias ?? false);
  const oBias = spec.modelType === "llama" && (spec.attentionBias ?? false);
  const mlpBias = spec.modelType === "llama" && (spec.mlpBias ?? false);
  for (let k = 0; k < spec.layers; k++) {
    const p = `model.layers.${k}`;
    await add(`${p}.input_layernorm.weight`, [H], uniform(H, 0.5, 1.5));
    await linear(`${p}.self_attn.q_proj`, spec.heads * hd, H, qkvBias);
    await linear(`${p}.self_attn.k_proj`, spec.kvHeads * hd, H, qkvBias);
    await linear(`${p}.self_attn.v_proj`, spec.kvHeads * hd, H, qkvBias);
    await linear(`${p}.self_attn.o_proj`, H, spec.heads * hd, oBias);
    if (spec.modelType === "qwen3") {
      await add(`${p}.self_attn.q_norm.weight`, [hd], uniform(hd, 0.5, 1.5));
      await add(`${p}.self_attn.k_norm.weight`, [hd], uniform(hd, 0.5, 1.5));
    }
    await add(`${p}.post_attention_layernorm.weight`, [H], uniform(H, 0.5, 1.5));
    await linear(`${p}.mlp.gate_proj`, I, H, mlpBias);
    await linear(`${p}.mlp.up_proj`, I, H, mlpBias);
    await linear(`${p}.mlp.down_proj`, H, I, mlpBias);
  }
  await add("model.norm.weight", [H], uniform(H, 0.5, 1.5));
  if (!spec.tied) await linear("lm_head", spec.vocab, H, false);

  const config: Record<string, unknown> = {
    architectures: [
      {
        llama: "LlamaForCausalLM",
        mistral: "MistralForCausalLM",
        qwen2: "Qwen2ForCausalLM",
        qwen3: "Qwen3ForCausalLM",
      }[spec.modelType],
    ],
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
  if (spec.modelType === "mistral") config.sliding_window = spec.slidingWindow ?? null;
  if (spec.modelType === "qwen2" || spec.modelType === "qwen3") {
    config.use_sliding_window = spec.slidingWindow != null;
    config.sliding_window = spec.slidingWindow ?? null;
    config.max_window_layers = spec.maxWindowLayers ?? spec.layers;
  }

  await Deno.writeTextFile(`${outDir}/config.json`, JSON.stringify(config, null, 2));
  await writer.finish();
  return { dir: outDir, remove: () => Deno.remove(outDir, { recursive: true }) };
}
