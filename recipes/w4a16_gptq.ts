/**
 * W4A16 with GPTQ (calibrated): int4 symmetric group-128 weights whose
 * rounding errors are compensated column by column with the Hessian of
 * each Linear's calibration inputs, layer by layer with error propagation.
 *
 * ```sh
 * deno run -A recipes/w4a16_gptq.ts [--model DIR] [--dataset FILE] [--num-calibration-samples 256]
 * ```
 *
 * Models whose Linears are not multiples of 128 wide (stories260K) fall back
 * to one scale per output channel.
 *
 * @module
 */

import { GPTQModifier } from "../src/recipe/constructors.ts";
import { groupsTile, recipeFlags, runRecipe } from "./_common.ts";

const flags = recipeFlags("w4a16-gptq");
const grouped = await groupsTile(flags.model, 128);
const weights = grouped
  ? { num_bits: 4, type: "int", symmetric: true, strategy: "group", group_size: 128 }
  : { num_bits: 4, type: "int", symmetric: true, strategy: "channel" };
if (!grouped) {
  console.error("note: Linears are not multiples of 128 wide; using per-channel scales");
}

await runRecipe(flags, {
  recipe: [
    GPTQModifier({
      ignore: ["lm_head"],
      dampeningFrac: 0.01,
      configGroups: { group_0: { targets: ["Linear"], weights } },
    }),
  ],
});
