/**
 * GPTQ's and SparseGPT's Hessian on the CPU engine
 * (`runningHessian` of the CPU engine's second-order ops): the
 * running Hessian `H = 2/n · Σ xᵀx` kept as upstream keeps it (rescaled by
 * n₀/n₁ as samples arrive, Gram products through `gemm.ts`), and the
 * reconstruction errors measured on a host Hessian.
 *
 * @module
 */

import { GptqShapeError } from "../../modifiers/gptq/errors.ts";
import { cpuTensor } from "../cpu_engine.ts";
import type { RunningHessian, Tensor } from "../engine.ts";
import { mirrorUpperTriangle, quadraticSums, scaleAddGramUpper } from "./gemm.ts";

/**
 * A Hessian accumulated on the host: the CPU engine's {@link RunningHessian}.
 *
 * @example
 * ```ts
 * import { CpuHessian } from "./hessian.ts";
 * const h = new CpuHessian(2);
 * h.add(new Float32Array([1, 2]), 1);
 * console.assert(h.matrix.join() === "2,4,4,8");
 * ```
 */
export class CpuHessian implements RunningHessian {
  #numSamples = 0;
  #h: Float32Array;
  /** Whether H's lower triangle is its upper one's mirror (updates write only the upper). */
  #mirrored = true;

  /** @param columns in_features */
  constructor(readonly columns: number) {
    if (!Number.isInteger(columns) || columns < 1) {
      throw new GptqShapeError(
        `CpuHessian: in_features must be a positive integer, got ${columns}`,
      );
    }
    this.#h = new Float32Array(columns * columns);
  }

  /** Samples accumulated so far (upstream's nsamples). */
  get numSamples(): number {
    return this.#numSamples;
  }

  /**
   * Adds one forward's inputs: `H ← H · n₀/n₁ + 2/n₁ · xᵀx`.
   *
   * @param input activations `[rows, columns]`: a CPU engine tensor or its host array
   * @param numSequences samples in x (upstream counts sequences)
   * @example
   * ```ts ignore
   * hessian.add(activations, 4);
   * ```
   */
  add(input: Tensor | Float32Array, numSequences: number): void {
    const x = input instanceof Float32Array
      ? input
      : cpuTensor(input, "Hessian").data as Float32Array;
    const n = this.columns;
    if (x.length % n !== 0) {
      throw new GptqShapeError(`CpuHessian of ${n} columns got ${x.length} activation values`);
    }
    if (!Number.isInteger(numSequences) || numSequences < 1) {
      throw new GptqShapeError(`CpuHessian.add: numSequences must be ≥ 1, got ${numSequences}`);
    }
    const n0 = this.#numSamples;
    const n1 = n0 + numSequences;
    this.#numSamples = n1;
    // Only the upper triangle is updated (xᵀx and H are symmetric, so the
    // lower one would get the same bits); it is mirrored once when H is read.
    scaleAddGramUpper(this.#h, x, x.length / n, n, n0 / n1, 2 / n1);
    this.#mirrored = false;
  }

  /**
   * H itself, `[columns, columns]` row-major (read-only). A later `add`
   * updates only its upper triangle until the next `matrix` or `read()`
   * mirrors it, so take the matrix again after an `add` instead of keeping
   * an earlier reference.
   *
   * @example
   * ```ts ignore
   * const diag0 = hessian.matrix[0];
   * ```
   */
  get matrix(): Float32Array {
    if (!this.#mirrored) {
      mirrorUpperTriangle(this.#h, this.columns);
      this.#mirrored = true;
    }
    return this.#h;
  }

  /**
   * A copy of H, `[columns, columns]` row-major.
   *
   * @returns the Hessian
   * @example
   * ```ts ignore
   * const h = await hessian.read();
   * ```
   */
  read(): Promise<Float32Array> {
    return Promise.resolve(this.matrix.slice());
  }

  /**
   * Drops the matrices (nothing to release on a device); idempotent.
   *
   * @example
   * ```ts ignore
   * hessian.destroy();
   * ```
   */
  destroy(): void {
    this.#h = new Float32Array(0);
    this.#mirrored = true;
  }
}

/**
 * Relative output errors `tr(Δ H Δᵀ) / tr(W H Wᵀ)` of candidates Ŵ (Δ = W − Ŵ)
 * (`reconstructionErrors` of the CPU engine's second-order ops).
 *
 * @param h the Hessian of the weight's input, `[in, in]` row-major (not modified)
 * @param original W, `[out, in]`
 * @param shape `[out, in]`
 * @param candidates approximations of W
 * @returns one relative error per candidate (0 when W H Wᵀ = 0)
 * @example
 * ```ts ignore
 * const [gptq, rtn] = cpuReconstructionErrors(hessian.matrix, w, [64, 64], [gptqW, rtnW]);
 * ```
 */
export function cpuReconstructionErrors(
  h: Float32Array,
  original: Float32Array,
  shape: readonly [number, number],
  candidates: readonly Float32Array[],
): number[] {
  const [out, cols] = shape;
  // Σ_rows d·H·dᵀ for d the rows of W and of each W − Ŵ: the rows in
  // chunks, D·H as one SIMD product per chunk (H is symmetric, so the
  // transposed product is the same) and the row dots in float64, summed in
  // order, both on the kernels, H packed once (`quadraticSums`).
  const sums = quadraticSums(original, candidates, h, out, cols, squareSumChunkRows(out, cols));
  const base = sums[0];
  return candidates.map((_, k) => base > 0 ? sums[k + 1] / base : 0);
}

/**
 * `tr(M H Mᵀ)` (`outputSquareSum` of the CPU engine's second-order ops):
 * with H = 2XᵀX/n, `2/n · ‖XMᵀ‖²_F`.
 *
 * @param h the Hessian of the input, `[in, in]` row-major (not modified)
 * @param m the matrix, `[out, in]`
 * @param shape `[out, in]`
 * @returns the sum, in float64
 * @throws {GptqShapeError} when m or H does not have the shape's size
 * @example
 * ```ts
 * import { cpuOutputSquareSum } from "./hessian.ts";
 * // H = [[2, 0], [0, 4]], M = [1, 1]: 2 + 4
 * console.assert(cpuOutputSquareSum(new Float32Array([2, 0, 0, 4]), new Float32Array([1, 1]), [1, 2]) === 6);
 * ```
 */
export function cpuOutputSquareSum(
  h: Float32Array,
  m: Float32Array,
  shape: readonly [number, number],
): number {
  const [out, cols] = shape;
  if (h.length !== cols * cols || m.length !== out * cols) {
    throw new GptqShapeError(
      `outputSquareSum: a [${out}, ${cols}] matrix of ${m.length} values on a Hessian of ` +
        `${h.length} values`,
    );
  }
  // The reconstruction errors' first sum, in the same chunks and order.
  return quadraticSums(m, [], h, out, cols, squareSumChunkRows(out, cols))[0];
}

/** Rows per chunk of the quadratic sums: about 4 Mi values of D at a time. */
function squareSumChunkRows(out: number, cols: number): number {
  return Math.max(1, Math.min(out, Math.floor(2 ** 22 / cols)));
}
