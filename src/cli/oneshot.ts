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
import { oneshot } from "../oneshot.ts";
import type { PipelineName } from "../oneshot.ts";
import { progressRenderer } from "./progress.ts";
import type { ProgressMode } from "./progress.ts";

const USAGE =
  `usage: llmc oneshot --model DIR (--scheme PRESET [--targets T ...] [--ignore I ...] | --recipe FILE)
                    --output-dir OUT [--overwrite] [--resume] [--pipeline NAME] [--max-shard-size SIZE]
                    [--dataset FILE --num-calibration-samples N --max-seq-length L ...]

  --model DIR            a Hugging Face model folder (config.json, safetensors)
  --scheme PRESET        a preset such as W4A16, W8A16, FP8_DYNAMIC, NVFP4A16, MXFP4A16
  --targets T ...        modules the scheme targets (default Linear)
  --ignore I ...         modules left dense: names or re:patterns (e.g. lm_head)
  --recipe FILE          an llm-compressor recipe (.yaml/.json/.md), instead of --scheme
  --output-dir OUT       where the checkpoint is written (atomically)
  --overwrite            replace OUT if it exists
  --omit-null-dtypes     leave null scale_dtype/zp_dtype out of config.json (vLLM with compressed-tensors <= 0.12)
  --resume               continue an interrupted run of the same job
  --pipeline NAME        datafree | sequential | basic | independent (default: inferred)
  --max-shard-size SIZE  shard bound, e.g. 5GB, 500MB or bytes (default 5GB)
  --quiet                no per-layer progress

calibration (recipes with static activations, KV cache, NVFP4 inputs, GPTQ):
  --dataset FILE                       text file (windows) or JSON Lines with a "text" field
  --num-calibration-samples N          samples (default 512)
  --max-seq-length L                   tokens per sample, BOS included (default 384)
  --shuffle-calibration-samples        shuffle before taking the first N
  --no-quantization-aware-calibration  calibrate without fake quantization
  --no-moe-calibrate-all-experts       MoE: experts' statistics see only their routed tokens
  --max-activation-memory SIZE         cached activations kept in RAM before spilling (default 2GiB)
  --tokens-per-forward N               tokens per GPU forward (default 4096)
  --progress MODE                      auto | bar | json | none (auto: bar on a terminal, else JSON lines)`;

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
        resume: { type: "boolean", default: false },
        pipeline: { type: "string" },
        "max-shard-size": { type: "string" },
        quiet: { type: "boolean", default: false },
        dataset: { type: "string" },
        "num-calibration-samples": { type: "string" },
        "max-seq-length": { type: "string" },
        "shuffle-calibration-samples": { type: "boolean", default: false },
        "no-quantization-aware-calibration": { type: "boolean", default: false },
        "no-moe-calibrate-all-experts": { type: "boolean", default: false },
        "max-activation-memory": { type: "string" },
        "tokens-per-forward": { type: "string" },
        progress: { type: "string", default: "auto" },
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
      const progress = choiceFlag("progress", values.progress, PROGRESS);
      const count = (flag: string, v: string | undefined) =>
        v === undefined ? undefined : positiveInt(flag, v);
      return {
        dataset: values.dataset,
        numCalibrationSamples: count("num-calibration-samples", values["num-calibration-samples"]),
        maxSeqLength: count("max-seq-length", values["max-seq-length"]),
        shuffleCalibrationSamples: values["shuffle-calibration-samples"],
        quantizationAwareCalibration: !values["no-quantization-aware-calibration"],
        moeCalibrateAllExperts: !values["no-moe-calibrate-all-experts"],
        maxActivationBytesInMemory,
        tokensPerForward: count("tokens-per-forward", values["tokens-per-forward"]),
        progress: values.quiet ? "none" : progress,
        model,
        outputDir,
        overwrite: values.overwrite,
        omitNullDtypes: values["omit-null-dtypes"],
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
    const renderer = progressRenderer(progress);
    let result;
    try {
      result = await oneshot({ ...rest, onEvent: renderer.onEvent });
    } finally {
      renderer.close();
    }
    console.log(
      `wrote ${result.outputDir} (${result.pipeline}): ${result.tensorCount} tensors, ` +
        `${(result.totalSize / 1e6).toFixed(1)} MB in ${result.files.join(", ")}, ` +
        `${result.seconds.toFixed(1)} s`,
    );
    return 0;
  },
};
