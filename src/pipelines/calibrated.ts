/**
 * The calibrated pipelines (§3.6): `sequential` (layer by layer with error
 * propagation, §4.11), `basic` (no error propagation) and `independent`
 * (each modifier its own pass, one after another). Everything a bad recipe
 * or dataset can break is checked in {@link prepareCalibratedPipeline},
 * before any output exists; `run` then writes into the checkpoint sink.
 *
 * @module
 */

import { lastValueFrom, tap } from "../_rxjs.ts";
import type { HfModel } from "../io/hf_model.ts";
import { loadTokenizer } from "../io/tokenizer.ts";
import { loadCalibrationSamples } from "../data/calibration_samples.ts";
import { loadChatTemplate } from "../data/chat_template.ts";
import type { DatasetPreset } from "../data/dataset_presets.ts";
import { DecoderModel } from "../model/decoder_model.ts";
import { createEngine, type EngineChoice } from "../engine/choose.ts";
import type { Recipe } from "../recipe/recipe.ts";
import type { ModuleFormat } from "../quant/compression_format.ts";
import type { ModifierSpec } from "../recipe/modifiers.ts";
import type { CheckpointSink } from "../sink/checkpoint_sink.ts";
import { MemoryBudget } from "../graph/activation_cache.ts";
import type { ActivationCache } from "../graph/activation_cache.ts";
import { calibrationBatches } from "../graph/calibration_batches.ts";
import type { CalibrationBatch } from "../graph/calibration_batches.ts";
import type { GraphEventSink, LayerDoneEvent } from "../graph/events.ts";
import { CalibrationUnsupportedError } from "../modifiers/quantization/quantization_plan.ts";
import type { QuantizationPlan } from "../modifiers/quantization/quantization_plan.ts";
import { isSparsityPlan } from "../modifiers/sparsegpt/sparsity_plan.ts";
import {
  layerModifiersOf,
  mapQuantization,
  type ModifierPlan,
  planModifier,
  quantizationOf,
} from "./modifier_plan.ts";
import { EMBED_TOKENS, layerPrefix } from "../model/module_names.ts";
import { layerLinearModules } from "../model/moe_names.ts";
import type { PlannedLinear } from "../modifiers/quantization/linear_plan.ts";
import type { SparsityStructure } from "../quant/format.ts";
import { buildQuantizationConfig } from "../quant/quantization_config.ts";
import { sparsityFormatOf, SparsityTracker } from "./sparsity_config.ts";
import { combinePlans, withSparsityStructure } from "./combined_plan.ts";
import type { CombinedPlan } from "./combined_plan.ts";
import type { PipelineOutcome } from "./datafree.ts";
import { lmHeadNeedsData, quantizeLmHead } from "./lm_head.ts";
import { copyOutsideTensors, LM_HEAD_GROUP, writeLmHead } from "./outside_tensors.ts";
import { runIndependent } from "./independent.ts";
import { layerPass$ } from "./sequential.ts";
import type { PassContext, PassOutputs } from "./sequential.ts";
import { restoreSparsityStats, sinkTarget } from "./sink_target.ts";
import { readLayerFromSource } from "./layer_source.ts";

/** The calibrated pipelines. */
export type CalibratedPipelineName = "sequential" | "basic" | "independent";

