/**
 * FP8 dynamic (data-free): FP8 per-channel weights, activations quantized
 * per token at run time (the `FP8_DYNAMIC` preset).
 *
 * ```sh
 * deno run -A recipes/fp8_dynamic.ts [--model DIR] [--output-dir DIR]
 * ```
 *
 * @module
 */

import { QuantizationModifier } from "../src/recipe/constructors.ts";
import { recipeFlags, runRecipe } from "./_common.ts";

const flags = recipeFlags("fp8-dynamic");
await runRecipe(flags, {
  recipe: [
    QuantizationModifier({ targets: ["Linear"], scheme: "FP8_DYNAMIC", ignore: ["lm_head"] }),
  ],
  dataset: null,
});
