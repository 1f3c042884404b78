/**
 * `oneshot`: compress a Hugging Face model with a recipe (or a preset
 * scheme) and save a compressed-tensors checkpoint, as llm-compressor's
 * `oneshot(...)` followed by `save_pretrained(..., save_compressed=True)`.
 *
 * The pipeline is chosen by one function, {@link selectPipeline}, following
 * §3.6: a single QuantizationModifier that needs no calibration data runs
 * data-free; anything else needs calibration data and the sequential
 * pipeline. {@link preparePipeline} is the seam where calibrated pipelines
 * plug in: it validates and plans before any output exists, and returns a
 * runner that writes into the checkpoint sink.
 *
 * @module
 */

import { LlmcError } from "./errors.ts";
import { HfModel } from "./io/hf_model.ts";
import { resolveModelDir } from "./hub/resolve_model.ts";
import type { HubOptions } from "./hub/hub_settings.ts";
import { resolveDataset } from "./data/dataset_source.ts";
import { splitPath } from "./io/_path.ts";
import { dataFreeIncompatibility, planDataFree, runDataFree } from "./pipelines/datafree.ts";
import type { LayerEvent, PipelineOutcome } from "./pipelines/datafree.ts";
import { QuantizationModifier, recipeFromModifiers } from "./recipe/constructors.ts";
import { loadRecipe } from "./recipe/load.ts";
import type { ModifierSpec } from "./recipe/modifiers.ts";
import type { Recipe } from "./recipe/recipe.ts";
import type { ModuleFormat } from "./quant/compression_format.ts";
import { recipeToYaml } from "./recipe/serialize.ts";
import { assertSupported } from "./recipe/supported.ts";
import { CompressedCheckpoint } from "./compress/compressed_checkpoint.ts";
import { parseModelConfig } from "./io/model_config.ts";
import { DecoderModel } from "./model/decoder_model.ts";
import { checkModelTensors } from "./model/expected_tensors.ts";
import { assertOutputOutsideInput } from "./io/atomic_dir.ts";
import { acquireOutputLock, type OutputLock } from "./io/output_lock.ts";
import { CheckpointSink, type CheckpointTensor } from "./sink/checkpoint_sink.ts";
import { CheckpointSinkError, isDiskFull } from "./sink/sink_error.ts";
import { MODEL_TRANSFORMS } from "./modifiers/model_transforms.ts";
import { withTransformGroups } from "./transform/online_source.ts";
import { onlineTransformPlan, onlineTransforms } from "./transform/online_transforms.ts";
import type { JsonValue } from "./quant/python_json.ts";
// --- calibrated pipelines (src/graph, src/pipelines): the calibration graph's seam.
import type { GraphEvent, GraphEventSink, ModuleMetricEvent } from "./graph/events.ts";
// Imported when a run prepares a calibrated pipeline: a data-free run never loads the
// calibration graph, the tokenizer and the chat templates (33 modules).
import type { CalibrationOptions } from "./pipelines/calibrated.ts";
import { createEngine, type EngineChoice } from "./engine/choose.ts";

export type { LayerEvent, PipelineOutcome } from "./pipelines/datafree.ts";

/** The pipelines of llm-compressor's `oneshot(pipeline=...)`. */
export type PipelineName = "datafree" | "sequential" | "basic" | "independent";

