/**
 * SparseGPT for one Linear weight (llm-compressor 0.9 `sparsify_weight`,
 * §4.5) on the GPU. It shares GPTQ's machinery: the Hessian accumulator,
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

import type { Gpu } from "../../gpu/device.ts";
import { canonicalActorder, type QuantizationArgs } from "../../quant/args.ts";
import { type ColumnPruning, runColumnLoop } from "../gptq/column_loop.ts";
import { GptqShapeError } from "../gptq/errors.ts";
import { gptqQParams } from "../gptq/gptq_qparams.ts";
import { HessianAccumulator } from "../gptq/hessian_accumulator.ts";
import { InverseHessianFactor } from "../gptq/inverse_hessian_factor.ts";
import { lcm } from "../gptq/panel_matrix.ts";
import { SparseGptConfigError } from "./errors.ts";
import { parseMaskStructure } from "./mask_structure.ts";

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
  /** Upper bound on the bytes of one row chunk of the weight (tests). */
  maxChunkBytes?: number;
  /** Upper bound on the bytes of one row panel of U (tests). */
  maxPanelBytes?: number;
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
 * Prunes one weight with SparseGPT.
 *
 * @param gpu the device
 * @param weight row-major [rows, cols]
 * @param shape [rows, cols]
 * @param source the Hessian of the module's inputs, or a factor computed from it without actorder
 * @param options sparsity, mask structure, block size, dampening, preservation, quantization
 * @returns the pruned weight and diagnostics
 * @throws {SparseGptConfigError} for a bad sparsity / structure, or a preserved mask sparser than the target
 * @throws {GptqShapeError} when shapes disagree
 *
 * @example
 * ```ts
 * import { CommandBatch } from "../../gpu/batch.ts";
 * import { getGpu } from "../../gpu/device.ts";
 * import { GpuTensor } from "../../gpu/tensor.ts";
 * import { HessianAccumulator } from "../gptq/hessian_accumulator.ts";
 * import { sparsegptPrune } from "./sparsegpt_prune.ts";
 * const gpu = await getGpu();
 * const h = HessianAccumulator.create(gpu, 16);
 * h.add(new CommandBatch(gpu), GpuTensor.fromArray(gpu, new Float32Array(16 * 16).map(Math.random), [16, 16]), 1);
 * const w = new Float32Array(8 * 16).map(() => Math.random() - 0.5);
 * const r = await sparsegptPrune(gpu, w, [8, 16], h, { sparsity: 0.5, maskStructure: "2:4", blockSize: 16 });
 * console.assert(r.sparsity >= 0.5);
 * h.destroy();
 * ```
 */
export async function sparsegptPrune(
  gpu: Gpu,
  weight: Float32Array,
  shape: readonly [number, number],
  source: HessianAccumulator | InverseHessianFactor,
  options: SparseGptOptions,
): Promise<SparseGptResult> {
  const t0 = performance.now();
  const where = options.where ?? "weight";
  const [rows, cols] = shape;
  const size = source instanceof HessianAccumulator ? source.columns : source.size;
  if (size !== cols || weight.length !== rows * cols) {
    throw new GptqShapeError(
      `${where}: weight [${rows}, ${cols}] (${weight.length} values) with a Hessian of ${size} columns`,
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
  const blockSize = options.blockSize ?? 128;
  const factor = source instanceof HessianAccumulator
    ? await InverseHessianFactor.compute(gpu, source, {
      dampeningFrac: options.dampeningFrac,
      maxRetries: options.maxRetries,
      rowAlign: lcm(128, blockSize),
      maxPanelBytes: options.maxPanelBytes,
    })
    : source;
  try {
    if (factor.perm !== null) {
      throw new SparseGptConfigError(`${where}: the factor was computed with activation ordering`);
    }
    const tf = performance.now();
    const qp = quant
      ? gptqQParams(weight, shape, quant, null, { globalScale: options.globalScale, where })
      : null;
    const pruning: ColumnPruning = structure.kind === "unstructured"
      ? { kind: "unstructured", sparsity, preserve }
      : { kind: "n:m", n: structure.n, m: structure.m, preserve };
    const loop = await runColumnLoop(gpu, {
      weight,
      shape,
      factor,
      blockSize,
      pruning,
      quantization: qp?.columns,
      maxChunkBytes: options.maxChunkBytes,
    });
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
      timings: {
        factorMs: factor === source ? 0 : factor.timings.totalMs,
        pruneMs: performance.now() - tf,
        totalMs: performance.now() - t0,
      },
    };
  } finally {
    if (factor !== source) factor.destroy();
  }
}
