/**
 * The quantization parameters GPTQ fixes before its column loop, from the
 * unmodified weight (llm-compressor 0.9 `quantize_weight`): a memoryless
 * min/max observer over the weight in the strategy's layout, then
 * `calculate_qparams` — both from src/quant, so GPTQ and RTN agree on
 * every scale. Also the per-column lookup the engines' column loops use.
 *
 * Strategies: tensor, channel, group (actorder none / "weight" / "group"),
 * tensor_group (NVFP4: scales under a global scale; upstream GPTQ supports
 * it only [later]), and block (also [later] upstream): block scales are
 * fixed per [bh, bw] tile of the unmodified weight, like group scales.
 *
 * @module
 */

import type { ColumnQuantization } from "../../engine/engine.ts";
import { canonicalActorder, type QuantizationArgs } from "../../quant/args.ts";
import { slotMinMax, weightCalibrationView } from "../../quant/calibration_view.ts";
import { tensorAmax } from "../../quant/observers.ts";
import { calculateQParams, globalScaleFor, quantizedRange } from "../../quant/qparams.ts";
import { GptqConfigError, GptqShapeError } from "./errors.ts";

/** How the column loop finds (and applies) the scale of element (row, permuted column). */
export type { ColumnQuantization };

/** Scales and zero points of one weight, and their column-loop lookup. */
export interface GptqQParams {
  /** Scales in the qparam shape's row-major order. */
  readonly scale: Float32Array;
  /** Zero points (all 0 when symmetric). */
  readonly zeroPoint: Float32Array;
  /** The qparam shape, e.g. [out, 1] for channel. */
  readonly qparamShape: readonly number[];
  /** The tensor_group global scale, or null. */
  readonly globalScale: number | null;
  /** Group id per original column when actorder is "group" (saved as weight_g_idx), else null. */
  readonly gIdx: Int32Array | null;
  /** The loop's lookup. */
  readonly columns: ColumnQuantization;
}

/** Options of {@link gptqQParams}. */
export interface GptqQParamsOptions {
  /** The (fused) global scale for tensor_group; computed from the weight when absent. */
  globalScale?: number | null;
  /** The module name, for error messages. */
  where?: string;
}

/**
 * Checks that GPTQ can quantize a weight with `args`.
 *
 * @param args the weight's quantization args
 * @param where the module name
 * @returns nothing
 * @throws {GptqConfigError} for dynamic args or a strategy GPTQ does not support
 *
 * @example
 * ```ts
 * import { parseQuantizationArgs } from "../../quant/args.ts";
 * import { checkGptqArgs } from "./gptq_qparams.ts";
 * checkGptqArgs(parseQuantizationArgs({ num_bits: 4, group_size: 128 }, "w"), "q_proj");
 * ```
 */
export function checkGptqArgs(args: QuantizationArgs, where: string): void {
  if (args.dynamic !== false) {
    throw new GptqConfigError(`${where}: GPTQ quantizes static weights; args are dynamic`);
  }
  const ok = ["tensor", "channel", "group", "tensor_group", "block"];
  if (!ok.includes(args.strategy)) {
    throw new GptqConfigError(
      `${where}: quantization strategy ${args.strategy} is not supported for GPTQ ` +
        `(supported: ${ok.join(", ")})`,
    );
  }
}

/**
 * Computes the qparams GPTQ uses, given the column order it will process.
 *
 * @param weight the unmodified weight, row-major [rows, cols]
 * @param shape [rows, cols]
 * @param args the weight's quantization args
 * @param perm the activation order (position → column) or null; required
 *   exactly when args.actorder is set
 * @param options global scale, module name
 * @returns scales, zero points, g_idx and the column-loop lookup
 * @throws {GptqConfigError} for unsupported args or a missing/extra permutation
 * @throws {QuantizationShapeError} when a group or block does not tile the weight
 *
 * @example
 * ```ts
 * import { parseQuantizationArgs } from "../../quant/args.ts";
 * import { gptqQParams } from "./gptq_qparams.ts";
 * const args = parseQuantizationArgs({ num_bits: 8, strategy: "channel" }, "w");
 * const q = gptqQParams(new Float32Array([1, -2, 3, 4]), [2, 2], args, null);
 * q.qparamShape; // [2, 1]
 * ```
 */
