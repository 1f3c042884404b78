/**
 * GPTQ for one Linear weight, read top to bottom as llm-compressor 0.9's
 * `quantize_weight` (gptq_quantize.py), on an engine's
 * {@link SecondOrderOps} (the inverse-Hessian factor, the in-block column
 * loop, the trailing update):
 *
 * 1. the activation order `argsort(diag(H), descending)` (actorder
 *    static / weight / group);
 * 2. scales and zero points fixed up front from the unmodified weight
 *    (`actorder: group` observes W[:, perm] with groups of consecutive
 *    permuted columns; the others observe W and look groups up through
 *    g_idx[perm]);
 * 3. W[:, perm], and upstream's zero mask `~isclose(W, 0)` when ≥ 5 % of
 *    W is exactly 0;
 * 4. dead columns (diag(H) = 0: H_ii = 1, W[:, i] = 0), dampening by
 *    `dampening_frac · mean(diag(H))`, U = chol(H⁻¹) upper — retried with
 *    10× the dampening, then U = I (plain round-to-nearest) as llmc's
 *    documented departure from upstream's immediate fallback;
 * 5. the blocked column loop: per block, quantize each column and
 *    propagate its error inside the block, then the block's errors to
 *    every later column;
 * 6. W[:, argsort(perm)], and g_idx for `actorder: group`.
 *
 * SparseGPT (src/modifiers/sparsegpt/sparsify_weight.ts) runs steps 4 and
 * 5 with pruning instead of quantization. The WebGPU engine runs the same
 * algorithm as one batched WGSL step per layer (gptq_quantize.ts and
 * factor_loops.ts), tested against the same float64 reference.
 *
 * @module
 */

import type { SecondOrderOps } from "../../engine/engine.ts";
import type { ColumnPruning, ColumnQuantization } from "../../engine/engine.ts";
import { canonicalActorder, type QuantizationArgs } from "../../quant/args.ts";
import { GptqShapeError } from "./errors.ts";
import { gptqQParams, permuteColumns } from "./gptq_qparams.ts";
import { checkGptqWeight, type GptqResult } from "./gptq_quantize.ts";
import {
  activationOrder,
  checkDampeningFrac,
  dampeningSchedule,
} from "./inverse_hessian_factor.ts";

/** Options of {@link quantizeWeight}. */
export interface QuantizeWeightOptions {
  /** Columns per block (default 128). */
  readonly blockSize?: number;
  /** Dampening fraction of mean(diag(H)) (default 0.01). */
  readonly dampeningFrac?: number;
  /** Retries with 10× dampening before the RTN fallback (default 3). */
  readonly maxRetries?: number;
  /** tensor_group (NVFP4): the fused global scale; from the weight when absent. */
  readonly globalScale?: number | null;
  /** The module name, for messages. */
  readonly where?: string;
  /**
   * Factors already computed from this Hessian (keyed by column order):
   * weights that read one input (q/k/v, gate/up) share U, as it depends on
   * H, the order and the dampening only. Filled as it goes.
   */
  readonly factors?: FactorCache;
}

/** U per column order ("actorder" or "columns") of one Hessian and one dampening. */
export type FactorCache = Map<string, DampedFactor>;

/** `torch.isclose(w, 0)`'s absolute tolerance (upstream's zero mask). */
const ISCLOSE_ATOL = 1e-8;

/** llmcompressor's SPARSITY_THRESHOLD: the zero fraction from which GPTQ keeps zeros. */
const SPARSITY_THRESHOLD = 0.05;

