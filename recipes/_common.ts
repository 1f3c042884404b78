/**
 * What every recipe script shares: flags for the model, calibration data
 * and output (defaulting to stories260K and the calibration text in
 * ../shared), a progress display, and the Linears a group size cannot tile
 * (small demo models have 172-wide MLPs; real models rarely need this).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { progressRenderer } from "../src/cli/progress.ts";
import { HfModel } from "../src/io/hf_model.ts";
import { LAYER_LINEARS } from "../src/model/module_names.ts";
import { oneshot, type OneshotOptions, type OneshotResult } from "../src/oneshot.ts";

const SHARED = decodeURIComponent(new URL("../../shared/", import.meta.url).pathname);

/** The flags every recipe script accepts. */
export interface RecipeFlags {
  /** Hugging Face model folder. */
  readonly model: string;
  /** Calibration text (or JSON Lines). */
  readonly dataset: string;
  /** Where the checkpoint goes. */
  readonly outputDir: string;
  readonly numCalibrationSamples: number;
  readonly maxSeqLength: number;
  readonly overwrite: boolean;
}

/**
 * Parses `--model`, `--dataset`, `--output-dir`, `--num-calibration-samples`,
 * `--max-seq-length` and `--overwrite`.
 *
 * @param name the recipe's name (default output `out/<model>-<name>`)
 * @param argv the arguments (default `Deno.args`)
 * @returns the flags
 * @example
 * ```ts ignore
 * const flags = recipeFlags("fp8-static-kv", ["--num-calibration-samples", "64"]);
 * ```
 */
export function recipeFlags(name: string, argv: string[] = Deno.args): RecipeFlags {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: "string", default: `${SHARED}models/stories260K` },
      dataset: { type: "string", default: `${SHARED}data/tinystories_calib.txt` },
      "output-dir": { type: "string" },
      "num-calibration-samples": { type: "string", default: "256" },
      "max-seq-length": { type: "string", default: "256" },
      overwrite: { type: "boolean", default: false },
    },
    strict: true,
  });
  const model = values.model.replace(/\/+$/, "");
  return {
    model,
    dataset: values.dataset,
    outputDir: values["output-dir"] ?? `out/${model.slice(model.lastIndexOf("/") + 1)}-${name}`,
    numCalibrationSamples: Number(values["num-calibration-samples"]),
    maxSeqLength: Number(values["max-seq-length"]),
    overwrite: values.overwrite,
  };
}

/**
 * Regexes for the decoder Linears whose in_features `groupSize` does not
 * divide, to add to `ignore` (they stay dense), printed so nothing is
 * skipped silently.
 *
 * @param modelDir the model folder
 * @param groupSize the group size
 * @returns `re:` patterns, e.g. `["re:.*mlp.down_proj$"]`
 * @example
 * ```ts ignore
 * await untileableLinears("../shared/models/stories260K", 16); // ["re:.*mlp.down_proj$"]
 * ```
 */
export async function untileableLinears(modelDir: string, groupSize: number): Promise<string[]> {
  const hf = await HfModel.open(modelDir);
  try {
    const out: string[] = [];
    for (const l of LAYER_LINEARS) {
      const cols = hf.info(`model.layers.0.${l}.weight`).shape[1];
      if (cols % groupSize !== 0) {
        out.push(`re:.*${l.replace(".", "\\.")}$`);
        console.error(
          `note: ${l} has ${cols} input features, not a multiple of ${groupSize}; left dense`,
        );
      }
    }
    return out;
  } finally {
    hf.close();
  }
}

/**
 * Whether every decoder Linear's in_features is a multiple of `groupSize`.
 *
 * @param modelDir the model folder
 * @param groupSize the group size
 * @returns true when groups tile every Linear
 * @example
 * ```ts ignore
 * const g = await groupsTile(flags.model, 128) ? 128 : null; // per-channel otherwise
 * ```
 */
export async function groupsTile(modelDir: string, groupSize: number): Promise<boolean> {
  const hf = await HfModel.open(modelDir);
  try {
    return LAYER_LINEARS.every((l) =>
      hf.info(`model.layers.0.${l}.weight`).shape[1] % groupSize === 0
    );
  } finally {
    hf.close();
  }
}

/**
 * Runs oneshot with the flags and a progress display, and prints what was written.
 *
 * @param flags the parsed flags
 * @param options recipe (or scheme) and pipeline options; `dataset: null` for data-free recipes
 * @returns oneshot's result
 * @example
 * ```ts ignore
 * await runRecipe(flags, { recipe: [QuantizationModifier({ scheme: "FP8_DYNAMIC", ignore: ["lm_head"] })], dataset: null });
 * ```
 */
export async function runRecipe(
  flags: RecipeFlags,
  options: Omit<OneshotOptions, "model" | "outputDir" | "dataset"> & { dataset?: null },
): Promise<OneshotResult> {
  const renderer = progressRenderer("auto");
  const calibrated = options.dataset !== null;
  try {
    const result = await oneshot({
      model: flags.model,
      outputDir: flags.outputDir,
      overwrite: flags.overwrite,
      ...(calibrated
        ? {
          dataset: flags.dataset,
          numCalibrationSamples: flags.numCalibrationSamples,
          maxSeqLength: flags.maxSeqLength,
        }
        : {}),
      ...options,
      dataset: calibrated ? flags.dataset : undefined,
      onEvent: renderer.onEvent,
    });
    renderer.close();
    console.log(
      `wrote ${result.outputDir} (${result.pipeline}): ${result.tensorCount} tensors, ` +
        `${(result.totalSize / 1e6).toFixed(1)} MB, ${result.seconds.toFixed(1)} s`,
    );
    return result;
  } catch (e) {
    renderer.close();
    throw e;
  }
}
