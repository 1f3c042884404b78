/**
 * GPTQ (llm-compressor 0.9 §4.4) written against the engine seam: the
 * algorithm (`quantizeWeight`: activation order, qparams, dampening with
 * retries and the RTN fallback, the blocked column loop) on an engine's
 * second-order ops, the layer step (Hessians per input, shared factors),
 * and a plain float64 TypeScript reference. SparseGPT
 * (src/modifiers/sparsegpt) reuses all of it. The engines' own code (the
 * WGSL Hessian accumulator, Cholesky and triangular inverse; the CPU
 * kernels) lives in src/engine.
 *
 * Typical use, per decoder layer of a sequential pipeline:
 *
 * ```ts
 * import { createEngine } from "../../engine/mod.ts";
 * import { parseQuantizationArgs } from "../../quant/args.ts";
 * import { gptqQuantize } from "./mod.ts";
 *
 * const { engine } = await createEngine({ engine: "cpu" });
 * const hidden = 16;
 * // One Hessian per distinct input: q/k/v share the attention input.
 * const qkvInput = engine.secondOrder.runningHessian(hidden);
 * for (let b = 0; b < 4; b++) {
 *   const x = engine.upload(new Float32Array(8 * hidden).map(Math.random), [8, hidden]);
 *   qkvInput.add(x, 1); // x: this batch's input of q_proj (= k_proj's = v_proj's)
 *   x.destroy();
 * }
 * const args = parseQuantizationArgs({ num_bits: 4, group_size: 8, actorder: "static" }, "w");
 * for (const name of ["q_proj", "k_proj", "v_proj"]) {
 *   const w = new Float32Array(hidden * hidden).map(() => Math.random() - 0.5);
 *   const r = await gptqQuantize(engine, w, [hidden, hidden], qkvInput, args, { where: name });
 *   console.log(name, r.loss, r.fellBackToRtn);
 * }
 * qkvInput.destroy();
 * engine.close();
 * ```
 *
 * @module
 */

export { GptqConfigError, GptqShapeError } from "./errors.ts";
export { activationOrder, checkDampeningFrac, dampeningSchedule } from "./dampening.ts";
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
export {
  choleskyLower,
  gptqReference,
  type GptqReferenceOptions,
  type GptqReferenceResult,
  upperFactorOfInverse,
} from "./reference.ts";
export {
  blockedColumnLoop,
  DampedFactors,
  destroyFactors,
  type FactorAttempt,
  type FactorCache,
  quantizeWeight,
  type QuantizeWeightOptions,
} from "./quantize_weight.ts";