/** Calibration data and run options (llm-compressor's dataset arguments). */
export interface CalibrationOptions {
  /** A format forced on every quantized module (`"dense"` for `saveCompressed: false`). */
  readonly formatOverride?: ModuleFormat | null;
  /**
   * A local dataset: plain UTF-8 text (windows of `maxSeqLength`), a
   * JSON Lines / JSON / Parquet / Arrow file, or a folder of them (see
   * `loadCalibrationSamples`); required unless every modifier is data-free.
   */
  readonly dataset?: string;
  /** The split and slice to read, e.g. `train[:512]` (llm-compressor's `splits`). */
  readonly splits?: string;
  /** The column with each row's text or chat messages (llm-compressor's `text_column`). */
  readonly textColumn?: string;
  /** A named dataset's row format (`ultrachat_200k`, `open_platypus`). */
  readonly datasetPreset?: DatasetPreset;
  /** `num_calibration_samples` (default 512). */
  readonly numCalibrationSamples?: number;
  /** `max_seq_length` in tokens, BOS included (default 384). */
  readonly maxSeqLength?: number;
  /** `shuffle_calibration_samples` (default false). */
  readonly shuffleCalibrationSamples?: boolean;
  /** Seed of the shuffle (default 42). */
  readonly seed?: number;
  /** `quantization_aware_calibration` (default true; GPTQ switches it off). */
  readonly quantizationAwareCalibration?: boolean;
  /**
   * Host bytes of cached activations before they spill to disk (default
   * 2 GiB); also the largest resume boundary saved.
   */
  readonly maxActivationBytesInMemory?: number;
  /**
   * MoE models: float32 bytes of expert weights one layer processes at once
   * (default 1 GiB); a layer whose experts need more is processed in groups
   * of experts that fit (graph/expert_groups.ts).
   */
  readonly maxExpertBytes?: number;
  /** Tokens per GPU forward (samples are packed up to this; default 4096). */
  readonly tokensPerForward?: number;
  /**
   * MoE models: `moe_calibrate_all_experts` (default true): every expert's
   * statistics see every token, while layer outputs use the router's top-k;
   * false: experts see only the tokens routed to them.
   */
  readonly moeCalibrateAllExperts?: boolean;
  /** The compute engine: "webgpu", "cpu" or "auto" (default: the fastest for the machine). */
  readonly engine?: EngineChoice;
}

/** Default bound of in-memory activations. */
export const DEFAULT_MAX_ACTIVATION_BYTES = 2 * 2 ** 30;

/** Default float32 bytes of MoE expert weights a layer processes at once (1 GiB). */
export const DEFAULT_MAX_EXPERT_BYTES = 2 ** 30;

/** Default tokens per forward. */
export const DEFAULT_TOKENS_PER_FORWARD = 4096;

/** A calibrated pipeline, validated and ready to write into a sink. */
export interface CalibratedPipeline {
  readonly name: CalibratedPipelineName;
  /** Number of calibration samples. */
  readonly samples: number;
  /**
   * Writes every layer (and the tensors outside them) into the sink.
   *
   * @param sink the open sink
   * @param onLayer once per finished or skipped layer
   * @returns what finalize needs
   */
  run(sink: CheckpointSink, onLayer: (e: LayerDoneEvent) => void): Promise<PipelineOutcome>;
}

function planAll(
  hf: HfModel,
  modifiers: readonly ModifierSpec[],
  formatOverride: ModuleFormat | null,
): ModifierPlan[] {
  const plans = modifiers.map((m) => planModifier(hf, m, formatOverride));
  // The model's sparsity structure changes the quantization formats (2:4 int weight-only → marlin-24).
  const structure = sparsityStructureOf(plans);
  if (structure !== "2:4") return plans;
  return plans.map((p) => mapQuantization(p, (q) => withSparsityStructure(q, structure)));
}

function sparsityStructureOf(plans: readonly ModifierPlan[]): SparsityStructure | null {
  const sparse = plans.filter(isSparsityPlan);
  if (sparse.length === 0) return null;
  return sparse.some((p) => p.structure === "2:4") ? "2:4" : "unstructured";
}

/** A dense lm_head plan, for runs whose modifiers quantize nothing. */
function denseLmHead(hf: HfModel): PlannedLinear {
  const weightTensor = hf.has("lm_head.weight") ? "lm_head.weight" : EMBED_TOKENS;
  const info = hf.info(weightTensor);
  return {
    name: "lm_head",
    weightTensor,
    layer: null,
    shape: [info.shape[0], info.shape[1]],
    dtype: info.dtype,
    scheme: null,
    format: null,
  };
}

function combineAll(hf: HfModel, plans: readonly ModifierPlan[]): CombinedPlan {
  const quant = plans.map(quantizationOf).filter((q): q is QuantizationPlan => q !== null);
  const structure = sparsityStructureOf(plans);
  if (quant.length > 0) return combinePlans(quant, structure);
  return {
    quantizationConfig: buildQuantizationConfig({ modules: [] }),
    lmHead: denseLmHead(hf),
    lmHeadPlan: null,
    untieLmHead: false,
  };
}

