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
export { modelFreePtq } from "./src/model_free/mod.ts";

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

// The streams a run emits (progress, finished layers, per-module metrics, warnings).
export {
  type GraphEvent,
  type GraphEventSink,
  GraphStreams,
  type LayerDoneEvent,
  type ModuleMetricEvent,
  type ProgressEvent,
  type WarningEvent,
} from "./src/graph/mod.ts";

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

// Models, checkpoints and evaluation.
export { HfModel } from "./src/io/hf_model.ts";
export { loadTokenizer } from "./src/io/tokenizer.ts";
export { CompressedCheckpoint } from "./src/compress/compressed_checkpoint.ts";
export { DecoderModel } from "./src/model/decoder_model.ts";
export { loadCalibrationSamples } from "./src/data/calibration_samples.ts";
export { loadEvaluationWindows } from "./src/data/evaluation_windows.ts";
export { perplexity } from "./src/data/perplexity.ts";
export { describeGpu, getGpu, type Gpu } from "./src/gpu/device.ts";

// Rotations (Hadamard library, fused SpinQuant rotations).
export {
  buildTransform,
  fastWalshHadamard,
  hadamardMatrix,
  RotatedWeightSource,
  sylvester,
  TransformError,
} from "./src/transform/mod.ts";
