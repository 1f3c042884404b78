/**
 * GPTQ for one Linear weight on an engine (`quantizeWeight` in
 * quantize_weight.ts on the engine's second-order ops), its options,
 * result type and checks.
 *
 * @module
 */

import type { Engine, SecondOrderHessian } from "../../engine/engine.ts";
import type { QuantizationArgs } from "../../quant/args.ts";
import { GptqShapeError } from "./errors.ts";
import { checkGptqArgs } from "./gptq_qparams.ts";
import { quantizeWeight } from "./quantize_weight.ts";

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
 * Quantizes one weight with GPTQ on an engine: {@link quantizeWeight} on
 * the engine's second-order ops (on WebGPU, two device polls when the
 * first factorization succeeds). The Hessian is not consumed; destroy it
 * when the last module using it is done.
 *
 * @param engine the engine
 * @param weight the weight, row-major [rows, cols] (f32)
 * @param shape [rows (out_features), cols (in_features)]
 * @param hessian the Hessian accumulated over the module's inputs, held by `engine`
 * @param args the weight's quantization args (static; tensor, channel,
 *   group with actorder, tensor_group, block; int 1–8 bits, fp8, fp4)
 * @param options block size, dampening, retries, global scale
 * @returns the fake-quantized weight, qparams, loss and diagnostics
 * @throws {GptqConfigError} for unsupported args
 * @throws {GptqShapeError} when shapes disagree
 *
 * @example
 * ```ts
 * import { CpuEngine } from "../../engine/mod.ts";
 * import { parseQuantizationArgs } from "../../quant/args.ts";
 * import { gptqQuantize } from "./gptq_quantize.ts";
 * const engine = new CpuEngine();
 * const h = engine.secondOrder.runningHessian(8);
 * h.add(engine.upload(new Float32Array(64).map((_, i) => Math.sin(i)), [8, 8]), 1);
 * const w = new Float32Array(32).map((_, i) => Math.cos(i));
 * const args = parseQuantizationArgs({ num_bits: 4, strategy: "channel" }, "w");
 * const r = await gptqQuantize(engine, w, [4, 8], h, args, { blockSize: 8 });
 * console.assert(!r.fellBackToRtn && r.scale.length === 4);
 * h.destroy();
 * engine.close();
 * ```
 */
export async function gptqQuantize(
  engine: Engine,
  weight: Float32Array,
  shape: readonly [number, number],
  hessian: SecondOrderHessian,
  args: QuantizationArgs,
  options: GptqOptions = {},
): Promise<GptqResult> {
  return await quantizeWeight(engine.secondOrder, weight, shape, hessian, args, options);
}

/**
 * The checks {@link gptqQuantize} makes before any device work: supported
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
