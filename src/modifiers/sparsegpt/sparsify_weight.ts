/**
 * SparseGPT for one Linear weight, read top to bottom as llm-compressor
 * 0.9's `sparsify_weight` (sgpt_sparsify.py), on an engine's
 * {@link SecondOrderOps}. It is GPTQ's algorithm
 * (src/modifiers/gptq/quantize_weight.ts) with pruning in the column loop:
 *
 * 1. checks, the mask structure, and (llmc's option) scales fixed from the
 *    unmodified weight when it also fake-quantizes;
 * 2. dead columns (diag(H) = 0: H_ii = 1, W[:, i] = 0), dampening, U =
 *    chol(H⁻¹) upper — retried with 10× the dampening, then U = I, which
 *    makes it plain magnitude pruning;
 * 3. the preserved mask `W != 0` when `preserve_sparsity_mask`;
 * 4. the blocked column loop: per block, the unstructured threshold
 *    `sort(W²/d²)[k]` over the block (or, every M columns, the N smallest
 *    W²/d² of each row), each column pruned (and fake-quantized) with its
 *    error propagated inside the block, then to every later column.
 *
 * The WebGPU engine runs the same algorithm as one batched WGSL step per
 * layer (sparsegpt_prune.ts), tested against the same float64 reference.
 *
 * @module
 */

import type { SecondOrderOps } from "../../engine/engine.ts";
import {
  blockedColumnLoop,
  dampedInverseFactor,
  diagonal,
  type FactorCache,
  hessianOrder,
  zeroDeadColumns,
} from "../gptq/quantize_weight.ts";
import {
  planSparseGpt,
  type SparseGptOptions,
  type SparseGptResult,
  sparseGptResult,
} from "./sparsegpt_prune.ts";

/**
 * Prunes one weight with SparseGPT.
 *
 * @param ops the engine's second-order ops
 * @param weight row-major `[rows, cols]` (not modified)
 * @param shape `[rows, cols]`
 * @param hessian H, symmetric `[cols, cols]` row-major (not modified)
 * @param options sparsity, mask structure, block size, dampening, preservation, quantization
 * @param factors factors of this Hessian already computed (shared by the weights reading it; filled as it goes)
 * @returns the pruned weight and diagnostics
 * @throws {SparseGptConfigError} for a bad sparsity / structure, or a preserved mask sparser than the target
 * @throws {GptqShapeError} when shapes disagree
 * @example
 * ```ts
 * import { CPU_SECOND_ORDER } from "../../engine/cpu/second_order.ts";
 * import { sparsifyWeight } from "./sparsify_weight.ts";
 * const h = new Float32Array(16).map((_, i) => (i % 5 === 0 ? 2 : 0.5));
 * const r = sparsifyWeight(CPU_SECOND_ORDER, new Float32Array([1, -2, 0.5, 3]), [1, 4], h, {
 *   sparsity: 0.5, maskStructure: "2:4", blockSize: 4,
 * });
 * console.assert(r.sparsity >= 0.5);
 * ```
 */
export function sparsifyWeight(
  ops: SecondOrderOps,
  weight: Float32Array,
  shape: readonly [number, number],
  hessian: Float32Array,
  options: SparseGptOptions,
  factors?: FactorCache,
): SparseGptResult {
  const t0 = performance.now();
  const [rows, cols] = shape;
  // 1. Checks, structure, qparams.
  const plan = planSparseGpt(
    weight,
    shape,
    hessianOrder(hessian, options.where ?? "weight"),
    options,
  );

  // 2. Dead columns, dampening, U.
  const factor = factors?.get("columns") ??
    dampedInverseFactor(ops, hessian, diagonal(hessian, cols), null, options);
  factors?.set("columns", factor);
  const w = weight.slice();
  zeroDeadColumns(w, rows, cols, factor.deadAt);
  const t1 = performance.now();

  // 3. The preserved mask.
  const nonZero = plan.pruning.preserve ? Uint8Array.from(w, (v) => (v !== 0 ? 1 : 0)) : null;

  // 4. The blocked column loop with pruning.
  const loss = blockedColumnLoop(ops, w, shape, factor.u, plan.blockSize, {
    pruning: plan.pruning,
    quantization: plan.qp?.columns,
    nonZero,
    maskInBlock: false,
  });
  const t2 = performance.now();
  return sparseGptResult(plan, { ...factor, dead: factor.deadAt }, { weight: w, loss }, {
    factorMs: t1 - t0,
    pruneMs: t2 - t1,
    totalMs: t2 - t0,
  });
}