/** Arguments of {@link oneshot}. */
export interface OneshotOptions {
  /**
   * The model folder, a Hub id `org/name[@revision]` (resolved through the
   * Hugging Face cache, downloading what is missing), or an open model (left
   * open afterwards).
   */
  readonly model: string | HfModel;
  /** How a Hub id is resolved: cache, endpoint, token, offline (default: from the environment). */
  readonly hub?: HubOptions;
  /** A recipe: file path or YAML/JSON text, a parsed recipe, or modifiers. Exclusive with `scheme`. */
  readonly recipe?: string | Recipe | readonly ModifierSpec[];
  /** A preset scheme (e.g. `"W4A16"`) for a QuantizationModifier; exclusive with `recipe`. */
  readonly scheme?: string;
  /** Targets of `scheme` (default `["Linear"]`). */
  readonly targets?: string | readonly string[];
  /** Modules `scheme` leaves alone (default none; usually `["lm_head"]`). */
  readonly ignore?: readonly string[];
  /** The output folder. */
  readonly outputDir: string;
  /** Replace an existing output folder. */
  readonly overwrite?: boolean;
  /** Continue an interrupted run of the same job (finished layers are kept). */
  readonly resume?: boolean;
  /** Force a pipeline instead of the inferred one. */
  readonly pipeline?: PipelineName;
  /** Shard size bound in bytes (default 5e9). */
  readonly maxShardBytes?: number;
  /** Omit null `scale_dtype`/`zp_dtype` from config.json, for vLLM builds with compressed-tensors ≤ 0.12. */
  readonly omitNullDtypes?: boolean;
  /** Progress, once per decoder layer. */
  readonly onProgress?: (event: LayerEvent) => void;
  /** Warnings (unmatched targets, discarded work folders); `console.warn` by default. */
  readonly onWarning?: (message: string) => void;
  // --- calibrated pipelines (src/graph, src/pipelines)
  /**
   * Calibration data, required by recipes that need data: a text file
   * (windows), a JSON Lines / JSON / Parquet / Arrow file or a folder of
   * them, a Hub dataset id `org/name[@revision]` (through the Hugging Face
   * cache), or `ultrachat_200k` / `open_platypus` as in llm-compressor.
   */
  readonly dataset?: string;
  /** The split and slice to read, e.g. `train_sft[:512]` (llm-compressor's `splits`). */
  readonly splits?: string;
  /** The column holding each row's text or chat `messages` (default `text`). */
  readonly textColumn?: string;
  /** The seed of `shuffleCalibrationSamples` (default 42). */
  readonly seed?: number;
  /** `num_calibration_samples` (default 512). */
  readonly numCalibrationSamples?: number;
  /** `max_seq_length` in tokens, BOS included (default 384). */
  readonly maxSeqLength?: number;
  /** `shuffle_calibration_samples` (default false). */
  readonly shuffleCalibrationSamples?: boolean;
  /** `quantization_aware_calibration` (default true). */
  readonly quantizationAwareCalibration?: boolean;
  /**
   * MoE models: upstream's `moe_calibrate_all_experts` (default true): every
   * expert's observers and Hessians see every calibration token while layer
   * outputs combine the router's top-k; false: experts see only their routed
   * tokens (an expert no token reaches is quantized round-to-nearest, with a
   * warning).
   */
  readonly moeCalibrateAllExperts?: boolean;
  /** Host bytes of cached activations before they spill to disk (default 2 GiB). */
  readonly maxActivationBytesInMemory?: number;
  /**
   * MoE models: float32 bytes of expert weights a layer loads, calibrates,
   * quantizes and compresses at once (default 1 GiB); a layer whose experts
   * need more is processed in groups of experts that fit, with the same output.
   */
  readonly maxExpertBytes?: number;
  /** Tokens per GPU forward during calibration (default 4096). */
  readonly tokensPerForward?: number;
  /**
   * The compute engine of calibrated runs: "webgpu", "cpu", or "auto"
   * (default: WebGPU on a hardware adapter, the CPU engine on a software one
   * or without an adapter; see src/engine/choose.ts). The choice and its
   * reason arrive as an `engine` event.
   */
  readonly engine?: EngineChoice;
  /** Every graph event: progress, layers, per-module metrics, warnings (see src/graph/events.ts). */
  readonly onEvent?: GraphEventSink;
  /**
   * Also return the compressed model, ready for `perplexity` or generation,
   * built from the tensors the run wrote (kept in memory as written, so
   * nothing is read back; layers a resumed run had finished come from the
   * output folder). Costs host memory for the compressed checkpoint.
   */
  readonly returnModel?: boolean;
  /**
   * `save_compressed` (default true). False writes a dense checkpoint as
   * upstream's `save_compressed=False` does: every quantized weight
   * fake-quantized in the model dtype, with its qparams, `format: "dense"`
   * and `quantization_status: "frozen"` (for evaluation; vLLM serves the
   * compressed form).
   */
  readonly saveCompressed?: boolean;
}

