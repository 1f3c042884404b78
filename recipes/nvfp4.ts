/**
 * NVFP4 (W4A4): FP4 E2M1 weights and activations in groups of 16 with FP8
 * group scales and a per-tensor global scale; the activations' global scale
 * is calibrated (static_minmax observer) and fused q/k/v and gate/up share
 * weight global scales, as vLLM expects.
 *
 * ```sh
 * deno run -A recipes/nvfp4.ts [--model DIR] [--dataset FILE] [--num-calibration-samples 20]
 * ```
 *
 * Linears whose width is not a multiple of 16 stay dense (stories260K's down_proj).
 *
 * @module
 */

import { QuantizationModifier } from "../src/recipe/constructors.ts";
import { recipeFlags, runRecipe, untileableLinears } from "./_common.ts";

const flags = recipeFlags("nvfp4");
await runRecipe(flags, {
  recipe: [
    QuantizationModifier({
      targets: ["Linear"],
      scheme: "NVFP4",
      ignore: ["lm_head", ...await untileableLinears(flags.model, 16)],
    }),
  ],
});
