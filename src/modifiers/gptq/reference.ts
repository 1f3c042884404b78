/**
 * A plain TypeScript GPTQ (f64 linear algebra, src/quant's f32 fake
 * quantization and `calculate_qparams`), ported line by line from
 * llm-compressor 0.9's `quantize_weight` (gptq_quantize.py, unchanged from
 * 0.9.0 to 0.9.0.4) and written independently of the engines' paths (it does not
 * use gptq_qparams.ts), so that it can catch a departure there:
 *
 * 1. `g_idx = arange(cols) // group_size`; for `actorder: group` W and H
 *    are permuted by `argsort(diag(H), descending)` FIRST and the
 *    memoryless min/max observer then sees the permuted W with the
 *    identity g_idx: group k is permuted positions [k·g, (k+1)·g). For
 *    `actorder: weight` (and its alias `static`) the observer sees the
 *    unpermuted W, then W, H and g_idx are permuted (`g_idx[perm]`). Every
 *    group's scale and zero point are fixed here, up front, from the
 *    weight before any error propagation (0.9 no longer computes them at a
 *    group's first column from the updated weight, as 0.4–0.6 did);
 * 2. the sparsity mask `~isclose(W, 0)` when ≥ 5% of W is exactly 0, dead
 *    columns (`diag(H) = 0`: H_ii = 1, W[:, i] = 0), dampening by
 *    `percdamp · mean(diag(H))`, `cholesky(cholesky_inverse(cholesky(H)),
 *    upper=True)`;
 * 3. the blocked column loop (blocksize 128): column i of block [i1, i2)
 *    is fake-quantized with `scale[:, g_idx[i]]` as a channel-wise slice,
 *    its error propagated inside the block, the block's errors to the
 *    columns after it;
 * 4. W[:, argsort(perm)]; for `actorder: group` g_idx[argsort(perm)] is
 *    returned (saved as weight_g_idx), otherwise no g_idx.
 *
 * Upstream supports tensor, channel and group here; tensor_group (NVFP4)
 * and block are llmc extensions with the qparams of those strategies fixed
 * up front in the same way. It runs in O(cols³ + rows·cols²): keep it to
 * small layers.
 *
 * It shares llmc's two deliberate departures, so results are comparable:
 * ties of diag(H) keep column order (torch leaves them unspecified) and the
 * dampening retries before the RTN fallback (see dampening.ts).
 *
 * @module
 */

import { canonicalActorder, type QuantizationArgs } from "../../quant/args.ts";
import { tensorAmax } from "../../quant/observers.ts";
import { calculateQParams, globalScaleFor } from "../../quant/qparams.ts";
import { fakeQuantizeValue } from "../../quant/quantize.ts";
import { GptqConfigError, GptqShapeError } from "./errors.ts";
import { dampeningSchedule } from "./dampening.ts";

/** Options of {@link gptqReference}. */
export interface GptqReferenceOptions {
  /** Columns per block (default 128). */
  blockSize?: number;
  /** Dampening fraction (default 0.01). */
  dampeningFrac?: number;
  /** Retries with 10× dampening (default 3). */
  maxRetries?: number;
  /** tensor_group global scale; from the weight when absent. */
  globalScale?: number | null;
}

/** The reference's result (the engines' result fields, plus the order used). */
export interface GptqReferenceResult {
  /** Fake-quantized weight, original column order. */
  readonly weight: Float32Array;
  /** Scales. */
  readonly scale: Float32Array;
  /** Zero points. */
  readonly zeroPoint: Float32Array;
  /** Group per column (actorder "group" only). */
  readonly gIdx: Int32Array | null;
  /** Σ (w − q)²/d² / 2. */
  readonly loss: number;
  /** Every factorization failed: U = I. */
  readonly fellBackToRtn: boolean;
  /** The dampening fraction that succeeded (last tried on fallback). */
  readonly dampeningUsed: number;
  /** Factorizations tried. */
  readonly attempts: number;
  /** The column order (position → column), or null. */
  readonly perm: Int32Array | null;
  /**
   * x / s + zp of every element just before its rounding, [rows, cols] in
   * original column order: how close each element was to a rounding
   * boundary (tests use it to tell a legitimate tie flip from a bug).
   */
  readonly preRound: Float64Array;
}

/** `torch.isclose(w, 0)` with its default tolerances (atol 1e-8, rtol 1e-5). */
const ISCLOSE_ATOL = 1e-8;

/** `SPARSITY_THRESHOLD` of llmcompressor.modifiers.utils. */
const SPARSITY_THRESHOLD = 0.05;

