/**
 * GPTQ for one Linear weight on a WebGPU device (`quantizeWeight` in
 * quantize_weight.ts on the device's second-order ops), its options,
 * result type and checks.
 *
 * @module
 */

import { webGpuSecondOrder } from "../../engine/webgpu_second_order.ts";
import { CommandBatch } from "../../gpu/batch.ts";
import type { Gpu } from "../../gpu/device.ts";
import type { QuantizationArgs } from "../../quant/args.ts";
import { GptqShapeError } from "./errors.ts";
import { checkGptqArgs } from "./gptq_qparams.ts";
import type { HessianAccumulator } from "./hessian_accumulator.ts";
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
 * Quantizes one weight with GPTQ on a WebGPU device: {@link quantizeWeight}
 * on WebGPU second-order ops of its own (two device polls when the first
 * factorization succeeds). The accumulator is not consumed; destroy it
 * when the last module using it is done.
 *
 * @param gpu the device
 * @param weight the weight, row-major [rows, cols] (f32)
 * @param shape [rows (out_features), cols (in_features)]
 * @param hessian the Hessian accumulated over the module's inputs
 * @param args the weight's quantization args (static; tensor, channel,
 *   group with actorder, tensor_group, block; int 1–8 bits, fp8, fp4)
 * @param options block size, dampening, retries, global scale, chunk and panel bounds
 * @returns the fake-quantized weight, qparams, loss and diagnostics
 * @throws {GptqConfigError} for unsupported args
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
  hessian: HessianAccumulator,
  args: QuantizationArgs,
  options: GptqOptions = {},
): Promise<GptqResult> {
  const ops = webGpuSecondOrder({ gpu, batch: new CommandBatch(gpu) }, options);
  return await quantizeWeight(ops, weight, shape, hessian, args, options);
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
