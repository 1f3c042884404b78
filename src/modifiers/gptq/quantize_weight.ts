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
 * Steps 4 and 5 run on the engine's handles and end in one read of the
 * weight, the loss and the factor's status: a failed attempt is retried
 * with more dampening from there. The engine decides how that runs — the
 * CPU engine computes each op at once; WebGPU records the factorization and
 * the loop behind it without waiting and shares one device poll among the
 * weights its scheduler runs together (`SecondOrderOps.runConcurrently`).
 *
 * SparseGPT (src/modifiers/sparsegpt/sparsify_weight.ts) runs steps 4 and
 * 5 with pruning instead of quantization.
 *
 * @module
 */

import type {
  ColumnLoop,
  ColumnLoopOutput,
  ColumnLoopWork,
  InverseFactor,
  SecondOrderHessian,
  SecondOrderOps,
} from "../../engine/engine.ts";
import { canonicalActorder, type QuantizationArgs } from "../../quant/args.ts";
import { GptqShapeError } from "./errors.ts";
import { gptqQParams, permuteColumns } from "./gptq_qparams.ts";
import { checkGptqWeight, type GptqResult } from "./gptq_quantize.ts";
import { activationOrder, checkDampeningFrac, dampeningSchedule } from "./dampening.ts";

export type { ColumnLoopWork };

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
   * Factors of this Hessian (keyed by column order and block size): weights
   * that read one input (q/k/v, gate/up) share U, as it depends on H, the
   * order and the dampening only. Filled as it goes; the caller destroys
   * them ({@link destroyFactors}). Without it, the weight's own are
   * destroyed when it is done.
   */
  readonly factors?: FactorCache;
}

/** The dampened factors per column order of one Hessian and one dampening. */
export type FactorCache = Map<string, DampedFactors>;

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
 * @param hessian H `[cols, cols]`: the engine's, or a symmetric host array (not modified)
 * @param args the weight's quantization args
 * @param options block size, dampening, retries, global scale, module name, shared factors
 * @returns the fake-quantized weight, qparams, g_idx, loss and diagnostics
 * @throws {GptqConfigError} for unsupported args or dampening
 * @throws {GptqShapeError} when the weight, the Hessian and the args disagree
 * @example
 * ```ts
 * import { CPU_SECOND_ORDER } from "../../engine/mod.ts";
 * import { parseQuantizationArgs } from "../../quant/args.ts";
 * import { quantizeWeight } from "./quantize_weight.ts";
 * const args = parseQuantizationArgs({ num_bits: 4, strategy: "channel" }, "w");
 * const h = new Float32Array([2, 1, 1, 2]);
 * const r = await quantizeWeight(CPU_SECOND_ORDER, new Float32Array([0.5, -1]), [1, 2], h, args, { blockSize: 8 });
 * console.assert(!r.fellBackToRtn && r.scale.length === 1);
 * ```
 */
export async function quantizeWeight(
  ops: SecondOrderOps,
  weight: Float32Array,
  shape: readonly [number, number],
  hessian: SecondOrderHessian | Float32Array,
  args: QuantizationArgs,
  options: QuantizeWeightOptions = {},
): Promise<GptqResult> {
  const t0 = performance.now();
  const where = options.where ?? "weight";
  const [rows, cols] = shape;
  const h = engineHessian(ops, hessian, where);
  const factors = options.factors ?? new Map();
  try {
    checkGptqWeight(weight, shape, h.columns, args, where);
    const blockSize = checkBlockSize(options.blockSize ?? 128);

    // 1. Activation order.
    const diag = await ops.diagonal(h);
    const perm = canonicalActorder(args.actorder) !== null ? activationOrder(diag) : null;

    // 2. Scales and zero points from the unmodified weight (and g_idx).
    const qp = gptqQParams(weight, shape, args, perm, { globalScale: options.globalScale, where });

    // 3. W in processing order; the zero mask of a sparse weight.
    const w = perm ? permuteColumns(weight, rows, cols, perm) : weight.slice();
    const nonZero = zeroFraction(weight) >= SPARSITY_THRESHOLD ? nonZeroMask(w) : null;
    const t1 = performance.now();

    // 4. Dead columns, dampening, U (shared by the weights reading this Hessian).
    const damped = DampedFactors.of(ops, factors, h, diag, perm, blockSize, options);
    zeroDeadColumns(w, rows, cols, damped.deadAt);

    // 5. The blocked column loop on each attempt's U until one succeeds.
    const work = { quantization: qp.columns, nonZero, maskInBlock: true };
    for (let k = 0;; k++) {
      const attempt = damped.attempt(k);
      const out = await blockedColumnLoop(ops, attempt.u, w, shape, blockSize, work);
      if (!out.ok) continue;

      // 6. Back to the original column order.
      const result = perm ? unpermuteColumns(out.weight, rows, cols, perm) : out.weight;
      const t2 = performance.now();
      return {
        weight: result,
        scale: qp.scale,
        zeroPoint: qp.zeroPoint,
        qparamShape: qp.qparamShape,
        ...(qp.globalScale !== null ? { globalScale: qp.globalScale } : {}),
        ...(qp.gIdx ? { gIdx: qp.gIdx } : {}),
        loss: out.loss,
        fellBackToRtn: attempt.fellBack,
        dampeningUsed: attempt.dampeningFrac,
        attempts: attempt.attempts,
        deadColumns: damped.deadColumns,
        timings: {
          prepareMs: t1 - t0,
          choleskyMs: 0,
          inverseMs: 0,
          quantizeMs: t2 - t1,
          totalMs: t2 - t0,
        },
      };
    }
  } finally {
    if (options.factors === undefined) destroyFactors(factors);
    if (h !== hessian) h.destroy();
  }
}

