/**
 * Compiling every kernel GPTQ and SparseGPT record, ahead of use: compile
 * errors then surface as exceptions here instead of at a later wait, and
 * https: imports of llmc (which cannot read kernels synchronously) work.
 *
 * @module
 */

import type { Gpu } from "../../../gpu/device.ts";
import { loadKernel } from "../../../gpu/kernel.ts";

/** Every (file, entry point, override constants) the GPTQ / SparseGPT cores dispatch. */
export const GPTQ_KERNELS: ReadonlyArray<readonly [string, string, Record<string, number>?]> = [
  ["matmul_at_b_update.wgsl", "main", { WG: 8 }],
  ["matmul_at_b_update.wgsl", "main", { WG: 16 }],
  ["cholesky_diagonal_block.wgsl", "main"],
  ["cholesky_panel_solve.wgsl", "main"],
  ["triangular_inverse_diagonal_solve.wgsl", "main"],
  ["triangular_inverse_panel_transpose.wgsl", "main"],
  ["matrix_permute_gather.wgsl", "main"],
  ["matrix_diagonal.wgsl", "main"],
  ["symmetric_mirror.wgsl", "mirror_within"],
  ["symmetric_mirror.wgsl", "mirror_across"],
  ["gptq_column_block.wgsl", "main"],
  ["sparsegpt_threshold_select.wgsl", "reset"],
  ["sparsegpt_threshold_select.wgsl", "histogram"],
  ["sparsegpt_threshold_select.wgsl", "select_digit"],
];

/**
 * Builds the pipelines of {@link GPTQ_KERNELS}.
 *
 * @param gpu the device
 * @returns resolves when every pipeline is built
 * @throws {KernelCompileError} naming the kernel that failed
 *
 * @example
 * ```ts
 * import { getGpu } from "../../../gpu/device.ts";
 * import { prepareGptqKernels } from "./prepare_kernels.ts";
 * await prepareGptqKernels(await getGpu());
 * ```
 */
export async function prepareGptqKernels(gpu: Gpu): Promise<void> {
  await Promise.all(
    GPTQ_KERNELS.map(([file, entryPoint, constants]) =>
      loadKernel(gpu, file, {
        ...(entryPoint === "main" ? {} : { entryPoint }),
        ...(constants ? { constants } : {}),
      })
    ),
  );
}
