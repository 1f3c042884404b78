/**
 * GPTQ for one Linear weight (llm-compressor 0.9 `quantize_weight`, §4.4),
 * on the GPU: qparams fixed from the unmodified weight, the inverse-Hessian
 * factor (with dead columns, dampening, actorder, retries and the RTN
 * fallback), then the blocked column loop with error propagation.
 *
 * @module
 */

import type { Gpu } from "../../gpu/device.ts";
import { canonicalActorder, type QuantizationArgs } from "../../quant/args.ts";
import { type ColumnLoopInput, type ColumnLoopOutput, runColumnLoop } from "./column_loop.ts";
import { GptqConfigError, GptqShapeError } from "./errors.ts";
import type { FactorLoopJob } from "./factor_loops.ts";
import { checkGptqArgs, type GptqQParams, gptqQParams } from "./gptq_qparams.ts";
import { HessianAccumulator } from "./hessian_accumulator.ts";
import { InverseHessianFactor } from "./inverse_hessian_factor.ts";
import { lcm } from "./panel_matrix.ts";

/** Options of {@link gptqQuantize}. */
export interface GptqOptions {
  /** Columns per block (default 128). */
  blockSize?: number;
  /** Dampening fraction of mean(diag(H)) (default 0.01). */
  dampeningFrac?: number;
  /** Retries with 10× dampening before the RTN fallback (default 3). */
  maxRetries?: number;
  /** tensor_group (NVFP4): the fused global scale; computed from the weight when absent. */
  globalScale?: number | null;
  /** The module name, for messages. */
  where?: string;
  /** Upper bound on the bytes of one row chunk of the weight (tests: exercise chunking). */
  maxChunkBytes?: number;
  /** Upper bound on the bytes of one row panel of U (tests: exercise panels). */
  maxPanelBytes?: number;
}

/** Wall-clock phases of one quantization, ms. */
export interface GptqTimings {
  /** Mirror + diagonal readback + order and dampening choice. */
  prepareMs: number;
  /** Permuted gather + Cholesky, all attempts. */
  choleskyMs: number;
  /** Triangular inverse + reversal. */
  inverseMs: number;
  /** Upload, column loop, readback. */
  quantizeMs: number;
  /** Everything, including qparams on the CPU. */
  totalMs: number;
}

/** The result of quantizing one weight. */
export interface GptqResult {
  /** The fake-quantized weight [rows, cols], original column order. */
  readonly weight: Float32Array;
  /** Scales in the qparam shape's row-major order. */
  readonly scale: Float32Array;
  /** Zero points (all 0 when symmetric). */
  readonly zeroPoint: Float32Array;
  /** The qparam shape ([1], [out, 1], [out, groups], [out/bh, in/bw]). */
  readonly qparamShape: readonly number[];
  /** tensor_group's global scale. */
  readonly globalScale?: number;
  /** Group per column; present only for actorder "group" (saved as weight_g_idx). */
  readonly gIdx?: Int32Array;
  /** Σ (w − q)²/d² / 2 over the weight (upstream logs it as the "error"). */
  readonly loss: number;
  /** True when every factorization failed and the weight is plain RTN. */
  readonly fellBackToRtn: boolean;
  /** The dampening fraction that succeeded (the last tried on fallback). */
  readonly dampeningUsed: number;
  /** Factorizations tried (1 when the first succeeded; 0 with a given factor). */
  readonly attempts: number;
  /** Columns whose diag(H) was 0 (zeroed, as upstream). */
  readonly deadColumns: number;
  /** Phase times. */
  readonly timings: GptqTimings;
}