/**
 * The engine's Hessian for a host array (uploaded), or the engine's own.
 *
 * @param ops the engine's second-order ops
 * @param hessian H
 * @param where the module name, for the error
 * @returns H as the engine holds it
 * @throws {GptqShapeError} when a host array's length is not a square
 * @example
 * ```ts
 * import { CPU_SECOND_ORDER } from "../../engine/mod.ts";
 * import { engineHessian } from "./quantize_weight.ts";
 * console.assert(engineHessian(CPU_SECOND_ORDER, new Float32Array(4), "w").columns === 2);
 * ```
 */
export function engineHessian(
  ops: SecondOrderOps,
  hessian: SecondOrderHessian | Float32Array,
  where: string,
): SecondOrderHessian {
  return hessian instanceof Float32Array
    ? ops.hessian(hessian, hessianOrder(hessian, where))
    : hessian;
}

/** One attempt's U and what it says about the result. */
export interface FactorAttempt {
  /** U (I on the fallback). */
  readonly u: InverseFactor;
  /** Factorizations tried up to and including this one. */
  readonly attempts: number;
  /** Its dampening fraction (the last tried on the fallback). */
  readonly dampeningFrac: number;
  /** Every factorization failed: U = I. */
  readonly fellBack: boolean;
}

/**
 * Step 4 of GPTQ and SparseGPT: H[perm][:, perm] with dead columns'
 * diagonal set to 1, plus `frac · mean(diag)` on the diagonal (float32, as
 * torch), factored into U; attempt k uses the k-th fraction of the
 * dampening schedule (×10 per retry, `maxRetries` times), and the attempt
 * after the last U = I. Attempts are recorded on first request and shared
 * by every weight of the cache.
 *
 * @example
 * ```ts
 * import { CPU_SECOND_ORDER as ops } from "../../engine/mod.ts";
 * import { DampedFactors } from "./quantize_weight.ts";
 * const h = ops.hessian(new Float32Array([1, 0, 0, 0]), 2);
 * const f = DampedFactors.of(ops, new Map(), h, [1, 0], null, 8, {});
 * console.assert(f.deadColumns === 1 && !f.attempt(0).fellBack);
 * ```
 */
export class DampedFactors {
  readonly #ops: SecondOrderOps;
  readonly #h: SecondOrderHessian;
  readonly #perm: Int32Array | null;
  readonly #dead: Uint8Array;
  readonly #meanDiag: number;
  readonly #blockSize: number;
  readonly #schedule: number[];
  readonly #attempts: FactorAttempt[] = [];

