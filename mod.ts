/**
 * llmc: compress Hugging Face decoder LLMs (Llama, Mistral, Qwen2, Qwen3) into
 * compressed-tensors checkpoints that vLLM serves unchanged, with
 * llm-compressor's recipes, presets and on-disk layout, as an RxJS dataflow
 * over WGSL kernels on WebGPU.
 *
 * The entry points are {@link oneshot} (recipes, calibrated or data-free) and
 * {@link modelFreePtq} (straight from safetensors, any architecture).
 *
 * @example
 * ```ts ignore
 * import { GPTQModifier, oneshot } from "./mod.ts";
 *
 * await oneshot({
 *   model: "models/Llama-3.2-1B",
 *   recipe: [GPTQModifier({ targets: "Linear", scheme: "W4A16", ignore: ["lm_head"] })],
 *   dataset: "calibration.txt",
 *   numCalibrationSamples: 512,
 *   maxSeqLength: 2048,
 *   outputDir: "Llama-3.2-1B-W4A16",
 * });
 * ```
 *
 * @module
 */

export { LlmcError } from "./src/errors.ts";

// Compression entry points.
export {
  CalibrationRequiredError,
  oneshot,
  OneshotError,
  type OneshotOptions,
  type OneshotResult,
  type PipelineName,
  selectPipeline,
} from "./src/oneshot.ts";
export type { LayerEvent } from "./src/pipelines/datafree.ts";
export {
  type ModelFreeProgress,
  modelFreePtq,
  type ModelFreePtqOptions,
  type ModelFreePtqResult,
} from "./src/model_free/model_free_ptq.ts";
export type { JsonObject } from "./src/sink/config_json.ts";

// Recipes: llm-compressor's YAML grammar and typed modifier constructors.
export {
  assertSupported,
  GPTQModifier,
  loadRecipe,
  parseRecipe,
  QuantizationModifier,
  type Recipe,
  RecipeError,
  recipeFromModifiers,
  recipeToYaml,
  SparseGPTModifier,
  UnsupportedModifierError,
} from "./src/recipe/mod.ts";
export type { ParseRecipeOptions } from "./src/recipe/parse.ts";
export type { RecipeToYamlOptions } from "./src/recipe/serialize.ts";
export type {
  CommonOptions,
  GPTQOptions,
  QuantizationArgsInput,
  QuantizationOptions,
  QuantizationSchemeInput,
  SparseGPTOptions,
} from "./src/recipe/constructors.ts";
export {
  type AwqMapping,
  type AWQModifierSpec,
  type ConstantPruningModifierSpec,
  type GptqActorder,
  type GPTQModifierSpec,
  type MagnitudePruningModifierSpec,
  type ModifierCommon,
  type ModifierSpec,
  NOT_YET_SUPPORTED,
  type NotYetSupportedModifierSpec,
  type NotYetSupportedName,
  type ObserverOverrides,
  type QuantizationFields,
  type QuantizationModifierSpec,
  type SchemeSetting,
  type SmoothQuantMapping,
  type SmoothQuantModifierSpec,
  type SparseGPTModifierSpec,
  type SparsityFields,
  type SparsityTarget,
  type WandaPruningModifierSpec,
} from "./src/recipe/modifiers.ts";

// The streams a run emits (progress, finished layers, per-module metrics, warnings).
export {
  type EngineEvent,
  type GraphEvent,
  type GraphEventSink,
  GraphStreams,
  type LayerDoneEvent,
  type ModuleMetricEvent,
  type ProgressEvent,
  type WarningEvent,
} from "./src/graph/mod.ts";
export type { GraphPhase } from "./src/graph/events.ts";

// Quantization schemes and presets (compressed-tensors QuantizationArgs semantics).
export {
  isPresetName,
  parseQuantizationArgs,
  parseQuantizationScheme,
  PRESET_NAMES,
  presetScheme,
  type QuantizationArgs,
  QuantizationConfigError,
  type QuantizationScheme,
} from "./src/quant/mod.ts";
export type {
  ActivationOrdering,
  DynamicType,
  ParseArgsOptions,
  QuantizationStrategy,
  QuantizationType,
} from "./src/quant/args.ts";
export type { TorchDtypeName } from "./src/quant/torch_dtype.ts";
export { type JsonValue, PyFloat } from "./src/quant/python_json.ts";
export {
  COMPRESSION_FORMATS,
  type CompressionFormat,
  type ModuleFormat,
} from "./src/quant/compression_format.ts";

