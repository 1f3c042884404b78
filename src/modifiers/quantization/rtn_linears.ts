/**
 * Round-to-nearest quantization of a set of Linears (one decoder layer, or
 * lm_head) — llmc's one implementation of it: global scales first for
 * tensor_group weights, fused to the minimum across q/k/v and gate/up
 * (§1.6), then each weight's scales / zero points from one observation
 * (§4.3), then, when a format is given, the compressed tensors of it
 * (§1.8–1.9). Optionally also the fake-quantized dense weight (and its
 * relative error) that a calibrated pipeline propagates errors with.
 *
 * Every round-to-nearest in llmc goes through {@link rtnQuantizeLinears}:
 * the data-free pipeline and model-free PTQ, the QuantizationModifier's
 * per-layer weights (and GPTQ's comparison and its experts without
 * tokens), lm_head, and AWQ's fake-quantized balance layers.
 *
 * @module
 */

import type { CompressedTensor } from "../../compress/compressed_tensor.ts";
import { compressModule } from "../../compress/compress_module.ts";
import type { ComputeDType } from "../../quant/compute_dtype.ts";
import type { ModuleFormat } from "../../quant/compression_format.ts";
import { fuseGlobalScales } from "../../quant/fused_global_scales.ts";
import { fakeQuantize } from "../../quant/quantize.ts";
import { rtnGlobalScale, rtnQuantizeModule } from "../../quant/rtn.ts";
import type { RtnOptions, RtnQParams } from "../../quant/rtn.ts";
import type { QuantizationScheme } from "../../quant/scheme.ts";

/** One Linear weight to quantize. */
export interface LinearToQuantize {
  /** Module name, e.g. `model.layers.0.self_attn.q_proj`; output tensors are `<name>.<param>`. */
  readonly name: string;
  /** The dense weight `[out, in]`, row-major (not modified). */
  readonly values: Float32Array;
  /** `[out, in]`. */
  readonly shape: readonly [number, number];
  /** Its scheme (must have weight args). */
  readonly scheme: QuantizationScheme;
  /** Its compression format; null: no compressed tensors (quantize only). */
  readonly format: ModuleFormat | null;
  /** The dtype the weight is stored in; scales are stored in it too. */
  readonly dtype: ComputeDType;
}

/** One quantized Linear. */
export interface QuantizedLinear {
  /** Module name. */
  readonly name: string;
  /** Its RTN qparams (global scale already fused). */
  readonly qparams: RtnQParams;
  /** The tensors to write for it (empty when its format is null). */
  readonly tensors: CompressedTensor[];
  /** The fake-quantized weight, when asked for; else null. */
  readonly fakeQuantized: Float32Array | null;
  /** ‖W − Ŵ‖² / ‖W‖² of the fake-quantized weight, when asked for; else null. */
  readonly relativeError: number | null;
  /** Seconds spent on this weight (its global scale excluded). */
  readonly seconds: number;
}

/** Options of {@link rtnQuantizeLinears}. */
export interface RtnLinearsOptions {
  /** Sets of module names whose global scales are fused (see `fusedGlobalScaleGroups`). */
  readonly fusedSets?: readonly (readonly string[])[];
  /** Also return the fake-quantized dense weights and their relative errors. */
  readonly fakeQuantize?: boolean;
  /**
   * With `fakeQuantize`, whether to compute the relative errors too
   * (default true; false leaves `relativeError` null, for callers that
   * only compare the fake-quantized weights).
   */
  readonly relativeError?: boolean;
  /** Passed to `rtnQuantizeModule` (see its `RtnOptions.slotMinMax`): the same bits, faster. */
  readonly slotMinMax?: RtnOptions["slotMinMax"];
}

/**
 * Round-to-nearest quantizes and compresses a set of Linears, as
 * llm-compressor's QuantizationModifier does at calibration start and
 * `save_pretrained` does at save: the codes on disk are the original
 * weight quantized with the stored qparams.
 *
 * @param linears the weights with their schemes and formats
 * @param options fused sets and whether to return fake-quantized weights
 * @returns one result per input, in input order
 * @throws {QuantizationShapeError} (from quant) when a weight does not fit its scheme
 * @throws {CompressionError} (from compress) when a format's precondition fails
 * @example
 * ```ts
 * import { rtnQuantizeLinears } from "./rtn_linears.ts";
 * import { presetScheme } from "../../quant/presets.ts";
 * const [q] = rtnQuantizeLinears([{
 *   name: "m", values: new Float32Array([1, -0.5, 0.25, 2]), shape: [2, 2],
 *   scheme: presetScheme("W8A16", ["Linear"]), format: "pack-quantized", dtype: "F32",
 * }]);
 * q.tensors.map((t) => t.name); // ["m.weight_packed", "m.weight_shape", "m.weight_scale"]
 * ```
 */
export function rtnQuantizeLinears(
  linears: readonly LinearToQuantize[],
  options: RtnLinearsOptions = {},
): QuantizedLinear[] {
  const global = new Map<string, number>();
  for (const l of linears) {
    const args = l.scheme.weights!;
    if (args.strategy === "tensor_group") {
      global.set(l.name, rtnGlobalScale(l.values, args, l.dtype));
    }
  }
  // Only sets whose members are all here with a global scale are fused.
  const sets = (options.fusedSets ?? []).filter((s) => s.every((n) => global.has(n)));
  const fused = fuseGlobalScales(global, sets);
  return linears.map((l) => {
    const t0 = performance.now();
    const args = l.scheme.weights!;
    const qparams = rtnQuantizeModule(l.values, l.shape, args, {
      globalScale: fused.get(l.name) ?? null,
      dtype: l.dtype,
      where: l.name,
      slotMinMax: options.slotMinMax,
    });
    const tensors = l.format === null ? [] : compressModule(
      l.name,
      l.values,
      l.shape,
      l.scheme,
      { weight: qparams },
      l.dtype,
      l.format,
    );
    const fakeQuantized = options.fakeQuantize
      ? fakeQuantize(l.values, l.shape, qparams, args, { dtype: l.dtype, where: l.name })
      : null;
    return {
      name: l.name,
      qparams,
      tensors,
      fakeQuantized,
      relativeError: fakeQuantized === null || options.relativeError === false
        ? null
        : relativeError(l.values, fakeQuantized),
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
 * import { relativeError } from "./rtn_linears.ts";
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