/**
 * GPTQ on the CPU.
 *
 * @param weight row-major [rows, cols]
 * @param shape [rows, cols]
 * @param hessian the full symmetric H, row-major [cols, cols]
 * @param args the weight's quantization args
 * @param options block size, dampening, retries, global scale
 * @returns the quantized weight and diagnostics
 * @throws {GptqShapeError} when the Hessian is not [cols, cols] or a group / block does not tile W
 * @throws {GptqConfigError} for a strategy GPTQ does not support
 *
 * @example
 * ```ts
 * import { parseQuantizationArgs } from "../../quant/args.ts";
 * import { gptqReference } from "./reference.ts";
 * const h = new Float64Array([2, 1, 1, 2]);
 * const args = parseQuantizationArgs({ num_bits: 8, strategy: "channel" }, "w");
 * const r = gptqReference(new Float32Array([0.5, -1]), [1, 2], h, args);
 * console.assert(r.fellBackToRtn === false && r.weight.length === 2);
 * ```
 */
export function gptqReference(
  weight: Float32Array,
  shape: readonly [number, number],
  hessian: ArrayLike<number>,
  args: QuantizationArgs,
  options: GptqReferenceOptions = {},
): GptqReferenceResult {
  const [rows, cols] = shape;
  if (hessian.length !== cols * cols || weight.length !== rows * cols) {
    throw new GptqShapeError(
      `reference: weight of ${weight.length} values and Hessian of ${hessian.length} ` +
        `for shape [${rows}, ${cols}]`,
    );
  }
  const bs = options.blockSize ?? 128;
  const actorder = canonicalActorder(args.actorder);
  const grouped = args.strategy === "group" || args.strategy === "tensor_group";
  const globalScale = args.strategy === "tensor_group"
    ? Math.fround(options.globalScale ?? globalScaleFor(tensorAmax(weight)))
    : null;

  // W and H in f64 (exact copies of the f32 values), in processing order.
  let w = Float64Array.from(weight);
  let h = Float64Array.from(hessian);
  let perm: Int32Array | null = null;
  let gIdx: Int32Array | null = null;
  let qp: { scale: Float32Array; zeroPoint: Float32Array };
  if (grouped) {
    const g = args.groupSize!;
    gIdx = Int32Array.from({ length: cols }, (_, c) => Math.floor(c / g));
    if (actorder === "group") {
      // Permute first, then observe: groups are runs of permuted columns.
      perm = descendingOrder(h, cols);
      w = permuteColumns(w, rows, cols, perm);
      h = permuteSymmetric(h, cols, perm);
      qp = observe(w, shape, args, globalScale);
    } else if (actorder === "weight") {
      // Observe first, then permute; g_idx[perm] keeps each column's group.
      qp = observe(w, shape, args, globalScale);
      perm = descendingOrder(h, cols);
      w = permuteColumns(w, rows, cols, perm);
      h = permuteSymmetric(h, cols, perm);
      gIdx = Int32Array.from(perm, (c) => gIdx![c]);
    } else {
      qp = observe(w, shape, args, globalScale);
    }
  } else {
    qp = observe(w, shape, args, globalScale);
  }

  // Sparsity mask: exact zeros count toward the threshold, isclose decides the mask.
  let zeros = 0;
  for (let i = 0; i < w.length; i++) if (w[i] === 0) zeros++;
  const mask = zeros / w.length >= SPARSITY_THRESHOLD
    ? w.map((v) => (Math.abs(v) <= ISCLOSE_ATOL ? 0 : 1))
    : null;

  // Dead columns.
  for (let i = 0; i < cols; i++) {
    if (h[i * cols + i] === 0) {
      h[i * cols + i] = 1;
      for (let r = 0; r < rows; r++) w[r * cols + i] = 0;
    }
  }

  // Dampening (f32, as torch) and the upper factor of H⁻¹.
  let meanDiag = 0;
  for (let i = 0; i < cols; i++) meanDiag += h[i * cols + i];
  meanDiag = Math.fround(meanDiag / cols);
  const schedule = dampeningSchedule(options.dampeningFrac ?? 0.01, options.maxRetries ?? 3);
  let u: Float64Array | null = null;
  let attempts = 0;
  let used = schedule.length - 1;
  for (let k = 0; k < schedule.length && u === null; k++) {
    attempts++;
    const damp = Math.fround(schedule[k] * meanDiag);
    const hd = h.slice();
    for (let i = 0; i < cols; i++) hd[i * cols + i] = Math.fround(hd[i * cols + i] + damp);
    u = upperFactorOfInverse(hd, cols);
    if (u !== null) used = k;
  }
  const fellBack = u === null;
  if (u === null) {
    u = new Float64Array(cols * cols);
    for (let i = 0; i < cols; i++) u[i * cols + i] = 1;
  }

  // The blocked column loop, row by row (rows are independent).
  const at = (p: number) => (perm ? perm[p] : p);
  const slot = (r: number, p: number) => qparamSlot(args, gIdx, r, p, p, cols);
  const opts = { globalScale };
  const pre = new Float64Array(rows * cols);
  const err = new Float64Array(bs);
  let loss = 0;
  for (let i1 = 0; i1 < cols; i1 += bs) {
    const i2 = Math.min(i1 + bs, cols);
    for (let r = 0; r < rows; r++) {
      const row = r * cols;
      for (let i = i1; i < i2; i++) {
        const x = w[row + i];
        const d = u[i * cols + i];
        const s = slot(r, i);
        const xf = Math.fround(x);
        const sEff = globalScale === null ? qp.scale[s] : Math.fround(qp.scale[s] / globalScale);
        pre[row + at(i)] = xf / sEff + qp.zeroPoint[s];
        const q = fakeQuantizeValue(xf, qp.scale[s], qp.zeroPoint[s], args, opts);
        loss += ((x - q) * (x - q)) / (d * d) / 2;
        const e = (x - q) / d;
        for (let j = i + 1; j < i2; j++) {
          w[row + j] -= e * u[i * cols + j] * (mask ? mask[row + j] : 1);
        }
        w[row + i] = q;
        err[i - i1] = e;
      }
      for (let j = i2; j < cols; j++) {
        let acc = 0;
        for (let i = i1; i < i2; i++) acc += err[i - i1] * u[i * cols + j];
        w[row + j] -= acc * (mask ? mask[row + j] : 1);
      }
    }
  }

  // W[:, argsort(perm)], and g_idx[argsort(perm)] for actorder "group".
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let p = 0; p < cols; p++) out[r * cols + at(p)] = w[r * cols + p];
  }
  let savedGIdx: Int32Array | null = null;
  if (actorder === "group") {
    savedGIdx = new Int32Array(cols);
    for (let p = 0; p < cols; p++) savedGIdx[perm![p]] = gIdx![p];
  }
  return {
    weight: out,
    scale: qp.scale,
    zeroPoint: qp.zeroPoint,
    gIdx: savedGIdx,
    loss,
    fellBackToRtn: fellBack,
    dampeningUsed: schedule[used],
    attempts,
    perm,
    preRound: pre,
  };
}

