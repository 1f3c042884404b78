/**
 * W4A16, round-to-nearest (data-free): int4 symmetric weights in groups of
 * 128 along the input dimension, 16-bit activations; vLLM serves it with
 * its Marlin WNA16 kernels (`pack-quantized`).
 *
 * ```sh
 * deno run -A recipes/w4a16_rtn.ts [--model DIR] [--output-dir DIR]
 * ```
 *
 * Models whose Linears are not multiples of 128 wide (stories260K) fall back
 * to one scale per output channel.
 *
 * @module
 */

import { QuantizationModifier } from "../src/recipe/constructors.ts";
import { groupsTile, recipeFlags, runRecipe } from "./_common.ts";

const flags = recipeFlags("w4a16-rtn");
const grouped = await groupsTile(flags.model, 128);
const weights = grouped
  ? { num_bits: 4, type: "int", symmetric: true, strategy: "group", group_size: 128 }
  : { num_bits: 4, type: "int", symmetric: true, strategy: "channel" };
if (!grouped) {
  console.error("note: Linears are not multiples of 128 wide; using per-channel scales");
}

await runRecipe(flags, {
  recipe: [
    QuantizationModifier({
      ignore: ["lm_head"],
      configGroups: { group_0: { targets: ["Linear"], weights } },
    }),
  ],
  dataset: null,
});
