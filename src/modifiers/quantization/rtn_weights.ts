/**
 * The QuantizationModifier's weight step for one decoder layer, run at the
 * layer's start (upstream's `on_start`, §4.3): NVFP4 global scales fused to
 * the minimum over q/k/v and gate/up (§1.6), then each weight's qparams from
 * one observation, and the fake-quantized weight that quantization-aware
 * calibration forwards use. Compression waits for the layer's end, when the
 * static input scales exist.
 *
 * This is `rtnQuantizeLinears` (src/modifiers/quantization) without its
 * compression step, built from the same quant functions.
 *
 * @module
 */

import type { ModelConfig, ModelType } from "../../io/model_config.ts";
import { layerFusedSets } from "./layer_fused_sets.ts";
import type { ComputeDType } from "../../quant/compute_dtype.ts";
import { fuseGlobalScales } from "../../quant/fused_global_scales.ts";
import { fakeQuantize } from "../../quant/quantize.ts";
import { rtnGlobalScale, rtnQuantizeModule } from "../../quant/rtn.ts";
import type { RtnQParams } from "../../quant/rtn.ts";
import type { QuantizationScheme } from "../../quant/scheme.ts";

/** A Linear whose weight is round-to-nearest quantized. */
export interface RtnWeightInput {
  /** Module name. */
  readonly name: string;
  /** The dense weight `[out, in]` (not modified). */
  readonly values: Float32Array;
  readonly shape: readonly [number, number];
  /** Its scheme (with weight args). */
  readonly scheme: QuantizationScheme;
  /** The weight's dtype, emulated in the arithmetic. */
  readonly dtype: ComputeDType;
}

/** The weight step's result for one Linear. */
export interface RtnWeight {
  readonly name: string;
  readonly qparams: RtnQParams;
  /** The fake-quantized weight. */
  readonly fakeQuantized: Float32Array;
  /** ‖W − Ŵ‖² / ‖W‖² (0 for an all-zero weight). */
  readonly relativeError: number;
  /** Seconds spent on this weight. */
  readonly seconds: number;
}

/**
 * Quantizes a layer's Linear weights round-to-nearest.
 *
 * @param layer the decoder layer (for the fused sets)
 * @param modelType the architecture (its attention / MLP class names), or the config (MoE)
 * @param linears the weights with their schemes
 * @returns one result per input, in order
 * @throws {QuantizationShapeError} (from quant) when a weight does not fit its scheme
 * @example
 * ```ts
 * import { rtnLayerWeights } from "./rtn_weights.ts";
 * import { presetScheme } from "../../quant/presets.ts";
 * const [w] = rtnLayerWeights(0, "llama", [{
 *   name: "model.layers.0.mlp.up_proj", values: new Float32Array([1, -0.5]), shape: [1, 2],
 *   scheme: presetScheme("FP8", ["Linear"]), dtype: "F32",
 * }]);
 * w.fakeQuantized; // Float32Array [1, -0.5]
 * ```
 */
export function rtnLayerWeights(
  layer: number,
  modelType: ModelType | ModelConfig,
  linears: readonly RtnWeightInput[],
): RtnWeight[] {
  const global = new Map<string, number>();
  for (const l of linears) {
    const args = l.scheme.weights!;
    if (args.strategy === "tensor_group") {
      global.set(l.name, rtnGlobalScale(l.values, args, l.dtype));
    }
  }
  const fused = fuseGlobalScales(global, layerFusedSets(layer, modelType, (n) => global.has(n)));
  return linears.map((l) => {
    const t0 = performance.now();
    const args = l.scheme.weights!;
    const qparams = rtnQuantizeModule(l.values, l.shape, args, {
      globalScale: fused.get(l.name) ?? null,
      dtype: l.dtype,
      where: l.name,
    });
    const fakeQuantized = fakeQuantize(l.values, l.shape, qparams, args, {
      dtype: l.dtype,
      where: l.name,
    });
    return {
      name: l.name,
      qparams,
      fakeQuantized,
      relativeError: relativeError(l.values, fakeQuantized),
      seconds: (performance.now() - t0) / 1000,
    };
  });
}

/**
 * ‖a − b‖² / ‖a‖², accumulated in double precision.
 *
 * @param a the reference
 * @param b the approximation
 * @returns the relative squared error (0 when `a` is all zero)
 * @example
 * ```ts
 * import { relativeError } from "./rtn_weights.ts";
 * relativeError(new Float32Array([2, 0]), new Float32Array([1, 0])); // 0.25
 * ```
 */
export function relativeError(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += a[i] * a[i];
  }
  return den === 0 ? 0 : num / den;
}