function sparsityTracker(hf: HfModel, plans: readonly ModifierPlan[]): SparsityTracker | null {
  const structure = sparsityStructureOf(plans);
  if (structure === null) return null;
  // The final scheme of each module is the last quantization modifier's (combinePlans' rule).
  const schemes = new Map<string, PlannedLinear>();
  for (const p of plans) {
    const q = quantizationOf(p);
    if (q === null) continue;
    for (const l of q.linears.linears) if (l.scheme !== null) schemes.set(l.name, l);
  }
  const linears = [...schemes.values()];
  const format = sparsityFormatOf(
    structure,
    linears.map((l) => l.scheme),
    linears.map((l) => l.format),
  );
  let total = 0;
  for (const n of hf.tensorNames()) total += hf.info(n).shape.reduce((a, b) => a * b, 1);
  return new SparsityTracker(structure, format, total);
}

/**
 * Validates and plans a calibrated run: plans every modifier, loads and
 * tokenizes the calibration samples. Nothing is written.
 *
 * @param name the pipeline
 * @param hf the source model
 * @param recipe the recipe
 * @param options calibration data and run options
 * @param emit receives warnings now and progress / metrics while running
 * @returns the prepared pipeline
 * @throws {CalibrationUnsupportedError} for modifiers or activation args llmc cannot calibrate,
 *   or a recipe that needs data without a dataset
 * @throws {DatasetError} (from data) for an unreadable or too small dataset
 * @example
 * ```ts ignore
 * const p = await prepareCalibratedPipeline("sequential", hf, recipe, { dataset: "calib.txt" }, emit);
 * const outcome = await p.run(sink, () => {});
 * ```
 */
export async function prepareCalibratedPipeline(
  name: CalibratedPipelineName,
  hf: HfModel,
  recipe: Recipe,
  options: CalibrationOptions,
  emit: GraphEventSink,
): Promise<CalibratedPipeline> {
  const plans = planAll(hf, recipe.modifiers, options.formatOverride ?? null);
  for (const p of plans) {
    for (const t of p.unmatched) {
      emit({ type: "warning", message: `'${t}' matches no module of ${hf.dir}` });
    }
  }
  const combined = combineAll(hf, plans);
  const needsData = plans.some((p) => p.needsData);
  let batches: CalibrationBatch[] = [];
  if (needsData) {
    if (options.dataset === undefined) {
      const which = plans.filter((p) => p.needsData).map((p) => p.modifier.type).join(", ");
      throw new CalibrationUnsupportedError(`${which} needs calibration data; give a dataset`);
    }
    const samples = await loadCalibrationSamples({
      path: options.dataset,
      tokenizer: await loadTokenizer(hf.dir),
      numSamples: options.numCalibrationSamples ?? 512,
      maxSeqLength: options.maxSeqLength ?? 384,
      shuffle: options.shuffleCalibrationSamples,
      seed: options.seed,
      split: options.splits,
      textColumn: options.textColumn,
      chatTemplate: await loadChatTemplate(
        hf.dir,
        options.datasetPreset?.fallbackChatTemplate === undefined ? undefined : {
          source: options.datasetPreset.fallbackChatTemplate,
          name: `${options.datasetPreset.name}'s default chat template`,
        },
      ),
      preset: options.datasetPreset,
    });
    batches = calibrationBatches(samples, options.tokensPerForward ?? DEFAULT_TOKENS_PER_FORWARD);
  }
  // A sparsity modifier's result is the next modifier's starting point: one pass each.
  const independent = (name === "independent" || plans.some(isSparsityPlan)) && plans.length > 1;
  return {
    name,
    samples: batches.reduce((n, b) => n + b.sequences, 0),
    run: (sink, onLayer) =>
      runCalibrated(hf, plans, combined, batches, options, sink, emit, onLayer, {
        independent,
        needsData,
        propagation: name === "basic" ? "calibration" : "compressed",
      }),
  };
}

