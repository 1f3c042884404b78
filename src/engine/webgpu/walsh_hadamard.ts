/**
 * The fast Walsh–Hadamard transform on the engine, for online transforms
 * (`x ← x·H/√n` on a Linear's input, block-diagonally over runs of n):
 * log₂n butterfly dispatches of n/2 pairs per run, O(n log n) work instead
 * of a dense n × n matmul.
 *
 * @module
 */

import type { CommandBatch } from "../../gpu/batch.ts";
import type { Gpu } from "../../gpu/device.ts";
import { kernelSync, loadKernel } from "../../gpu/kernel.ts";
import { copy, scale as scaled } from "../../gpu/ops.ts";
import type { GpuTensor } from "../../gpu/tensor.ts";
import { foldWorkgroups, workgroupsFor } from "../../gpu/workgroups.ts";
import { isPowerOfTwo } from "../../transform/hadamard.ts";
import { EngineError } from "../engine_error.ts";

const KERNEL = "walsh_hadamard_stage.wgsl";

/**
 * Compiles the butterfly kernel (call once before {@link walshHadamardGpu}).
 *
 * @param gpu the device
 * @example
 * ```ts ignore
 * await prepareWalshHadamard(gpu);
 * ```
 */
export async function prepareWalshHadamard(gpu: Gpu): Promise<void> {
  await Promise.all([loadKernel(gpu, KERNEL), loadKernel(gpu, "elementwise_copy.wgsl")]);
}

/**
 * `x · diag(H_n, …, H_n) · scale` for an f32 tensor whose element count is
 * a multiple of n (each contiguous run of n values is one block), into a
 * new tensor.
 *
 * @param batch where the dispatches are recorded
 * @param x the input (not modified)
 * @param n the block size, a power of two
 * @param scale the factor (1/√n normalizes)
 * @param stride K: `S_{n/K} ⊗ I_K` instead of H_n (see `fastWalshHadamard`); default 1
 * @returns the transformed copy, x's shape
 * @throws {EngineError} when n is not a power of two or does not divide x's size
 * @example
 * ```ts ignore
 * const y = walshHadamardGpu(batch, x, 64, 1 / 8);
 * ```
 */
export function walshHadamardGpu(
  batch: CommandBatch,
  x: GpuTensor,
  n: number,
  scale: number,
  stride = 1,
): GpuTensor {
  if (
    !Number.isInteger(stride) || stride < 1 || n % stride !== 0 || !isPowerOfTwo(n / stride) ||
    x.numel % n !== 0
  ) {
    throw new EngineError(
      `fast Walsh–Hadamard transform of size ${n}` + (stride === 1 ? "" : ` (stride ${stride})`) +
        `: expected a power of two${stride === 1 ? "" : " times the stride"} dividing ${x.numel}`,
    );
  }
  // m = 1: no butterflies, only the scale.
  if (n === stride) return scale === 1 ? copy(batch, x) : scaled(batch, x, scale);
  const y = copy(batch, x);
  const pairs = x.numel / 2;
  // The kernel's stage h pairs (i, i + h) in blocks of 2h: h = K, 2K, … is S_{n/K} ⊗ I_K.
  for (let h = stride; h < n; h *= 2) {
    const params = new ArrayBuffer(16);
    new Uint32Array(params, 0, 3).set([pairs, n, h]);
    new Float32Array(params, 12, 1)[0] = 2 * h === n ? scale : 1;
    batch.dispatch(
      kernelSync(batch.gpu, KERNEL),
      [y, { uniform: new Uint8Array(params) }],
      foldWorkgroups(batch.gpu, workgroupsFor(pairs, 256)),
      `walsh_hadamard_stage [${pairs} pairs, h ${h}]`,
    );
  }
  return y;
}
