/**
 * `llmc ppl --simulate-inputs`: a checkpoint whose scheme quantizes Linear
 * inputs dynamically per token (FP8_DYNAMIC, data-free) is evaluated with
 * its inputs fake-quantized in every layer; a dense model has nothing to
 * simulate.
 */

import { testEngine } from "../_engines.ts";
import assert from "node:assert/strict";
import { CompressedCheckpoint } from "../../src/compress/compressed_checkpoint.ts";
import { perplexity } from "../../src/data/perplexity.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";
import { oneshot } from "../../src/oneshot.ts";
import { inputSimulationOf } from "../../src/cli/_input_simulation.ts";
import { evaluationWindows, STORIES, withTempDir } from "../graph/_helpers.ts";

Deno.test({
  name: "dynamic per-token input quantization is simulated for FP8_DYNAMIC, not for a dense model",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      await oneshot({
        model: STORIES,
        recipe: "quant_stage:\n  quant_modifiers:\n    QuantizationModifier: " +
          "{targets: [Linear], scheme: FP8_DYNAMIC, ignore: [lm_head]}\n",
        outputDir: `${dir}/fp8`,
        onWarning: () => {},
      });
      const dense = await CompressedCheckpoint.open(STORIES);
      try {
        assert.equal(await inputSimulationOf(dense), null);
      } finally {
        dense.close();
      }
      const ckpt = await CompressedCheckpoint.open(`${dir}/fp8`);
      const model = await DecoderModel.load(ckpt, await testEngine("webgpu"));
      try {
        const transform = await inputSimulationOf(ckpt);
        assert.ok(transform !== null);
        const windows = (await evaluationWindows(4, 128)).slice(0, 4);
        const weightsOnly = (await perplexity(model, windows)).ppl;
        const simulated = (await perplexity(model, windows, { transformLinearInput: transform }))
          .ppl;
        console.log(
          `FP8_DYNAMIC stories260K, 4 × 128: weights only ${weightsOnly}, inputs too ${simulated}`,
        );
        assert.ok(Number.isFinite(simulated) && simulated !== weightsOnly);
        assert.ok(Math.abs(simulated / weightsOnly - 1) < 0.02);
      } finally {
        model.close();
        ckpt.close();
      }
    });
  },
});
