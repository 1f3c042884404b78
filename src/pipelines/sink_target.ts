/**
 * The checkpoint sink as the target of a pass: finished layers are
 * compressed and persisted, and each layer's outputs are saved as the resume
 * boundary, so `--resume` continues from the last finished layer with the
 * same hidden states an uninterrupted run would have had.
 *
 * @module
 */

import type { HfModel } from "../io/hf_model.ts";
import type { CheckpointSink } from "../sink/checkpoint_sink.ts";
import type { ActivationCache } from "../graph/activation_cache.ts";
import type { CalibrationBatch } from "../graph/calibration_batches.ts";
import { layerCheckpointTensors } from "./layer_checkpoint.ts";
import type { LayerTarget } from "./sequential.ts";
import type { SparsityTracker } from "./sparsity_config.ts";

/**
 * A layer target that writes into the checkpoint sink.
 *
 * @param source the source checkpoint
 * @param sink the open sink
 * @param batches the run's calibration batches (to validate a restored boundary)
 * @param maxBoundaryBytes larger boundaries are not saved (the sink keeps them in memory
 *   while writing); a resumed run then recomputes from the last saved one
 * @param sparsity measures written weights and picks the sparse targets (runs with a sparsity modifier)
 * @returns the target
 * @example
 * ```ts ignore
 * await lastValueFrom(layerPass$(ctx, spec, sinkTarget(hf, sink, batches)));
 * ```
 */
export function sinkTarget(
  source: HfModel,
  sink: CheckpointSink,
  batches: readonly CalibrationBatch[],
  maxBoundaryBytes = Infinity,
  sparsity: SparsityTracker | null = null,
): LayerTarget {
  const hidden = source.config.hiddenSize;
  return {
    isDone: (k) => sink.isLayerDone(k),
    boundaryLayer: () => sink.boundaryLayer(),
    async loadBoundary(k: number, cache: ActivationCache): Promise<boolean> {
      const bytes = await sink.loadBoundary(k);
      if (bytes === null) return false;
      await cache.restore(bytes, batches.map((b) => b.ids.length * hidden));
      return true;
    },
    async write(k, result) {
      await sink.writeLayer(k, await layerCheckpointTensors(source, k, result, sparsity));
    },
    async saveBoundary(k, outputs) {
      if (outputs.bytesInMemory + outputs.bytesOnDisk > maxBoundaryBytes) return;
      await sink.saveBoundary(k, await outputs.serialize());
    },
  };
}
