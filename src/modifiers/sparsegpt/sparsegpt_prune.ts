/**
 * SparseGPT for one Linear weight (llm-compressor 0.9 `sparsify_weight`,
 * §4.5) on an engine's second-order ops. It shares GPTQ's machinery: the Hessian accumulator,
 * the inverse-Hessian factor (dead columns, dampening, retries, fallback to
 * U = I — which turns SparseGPT into magnitude pruning with no update) and
 * the blocked column loop, whose kernel prunes by a per-block threshold
 * (unstructured) or N of every M columns (e.g. 2:4) with the OBS update.
 *
 * With quantization args, each column is pruned and then fake-quantized in
 * the same pass (older llm-compressor's SparseGPT did this; 0.9 leaves
 * quantization to a later GPTQ/RTN modifier). The scales are fixed from the
 * unmodified weight beforehand, as GPTQ 0.9 does; pruned weights stay 0.
 *
 * @module
 */

import type { ColumnPruning, Engine, SecondOrderHessian } from "../../engine/engine.ts";
import { canonicalActorder } from "../../quant/args.ts";
import type { QuantizationArgs } from "../../quant/args.ts";
import { GptqShapeError } from "../gptq/errors.ts";
import { perWeight } from "../gptq/gptq_weights.ts";
import { type GptqQParams, gptqQParams } from "../gptq/gptq_qparams.ts";
import { SparseGptConfigError } from "./errors.ts";
import { parseMaskStructure } from "./mask_structure.ts";
import { sparsifyWeight } from "./sparsify_weight.ts";

/** Options of {@link sparsegptPrune}. */
export interface SparseGptOptions {
  /** Target fraction of zeros per block (unstructured); ignored for N:M. In [0, 1). */
  sparsity: number;
  /** `"0:0"` (unstructured, default) or `"N:M"` such as `"2:4"`. */
  maskStructure?: string;
  /** Columns per block (default 128, at most 256). */
  blockSize?: number;
  /** Dampening fraction of mean(diag(H)) (default 0.01). */
  dampeningFrac?: number;
  /** Retries with 10× dampening before falling back to U = I (default 3). */
  maxRetries?: number;
  /** Keep existing zeros pruned and extend the mask only as needed (default false). */
  preserveSparsityMask?: boolean;
  /** Also fake-quantize each column after pruning, with these weight args. */
  quantization?: QuantizationArgs;
  /** tensor_group: the global scale when quantizing. */
  globalScale?: number | null;
  /** The module name, for messages. */
  where?: string;
}

/** The result of pruning one weight. */
export interface SparseGptResult {
  /** The pruned (and, with quantization args, fake-quantized) weight, [rows, cols]. */
  readonly weight: Float32Array;
  /** Fraction of exact zeros in `weight`. */
  readonly sparsity: number;
  /** Σ (w − q)²/d² / 2 (upstream's per-module "error"). */
  readonly loss: number;
  /** True when every factorization failed: no update, plain magnitude pruning. */
  readonly fellBackToMagnitude: boolean;
  /** The dampening fraction that succeeded (the last tried on fallback). */
  readonly dampeningUsed: number;
  /** Factorizations tried (0 with a given factor). */
  readonly attempts: number;
  /** Columns whose diag(H) was 0. */
  readonly deadColumns: number;
  /** Scales, zero points and qparam shape when quantizing. */
  readonly quantization?: {
    readonly scale: Float32Array;
    readonly zeroPoint: Float32Array;
    readonly qparamShape: readonly number[];
    readonly globalScale?: number;
  };
  /** Phase times, ms. */
  readonly timings: { factorMs: number; pruneMs: number; totalMs: number };
}

/**
 * Prunes one weight with SparseGPT on an engine: `sparsifyWeight` on the
 * engine's second-order ops.
 *
 * @param engine the engine
 * @param weight row-major [rows, cols]
 * @param shape [rows, cols]
 * @param hessian the Hessian of the module's inputs, held by `engine` (not consumed)
 * @param options sparsity, mask structure, block size, dampening, preservation, quantization
 * @returns the pruned weight and diagnostics
 * @throws {SparseGptConfigError} for a bad sparsity / structure, or a preserved mask sparser than the target
 * @throws {GptqShapeError} when shapes disagree
 *
 * @example
 * ```ts
 * import { CpuEngine } from "../../engine/mod.ts";
 * import { sparsegptPrune } from "./sparsegpt_prune.ts";
 * const engine = new CpuEngine();
 * const h = engine.secondOrder.runningHessian(16);
 * h.add(engine.upload(new Float32Array(16 * 16).map(Math.random), [16, 16]), 1);
 * const w = new Float32Array(8 * 16).map(() => Math.random() - 0.5);
 * const r = await sparsegptPrune(engine, w, [8, 16], h, { sparsity: 0.5, maskStructure: "2:4", blockSize: 16 });
 * console.assert(r.sparsity >= 0.5);
 * h.destroy();
 * ```
 */