// Models, checkpoints and evaluation.
export { HfModel } from "./src/io/hf_model.ts";
export type { ModelConfig, ModelType, MoeConfig, RopeScaling } from "./src/io/model_config.ts";
export type { TensorInfo } from "./src/io/safetensors_header.ts";
export type { DType } from "./src/io/dtype.ts";
export { loadTokenizer, type TextTokenizer } from "./src/io/tokenizer.ts";
export {
  type CheckpointTensorStore,
  CompressedCheckpoint,
  type MemoryTensor,
} from "./src/compress/compressed_checkpoint.ts";
export { DecoderModel } from "./src/model/decoder_model.ts";
export type { WeightSource } from "./src/model/weight_source.ts";
export type {
  AttentionTap,
  ExpertSlice,
  LayerPart,
  LayerResume,
  LinearInputTap,
  LinearInputTransform,
  MoeRoutingTap,
  ResumePoint,
  RunLayerOptions,
  TapEvent,
  TapListener,
  TapPart,
} from "./src/model/taps.ts";
export { type LayerNorm, LayerWeights, type LinearWeight } from "./src/model/layer_weights.ts";
export type { LayerLinear } from "./src/model/module_names.ts";
export { type Binding, CommandBatch } from "./src/gpu/batch.ts";
export { ChunkedWeight, type WeightChunk } from "./src/gpu/chunked.ts";
export { type GpuDType, GpuTensor, type HostArray } from "./src/gpu/tensor.ts";
export {
  type CalibrationSamplesArgs,
  loadCalibrationSamples,
} from "./src/data/calibration_samples.ts";
export {
  type EvaluationWindowsArgs,
  loadEvaluationWindows,
} from "./src/data/evaluation_windows.ts";
export {
  perplexity,
  type PerplexityOptions,
  type PerplexityResult,
} from "./src/data/perplexity.ts";
export { type AdapterChoice, describeGpu, getGpu, type Gpu } from "./src/gpu/device.ts";

// Hugging Face Hub ids and cache; datasets in the formats users bring.
export {
  HubAuthError,
  HubChecksumError,
  HubError,
  HubNotFoundError,
  HubOfflineError,
  type HubOptions,
  type HubRepo,
  type RepoType,
  resolveModelDir,
  snapshotDownload,
  type SnapshotRequest,
} from "./src/hub/mod.ts";
export {
  type ChatMessage,
  type ChatTemplate,
  loadChatTemplate,
  renderChatTemplate,
} from "./src/data/chat_template.ts";
export { type DatasetRow, readDatasetRows } from "./src/data/dataset_rows.ts";
export { type DatasetPreset, type RowFormatter } from "./src/data/dataset_presets.ts";
export { resolveDataset, type ResolvedDataset } from "./src/data/dataset_source.ts";
export {
  type AccumulateOptions,
  type AttentionShape,
  type BlockTransform,
  type BlockTransformFactors,
  BlockTransformKernels,
  type BlockTransformOps,
  type BlockTransformPlacement,
  type ChosenEngine,
  type ColumnLoop,
  type ColumnLoopOutput,
  type ColumnLoopWork,
  type ColumnPruning,
  type ColumnQuantization,
  CPU_SECOND_ORDER,
  CpuEngine,
  CpuTensor,
  createEngine,
  type Engine,
  ENGINE_ENV,
  type EngineChoice,
  EngineError,
  engineFromEnv,
  type EngineKind,
  type FactorPlan,
  type HostArray as EngineHostArray,
  hostBlockTransform,
  type InverseFactor,
  type ManyRope,
  type ProductTransform,
  type RowReduction,
  type RunningHessian,
  type SecondOrderHessian,
  type SecondOrderOps,
  type SecondOrderTask,
  type SwiGluTransforms,
  type Tensor,
  type TensorDType,
  type WalshHadamardSigns,
  WebGpuEngine,
} from "./src/engine/mod.ts";

// Rotations (Hadamard library, fused SpinQuant rotations, online transforms).
export {
  buildTransform,
  type ExtraTensor,
  fastWalshHadamard,
  type FusedLocation,
  type HadamardFactors,
  hadamardMatrix,
  type OnlineApplication,
  type OnlineLocation,
  onlineTransformPlan,
  OnlineTransformSource,
  permutedTransform,
  randomPermutation,
  RotatedWeightSource,
  sylvester,
  type TransformApplication,
  TransformError,
  type TransformMatrix,
  type TransformType,
} from "./src/transform/mod.ts";
