/**
 * GPTQ (llm-compressor 0.9 §4.4) on WebGPU: the Hessian accumulator, the
 * inverse-Hessian factor (blocked Cholesky + triangular inverse in WGSL,
 * with retries and the RTN fallback), the blocked column loop, and a plain
 * TypeScript reference. SparseGPT (src/modifiers/sparsegpt) reuses all of it.
 *
 * Typical use, per decoder layer of a sequential pipeline:
 *
 * ```ts
 * import { CommandBatch } from "../../gpu/batch.ts";
 * import { getGpu } from "../../gpu/device.ts";
 * import { GpuTensor } from "../../gpu/tensor.ts";
 * import { parseQuantizationArgs } from "../../quant/args.ts";
 * import { gptqQuantize, HessianAccumulator } from "./mod.ts";
 *
 * const gpu = await getGpu();
 * const hidden = 16;
 * // One accumulator per distinct input: q/k/v share the attention input.
 * const qkvInput = HessianAccumulator.create(gpu, hidden);
 * const batch = new CommandBatch(gpu);
 * for (let b = 0; b < 4; b++) {
 *   const x = GpuTensor.fromArray(gpu, new Float32Array(8 * hidden).map(Math.random), [8, hidden]);
 *   qkvInput.add(batch, x, 1); // x: this batch's input of q_proj (= k_proj's = v_proj's)
 * }
 * const args = parseQuantizationArgs({ num_bits: 4, group_size: 8, actorder: "static" }, "w");
 * for (const name of ["q_proj", "k_proj", "v_proj"]) {
 *   const w = new Float32Array(hidden * hidden).map(() => Math.random() - 0.5);
 *   const r = await gptqQuantize(gpu, w, [hidden, hidden], qkvInput, args, { where: name });
 *   console.log(name, r.loss, r.fellBackToRtn);
 * }
 * qkvInput.destroy();
 * ```
 *
 * @module
 */

export { GptqConfigError, GptqShapeError } from "./errors.ts";
export { HessianAccumulator } from "./hessian_accumulator.ts";
export {
  activationOrder,
  dampeningSchedule,
  type InverseFactorOptions,
  type InverseFactorTimings,
  InverseHessianFactor,
} from "./inverse_hessian_factor.ts";
export {
  checkGptqWeight,
  type GptqOptions,
  gptqQuantize,
  type GptqResult,
  type GptqTimings,
} from "./gptq_quantize.ts";
export {
  checkGptqArgs,
  type ColumnQuantization,
  type GptqQParams,
  gptqQParams,
  type GptqQParamsOptions,
} from "./gptq_qparams.ts";
export { PanelMatrix, type PanelMatrixOptions } from "./panel_matrix.ts";
export {
  choleskyLower,
  gptqReference,
  type GptqReferenceOptions,
  type GptqReferenceResult,
  upperFactorOfInverse,
} from "./reference.ts";
export { prepareGptqKernels } from "./prepare_kernels.ts";
export {
  blockedColumnLoop,
  DampedFactors,
  destroyFactors,
  type FactorAttempt,
  type FactorCache,
  quantizeWeight,
  type QuantizeWeightOptions,
} from "./quantize_weight.ts";
