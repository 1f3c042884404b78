/**
 * Round-to-nearest fake quantization of a layer's weights on its engine:
 * GPTQ's comparison (the rtnOutputError metric) fake-quantizes every
 * targeted weight of a layer with its RTN qparams. A weight whose qparams
 * are one scale (and zero point) per contiguous run of its row-major values
 * — tensor, channel, and group strategies whose groups tile the rows, on an
 * integer grid, float32, no global scale or g_idx — is exactly the
 * engine's `fakeQuantizeRows` of the values viewed as one row per run (the
 * engines give `fakeQuantize`'s bits; the CPU engine runs it on its
 * kernels). Every other weight goes through the host `fakeQuantize`.
 *
 * @module
 */

import { hostFakeQuantizeRows, hostRowMinMax } from "../../engine/host_kernels.ts";
import { slotMinMax } from "../../quant/calibration_view.ts";
import type { CalibrationView, MinMax } from "../../quant/calibration_view.ts";
import type { Engine, Tensor } from "../../engine/engine.ts";
import type { QuantizationArgs } from "../../quant/args.ts";
import type { ComputeDType } from "../../quant/compute_dtype.ts";
import { fakeQuantize } from "../../quant/quantize.ts";
import type { RtnQParams } from "../../quant/rtn.ts";

/** A weight and its round-to-nearest qparams. */
export interface RtnFakeQuantizeInput {
  /** The module name, for messages. */
  readonly name: string;
  /** The weight `[out, in]`, row-major (not modified). */
  readonly values: Float32Array;
  readonly shape: readonly [number, number];
  readonly args: QuantizationArgs;
  readonly qparams: RtnQParams;
  readonly dtype: ComputeDType;
}

/**
 * `[runs, run length]` when a weight's qparams are one per contiguous run of
 * its row-major values and the engine's rows give `fakeQuantize`'s result;
 * else null.
 *
 * @param w the weight and its qparams
 * @returns the rows view, or null for the host path
 * @example
 * ```ts
 * import { engineRowsOf } from "./rtn_fake_quantize.ts";
 * import { parseQuantizationArgs } from "../../quant/args.ts";
 * const args = parseQuantizationArgs({ num_bits: 4, strategy: "group", group_size: 2 }, "w");
 * const qparams = { scale: new Float32Array(4), zeroPoint: new Float32Array(4), globalScale: null, gIdx: null, qparamShape: [2, 2] };
 * const rows = engineRowsOf({ name: "m", values: new Float32Array(8), shape: [2, 4], args, qparams, dtype: "F32" });
 * console.assert(rows !== null && rows[0] === 4 && rows[1] === 2);
 * ```
 */
export function engineRowsOf(w: RtnFakeQuantizeInput): [number, number] | null {
  const { args, qparams, shape: [rows, cols] } = w;
  if (
    w.dtype !== "F32" || args.type !== "int" || qparams.globalScale !== null ||
    qparams.gIdx !== null || rows * cols !== w.values.length
  ) {
    return null;
  }
  const slots = qparams.scale.length;
  if (args.strategy === "tensor") return slots === 1 ? [rows, cols] : null;
  if (args.strategy === "channel") return slots === rows ? [rows, cols] : null;
  if (args.strategy === "group") {
    const g = args.groupSize;
    return g !== null && g !== undefined && g > 0 && cols % g === 0 && slots === rows * (cols / g)
      ? [slots, g]
      : null;
  }
  return null;
}

/**
 * The fake-quantized weights, in order: the engine's rows where
 * {@link engineRowsOf} allows, else the host `fakeQuantize`; the same bits
 * either way. Each engine weight is uploaded and fake-quantized and its
 * inputs released at once; the results come back in one read (one device
 * round trip for the layer, not one per weight), so the engine holds the
 * layer's fake-quantized weights until then. The engine's pool is trimmed
 * after (see the comment there).
 *
 * @param engine the layer's engine
 * @param weights the weights with their RTN qparams
 * @returns one fake-quantized weight per input
 * @example
 * ```ts ignore
 * const [q] = await rtnFakeQuantize(engine, [{ name, values, shape, args, qparams, dtype: "F32" }]);
 * ```
 */
export async function rtnFakeQuantize(
  engine: Engine,
  weights: readonly RtnFakeQuantizeInput[],
): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  const onEngine: { at: number; y: Tensor }[] = [];
  try {
    for (const w of weights) {
      const view = engineRowsOf(w);
      if (view === null) {
        out.push(fakeQuantize(w.values, w.shape, w.qparams, w.args, {
          dtype: w.dtype,
          where: w.name,
        }));
      } else {
        onEngine.push({ at: out.length, y: engineRows(engine, w, view) });
        out.push(new Float32Array(0));
      }
    }
    if (onEngine.length > 0) {
      const read = await engine.read(onEngine.map((e) => e.y));
      onEngine.forEach((e, i) => out[e.at] = read[i] as Float32Array);
    }
  } finally {
    for (const { y } of onEngine) y.destroy();
    // The engine would keep these weight-sized arrays for reuse; no later
    // tensor of the layer has their sizes, so they would only add to the
    // propagation's memory until the next layer's trim.
    if (onEngine.length > 0) engine.trim();
  }
  return out;
}

