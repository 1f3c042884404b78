/**
 * One decoder layer's weights on the GPU: read lazily from the checkpoint (or
 * given as substitutes), uploaded for one `runLayer` call and destroyed
 * afterwards, so only the layer being run occupies device memory.
 *
 * @module
 */

import type { Engine, Tensor } from "../engine/engine.ts";
import type { ModelConfig } from "../io/model_config.ts";
import { layerTensorShapes, readLayerTensor } from "./layer_tensors.ts";
import { DecoderModelError } from "./model_error.ts";
import type { LayerLinear } from "./module_names.ts";
import { layerPrefix } from "./module_names.ts";
import { releaseRead, type WeightSource } from "./weight_source.ts";

/** A Linear weight as `matmul` takes it: one tensor, or row chunks when larger than a binding. */
export type LinearWeight = Tensor;

/** A layer's RMSNorm weights, relative to `model.layers.{k}`. */
export type LayerNorm =
  | "input_layernorm"
  | "post_attention_layernorm"
  | "self_attn.q_norm"
  | "self_attn.k_norm";

/**
 * The GPU tensors of decoder layer `k`. Create with {@link LayerWeights.load}
 * (from a checkpoint, optionally with substitutes) or
 * {@link LayerWeights.fromArrays}; release with {@link LayerWeights.destroy}.
 *
 * @example
 * ```ts ignore
 * import { LayerWeights } from "./layer_weights.ts";
 * const w = await LayerWeights.load(engine, model, 0);
 * try {
 *   // ... model.runLayer(0, hidden, { weights: w }) ...
 * } finally {
 *   w.destroy();
 * }
 * ```
 */
export class LayerWeights {
  #destroyed = false;

  private constructor(
    /** The layer index. */
    readonly layer: number,
    private readonly tensors: Map<string, LinearWeight>,
    /** Bytes uploaded for this layer. */
    readonly bytes: number,
  ) {}

  /**
   * Reads layer `k` from the checkpoint (substitutes replace tensors of the
   * same name) and uploads it.
   *
   * @param engine the engine the weights live on
   * @param source the checkpoint
   * @param k the layer index
   * @param substitutes tensors by full HF name, e.g. fake-quantized weights
   * @returns the uploaded layer
   * @throws {DecoderModelError} for a missing or misshapen tensor
   * @example
   * ```ts ignore
   * import { LayerWeights } from "./layer_weights.ts";
   * const w = await LayerWeights.load(engine, model, 3, new Map([[name, fakeQuantized]]));
   * ```
   */
  static async load(
    engine: Engine,
    source: WeightSource,
    k: number,
    substitutes?: ReadonlyMap<string, Float32Array>,
  ): Promise<LayerWeights> {
    // Tensor by tensor, each host copy freed after its upload (when the
    // source allows), so a layer never exists twice in host memory.
    const tensors = new Map<string, LinearWeight>();
    let bytes = 0;
    try {
      for (const [name, shape] of layerTensorShapes(source.config, k)) {
        const data = await readLayerTensor(source, name, shape, substitutes);
        tensors.set(name, upload(engine, data, shape));
        bytes += data.byteLength;
        if (!substitutes?.has(name)) releaseRead(source, data);
      }
    } catch (e) {
      for (const t of tensors.values()) t.destroy();
      throw e;
    }
    return new LayerWeights(k, tensors, bytes);
  }