async function runCalibrated(
  hf: HfModel,
  plans: readonly ModifierPlan[],
  combined: CombinedPlan,
  batches: readonly CalibrationBatch[],
  options: CalibrationOptions,
  sink: CheckpointSink,
  emit: GraphEventSink,
  onLayer: (e: LayerDoneEvent) => void,
  mode: { independent: boolean; needsData: boolean; propagation: "compressed" | "calibration" },
): Promise<PipelineOutcome> {
  // The one asked for, or the fastest for the machine (every modifier runs on both engines).
  const chosen = await createEngine({
    engine: options.engine ?? "auto",
    headDims: [hf.config.headDim],
  });
  emit({ type: "engine", engine: chosen.engine.kind, reason: chosen.reason });
  const model = await DecoderModel.load(hf, chosen.engine);
  const spillDir = `${sink.workDir}/graph`;
  await Deno.mkdir(spillDir, { recursive: true });
  const ctx: PassContext = {
    model,
    batches,
    budget: new MemoryBudget(options.maxActivationBytesInMemory ?? DEFAULT_MAX_ACTIVATION_BYTES),
    spillDir,
    emit,
    moeCalibrateAllExperts: options.moeCalibrateAllExperts,
    readLayer: (k, include) => readLayerFromSource(hf, k, undefined, include),
    maxExpertBytes: options.maxExpertBytes ?? DEFAULT_MAX_EXPERT_BYTES,
  };
  const kept: PassOutputs = { last: null };
  const sparsity = sparsityTracker(hf, plans);
  try {
    if (sparsity !== null) await restoreSparsityStats(sink, sparsity);
    const t0 = performance.now();
    const bytesRead = await copyOutsideTensors(hf, combined.lmHead, sink);
    const outside: LayerDoneEvent = {
      type: "layer_done",
      layer: null,
      layers: model.numLayers,
      skipped: false,
      seconds: (performance.now() - t0) / 1000,
      bytesRead,
    };
    onLayer(outside);
    emit(outside);

    const lmPlan = combined.lmHeadPlan;
    const lmGptq = lmPlan?.modifier.type === "GPTQModifier";
    const keepLastOutputs = lmPlan !== null && !sink.isGroupDone(LM_HEAD_GROUP) &&
      lmHeadNeedsData(combined.lmHead, lmGptq);
    const report = tap<LayerDoneEvent>((e) => {
      onLayer(e);
      emit(e);
    });
    if (mode.independent) {
      await runIndependent(
        ctx,
        plans,
        options,
        sink,
        batches,
        hf,
        report,
        kept,
        keepLastOutputs,
        sparsity,
      );
    } else {
      const modifiers = plans.flatMap(layerModifiersOf);
      const quantizationAware = options.quantizationAwareCalibration !== false &&
        !modifiers.some((m) => m.disablesQuantizationAware);
      await lastValueFrom(
        layerPass$(
          ctx,
          {
            modifiers,
            propagation: mode.propagation,
            quantizationAware,
            needsData: mode.needsData,
            keepLastOutputs,
            pass: 0,
            passes: 1,
          },
          sinkTarget(hf, sink, batches, ctx.budget.limit, sparsity),
          kept,
        ).pipe(report),
        { defaultValue: null },
      );
    }

    if (lmPlan !== null && !sink.isGroupDone(LM_HEAD_GROUP)) {
      const m = lmPlan.modifier;
      const result = await quantizeLmHead(
        model,
        hf,
        combined.lmHead,
        m.type,
        m.type === "GPTQModifier"
          ? { blockSize: m.blockSize, dampeningFrac: m.dampeningFrac ?? 0.01 }
          : null,
        batches,
        kept.last as ActivationCache | null,
      );
      await writeLmHead(hf, combined.lmHead, result, sink);
      if (result.metric !== null) {
        emit({
          type: "module_metric",
          module: result.module,
          modifier: result.modifier,
          layer: null,
          error: result.metric.error,
          errorKind: result.metric.errorKind,
          samples: batches.reduce((n, b) => n + b.sequences, 0),
          seconds: result.metric.seconds,
          rssBytes: Deno.memoryUsage().rss,
          gpuBytes: result.shape[0] * result.shape[1] * 4,
        });
      }
    }
    return {
      quantizationConfig: combined.quantizationConfig,
      sparsityConfig: sparsity?.config([
        ...Array.from(
          { length: model.numLayers },
          (_, k) => layerLinearModules(model.config, k).map((l) => `${layerPrefix(k)}.${l}`),
        ).flat(),
        "lm_head",
      ]),
      configPatch: combined.untieLmHead ? { tie_word_embeddings: false } : undefined,
    };
  } finally {
    await kept.last?.dispose();
    await model.idle().catch(() => {});
    model.close();
  }
}