/**
 * Quantizes one weight with GPTQ.
 *
 * @param ops the engine's second-order ops
 * @param weight the weight, row-major `[rows, cols]` (not modified)
 * @param shape `[rows (out_features), cols (in_features)]`
 * @param hessian H, symmetric `[cols, cols]` row-major (not modified)
 * @param args the weight's quantization args
 * @param options block size, dampening, retries, global scale, module name
 * @returns the fake-quantized weight, qparams, g_idx, loss and diagnostics
 * @throws {GptqConfigError} for unsupported args or dampening
 * @throws {GptqShapeError} when the weight, the Hessian and the args disagree
 * @example
 * ```ts
 * import { CPU_SECOND_ORDER } from "../../engine/cpu/second_order.ts";
 * import { parseQuantizationArgs } from "../../quant/args.ts";
 * import { quantizeWeight } from "./quantize_weight.ts";
 * const args = parseQuantizationArgs({ num_bits: 4, strategy: "channel" }, "w");
 * const h = new Float32Array([2, 1, 1, 2]);
 * const r = quantizeWeight(CPU_SECOND_ORDER, new Float32Array([0.5, -1]), [1, 2], h, args);
 * console.assert(!r.fellBackToRtn && r.scale.length === 1);
 * ```
 */
export function quantizeWeight(
  ops: SecondOrderOps,
  weight: Float32Array,
  shape: readonly [number, number],
  hessian: Float32Array,
  args: QuantizationArgs,
  options: QuantizeWeightOptions = {},
): GptqResult {
  const t0 = performance.now();
  const where = options.where ?? "weight";
  const [rows, cols] = shape;
  checkGptqWeight(weight, shape, hessianOrder(hessian, where), args, where);

  // 1. Activation order.
  const diag = diagonal(hessian, cols);
  const perm = canonicalActorder(args.actorder) !== null ? activationOrder(diag) : null;

  // 2. Scales and zero points from the unmodified weight (and g_idx).
  const qp = gptqQParams(weight, shape, args, perm, { globalScale: options.globalScale, where });

  // 3. W in processing order; the zero mask of a sparse weight.
  const w = perm ? permuteColumns(weight, rows, cols, perm) : weight.slice();
  const nonZero = zeroFraction(weight) >= SPARSITY_THRESHOLD
    ? Uint8Array.from(w, (v) => (Math.abs(v) <= ISCLOSE_ATOL ? 0 : 1))
    : null;
  const t1 = performance.now();

  // 4. Dead columns, dampening, U (shared by the weights reading this Hessian).
  const order = perm ? "actorder" : "columns";
  const factor = options.factors?.get(order) ??
    dampedInverseFactor(ops, hessian, diag, perm, options);
  options.factors?.set(order, factor);
  zeroDeadColumns(w, rows, cols, factor.deadAt);
  const t2 = performance.now();

  // 5. The blocked column loop.
  const loss = blockedColumnLoop(ops, w, shape, factor.u, options.blockSize ?? 128, {
    quantization: qp.columns,
    nonZero,
    maskInBlock: true,
  });

  // 6. Back to the original column order.
  const out = perm ? unpermuteColumns(w, rows, cols, perm) : w;
  const t3 = performance.now();
  return {
    weight: out,
    scale: qp.scale,
    zeroPoint: qp.zeroPoint,
    qparamShape: qp.qparamShape,
    ...(qp.globalScale !== null ? { globalScale: qp.globalScale } : {}),
    ...(qp.gIdx ? { gIdx: qp.gIdx } : {}),
    loss,
    fellBackToRtn: factor.fellBack,
    dampeningUsed: factor.dampeningFrac,
    attempts: factor.attempts,
    deadColumns: factor.deadColumns,
    timings: {
      prepareMs: t1 - t0,
      choleskyMs: t2 - t1,
      inverseMs: 0,
      quantizeMs: t3 - t2,
      totalMs: t3 - t0,
    },
  };
}

/** U of a damped Hessian in processing order, and how it was obtained. */
export interface DampedFactor {
  /** U upper `[n, n]`, rows and columns in processing order (I on fallback). */
  readonly u: Float32Array;
  /** 1 for processing positions whose column is dead (diag(H) = 0). */
  readonly deadAt: Uint8Array;
  /** How many columns are dead. */
  readonly deadColumns: number;
  /** Factorizations tried. */
  readonly attempts: number;
  /** The dampening fraction that succeeded (the last tried on fallback). */
  readonly dampeningFrac: number;
  /** Every attempt failed: U = I. */
  readonly fellBack: boolean;
}

