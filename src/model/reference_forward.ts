/**
 * A plain TypeScript forward pass of a Llama-family decoder on the CPU, written
 * to be read next to llama2.c and transformers' modeling_llama.py. The GPU
 * decoder is tested against it; nothing else should use it, because it holds
 * every weight in memory and runs single-threaded scalar loops.
 *
 * Supported: llama (every rope_scaling type), mistral and qwen sliding
 * windows, qwen2 (q/k/v biases), qwen3 (per-head q_norm/k_norm), tied and
 * untied lm_head, GQA and MHA, and the sparse MLPs of mixtral, qwen2_moe and
 * qwen3_moe (reference_moe.ts). Biases are used where the architecture has
 * them (see layer_tensors.ts), exactly like the GPU decoder.
 *
 * @module
 */

import type { ModelConfig } from "../io/model_config.ts";
import { ropeTable } from "./rope.ts";
import type { WeightSource } from "./weight_source.ts";
import { EMBED_TOKENS, FINAL_NORM, layerPrefix, LM_HEAD } from "./module_names.ts";
import { readLayerTensors } from "./layer_tensors.ts";
import { slidingWindowForLayer } from "./sliding_window.ts";
import { DecoderModelError } from "./model_error.ts";
import { attention, linear, rmsnorm, rope, siluMul } from "./reference_ops.ts";
import { isSparseLayer } from "./moe_names.ts";
import { referenceMoeBlock } from "./reference_moe.ts";

/** A layer's tensors by full HF name, e.g. `model.layers.0.mlp.up_proj.weight`. */
export type ReferenceTensors = Map<string, Float32Array>;

/** Options of {@link referenceForward}. */
export interface ReferenceForwardOptions {
  /** Equal-length sequences packed in `ids`; default 1. */
  batch?: number;
  /** Tensors (by full HF name) used instead of the checkpoint's. */
  weights?: Map<string, Float32Array>;
}

/** Outputs of {@link referenceForward}. */
export interface ReferenceForwardResult {
  /** [batch · seqLen, vocab] */
  logits: Float32Array;
  /**
   * [numLayers + 1] tensors of [batch · seqLen, hidden]: the embedding output,
   * then each decoder layer's raw output (the last one before the final norm).
   */
  hidden: Float32Array[];
  /** The final RMSNorm's output, [batch · seqLen, hidden]. */
  normed: Float32Array;
}

function tensor(weights: ReferenceTensors, name: string): Float32Array {
  const t = weights.get(name);
  if (!t) throw new DecoderModelError(`${name}: tensor missing from the layer's weights`);
  return t;
}

/**
 * One decoder layer on the CPU:
 * `h = x + o_proj(attn(rope(q), rope(k), v))` with q/k/v from
 * `rmsnorm(x)`, then `out = h + down(silu(gate(rmsnorm(h))) · up(rmsnorm(h)))`.
 *
 * @param config the model config
 * @param weights the layer's tensors by full HF name (`readLayerTensors`)
 * @param k the layer index (for the tensor names)
 * @param x the layer's input, [batch · seqLen, hidden]
 * @param batch the number of equal-length sequences in x
 * @param seqLen the tokens per sequence
 * @returns the layer's output, [batch · seqLen, hidden]
 * @example
 * ```ts ignore
 * import { referenceLayer } from "./reference_forward.ts";
 * import { readLayerTensors } from "./layer_tensors.ts";
 * const w = await readLayerTensors(model, 0);
 * const y = referenceLayer(model.config, w, 0, x, 1, 16);
 * ```
 */
