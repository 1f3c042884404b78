/**
 * One Llama-family decoder layer on the GPU, recorded into a command batch.
 * It reads top to bottom like modeling_llama.py:
 *
 *   h   = x + o_proj(attention(rope(q_proj(rmsnorm(x))), rope(k_proj(…)), v_proj(…)))
 *   out = h + down_proj(silu(gate_proj(rmsnorm(h))) · up_proj(rmsnorm(h)))
 *
 * with Qwen3's per-head q_norm/k_norm before RoPE and biases where the
 * architecture has them. The sparse layers of mixture-of-experts models
 * replace the MLP by moe_block.ts.
 *
 * @module
 */

import type { CommandBatch } from "../gpu/batch.ts";
import { add, matmul } from "../gpu/ops.ts";
import type { GpuTensor } from "../gpu/tensor.ts";
import type { ModelConfig } from "../io/model_config.ts";
import type { LayerWeights } from "./layer_weights.ts";
import type { ModelOps } from "./model_ops.ts";
import { type LayerLinear, layerPrefix, LINEAR_INPUT_GROUPS } from "./module_names.ts";
import { encodeMoeBlock } from "./moe_block.ts";
import { isSparseLayer } from "./moe_names.ts";
import { slidingWindowForLayer } from "./sliding_window.ts";
import type { LinearInputTransform, TapListener } from "./taps.ts";

/** What a layer needs besides its weights and input. */
export interface DecoderLayerContext {
  /** The model config. */
  config: ModelConfig;
  /** The model kernels. */
  ops: ModelOps;
  /** RoPE cos table for this seqLen, [seqLen, headDim/2]. */
  cos: GpuTensor;
  /** RoPE sin table for this seqLen, [seqLen, headDim/2]. */
  sin: GpuTensor;
  /** Sequences in the input. */
  sequences: number;
  /** Tokens per sequence. */
  seqLen: number;
  /** Receives the layer's activations (see taps.ts). */
  taps?: TapListener;
  /** Replaces Linear inputs (see taps.ts). */
  transformLinearInput?: LinearInputTransform;
  /**
   * MoE layers: whether every expert's input taps show all tokens (default)
   * or only those routed to it (see moe_block.ts).
   */
  moeCalibrateAllExperts?: boolean;
}

const [QKV, O, GATE_UP, DOWN] = LINEAR_INPUT_GROUPS;

/**
 * Records decoder layer `weights.layer` applied to `x` into `batch`. Nothing
 * is submitted; intermediates are destroyed once the batch is submitted.
 *
 * @param batch where the kernels are recorded
 * @param ctx config, kernels, RoPE tables, shapes and hooks
 * @param weights the layer's GPU weights
 * @param x the layer's input, [sequences · seqLen, hidden]; not modified
 * @returns the layer's output, [sequences · seqLen, hidden]
 * @example
 * ```ts ignore
 * import { encodeDecoderLayer } from "./decoder_layer.ts";
 * const out = encodeDecoderLayer(batch, ctx, weights, hidden);
 * batch.submit();
 * ```
 */
export function encodeDecoderLayer(
  batch: CommandBatch,
  ctx: DecoderLayerContext,
  weights: LayerWeights,
  x: GpuTensor,
): GpuTensor {
  const { config, ops, sequences, seqLen } = ctx;
  const { numAttentionHeads: heads, numKeyValueHeads: kvHeads, headDim } = config;
  const eps = config.rmsNormEps;
  const layer = weights.layer;
  const prefix = layerPrefix(layer);
  const temps: GpuTensor[] = [];
  const temp = (t: GpuTensor) => (temps.push(t), t);

  // The input every Linear of `group` reads, after the tap and the transform.
  const linearInput = (group: readonly LayerLinear[], input: GpuTensor): GpuTensor => {
    const modules = group.map((l) => `${prefix}.${l}`);
    ctx.taps?.({ kind: "linear_input", layer, modules, x: input, batch, sequences, seqLen });
    const transformed = ctx.transformLinearInput?.(modules, input, batch) ?? input;
    return transformed === input ? input : temp(transformed);
  };
  const linear = (l: LayerLinear, input: GpuTensor) =>
    temp(matmul(batch, input, weights.linear(l), weights.bias(l)));

  try {
    // Attention block.
    const xn = temp(ops.rmsnorm(batch, x, weights.norm("input_layernorm"), eps));
    const attnIn = linearInput(QKV, xn);
    let q = linear("self_attn.q_proj", attnIn);
    let k = linear("self_attn.k_proj", attnIn);
    const v = linear("self_attn.v_proj", attnIn);
    if (config.qkNorm) {
      q = temp(ops.rmsnorm(batch, q, weights.norm("self_attn.q_norm"), eps));
      k = temp(ops.rmsnorm(batch, k, weights.norm("self_attn.k_norm"), eps));
    }
    ops.ropeInPlace(batch, q, ctx.cos, ctx.sin, heads, headDim);
    ops.ropeInPlace(batch, k, ctx.cos, ctx.sin, kvHeads, headDim);
    ctx.taps?.({
      kind: "attention",
      layer,
      module: `${prefix}.self_attn`,
      q,
      k,
      v,
      heads,
      kvHeads,
      headDim,
      batch,
      sequences,
      seqLen,
    });
    const att = temp(ops.attention(batch, q, k, v, {
      sequences,
      seqLen,
      heads,
      kvHeads,
      headDim,
      window: slidingWindowForLayer(config, layer),
    }));
    const o = linear("self_attn.o_proj", linearInput(O, att));
    const h = temp(add(batch, x, o));

    // MLP block.
    const hn = temp(ops.rmsnorm(batch, h, weights.norm("post_attention_layernorm"), eps));
    if (isSparseLayer(config, layer)) {
      return add(batch, h, temp(encodeMoeBlock(batch, ctx, weights, hn, temp)));
    }
    const mlpIn = linearInput(GATE_UP, hn);
    const gate = linear("mlp.gate_proj", mlpIn);
    const up = linear("mlp.up_proj", mlpIn);
    const act = temp(ops.siluMul(batch, gate, up));
    const down = linear("mlp.down_proj", linearInput(DOWN, act));
    return add(batch, h, down);
  } finally {
    for (const t of temps) t.destroy();
  }
}