/**
 * One weight fake-quantized on the host, synchronously: where
 * {@link engineRowsOf} allows, the CPU kernels' rows (`hostFakeQuantizeRows`,
 * the CPU engine's `fakeQuantizeRows` on host arrays, threaded natively),
 * else the host `fakeQuantize`; the same bits either way. For callers that
 * build weights on the host one at a time (AWQ's grid candidates), whatever
 * the engine.
 *
 * @param w the weight and its RTN qparams
 * @returns the fake-quantized weight, a new array
 * @example
 * ```ts
 * import { hostRtnFakeQuantize } from "./rtn_fake_quantize.ts";
 * import { parseQuantizationArgs } from "../../quant/args.ts";
 * const args = parseQuantizationArgs({ num_bits: 4, strategy: "channel" }, "w");
 * const qparams = { scale: new Float32Array([0.25]), zeroPoint: new Float32Array(1), globalScale: null, gIdx: null, qparamShape: [1, 1] };
 * const q = hostRtnFakeQuantize({ name: "m", values: new Float32Array([0.3, -9]), shape: [1, 2], args, qparams, dtype: "F32" });
 * console.assert(q[0] === 0.25 && q[1] === -2);
 * ```
 */
export function hostRtnFakeQuantize(w: RtnFakeQuantizeInput): Float32Array {
  const view = engineRowsOf(w);
  if (view === null) {
    return fakeQuantize(w.values, w.shape, w.qparams, w.args, { dtype: w.dtype, where: w.name });
  }
  const [rows] = view;
  const perRow = (v: Float32Array) => v.length === rows ? v : new Float32Array(rows).fill(v[0]);
  const { scale, zeroPoint } = w.qparams;
  const y = new Float32Array(w.values.length);
  return hostFakeQuantizeRows(w.values, rows, perRow(scale), perRow(zeroPoint), w.args, y);
}

/**
 * `slotMinMax(view)` with the CPU kernels' `hostRowMinMax` for a weight's view
 * (one observation, each slot contiguous), the same bits: the kernels fold
 * as Math.min and Math.max do, slotMinMax keeps the first of equal values
 * and the last NaN, and the two differ only where an extreme is a zero
 * (−0 against +0) or NaN, so those slots are folded again by slotMinMax.
 * Any other view goes to slotMinMax.
 *
 * @param view the calibration view
 * @returns one min and one max per slot
 * @example
 * ```ts
 * import { hostSlotMinMax } from "./rtn_fake_quantize.ts";
 * const mm = hostSlotMinMax({ data: new Float32Array([1, -2, 0, -0]), numObservations: 1, numSlots: 2, slotLength: 2, qparamShape: [2, 1] });
 * console.assert(mm.min[0] === -2 && Object.is(mm.min[1], 0) && Object.is(mm.max[1], 0));
 * ```
 */
export function hostSlotMinMax(view: CalibrationView): MinMax {
  const { data, numObservations, numSlots, slotLength } = view;
  // One slot (the tensor strategy) would be one row as long as the weight in the kernels'
  // memory, which never shrinks: the host fold reads it in place instead.
  if (numObservations !== 1 || numSlots < 2 || slotLength === 0) return slotMinMax(view);
  const min = new Float32Array(numSlots);
  const max = new Float32Array(numSlots);
  hostRowMinMax(data, numSlots, slotLength, min, max);
  for (let s = 0; s < numSlots; s++) {
    // A zero or NaN extreme (0 === −0; NaN !== NaN): slotMinMax's own fold.
    if (min[s] === 0 || max[s] === 0 || min[s] !== min[s] || max[s] !== max[s]) {
      const slot = slotMinMax({
        data: data.subarray(s * slotLength, (s + 1) * slotLength),
        numObservations: 1,
        numSlots: 1,
        slotLength,
        qparamShape: [1],
      });
      min[s] = slot.min[0];
      max[s] = slot.max[0];
    }
  }
  return { min, max };
}

/** One weight through the engine's `fakeQuantizeRows`, viewed as `[rows, run]`; its inputs released. */
function engineRows(
  engine: Engine,
  w: RtnFakeQuantizeInput,
  [rows, run]: [number, number],
): Tensor {
  const perRow = (v: Float32Array) => v.length === rows ? v : new Float32Array(rows).fill(v[0]);
  const inputs: Tensor[] = [];
  try {
    inputs.push(engine.upload(w.values, [rows, run]));
    inputs.push(engine.upload(perRow(w.qparams.scale), [rows]));
    inputs.push(engine.upload(perRow(w.qparams.zeroPoint), [rows]));
    const [x, s, z] = inputs;
    return engine.fakeQuantizeRows(x, s, z, w.args);
  } finally {
    for (const t of inputs) t.destroy();
  }
}
