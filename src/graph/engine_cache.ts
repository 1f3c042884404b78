/**
 * Releasing the engine's buffer cache between layers (and between a layer's
 * expert groups).
 *
 * @module
 */

import { collectGarbage } from "../_gc.ts";
import type { DecoderModel } from "../model/decoder_model.ts";

/**
 * Frees the engine's buffer cache once its work has run (`Engine.trim`:
 * on unified-memory and software devices the WebGPU engine's pooled buffers
 * are host memory, and keeping a layer's worth of them cached across layers
 * would double the resident weights; the CPU engine's pooled arrays alike),
 * then collects garbage.
 *
 * @param model the model whose engine's cache to free
 * @example
 * ```ts ignore
 * await releaseEngineCache(model);
 * ```
 */
export async function releaseEngineCache(model: DecoderModel): Promise<void> {
  await model.idle();
  model.engine.trim();
  collectGarbage();
}
