/**
 * The checkpoint sink as the target of a pass: finished layers are
 * compressed and persisted, and each layer's outputs are saved as the resume
 * boundary, so `--resume` continues from the last finished layer with the
 * same hidden states an uninterrupted run would have had.
 *
 * @module
 */

import type { HfModel } from "../io/hf_model.ts";
import { layerPrefix } from "../model/module_names.ts";
import { layerLinearModules } from "../model/moe_names.ts";
import { writeFileAtomic } from "../sink/_progress.ts";
import type { CheckpointSink, CheckpointTensor } from "../sink/checkpoint_sink.ts";
import type { ActivationCache } from "../graph/activation_cache.ts";
import type { CalibrationBatch } from "../graph/calibration_batches.ts";
import { layerCheckpointTensors, linearCheckpointTensors } from "./layer_checkpoint.ts";
import type { LayerTarget } from "./sequential.ts";
import { SparsityStatsError, type SparsityTracker } from "./sparsity_config.ts";

/** The file in the sink's work folder holding layer `k`'s sparsity measurements. */
function sparsityStatsPath(sink: CheckpointSink, k: number): string {
  return `${sink.workDir}/sparsity-layer-${k}.json`;
}

/**
 * Adds the sparsity measurements of the layers an earlier run finished
 * (`--resume`): those layers are not rewritten, so without them the
 * `sparsity_config` would count only this run's layers.
 *
 * @param sink the open sink
 * @param sparsity the run's tracker
 * @throws {SparsityStatsError} when a finished layer has no (or unreadable) measurements
 * @example
 * ```ts ignore
 * await restoreSparsityStats(sink, sparsity);
 * ```
 */
export async function restoreSparsityStats(
  sink: CheckpointSink,
  sparsity: SparsityTracker,
): Promise<void> {
  for (const k of sink.doneLayers()) {
    const path = sparsityStatsPath(sink, k);
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      throw new SparsityStatsError(
        `${path}: layer ${k} was finished by an earlier run but its sparsity measurements ` +
          `cannot be read (${(e as Error).message}); rerun without --resume`,
        { cause: e },
      );
    }
    sparsity.restore(JSON.parse(text));
  }
}

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
  // Compressed tensors of layers' parts (expert groups) until the layer is written.
  const parts = new Map<number, CheckpointTensor[]>();
  // The last boundary's write (most of it the fsync of the hidden states),
  // which runs while the next layer computes. The sink commits a boundary
  // only once its file is durable, so until then a resumed run starts from
  // the one before. Awaited, and its error thrown, before the next write,
  // the next boundary and at `flush`.
  let saving: Promise<void> = Promise.resolve();
  const settled = (): Promise<void> => {
    const s = saving;
    saving = Promise.resolve();
    return s;
  };
  return {
    isDone: (k) => sink.isLayerDone(k),
    boundaryLayer: () => sink.boundaryLayer(),
    async loadBoundary(k: number, cache: ActivationCache): Promise<boolean> {
      const bytes = await sink.loadBoundary(k);
      if (bytes === null) return false;
      await cache.restore(bytes, batches.map((b) => b.ids.length * hidden));
      return true;
    },
    writePart(k, result) {
      const list = parts.get(k) ?? [];
      list.push(...linearCheckpointTensors(source, result, sparsity));
      parts.set(k, list);
      return Promise.resolve();
    },
    async write(k, result) {
      await settled();
      const tensors = await layerCheckpointTensors(source, k, result, sparsity, parts.get(k));
      parts.delete(k);
      if (sparsity !== null) {
        // Persisted before the layer is committed: a committed layer always
        // has its measurements (a stale file of an unfinished layer is rewritten).
        const stats = sparsity.measurements(
          layerLinearModules(source.config, k).map((l) => `${layerPrefix(k)}.${l}`),
        );
        await writeFileAtomic(
          sparsityStatsPath(sink, k),
          new TextEncoder().encode(JSON.stringify(stats)),
        );
      }
      await sink.writeLayer(k, tensors);
    },
    async saveBoundary(k, outputs) {
      await settled();
      if (outputs.bytesInMemory + outputs.bytesOnDisk > maxBoundaryBytes) return;
      // The record's parts are views of the outputs' arrays, which the next
      // layer reads anyway (disposing of the cache does not touch them).
      saving = sink.saveBoundary(k, await outputs.serializeParts());
      // Handled here so that a failure waits, unreported, for `settled`.
      saving.catch(() => {});
    },
    flush: settled,
  };
}
