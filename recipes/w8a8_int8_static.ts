/**
 * W8A8 INT8 with static asymmetric activations (upstream's
 * `recipe_w8a8_static_asym.yaml` without SmoothQuant): GPTQ int8
 * per-channel weights, one calibrated input scale and zero point per Linear
 * (minmax observer, exponential moving average over calibration samples).
 *
 * ```sh
 * deno run -A recipes/w8a8_int8_static.ts [--model DIR] [--dataset FILE]
 * ```
 *
 * @module
 */

import { GPTQModifier } from "../src/recipe/constructors.ts";
import { recipeFlags, runRecipe } from "./_common.ts";

const flags = recipeFlags("w8a8-int8-static");
await runRecipe(flags, {
  recipe: [
    GPTQModifier({
      ignore: ["lm_head"],
      actorder: null,
      configGroups: {
        group_0: {
          targets: ["Linear"],
          weights: { num_bits: 8, type: "int", symmetric: true, strategy: "channel" },
          input_activations: {
            num_bits: 8,
            type: "int",
            symmetric: false,
            dynamic: false,
            strategy: "tensor",
          },
        },
      },
    }),
  ],
});
