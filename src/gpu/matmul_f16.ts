/**
 * matmul with f16-stored weights (f32 activations and accumulation), for
 * devices with `shader-f16`: half the weight memory and bandwidth.
 *
 * @module
 */

import type { CommandBatch } from "./batch.ts";
import type { Gpu } from "./device.ts";
import { GpuUnavailableError, ShapeError } from "./errors.ts";
import { kernelSync, loadKernel } from "./kernel.ts";
import { MATMUL_WORKGROUP } from "./ops.ts";
import { placeholder } from "./_placeholder.ts";
import { GpuTensor } from "./tensor.ts";
import { workgroupsFor } from "./workgroups.ts";

const TILE = 8;

/**
 * Rounds f32 values to f16 and packs them two per u32 (little-endian, the
 * element at the even index in the low half), the layout of a WGSL
 * `array<vec4<f16>>`.
 *
 * @param data f32 values; an even count
 * @returns the packed words, data.length / 2 of them
 *
 * @example
 * ```ts
 * import { packF16 } from "./matmul_f16.ts";
 * console.assert(packF16(new Float32Array([1, 0]))[0] === 0x3c00);
 * ```
 */
export function packF16(data: Float32Array): Uint32Array {
  if (data.length % 2 !== 0) throw new ShapeError(`packF16: ${data.length} values is not even`);
  const half = new Float16Array(data);
  return new Uint32Array(half.buffer, half.byteOffset, data.length / 2);
}

/**
 * Builds the f16 matmul pipeline ahead of use.
 *
 * @param gpu a device with shader-f16
 * @returns resolves when the pipeline is ready
 * @throws {GpuUnavailableError} without shader-f16
 *
 * @example
 * ```ts
 * import { getGpu } from "./device.ts";
 * import { prepareMatmulF16 } from "./matmul_f16.ts";
 * const gpu = await getGpu();
 * if (gpu.hasF16) await prepareMatmulF16(gpu);
 * ```
 */
export async function prepareMatmulF16(gpu: Gpu): Promise<void> {
  requireF16(gpu);
  await loadKernel(gpu, "matmul_f16.wgsl", { constants: wg() });
}

/**
 * y = x·wᵀ (+ bias) with w held as f16: x [..., K] f32, w a u32 tensor
 * [N, K/2] from `packF16`, f32 accumulation.
 *
 * @param batch where the dispatch is recorded
 * @param x activations [..., K], K % 4 == 0
 * @param w packed f16 weight, u32 [N, K/2]
 * @param bias optional f32 [N]
 * @returns y [..., N] f32
 * @throws {GpuUnavailableError} without shader-f16
 * @throws {ShapeError} when shapes disagree or K % 4 != 0
 *
 * @example
 * ```ts
 * import { CommandBatch } from "./batch.ts";
 * import { getGpu } from "./device.ts";
 * import { matmulF16, packF16 } from "./matmul_f16.ts";
 * import { GpuTensor } from "./tensor.ts";
 * const gpu = await getGpu();
 * if (gpu.hasF16) {
 *   const x = GpuTensor.fromArray(gpu, new Float32Array([1, 2, 3, 4]), [1, 4]);
 *   const w = GpuTensor.fromArray(gpu, packF16(new Float32Array([1, 1, 1, 1])), [1, 2]);
 *   console.assert((await matmulF16(new CommandBatch(gpu), x, w).readF32())[0] === 10);
 * }
 * ```
 */
export function matmulF16(
  batch: CommandBatch,
  x: GpuTensor,
  w: GpuTensor,
  bias?: GpuTensor,
): GpuTensor {
  const gpu = batch.gpu;
  requireF16(gpu);
  if (x.dtype !== "f32" || w.dtype !== "u32" || (bias && bias.dtype !== "f32")) {
    throw new ShapeError(`matmulF16: expected x f32, w u32 (packed f16), bias f32`);
  }
  if (w.shape.length !== 2 || x.shape.length < 1) {
    throw new ShapeError(
      `matmulF16: expected x [..., K] and w [N, K/2], got [${x.shape}], [${w.shape}]`,
    );
  }
  const n = w.shape[0];
  const k = w.shape[1] * 2;
  if (x.shape[x.shape.length - 1] !== k || k % 4 !== 0) {
    throw new ShapeError(
      `matmulF16: x [${x.shape}] and packed w [${w.shape}] need the same K (= 2·${
        w.shape[1]
      }), K % 4 == 0`,
    );
  }
  if (bias && bias.numel !== n) {
    throw new ShapeError(`matmulF16: bias [${bias.shape}] must be [${n}]`);
  }
  const m = x.shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const y = GpuTensor.allocate(gpu, [...x.shape.slice(0, -1), n]);
  batch.dispatch(
    kernelSync(gpu, "matmul_f16.wgsl", { constants: wg() }),
    [x, w, y, bias ?? placeholder(gpu), {
      uniform: new Uint32Array([m, n, k, n, 0, bias ? 1 : 0]),
    }],
    [workgroupsFor(n, TILE * MATMUL_WORKGROUP.x), workgroupsFor(m, TILE * MATMUL_WORKGROUP.y)],
    `matmulF16 [${m},${k}]x[${n},${k}]ᵀ`,
  );
  return y;
}

function wg(): Record<string, number> {
  return { WG_X: MATMUL_WORKGROUP.x, WG_Y: MATMUL_WORKGROUP.y };
}

function requireF16(gpu: Gpu): void {
  if (!gpu.hasF16) {
    throw new GpuUnavailableError(`shader-f16 is not available on ${gpu.adapterName}`);
  }
}
