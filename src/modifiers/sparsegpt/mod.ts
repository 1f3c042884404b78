/**
 * SparseGPT (llm-compressor 0.9 §4.5) on an engine's second-order ops:
 * unstructured (per-block threshold) and N:M (e.g. 2:4) pruning with the
 * OBS weight update, built on GPTQ's Hessian, inverse-Hessian factor and
 * column loop, plus a plain TypeScript reference.
 *
 * ```ts
 * import { createEngine } from "../../engine/mod.ts";
 * import { sparsegptPrune } from "./mod.ts";
 *
 * const { engine } = await createEngine({ engine: "cpu" });
 * const h = engine.secondOrder.runningHessian(32);
 * const x = engine.upload(new Float32Array(64 * 32).map(Math.random), [64, 32]);
 * h.add(x, 1);
 * const w = new Float32Array(16 * 32).map(() => Math.random() - 0.5);
 * const r = await sparsegptPrune(engine, w, [16, 32], h, { sparsity: 0.5, maskStructure: "2:4", blockSize: 32 });
 * console.log(r.sparsity, r.loss);
 * h.destroy();
 * engine.close();
 * ```
 *
 * @module
 */

export { SparseGptConfigError } from "./errors.ts";
export { type MaskStructure, parseMaskStructure } from "./mask_structure.ts";
export {
  type SparseGptManyOptions,
  type SparseGptOptions,
  sparsegptPrune,
  sparsegptPruneMany,
  type SparseGptResult,
  type SparseGptWeight,
  type SparseGptWeightOptions,
} from "./sparsegpt_prune.ts";
export { sparsifyWeight } from "./sparsify_weight.ts";
export {
  sparsegptReference,
  type SparseGptReferenceOptions,
  type SparseGptReferenceResult,
} from "./reference.ts";
