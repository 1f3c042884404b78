/**
 * llm-compressor's `flatten_for_calibration` (§4.2): a tensor rearranged as
 * `(num_observations, num_slots, slot_length)`, where a slot is what shares
 * one scale (a channel, a group, a block, a head, the whole tensor). Every
 * observer reduces over observations and slot elements, so min/max, MSE and
 * fake-quantization all work on this one layout.
 *
 * @module
 */

import type { QuantizationArgs } from "./args.ts";
import { columnGroups } from "./column_groups.ts";
import { QuantizationShapeError } from "./errors.ts";

/** A tensor viewed as `(numObservations, numSlots, slotLength)`, row-major. */
export interface CalibrationView {
  /** The values in observation, slot, element order (may alias the input). */
  readonly data: Float32Array;
  /** Observations reduced over (tokens for activations, 1 for weights). */
  readonly numObservations: number;
  /** Number of qparam slots. */
  readonly numSlots: number;
  /** Elements per slot per observation. */
  readonly slotLength: number;
  /** Shape of the scale / zero-point tensor, e.g. `[out, 1]` for channel. */
  readonly qparamShape: readonly number[];
}

/** Per-slot minima and maxima. */
export interface MinMax {
  /** One minimum per slot. */
  readonly min: Float32Array;
  /** One maximum per slot. */
  readonly max: Float32Array;
}

/**
 * Views a Linear weight `[out, in]` per the weight strategy: tensor
 * `(1, 1, N)`, channel `(1, out, in)`, group / tensor_group
 * `(1, out·groups, g)` with columns gathered by `argsort(g_idx)` when given,
 * block `(1, rows/bh · cols/bw, bh·bw)`.
 *
 * @param weight the weight, row-major
 * @param shape `[out, in]`
 * @param args weight quantization args
 * @param options `gIdx` for activation-ordered groups; `where` names the module in errors
 * @returns the calibration view
 * @throws {QuantizationShapeError} for a group size or block that does not tile the weight,
 *   or a token/attn_head strategy
 * @example
 * ```ts
 * import { weightCalibrationView } from "./calibration_view.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * const v = weightCalibrationView(new Float32Array(8), [2, 4], parseQuantizationArgs({ group_size: 2 }, "w"));
 * v.qparamShape; // [2, 2]
 * ```
 */
export function weightCalibrationView(
  weight: Float32Array,
  shape: readonly [number, number],
  args: QuantizationArgs,
  options: { gIdx?: Int32Array | null; where?: string } = {},
): CalibrationView {
  const [rows, cols] = shape;
  const where = options.where ?? "weight";
  if (weight.length !== rows * cols) {
    throw new QuantizationShapeError(
      `${where}: weight has ${weight.length} values, shape [${rows}, ${cols}] needs ${rows * cols}`,
    );
  }
  switch (args.strategy) {
    case "tensor":
      return {
        data: weight,
        numObservations: 1,
        numSlots: 1,
        slotLength: rows * cols,
        qparamShape: [1],
      };
    case "channel":
      return {
        data: weight,
        numObservations: 1,
        numSlots: rows,
        slotLength: cols,
        qparamShape: [rows, 1],
      };
    case "group":
    case "tensor_group": {
      const g = args.groupSize!;
      const groups = columnGroups(cols, g, options.gIdx, where);
      const groupsPerRow = cols / g;
      let identity = true;
      for (let c = 0; c < cols && identity; c++) identity = groups[c] === Math.floor(c / g);
      let data = weight;
      if (!identity) {
        // Gather each group's columns into its contiguous slot.
        data = new Float32Array(weight.length);
        const fill = new Int32Array(groupsPerRow);
        const dest = new Int32Array(cols);
        for (let c = 0; c < cols; c++) dest[c] = groups[c] * g + fill[groups[c]]++;
        for (let r = 0; r < rows; r++) {
          const base = r * cols;
          for (let c = 0; c < cols; c++) data[base + dest[c]] = weight[base + c];
        }
      }
      return {
        data,
        numObservations: 1,
        numSlots: rows * groupsPerRow,
        slotLength: g,
        qparamShape: [rows, groupsPerRow],
      };
    }
    case "block": {
      const [bh, bw] = args.blockStructure!;
      checkBlockTiles(rows, cols, bh, bw, where);
      const br = rows / bh;
      const bc = cols / bw;
      const data = new Float32Array(weight.length);
      let k = 0;
      for (let i = 0; i < br; i++) {
        for (let j = 0; j < bc; j++) {
          for (let r = 0; r < bh; r++) {
            const base = (i * bh + r) * cols + j * bw;
            for (let c = 0; c < bw; c++) data[k++] = weight[base + c];
          }
        }
      }
      return {
        data,
        numObservations: 1,
        numSlots: br * bc,
        slotLength: bh * bw,
        qparamShape: [br, bc],
      };
    }
    case "token":
    case "attn_head":
      throw new QuantizationShapeError(
        `${where}: ${args.strategy} quantization cannot be applied to weights`,
      );
  }
}

