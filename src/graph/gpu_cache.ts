/**
 * Releasing the engine's buffer cache between layers (and between a layer's
 * expert groups).
 *
 * @module
 */

import { collectGarbage } from "../_gc.ts";
import { CpuEngine } from "../engine/cpu_engine.ts";
import { webGpuOf } from "../engine/webgpu_engine.ts";
import { storagePool } from "../gpu/buffer_pool.ts";
import type { DecoderModel } from "../model/decoder_model.ts";

/**
 * Frees the engine's buffer cache once it is idle: the GPU buffer pool (on
 * unified-memory and software devices those buffers are host memory; keeping
 * a layer's worth of them cached across layers would double the resident
 * weights), or the CPU engine's array pool; then collects garbage.
 *
 * @param model the model whose engine's cache to free
 * @example
 * ```ts ignore
 * await releaseGpuCache(model);
 * ```
 */
export async function releaseGpuCache(model: DecoderModel): Promise<void> {
  await model.idle();
  const gpu = webGpuOf(model.engine);
  if (gpu) storagePool(gpu.gpu).trim();
  if (model.engine instanceof CpuEngine) model.engine.trim();
  collectGarbage();
}