/**
 * Quantizes one weight with GPTQ.
 *
 * `source` is the Hessian accumulated over the module's inputs, or an
 * InverseHessianFactor already computed from it (modules sharing an input
 * share the factor when their actorder and dampening agree). The
 * accumulator is not consumed; destroy it when the last module using it is
 * done.
 *
 * @param gpu the device
 * @param weight the weight, row-major [rows, cols] (f32)
 * @param shape [rows (out_features), cols (in_features)]
 * @param source the Hessian or its factor
 * @param args the weight's quantization args (static; tensor, channel,
 *   group with actorder, tensor_group, block; int 1–8 bits, fp8, fp4)
 * @param options block size, dampening, retries, global scale
 * @returns the fake-quantized weight, qparams, loss and diagnostics
 * @throws {GptqConfigError} for unsupported args or a factor computed for another column order
 * @throws {GptqShapeError} when shapes disagree
 *
 * @example
 * ```ts
 * import { CommandBatch } from "../../gpu/batch.ts";
 * import { getGpu } from "../../gpu/device.ts";
 * import { GpuTensor } from "../../gpu/tensor.ts";
 * import { parseQuantizationArgs } from "../../quant/args.ts";
 * import { gptqQuantize } from "./gptq_quantize.ts";
 * import { HessianAccumulator } from "./hessian_accumulator.ts";
 * const gpu = await getGpu();
 * const h = HessianAccumulator.create(gpu, 8);
 * const x = new Float32Array(64).map((_, i) => Math.sin(i));
 * h.add(new CommandBatch(gpu), GpuTensor.fromArray(gpu, x, [8, 8]), 1);
 * const w = new Float32Array(32).map((_, i) => Math.cos(i));
 * const args = parseQuantizationArgs({ num_bits: 4, strategy: "channel" }, "w");
 * const r = await gptqQuantize(gpu, w, [4, 8], h, args, { blockSize: 8 });
 * console.assert(!r.fellBackToRtn && r.scale.length === 4);
 * h.destroy();
 * ```
 */
export async function gptqQuantize(
  gpu: Gpu,
  weight: Float32Array,
  shape: readonly [number, number],
  source: HessianAccumulator | InverseHessianFactor,
  args: QuantizationArgs,
  options: GptqOptions = {},
): Promise<GptqResult> {
  const t0 = performance.now();
  const where = options.where ?? "weight";
  const size = source instanceof HessianAccumulator ? source.columns : source.size;
  checkGptqWeight(weight, shape, size, args, where);
  const blockSize = options.blockSize ?? 128;
  const actorder = canonicalActorder(args.actorder) !== null;
  const factor = source instanceof HessianAccumulator
    ? await InverseHessianFactor.compute(gpu, source, {
      dampeningFrac: options.dampeningFrac,
      maxRetries: options.maxRetries,
      actorder,
      rowAlign: lcm(128, blockSize),
      maxPanelBytes: options.maxPanelBytes,
    })
    : source;
  try {
    const plan = planGptqLoop(weight, shape, factor, args, options);
    const loop = await runColumnLoop(gpu, plan.loop);
    const ft = factor.timings;
    return gptqResult(plan, loop, {
      prepareMs: ft.prepareMs,
      choleskyMs: ft.choleskyMs,
      inverseMs: ft.inverseMs,
      quantizeMs: loop.ms,
      totalMs: performance.now() - t0,
    });
  } finally {
    if (factor !== source) factor.destroy();
  }
}

/**
 * The checks {@link gptqQuantize} makes before any GPU work: supported
 * args, and a weight of `shape` over a Hessian of `columns` columns.
 *
 * @param weight the weight, row-major
 * @param shape [rows, cols]
 * @param columns the Hessian's (or factor's) column count
 * @param args the weight's quantization args
 * @param where the module name, for messages
 * @returns nothing
 * @throws {GptqConfigError} for unsupported args
 * @throws {GptqShapeError} when shapes disagree
 *
 * @example
 * ```ts
 * import { parseQuantizationArgs } from "../../quant/args.ts";
 * import { checkGptqWeight } from "./gptq_quantize.ts";
 * const args = parseQuantizationArgs({ num_bits: 4, strategy: "channel" }, "w");
 * checkGptqWeight(new Float32Array(32), [4, 8], 8, args, "q_proj");
 * ```
 */
