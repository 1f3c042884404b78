/**
 * The GPTQModifier's weight step for one decoder layer (§4.4): Hessians are
 * accumulated on the GPU from each Linear's calibration inputs (one per
 * distinct input: q/k/v share one, gate/up share one), and at the layer's
 * end every targeted weight is quantized with GPTQ, NVFP4 global scales
 * fused over q/k/v and gate/up first as for round-to-nearest.
 *
 * @module
 */

import type { CommandBatch } from "../gpu/batch.ts";
import type { Gpu } from "../gpu/device.ts";
import type { GpuTensor } from "../gpu/tensor.ts";
import type { ModelType } from "../io/model_config.ts";
import { HessianAccumulator } from "../modifiers/gptq/hessian_accumulator.ts";
import { gptqQuantize } from "../modifiers/gptq/gptq_quantize.ts";
import type { GptqResult } from "../modifiers/gptq/gptq_quantize.ts";
import { layerFusedSets } from "../modifiers/quantization/layer_fused_sets.ts";
import type { QuantizationArgs } from "../quant/args.ts";
import type { ComputeDType } from "../quant/compute_dtype.ts";
import { fuseGlobalScales } from "../quant/fused_global_scales.ts";
import { rtnGlobalScale } from "../quant/rtn.ts";

/**
 * The Hessians of one layer, keyed by the input they are accumulated from.
 *
 * @example
 * ```ts ignore
 * const h = LayerHessians.create(gpu, new Map([["qkv", 64]]));
 * h.add("qkv", tap.batch, tap.x, tap.sequences);
 * ```
 */
export class LayerHessians {
  readonly #byKey: Map<string, HessianAccumulator>;

  private constructor(byKey: Map<string, HessianAccumulator>) {
    this.#byKey = byKey;
  }

  /**
   * Zero Hessians for each input.
   *
   * @param gpu the device
   * @param columns in_features per input key
   * @returns the accumulators
   * @example
   * ```ts ignore
   * LayerHessians.create(gpu, new Map([["down", 172]]));
   * ```
   */
  static create(gpu: Gpu, columns: ReadonlyMap<string, number>): LayerHessians {
    const byKey = new Map<string, HessianAccumulator>();
    try {
      for (const [key, n] of columns) byKey.set(key, HessianAccumulator.create(gpu, n));
    } catch (e) {
      for (const h of byKey.values()) h.destroy();
      throw e;
    }
    return new LayerHessians(byKey);
  }

  /**
   * Whether an input is accumulated.
   *
   * @param key the input
   * @returns true when it has a Hessian
   * @example
   * ```ts ignore
   * if (hessians.has("qkv")) hessians.add("qkv", tap.batch, tap.x, tap.sequences);
   * ```
   */
  has(key: string): boolean {
    return this.#byKey.has(key);
  }

  /**
   * Records one forward's inputs (b = its sequences, as upstream counts).
   *
   * @param key the input
   * @param batch the layer's command batch
   * @param x the input `[rows, in]`
   * @param sequences samples in `x`
   * @example
   * ```ts ignore
   * hessians.add("qkv", tap.batch, tap.x, tap.sequences);
   * ```
   */
  add(key: string, batch: CommandBatch, x: GpuTensor, sequences: number): void {
    this.#byKey.get(key)?.add(batch, x, sequences);
  }

  /**
   * The accumulator of an input.
   *
   * @param key the input
   * @returns it
   * @example
   * ```ts ignore
   * hessians.get("qkv").numSamples;
   * ```
   */
  get(key: string): HessianAccumulator {
    const h = this.#byKey.get(key);
    if (h === undefined) throw new Error(`no Hessian for input '${key}'`);
    return h;
  }

  /**
   * Releases every accumulator; idempotent.
   *
   * @example
   * ```ts ignore
   * hessians.destroy();
   * ```
   */
  destroy(): void {
    for (const h of this.#byKey.values()) h.destroy();
    this.#byKey.clear();
  }
}

/** A weight GPTQ quantizes. */
export interface GptqWeightInput {
  readonly name: string;
  readonly values: Float32Array;
  readonly shape: readonly [number, number];
  readonly args: QuantizationArgs;
  readonly dtype: ComputeDType;
  /** The Hessian input key it reads. */
  readonly input: string;
}

/** GPTQ options of the modifier. */
export interface GptqStepOptions {
  readonly blockSize: number;
  readonly dampeningFrac: number;
}

/**
 * Quantizes a layer's targeted weights with GPTQ.
 *
 * @param gpu the device
 * @param layer the decoder layer (fused global-scale sets)
 * @param modelType the architecture
 * @param hessians the layer's Hessians
 * @param linears the weights
 * @param options block size and dampening
 * @returns one result per weight, in order
 * @example
 * ```ts ignore
 * const results = await gptqLayerWeights(gpu, 0, "llama", hessians, linears, { blockSize: 128, dampeningFrac: 0.01 });
 * ```
 */
export async function gptqLayerWeights(
  gpu: Gpu,
  layer: number,
  modelType: ModelType,
  hessians: LayerHessians,
  linears: readonly GptqWeightInput[],
  options: GptqStepOptions,
): Promise<GptqResult[]> {
  const global = new Map<string, number>();
  for (const l of linears) {
    if (l.args.strategy === "tensor_group") {
      global.set(l.name, rtnGlobalScale(l.values, l.args, l.dtype));
    }
  }
  const fused = fuseGlobalScales(global, layerFusedSets(layer, modelType, (n) => global.has(n)));
  const out: GptqResult[] = [];
  for (const l of linears) {
    out.push(
      await gptqQuantize(gpu, l.values, l.shape, hessians.get(l.input), l.args, {
        blockSize: options.blockSize,
        dampeningFrac: options.dampeningFrac,
        globalScale: fused.get(l.name) ?? null,
        where: l.name,
      }),
    );
  }
  return out;
}
