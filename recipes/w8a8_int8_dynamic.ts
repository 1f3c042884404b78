/**
 * W8A8 INT8 with dynamic per-token activations: GPTQ int8 per-channel
 * weights, activations quantized per token at run time by vLLM (the `W8A8`
 * preset, as upstream's `GPTQModifier(scheme="W8A8")` example).
 *
 * ```sh
 * deno run -A recipes/w8a8_int8_dynamic.ts [--model DIR] [--dataset FILE]
 * ```
 *
 * @module
 */

import { GPTQModifier } from "../src/recipe/constructors.ts";
import { recipeFlags, runRecipe } from "./_common.ts";

const flags = recipeFlags("w8a8-int8-dynamic");
await runRecipe(flags, {
  recipe: [GPTQModifier({ targets: ["Linear"], scheme: "W8A8", ignore: ["lm_head"] })],
});
