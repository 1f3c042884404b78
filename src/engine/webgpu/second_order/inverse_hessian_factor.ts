/**
 * InverseHessianFactor: the matrix GPTQ and SparseGPT propagate errors
 * with, U upper-triangular with H⁻¹ = UᵀU (llm-compressor's
 * `cholesky(cholesky_inverse(cholesky(H)), upper=True)`), computed on the
 * GPU from a {@link HessianAccumulator}:
 *
 * 1. H' = P·H·Pᵀ for the activation order P (descending diag(H), when asked),
 *    dead columns (diag 0) get H'[i, i] = 1, then + damp·I with
 *    damp = dampening_frac · mean(diag) — as upstream;
 * 2. instead of three factorizations (cholesky, cholesky_inverse, cholesky)
 *    it uses one Cholesky and one triangular inverse: with J the reversal
 *    permutation, J·H'·J = L̃·L̃ᵀ gives H' = V·Vᵀ with V = J·L̃·J upper, so
 *    H'⁻¹ = (V⁻¹)ᵀ·V⁻¹ and U = V⁻¹ = J·L̃⁻¹·J. Cholesky factors with a
 *    positive diagonal are unique, so this is the same U in exact
 *    arithmetic, for 2n³/3 flops instead of 4n³/3;
 * 3. a pivot that is not positive and finite (or an overflowing inverse) is
 *    detected on the GPU; the factorization is retried with the dampening
 *    fraction ×10 (up to `maxRetries` times), and if every attempt fails
 *    U = I, which makes the column loop plain round-to-nearest. Upstream
 *    falls back to I at once; the retries are llmc's addition and
 *    `fellBack` reports the fallback.
 *
 * The factor depends on the Hessian, the dampening and whether the columns
 * are activation-ordered, not on the weight: modules sharing an accumulator
 * (q/k/v, gate/up) with the same options can share one factor.
 *
 * `compute` records each attempt as GPTQ and SparseGPT do
 * (`recordInverseFactor`, src/engine/webgpu_second_order.ts) and waits on
 * the diagonal and on each attempt's status: the factor on its own, for
 * tests and inspection (`choleskyMs` covers every attempt's Cholesky and
 * inverse; `inverseMs` is 0).
 *
 * @module
 */

import { CommandBatch } from "../../../gpu/batch.ts";
import type { Gpu } from "../../../gpu/device.ts";
import { recordInverseFactor } from "../../webgpu_second_order.ts";
import { readFactorStatus } from "./cholesky.ts";
import {
  activationOrder,
  checkDampeningFrac,
  dampeningSchedule,
} from "../../../modifiers/gptq/dampening.ts";
import type { HessianAccumulator } from "./hessian_accumulator.ts";
import { PanelMatrix } from "./panel_matrix.ts";
import { recordDiagonal, recordIdentity } from "./panel_ops.ts";

/** Options of {@link InverseHessianFactor.compute}. */
export interface InverseFactorOptions {
  /** Dampening as a fraction of mean(diag(H)) (llm-compressor default 0.01). */
  dampeningFrac?: number;
  /** Further attempts, each with 10× the dampening fraction, before falling back to I (default 3). */
  maxRetries?: number;
  /** Order the columns by descending diag(H) (GPTQ actorder "group" or "weight"). */
  actorder?: boolean;
  /** Panel heights of U are multiples of this (default 128; use a multiple of the GPTQ block size). */
  rowAlign?: number;
  /** Upper bound on a panel's bytes (tests use it to exercise multi-panel matrices). */
  maxPanelBytes?: number;
}

/** Wall-clock times of the phases, with flop counts of the two factorizations. */
export interface InverseFactorTimings {
  /** Mirror H, read its diagonal, choose order and dampening. */
  prepareMs: number;
  /** Gather + Cholesky, all attempts. */
  choleskyMs: number;
  /** Triangular inverse + reversal (successful attempt). */
  inverseMs: number;
  /** Everything. */
  totalMs: number;
  /** order³/3: the Cholesky's flops (one attempt). */
  choleskyFlops: number;
  /** order³/3: the triangular inverse's flops. */
  inverseFlops: number;
}

