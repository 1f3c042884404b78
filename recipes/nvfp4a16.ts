/**
 * NVFP4A16 (data-free): FP4 E2M1 weights in groups of 16 with FP8 group
 * scales and a per-tensor global scale (fused over q/k/v and gate/up),
 * 16-bit activations.
 *
 * ```sh
 * deno run -A recipes/nvfp4a16.ts [--model DIR] [--output-dir DIR]
 * ```
 *
 * Linears whose width is not a multiple of 16 stay dense (stories260K's down_proj).
 *
 * @module
 */

import { QuantizationModifier } from "../src/recipe/constructors.ts";
import { recipeFlags, runRecipe, untileableLinears } from "./_common.ts";

const flags = recipeFlags("nvfp4a16");
await runRecipe(flags, {
  recipe: [
    QuantizationModifier({
      targets: ["Linear"],
      scheme: "NVFP4A16",
      ignore: ["lm_head", ...await untileableLinears(flags.model, 16)],
    }),
  ],
  dataset: null,
});