export function gptqQParams(
  weight: Float32Array,
  shape: readonly [number, number],
  args: QuantizationArgs,
  perm: Int32Array | null,
  options: GptqQParamsOptions = {},
): GptqQParams {
  const where = options.where ?? "weight";
  checkGptqArgs(args, where);
  const [rows, cols] = shape;
  if (weight.length !== rows * cols) {
    throw new GptqShapeError(`${where}: ${weight.length} values for shape [${rows}, ${cols}]`);
  }
  const actorder = canonicalActorder(args.actorder);
  if ((actorder !== null) !== (perm !== null)) {
    throw new GptqConfigError(
      `${where}: actorder ${args.actorder} needs ${actorder ? "a" : "no"} column permutation`,
    );
  }
  if (perm !== null && perm.length !== cols) {
    throw new GptqShapeError(`${where}: permutation of ${perm.length} for ${cols} columns`);
  }
  // actorder "group": groups are contiguous runs of the permuted columns.
  const observed = actorder === "group" ? permuteColumns(weight, rows, cols, perm!) : weight;
  const globalScale = args.strategy === "tensor_group"
    ? Math.fround(options.globalScale ?? globalScaleFor(tensorAmax(weight)))
    : null;
  const view = weightCalibrationView(observed, shape, args, { where });
  const { min, max } = slotMinMax(view);
  const { scale, zeroPoint } = calculateQParams(min, max, args, globalScale);

  const columnSlot = new Uint32Array(cols);
  let rowDiv = 1;
  let slotRowStride = 0;
  let gIdx: Int32Array | null = null;
  switch (args.strategy) {
    case "tensor":
      break;
    case "channel":
      slotRowStride = 1;
      break;
    case "group":
    case "tensor_group": {
      const g = args.groupSize!;
      slotRowStride = cols / g;
      for (let p = 0; p < cols; p++) {
        // "weight": scales over original columns, looked up through the permutation.
        columnSlot[p] = Math.floor((actorder === "weight" ? perm![p] : p) / g);
      }
      if (actorder === "group") {
        gIdx = new Int32Array(cols);
        for (let p = 0; p < cols; p++) gIdx[perm![p]] = Math.floor(p / g);
      }
      break;
    }
    case "block": {
      const [bh, bw] = args.blockStructure!;
      rowDiv = bh;
      slotRowStride = cols / bw;
      for (let p = 0; p < cols; p++) columnSlot[p] = Math.floor(p / bw);
      break;
    }
  }
  const effectiveScale = globalScale === null
    ? scale
    : scale.map((s) => Math.fround(s / globalScale));
  const [qmin, qmax] = quantizedRange(args);
  const kind = args.type === "int" ? 1 : args.numBits === 8 ? 2 : 3;
  return {
    scale,
    zeroPoint,
    qparamShape: view.qparamShape,
    globalScale,
    gIdx,
    columns: {
      kind,
      qmin,
      qmax,
      effectiveScale,
      zeroPoint,
      columnSlot,
      rowDiv,
      slotRowStride,
    },
  };
}

/**
 * W[:, perm]: the weight with its columns in the given order.
 *
 * @param weight row-major [rows, cols]
 * @param rows rows
 * @param cols columns
 * @param perm position → original column
 * @returns the permuted copy
 *
 * @example
 * ```ts
 * import { permuteColumns } from "./gptq_qparams.ts";
 * permuteColumns(new Float32Array([1, 2, 3, 4]), 2, 2, Int32Array.of(1, 0)); // [2, 1, 4, 3]
 * ```
 */
export function permuteColumns(
  weight: Float32Array,
  rows: number,
  cols: number,
  perm: Int32Array,
): Float32Array {
  const out = new Float32Array(weight.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let p = 0; p < cols; p++) out[base + p] = weight[base + perm[p]];
  }
  return out;
}
