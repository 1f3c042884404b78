/**
 * Observers and calibrators as RxJS operators. An observer folds a stream
 * of per-sample statistics into its running state with the statistic of
 * args.observer (§4.2: `minmax` EMA with "the first batch dominates",
 * `static_minmax`, `memoryless_minmax`); a calibrator turns a state into
 * qparams (§1.4) or an NVFP4 global scale (§1.6).
 *
 * ```ts ignore
 * samples$.pipe(observeMinMax(args), last(), calibrateQParams(args))
 * ```
 *
 * @module
 */

import { map, type OperatorFunction, scan } from "../_rxjs.ts";
import type { QuantizationArgs } from "../quant/args.ts";
import type { CalibrationView, MinMax } from "../quant/calibration_view.ts";
import type { ComputeDType } from "../quant/compute_dtype.ts";
import { EMPTY_OBSERVER_STATE, observe, qparamsOf } from "../quant/observers.ts";
import type { ObserverState } from "../quant/observers.ts";
import { globalScaleFor } from "../quant/qparams.ts";
import type { QParams } from "../quant/qparams.ts";

/**
 * The observers llmc can run from GPU-reduced statistics. The MSE observers
 * search over the observed values themselves, which llmc does not read back
 * for activations.
 */
export const ACTIVATION_OBSERVERS: readonly string[] = Object.freeze([
  "minmax",
  "static_minmax",
  "memoryless_minmax",
]);

/**
 * A calibration view whose per-slot min/max are exactly `mm` (two
 * observations of one element per slot), so quant's `observe` applies its
 * statistic to statistics reduced elsewhere.
 */
function viewOf(mm: MinMax): CalibrationView {
  const slots = mm.min.length;
  const data = new Float32Array(2 * slots);
  data.set(mm.min, 0);
  data.set(mm.max, slots);
  return { data, numObservations: 2, numSlots: slots, slotLength: 1, qparamShape: [slots] };
}

/**
 * Folds one observation (a sample's per-slot min/max) into an observer state.
 *
 * @param state the state so far
 * @param observation this sample's statistics
 * @param args the args whose observer (and averaging constant) to apply
 * @param dtype the activations' dtype emulated
 * @returns the next state
 * @example
 * ```ts
 * import { foldObservation } from "./observer_operators.ts";
 * import { EMPTY_OBSERVER_STATE } from "../quant/observers.ts";
 * import { parseQuantizationArgs } from "../quant/args.ts";
 * const args = parseQuantizationArgs({ num_bits: 8, type: "float" }, "in");
 * const a = foldObservation(EMPTY_OBSERVER_STATE, { min: new Float32Array([0]), max: new Float32Array([1]) }, args);
 * foldObservation(a, { min: new Float32Array([0]), max: new Float32Array([127]) }, args).minMax?.max[0]; // ≈ 2.26
 * ```
 */
export function foldObservation(
  state: ObserverState,
  observation: MinMax,
  args: QuantizationArgs,
  dtype: ComputeDType = "F32",
): ObserverState {
  return observe(state, viewOf(observation), args, { dtype });
}

/**
 * The observer operator: every per-sample observation in, every running
 * state out (`last()` gives the final one).
 *
 * @param args quantization args (observer name and kwargs)
 * @param dtype the activations' dtype emulated
 * @returns the operator
 * @example
 * ```ts
 * import { from, last, lastValueFrom } from "rxjs";
 * import { observeMinMax } from "./observer_operators.ts";
 * import { parseQuantizationArgs } from "../quant/args.ts";
 * const args = parseQuantizationArgs({ num_bits: 8, observer: "static_minmax" }, "in");
 * const s = await lastValueFrom(from([
 *   { min: new Float32Array([-1]), max: new Float32Array([1]) },
 *   { min: new Float32Array([-3]), max: new Float32Array([2]) },
 * ]).pipe(observeMinMax(args), last()));
 * s.minMax?.min[0]; // -3
 * ```
 */
export function observeMinMax(
  args: QuantizationArgs,
  dtype: ComputeDType = "F32",
): OperatorFunction<MinMax, ObserverState> {
  return scan((state, mm) => foldObservation(state, mm, args, dtype), EMPTY_OBSERVER_STATE);
}

/**
 * The calibrator operator: observer states to scales and zero points.
 *
 * @param args quantization args
 * @param dtype the activations' dtype emulated
 * @returns the operator
 * @example
 * ```ts
 * import { of, lastValueFrom } from "rxjs";
 * import { calibrateQParams, observeMinMax } from "./observer_operators.ts";
 * import { parseQuantizationArgs } from "../quant/args.ts";
 * const args = parseQuantizationArgs({ num_bits: 8, type: "float" }, "in");
 * const qp = await lastValueFrom(of({ min: new Float32Array([-448]), max: new Float32Array([224]) })
 *   .pipe(observeMinMax(args), calibrateQParams(args)));
 * qp.scale[0]; // 1
 * ```
 */
export function calibrateQParams(
  args: QuantizationArgs,
  dtype: ComputeDType = "F32",
): OperatorFunction<ObserverState, QParams> {
  return map((state) => qparamsOf(state, args, { dtype }));
}

/**
 * The NVFP4 global scale of an observer state over whole tensors:
 * `448 · 6 / amax` (§1.6).
 *
 * @param state an observer state with one slot
 * @param dtype the activations' dtype emulated
 * @returns the global scale
 * @example
 * ```ts
 * import { globalScaleOfState } from "./observer_operators.ts";
 * globalScaleOfState({ minMax: { min: new Float32Array([-12]), max: new Float32Array([3]) }, count: 1 }); // 224
 * ```
 */
export function globalScaleOfState(state: ObserverState, dtype: ComputeDType = "F32"): number {
  const mm = state.minMax!;
  const amax = Math.max(Math.abs(Math.min(mm.min[0], 0)), Math.max(mm.max[0], 0));
  return globalScaleFor(amax, dtype);
}
