/**
 * Which tensors a decoder layer has, with their shapes, and reading them
 * (validated) from a checkpoint with optional substitutes.
 *
 * @module
 */

import type { ModelConfig } from "../io/model_config.ts";
import { DecoderModelError } from "./model_error.ts";
import { layerPrefix } from "./module_names.ts";
import { isSparseLayer, moeModuleNames } from "./moe_names.ts";
import type { WeightSource } from "./weight_source.ts";

/**
 * The tensors of decoder layer `k` by full HF name, with their shapes, as
 * transformers would build the layer from `config`: biases only where the
 * architecture has them (qwen2: q/k/v; llama `attention_bias`: q/k/v/o;
 * `mlp_bias`: gate/up/down) and q_norm/k_norm for qwen3. The sparse layers
 * of mixtral / qwen2_moe / qwen3_moe have a router `[experts, hidden]` and
 * every expert's gate/up `[expert_intermediate, hidden]` and down
 * `[hidden, expert_intermediate]` (see moe_names.ts), plus qwen2_moe's
 * shared expert and its `[1, hidden]` gate; this is the list of tensors a
 * checkpoint of that architecture must hold.
 *
 * @param config the model config
 * @param k the layer index
 * @returns name → shape, in forward order
 * @example
 * ```ts ignore
 * import { layerTensorShapes } from "./layer_tensors.ts";
 * layerTensorShapes(config, 0).get("model.layers.0.self_attn.q_proj.weight"); // [H, H]
 * ```
 */
export function layerTensorShapes(config: ModelConfig, k: number): Map<string, number[]> {
  const p = layerPrefix(k);
  const H = config.hiddenSize;
  const I = config.intermediateSize;
  const q = config.numAttentionHeads * config.headDim;
  const kv = config.numKeyValueHeads * config.headDim;
  const qkvBias = config.attentionBias;
  const oBias = config.attentionBias && config.modelType !== "qwen2" &&
    config.modelType !== "qwen2_moe";
  const shapes = new Map<string, number[]>();
  const linear = (name: string, outF: number, inF: number, bias: boolean) => {
    shapes.set(`${p}.${name}.weight`, [outF, inF]);
    if (bias) shapes.set(`${p}.${name}.bias`, [outF]);
  };
  shapes.set(`${p}.input_layernorm.weight`, [H]);
  linear("self_attn.q_proj", q, H, qkvBias);
  linear("self_attn.k_proj", kv, H, qkvBias);
  linear("self_attn.v_proj", kv, H, qkvBias);
  if (config.qkNorm) {
    shapes.set(`${p}.self_attn.q_norm.weight`, [config.headDim]);
    shapes.set(`${p}.self_attn.k_norm.weight`, [config.headDim]);
  }
  linear("self_attn.o_proj", H, q, oBias);
  shapes.set(`${p}.post_attention_layernorm.weight`, [H]);
  if (isSparseLayer(config, k)) {
    const moe = config.moe!;
    const names = moeModuleNames(config);
    const Ie = moe.expertIntermediateSize;
    linear(names.router, moe.numExperts, H, false);
    for (let e = 0; e < moe.numExperts; e++) {
      const x = names.expert(e);
      linear(x.gate, Ie, H, false);
      linear(x.up, Ie, H, false);
      linear(x.down, H, Ie, false);
    }
    if (names.shared !== null) {
      const Is = moe.sharedExpertIntermediateSize!;
      linear(names.shared.gate, Is, H, false);
      linear(names.shared.up, Is, H, false);
      linear(names.shared.down, H, Is, false);
      linear(names.shared.sharedGate, 1, H, false);
    }
    return shapes;
  }
  linear("mlp.gate_proj", I, H, config.mlpBias);
  linear("mlp.up_proj", I, H, config.mlpBias);
  linear("mlp.down_proj", H, I, config.mlpBias);
  return shapes;
}

/**
 * Reads every tensor of decoder layer `k` as float32, taking those present in
 * `substitutes` from there instead of the checkpoint, and checks each length
 * against its shape.
 *
 * @param source the checkpoint
 * @param k the layer index
 * @param substitutes tensors by full HF name that replace the checkpoint's;
 *   names of other layers are ignored
 * @param include which tensors to read (default: all)
 * @returns name → values, for every (included) name of {@link layerTensorShapes}
 * @throws {DecoderModelError} when a tensor is missing or has the wrong size
 * @example
 * ```ts ignore
 * import { readLayerTensors } from "./layer_tensors.ts";
 * const tensors = await readLayerTensors(model, 3);
 * ```
 */
export async function readLayerTensors(
  source: WeightSource,
  k: number,
  substitutes?: ReadonlyMap<string, Float32Array>,
  include: (name: string) => boolean = () => true,
): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of layerTensorShapes(source.config, k)) {
    if (!include(name)) continue;
    out.set(name, await readLayerTensor(source, name, shape, substitutes));
  }
  return out;
}

/**
 * Reads one tensor of a decoder layer as float32 (from `substitutes` when it
 * holds the name) and checks its length against the shape: the per-tensor
 * step of {@link readLayerTensors}, for callers that upload each tensor
 * before reading the next.
 *
 * @param source the checkpoint
 * @param name the tensor's full HF name
 * @param shape its expected shape (from {@link layerTensorShapes})
 * @param substitutes tensors that replace the checkpoint's
 * @returns the values, and whether they came from `substitutes`
 * @throws {DecoderModelError} when the tensor is missing or has the wrong size
 * @example
 * ```ts ignore
 * import { layerTensorShapes, readLayerTensor } from "./layer_tensors.ts";
 * for (const [name, shape] of layerTensorShapes(model.config, 0)) {
 *   const values = await readLayerTensor(model, name, shape);
 * }
 * ```
 */
export async function readLayerTensor(
  source: WeightSource,
  name: string,
  shape: readonly number[],
  substitutes?: ReadonlyMap<string, Float32Array>,
): Promise<Float32Array> {
  let data = substitutes?.get(name);
  const from = data ? "substituted" : "checkpoint";
  if (!data) {
    if (!source.has(name)) {
      throw new DecoderModelError(
        `${name}: missing from the checkpoint; a ${source.config.modelType} layer with this ` +
          `config expects it with shape [${shape}]`,
      );
    }
    data = await source.readF32(name);
  }
  const n = shape.reduce((a, b) => a * b, 1);
  if (data.length !== n) {
    throw new DecoderModelError(
      `${name}: ${from} tensor has ${data.length} values; expected shape [${shape}] (${n})`,
    );
  }
  return data;
}
