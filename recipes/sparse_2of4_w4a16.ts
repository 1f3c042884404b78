/**
 * 2:4 sparsity with SparseGPT, then GPTQ int4 weight-only, saved as
 * `marlin-24` (vLLM's Marlin 2:4 kernel), as llm-compressor's
 * `llama3_8b_2of4` example: group-128 scales where every Linear is a
 * multiple of 128 wide, else one scale per output channel.
 *
 * ```sh
 * deno run -A recipes/sparse_2of4_w4a16.ts [--model DIR] [--dataset FILE] [--num-calibration-samples 256]
 * ```
 *
 * marlin-24 needs out % 32, in % 32, (in/2)·out % 1024 and groups·out % 64
 * to be 0. The default model, stories260K, does not fit (k/v_proj have 32
 * outputs): without `--model`, the script then writes a seeded synthetic
 * llama that fits (hidden 256, 4 heads × 64, intermediate 512, vocab 512,
 * with stories260K's tokenizer) into the output folder's parent and
 * compresses that. With `--model`, a model that does not fit is refused
 * before any output is written, naming the module.
 *
 * @module
 */

import { dirname } from "node:path";
import { writeSyntheticModel } from "../src/model/synthetic_model.ts";
import { LAYER_LINEARS } from "../src/model/module_names.ts";
import { HfModel } from "../src/io/hf_model.ts";
import { GPTQModifier, SparseGPTModifier } from "../src/recipe/constructors.ts";
import { groupsTile, type RecipeFlags, recipeFlags, runRecipe } from "./_common.ts";

/** Whether every Linear of a model fits marlin-24 with `groupSize` (null: channel-wise). */
async function fitsMarlin24(modelDir: string, groupSize: number | null): Promise<boolean> {
  const hf = await HfModel.open(modelDir);
  try {
    return LAYER_LINEARS.every((l) => {
      const [out, inF] = hf.info(`model.layers.0.${l}.weight`).shape;
      const groups = groupSize === null ? 1 : inF / groupSize;
      return out % 32 === 0 && inF % 32 === 0 && ((inF / 2) * out) % 1024 === 0 &&
        (groups * out) % 64 === 0;
    });
  } finally {
    hf.close();
  }
}

/** A seeded synthetic llama with marlin-24-friendly shapes and stories260K's tokenizer. */
async function syntheticModel(flags: RecipeFlags): Promise<string> {
  const dir = `${dirname(flags.outputDir)}/synthetic-llama-marlin24`;
  await Deno.mkdir(dir, { recursive: true });
  await writeSyntheticModel({
    modelType: "llama",
    hidden: 256,
    layers: 2,
    heads: 4,
    kvHeads: 4,
    headDim: 64,
    intermediate: 512,
    vocab: 512,
    tied: false,
    seed: 24,
  }, dir);
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(`${flags.model}/${f}`, `${dir}/${f}`);
  }
  return dir;
}

let flags = recipeFlags("sparse-2of4-w4a16");
const grouped = await groupsTile(flags.model, 128);
if (!Deno.args.includes("--model") && !(await fitsMarlin24(flags.model, grouped ? 128 : null))) {
  const model = await syntheticModel(flags);
  console.error(
    `note: ${flags.model}'s Linears do not fit marlin-24; compressing a synthetic llama ` +
      `written to ${model} instead`,
  );
  flags = { ...flags, model };
}
const tile = await groupsTile(flags.model, 128);
const weights = tile
  ? { num_bits: 4, type: "int", symmetric: true, strategy: "group", group_size: 128 }
  : { num_bits: 4, type: "int", symmetric: true, strategy: "channel" };

await runRecipe(flags, {
  recipe: [
    SparseGPTModifier({
      sparsity: 0.5,
      maskStructure: "2:4",
      targets: ["re:model.layers.\\d*$"],
    }),
    GPTQModifier({
      ignore: ["lm_head"],
      dampeningFrac: 0.01,
      configGroups: { group_0: { targets: ["Linear"], weights } },
    }),
  ],
});
