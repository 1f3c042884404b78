/**
 * `llmc model-free-ptq`: quantize a safetensors checkpoint without a model
 * definition (§3.7).
 *
 * @module
 */

import type { CliCommand } from "./command.ts";
import { parseCommandLine, requireFlag } from "./flags.ts";
import { modelFreePtq } from "../model_free/model_free_ptq.ts";

const USAGE =
  `usage: llmc model-free-ptq --model DIR|ID --scheme PRESET [--ignore I ...] --output-dir OUT [--overwrite]

  --model DIR|ID    a folder of safetensors files (any architecture) with config.json, or a
                    Hub id org/name[@revision] resolved through the HF cache
  --scheme PRESET   a preset with static weights and dynamic (or no) activations,
                    e.g. FP8_DYNAMIC, W8A16, W4A16, NVFP4A16, MXFP4A16, W8A8
  --ignore I ...    modules left dense: names or re:patterns. Every X.weight whose X does not
                    end with "norm" is quantized, so list embeddings, lm_head and routers here
  --output-dir OUT  where the checkpoint is written (atomically)
  --overwrite       replace OUT if it exists
  --omit-null-dtypes  leave null scale_dtype/zp_dtype out of config.json (vLLM with compressed-tensors <= 0.12)
  --quiet           no per-file progress`;

/**
 * The `model-free-ptq` command. Exit codes: 0 written, 1 bad model/scheme/output, 2 bad flags.
 *
 * @example
 * ```ts ignore
 * import { command } from "./model_free_ptq.ts";
 * await command.run(["--model", "models/llama", "--scheme", "FP8_DYNAMIC",
 *   "--ignore", "re:.*embed_tokens$", "lm_head", "--output-dir", "out/fp8"]);
 * ```
 */
export const command: CliCommand = {
  name: "model-free-ptq",
  summary: "quantize safetensors files directly, without a model definition",
  async run(argv: string[]): Promise<number> {
    const line = parseCommandLine(argv, {
      command: "model-free-ptq",
      usage: USAGE,
      options: {
        model: { type: "string" },
        scheme: { type: "string" },
        ignore: { type: "string", multiple: true },
        "output-dir": { type: "string" },
        overwrite: { type: "boolean", default: false },
        "omit-null-dtypes": { type: "boolean", default: false },
        quiet: { type: "boolean", default: false },
      },
    }, (values) => ({
      model: requireFlag("model", values.model),
      scheme: requireFlag("scheme", values.scheme),
      outputDir: requireFlag("output-dir", values["output-dir"]),
      ignore: values.ignore ?? [],
      overwrite: values.overwrite,
      omitNullDtypes: values["omit-null-dtypes"],
      quiet: values.quiet,
    }));
    if ("exit" in line) return line.exit;
    const opts = line.args;
    const result = await modelFreePtq(opts.model, opts.outputDir, opts.scheme, opts.ignore, {
      overwrite: opts.overwrite,
      omitNullDtypes: opts.omitNullDtypes,
      onProgress: (e) => {
        if (!opts.quiet) {
          console.error(
            `${e.file} (${e.done}/${e.files}): ${e.quantized} weights in ${e.seconds.toFixed(2)} s`,
          );
        }
      },
    });
    console.log(
      `wrote ${result.outputDir}: ${result.quantized} weights quantized, ` +
        `${(result.totalSize / 1e6).toFixed(1)} MB in ${result.files.length} file(s), ` +
        `${result.seconds.toFixed(1)} s`,
    );
    return 0;
  },
};
