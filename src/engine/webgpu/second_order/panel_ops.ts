/**
 * Whole-matrix operations on a {@link PanelMatrix}, each recorded as one
 * dispatch per panel (or per pair of panels): mirroring the lower triangle
 * onto the upper one, gathering rows and columns through a permutation,
 * extracting the diagonal and writing an identity.
 *
 * @module
 */

import type { CommandBatch } from "../../../gpu/batch.ts";
import { kernelSync } from "../../../gpu/kernel.ts";
import { GpuTensor } from "../../../gpu/tensor.ts";
import { foldWorkgroups } from "../../../gpu/workgroups.ts";
import { GptqShapeError } from "../../../modifiers/gptq/errors.ts";
import type { PanelMatrix } from "./panel_matrix.ts";
import { packUniform } from "./_uniform.ts";

/** Marks an identity row/column in a gather permutation. */
export const GATHER_NONE = 0xFFFFFFFF;

/**
 * Records A[i, j] ← A[j, i] for every j > i (lower triangle → upper).
 *
 * @param batch the batch to record into
 * @param m the matrix
 * @returns nothing
 *
 * @example
 * ```ts
 * import { CommandBatch } from "../../../gpu/batch.ts";
 * import { getGpu } from "../../../gpu/device.ts";
 * import { PanelMatrix } from "./panel_matrix.ts";
 * import { recordMirrorLower } from "./panel_ops.ts";
 * const gpu = await getGpu();
 * const m = PanelMatrix.create(gpu, 4);
 * const batch = new CommandBatch(gpu);
 * recordMirrorLower(batch, m);
 * await batch.done();
 * m.destroy();
 * ```
 */
export function recordMirrorLower(batch: CommandBatch, m: PanelMatrix): void {
  const gpu = batch.gpu;
  const within = kernelSync(gpu, "symmetric_mirror.wgsl", { entryPoint: "mirror_within" });
  const across = kernelSync(gpu, "symmetric_mirror.wgsl", { entryPoint: "mirror_across" });
  for (let q = 0; q < m.panels.length; q++) {
    const r0 = m.panelStart(q);
    const rows = m.panelEnd(q) - r0;
    batch.dispatch(
      within,
      [{ uniform: packUniform([rows, r0, m.order, rows, r0, m.order]) }, m.panels[q]],
      [Math.ceil(rows / 16), Math.ceil(rows / 16)],
      "mirror_within",
    );
    for (let s = q + 1; s < m.panels.length; s++) {
      const s0 = m.panelStart(s);
      const srcRows = m.panelEnd(s) - s0;
      batch.dispatch(
        across,
        [
          { uniform: packUniform([rows, r0, m.order, srcRows, s0, m.order]) },
          m.panels[q],
          m.panels[s],
        ],
        [Math.ceil(srcRows / 16), Math.ceil(rows / 16)],
        "mirror_across",
      );
    }
  }
}

/** The diagonal fix-up a gather applies. */
export interface GatherDiagonal {
  /** Added to every gathered diagonal entry, after a 0 there became 1 (dead column). */
  readonly damp: number;
}

/**
 * Records Out[i, j] ← In[σ(i), σ(j)], with identity rows/columns where
 * σ is {@link GATHER_NONE} and, if `diagonal` is given, the GPTQ dead
 * column / dampening fix-up on the diagonal. `src` and `out` must be
 * different matrices of the same order.
 *
 * @param batch the batch to record into
 * @param src the input matrix (full, both triangles valid where read)
 * @param out the output matrix
 * @param sigma the permutation, a u32 tensor of length `order`
 * @param diagonal the diagonal fix-up, or undefined for a plain gather
 * @returns nothing
 * @throws {GptqShapeError} when the orders differ or src is out
 *
 * @example
 * ```ts
 * import { CommandBatch } from "../../../gpu/batch.ts";
 * import { getGpu } from "../../../gpu/device.ts";
 * import { GpuTensor } from "../../../gpu/tensor.ts";
 * import { PanelMatrix } from "./panel_matrix.ts";
 * import { GATHER_NONE, recordPermuteGather } from "./panel_ops.ts";
 * const gpu = await getGpu();
 * const a = PanelMatrix.create(gpu, 64);
 * const b = PanelMatrix.create(gpu, 64);
 * const sigma = GpuTensor.fromArray(gpu, new Uint32Array(64).fill(GATHER_NONE), [64]);
 * const batch = new CommandBatch(gpu);
 * recordPermuteGather(batch, a, b, sigma); // b ← identity
 * console.assert((await b.read())[65] === 1);
 * ```
 */