export async function sparsegptPrune(
  engine: Engine,
  weight: Float32Array,
  shape: readonly [number, number],
  hessian: SecondOrderHessian,
  options: SparseGptOptions,
): Promise<SparseGptResult> {
  return await sparsifyWeight(engine.secondOrder, weight, shape, hessian, options);
}

/** Per-weight options of {@link sparsegptPruneMany}. */
export type SparseGptWeightOptions = Pick<
  SparseGptOptions,
  | "sparsity"
  | "maskStructure"
  | "preserveSparsityMask"
  | "quantization"
  | "globalScale"
  | "where"
>;

/** One weight of {@link sparsegptPruneMany}. */
export interface SparseGptWeight {
  /** The key of the Hessian its inputs were accumulated in. */
  readonly input: string;
  /** Row-major [rows, cols]. */
  readonly weight: Float32Array;
  /** [rows, cols]. */
  readonly shape: readonly [number, number];
  /** Sparsity, mask structure, preservation, quantization, module name. */
  readonly options: SparseGptWeightOptions;
}

/** Options shared by every weight of {@link sparsegptPruneMany}. */
export interface SparseGptManyOptions
  extends Pick<SparseGptOptions, "blockSize" | "dampeningFrac" | "maxRetries"> {
  /**
   * Bound on the estimated bytes (factors and weights) of the weights the
   * engine's scheduler runs together (WebGPU: one wave before it reads
   * back, default 256 MiB, at least one weight; the CPU engine ignores it).
   */
  readonly waveBytes?: number;
}

/**
 * Prunes several weights with SparseGPT on an engine, e.g. a decoder
 * layer's Linears: every weight is validated first (nothing runs on the
 * device if one is refused), then each goes through `sparsifyWeight` on the
 * engine's second-order ops, the weights reading one input sharing its
 * factor (on WebGPU, started together in waves so their reads share device
 * polls: two per wave when every first factorization succeeds).
 *
 * @param engine the engine
 * @param hessian the Hessian of an input key, held by `engine`
 * @param weights the weights with their input keys and options
 * @param options block size, dampening, retries, panel bound, wave budget
 * @returns one result per weight, in order
 * @throws {SparseGptConfigError} for a bad sparsity / structure, a preserved
 *   mask sparser than the target, or activation ordering (before any device work)
 * @throws {GptqShapeError} when a weight and its Hessian disagree (before any device work)
 * @throws {GptqConfigError} for unsupported quantization args (before any
 *   device work) or a block size the column loop cannot use
 *
 * @example
 * ```ts
 * import { CpuEngine } from "../../engine/mod.ts";
 * import { sparsegptPruneMany } from "./sparsegpt_prune.ts";
 * const engine = new CpuEngine();
 * const h = engine.secondOrder.runningHessian(16);
 * h.add(engine.upload(new Float32Array(16 * 16).map(Math.random), [16, 16]), 1);
 * const w = () => new Float32Array(8 * 16).map(() => Math.random() - 0.5);
 * const [a, b] = await sparsegptPruneMany(engine, () => h, [
 *   { input: "x", weight: w(), shape: [8, 16], options: { sparsity: 0.5, maskStructure: "2:4" } },
 *   { input: "x", weight: w(), shape: [8, 16], options: { sparsity: 0.25 } },
 * ], { blockSize: 16 });
 * console.assert(a.sparsity >= 0.5 && b.sparsity >= 0.25);
 * h.destroy();
 * ```
 */
export async function sparsegptPruneMany(
  engine: Engine,
  hessian: (input: string) => SecondOrderHessian,
  weights: readonly SparseGptWeight[],
  options: SparseGptManyOptions = {},
): Promise<SparseGptResult[]> {
  const blockSize = options.blockSize ?? 128;
  for (const w of weights) {
    planSparseGpt(w.weight, w.shape, hessian(w.input).columns, { ...w.options, blockSize });
  }
  const ops = engine.secondOrder;
  return await perWeight(
    ops,
    hessian,
    weights,
    blockSize,
    (w, h, factors) =>
      sparsifyWeight(ops, w.weight, w.shape, h, { ...w.options, ...options, blockSize }, factors),
    options.waveBytes,
  );
}

/** What {@link planSparseGpt} decides on the host before any device work. */
export interface SparseGptPlan {
  /** The module name, for messages. */
  readonly where: string;
  /** The weight, row-major [rows, cols]. */
  readonly weight: Float32Array;
  /** [rows, cols]. */
  readonly shape: readonly [number, number];
  /** Columns per block. */
  readonly blockSize: number;
  /** What the loop prunes. */
  readonly pruning: ColumnPruning;
  /** Qparams fixed from the unmodified weight, when quantizing. */
  readonly qp: GptqQParams | null;
}

