/**
 * `llmc oneshot`: compress a model with a preset scheme or a recipe and
 * write a compressed-tensors checkpoint.
 *
 * @module
 */

import type { CliCommand } from "./command.ts";
import {
  byteSizeFlag,
  choiceFlag,
  parseCommandLine,
  positiveInt,
  requireFlag,
  UsageError,
} from "./flags.ts";
import { LlmcError } from "../errors.ts";
import { ENGINE_CHOICES, prestartEngine } from "../engine/choose.ts";
import { oneshot } from "../oneshot.ts";
import type { PipelineName } from "../oneshot.ts";
import { progressRenderer } from "./progress.ts";
import type { ProgressMode } from "./progress.ts";

const USAGE =
  `usage: llmc oneshot --model DIR|ID (--scheme PRESET [--targets T ...] [--ignore I ...] | --recipe FILE)
                    --output-dir OUT [--overwrite] [--resume] [--pipeline NAME] [--max-shard-size SIZE]
                    [--dataset FILE|DIR|ID [--splits S] [--text-column C] --num-calibration-samples N
                     --max-seq-length L ...]

  --model DIR|ID         a Hugging Face model folder (config.json, safetensors), or a Hub id
                         org/name[@revision] resolved through the HF cache (HF_HUB_CACHE, HF_HOME),
                         downloading what is missing from HF_ENDPOINT with HF_TOKEN (HF_HUB_OFFLINE=1: cache only)
  --scheme PRESET        a preset such as W4A16, W8A16, FP8_DYNAMIC, NVFP4A16, MXFP4A16
  --targets T ...        modules the scheme targets (default Linear)
  --ignore I ...         modules left dense: names or re:patterns (e.g. lm_head)
  --recipe FILE          an llm-compressor recipe (.yaml/.json/.md), instead of --scheme
  --output-dir OUT       where the checkpoint is written (atomically)
  --overwrite            replace OUT if it exists
  --omit-null-dtypes     leave null scale_dtype/zp_dtype out of config.json (vLLM with compressed-tensors <= 0.12)
  --no-save-compressed   write a dense, fake-quantized checkpoint (save_compressed=False; for evaluation)
  --resume               continue an interrupted run of the same job
  --pipeline NAME        datafree | sequential | basic | independent (default: inferred)
  --max-shard-size SIZE  shard bound, e.g. 5GB, 500MB or bytes (default 5GB)
  --quiet                no per-layer progress

calibration (recipes with static activations, KV cache, NVFP4 inputs, GPTQ):
  --dataset FILE|DIR|ID                a text file (windows); a .jsonl/.json/.parquet/.arrow file or a
                                       folder of them; a Hub dataset id org/name[@rev] (HF cache);
                                       or ultrachat_200k / open_platypus (llm-compressor's presets)
  --splits SPLIT                       the split and slice to read, e.g. train, train[:512], train_sft[:5%]
  --text-column COL                    the column with each row's text, or its chat messages, which are
                                       rendered with the tokenizer's chat_template (default text)
  --seed N                             the shuffle's seed (default 42)
  --num-calibration-samples N          samples (default 512)
  --max-seq-length L                   tokens per sample, BOS included (default 384)
  --shuffle-calibration-samples        shuffle before taking the first N
  --no-quantization-aware-calibration  calibrate without fake quantization
  --no-moe-calibrate-all-experts       MoE: experts' statistics see only their routed tokens
  --max-activation-memory SIZE         cached activations kept in RAM before spilling (default 2GiB)
  --max-expert-memory SIZE             MoE: expert weights (float32) a layer processes at once; more
                                       experts are processed in groups that fit (default 1GiB)
  --tokens-per-forward N               tokens per GPU forward (default 4096)
  --progress MODE                      auto | bar | json | none (auto: bar on a terminal, else JSON lines)
  --engine NAME                        auto | webgpu | cpu (auto: LLMC_ENGINE if set, else WebGPU on a hardware adapter, else the CPU engine)`;

/** A flag value that must be a whole number ≥ 0 (a seed). */
function nonNegativeInt(flag: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new UsageError(`--${flag} must be a non-negative integer, got '${value}'`);
  }
  return n;
}

const PIPELINES: readonly PipelineName[] = ["datafree", "sequential", "basic", "independent"];
const PROGRESS: readonly ProgressMode[] = ["auto", "bar", "json", "none"];

/**
 * The `oneshot` command. Exit codes: 0 written, 1 bad model/recipe/output, 2 bad flags.
 *
 * @example
 * ```ts ignore
 * import { command } from "./oneshot.ts";
 * await command.run(["--model", "models/stories260K", "--scheme", "W8A16", "--ignore", "lm_head",
 *   "--output-dir", "out/w8a16"]);
 * ```
 */
