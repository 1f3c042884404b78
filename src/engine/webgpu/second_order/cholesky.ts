/**
 * The blocked right-looking Cholesky factorization A = L·Lᵀ on the GPU, in
 * place on a {@link PanelMatrix}. Per 64-column panel k:
 *
 * 1. factor the diagonal block (cholesky_diagonal_block.wgsl, one workgroup);
 * 2. solve the rows below it against L_kk (cholesky_panel_solve.wgsl),
 *    keeping a transposed copy Pᵀ of the solved panel;
 * 3. update the trailing lower triangle A22 −= P·Pᵀ
 *    (matmul_at_b_update.wgsl), where almost all the flops are.
 *
 * Nothing waits: a failed pivot is recorded in a status tensor the caller
 * reads once (see {@link createFactorStatus}).
 *
 * @module
 */

import type { CommandBatch } from "../../../gpu/batch.ts";
import type { Gpu } from "../../../gpu/device.ts";
import { kernelSync } from "../../../gpu/kernel.ts";
import { GpuTensor } from "../../../gpu/tensor.ts";
import { recordAtBUpdate } from "./matmul_at_b_update.ts";
import { PANEL_BLOCK, type PanelMatrix } from "./panel_matrix.ts";
import { packUniform } from "./_uniform.ts";

/** Work buffers of one factorization (reusable across factorizations of one order). */
export interface CholeskyScratch {
  /** L_kk of the current step, [64·64]. */
  readonly lkk: GpuTensor;
  /** Pᵀ of the current step, [64, order]. */
  readonly panelT: GpuTensor;
  /** The status tensor from {@link createFactorStatus}. */
  readonly status: GpuTensor;
}

/**
 * A fresh status tensor: u32 [failed flag, first failing pivot (0xFFFFFFFF: none)].
 *
 * @param gpu the device
 * @returns the tensor, queued for upload
 *
 * @example
 * ```ts
 * import { getGpu } from "../../../gpu/device.ts";
 * import { createFactorStatus, readFactorStatus } from "./cholesky.ts";
 * const s = createFactorStatus(await getGpu());
 * console.assert((await readFactorStatus(s)).failed === false);
 * ```
 */
export function createFactorStatus(gpu: Gpu): GpuTensor {
  return GpuTensor.fromArray(gpu, new Uint32Array([0, 0xFFFFFFFF]), [2]);
}

/** What a status tensor says. */
export interface FactorStatus {
  /** A pivot was not positive and finite, or an inverse entry overflowed. */
  readonly failed: boolean;
  /** The first failing Cholesky pivot (in the factored matrix's order), if any. */
  readonly pivot: number | null;
}

/**
 * Reads a status tensor (one wait).
 *
 * @param status the tensor from {@link createFactorStatus}
 * @returns whether the factorization failed, and where
 *
 * @example
 * ```ts
 * import { getGpu } from "../../../gpu/device.ts";
 * import { createFactorStatus, readFactorStatus } from "./cholesky.ts";
 * const s = createFactorStatus(await getGpu());
 * console.assert((await readFactorStatus(s)).pivot === null);
 * ```
 */
export async function readFactorStatus(status: GpuTensor): Promise<FactorStatus> {
  const s = (await status.read()) as Uint32Array;
  return { failed: s[0] !== 0, pivot: s[1] === 0xFFFFFFFF ? null : s[1] };
}

/**
 * Allocates the work buffers for factorizations of matrices of `order`.
 *
 * @param gpu the device
 * @param order the padded order of the matrices
 * @param status the status tensor to record failures in
 * @returns the scratch; destroy lkk and panelT when done
 *
 * @example
 * ```ts
 * import { getGpu } from "../../../gpu/device.ts";
 * import { createCholeskyScratch, createFactorStatus } from "./cholesky.ts";
 * const gpu = await getGpu();
 * const s = createCholeskyScratch(gpu, 128, createFactorStatus(gpu));
 * console.assert(s.panelT.numel === 64 * 128);
 * ```
 */
export function createCholeskyScratch(gpu: Gpu, order: number, status: GpuTensor): CholeskyScratch {
  return {
    lkk: GpuTensor.allocate(gpu, [PANEL_BLOCK * PANEL_BLOCK]),
    panelT: GpuTensor.allocate(gpu, [PANEL_BLOCK, order]),
    status,
  };
}

/**
 * Records the in-place factorization A = L·Lᵀ of a symmetric positive
 * definite matrix (only its lower triangle is read; the upper triangle of
 * the result is unspecified except inside the diagonal blocks, which get 0).
 *
 * @param batch the batch to record into
 * @param a the matrix, overwritten by L
 * @param scratch work buffers of a's order
 * @returns nothing; read `scratch.status` after the batch runs
 *
 * @example
 * ```ts
 * import { CommandBatch } from "../../../gpu/batch.ts";
 * import { getGpu } from "../../../gpu/device.ts";
 * import { PanelMatrix } from "./panel_matrix.ts";
 * import { recordIdentity } from "./panel_ops.ts";
 * import { createCholeskyScratch, createFactorStatus, readFactorStatus, recordCholesky } from "./cholesky.ts";
 * const gpu = await getGpu();
 * const a = PanelMatrix.create(gpu, 64);
 * const batch = new CommandBatch(gpu);
 * recordIdentity(batch, a);
 * const scratch = createCholeskyScratch(gpu, a.order, createFactorStatus(gpu));
 * recordCholesky(batch, a, scratch);
 * await batch.done();
 * console.assert(!(await readFactorStatus(scratch.status)).failed);
 * ```
 */
export function recordCholesky(
  batch: CommandBatch,
  a: PanelMatrix,
  scratch: CholeskyScratch,
): void {
  const gpu = batch.gpu;
  const diagonal = kernelSync(gpu, "cholesky_diagonal_block.wgsl");
  const solve = kernelSync(gpu, "cholesky_panel_solve.wgsl");
  const n = a.order;
  for (let k = 0; k < n; k += PANEL_BLOCK) {
    const p = a.panelOf(k);
    batch.dispatch(
      diagonal,
      [
        { uniform: packUniform([k - a.panelStart(p), k, n]) },
        a.panels[p],
        scratch.lkk,
        scratch.status,
      ],
      [1],
      "cholesky_diagonal_block",
    );
    const below = k + PANEL_BLOCK;
    if (below >= n) break;
    for (let q = p; q < a.panels.length; q++) {
      const r0 = Math.max(below, a.panelStart(q));
      const rows = a.panelEnd(q) - r0;
      batch.dispatch(
        solve,
        [
          { uniform: packUniform([r0 - a.panelStart(q), rows, r0, k, n, n]) },
          scratch.lkk,
          a.panels[q],
          scratch.panelT,
        ],
        [Math.ceil(rows / 64)],
        "cholesky_panel_solve",
      );
    }
    for (let q = p; q < a.panels.length; q++) {
      const r0 = Math.max(below, a.panelStart(q));
      const end = a.panelEnd(q);
      recordAtBUpdate(batch, {
        m: end - r0,
        n: end - below,
        k: PANEL_BLOCK,
        a: { tensor: scratch.panelT, offset: r0, ld: n },
        b: { tensor: scratch.panelT, offset: below, ld: n },
        c: { tensor: a.panels[q], offset: (r0 - a.panelStart(q)) * n + below, ld: n },
        lowerOnly: { row0: r0, col0: below },
      });
    }
  }
}