/**
 * Checks a weight against its Hessian's column count and the options
 * (sparsity, mask structure, a preserved mask no sparser than the target,
 * no activation ordering) and fixes the qparams from the unmodified weight.
 *
 * @param weight row-major [rows, cols]
 * @param shape [rows, cols]
 * @param columns the Hessian's column count
 * @param options sparsity, structure, preservation, quantization, module name
 * @returns the plan
 * @throws {SparseGptConfigError} for a bad sparsity / structure or a preserved mask sparser than the target
 * @throws {GptqShapeError} when shapes disagree
 * @example
 * ```ts
 * import { planSparseGpt } from "./sparsegpt_prune.ts";
 * const plan = planSparseGpt(new Float32Array(8), [2, 4], 4, { sparsity: 0.5, maskStructure: "2:4" });
 * console.assert(plan.pruning.kind === "n:m");
 * ```
 */
export function planSparseGpt(
  weight: Float32Array,
  shape: readonly [number, number],
  columns: number,
  options: SparseGptOptions,
): SparseGptPlan {
  const where = options.where ?? "weight";
  const [rows, cols] = shape;
  if (columns !== cols || weight.length !== rows * cols) {
    throw new GptqShapeError(
      `${where}: weight [${rows}, ${cols}] (${weight.length} values) with a Hessian of ${columns} columns`,
    );
  }
  const structure = parseMaskStructure(options.maskStructure ?? "0:0");
  const sparsity = options.sparsity;
  if (structure.kind === "unstructured" && !(sparsity >= 0 && sparsity < 1)) {
    throw new SparseGptConfigError(`${where}: sparsity must be in [0, 1), got ${sparsity}`);
  }
  const preserve = options.preserveSparsityMask === true;
  if (preserve && structure.kind === "unstructured") {
    let zeros = 0;
    for (const v of weight) if (v === 0) zeros++;
    if (zeros / weight.length > sparsity) {
      throw new SparseGptConfigError(
        `${where}: the target sparsity ${sparsity} is lower than the weight's own ` +
          `(${(zeros / weight.length).toFixed(4)}); retry with preserve_sparsity_mask false`,
      );
    }
  }
  const quant = options.quantization;
  if (quant && canonicalActorder(quant.actorder) !== null) {
    throw new SparseGptConfigError(`${where}: SparseGPT does not apply activation ordering`);
  }
  return {
    where,
    weight,
    shape,
    blockSize: options.blockSize ?? 128,
    pruning: structure.kind === "unstructured"
      ? { kind: "unstructured", sparsity, preserve }
      : { kind: "n:m", n: structure.n, m: structure.m, preserve },
    qp: quant
      ? gptqQParams(weight, shape, quant, null, { globalScale: options.globalScale, where })
      : null,
  };
}

/** How a factor was obtained (a `FactorAttempt` with its dead columns). */
export interface FactorSummary {
  /** Every attempt failed: U = I. */
  readonly fellBack: boolean;
  /** The dampening fraction that succeeded (the last tried on fallback). */
  readonly dampeningFrac: number;
  /** Factorizations tried. */
  readonly attempts: number;
  /** 1 per dead column. */
  readonly dead: Uint8Array;
}

/**
 * The result of a plan whose loop ran on a factor.
 *
 * @param plan the plan
 * @param factor how the factor was obtained
 * @param loop the loop's weight (column order) and loss
 * @param timings phase times
 * @returns the result
 * @example
 * ```ts ignore
 * const result = sparseGptResult(plan, factor, { weight, loss }, timings);
 * ```
 */
export function sparseGptResult(
  plan: SparseGptPlan,
  factor: FactorSummary,
  loop: { readonly weight: Float32Array; readonly loss: number },
  timings: SparseGptResult["timings"],
): SparseGptResult {
  const qp = plan.qp;
  let zeros = 0;
  for (const v of loop.weight) if (v === 0) zeros++;
  let dead = 0;
  for (const d of factor.dead) dead += d;
  return {
    weight: loop.weight,
    sparsity: zeros / loop.weight.length,
    loss: loop.loss,
    fellBackToMagnitude: factor.fellBack,
    dampeningUsed: factor.dampeningFrac,
    attempts: factor.attempts,
    deadColumns: dead,
    ...(qp
      ? {
        quantization: {
          scale: qp.scale,
          zeroPoint: qp.zeroPoint,
          qparamShape: qp.qparamShape,
          ...(qp.globalScale !== null ? { globalScale: qp.globalScale } : {}),
        },
      }
      : {}),
    timings,
  };
}
