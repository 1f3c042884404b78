/**
 * The inverse X = L⁻¹ of a lower-triangular matrix on the GPU, by the
 * right-looking blocked forward substitution of L·X = I. Per 64-row block k:
 *
 * 1. X_k = L_kk⁻¹·B_k (triangular_inverse_diagonal_solve.wgsl), where B_k is
 *    the identity block row minus the updates of earlier blocks;
 * 2. copy L[below, k-block]ᵀ (triangular_inverse_panel_transpose.wgsl);
 * 3. B[below, 0:k+64] −= L[below, k-block]·X_k (matmul_at_b_update.wgsl),
 *    where almost all the flops are.
 *
 * @module
 */

import type { CommandBatch } from "../../../gpu/batch.ts";
import type { Gpu } from "../../../gpu/device.ts";
import { kernelSync } from "../../../gpu/kernel.ts";
import { GpuTensor } from "../../../gpu/tensor.ts";
import { GptqShapeError } from "../../../modifiers/gptq/errors.ts";
import { recordAtBUpdate } from "./matmul_at_b_update.ts";
import { PANEL_BLOCK, type PanelMatrix } from "./panel_matrix.ts";
import { packUniform } from "./_uniform.ts";

/** Work buffers of one inverse (reusable across inverses of one order). */
export interface TriangularInverseScratch {
  /** L[below, k-block]ᵀ, [64, order]. */
  readonly panelT: GpuTensor;
  /** X_k, [64, order]. */
  readonly blockRow: GpuTensor;
  /** Status tensor (see createFactorStatus in cholesky.ts): set on a non-finite entry. */
  readonly status: GpuTensor;
}

/**
 * Allocates the work buffers for inverses of matrices of `order`.
 *
 * @param gpu the device
 * @param order the padded order
 * @param status the status tensor to record failures in
 * @returns the scratch; destroy panelT and blockRow when done
 *
 * @example
 * ```ts
 * import { getGpu } from "../../../gpu/device.ts";
 * import { createFactorStatus } from "./cholesky.ts";
 * import { createTriangularInverseScratch } from "./triangular_inverse.ts";
 * const gpu = await getGpu();
 * const s = createTriangularInverseScratch(gpu, 64, createFactorStatus(gpu));
 * console.assert(s.blockRow.numel === 64 * 64);
 * ```
 */
export function createTriangularInverseScratch(
  gpu: Gpu,
  order: number,
  status: GpuTensor,
): TriangularInverseScratch {
  return {
    panelT: GpuTensor.allocate(gpu, [PANEL_BLOCK, order]),
    blockRow: GpuTensor.allocate(gpu, [PANEL_BLOCK, order]),
    status,
  };
}

/**
 * Records out ← L⁻¹. `out` must hold the identity on entry (see
 * recordIdentity in panel_ops.ts) and be a different matrix than `l`; only
 * the lower triangle of `l` is read, and only the lower triangle of `out`
 * is written (its upper triangle keeps the identity's zeros).
 *
 * @param batch the batch to record into
 * @param l the lower-triangular factor
 * @param out the result, identity on entry
 * @param scratch work buffers of the order
 * @returns nothing
 * @throws {GptqShapeError} when the matrices differ in order or are the same
 *
 * @example
 * ```ts
 * import { CommandBatch } from "../../../gpu/batch.ts";
 * import { getGpu } from "../../../gpu/device.ts";
 * import { createFactorStatus } from "./cholesky.ts";
 * import { PanelMatrix } from "./panel_matrix.ts";
 * import { recordIdentity } from "./panel_ops.ts";
 * import { createTriangularInverseScratch, recordLowerTriangularInverse } from "./triangular_inverse.ts";
 * const gpu = await getGpu();
 * const l = PanelMatrix.create(gpu, 64);
 * const x = PanelMatrix.create(gpu, 64);
 * const batch = new CommandBatch(gpu);
 * recordIdentity(batch, l);
 * recordIdentity(batch, x);
 * recordLowerTriangularInverse(batch, l, x, createTriangularInverseScratch(gpu, 64, createFactorStatus(gpu)));
 * console.assert((await x.read())[0] === 1);
 * ```
 */
export function recordLowerTriangularInverse(
  batch: CommandBatch,
  l: PanelMatrix,
  out: PanelMatrix,
  scratch: TriangularInverseScratch,
): void {
  if (l === out || l.order !== out.order || l.rowsPerPanel !== out.rowsPerPanel) {
    throw new GptqShapeError("triangular inverse: needs two distinct matrices of one layout");
  }
  const gpu = batch.gpu;
  const diagonal = kernelSync(gpu, "triangular_inverse_diagonal_solve.wgsl");
  const transpose = kernelSync(gpu, "triangular_inverse_panel_transpose.wgsl");
  const n = l.order;
  for (let k = 0; k < n; k += PANEL_BLOCK) {
    const p = l.panelOf(k);
    const cols = k + PANEL_BLOCK;
    const local = k - l.panelStart(p);
    batch.dispatch(
      diagonal,
      [
        { uniform: packUniform([local, k, cols, n, n, n]) },
        l.panels[p],
        out.panels[p],
        scratch.blockRow,
        scratch.status,
      ],
      [Math.ceil(cols / 64)],
      "triangular_inverse_diagonal_solve",
    );
    if (cols >= n) break;
    for (let q = p; q < l.panels.length; q++) {
      const r0 = Math.max(cols, l.panelStart(q));
      const rows = l.panelEnd(q) - r0;
      batch.dispatch(
        transpose,
        [
          { uniform: packUniform([r0 - l.panelStart(q), rows, r0, k, n, n]) },
          l.panels[q],
          scratch.panelT,
        ],
        [Math.ceil(rows / 64), PANEL_BLOCK / 4],
        "triangular_inverse_panel_transpose",
      );
    }
    for (let q = p; q < l.panels.length; q++) {
      const r0 = Math.max(cols, l.panelStart(q));
      recordAtBUpdate(batch, {
        m: l.panelEnd(q) - r0,
        n: cols,
        k: PANEL_BLOCK,
        a: { tensor: scratch.panelT, offset: r0, ld: n },
        b: { tensor: scratch.blockRow, offset: 0, ld: n },
        c: { tensor: out.panels[q], offset: (r0 - l.panelStart(q)) * n, ld: n },
      });
    }
  }
}