  private constructor(
    ops: SecondOrderOps,
    h: SecondOrderHessian,
    diag: ArrayLike<number>,
    perm: Int32Array | null,
    blockSize: number,
    schedule: number[],
  ) {
    const n = diag.length;
    this.#ops = ops;
    this.#h = h;
    this.#perm = perm;
    this.#blockSize = blockSize;
    this.#schedule = schedule;
    this.#dead = Uint8Array.from({ length: n }, (_, i) => (diag[i] === 0 ? 1 : 0));
    this.deadAt = Uint8Array.from({ length: n }, (_, p) => this.#dead[perm ? perm[p] : p]);
    let sum = 0;
    let dead = 0;
    for (let i = 0; i < n; i++) {
      dead += this.#dead[i];
      sum += this.#dead[i] ? 1 : diag[i];
    }
    this.deadColumns = dead;
    this.#meanDiag = Math.fround(sum / n);
  }

  /** 1 for processing positions whose column is dead (diag(H) = 0). */
  readonly deadAt: Uint8Array;
  /** How many columns are dead. */
  readonly deadColumns: number;

  /**
   * The factors of `h` in this column order from the cache, or new ones
   * put there.
   *
   * @param ops the engine's second-order ops
   * @param cache the factors shared by the weights reading `h`
   * @param h the Hessian
   * @param diag diag(H)
   * @param perm the processing order, or null
   * @param blockSize columns per block of the loops on them
   * @param options dampening fraction and retries
   * @returns the factors
   * @throws {GptqConfigError} for a negative or non-finite dampening fraction
   */
  static of(
    ops: SecondOrderOps,
    cache: FactorCache,
    h: SecondOrderHessian,
    diag: ArrayLike<number>,
    perm: Int32Array | null,
    blockSize: number,
    options: { readonly dampeningFrac?: number; readonly maxRetries?: number },
  ): DampedFactors {
    const key = `${perm ? "actorder" : "columns"}|${blockSize}`;
    let f = cache.get(key);
    if (f === undefined) {
      const schedule = dampeningSchedule(
        checkDampeningFrac(options.dampeningFrac),
        options.maxRetries ?? 3,
      );
      cache.set(key, f = new DampedFactors(ops, h, diag, perm, blockSize, schedule));
    }
    return f;
  }

  /**
   * Attempt k (0 first): U of the k-th dampening, or U = I after the last.
   *
   * @param k the attempt
   * @returns its U and diagnostics
   */
  attempt(k: number): FactorAttempt {
    const last = this.#schedule.length;
    if (k > last) throw new RangeError(`attempt ${k} after the fallback`);
    return this.#attempts[k] ??= k === last
      ? {
        u: this.#ops.identityFactor(this.#dead.length, this.#blockSize),
        attempts: last,
        dampeningFrac: this.#schedule[last - 1],
        fellBack: true,
      }
      : {
        u: this.#ops.inverseFactor(this.#h, {
          perm: this.#perm,
          dead: this.#dead,
          damp: Math.fround(this.#schedule[k] * this.#meanDiag),
          blockSize: this.#blockSize,
        }),
        attempts: k + 1,
        dampeningFrac: this.#schedule[k],
        fellBack: false,
      };
  }

  /** Releases every attempt's U. */
  destroy(): void {
    for (const a of this.#attempts) a?.u.destroy();
    this.#attempts.length = 0;
  }
}

/**
 * Releases every factor of a cache and empties it.
 *
 * @param cache the factors
 * @example
 * ```ts
 * import { destroyFactors } from "./quantize_weight.ts";
 * destroyFactors(new Map());
 * ```
 */
export function destroyFactors(cache: FactorCache): void {
  for (const f of cache.values()) f.destroy();
  cache.clear();
}

/**
 * Step 5 of GPTQ and SparseGPT: for each block of `blockSize` columns, the
 * in-block loop (prune / quantize, propagate inside the block), then the
 * block's errors to every later column; then the one read of the weight,
 * the loss and whether U's attempt succeeded.
 *
 * @param ops the engine's second-order ops
 * @param u U in processing order
 * @param w the weight `[rows, cols]` in processing order, dead columns zeroed
 *   (unchanged when the attempt failed)
 * @param shape `[rows, cols]`
 * @param blockSize columns per block
 * @param work quantization, pruning, zero mask
 * @returns the weight, the loss Σ (w − q)² / d² / 2 and the attempt's status
 * @example
 * ```ts
 * import { CPU_SECOND_ORDER as ops } from "../../engine/mod.ts";
 * import { blockedColumnLoop } from "./quantize_weight.ts";
 * const out = await blockedColumnLoop(ops, ops.identityFactor(4, 2), new Float32Array([1, 2, 3, 4]), [1, 4], 2, {
 *   pruning: { kind: "n:m", n: 2, m: 4, preserve: false }, nonZero: null, maskInBlock: false,
 * });
 * console.assert(out.ok);
 * ```
 */
export function blockedColumnLoop(
  ops: SecondOrderOps,
  u: InverseFactor,
  w: Float32Array,
  shape: readonly [number, number],
  blockSize: number,
  work: ColumnLoopWork,
): Promise<ColumnLoopOutput> {
  const cols = shape[1];
  const loop: ColumnLoop = ops.columnLoop(u, w, shape, blockSize, work);
  for (let i1 = 0; i1 < cols; i1 += blockSize) {
    const i2 = Math.min(i1 + blockSize, cols);
    ops.columnBlock(loop, i1, i2);
    ops.trailingUpdate(loop, i1, i2);
  }
  return ops.readLoop(loop);
}

/**
 * A block size checked: a positive integer.
 *
 * @param blockSize columns per block
 * @returns it
 * @throws {GptqShapeError} when it is not a positive integer
 * @example
 * ```ts
 * import { checkBlockSize } from "./quantize_weight.ts";
 * console.assert(checkBlockSize(128) === 128);
 * ```
 */
export function checkBlockSize(blockSize: number): number {
  if (!Number.isInteger(blockSize) || blockSize < 1) {
    throw new GptqShapeError(`block_size must be a positive integer, got ${blockSize}`);
  }
  return blockSize;
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

/** 1 where a value is not `isclose` to 0 (upstream's zero mask), else 0. */
function nonZeroMask(w: Float32Array): Uint8Array {
  const mask = new Uint8Array(w.length);
  for (let i = 0; i < w.length; i++) mask[i] = Math.abs(w[i]) <= ISCLOSE_ATOL ? 0 : 1;
  return mask;
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