/** What {@link oneshot} wrote. */
export interface OneshotResult {
  /** The committed checkpoint folder. */
  readonly outputDir: string;
  /** The pipeline that ran. */
  readonly pipeline: PipelineName;
  /** Safetensors files written (names inside `outputDir`). */
  readonly files: readonly string[];
  /** Bytes of tensor data written. */
  readonly totalSize: number;
  /** Number of tensors written. */
  readonly tensorCount: number;
  /** Layers an earlier run had finished (resume). */
  readonly resumedLayers: readonly number[];
  /** Wall time in seconds. */
  readonly seconds: number;
  /**
   * The compressed model (weights decompressed on demand, as vLLM would
   * serve them) when `returnModel` was set, else null, on the engine `engine`
   * asked for. Close it when done (that also releases the kept tensors).
   */
  readonly model: DecoderModel | null;
}

/** `oneshot` was called with inconsistent arguments. */
export class OneshotError extends LlmcError {}

/**
 * The recipe needs calibration data and a calibrated pipeline (static
 * activations, KV-cache scales, GPTQ, SparseGPT, NVFP4 input global scales).
 */
export class CalibrationRequiredError extends LlmcError {}

/** A pipeline, validated and planned, ready to write into a sink. */
export interface PreparedPipeline {
  /** Which pipeline. */
  readonly name: PipelineName;
  /** Writes every layer into the sink; returns what finalize needs. */
  run(sink: CheckpointSink, onEvent: (e: LayerEvent) => void): Promise<PipelineOutcome>;
}

/**
 * The pipeline a recipe runs in (§3.6): `datafree` when the recipe is one
 * QuantizationModifier that needs no calibration data, otherwise
 * `sequential`. A requested pipeline is honoured when it can run the recipe.
 *
 * @param recipe the recipe
 * @param requested the user's choice, if any (`independent` means "infer")
 * @param warn receives a note when the request differs from the inferred pipeline
 * @returns the pipeline to run
 * @throws {OneshotError} for an empty recipe
 * @throws {CalibrationRequiredError} when `datafree` is requested for a recipe that needs data
 * @example
 * ```ts
 * import { selectPipeline } from "./oneshot.ts";
 * import { QuantizationModifier, recipeFromModifiers } from "./recipe/constructors.ts";
 * selectPipeline(recipeFromModifiers([QuantizationModifier({ scheme: "W8A16" })])); // "datafree"
 * selectPipeline(recipeFromModifiers([QuantizationModifier({ scheme: "FP8" })])); // "sequential"
 * ```
 */
export function selectPipeline(
  recipe: Recipe,
  requested?: PipelineName,
  warn: (message: string) => void = (m) => console.warn(m),
): PipelineName {
  if (recipe.modifiers.length === 0) throw new OneshotError("the recipe has no modifiers");
  const reasons = recipe.modifiers.map(dataFreeIncompatibility);
  const inferred: PipelineName = recipe.modifiers.length === 1 && reasons[0] === null
    ? "datafree"
    : "sequential";
  if (requested === undefined || requested === "independent" || requested === inferred) {
    return inferred;
  }
  if (requested === "datafree") {
    const why = recipe.modifiers.length > 1
      ? "the data-free pipeline runs a single QuantizationModifier"
      : reasons[0];
    throw new CalibrationRequiredError(
      `pipeline 'datafree' cannot run this recipe (${why}); it requires calibration data / ` +
        `the sequential pipeline`,
    );
  }
  warn(`pipeline '${requested}' requested; the recipe would run in '${inferred}'`);
  return requested;
}

/**
 * Validates and plans a pipeline for a model and recipe, before any output
 * is opened. Calibrated pipelines plug in here.
 *
 * @param name the pipeline ({@link selectPipeline})
 * @param model the source model
 * @param recipe the recipe
 * @param warn receives notes such as targets that match no module
 * @param onMetric when given, receives the data-free pipeline's per-module errors
 * @param formatOverride a format forced on every quantized module (`"dense"`), or null
 * @returns the prepared pipeline
 * @throws {CalibrationRequiredError} for pipelines that need calibration data when none is given
 * @throws {QuantizationShapeError} / {QuantizationConfigError} / {RecipeError} for bad input
 * @example
 * ```ts ignore
 * const p = preparePipeline("datafree", model, recipe);
 * const outcome = await p.run(sink, () => {});
 * ```
 */
