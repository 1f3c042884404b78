/**
 * A plain TypeScript SparseGPT (f64 linear algebra), written from §4.5 and
 * llm-compressor 0.9's `sparsify_weight`: dead columns, the preserved zero
 * mask, dampening, U = chol(chol⁻¹(chol(H)))ᵀ, per-block unstructured
 * thresholds or N:M selection, the OBS update inside and between blocks.
 * The yardstick of the engines' implementations; O(cols³ + rows·cols²).
 *
 * Where llmc departs from upstream it departs here too, so the two are
 * comparable: dampening retries then U = I instead of raising; N:M windows
 * of the preserved mask indexed by absolute column (upstream indexes the
 * full mask by the block-relative column); ties in N:M broken towards the
 * lower column; optional quantization after pruning (see sparsegpt_prune.ts).
 *
 * @module
 */

import type { QuantizationArgs } from "../../quant/args.ts";
import { fakeQuantizeValue } from "../../quant/quantize.ts";
import { GptqShapeError } from "../gptq/errors.ts";
import { gptqQParams } from "../gptq/gptq_qparams.ts";
import { dampeningSchedule } from "../gptq/dampening.ts";
import { qparamSlot, upperFactorOfInverse } from "../gptq/reference.ts";
import { parseMaskStructure } from "./mask_structure.ts";

/** Options of {@link sparsegptReference}. */
export interface SparseGptReferenceOptions {
  /** Target sparsity per block (unstructured). */
  sparsity: number;
  /** `"0:0"` or `"N:M"`. */
  maskStructure?: string;
  /** Columns per block (default 128). */
  blockSize?: number;
  /** Dampening fraction (default 0.01). */
  dampeningFrac?: number;
  /** Retries with 10× dampening (default 3). */
  maxRetries?: number;
  /** Keep existing zeros pruned. */
  preserveSparsityMask?: boolean;
  /** Fake-quantize after pruning. */
  quantization?: QuantizationArgs;
  /** tensor_group global scale. */
  globalScale?: number | null;
}

/** The reference's result. */
export interface SparseGptReferenceResult {
  /** Pruned (and maybe fake-quantized) weight. */
  readonly weight: Float32Array;
  /** Σ (w − q)²/d² / 2. */
  readonly loss: number;
  /** Every factorization failed: U = I. */
  readonly fellBackToMagnitude: boolean;
  /** Factorizations tried. */
  readonly attempts: number;
  /** Always null (SparseGPT keeps the column order); for comparisons with GPTQ's shape. */
  readonly perm: null;
  /**
   * Per element, how close its pruning decision was: the relative distance
   * of its metric W²/d² from the block threshold (unstructured), or the
   * relative gap between the N-th and (N+1)-th smallest metric of its
   * window (N:M); Infinity where nothing was decided.
   */
  readonly decisionMargin: Float64Array;
  /** x/s + zp before rounding, per element (NaN when not quantized or pruned). */
  readonly preRound: Float64Array;
}

/**
 * SparseGPT on the CPU.
 *
 * @param weight row-major [rows, cols]
 * @param shape [rows, cols]
 * @param hessian the full symmetric H, [cols, cols]
 * @param options sparsity, structure, block size, dampening, preservation, quantization
 * @returns the pruned weight and diagnostics
 * @throws {GptqShapeError} when the Hessian is not [cols, cols]
 *
 * @example
 * ```ts
 * import { sparsegptReference } from "./reference.ts";
 * const h = new Float64Array([2, 1, 0, 0, 1, 2, 0, 0, 0, 0, 2, 1, 0, 0, 1, 2]);
 * const r = sparsegptReference(new Float32Array([1, -2, 0.5, 3]), [1, 4], h, {
 *   sparsity: 0.5, maskStructure: "2:4", blockSize: 4,
 * });
 * console.assert(r.weight.filter((v) => v === 0).length >= 2);
 * ```
 */