/**
 * Checks that a block structure tiles a weight exactly.
 *
 * @param rows weight rows
 * @param cols weight columns
 * @param bh block height
 * @param bw block width
 * @param where the module name
 * @throws {QuantizationShapeError} when it does not
 * @example
 * ```ts
 * import { checkBlockTiles } from "./calibration_view.ts";
 * checkBlockTiles(256, 256, 128, 128, "w"); // ok
 * ```
 */
export function checkBlockTiles(
  rows: number,
  cols: number,
  bh: number,
  bw: number,
  where: string,
): void {
  if (rows % bh !== 0 || cols % bw !== 0) {
    throw new QuantizationShapeError(
      `${where}: block_structure [${bh}, ${bw}] does not tile the weight [${rows}, ${cols}] ` +
        `exactly; add the module to "ignore" or choose a block that divides both dimensions`,
    );
  }
}

/**
 * Views activations `[..., hidden]` (all leading dims are tokens): tensor
 * `(tokens, 1, hidden)`, token `(1, tokens, hidden)` (one slot per token, as
 * dynamic per-token scales), group / tensor_group `(tokens, hidden/g, g)`.
 *
 * @param values the activations, row-major
 * @param shape their shape, last dim = hidden
 * @param args activation quantization args
 * @param where names the tensor in errors
 * @returns the calibration view
 * @throws {QuantizationShapeError} for channel/block/attn_head or a non-dividing group size
 * @example
 * ```ts
 * import { activationCalibrationView } from "./calibration_view.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * const v = activationCalibrationView(new Float32Array(12), [1, 3, 4], parseQuantizationArgs({}, "in"));
 * v.numObservations; // 3
 * ```
 */
export function activationCalibrationView(
  values: Float32Array,
  shape: readonly number[],
  args: QuantizationArgs,
  where = "input",
): CalibrationView {
  const hidden = shape[shape.length - 1];
  const tokens = values.length / hidden;
  switch (args.strategy) {
    case "tensor":
      return {
        data: values,
        numObservations: tokens,
        numSlots: 1,
        slotLength: hidden,
        qparamShape: [1],
      };
    case "token":
      return {
        data: values,
        numObservations: 1,
        numSlots: tokens,
        slotLength: hidden,
        qparamShape: [tokens, 1],
      };
    case "group":
    case "tensor_group": {
      const g = args.groupSize!;
      if (hidden % g !== 0) {
        throw new QuantizationShapeError(
          `${where}: hidden size ${hidden} is not divisible by group_size ${g}`,
        );
      }
      return {
        data: values,
        numObservations: tokens,
        numSlots: hidden / g,
        slotLength: g,
        qparamShape: [hidden / g],
      };
    }
    default:
      throw new QuantizationShapeError(
        `${where}: ${args.strategy} quantization cannot be applied to activations`,
      );
  }
}

/**
 * Views attention states `[batch, heads, seq, head_dim]` (K/V cache, queries):
 * tensor `(batch·seq, 1, heads·head_dim)`, attn_head `(batch·seq, heads, head_dim)`
 * with qparam shape `[heads, 1, 1]`.
 *
 * @param values the states, row-major
 * @param shape `[batch, heads, seq, headDim]`
 * @param args the KV-cache / attention args
 * @param where names the tensor in errors
 * @returns the calibration view (a transposed copy)
 * @throws {QuantizationShapeError} for strategies other than tensor and attn_head
 * @example
 * ```ts
 * import { attentionCalibrationView } from "./calibration_view.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * const args = parseQuantizationArgs({ strategy: "attn_head", type: "float" }, "kv");
 * attentionCalibrationView(new Float32Array(16), [1, 2, 4, 2], args).qparamShape; // [2, 1, 1]
 * ```
 */