export function referenceLayer(
  config: ModelConfig,
  weights: ReferenceTensors,
  k: number,
  x: Float32Array,
  batch: number,
  seqLen: number,
): Float32Array {
  const p = layerPrefix(k);
  const rows = batch * seqLen;
  const H = config.hiddenSize;
  const I = config.intermediateSize;
  const { numAttentionHeads: heads, numKeyValueHeads: kvHeads, headDim } = config;
  const eps = config.rmsNormEps;
  const lin = (input: Float32Array, name: string, inF: number, outF: number) =>
    linear(input, tensor(weights, `${name}.weight`), weights.get(`${name}.bias`), rows, inF, outF);

  // attention
  const xn = rmsnorm(x, tensor(weights, `${p}.input_layernorm.weight`), rows, eps);
  let q = lin(xn, `${p}.self_attn.q_proj`, H, heads * headDim);
  let kk = lin(xn, `${p}.self_attn.k_proj`, H, kvHeads * headDim);
  const v = lin(xn, `${p}.self_attn.v_proj`, H, kvHeads * headDim);
  if (config.qkNorm) {
    q = rmsnorm(q, tensor(weights, `${p}.self_attn.q_norm.weight`), rows * heads, eps);
    kk = rmsnorm(kk, tensor(weights, `${p}.self_attn.k_norm.weight`), rows * kvHeads, eps);
  }
  const table = ropeTable(config, seqLen);
  rope(q, table, rows, heads, headDim);
  rope(kk, table, rows, kvHeads, headDim);
  const att = attention(q, kk, v, {
    sequences: batch,
    seqLen,
    heads,
    kvHeads,
    headDim,
    window: slidingWindowForLayer(config, k),
  });
  const o = lin(att, `${p}.self_attn.o_proj`, heads * headDim, H);
  const h = new Float32Array(rows * H);
  for (let i = 0; i < h.length; i++) h[i] = x[i] + o[i];

  // MLP
  const hn = rmsnorm(h, tensor(weights, `${p}.post_attention_layernorm.weight`), rows, eps);
  if (isSparseLayer(config, k)) {
    const moe = referenceMoeBlock(config, weights, k, hn, rows);
    for (let i = 0; i < h.length; i++) h[i] += moe[i];
    return h;
  }
  const gate = lin(hn, `${p}.mlp.gate_proj`, H, I);
  const up = lin(hn, `${p}.mlp.up_proj`, H, I);
  const down = lin(siluMul(gate, up), `${p}.mlp.down_proj`, I, H);
  for (let i = 0; i < h.length; i++) h[i] += down[i];
  return h;
}

/**
 * The whole forward pass on the CPU: embed, every decoder layer, the final
 * norm and the classifier (the embedding table when `tie_word_embeddings`).
 *
 * @param source the checkpoint
 * @param ids token ids, [batch · seqLen]
 * @param options the batch size and substituted tensors
 * @returns logits, every layer's hidden state and the normed last one
 * @example
 * ```ts ignore
 * import { referenceForward } from "./reference_forward.ts";
 * import { HfModel } from "../io/hf_model.ts";
 * const model = await HfModel.open("/models/stories260K");
 * const { logits } = await referenceForward(model, new Int32Array([1, 403, 407]));
 * ```
 */
export async function referenceForward(
  source: WeightSource,
  ids: Int32Array,
  options: ReferenceForwardOptions = {},
): Promise<ReferenceForwardResult> {
  const config = source.config;
  const batch = options.batch ?? 1;
  const rows = ids.length;
  const seqLen = rows / batch;
  const H = config.hiddenSize;
  const V = config.vocabSize;
  const read = (name: string) => options.weights?.get(name) ?? source.readF32(name);

  const embed = await read(EMBED_TOKENS);
  let x: Float32Array = new Float32Array(rows * H);
  for (let r = 0; r < rows; r++) {
    const id = ids[r];
    if (!(id >= 0 && id < V)) throw new DecoderModelError(`ids[${r}] = ${id} is outside [0, ${V})`);
    x.set(embed.subarray(id * H, (id + 1) * H), r * H);
  }
  const hidden = [x];
  for (let k = 0; k < config.numHiddenLayers; k++) {
    const weights = await readLayerTensors(source, k, options.weights);
    x = referenceLayer(config, weights, k, x, batch, seqLen);
    hidden.push(x);
  }
  const normed = rmsnorm(x, await read(FINAL_NORM), rows, config.rmsNormEps);
  const head = config.tieWordEmbeddings ? embed : await read(LM_HEAD);
  const logits = linear(normed, head, undefined, rows, H, V);
  return { logits, hidden, normed };
}
