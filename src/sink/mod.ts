/**
 * The checkpoint sink: persists each finished layer, resumes interrupted
 * runs, and commits a compressed-tensors checkpoint atomically.
 *
 * @example
 * ```ts ignore
 * import { CheckpointSink } from "./mod.ts";
 * const sink = await CheckpointSink.open({ outputDir: "out/fp8", source: model });
 * await sink.writeLayer(0, tensorsOfLayer0);
 * await sink.finalize({ quantizationConfig, recipeYaml });
 * ```
 *
 * @module
 */

export {
  CheckpointSink,
  type CheckpointSinkOptions,
  type CheckpointSource,
  type CheckpointTensor,
  type FinalizeOptions,
  type FinalizeResult,
  WORK_DIR_SUFFIX,
} from "./checkpoint_sink.ts";
export { checkpointConfigJson, type JsonObject } from "./config_json.ts";
export { CheckpointSinkError, isDiskFull } from "./sink_error.ts";
export { compareSafetensorsOrder } from "./tensor_order.ts";