export function attentionCalibrationView(
  values: Float32Array,
  shape: readonly [number, number, number, number],
  args: QuantizationArgs,
  where = "attention",
): CalibrationView {
  const [b, heads, seq, d] = shape;
  if (args.strategy !== "tensor" && args.strategy !== "attn_head") {
    throw new QuantizationShapeError(
      `${where}: ${args.strategy} quantization cannot be applied to attention states`,
    );
  }
  // (b, heads, s, d) → (b, s, heads, d): token-major, heads contiguous.
  const data = new Float32Array(values.length);
  let k = 0;
  for (let bi = 0; bi < b; bi++) {
    for (let s = 0; s < seq; s++) {
      for (let h = 0; h < heads; h++) {
        const base = ((bi * heads + h) * seq + s) * d;
        for (let e = 0; e < d; e++) data[k++] = values[base + e];
      }
    }
  }
  return args.strategy === "tensor"
    ? { data, numObservations: b * seq, numSlots: 1, slotLength: heads * d, qparamShape: [1] }
    : {
      data,
      numObservations: b * seq,
      numSlots: heads,
      slotLength: d,
      qparamShape: [heads, 1, 1],
    };
}

/**
 * Per-slot minimum and maximum of a view (reduction over observations and
 * slot elements; NaN propagates as in `torch.amin`).
 *
 * @param view the calibration view
 * @returns one min and one max per slot
 * @example
 * ```ts
 * import { slotMinMax } from "./calibration_view.ts";
 * const mm = slotMinMax({ data: new Float32Array([1, -2, 3, 4]), numObservations: 1, numSlots: 2, slotLength: 2, qparamShape: [2, 1] });
 * mm.min; // Float32Array [-2, 3]
 * ```
 */
export function slotMinMax(view: CalibrationView): MinMax {
  const { data, numObservations, numSlots, slotLength } = view;
  const min = new Float32Array(numSlots).fill(Infinity);
  const max = new Float32Array(numSlots).fill(-Infinity);
  for (let o = 0; o < numObservations; o++) {
    for (let s = 0; s < numSlots; s++) {
      let lo = min[s];
      let hi = max[s];
      const base = (o * numSlots + s) * slotLength;
      for (let e = 0; e < slotLength; e++) {
        const v = data[base + e];
        if (v < lo || v !== v) lo = v;
        if (v > hi || v !== v) hi = v;
      }
      min[s] = lo;
      max[s] = hi;
    }
  }
  return { min, max };
}

/**
 * Per-slot absolute maximum of a view, `max |x|` over observations and slot
 * elements: what a symmetric scale depends on, found with one integer
 * comparison per element (a float32's bits without the sign order as its
 * magnitude does). NaN propagates as in `torch.amax`.
 *
 * @param view the calibration view
 * @returns one absolute maximum per slot (+0 for an all-zero slot; NaN when the slot has a NaN)
 * @example
 * ```ts
 * import { slotAbsMax } from "./calibration_view.ts";
 * slotAbsMax({ data: new Float32Array([1, -2, 3, -0]), numObservations: 1, numSlots: 2, slotLength: 2, qparamShape: [2, 1] });
 * // Float32Array [2, 3]
 * ```
 */
export function slotAbsMax(view: CalibrationView): Float32Array {
  const { data, numObservations, numSlots, slotLength } = view;
  const bits = new Int32Array(data.buffer, data.byteOffset, data.length);
  const max = new Int32Array(numSlots);
  for (let o = 0; o < numObservations; o++) {
    for (let s = 0; s < numSlots; s++) {
      let m = max[s];
      const base = (o * numSlots + s) * slotLength;
      for (let e = 0; e < slotLength; e++) {
        const b = bits[base + e] & 0x7fffffff;
        m = b > m ? b : m;
      }
      max[s] = m;
    }
  }
  const out = new Float32Array(max.buffer);
  // NaN bit patterns lie above +Infinity's, so a NaN is what wins.
  for (let s = 0; s < numSlots; s++) if (max[s] > 0x7f800000) out[s] = NaN;
  return out;
}
