/**
 * The observer statistics of llm-compressor 0.9 (§4.2) as small pure
 * functions over per-slot min/max: a previous state plus the current
 * observation gives the next state. The graph layer wraps them as RxJS
 * operators (`scan`).
 *
 * | name | statistic |
 * |---|---|
 * | `memoryless_minmax` | current min/max |
 * | `static_minmax` | running min of minima / max of maxima |
 * | `minmax` | EMA `v·(1−c) + cur·c`, c = `averaging_constant` (0.01), first call stores current |
 * | `memoryless_mse` | MSE grid search on the current observation |
 * | `mse` | EMA of the MSE-searched min/max |
 *
 * @module
 */

import type { QuantizationArgs } from "./args.ts";
import { slotMinMax } from "./calibration_view.ts";
import type { CalibrationView, MinMax } from "./calibration_view.ts";
import { rounderFor } from "./compute_dtype.ts";
import type { ComputeDType } from "./compute_dtype.ts";
import { QuantizationConfigError } from "./errors.ts";
import type { JsonValue } from "./python_json.ts";
import { PyFloat } from "./python_json.ts";
import { calculateQParams, globalScaleFor } from "./qparams.ts";
import type { QParams } from "./qparams.ts";
import { fakeQuantizeView } from "./quantize.ts";

export type { MinMax } from "./calibration_view.ts";

/** Default EMA constant of the `minmax` and `mse` observers. */
export const DEFAULT_AVERAGING_CONSTANT = 0.01;

/**
 * Running minimum of minima and maximum of maxima (`static_minmax`).
 *
 * @param previous the running state, or null before the first observation
 * @param current this observation's per-slot min/max
 * @returns the new state
 * @example
 * ```ts
 * import { staticMinMax } from "./observers.ts";
 * const a = { min: new Float32Array([-1]), max: new Float32Array([1]) };
 * const b = { min: new Float32Array([0]), max: new Float32Array([3]) };
 * staticMinMax(staticMinMax(null, a), b); // { min: [-1], max: [3] }
 * ```
 */
export function staticMinMax(previous: MinMax | null, current: MinMax): MinMax {
  if (previous === null) return current;
  const n = current.min.length;
  const min = new Float32Array(n);
  const max = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    min[i] = Math.min(previous.min[i], current.min[i]);
    max[i] = Math.max(previous.max[i], current.max[i]);
  }
  return { min, max };
}

/**
 * Exponential moving average of min/max (the `minmax` observer): the first
 * observation is stored as is, later ones blend in as
 * `v·(1−c) + cur·c`, each op in the tensor dtype.
 *
 * @param previous the running state, or null before the first observation
 * @param current this observation's per-slot min/max
 * @param averagingConstant c, 0.01 by default
 * @param dtype the tensor dtype emulated
 * @returns the new state
 * @example
 * ```ts
 * import { movingAverageMinMax } from "./observers.ts";
 * const a = { min: new Float32Array([0]), max: new Float32Array([1]) };
 * const b = { min: new Float32Array([0]), max: new Float32Array([127]) };
 * movingAverageMinMax(movingAverageMinMax(null, a), b).max[0]; // 2.26 (float32)
 * ```
 */
export function movingAverageMinMax(
  previous: MinMax | null,
  current: MinMax,
  averagingConstant = DEFAULT_AVERAGING_CONSTANT,
  dtype: ComputeDType = "F32",
): MinMax {
  if (previous === null) return current;
  const r = rounderFor(dtype);
  const keep = Math.fround(1 - averagingConstant);
  const take = Math.fround(averagingConstant);
  const n = current.min.length;
  const min = new Float32Array(n);
  const max = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    min[i] = r(r(previous.min[i] * keep) + r(current.min[i] * take));
    max[i] = r(r(previous.max[i] * keep) + r(current.max[i] * take));
  }
  return { min, max };
}

/** Parameters of the MSE grid search (observer_kwargs). */
export interface MseOptions {
  /** Largest fraction the range is shrunk by (0.20). */
  readonly maxshrink: number;
  /** Stop after this many steps without any slot improving (5). */
  readonly patience: number;
  /** Steps per unit shrink (100.0). */
  readonly grid: number;
  /** Error exponent (2.4). */
  readonly norm: number;
}

/** llm-compressor 0.9's MSE defaults. */
export const DEFAULT_MSE_OPTIONS: MseOptions = Object.freeze({
  maxshrink: 0.2,
  patience: 5,
  grid: 100,
  norm: 2.4,
});