export function preparePipeline(
  name: PipelineName,
  model: HfModel,
  recipe: Recipe,
  warn: (message: string) => void = (m) => console.warn(m),
  onMetric?: (event: ModuleMetricEvent) => void,
  formatOverride: ModuleFormat | null = null,
): PreparedPipeline {
  switch (name) {
    case "datafree": {
      const plan = planDataFree(model, recipe.modifiers[0], formatOverride);
      for (const t of plan.unmatched) warn(`'${t}' matches no Linear module of ${model.dir}`);
      return { name, run: (sink, onEvent) => runDataFree(model, plan, sink, onEvent, onMetric) };
    }
    case "sequential":
    case "basic":
    case "independent": {
      const needs = recipe.modifiers
        .map((m) => [m, dataFreeIncompatibility(m)] as const)
        .filter(([, why]) => why !== null)
        .map(([m, why]) => `${m.stage}_stage.${m.group}_modifiers.${m.type}: ${why}`);
      throw new CalibrationRequiredError(
        `this recipe needs calibration data for the ${name} pipeline: pass dataset ` +
          `(--dataset FILE on the command line)` +
          (needs.length > 0 ? ` (${needs.join("; ")})` : ""),
      );
    }
  }
}

// --- calibrated pipelines (src/graph, src/pipelines)
async function calibrationOf(
  options: OneshotOptions,
  warn: (m: string) => void,
): Promise<(CalibrationOptions & { dataset: string }) | null> {
  if (options.dataset === undefined) return null;
  const resolved = await resolveDataset(options.dataset, {
    splits: options.splits,
    hub: options.hub,
    onWarning: warn,
  });
  return {
    dataset: resolved.path,
    splits: resolved.split,
    textColumn: options.textColumn,
    datasetPreset: resolved.preset,
    seed: options.seed,
    numCalibrationSamples: options.numCalibrationSamples,
    maxSeqLength: options.maxSeqLength,
    shuffleCalibrationSamples: options.shuffleCalibrationSamples,
    quantizationAwareCalibration: options.quantizationAwareCalibration,
    moeCalibrateAllExperts: options.moeCalibrateAllExperts,
    maxActivationBytesInMemory: options.maxActivationBytesInMemory,
    maxExpertBytes: options.maxExpertBytes,
    tokensPerForward: options.tokensPerForward,
    engine: options.engine,
  };
}

/** What ties a resumed calibrated run to its data: the dataset's identity and sampling. */
async function calibrationJob(c: CalibrationOptions & { dataset: string }) {
  const stat = await Deno.stat(c.dataset);
  return {
    dataset: await Deno.realPath(c.dataset),
    size: stat.size,
    mtime: stat.mtime?.getTime() ?? null,
    splits: c.splits ?? null,
    textColumn: c.textColumn ?? null,
    preset: c.datasetPreset?.name ?? null,
    seed: c.seed ?? null,
    numCalibrationSamples: c.numCalibrationSamples ?? null,
    maxSeqLength: c.maxSeqLength ?? null,
    shuffle: c.shuffleCalibrationSamples ?? false,
    quantizationAware: c.quantizationAwareCalibration ?? true,
    moeCalibrateAllExperts: c.moeCalibrateAllExperts ?? true,
    tokensPerForward: c.tokensPerForward ?? null,
  };
}

async function recipeOf(options: OneshotOptions): Promise<Recipe> {
  if (options.recipe !== undefined && options.scheme !== undefined) {
    throw new OneshotError("give either recipe or scheme, not both");
  }
  if (options.recipe === undefined) {
    if (options.scheme === undefined) throw new OneshotError("give a recipe or a scheme");
    const targets = options.targets === undefined
      ? ["Linear"]
      : typeof options.targets === "string"
      ? [options.targets]
      : [...options.targets];
    return recipeFromModifiers([
      QuantizationModifier({
        targets,
        ignore: [...(options.ignore ?? [])],
        scheme: options.scheme,
      }),
    ]);
  }
  if (options.targets !== undefined || options.ignore !== undefined) {
    throw new OneshotError("targets and ignore go with scheme; a recipe carries its own");
  }
  const r = options.recipe;
  if (typeof r === "string") return await loadRecipe(r);
  if (Array.isArray(r)) return recipeFromModifiers(r as readonly ModifierSpec[]);
  return r as Recipe;
}