export function checkGptqWeight(
  weight: Float32Array,
  shape: readonly [number, number],
  columns: number,
  args: QuantizationArgs,
  where: string,
): void {
  const [rows, cols] = shape;
  checkGptqArgs(args, where);
  if (columns !== cols || weight.length !== rows * cols) {
    throw new GptqShapeError(
      `${where}: weight [${rows}, ${cols}] (${weight.length} values) with a Hessian of ${columns} columns`,
    );
  }
}

/** What {@link planGptqLoop} prepares: the qparams and the column loop's input. */
export interface GptqLoopPlan {
  /** Qparams fixed from the unmodified weight (in the factor's column order). */
  readonly qparams: GptqQParams;
  /** The column loop's input (with GPTQ's zero preservation decided). */
  readonly loop: ColumnLoopInput;
  /** The factor the loop runs on. */
  readonly factor: InverseHessianFactor;
}

/**
 * What {@link gptqQuantize} does on the host between the factor and the
 * column loop: the actorder check, the qparams (gptqQParams) and the zero
 * preservation rule (≥ 5% exact zeros). Run the loop (`runColumnLoop` or
 * `recordColumnLoop`) on `plan.loop`, then build the result with
 * {@link gptqResult}.
 *
 * @param weight the weight, row-major [rows, cols]
 * @param shape [rows, cols]
 * @param factor the inverse-Hessian factor (possibly a provisional one)
 * @param args the weight's quantization args
 * @param options block size, global scale, chunk bound, module name
 * @returns the plan
 * @throws {GptqConfigError} when the factor's column order disagrees with args.actorder
 *
 * @example
 * ```ts
 * import { getGpu } from "../../gpu/device.ts";
 * import { parseQuantizationArgs } from "../../quant/args.ts";
 * import { runColumnLoop } from "./column_loop.ts";
 * import { gptqResult, planGptqLoop } from "./gptq_quantize.ts";
 * import { InverseHessianFactor } from "./inverse_hessian_factor.ts";
 * const gpu = await getGpu();
 * const factor = InverseHessianFactor.identity(gpu, 8);
 * const args = parseQuantizationArgs({ num_bits: 4, strategy: "channel" }, "w");
 * const w = new Float32Array(32).map((_, i) => Math.cos(i));
 * const plan = planGptqLoop(w, [4, 8], factor, args, { blockSize: 8 });
 * const loop = await runColumnLoop(gpu, plan.loop);
 * const none = { prepareMs: 0, choleskyMs: 0, inverseMs: 0 };
 * const r = gptqResult(plan, loop, { ...none, quantizeMs: loop.ms, totalMs: loop.ms });
 * console.assert(r.scale.length === 4 && r.attempts === 0);
 * factor.destroy();
 * ```
 */
export function planGptqLoop(
  weight: Float32Array,
  shape: readonly [number, number],
  factor: InverseHessianFactor,
  args: QuantizationArgs,
  options: Pick<GptqOptions, "blockSize" | "globalScale" | "where" | "maxChunkBytes"> = {},
): GptqLoopPlan {
  const where = options.where ?? "weight";
  const actorder = canonicalActorder(args.actorder) !== null;
  if ((factor.perm !== null) !== actorder) {
    throw new GptqConfigError(
      `${where}: the inverse-Hessian factor was computed ${factor.perm ? "with" : "without"} ` +
        `activation ordering but args.actorder is ${args.actorder}`,
    );
  }
  const qparams = gptqQParams(weight, shape, args, factor.perm, {
    globalScale: options.globalScale,
    where,
  });
  let zeros = 0;
  for (let i = 0; i < weight.length; i++) if (weight[i] === 0) zeros++;
  return {
    qparams,
    factor,
    loop: {
      weight,
      shape,
      factor,
      blockSize: options.blockSize ?? 128,
      quantization: qparams.columns,
      preserveZeros: zeros / weight.length >= 0.05,
      maxChunkBytes: options.maxChunkBytes,
    },
  };
}

