/**
 * Round-to-nearest weight quantization of one module (§4.3): what
 * QuantizationModifier does at calibration start for every targeted weight —
 * observe the weight once with its observer, derive the qparams (after the
 * global scale for tensor_group). The RTN modifier calls this per Linear; the
 * checkpoint writer then calls `compressModule`.
 *
 * @module
 */

import type { QuantizationArgs } from "./args.ts";
import { slotAbsMax, weightCalibrationView } from "./calibration_view.ts";
import type { CalibrationView, MinMax } from "./calibration_view.ts";
import type { ComputeDType } from "./compute_dtype.ts";
import { QuantizationConfigError } from "./errors.ts";
import type { ObserverState } from "./observers.ts";
import {
  averagingConstantOf,
  EMPTY_OBSERVER_STATE,
  mseMinMax,
  mseOptionsOf,
  observe,
  qparamsOf,
  tensorAmax,
} from "./observers.ts";
import { PyFloat } from "./python_json.ts";
import { globalScaleFor } from "./qparams.ts";

/** The qparams RTN produces for one weight. */
export interface RtnQParams {
  /** Scales, row-major in `qparamShape`. */
  readonly scale: Float32Array;
  /** Zero points (zeros for symmetric args; compression drops them). */
  readonly zeroPoint: Float32Array;
  /** The global scale used (tensor_group), else null. */
  readonly globalScale: number | null;
  /** The g_idx used, else null. */
  readonly gIdx: Int32Array | null;
  /** Shape of the scale tensor. */
  readonly qparamShape: readonly number[];
}

/** Options of {@link rtnQuantizeModule}. */
export interface RtnOptions {
  /** A precomputed (e.g. fused) global scale for tensor_group args. */
  readonly globalScale?: number | null;
  /** Group id per column (activation ordering). */
  readonly gIdx?: Int32Array | null;
  /** The weight's dtype; F32 by default. */
  readonly dtype?: ComputeDType;
  /** The module name, for error messages. */
  readonly where?: string;
  /**
   * Computes `slotMinMax(view)` for a `memoryless_minmax` observer (its one
   * observation); it must give the same bits (e.g. the CPU kernels', see
   * src/modifiers/quantization/rtn_fake_quantize.ts). Default: `slotMinMax`.
   */
  readonly slotMinMax?: (view: CalibrationView) => MinMax;
}

/**
 * The state the min/max observers reach after observing a weight once, for
 * symmetric args, from the absolute maxima alone: a symmetric scale depends
 * only on `max(|min(x, 0)|, max(x, 0))`, which `(−amax, amax)` gives
 * exactly, and the first observation of `minmax` / `static_minmax` is
 * stored as is. Null whenever `observe` could answer otherwise: another
 * observer, an `averaging_constant` it would reject, or a NaN (whose bits
 * then come from the weight as they always have).
 */
function symmetricMinMaxState(view: CalibrationView, args: QuantizationArgs): ObserverState | null {
  if (!args.symmetric || !MIN_MAX_OBSERVERS.has(args.observer)) return null;
  const c = args.observerKwargs.averaging_constant;
  if (c !== undefined && c !== null && typeof c !== "number" && !(c instanceof PyFloat)) {
    return null;
  }
  const max = slotAbsMax(view);
  const min = new Float32Array(max.length);
  for (let s = 0; s < max.length; s++) {
    if (max[s] !== max[s]) return null;
    min[s] = -max[s];
  }
  return { minMax: { min, max }, count: 1 };
}

const MIN_MAX_OBSERVERS: ReadonlySet<string | null> = new Set([
  "minmax",
  "static_minmax",
  "memoryless_minmax",
]);

function isMse(args: QuantizationArgs): boolean {
  return args.observer === "mse" || args.observer === "memoryless_mse";
}

/**
 * The global scale of a weight for tensor_group args, as its observer
 * computes it: `448·6 / amax` of the whole tensor (MSE observers first search
 * the clipped range with the global scale re-derived per candidate).
 *
 * @param weight the weight values
 * @param args tensor_group weight args
 * @param dtype the weight's dtype
 * @returns the F32 global scale
 * @example
 * ```ts
 * import { rtnGlobalScale } from "./rtn.ts";
 * import { presetScheme } from "./presets.ts";
 * rtnGlobalScale(new Float32Array([-12, 3]), presetScheme("NVFP4A16", ["Linear"]).weights!); // 224
 * ```
 */
export function rtnGlobalScale(
  weight: Float32Array,
  args: QuantizationArgs,
  dtype: ComputeDType = "F32",
): number {
  if (isMse(args)) {
    const view = {
      data: weight,
      numObservations: 1,
      numSlots: 1,
      slotLength: weight.length,
      qparamShape: [1],
    };
    const best = mseMinMax(view, args, mseOptionsOf(args), null, true, dtype);
    return globalScaleFor(Math.max(-Math.min(best.min[0], 0), Math.max(best.max[0], 0)), dtype);
  }
  return globalScaleFor(tensorAmax(weight), dtype);
}

/**
 * Quantizes one Linear weight with round-to-nearest: its observer sees the
 * whole weight once, and the scales / zero points follow (§1.4).
 *
 * @param weight the weight `[out, in]`, row-major
 * @param shape `[out, in]`
 * @param args the weight's quantization args (static)
 * @param options fused global scale, g_idx, dtype, module name
 * @returns the qparams
 * @throws {QuantizationConfigError} for dynamic weight args
 * @throws {QuantizationShapeError} when the group size or block does not tile the weight
 * @example
 * ```ts
 * import { rtnQuantizeModule } from "./rtn.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * const a = parseQuantizationArgs({ num_bits: 4, strategy: "channel" }, "w");
 * rtnQuantizeModule(new Float32Array([1.5, -3, 0.75, 0.3]), [2, 2], a).scale; // [0.4, 0.1]
 * ```
 */
export function rtnQuantizeModule(
  weight: Float32Array,
  shape: readonly [number, number],
  args: QuantizationArgs,
  options: RtnOptions = {},
): RtnQParams {
  const where = options.where ?? "weight";
  const dtype = options.dtype ?? "F32";
  if (args.dynamic !== false) {
    throw new QuantizationConfigError(
      `${where}: weights need static quantization args (dynamic: false)`,
    );
  }
  const view = weightCalibrationView(weight, shape, args, { gIdx: options.gIdx, where });
  let globalScale: number | null = null;
  if (args.strategy === "tensor_group") {
    globalScale = options.globalScale ?? rtnGlobalScale(weight, args, dtype);
  }
  // A memoryless observer's state after its one observation is its min/max
  // and a count of 1, as observe returns it: computed by the caller's function when given,
  // after the same check of observer_kwargs that observe makes (so bad kwargs throw alike).
  const viaCaller = args.observer === "memoryless_minmax" && options.slotMinMax !== undefined;
  if (viaCaller) averagingConstantOf(args);
  const state = symmetricMinMaxState(view, args) ??
    (viaCaller
      ? { minMax: options.slotMinMax!(view), count: EMPTY_OBSERVER_STATE.count + 1 }
      : observe(EMPTY_OBSERVER_STATE, view, args, { globalScale, dtype }));
  const qp = qparamsOf(state, args, { globalScale, dtype });
  return {
    scale: qp.scale,
    zeroPoint: qp.zeroPoint,
    globalScale,
    gIdx: options.gIdx ?? null,
    qparamShape: view.qparamShape,
  };
}
