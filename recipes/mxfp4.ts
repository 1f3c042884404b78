/**
 * MXFP4A16 (data-free): FP4 E2M1 weights in groups of 32 with power-of-two
 * (E8M0) group scales, 16-bit activations.
 *
 * ```sh
 * deno run -A recipes/mxfp4.ts [--model DIR] [--output-dir DIR]
 * ```
 *
 * Linears whose width is not a multiple of 32 stay dense (stories260K's down_proj).
 *
 * @module
 */

import { QuantizationModifier } from "../src/recipe/constructors.ts";
import { recipeFlags, runRecipe, untileableLinears } from "./_common.ts";

const flags = recipeFlags("mxfp4");
await runRecipe(flags, {
  recipe: [
    QuantizationModifier({
      targets: ["Linear"],
      scheme: "MXFP4A16",
      ignore: ["lm_head", ...await untileableLinears(flags.model, 32)],
    }),
  ],
  dataset: null,
});