  /**
   * Uploads a layer's tensors given as host arrays (every name of
   * `layerTensorShapes(config, k)` must be present).
   *
   * @param engine the engine the weights live on
   * @param config the model config
   * @param k the layer index
   * @param arrays full HF name → values
   * @param include which of the layer's tensors to upload (default: all); a
   *   layer whose experts run in groups uploads one group at a time
   * @returns the uploaded layer
   * @throws {DecoderModelError} for a missing or misshapen tensor
   * @example
   * ```ts ignore
   * import { LayerWeights } from "./layer_weights.ts";
   * import { readLayerTensors } from "./layer_tensors.ts";
   * const w = LayerWeights.fromArrays(engine, model.config, 0, await readLayerTensors(model, 0));
   * ```
   */
  static fromArrays(
    engine: Engine,
    config: ModelConfig,
    k: number,
    arrays: ReadonlyMap<string, Float32Array>,
    include: (name: string) => boolean = () => true,
  ): LayerWeights {
    const tensors = new Map<string, LinearWeight>();
    let bytes = 0;
    try {
      for (const [name, shape] of layerTensorShapes(config, k)) {
        if (!include(name)) continue;
        const data = arrays.get(name);
        const n = shape.reduce((a, b) => a * b, 1);
        if (!data || data.length !== n) {
          throw new DecoderModelError(
            `${name}: expected [${shape}] (${n} values), got ${data ? data.length : "nothing"}`,
          );
        }
        tensors.set(name, upload(engine, data, shape));
        bytes += data.byteLength;
      }
    } catch (e) {
      for (const t of tensors.values()) t.destroy();
      throw e;
    }
    return new LayerWeights(k, tensors, bytes);
  }

  /**
   * A Linear's weight, [out, in].
   *
   * @param linear the Linear, relative to the layer
   * @returns its weight
   * @example
   * ```ts ignore
   * const wq = weights.linear("self_attn.q_proj");
   * ```
   */
  linear(linear: LayerLinear): LinearWeight {
    return this.#get(`${layerPrefix(this.layer)}.${linear}.weight`);
  }

  /**
   * Any Linear's weight by its name relative to the layer, including the
   * experts and routers of MoE layers (see moe_names.ts).
   *
   * @param linear e.g. `mlp.experts.3.up_proj`
   * @returns its weight, [out, in]
   * @example
   * ```ts ignore
   * const router = weights.module("block_sparse_moe.gate");
   * ```
   */
  module(linear: string): LinearWeight {
    return this.#get(`${layerPrefix(this.layer)}.${linear}.weight`);
  }

  /**
   * A Linear's bias, when the architecture has one.
   *
   * @param linear the Linear, relative to the layer
   * @returns the [out] bias, or undefined
   * @example
   * ```ts ignore
   * const bq = weights.bias("self_attn.q_proj"); // qwen2: defined
   * ```
   */
  bias(linear: LayerLinear): Tensor | undefined {
    const t = this.tensors.get(`${layerPrefix(this.layer)}.${linear}.bias`);
    this.#check();
    return t;
  }

  /**
   * An RMSNorm weight.
   *
   * @param norm the norm, relative to the layer
   * @returns its [size] weight
   * @example
   * ```ts ignore
   * const w = weights.norm("input_layernorm");
   * ```
   */
  norm(norm: LayerNorm): Tensor {
    return this.#get(`${layerPrefix(this.layer)}.${norm}.weight`);
  }

  /**
   * Releases every tensor (safe while submitted work still reads them: the
   * runtime frees each buffer once that work is done). Idempotent.
   *
   * @example
   * ```ts ignore
   * weights.destroy();
   * ```
   */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const t of this.tensors.values()) t.destroy();
    this.tensors.clear();
  }

  /** Whether {@link destroy} was called. */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  #check(): void {
    if (this.#destroyed) {
      throw new DecoderModelError(`layer ${this.layer}: weights used after destroy()`);
    }
  }

  #get(name: string): LinearWeight {
    this.#check();
    const t = this.tensors.get(name);
    if (!t) throw new DecoderModelError(`${name}: not part of this layer's weights`);
    return t;
  }
}

/** One tensor on the GPU: a Linear weight larger than a binding goes in row chunks. */
function upload(engine: Engine, data: Float32Array, shape: number[]): LinearWeight {
  // Linear weights may be split into row blocks; norms and biases are small.
  return shape.length === 2
    ? engine.uploadWeight(data, shape as [number, number])
    : engine.upload(data, shape);
}