/**
 * The {@link GptqResult} of a plan whose loop has run: qparams from the
 * plan, weight and loss from the loop, `fellBackToRtn` / `dampeningUsed` /
 * `attempts` / `deadColumns` from the plan's factor.
 *
 * @param plan the plan from {@link planGptqLoop}
 * @param loop the column loop's output on `plan.loop`
 * @param timings the phase times to report
 * @returns the result
 *
 * @example
 * ```ts ignore
 * const plan = planGptqLoop(w, shape, factor, args, { blockSize: 128 });
 * const loop = await runColumnLoop(gpu, plan.loop);
 * const result = gptqResult(plan, loop, timings);
 * ```
 */
export function gptqResult(
  plan: GptqLoopPlan,
  loop: ColumnLoopOutput,
  timings: GptqTimings,
): GptqResult {
  const { qparams: qp, factor } = plan;
  let dead = 0;
  for (const d of factor.dead) dead += d;
  return {
    weight: loop.weight,
    scale: qp.scale,
    zeroPoint: qp.zeroPoint,
    qparamShape: qp.qparamShape,
    ...(qp.globalScale !== null ? { globalScale: qp.globalScale } : {}),
    ...(qp.gIdx ? { gIdx: qp.gIdx } : {}),
    loss: loop.loss,
    fellBackToRtn: factor.fellBack,
    dampeningUsed: factor.dampeningFrac,
    attempts: factor.attempts,
    deadColumns: dead,
    timings,
  };
}

/**
 * One weight's GPTQ as a job of `runFactorLoops` (src/modifiers/gptq/factor_loops.ts):
 * on whatever factor of its Hessian the step hands it, {@link planGptqLoop}
 * prepares the loop and {@link gptqResult} builds the result, so the
 * weight comes out bit-identical to {@link gptqQuantize} on the factor
 * `InverseHessianFactor.compute` gives. Validate the weight first
 * ({@link checkGptqWeight}).
 *
 * @param input the key of the Hessian the weight reads
 * @param weight the weight, row-major [rows, cols]
 * @param shape [rows, cols]
 * @param args the weight's quantization args (actorder picks the factor's column order)
 * @param options block size, global scale, chunk bound, module name
 * @returns the job
 *
 * @example
 * ```ts
 * import { getGpu } from "../../gpu/device.ts";
 * import { parseQuantizationArgs } from "../../quant/args.ts";
 * import { runFactorLoops } from "./factor_loops.ts";
 * import { gptqFactorLoopJob } from "./gptq_quantize.ts";
 * import { HessianAccumulator } from "./hessian_accumulator.ts";
 * const gpu = await getGpu();
 * const h = HessianAccumulator.create(gpu, 8); // all zero: every column dead
 * const args = parseQuantizationArgs({ num_bits: 4, strategy: "channel" }, "w");
 * const w = new Float32Array(32).map((_, i) => Math.cos(i));
 * const [r] = await runFactorLoops(gpu, () => h, [gptqFactorLoopJob("x", w, [4, 8], args, { blockSize: 8 })], {
 *   factor: { dampeningFrac: 0.01 },
 *   blockSize: 8,
 * });
 * console.assert(r.deadColumns === 8 && r.attempts === 1);
 * h.destroy();
 * ```
 */
export function gptqFactorLoopJob(
  input: string,
  weight: Float32Array,
  shape: readonly [number, number],
  args: QuantizationArgs,
  options: Pick<GptqOptions, "blockSize" | "globalScale" | "where" | "maxChunkBytes"> = {},
): FactorLoopJob<GptqResult> {
  return {
    input,
    actorder: canonicalActorder(args.actorder) !== null,
    shape,
    prepare: (factor) => {
      const plan = planGptqLoop(weight, shape, factor, args, options);
      return {
        loop: plan.loop,
        finish: (loop, t) =>
          gptqResult(plan, loop, {
            prepareMs: t.prepareMs,
            choleskyMs: t.choleskyMs,
            inverseMs: t.inverseMs,
            quantizeMs: t.loopMs,
            totalMs: t.totalMs,
          }),
      };
    },
  };
}
