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
 * As for GPTQ, the loop ends in one read of the weight, the loss and the
 * factor's status, and a failed attempt is retried from there with more
 * dampening; the engine decides how the ops run.
 *
 * @module
 */

import type { SecondOrderHessian, SecondOrderOps } from "../../engine/engine.ts";
import {
  blockedColumnLoop,
  DampedFactors,
  destroyFactors,
  engineHessian,
  type FactorCache,
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
 * @param hessian H `[cols, cols]`: the engine's, or a symmetric host array (not modified)
 * @param options sparsity, mask structure, block size, dampening, preservation, quantization
 * @param factors factors of this Hessian shared by the weights reading it (filled as it goes; the caller destroys them)
 * @returns the pruned weight and diagnostics
 * @throws {SparseGptConfigError} for a bad sparsity / structure, or a preserved mask sparser than the target
 * @throws {GptqShapeError} when shapes disagree
 * @example
 * ```ts
 * import { CPU_SECOND_ORDER } from "../../engine/mod.ts";
 * import { sparsifyWeight } from "./sparsify_weight.ts";
 * const h = new Float32Array(16).map((_, i) => (i % 5 === 0 ? 2 : 0.5));
 * const r = await sparsifyWeight(CPU_SECOND_ORDER, new Float32Array([1, -2, 0.5, 3]), [1, 4], h, {
 *   sparsity: 0.5, maskStructure: "2:4", blockSize: 4,
 * });
 * console.assert(r.sparsity >= 0.5);
 * ```
 */
export async function sparsifyWeight(
  ops: SecondOrderOps,
  weight: Float32Array,
  shape: readonly [number, number],
  hessian: SecondOrderHessian | Float32Array,
  options: SparseGptOptions,
  factors?: FactorCache,
): Promise<SparseGptResult> {
  const t0 = performance.now();
  const [rows, cols] = shape;
  const h = engineHessian(ops, hessian, options.where ?? "weight");
  const cache = factors ?? new Map();
  try {
    // 1. Checks, structure, qparams.
    const plan = planSparseGpt(weight, shape, h.columns, options);

    // 2. Dead columns, dampening, U.
    const diag = await ops.diagonal(h);
    const damped = DampedFactors.of(ops, cache, h, diag, null, plan.blockSize, options);
    const w = weight.slice();
    zeroDeadColumns(w, rows, cols, damped.deadAt);
    const t1 = performance.now();

    // 3. The preserved mask.
    const nonZero = plan.pruning.preserve ? nonZeroOf(w) : null;

    // 4. The blocked column loop with pruning, on each attempt's U until one succeeds.
    const work = {
      pruning: plan.pruning,
      quantization: plan.qp?.columns,
      nonZero,
      maskInBlock: false,
    };
    for (let k = 0;; k++) {
      const attempt = damped.attempt(k);
      const out = await blockedColumnLoop(ops, attempt.u, w, shape, plan.blockSize, work);
      if (!out.ok) continue;
      const t2 = performance.now();
      return sparseGptResult(
        plan,
        { ...attempt, dead: damped.deadAt },
        out,
        { factorMs: t1 - t0, pruneMs: t2 - t1, totalMs: t2 - t0 },
      );
    }
  } finally {
    if (factors === undefined) destroyFactors(cache);
    if (h !== hessian) h.destroy();
  }
}

/** 1 where a value is not 0, else 0 (a loop: `Uint8Array.from` calls back per value). */
function nonZeroOf(w: Float32Array): Uint8Array {
  const mask = new Uint8Array(w.length);
  for (let i = 0; i < w.length; i++) mask[i] = w[i] !== 0 ? 1 : 0;
  return mask;
}
