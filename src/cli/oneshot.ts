/**
 * `llmc oneshot`: compress a model with a preset scheme or a recipe and
 * write a compressed-tensors checkpoint.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { CliCommand } from "./command.ts";
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
  --max-activation-memory SIZE         cached activations kept in RAM before spilling (default 2GiB)
  --tokens-per-forward N               tokens per GPU forward (default 4096)
  --progress MODE                      auto | bar | json | none (auto: bar on a terminal, else JSON lines)`;

class UsageError extends Error {}

/**
 * Rewrites `--flag a b c` into `--flag a --flag b --flag c` for list flags,
 * so a list can follow one flag as in llm-compressor's examples; repeated
 * flags keep working.
 *
 * @param argv the arguments
 * @param flags the list flags, without dashes
 * @returns the rewritten arguments
 * @example
 * ```ts
 * import { spreadListFlags } from "./oneshot.ts";
 * spreadListFlags(["--ignore", "lm_head", "re:.*gate$", "--overwrite"], ["ignore"]);
 * // ["--ignore", "lm_head", "--ignore", "re:.*gate$", "--overwrite"]
 * ```
 */
export function spreadListFlags(argv: readonly string[], flags: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    out.push(a);
    if (!a.startsWith("--") || !flags.includes(a.slice(2))) continue;
    let first = true;
    while (i + 1 < argv.length && !argv[i + 1].startsWith("--")) {
      if (!first) out.push(a);
      out.push(argv[++i]);
      first = false;
    }
  }
  return out;
}

/**
 * Parses a byte size such as `5GB`, `500MB`, `2GiB` or `123456`.
 *
 * @param text the size
 * @returns bytes
 * @throws {Error} when it is not a positive size
 * @example
 * ```ts
 * import { parseByteSize } from "./oneshot.ts";
 * parseByteSize("5GB"); // 5000000000
 * parseByteSize("1KiB"); // 1024
 * ```
 */
export function parseByteSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$/i.exec(text.trim());
  const units: Record<string, number> = {
    b: 1,
    kb: 1e3,
    mb: 1e6,
    gb: 1e9,
    tb: 1e12,
    kib: 2 ** 10,
    mib: 2 ** 20,
    gib: 2 ** 30,
    tib: 2 ** 40,
  };
  const n = m === null ? NaN : Number(m[1]) * units[(m[2] ?? "b").toLowerCase()];
  if (!(n >= 1)) throw new Error(`'${text}' is not a size such as 5GB, 500MB or a byte count`);
  return Math.floor(n);
}

const PIPELINES: readonly PipelineName[] = ["datafree", "sequential", "basic", "independent"];

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
    let opts;
    try {
      const { values } = parseArgs({
        args: spreadListFlags(argv, ["ignore", "targets"]),
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
          "max-activation-memory": { type: "string" },
          "tokens-per-forward": { type: "string" },
          progress: { type: "string", default: "auto" },
          help: { type: "boolean", short: "h", default: false },
        },
        strict: true,
        allowPositionals: false,
      });
      if (values.help) {
        console.log(USAGE);
        return 0;
      }
      if (!values.model) throw new UsageError("--model is required");
      if (!values["output-dir"]) throw new UsageError("--output-dir is required");
      if ((values.scheme === undefined) === (values.recipe === undefined)) {
        throw new UsageError("give exactly one of --scheme and --recipe");
      }
      if (values.recipe !== undefined && (values.targets || values.ignore)) {
        throw new UsageError("--targets and --ignore go with --scheme; a recipe carries its own");
      }
      const pipeline = values.pipeline;
      if (pipeline !== undefined && !(PIPELINES as readonly string[]).includes(pipeline)) {
        throw new UsageError(`--pipeline must be one of ${PIPELINES.join(", ")}`);
      }
      let maxShardBytes: number | undefined;
      if (values["max-shard-size"] !== undefined) {
        try {
          maxShardBytes = parseByteSize(values["max-shard-size"]);
        } catch (e) {
          throw new UsageError(`--max-shard-size: ${(e as Error).message}`);
        }
      }
      const count = (flag: string, v: string | undefined) => {
        if (v === undefined) return undefined;
        const n = Number(v);
        if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1) {
          throw new UsageError(`--${flag} must be a positive integer, got '${v}'`);
        }
        return n;
      };
      let maxActivationBytesInMemory: number | undefined;
      if (values["max-activation-memory"] !== undefined) {
        try {
          maxActivationBytesInMemory = parseByteSize(values["max-activation-memory"]);
        } catch (e) {
          throw new UsageError(`--max-activation-memory: ${(e as Error).message}`);
        }
      }
      if (!["auto", "bar", "json", "none"].includes(values.progress)) {
        throw new UsageError("--progress must be one of auto, bar, json, none");
      }
      opts = {
        dataset: values.dataset,
        numCalibrationSamples: count("num-calibration-samples", values["num-calibration-samples"]),
        maxSeqLength: count("max-seq-length", values["max-seq-length"]),
        shuffleCalibrationSamples: values["shuffle-calibration-samples"],
        quantizationAwareCalibration: !values["no-quantization-aware-calibration"],
        maxActivationBytesInMemory,
        tokensPerForward: count("tokens-per-forward", values["tokens-per-forward"]),
        progress: (values.quiet ? "none" : values.progress) as ProgressMode,
        model: values.model,
        outputDir: values["output-dir"],
        overwrite: values.overwrite,
        omitNullDtypes: values["omit-null-dtypes"],
        resume: values.resume,
        pipeline: pipeline as PipelineName | undefined,
        maxShardBytes,
        quiet: values.quiet,
        ...(values.recipe !== undefined
          ? { recipe: values.recipe }
          : { scheme: values.scheme, targets: values.targets, ignore: values.ignore }),
      };
    } catch (e) {
      if (!(e instanceof UsageError) && !(e instanceof TypeError)) throw e;
      console.error(`llmc oneshot: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    const { quiet: _quiet, progress, ...rest } = opts;
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
