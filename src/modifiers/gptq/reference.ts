/**
 * A plain TypeScript GPTQ (f64 linear algebra, src/quant's f32 fake
 * quantization), written straight from §4.4 the way llm-compressor 0.9
 * spells it: permute, preserve mask, dead columns, dampening,
 * `cholesky(cholesky_inverse(cholesky(H)), upper=True)`, the blocked column
 * loop. It is the yardstick of the GPU implementation (tests/gptq) and runs
 * in O(cols³ + rows·cols²): keep it to small layers.
 *
 * It shares llmc's two deliberate departures, so results are comparable:
 * the stable activation order and the dampening retries before the RTN
 * fallback (see inverse_hessian_factor.ts).
 *
 * @module
 */

import { canonicalActorder, type QuantizationArgs } from "../../quant/args.ts";
import { fakeQuantizeValue } from "../../quant/quantize.ts";
import { GptqShapeError } from "./errors.ts";
import { gptqQParams } from "./gptq_qparams.ts";
import { activationOrder, dampeningSchedule } from "./inverse_hessian_factor.ts";

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

/** The reference's result (the GPU result's fields, plus the order used). */
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

/**
 * GPTQ on the CPU.
 *
 * @param weight row-major [rows, cols]
 * @param shape [rows, cols]
 * @param hessian the full symmetric H, row-major [cols, cols]
 * @param args the weight's quantization args
 * @param options block size, dampening, retries, global scale
 * @returns the quantized weight and diagnostics
 * @throws {GptqShapeError} when the Hessian is not [cols, cols]
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
  if (hessian.length !== cols * cols) {
    throw new GptqShapeError(`reference: Hessian of ${hessian.length} values for ${cols} columns`);
  }
  const bs = options.blockSize ?? 128;
  const actorder = canonicalActorder(args.actorder);
  const diag0 = Float64Array.from({ length: cols }, (_, i) => hessian[i * cols + i]);
  const perm = actorder ? activationOrder(diag0) : null;
  const qp = gptqQParams(weight, shape, args, perm, { globalScale: options.globalScale });
  const at = (p: number) => (perm ? perm[p] : p);

  // W[:, perm] and H[perm][:, perm] in f64.
  const w = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let p = 0; p < cols; p++) w[r * cols + p] = weight[r * cols + at(p)];
  }
  const h = new Float64Array(cols * cols);
  for (let i = 0; i < cols; i++) {
    for (let j = 0; j < cols; j++) h[i * cols + j] = hessian[at(i) * cols + at(j)];
  }
  let zeros = 0;
  for (let i = 0; i < w.length; i++) if (w[i] === 0) zeros++;
  const mask = zeros / w.length >= 0.05 ? w.map((v) => (v !== 0 ? 1 : 0)) : null;
  for (let i = 0; i < cols; i++) {
    if (h[i * cols + i] === 0) {
      h[i * cols + i] = 1;
      for (let r = 0; r < rows; r++) w[r * cols + i] = 0;
    }
  }
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

  const scaleIndex = (r: number, p: number) => qparamSlot(args, qp.gIdx, r, p, at(p), cols);
  const opts = { globalScale: qp.globalScale };
  const pre = new Float64Array(rows * cols);
  const err = new Float64Array(rows * bs);
  let loss = 0;
  for (let i1 = 0; i1 < cols; i1 += bs) {
    const i2 = Math.min(i1 + bs, cols);
    for (let r = 0; r < rows; r++) {
      const row = r * cols;
      for (let i = i1; i < i2; i++) {
        const x = w[row + i];
        const d = u[i * cols + i];
        const s = scaleIndex(r, i);
        const xf = Math.fround(x);
        const sEff = qp.globalScale === null
          ? qp.scale[s]
          : Math.fround(qp.scale[s] / qp.globalScale);
        pre[row + at(i)] = xf / sEff + qp.zeroPoint[s];
        const q = fakeQuantizeValue(xf, qp.scale[s], qp.zeroPoint[s], args, opts);
        loss += ((x - q) * (x - q)) / (d * d) / 2;
        const e = (x - q) / d;
        for (let j = i + 1; j < i2; j++) {
          w[row + j] -= e * u[i * cols + j] * (mask ? mask[row + j] : 1);
        }
        w[row + i] = q;
        err[r * bs + (i - i1)] = e;
      }
      for (let j = i2; j < cols; j++) {
        let acc = 0;
        for (let i = i1; i < i2; i++) acc += err[r * bs + (i - i1)] * u[i * cols + j];
        w[row + j] -= acc * (mask ? mask[row + j] : 1);
      }
    }
  }
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let p = 0; p < cols; p++) out[r * cols + at(p)] = w[r * cols + p];
  }
  return {
    weight: out,
    scale: qp.scale,
    zeroPoint: qp.zeroPoint,
    gIdx: qp.gIdx,
    loss,
    fellBackToRtn: fellBack,
    dampeningUsed: schedule[used],
    attempts,
    perm,
    preRound: pre,
  };
}

/**
 * The qparam slot of element (row r, column c at processing position p),
 * straight from each strategy's definition.
 *
 * @param args the weight's quantization args
 * @param gIdx g_idx for actorder "group", else null
 * @param r the row
 * @param p the processing position of the column
 * @param c the original column
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
      // actorder "group" stores the group of each original column in g_idx.
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