/**
 * MSE grid search (`memoryless_mse`): for i = 0 … floor(maxshrink·grid)−1,
 * p = 1 − i/grid, candidate range (p·min, p·max); fake-quantize every slot
 * with the candidate qparams and keep, per slot, the range with the lowest
 * Σ|x̂ − x|^norm; stop after `patience` steps in which no slot improved.
 * The error is accumulated in double precision (PyTorch sums in float32 in
 * an unspecified order, so a near-tie may resolve differently).
 *
 * @param view the observed values
 * @param args quantization args
 * @param options grid parameters
 * @param globalScale fixed global scale (tensor_group), unless `optimizeGlobalScale`
 * @param optimizeGlobalScale recompute the global scale from each candidate range
 * @param dtype the tensor dtype emulated
 * @returns the best per-slot min/max
 * @example
 * ```ts
 * import { mseMinMax, DEFAULT_MSE_OPTIONS } from "./observers.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * const view = { data: new Float32Array([-1, 0.1, 0.2, 10]), numObservations: 1, numSlots: 1, slotLength: 4, qparamShape: [1] };
 * const best = mseMinMax(view, parseQuantizationArgs({ num_bits: 4 }, "w"), DEFAULT_MSE_OPTIONS);
 * best.max[0] <= 10; // true
 * ```
 */
export function mseMinMax(
  view: CalibrationView,
  args: QuantizationArgs,
  options: MseOptions = DEFAULT_MSE_OPTIONS,
  globalScale?: number | null,
  optimizeGlobalScale = false,
  dtype: ComputeDType = "F32",
): MinMax {
  const r = rounderFor(dtype);
  const plain = slotMinMax(view);
  const slots = view.numSlots;
  const bestMin = plain.min.slice();
  const bestMax = plain.max.slice();
  const bestErr = new Float64Array(slots).fill(3.4028234663852886e38);
  const steps = Math.floor(options.maxshrink * options.grid);
  let noImprove = 0;
  for (let i = 0; i < steps; i++) {
    const p = Math.fround(1 - i / options.grid);
    const cand: MinMax = {
      min: plain.min.map((v) => r(p * v)),
      max: plain.max.map((v) => r(p * v)),
    };
    let g = globalScale;
    if (optimizeGlobalScale) {
      let amax = 0;
      for (let s = 0; s < slots; s++) {
        amax = Math.max(amax, Math.abs(Math.min(cand.min[s], 0)), Math.max(cand.max[s], 0));
      }
      g = globalScaleFor(amax, dtype);
    }
    const qp = calculateQParams(cand.min, cand.max, args, g, dtype);
    const q = fakeQuantizeView(view, qp, args, { globalScale: g, dtype });
    const err = slotErrors(view, q, options.norm);
    let improved = false;
    for (let s = 0; s < slots; s++) {
      if (err[s] < bestErr[s]) {
        bestErr[s] = err[s];
        bestMin[s] = cand.min[s];
        bestMax[s] = cand.max[s];
        improved = true;
      }
    }
    if (improved) noImprove = 0;
    else if (++noImprove >= options.patience) break;
  }
  return { min: bestMin, max: bestMax };
}

function slotErrors(view: CalibrationView, q: Float32Array, norm: number): Float64Array {
  const { data, numObservations, numSlots, slotLength } = view;
  const err = new Float64Array(numSlots);
  for (let o = 0; o < numObservations; o++) {
    for (let s = 0; s < numSlots; s++) {
      const base = (o * numSlots + s) * slotLength;
      let acc = 0;
      for (let e = 0; e < slotLength; e++) acc += Math.abs(q[base + e] - data[base + e]) ** norm;
      err[s] += acc;
    }
  }
  return err;
}

