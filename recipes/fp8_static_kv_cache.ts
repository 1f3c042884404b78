/**
 * FP8 static weights and activations with an FP8 KV cache (upstream's
 * kv-cache example, SPEC §3.9): FP8 per-tensor weights, one calibrated FP8
 * input scale per Linear, and FP8 `k_scale`/`v_scale` per attention module
 * from the post-RoPE keys and values. Serve with `kv_cache_dtype="fp8"`.
 *
 * ```sh
 * deno run -A recipes/fp8_static_kv_cache.ts [--model DIR] [--dataset FILE] [--num-calibration-samples 256]
 * ```
 *
 * @module
 */

import { QuantizationModifier } from "../src/recipe/constructors.ts";
import { recipeFlags, runRecipe } from "./_common.ts";

const FP8_TENSOR = {
  num_bits: 8,
  type: "float",
  strategy: "tensor",
  dynamic: false,
  symmetric: true,
};

const flags = recipeFlags("fp8-static-kv");
await runRecipe(flags, {
  recipe: [
    QuantizationModifier({
      ignore: ["lm_head"],
      configGroups: {
        group_0: { targets: ["Linear"], weights: FP8_TENSOR, input_activations: FP8_TENSOR },
      },
      kvCacheScheme: FP8_TENSOR,
    }),
  ],
});