/**
 * `argsort(diag(H), descending=True)`, ties in column order.
 *
 * @param h row-major [n, n]
 * @param n the order
 * @returns position → column
 */
function descendingOrder(h: Float64Array, n: number): Int32Array {
  const idx = Array.from({ length: n }, (_, i) => i);
  idx.sort((a, b) => h[b * n + b] - h[a * n + a] || a - b);
  return Int32Array.from(idx);
}

/** W[:, perm]. */
function permuteColumns(
  w: Float64Array,
  rows: number,
  cols: number,
  perm: Int32Array,
): Float64Array<ArrayBuffer> {
  const out = new Float64Array(w.length);
  for (let r = 0; r < rows; r++) {
    for (let p = 0; p < cols; p++) out[r * cols + p] = w[r * cols + perm[p]];
  }
  return out;
}

/** H[perm][:, perm]. */
function permuteSymmetric(h: Float64Array, n: number, perm: Int32Array): Float64Array<ArrayBuffer> {
  const out = new Float64Array(h.length);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) out[i * n + j] = h[perm[i] * n + perm[j]];
  }
  return out;
}

/**
 * The memoryless min/max observer and `calculate_qparams` over W as it is
 * laid out (columns already permuted for actorder "group"): one slot per
 * tensor, row, (row, run of group_size columns) or [bh, bw] tile, slots in
 * the qparam shape's row-major order.
 */
function observe(
  w: Float64Array,
  [rows, cols]: readonly [number, number],
  args: QuantizationArgs,
  globalScale: number | null,
): { scale: Float32Array; zeroPoint: Float32Array } {
  let slots: number;
  let slotOf: (r: number, c: number) => number;
  switch (args.strategy) {
    case "tensor":
      slots = 1;
      slotOf = () => 0;
      break;
    case "channel":
      slots = rows;
      slotOf = (r) => r;
      break;
    case "group":
    case "tensor_group": {
      const g = args.groupSize!;
      if (cols % g !== 0) {
        throw new GptqShapeError(`reference: group_size ${g} does not divide ${cols} columns`);
      }
      slots = rows * (cols / g);
      slotOf = (r, c) => r * (cols / g) + Math.floor(c / g);
      break;
    }
    case "block": {
      const [bh, bw] = args.blockStructure!;
      if (rows % bh !== 0 || cols % bw !== 0) {
        throw new GptqShapeError(`reference: blocks [${bh}, ${bw}] do not tile [${rows}, ${cols}]`);
      }
      slots = (rows / bh) * (cols / bw);
      slotOf = (r, c) => Math.floor(r / bh) * (cols / bw) + Math.floor(c / bw);
      break;
    }
    default:
      throw new GptqConfigError(`reference: strategy ${args.strategy} is not supported for GPTQ`);
  }
  const min = new Float32Array(slots).fill(Infinity);
  const max = new Float32Array(slots).fill(-Infinity);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const s = slotOf(r, c);
      const v = w[r * cols + c];
      if (v < min[s]) min[s] = v;
      if (v > max[s]) max[s] = v;
    }
  }
  return calculateQParams(min, max, args, globalScale);
}