/**
 * U (upper, H⁻¹ = UᵀU) of a damped, possibly permuted Hessian, on the GPU.
 *
 * @example
 * ```ts
 * import { getGpu } from "../../../gpu/device.ts";
 * import { InverseHessianFactor } from "./inverse_hessian_factor.ts";
 * const f = InverseHessianFactor.identity(await getGpu(), 8);
 * console.assert((await f.u.read())[9] === 1);
 * f.destroy();
 * ```
 */
export class InverseHessianFactor {
  /**
   * @param size n, the number of columns
   * @param u U in row panels; its leading n×n block is the factor
   * @param perm the column order (position → original column), or null
   * @param dead 1 for columns whose diag(H) was 0
   * @param fellBack true when every attempt failed and U = I
   * @param dampeningFrac the fraction of the attempt that succeeded (the last one tried on fallback)
   * @param damp the absolute value added to the diagonal in that attempt
   * @param attempts factorizations tried
   * @param timings phase times
   */
  constructor(
    readonly size: number,
    readonly u: PanelMatrix,
    readonly perm: Int32Array | null,
    readonly dead: Uint8Array,
    readonly fellBack: boolean,
    readonly dampeningFrac: number,
    readonly damp: number,
    readonly attempts: number,
    readonly timings: InverseFactorTimings,
  ) {}

  /**
   * Computes the factor of an accumulated Hessian (the accumulator is not
   * modified beyond mirroring its lower triangle).
   *
   * @param gpu the device
   * @param hessian the accumulated Hessian
   * @param options dampening, retries, activation order, panel layout
   * @returns the factor (never throws on a failed factorization: see `fellBack`)
   * @throws {GptqConfigError} for a negative or non-finite dampening fraction
   *
   * @example
   * ```ts
   * import { CommandBatch } from "../../../gpu/batch.ts";
   * import { getGpu } from "../../../gpu/device.ts";
   * import { GpuTensor } from "../../../gpu/tensor.ts";
   * import { HessianAccumulator } from "./hessian_accumulator.ts";
   * import { InverseHessianFactor } from "./inverse_hessian_factor.ts";
   * const gpu = await getGpu();
   * const h = HessianAccumulator.create(gpu, 4);
   * h.add(new CommandBatch(gpu), GpuTensor.fromArray(gpu, new Float32Array([1, 2, 3, 4]), [1, 4]), 1);
   * const f = await InverseHessianFactor.compute(gpu, h, { dampeningFrac: 0.01 });
   * console.assert(!f.fellBack && f.attempts === 1);
   * f.destroy();
   * h.destroy();
   * ```
   */
  static async compute(
    gpu: Gpu,
    hessian: HessianAccumulator,
    options: InverseFactorOptions = {},
  ): Promise<InverseHessianFactor> {
    const frac = checkDampeningFrac(options.dampeningFrac);
    const t0 = performance.now();
    const n = hessian.columns;
    const batch = new CommandBatch(gpu);
    hessian.recordSymmetrize(batch);
    const diagT = recordDiagonal(batch, hessian.matrix);
    const diag = (await diagT.readF32()).slice(0, n);
    diagT.destroy();

    const plan = planFactor(diag, options.actorder === true);
    const layout = { maxPanelBytes: options.maxPanelBytes };
    const blockSize = options.rowAlign ?? 128;
    const timings: InverseFactorTimings = {
      prepareMs: performance.now() - t0,
      choleskyMs: 0,
      inverseMs: 0,
      totalMs: 0,
      choleskyFlops: 0,
      inverseFlops: 0,
    };
    const schedule = dampeningSchedule(frac, options.maxRetries ?? 3);
    const done = (u: PanelMatrix, k: number, damp: number, fellBack: boolean) => {
      timings.totalMs = performance.now() - t0;
      timings.choleskyFlops = timings.inverseFlops = u.order ** 3 / 3;
      const used = Math.min(k, schedule.length - 1);
      const { perm, dead } = plan;
      return new InverseHessianFactor(
        n,
        u,
        perm,
        dead,
        fellBack,
        schedule[used],
        damp,
        k + 1,
        timings,
      );
    };
    let damp = 0;
    for (let k = 0; k < schedule.length; k++) {
      damp = Math.fround(schedule[k] * plan.meanDiag);
      const tc = performance.now();
      // The factor as GPTQ records it (src/engine/webgpu_second_order.ts), then its status.
      const f = recordInverseFactor(batch, hessian, { ...plan, damp, blockSize }, layout);
      const failed = (await readFactorStatus(f.status)).failed;
      f.status.destroy();
      timings.choleskyMs += performance.now() - tc;
      if (!failed) return done(f.u, k, damp, false);
      f.u.destroy();
    }
    const u = PanelMatrix.create(gpu, n, { rowAlign: blockSize, ...layout, zeroed: false });
    recordIdentity(batch, u).destroy();
    await batch.done();
    return done(u, schedule.length - 1, damp, true);
  }

