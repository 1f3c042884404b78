/**
 * Releasing the GPU buffer cache between layers (and between a layer's
 * expert groups).
 *
 * @module
 */

import { webGpuOf } from "../engine/webgpu_engine.ts";
import { storagePool } from "../gpu/buffer_pool.ts";
import type { DecoderModel } from "../model/decoder_model.ts";

/**
 * Frees the GPU buffer cache once the device is idle. On unified-memory and
 * software devices those buffers are host memory; keeping a layer's worth of
 * them cached across layers would double the resident weights.
 *
 * @param model the model whose engine's cache to free (nothing to do on the CPU engine)
 * @example
 * ```ts ignore
 * await releaseGpuCache(model);
 * ```
 */
export async function releaseGpuCache(model: DecoderModel): Promise<void> {
  await model.idle();
  const gpu = webGpuOf(model.engine);
  if (gpu) storagePool(gpu.gpu).trim();
}