export function sparsegptReference(
  weight: Float32Array,
  shape: readonly [number, number],
  hessian: ArrayLike<number>,
  options: SparseGptReferenceOptions,
): SparseGptReferenceResult {
  const [rows, cols] = shape;
  if (hessian.length !== cols * cols) {
    throw new GptqShapeError(`reference: Hessian of ${hessian.length} values for ${cols} columns`);
  }
  const bs = options.blockSize ?? 128;
  const structure = parseMaskStructure(options.maskStructure ?? "0:0");
  const args = options.quantization;
  const qp = args
    ? gptqQParams(weight, shape, args, null, { globalScale: options.globalScale })
    : null;

  const w = Float64Array.from(weight);
  const h = Float64Array.from(hessian);
  for (let i = 0; i < cols; i++) {
    if (h[i * cols + i] === 0) {
      h[i * cols + i] = 1;
      for (let r = 0; r < rows; r++) w[r * cols + i] = 0;
    }
  }
  const preserved = options.preserveSparsityMask ? w.map((v) => (v === 0 ? 1 : 0)) : null;
  let meanDiag = 0;
  for (let i = 0; i < cols; i++) meanDiag += h[i * cols + i];
  meanDiag = Math.fround(meanDiag / cols);
  const schedule = dampeningSchedule(options.dampeningFrac ?? 0.01, options.maxRetries ?? 3);
  let u: Float64Array | null = null;
  let attempts = 0;
  for (let k = 0; k < schedule.length && u === null; k++) {
    attempts++;
    const damp = Math.fround(schedule[k] * meanDiag);
    const hd = h.slice();
    for (let i = 0; i < cols; i++) hd[i * cols + i] = Math.fround(hd[i * cols + i] + damp);
    u = upperFactorOfInverse(hd, cols);
  }
  const fellBack = u === null;
  if (u === null) {
    u = new Float64Array(cols * cols);
    for (let i = 0; i < cols; i++) u[i * cols + i] = 1;
  }

  const margin = new Float64Array(rows * cols).fill(Infinity);
  const pre = new Float64Array(rows * cols).fill(NaN);
  const pruned = new Uint8Array(rows * cols);
  const isPreserved = (idx: number) => preserved !== null && preserved[idx] === 1;
  const metric = (idx: number, c: number) =>
    isPreserved(idx) ? 0 : (w[idx] * w[idx]) / (u![c * cols + c] * u![c * cols + c]);
  const err = new Float64Array(rows * bs);
  let loss = 0;
  for (let i1 = 0; i1 < cols; i1 += bs) {
    const i2 = Math.min(i1 + bs, cols);
    const count = i2 - i1;
    if (structure.kind === "unstructured") {
      const k = Math.floor(rows * count * options.sparsity);
      const values: number[] = [];
      let preservedCount = 0;
      for (let r = 0; r < rows; r++) {
        for (let c = i1; c < i2; c++) {
          values.push(metric(r * cols + c, c));
          if (isPreserved(r * cols + c)) preservedCount++;
        }
      }
      const thresh = values.slice().sort((a, b) => a - b)[k];
      const extend = preserved === null || k > preservedCount;
      for (let r = 0; r < rows; r++) {
        for (let c = i1; c < i2; c++) {
          const idx = r * cols + c;
          const m = metric(idx, c);
          if (isPreserved(idx) || (extend && m <= thresh)) pruned[idx] = 1;
          if (extend && !isPreserved(idx)) {
            margin[idx] = Math.abs(m - thresh) / Math.max(thresh, Number.MIN_VALUE);
          }
        }
      }
    } else if (preserved) {
      for (let r = 0; r < rows; r++) {
        for (let c = i1; c < i2; c++) if (isPreserved(r * cols + c)) pruned[r * cols + c] = 1;
      }
    }
    for (let r = 0; r < rows; r++) {
      const row = r * cols;
      for (let i = i1; i < i2; i++) {
        if (structure.kind === "n:m" && (i - i1) % structure.m === 0) {
          const end = Math.min(i + structure.m, i2);
          const window = [];
          for (let j = i; j < end; j++) window.push({ j, m: metric(row + j, j) });
          window.sort((a, b) => a.m - b.m || a.j - b.j);
          for (let n = 0; n < Math.min(structure.n, window.length); n++) {
            pruned[row + window[n].j] = 1;
          }
          if (structure.n < window.length) {
            const lo = window[structure.n - 1].m;
            const hi = window[structure.n].m;
            const gap = (hi - lo) / Math.max(hi, Number.MIN_VALUE);
            for (let j = i; j < end; j++) margin[row + j] = gap;
          }
        }
        const x = w[row + i];
        const d = u[i * cols + i];
        let q = pruned[row + i] ? 0 : x;
        if (args && qp) {
          const s = qparamSlot(args, null, r, i, i, cols);
          const xf = Math.fround(q);
          const sEff = qp.globalScale === null
            ? qp.scale[s]
            : Math.fround(qp.scale[s] / qp.globalScale);
          pre[row + i] = xf / sEff + qp.zeroPoint[s];
          q = fakeQuantizeValue(xf, qp.scale[s], qp.zeroPoint[s], args, {
            globalScale: qp.globalScale,
          });
        }
        loss += ((x - q) * (x - q)) / (d * d) / 2;
        const e = (x - q) / d;
        for (let j = i + 1; j < i2; j++) w[row + j] -= e * u[i * cols + j];
        w[row + i] = q;
        err[r * bs + (i - i1)] = e;
      }
      for (let j = i2; j < cols; j++) {
        let acc = 0;
        for (let i = i1; i < i2; i++) acc += err[r * bs + (i - i1)] * u[i * cols + j];
        // With a preserved mask, preserved zeros take no update from other blocks.
        if (!isPreserved(row + j)) w[row + j] -= acc;
      }
    }
  }
  return {
    weight: Float32Array.from(w),
    loss,
    fellBackToMagnitude: fellBack,
    attempts,
    perm: null,
    decisionMargin: margin,
    preRound: pre,
  };
}