/**
 * Compresses a model and writes a compressed-tensors checkpoint to
 * `outputDir`, atomically: on any error nothing appears there (an
 * interrupted run keeps its finished layers in `<outputDir>.tmp-llmc` for
 * `resume`). Bad input is reported before any output is written.
 *
 * @param options model, recipe or scheme, output folder and run options
 * @returns what was written
 * @throws {OneshotError} for inconsistent arguments
 * @throws {CalibrationRequiredError} when the recipe needs calibration data
 * @throws {RecipeError} / {UnsupportedModifierError} (from recipe) for a bad or unsupported recipe
 * @throws {QuantizationShapeError} (from quant) for a module its scheme cannot quantize
 * @throws {CheckpointSinkError} (from sink) when the output exists without `overwrite`
 * @example
 * ```ts ignore
 * import { oneshot } from "./oneshot.ts";
 * await oneshot({
 *   model: "models/stories260K",
 *   scheme: "FP8_DYNAMIC",
 *   ignore: ["lm_head"],
 *   outputDir: "out/stories-fp8",
 * });
 * ```
 */
export async function oneshot(options: OneshotOptions): Promise<OneshotResult> {
  const t0 = performance.now();
  const warn = options.onWarning ?? ((m: string) => console.warn(m));
  const fullRecipe = await recipeOf(options);
  for (const m of fullRecipe.modifiers) assertSupported(m);
  for (const w of fullRecipe.warnings) warn(w);
  const ownModel = typeof options.model === "string";
  const original = typeof options.model === "string"
    ? await HfModel.open(await resolveModelDir(options.model, { ...options.hub, onWarning: warn }))
    : options.model;
  let lock: OutputLock | undefined;
  const scratch: { dir: string; model: HfModel }[] = [];
  try {
    // Every tensor against the config, before any work (a transposed weight fails here, named).
    checkModelTensors(original, original.config, original.dir, warn);
    // The output is locked before the pipeline's preparation (calibration data, planning):
    // a second run on the same output is refused at once, naming this one.
    await assertOutputOutsideInput(original.dir, options.outputDir);
    lock = await acquireOutputLock(options.outputDir, warn);
    // Whole-model transforms (rotations) run first; the layer modifiers compress their result.
    const transformed = await applyModelTransforms(
      original,
      fullRecipe,
      splitPath(options.outputDir)[0],
      scratch,
      options.engine,
    );
    const model = transformed.model;
    const recipe = transformed.recipe;
    // Upstream's default `independent` runs a multi-modifier recipe one modifier per pass.
    const multi = recipe.modifiers.length > 1;
    const name: PipelineName = multi &&
        (options.pipeline === undefined || options.pipeline === "independent")
      ? "independent"
      : selectPipeline(recipe, options.pipeline, warn);
    if (multi && name === "sequential" && options.pipeline === "sequential") {
      warn(
        "pipeline 'sequential' requested; the recipe would run in 'independent' (one pass per modifier)",
      );
    }
    const emit = (e: GraphEvent) => {
      options.onEvent?.(e);
      if (e.type === "warning") warn(e.message);
    };
    const calibration = await calibrationOf(options, warn);
    const dense = options.saveCompressed === false;
    if (dense) {
      const sparse = recipe.modifiers.find((m) => m.type === "SparseGPTModifier");
      if (sparse) {
        throw new OneshotError(
          `saveCompressed: false with ${sparse.type} is not supported yet ` +
            `(a dense save of a sparsity recipe); save compressed or drop the sparsity modifier`,
        );
      }
    }
    // upstream's save_compressed=False: every quantized module in "dense" format.
    const formatOverride = dense ? "dense" : null;
    // Several data-free modifiers run in the independent pipeline without data.
    const dataFree = recipe.modifiers.every((m) => dataFreeIncompatibility(m) === null);
    const pipeline = name !== "datafree" && (calibration !== null || dataFree)
      ? await (await import("./pipelines/calibrated.ts")).prepareCalibratedPipeline(
        name,
        model,
        recipe,
        { ...(calibration ?? { engine: options.engine }), formatOverride },
        emit,
      )
      : preparePipeline(
        name,
        model,
        recipe,
        warn,
        options.onEvent ? emit : undefined,
        formatOverride,
      );
    // As upstream saves it: inferred fields (AWQ/SmoothQuant mappings) filled in by initialize.
    // The data-free pipeline runs one QuantizationModifier, whose registration infers nothing
    // (tests/modifiers/smoothing_test.ts): only other runs import the registry, whose sessions
    // load RxJS and every modifier's graph code.
    const recipeYaml = recipeToYaml(
      name === "datafree"
        ? fullRecipe
        : (await import("./modifiers/builtin.ts")).MODIFIERS.initialized(
          fullRecipe,
          original.config,
        ),
    );
    const kept: CheckpointTensor[] | null = options.returnModel ? [] : null;
    const sink = await CheckpointSink.open({
      outputDir: options.outputDir,
      // The original model: its folder ties a resumable work folder to the job (the scratch
      // checkpoint of a transform has a new path every run) and guards the output against it.
      source: original,
      overwrite: options.overwrite,
      resume: options.resume,
      maxShardBytes: options.maxShardBytes,
      job: {
        pipeline: name,
        recipe: recipeYaml,
        ...(name === "datafree" || calibration === null
          ? {}
          : { calibration: await calibrationJob(calibration) }),
        // Only when set, so the jobs of compressed saves hash as they always did (resume).
        ...(dense ? { save_compressed: false } : {}),
      },
      onWarning: warn,
      onTensors: kept === null ? undefined : (tensors) => kept.push(...tensors),
      lock,
    });
    const resumedLayers = sink.doneLayers();
    let done;
    try {
      const outcome = await pipeline.run(sink, (e: LayerEvent) => {
        options.onProgress?.(e);
        if (!("type" in e)) options.onEvent?.({ type: "layer_done", ...e });
      });
      const quantizationConfig = transformed.groups === null ? outcome.quantizationConfig : {
        ...outcome.quantizationConfig,
        transform_config: { config_groups: transformed.groups },
      };
      done = await sink.finalize({
        // A dense save is not compressed: its modules are left "frozen", as upstream writes it.
        quantizationConfig: dense
          ? { ...quantizationConfig, quantization_status: "frozen" }
          : quantizationConfig,
        sparsityConfig: outcome.sparsityConfig,
        // Untied when a transform rotated the embeddings apart from lm_head (SpinQuant).
        configPatch: transformed.groups === null || model.config.tieWordEmbeddings
          ? outcome.configPatch
          : { ...outcome.configPatch, tie_word_embeddings: false },
        recipeYaml,
        omitNullDtypes: options.omitNullDtypes,
      });
    } catch (e) {
      // After a full disk the user needs to know what is left and how to go on.
      if (isDiskFull(e)) {
        throw new CheckpointSinkError(
          sink.outputDir,
          `${(e as Error).message}; the disk is full. Free some space; ${sink.resumeHint()}`,
          { cause: e },
        );
      }
      throw e;
    } finally {
      // Releases the output's lock; the work folder stays for --resume.
      await sink.close();
    }
    const seconds = (performance.now() - t0) / 1000;
    return {
      outputDir: done.outputDir,
      pipeline: name,
      files: done.files,
      totalSize: done.totalSize,
      tensorCount: done.tensorCount,
      resumedLayers,
      seconds,
      model: kept === null
        ? null
        : await inMemoryModel(done.outputDir, kept, resumedLayers, options.engine),
    };
  } finally {
    for (const s of scratch.reverse()) {
      s.model.close();
      await Deno.remove(s.dir, { recursive: true });
    }
    await lock?.release();
    if (ownModel) original.close();
  }
}