/**
 * Step 4 of GPTQ and SparseGPT: H[perm][:, perm] with dead columns' diagonal
 * set to 1, plus `frac · mean(diag)` on the diagonal (float32, as torch),
 * factored into U; on failure retried with 10× the fraction
 * (`maxRetries` times), then U = I.
 *
 * @param ops the engine's second-order ops
 * @param hessian H `[n, n]`
 * @param diag diag(H)
 * @param perm the processing order, or null
 * @param options dampening fraction and retries
 * @returns U and its diagnostics
 * @throws {GptqConfigError} for a negative or non-finite dampening fraction
 * @example
 * ```ts
 * import { CPU_SECOND_ORDER } from "../../engine/cpu/second_order.ts";
 * import { dampedInverseFactor } from "./quantize_weight.ts";
 * const f = dampedInverseFactor(CPU_SECOND_ORDER, new Float32Array([1, 0, 0, 0]), [1, 0], null, {});
 * console.assert(f.deadColumns === 1 && !f.fellBack);
 * ```
 */
export function dampedInverseFactor(
  ops: SecondOrderOps,
  hessian: Float32Array,
  diag: ArrayLike<number>,
  perm: Int32Array | null,
  options: { readonly dampeningFrac?: number; readonly maxRetries?: number },
): DampedFactor {
  const n = diag.length;
  const frac = checkDampeningFrac(options.dampeningFrac);
  const at = (p: number) => (perm ? perm[p] : p);
  const deadAt = Uint8Array.from({ length: n }, (_, p) => (diag[at(p)] === 0 ? 1 : 0));
  let sum = 0;
  let deadColumns = 0;
  for (let i = 0; i < n; i++) {
    if (diag[i] === 0) deadColumns++;
    sum += diag[i] === 0 ? 1 : diag[i];
  }
  const meanDiag = Math.fround(sum / n);
  const h = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    const src = at(i) * n;
    for (let j = 0; j < n; j++) h[i * n + j] = hessian[src + at(j)];
    if (deadAt[i]) h[i * n + i] = 1;
  }
  const schedule = dampeningSchedule(frac, options.maxRetries ?? 3);
  const undamped = Float32Array.from({ length: n }, (_, i) => h[i * n + i]);
  for (let k = 0; k < schedule.length; k++) {
    // The diagonal of each attempt from the undamped one (inverseFactor leaves h unchanged).
    const damp = Math.fround(schedule[k] * meanDiag);
    for (let i = 0; i < n; i++) h[i * n + i] = undamped[i] + damp;
    const u = ops.inverseFactor(h, n);
    if (u !== null) {
      return {
        u,
        deadAt,
        deadColumns,
        attempts: k + 1,
        dampeningFrac: schedule[k],
        fellBack: false,
      };
    }
  }
  const identity = new Float32Array(n * n);
  for (let i = 0; i < n; i++) identity[i * n + i] = 1;
  return {
    u: identity,
    deadAt,
    deadColumns,
    attempts: schedule.length,
    dampeningFrac: schedule[schedule.length - 1],
    fellBack: true,
  };
}

/** What the column loop does to each column besides propagating its error. */
export interface ColumnLoopWork {
  /** Fake quantization (GPTQ; SparseGPT with quantization args). */
  readonly quantization?: ColumnQuantization;
  /** Pruning (SparseGPT). */
  readonly pruning?: ColumnPruning;
  /** 1 where W was non-zero on entry (processing order), or null. */
  readonly nonZero: Uint8Array | null;
  /** Whether `nonZero` also masks the in-block updates (GPTQ's zero preservation). */
  readonly maskInBlock: boolean;
}

