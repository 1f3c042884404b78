/**
 * GPTQ after SparseGPT 2:4 keeps SparseGPT's zeros: GPTQ's error
 * propagation updates every column after the current one, so without
 * preserving the mask it would fill pruned weights back in. On stories260K
 * (calibrated on tinystories_calib.txt), 2:4 then GPTQ with 8-bit weights
 * and inputs (FP8_DYNAMIC: float channel weights; W8A8: int8 channel
 * weights) must write weights that are still exactly 2:4 (half zeros), and
 * sparse-24-bitmask compression must be used on top of the quantization.
 */

import assert from "node:assert/strict";
import { CompressedCheckpoint } from "../../src/compress/compressed_checkpoint.ts";
import type { ModuleMetricEvent } from "../../src/graph/events.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { LAYER_LINEARS, linearModuleName } from "../../src/model/module_names.ts";
import { oneshot } from "../../src/oneshot.ts";
import { is24Sparse } from "../../src/pipelines/sparsity_config.ts";
import { CALIB, SPARSE_24, STORIES, withTempDir } from "./_quality.ts";

function gptq(scheme: string): string {
  return `quantization_stage:
  quantization_modifiers:
    GPTQModifier:
      ignore: ["lm_head"]
      scheme: ${scheme}
      targets: ["Linear"]
`;
}

for (
  const [scheme, format, dtype] of [
    ["FP8_DYNAMIC", "float-quantized", "F8_E4M3"],
    ["W8A8", "int-quantized", "I8"],
  ] as const
) {
  Deno.test({
    name: `SparseGPT 2:4 then GPTQ ${scheme}: written weights exactly 2:4, sparse-24-bitmask`,
    sanitizeResources: false,
    async fn() {
      await withTempDir(async (dir) => {
        const metrics: ModuleMetricEvent[] = [];
        await oneshot({
          model: STORIES,
          recipe: SPARSE_24 + gptq(scheme),
          outputDir: `${dir}/out`,
          dataset: CALIB,
          numCalibrationSamples: 32,
          maxSeqLength: 256,
          onWarning: () => {},
          onEvent: (e) => {
            if (e.type === "module_metric" && e.modifier === "GPTQModifier") metrics.push(e);
          },
        });
        const raw = await HfModel.open(`${dir}/out`);
        const ckpt = await CompressedCheckpoint.open(`${dir}/out`);
        const src = await HfModel.open(STORIES);
        try {
          const layers = raw.config.numHiddenLayers;
          // GPTQ itself ran on every Linear (not a round-to-nearest fallback).
          assert.equal(metrics.length, layers * LAYER_LINEARS.length);
          assert.ok(metrics.every((m) => m.errorKind === "gptq_loss"));
          const qc = raw.config.raw.quantization_config as Record<string, Record<string, unknown>>;
          assert.equal(qc.format as unknown, format);
          assert.equal(qc.sparsity_config.format, "sparse-24-bitmask");
          assert.equal(qc.sparsity_config.sparsity_structure, "2:4");
          assert.deepEqual(qc.sparsity_config.targets, ["Linear"]);
          for (let k = 0; k < layers; k++) {
            for (const l of LAYER_LINEARS) {
              const m = linearModuleName(k, l);
              assert.equal(raw.info(`${m}.compressed`).dtype, dtype, m);
              assert.equal(raw.info(`${m}.bitmask`).dtype, "U8", m);
              assert.ok(!raw.has(`${m}.weight`) && raw.has(`${m}.weight_scale`), m);
              const cols = src.info(`${m}.weight`).shape[1];
              const w = await ckpt.readF32(`${m}.weight`);
              assert.ok(is24Sparse(w, cols), `${m}: GPTQ lost the 2:4 mask`);
              const zeros = w.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);
              assert.equal(zeros, w.length / 2, `${m}: exactly half the weights are zero`);
            }
          }
        } finally {
          raw.close();
          ckpt.close();
          src.close();
        }
      });
    },
  });
}
