/**
 * 2:4 sparsity with SparseGPT, then FP8 dynamic (calibrated for SparseGPT's
 * Hessians): every run of 4 weights of each decoder-layer Linear keeps 2,
 * the survivors are updated to compensate, then weights are FP8 per
 * channel with per-token FP8 activations at run time. Saved
 * float-quantized with sparse-24-bitmask on top (vLLM's CUTLASS 2:4 FP8
 * path), as llm-compressor's `sparse_2of4_quantization_fp8` example.
 *
 * ```sh
 * deno run -A recipes/sparse_2of4_fp8.ts [--model DIR] [--dataset FILE] [--num-calibration-samples 256]
 * ```
 *
 * @module
 */

import { QuantizationModifier, SparseGPTModifier } from "../src/recipe/constructors.ts";
import { recipeFlags, runRecipe } from "./_common.ts";

const flags = recipeFlags("sparse-2of4-fp8");

await runRecipe(flags, {
  recipe: [
    SparseGPTModifier({
      sparsity: 0.5,
      maskStructure: "2:4",
      targets: ["re:model.layers.\\d*$"],
    }),
    QuantizationModifier({ targets: ["Linear"], scheme: "FP8_DYNAMIC", ignore: ["lm_head"] }),
  ],
});