/**
 * Step 5 of GPTQ and SparseGPT: for each block of `blockSize` columns, the
 * in-block loop (prune / quantize, propagate inside the block), then the
 * block's errors to every later column. `w` is modified in place.
 *
 * @param ops the engine's second-order ops
 * @param w the weight `[rows, cols]` in processing order
 * @param shape `[rows, cols]`
 * @param u U `[cols, cols]` in processing order
 * @param blockSize columns per block
 * @param work quantization, pruning, zero mask
 * @returns the loss Σ (w − q)² / d² / 2
 * @throws {GptqShapeError} for a block size that is not a positive integer
 * @example
 * ```ts
 * import { CPU_SECOND_ORDER } from "../../engine/cpu/second_order.ts";
 * import { blockedColumnLoop } from "./quantize_weight.ts";
 * const w = new Float32Array([1, 2, 3, 4]);
 * blockedColumnLoop(CPU_SECOND_ORDER, w, [1, 4], new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]), 2, {
 *   pruning: { kind: "n:m", n: 2, m: 4, preserve: false }, nonZero: null, maskInBlock: false,
 * });
 * ```
 */
export function blockedColumnLoop(
  ops: SecondOrderOps,
  w: Float32Array,
  shape: readonly [number, number],
  u: Float32Array,
  blockSize: number,
  work: ColumnLoopWork,
): number {
  const [rows, cols] = shape;
  if (!Number.isInteger(blockSize) || blockSize < 1) {
    throw new GptqShapeError(`block_size must be a positive integer, got ${blockSize}`);
  }
  const err = new Float32Array(rows * Math.min(blockSize, cols));
  let loss = 0;
  for (let i1 = 0; i1 < cols; i1 += blockSize) {
    const i2 = Math.min(i1 + blockSize, cols);
    const block = { w, rows, cols, u, i1, i2, err, ...work };
    loss += ops.columnBlock(block);
    ops.trailingUpdate(block);
  }
  return loss;
}

/**
 * The order n of a Hessian of n² values.
 *
 * @param hessian the matrix, row-major
 * @param where the module name, for the error
 * @returns n
 * @throws {GptqShapeError} when its length is not a square
 * @example
 * ```ts
 * import { hessianOrder } from "./quantize_weight.ts";
 * console.assert(hessianOrder(new Float32Array(9), "w") === 3);
 * ```
 */
export function hessianOrder(hessian: Float32Array, where: string): number {
  const n = Math.round(Math.sqrt(hessian.length));
  if (n * n !== hessian.length) {
    throw new GptqShapeError(`${where}: the Hessian has ${hessian.length} values, not n²`);
  }
  return n;
}

/**
 * diag(H) of a row-major `[n, n]` matrix.
 *
 * @param h the matrix
 * @param n its order
 * @returns the diagonal
 * @example
 * ```ts
 * import { diagonal } from "./quantize_weight.ts";
 * console.assert(diagonal(new Float32Array([1, 2, 3, 4]), 2)[1] === 4);
 * ```
 */
export function diagonal(h: Float32Array, n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => h[i * n + i]);
}

function zeroFraction(w: Float32Array): number {
  let zeros = 0;
  for (let i = 0; i < w.length; i++) if (w[i] === 0) zeros++;
  return zeros / w.length;
}

/**
 * Zeroes the dead columns of a weight in processing order (upstream's
 * `W[:, dead] = 0`).
 *
 * @param w the weight `[rows, cols]`, modified in place
 * @param rows rows
 * @param cols columns
 * @param deadAt 1 per dead processing position
 * @example
 * ```ts
 * import { zeroDeadColumns } from "./quantize_weight.ts";
 * const w = new Float32Array([1, 2]);
 * zeroDeadColumns(w, 1, 2, Uint8Array.of(0, 1));
 * console.assert(w[1] === 0);
 * ```
 */
export function zeroDeadColumns(
  w: Float32Array,
  rows: number,
  cols: number,
  deadAt: Uint8Array,
): void {
  for (let p = 0; p < cols; p++) {
    if (deadAt[p]) { for (let r = 0; r < rows; r++) w[r * cols + p] = 0; }
  }
}

/** W[:, argsort(perm)]: processing order back to column order. */
function unpermuteColumns(w: Float32Array, rows: number, cols: number, perm: Int32Array) {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let p = 0; p < cols; p++) out[base + perm[p]] = w[base + p];
  }
  return out;
}