export const command: CliCommand = {
  name: "oneshot",
  summary: "compress a model with a preset scheme or recipe into a compressed-tensors checkpoint",
  async run(argv: string[]): Promise<number> {
    const line = parseCommandLine(argv, {
      command: "oneshot",
      usage: USAGE,
      options: {
        model: { type: "string" },
        scheme: { type: "string" },
        targets: { type: "string", multiple: true },
        ignore: { type: "string", multiple: true },
        recipe: { type: "string" },
        "output-dir": { type: "string" },
        overwrite: { type: "boolean", default: false },
        "omit-null-dtypes": { type: "boolean", default: false },
        "no-save-compressed": { type: "boolean", default: false },
        resume: { type: "boolean", default: false },
        pipeline: { type: "string" },
        "max-shard-size": { type: "string" },
        quiet: { type: "boolean", default: false },
        dataset: { type: "string" },
        splits: { type: "string" },
        "text-column": { type: "string" },
        seed: { type: "string" },
        "num-calibration-samples": { type: "string" },
        "max-seq-length": { type: "string" },
        "shuffle-calibration-samples": { type: "boolean", default: false },
        "no-quantization-aware-calibration": { type: "boolean", default: false },
        "no-moe-calibrate-all-experts": { type: "boolean", default: false },
        "max-activation-memory": { type: "string" },
        "max-expert-memory": { type: "string" },
        "tokens-per-forward": { type: "string" },
        progress: { type: "string", default: "auto" },
        engine: { type: "string", default: "auto" },
      },
    }, (values) => {
      const model = requireFlag("model", values.model);
      const outputDir = requireFlag("output-dir", values["output-dir"]);
      if ((values.scheme === undefined) === (values.recipe === undefined)) {
        throw new UsageError("give exactly one of --scheme and --recipe");
      }
      if (values.recipe !== undefined && (values.targets || values.ignore)) {
        throw new UsageError("--targets and --ignore go with --scheme; a recipe carries its own");
      }
      const pipeline = values.pipeline === undefined
        ? undefined
        : choiceFlag("pipeline", values.pipeline, PIPELINES);
      const maxShardBytes = byteSizeFlag("max-shard-size", values["max-shard-size"]);
      const maxActivationBytesInMemory = byteSizeFlag(
        "max-activation-memory",
        values["max-activation-memory"],
      );
      const maxExpertBytes = byteSizeFlag("max-expert-memory", values["max-expert-memory"]);
      if (maxExpertBytes === 0) throw new UsageError("--max-expert-memory: must be more than 0");
      const progress = choiceFlag("progress", values.progress, PROGRESS);
      const engine = choiceFlag("engine", values.engine, ENGINE_CHOICES);
      const count = (flag: string, v: string | undefined) =>
        v === undefined ? undefined : positiveInt(flag, v);
      return {
        dataset: values.dataset,
        splits: values.splits,
        textColumn: values["text-column"],
        seed: values.seed === undefined ? undefined : nonNegativeInt("seed", values.seed),
        numCalibrationSamples: count("num-calibration-samples", values["num-calibration-samples"]),
        maxSeqLength: count("max-seq-length", values["max-seq-length"]),
        shuffleCalibrationSamples: values["shuffle-calibration-samples"],
        quantizationAwareCalibration: !values["no-quantization-aware-calibration"],
        moeCalibrateAllExperts: !values["no-moe-calibrate-all-experts"],
        maxActivationBytesInMemory,
        maxExpertBytes,
        tokensPerForward: count("tokens-per-forward", values["tokens-per-forward"]),
        progress: values.quiet ? "none" : progress,
        engine,
        model,
        outputDir,
        overwrite: values.overwrite,
        omitNullDtypes: values["omit-null-dtypes"],
        saveCompressed: !values["no-save-compressed"],
        resume: values.resume,
        pipeline,
        maxShardBytes,
        ...(values.recipe !== undefined
          ? { recipe: values.recipe }
          : { scheme: values.scheme, targets: values.targets, ignore: values.ignore }),
      };
    });
    if ("exit" in line) return line.exit;
    const { progress, ...rest } = line.args;
    // A calibrated run's kernels load while the recipe is read and the calibration text tokenized.
    if (rest.dataset !== undefined) prestartEngine(rest.engine);
    const renderer = progressRenderer(progress);
    let result;
    try {
      result = await oneshot({
        ...rest,
        // Every warning reaches onWarning (graph warnings too), so the renderer takes
        // warnings from there only and shows each once, in its own format.
        onEvent: (e) => {
          if (e.type !== "warning") renderer.onEvent(e);
        },
        onWarning: (message) => renderer.onEvent({ type: "warning", message }),
      });
    } catch (e) {
      // In JSON mode the error is a JSON line too; a known error then ends the run
      // with status 1 as main.ts would, anything else still propagates with its stack.
      const shown = renderer.error(e);
      renderer.close();
      if (shown && e instanceof LlmcError) return 1;
      throw e;
    }
    const message =
      `wrote ${result.outputDir} (${result.pipeline}): ${result.tensorCount} tensors, ` +
      `${(result.totalSize / 1e6).toFixed(1)} MB in ${result.files.join(", ")}, ` +
      `${result.seconds.toFixed(1)} s`;
    renderer.result({
      message,
      fields: {
        output_dir: result.outputDir,
        pipeline: result.pipeline,
        files: result.files,
        total_size: result.totalSize,
        tensor_count: result.tensorCount,
        resumed_layers: result.resumedLayers,
        seconds: Math.round(result.seconds * 1000) / 1000,
      },
    });
    renderer.close();
    console.log(message);
    return 0;
  },
};