export function recordPermuteGather(
  batch: CommandBatch,
  src: PanelMatrix,
  out: PanelMatrix,
  sigma: GpuTensor,
  diagonal?: GatherDiagonal,
): void {
  if (src === out || src.order !== out.order || sigma.numel !== out.order) {
    throw new GptqShapeError(
      `permute gather: needs two distinct matrices of one order and a permutation of that ` +
        `length (orders ${src.order}, ${out.order}, permutation ${sigma.numel})`,
    );
  }
  const pipeline = kernelSync(batch.gpu, "matrix_permute_gather.wgsl");
  for (let q = 0; q < out.panels.length; q++) {
    const o0 = out.panelStart(q);
    const outRows = out.panelEnd(q) - o0;
    for (let s = 0; s < src.panels.length; s++) {
      const s0 = src.panelStart(s);
      const params = packUniform(
        [
          out.order,
          outRows,
          o0,
          s0,
          src.panelEnd(s) - s0,
          src.order,
          out.order,
          s === 0 ? 1 : 0,
          diagonal ? 1 : 0,
        ],
        [diagonal?.damp ?? 0],
      );
      batch.dispatch(
        pipeline,
        [{ uniform: params }, sigma, src.panels[s], out.panels[q]],
        foldWorkgroups(batch.gpu, outRows),
        "matrix_permute_gather",
      );
    }
  }
}

/**
 * Records out ← identity (a gather whose permutation is all NONE).
 *
 * @param batch the batch to record into
 * @param out the matrix to overwrite
 * @returns the permutation tensor; destroy it once the batch is submitted
 *
 * @example
 * ```ts
 * import { CommandBatch } from "../../../gpu/batch.ts";
 * import { getGpu } from "../../../gpu/device.ts";
 * import { PanelMatrix } from "./panel_matrix.ts";
 * import { recordIdentity } from "./panel_ops.ts";
 * const gpu = await getGpu();
 * const b = PanelMatrix.create(gpu, 8);
 * const batch = new CommandBatch(gpu);
 * const sigma = recordIdentity(batch, b);
 * console.assert((await b.read())[0] === 1);
 * sigma.destroy();
 * ```
 */
export function recordIdentity(batch: CommandBatch, out: PanelMatrix): GpuTensor {
  const sigma = GpuTensor.fromArray(
    batch.gpu,
    new Uint32Array(out.order).fill(GATHER_NONE),
    [out.order],
  );
  const pipeline = kernelSync(batch.gpu, "matrix_permute_gather.wgsl");
  for (let q = 0; q < out.panels.length; q++) {
    const o0 = out.panelStart(q);
    const outRows = out.panelEnd(q) - o0;
    // Every row is a pad row, so the source is never read: sigma stands in for it.
    const params = packUniform([out.order, outRows, o0, 0, 0, out.order, out.order, 1, 0], [0]);
    batch.dispatch(
      pipeline,
      [{ uniform: params }, sigma, sigma, out.panels[q]],
      foldWorkgroups(batch.gpu, outRows),
      "matrix_identity",
    );
  }
  return sigma;
}

/**
 * Records diag[i] ← A[i, i] for every row of every panel.
 *
 * @param batch the batch to record into
 * @param m the matrix
 * @returns a new f32 tensor of length `order` holding the diagonal
 *
 * @example
 * ```ts
 * import { CommandBatch } from "../../../gpu/batch.ts";
 * import { getGpu } from "../../../gpu/device.ts";
 * import { PanelMatrix } from "./panel_matrix.ts";
 * import { recordDiagonal } from "./panel_ops.ts";
 * const gpu = await getGpu();
 * const m = PanelMatrix.create(gpu, 8);
 * const batch = new CommandBatch(gpu);
 * const d = recordDiagonal(batch, m);
 * console.assert((await d.readF32()).length === 64);
 * ```
 */
export function recordDiagonal(batch: CommandBatch, m: PanelMatrix): GpuTensor {
  const diag = GpuTensor.allocate(batch.gpu, [m.order]);
  const pipeline = kernelSync(batch.gpu, "matrix_diagonal.wgsl");
  for (let q = 0; q < m.panels.length; q++) {
    const r0 = m.panelStart(q);
    const rows = m.panelEnd(q) - r0;
    batch.dispatch(
      pipeline,
      [{ uniform: packUniform([rows, r0, m.order]) }, m.panels[q], diag],
      [Math.ceil(rows / 64)],
      "matrix_diagonal",
    );
  }
  return diag;
}