  /**
   * The factor U = I (no error propagation: GPTQ becomes round-to-nearest,
   * SparseGPT magnitude pruning). Used for the fallback and by tests.
   *
   * @param gpu the device
   * @param size n
   * @param options panel layout
   * @returns the factor, `fellBack` false, no permutation
   *
   * @example
   * ```ts
   * import { getGpu } from "../../../gpu/device.ts";
   * import { InverseHessianFactor } from "./inverse_hessian_factor.ts";
   * const f = InverseHessianFactor.identity(await getGpu(), 4);
   * console.assert(f.size === 4 && f.perm === null);
   * f.destroy();
   * ```
   */
  static identity(
    gpu: Gpu,
    size: number,
    options: Pick<InverseFactorOptions, "rowAlign" | "maxPanelBytes"> = {},
  ): InverseHessianFactor {
    const u = PanelMatrix.create(gpu, size, { ...options, zeroed: false });
    const batch = new CommandBatch(gpu);
    const sigma = recordIdentity(batch, u);
    batch.submit();
    sigma.destroy();
    const none = { prepareMs: 0, choleskyMs: 0, inverseMs: 0, totalMs: 0 };
    return new InverseHessianFactor(
      size,
      u,
      null,
      new Uint8Array(size),
      false,
      0,
      0,
      0,
      { ...none, choleskyFlops: 0, inverseFlops: 0 },
    );
  }

  /**
   * Releases U.
   *
   * @returns nothing
   *
   * @example
   * ```ts
   * import { getGpu } from "../../../gpu/device.ts";
   * import { InverseHessianFactor } from "./inverse_hessian_factor.ts";
   * InverseHessianFactor.identity(await getGpu(), 4).destroy();
   * ```
   */
  destroy(): void {
    this.u.destroy();
  }
}

/** What the host decides from diag(H) before factoring. */
interface FactorPlan {
  readonly n: number;
  /** 1 for columns whose diag(H) is 0. */
  readonly dead: Uint8Array;
  /** mean(diag) with dead columns counted as 1, rounded to f32. */
  readonly meanDiag: number;
  /** The activation order, or null. */
  readonly perm: Int32Array | null;
}

function planFactor(diag: Float32Array, actorder: boolean): FactorPlan {
  const n = diag.length;
  const dead = new Uint8Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    dead[i] = diag[i] === 0 ? 1 : 0;
    sum += dead[i] ? 1 : diag[i];
  }
  return {
    n,
    dead,
    meanDiag: Math.fround(sum / n),
    perm: actorder ? activationOrder(diag) : null,
  };
}