/**
 * The qparam slot of element (row r, column c at processing position p),
 * straight from each strategy's definition.
 *
 * @param args the weight's quantization args
 * @param gIdx the group of every column as `c` numbers them (upstream's g_idx),
 *   or null for column order
 * @param r the row
 * @param p the processing position of the column
 * @param c the column as `gIdx` numbers them
 * @param cols the number of columns
 * @returns the index into scale / zero point
 *
 * @example
 * ```ts
 * import { parseQuantizationArgs } from "../../quant/args.ts";
 * import { qparamSlot } from "./reference.ts";
 * const args = parseQuantizationArgs({ num_bits: 4, group_size: 2 }, "w");
 * qparamSlot(args, null, 1, 3, 3, 4); // 3: row 1 has groups 2 and 3
 * ```
 */
export function qparamSlot(
  args: QuantizationArgs,
  gIdx: Int32Array | null,
  r: number,
  p: number,
  c: number,
  cols: number,
): number {
  switch (args.strategy) {
    case "channel":
      return r;
    case "group":
    case "tensor_group": {
      const g = args.groupSize!;
      // The loop passes g_idx in processing order (identity for actorder
      // "group", g_idx[perm] for "weight"), as upstream's `g_idx[column_idx]`.
      return r * (cols / g) + (gIdx ? gIdx[c] : Math.floor(c / g));
    }
    case "block": {
      const [bh, bw] = args.blockStructure!;
      return Math.floor(r / bh) * (cols / bw) + Math.floor(p / bw);
    }
    default:
      return 0;
  }
}

/**
 * Lower Cholesky factor of a symmetric matrix (f64), or null when a pivot
 * is not positive and finite.
 *
 * @param a row-major [n, n] (lower triangle read)
 * @param n the order
 * @returns L, row-major, zeros above the diagonal; or null
 *
 * @example
 * ```ts
 * import { choleskyLower } from "./reference.ts";
 * choleskyLower(new Float64Array([4, 2, 2, 5]), 2); // [2, 0, 1, 2]
 * ```
 */
export function choleskyLower(a: ArrayLike<number>, n: number): Float64Array | null {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let s = a[j * n + j];
    for (let k = 0; k < j; k++) s -= l[j * n + k] * l[j * n + k];
    if (!(s > 0) || !Number.isFinite(s)) return null;
    const d = Math.sqrt(s);
    l[j * n + j] = d;
    for (let i = j + 1; i < n; i++) {
      let t = a[i * n + j];
      for (let k = 0; k < j; k++) t -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = t / d;
    }
  }
  return l;
}

/**
 * U upper with H⁻¹ = UᵀU, computed as upstream does: L = chol(H),
 * H⁻¹ = L⁻ᵀ·L⁻¹ (cholesky_inverse), U = chol(H⁻¹)ᵀ.
 *
 * @param h the damped Hessian, row-major [n, n]
 * @param n the order
 * @returns U row-major, or null when a factorization fails
 *
 * @example
 * ```ts
 * import { upperFactorOfInverse } from "./reference.ts";
 * upperFactorOfInverse(new Float64Array([4, 0, 0, 1]), 2); // [0.5, 0, 0, 1]
 * ```
 */
export function upperFactorOfInverse(h: ArrayLike<number>, n: number): Float64Array | null {
  const l = choleskyLower(h, n);
  if (l === null) return null;
  // X = L⁻¹ by forward substitution, column by column.
  const x = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    for (let i = c; i < n; i++) {
      let s = i === c ? 1 : 0;
      for (let k = c; k < i; k++) s -= l[i * n + k] * x[k * n + c];
      x[i * n + c] = s / l[i * n + i];
    }
  }
  // H⁻¹ = Xᵀ·X.
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < n; k++) s += x[k * n + i] * x[k * n + j];
      inv[i * n + j] = s;
      inv[j * n + i] = s;
    }
  }
  const l2 = choleskyLower(inv, n);
  if (l2 === null) return null;
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) u[i * n + j] = l2[j * n + i];
  return u;
}
