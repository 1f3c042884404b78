/**
 * The calibration graph: calibration samples become embeddings; each
 * decoder layer's activations stream through observers, calibrators and
 * modifiers (RxJS operators); the layer runs again with its compressed
 * weights and its outputs feed the next layer. Pipelines (src/pipelines)
 * drive it and hand finished layers to the checkpoint sink.
 *
 * Users mostly meet it through `oneshot({ dataset, onEvent })` and its
 * event streams:
 *
 * ```ts ignore
 * import { GraphStreams } from "./mod.ts";
 * import { oneshot } from "../oneshot.ts";
 * const streams = new GraphStreams();
 * streams.metrics$.subscribe((m) => console.log(m.module, m.error));
 * await oneshot({
 *   model: "models/stories260K",
 *   recipe: "recipes/fp8_static_kv_cache.yaml",
 *   dataset: "data/calib.txt",
 *   numCalibrationSamples: 64,
 *   maxSeqLength: 256,
 *   outputDir: "out/fp8-kv",
 *   onEvent: streams.emit,
 * });
 * streams.complete();
 * ```
 *
 * @module
 */

export {
  type EngineEvent,
  type GraphEvent,
  type GraphEventSink,
  type GraphPhase,
  GraphStreams,
  type LayerDoneEvent,
  type ModuleMetricEvent,
  type ProgressEvent,
  type WarningEvent,
} from "./events.ts";
export {
  ACTIVATION_OBSERVERS,
  calibrateQParams,
  foldObservation,
  globalScaleOfState,
  observeMinMax,
} from "./observer_operators.ts";
export type {
  AttentionResult,
  CalibrationTap,
  LayerEnvironment,
  LayerModifier,
  LayerResult,
  LayerSession,
  LinearMetric,
  LinearResult,
  ObservedQParams,
  StateQParams,
} from "./modifier.ts";
export {
  type AttentionPlan,
  CalibrationUnsupportedError,
  planQuantization,
  type QuantizationPlan,
} from "./quantization_plan.ts";
export { quantizationLayerModifier } from "./quantization_session.ts";
export { type CalibratedLayer, calibrateLayer, type Propagation } from "./layer_graph.ts";
export { ActivationCache, ActivationCacheError, MemoryBudget } from "./activation_cache.ts";
export {
  type CalibrationBatch,
  calibrationBatches,
  CalibrationDataError,
} from "./calibration_batches.ts";
