/**
 * Recording of kernels/matmul_at_b_update.wgsl, C ← β·C + α·(Aᵀ·B) [⊙ Mask]:
 * the rank-K update under the Hessian accumulation, the Cholesky and
 * triangular-inverse trailing updates and GPTQ's inter-block update.
 *
 * @module
 */

import type { CommandBatch } from "../../../gpu/batch.ts";
import { kernelSync } from "../../../gpu/kernel.ts";
import type { GpuTensor } from "../../../gpu/tensor.ts";
import { GptqShapeError } from "../../../modifiers/gptq/errors.ts";
import { packUniform } from "./_uniform.ts";

/** Kernel file of the update. */
export const MATMUL_AT_B_UPDATE_KERNEL = "matmul_at_b_update.wgsl";

/**
 * Workgroup side for a summation length: llvmpipe measured 16×16
 * invocations ~1.6× faster than 8×8 for K ≤ 256 (Cholesky, inverse, GPTQ
 * updates) and 8×8 2× faster for K = 1024 (Hessian batches), where a
 * 16×16 workgroup's operand columns no longer fit the cache.
 */
function workgroupSide(k: number): 8 | 16 {
  return k <= 256 ? 16 : 8;
}

/** One operand: a K-major matrix inside a buffer. */
export interface KMajorOperand {
  /** The buffer. */
  readonly tensor: GpuTensor;
  /** Element offset of element (l = 0, column 0). */
  readonly offset: number;
  /** Elements between consecutive l. */
  readonly ld: number;
}

/** The output (and the optional mask, same layout). */
export interface OutputOperand {
  /** The buffer. */
  readonly tensor: GpuTensor;
  /** Element offset of C[0, 0]. */
  readonly offset: number;
  /** Elements between consecutive rows of C. */
  readonly ld: number;
}

/** A full description of one update. */
export interface AtBUpdate {
  /** Rows of C (multiple of 8). */
  readonly m: number;
  /** Columns of C (multiple of 8). */
  readonly n: number;
  /** Summation length. */
  readonly k: number;
  /** A, K-major: A[l, i] at offset + l·ld + i. */
  readonly a: KMajorOperand;
  /** B, K-major: B[l, j] at offset + l·ld + j. */
  readonly b: KMajorOperand;
  /** C[i, j] at offset + i·ld + j. */
  readonly c: OutputOperand;
  /** Multiplies the update elementwise (same indexing as C). */
  readonly mask?: OutputOperand;
  /** Factor on the old C (default 1). */
  readonly beta?: number;
  /** Factor on Aᵀ·B (default −1: a subtraction). */
  readonly alpha?: number;
  /** Only tiles on or below the global diagonal; gives the global index of C[0, 0]. */
  readonly lowerOnly?: { readonly row0: number; readonly col0: number };
}

/**
 * Records one C ← β·C + α·(Aᵀ·B) dispatch.
 *
 * @param batch the batch to record into
 * @param u the update's shapes, operands and factors
 * @returns nothing; the work runs at the batch's submit
 * @throws {GptqShapeError} when m or n is not a multiple of 8, or a stride
 *   or offset is not a multiple of 4 (the kernel loads vec4s)
 *
 * @example
 * ```ts
 * import { CommandBatch } from "../../../gpu/batch.ts";
 * import { getGpu } from "../../../gpu/device.ts";
 * import { GpuTensor } from "../../../gpu/tensor.ts";
 * import { recordAtBUpdate } from "./matmul_at_b_update.ts";
 * const gpu = await getGpu();
 * const x = GpuTensor.fromArray(gpu, new Float32Array(2 * 8).fill(1), [2, 8]);
 * const h = GpuTensor.empty(gpu, [8, 8]);
 * const batch = new CommandBatch(gpu);
 * recordAtBUpdate(batch, {
 *   m: 8, n: 8, k: 2, alpha: 1,
 *   a: { tensor: x, offset: 0, ld: 8 }, b: { tensor: x, offset: 0, ld: 8 },
 *   c: { tensor: h, offset: 0, ld: 8 },
 * });
 * console.assert((await h.readF32())[9] === 2);
 * ```
 */
export function recordAtBUpdate(batch: CommandBatch, u: AtBUpdate): void {
  if (u.m === 0 || u.n === 0) return;
  if (u.m % 8 !== 0 || u.n % 8 !== 0) {
    throw new GptqShapeError(`matmul_at_b_update: m=${u.m}, n=${u.n} must be multiples of 8`);
  }
  const strides = [u.a.ld, u.b.ld, u.c.ld, u.a.offset, u.b.offset, u.c.offset];
  if (u.mask) strides.push(u.mask.ld, u.mask.offset);
  if (strides.some((s) => s % 4 !== 0)) {
    throw new GptqShapeError(
      `matmul_at_b_update: strides and offsets [${strides}] must be multiples of 4`,
    );
  }
  const mask = u.mask ?? u.b;
  const params = packUniform(
    [
      u.m,
      u.n,
      u.k,
      u.a.ld,
      u.b.ld,
      u.c.ld,
      u.a.offset,
      u.b.offset,
      u.c.offset,
      u.lowerOnly ? 1 : 0,
      u.lowerOnly?.row0 ?? 0,
      u.lowerOnly?.col0 ?? 0,
      u.mask ? 1 : 0,
      mask.offset,
      mask.ld,
      0,
    ],
    [u.beta ?? 1, u.alpha ?? -1],
  );
  // Without a mask the kernel never reads binding 4, but something must be
  // bound; C cannot be (a writable buffer may not alias another binding),
  // the read-only B can.
  const side = workgroupSide(u.k);
  const tile = 8 * side;
  batch.dispatch(
    kernelSync(batch.gpu, MATMUL_AT_B_UPDATE_KERNEL, { constants: { WG: side } }),
    [{ uniform: params }, u.a.tensor, u.b.tensor, u.c.tensor, mask.tensor],
    [Math.ceil(u.n / tile), Math.ceil(u.m / tile)],
    "matmul_at_b_update",
  );
}