function kwargNumber(
  kwargs: Readonly<Record<string, JsonValue>>,
  key: string,
  fallback: number,
): number {
  const v = kwargs[key];
  if (v === undefined || v === null) return fallback;
  if (v instanceof PyFloat) return v.value;
  if (typeof v !== "number") {
    throw new QuantizationConfigError(
      `observer_kwargs.${key}: expected a number, got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

/**
 * `observer_kwargs.averaging_constant` of args, or the default 0.01; every
 * observation checks it, whichever observer reads it.
 *
 * @param args quantization args
 * @returns the averaging constant
 * @throws {QuantizationConfigError} when it is present and not a number
 * @example
 * ```ts
 * import { averagingConstantOf } from "./observers.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * averagingConstantOf(parseQuantizationArgs({ num_bits: 8 }, "w")); // 0.01
 * ```
 */
export function averagingConstantOf(args: QuantizationArgs): number {
  return kwargNumber(args.observerKwargs, "averaging_constant", DEFAULT_AVERAGING_CONSTANT);
}

/**
 * The MSE options of args (observer_kwargs over the defaults).
 *
 * @param args quantization args
 * @returns the grid search parameters
 * @example
 * ```ts
 * import { mseOptionsOf } from "./observers.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * mseOptionsOf(parseQuantizationArgs({ observer: "mse", observer_kwargs: { norm: 2 } }, "w")).norm; // 2
 * ```
 */
export function mseOptionsOf(args: QuantizationArgs): MseOptions {
  const k = args.observerKwargs;
  return {
    maxshrink: kwargNumber(k, "maxshrink", DEFAULT_MSE_OPTIONS.maxshrink),
    patience: kwargNumber(k, "patience", DEFAULT_MSE_OPTIONS.patience),
    grid: kwargNumber(k, "grid", DEFAULT_MSE_OPTIONS.grid),
    norm: kwargNumber(k, "norm", DEFAULT_MSE_OPTIONS.norm),
  };
}

/** The running state of one observer. */
export interface ObserverState {
  /** The statistic so far (null before the first observation). */
  readonly minMax: MinMax | null;
  /** Number of observations folded in. */
  readonly count: number;
}

/** The state before any observation. */
export const EMPTY_OBSERVER_STATE: ObserverState = Object.freeze({ minMax: null, count: 0 });

/**
 * Folds one observation into an observer's state, dispatching on
 * `args.observer`.
 *
 * @param state the state so far
 * @param view this observation
 * @param args quantization args (observer name and kwargs)
 * @param options global scale for MSE on tensor_group args; dtype
 * @returns the new state
 * @throws {QuantizationConfigError} for an unknown observer or a dynamic (observer-less) args
 * @example
 * ```ts
 * import { observe, EMPTY_OBSERVER_STATE } from "./observers.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * const args = parseQuantizationArgs({ num_bits: 8, observer: "static_minmax" }, "in");
 * const view = { data: new Float32Array([-2, 3]), numObservations: 2, numSlots: 1, slotLength: 1, qparamShape: [1] };
 * observe(EMPTY_OBSERVER_STATE, view, args).minMax?.max[0]; // 3
 * ```
 */
export function observe(
  state: ObserverState,
  view: CalibrationView,
  args: QuantizationArgs,
  options: { globalScale?: number | null; dtype?: ComputeDType } = {},
): ObserverState {
  const dtype = options.dtype ?? "F32";
  const c = averagingConstantOf(args);
  let next: MinMax;
  switch (args.observer) {
    case "memoryless_minmax":
      next = slotMinMax(view);
      break;
    case "static_minmax":
      next = staticMinMax(state.minMax, slotMinMax(view));
      break;
    case "minmax":
      next = movingAverageMinMax(state.minMax, slotMinMax(view), c, dtype);
      break;
    case "memoryless_mse":
      next = mseMinMax(view, args, mseOptionsOf(args), options.globalScale, false, dtype);
      break;
    case "mse":
      next = movingAverageMinMax(
        state.minMax,
        mseMinMax(view, args, mseOptionsOf(args), options.globalScale, false, dtype),
        c,
        dtype,
      );
      break;
    default:
      throw new QuantizationConfigError(
        `observer ${JSON.stringify(args.observer)} is not one of minmax, static_minmax, ` +
          `memoryless_minmax, mse, memoryless_mse`,
      );
  }
  return { minMax: next, count: state.count + 1 };
}

/**
 * The qparams of an observer state.
 *
 * @param state an observer state with at least one observation
 * @param args quantization args
 * @param options global scale (tensor_group) and dtype
 * @returns scales and zero points
 * @throws {QuantizationConfigError} before any observation, or tensor_group without a global scale
 * @example
 * ```ts
 * import { observe, qparamsOf, EMPTY_OBSERVER_STATE } from "./observers.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * const args = parseQuantizationArgs({ num_bits: 8 }, "w");
 * const view = { data: new Float32Array([1, 1, 1, 1, 1]), numObservations: 1, numSlots: 1, slotLength: 5, qparamShape: [1] };
 * qparamsOf(observe(EMPTY_OBSERVER_STATE, view, args), args).scale[0]; // ≈ 0.0078 (1/127.5)
 * ```
 */
export function qparamsOf(
  state: ObserverState,
  args: QuantizationArgs,
  options: { globalScale?: number | null; dtype?: ComputeDType } = {},
): QParams {
  if (state.minMax === null) {
    throw new QuantizationConfigError("observer has seen no values; cannot compute qparams");
  }
  const hasGlobal = options.globalScale !== undefined && options.globalScale !== null;
  if (args.strategy === "tensor_group" && !hasGlobal) {
    throw new QuantizationConfigError(
      "tensor_group quantization needs a global scale before local scales can be computed",
    );
  }
  return calculateQParams(
    state.minMax.min,
    state.minMax.max,
    args,
    options.globalScale,
    options.dtype ?? "F32",
  );
}

/**
 * The absolute maximum of a whole tensor, `max(|min(x,0)|, |max(x,0)|)`,
 * which the global scale is computed from.
 *
 * @param values the tensor
 * @returns its amax (0 for an all-zero tensor)
 * @example
 * ```ts
 * import { tensorAmax } from "./observers.ts";
 * tensorAmax(new Float32Array([-12, 3])); // 12
 * ```
 */
export function tensorAmax(values: Float32Array): number {
  // On the bits without the sign, one integer comparison per element finds
  // the largest magnitude; patterns above +Infinity's are NaNs, which are
  // skipped as `max(|min(x, 0)|, max(x, 0))` skips them.
  const bits = new Int32Array(values.buffer, values.byteOffset, values.length);
  let m = 0;
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i] & 0x7fffffff;
    if (b > m && b <= 0x7f800000) m = b;
  }
  return new Float32Array(new Int32Array([m]).buffer)[0];
}