/**
 * The model a run just wrote, from the tensors it handed to the sink: the
 * written config.json (small) is read for the final `quantization_config`;
 * the output folder is opened only for layers an earlier run had written.
 * It runs on the engine the run asked for.
 */
async function inMemoryModel(
  outputDir: string,
  tensors: readonly CheckpointTensor[],
  resumedLayers: readonly number[],
  engineChoice: EngineChoice | undefined,
): Promise<DecoderModel> {
  const configPath = `${outputDir}/config.json`;
  const config = parseModelConfig(JSON.parse(await Deno.readTextFile(configPath)), configPath);
  const fallback = resumedLayers.length > 0 ? await HfModel.open(outputDir) : null;
  const checkpoint = CompressedCheckpoint.fromTensors(config, outputDir, tensors, fallback);
  try {
    const { engine } = await createEngine({
      engine: engineChoice ?? "auto",
      headDims: [config.headDim],
    });
    return await DecoderModel.load(checkpoint, engine, { closeSource: true });
  } catch (e) {
    checkpoint.close();
    throw e;
  }
}

/**
 * Runs the recipe's leading whole-model transforms (SpinQuant): each writes
 * a transformed float checkpoint into a scratch folder, which the rest of
 * the recipe reads instead of the original.
 *
 * @param model the original model
 * @param recipe the whole recipe
 * @param near the folder the scratch checkpoints go in (the output's parent, so a large
 *   model's rotated copy lands on the output's disk, not in /tmp), when it exists
 * @param scratch where the scratch folders and their models are recorded (for cleanup)
 * @returns the model the layer pipelines read, the rest of the recipe, and
 *   the transform_config groups (null without transforms)
 * @throws {OneshotError} for a transform after a layer modifier, or a recipe of transforms only
 */
async function applyModelTransforms(
  model: HfModel,
  recipe: Recipe,
  near: string,
  scratch: { dir: string; model: HfModel }[],
  engineChoice: EngineChoice | undefined,
): Promise<{ model: HfModel; recipe: Recipe; groups: { [group: string]: JsonValue } | null }> {
  const lead = recipe.modifiers.findIndex((m) => !MODEL_TRANSFORMS.has(m.type));
  const count = lead === -1 ? recipe.modifiers.length : lead;
  const late = recipe.modifiers.slice(count).find((m) => MODEL_TRANSFORMS.has(m.type));
  if (late !== undefined) {
    throw new OneshotError(
      `${late.type} must come before the layer modifiers (it rotates the model they compress)`,
    );
  }
  if (count === 0) return { model, recipe, groups: null };
  if (count === recipe.modifiers.length) {
    throw new OneshotError(
      `${recipe.modifiers[0].type} only rotates the weights; follow it with a quantization ` +
        "modifier (QuantizationModifier or GPTQModifier), as upstream's examples do",
    );
  }
  const transforms = recipe.modifiers.slice(0, count).map((spec) => {
    const registration = MODEL_TRANSFORMS.get(spec.type)!;
    return { registration, spec, plan: registration.plan(model.config, spec) };
  });
  const groups: { [group: string]: JsonValue } = {};
  const planned = withTransformGroups(
    model.config,
    Object.assign(
      {},
      ...transforms.map((t) => t.registration.transformGroups(model.config, t.plan)),
    ),
  );
  const online = onlineTransforms(planned);
  const smoothing = recipe.modifiers.slice(count).find((m) => SMOOTHING_MODIFIERS.includes(m.type));
  if (smoothing !== undefined && online.length > 0) {
    throw new OneshotError(
      `${smoothing.type} after online rotations (${online.join("; ")}) is not supported: its ` +
        "scales would cross the rotation between a norm or Linear and the Linear it feeds",
    );
  }
  // vLLM's online transform module loads each transform's `.weight` only, not its `.perm`:
  // a randomized online group would load there and compute another function.
  const permuted = new Set(
    [...onlineTransformPlan(planned).values()].flat().filter((a) => a.perm !== null)
      .map((a) => a.group),
  );
  if (permuted.size > 0) {
    throw new OneshotError(
      `randomize: true on the online transform groups ${[...permuted].join(", ")} is refused: ` +
        "their permutations would be stored as <module>.<group>_<location>.perm, which llmc " +
        "applies but vLLM's compressed-tensors transform loader does not read, so vLLM would " +
        "serve another function (llm-compressor 0.9 refuses randomize altogether). " +
        "randomize is accepted for the fused rotations R1 and R2 only",
    );
  }
  // The fused products run on the engine the run asked for (its float64 blockTransform).
  const { engine } = await createEngine({ engine: engineChoice ?? "auto" });
  try {
    for (const t of transforms) {
      const dir = await Deno.makeTempDir({ dir: near, prefix: ".llmc-transformed-" })
        .catch(() => Deno.makeTempDir({ prefix: "llmc-transformed-" }));
      let next: HfModel;
      try {
        next = await t.registration.apply(model, t.plan, dir, engine);
      } catch (e) {
        await Deno.remove(dir, { recursive: true });
        throw e;
      }
      scratch.push({ dir, model: next });
      Object.assign(groups, t.registration.transformGroups(model.config, t.plan));
      model = next;
    }
  } finally {
    engine.close();
  }
  return { model, recipe: { ...recipe, modifiers: recipe.modifiers.slice(count) }, groups };
}

/** Modifiers that rescale a producer against the Linears it feeds (no rotation may sit between). */
const SMOOTHING_MODIFIERS = [
  "AWQModifier",
  "SmoothQuantModifier",
  "LogarithmicEqualizationModifier",
];
