/**
 * SparseGPT 2:4 then GPTQ W4A16 channel-wise, end to end into marlin-24
 * (§1.9.6), on a seeded synthetic llama whose shapes fit marlin-24's
 * preconditions (stories260K's do not: see sparsegpt_quality_test.ts).
 *
 * The same recipe is run twice, once with the inferred format (marlin-24)
 * and once with `format: pack-quantized` pinned (dense int4, which reads
 * back dequantized). The run is deterministic, so decoding the marlin-24
 * layout must give the same 2:4 fake-quantized weights as the packed run, up
 * to marlin-24's fp16 scales.
 *
 * Synthetic models have no tokenizer; stories260K's (vocab 512, as the
 * synthetic model's) is copied into the temporary model folder.
 */

import assert from "node:assert/strict";
import { CompressedCheckpoint } from "../../src/compress/compressed_checkpoint.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { bytesToTyped } from "../../src/io/tensor_bytes.ts";
import { LAYER_LINEARS, linearModuleName } from "../../src/model/module_names.ts";
import { writeSyntheticModel } from "../../src/model/synthetic_model.ts";
import { oneshot } from "../../src/oneshot.ts";
import { is24Sparse } from "../../src/pipelines/sparsity_config.ts";
import { CALIB, STORIES, withTempDir } from "./_quality.ts";
import { decodeMarlin24 } from "../compress/_marlin24.ts";

const LAYERS = 2;

function recipe(format: string | null): string {
  return `sparsity_stage:
  sparsity_modifiers:
    SparseGPTModifier:
      sparsity: 0.5
      mask_structure: "2:4"
      targets: ['re:model.layers.\\d*$']
quantization_stage:
  quantization_modifiers:
    GPTQModifier:
      ignore: ["lm_head"]
      config_groups:
        group_0:
          weights: {num_bits: 4, type: int, symmetric: true, strategy: channel}
          targets: ["Linear"]
${format === null ? "" : `          format: ${format}\n`}`;
}

Deno.test({
  name:
    "SparseGPT 2:4 + GPTQ W4A16 channel → marlin-24 that decodes to the 2:4 fake-quantized weights",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const model = `${dir}/model`;
      await Deno.mkdir(model);
      await writeSyntheticModel({
        modelType: "llama",
        hidden: 256,
        layers: LAYERS,
        heads: 4,
        kvHeads: 4,
        headDim: 64,
        intermediate: 512,
        vocab: 512,
        tied: false,
        seed: 24,
      }, model);
      for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
        await Deno.copyFile(`${STORIES}/${f}`, `${model}/${f}`);
      }
      const calibration = {
        dataset: CALIB,
        numCalibrationSamples: 16,
        maxSeqLength: 128,
        onWarning: () => {},
      };
      const t0 = performance.now();
      await oneshot({ model, recipe: recipe(null), outputDir: `${dir}/marlin`, ...calibration });
      const t1 = performance.now();
      await oneshot({
        model,
        recipe: recipe("pack-quantized"),
        outputDir: `${dir}/packed`,
        ...calibration,
      });
      console.log(
        `synthetic llama 2×256 (1.3M params), 16×128 calibration (llvmpipe): ` +
          `2:4 + GPTQ W4A16 oneshot ${((t1 - t0) / 1000).toFixed(1)} s`,
      );
      const raw = await HfModel.open(`${dir}/marlin`);
      const packed = await CompressedCheckpoint.open(`${dir}/packed`);
      const src = await HfModel.open(model);
      try {
        const qc = raw.config.raw.quantization_config as Record<string, Record<string, unknown>>;
        assert.equal(qc.format as unknown, "marlin-24");
        assert.equal(qc.sparsity_config.format, "dense");
        assert.equal(qc.sparsity_config.sparsity_structure, "2:4");
        const groups = qc.config_groups as unknown as Record<string, Record<string, unknown>>;
        assert.equal(groups.group_0.format, "marlin-24");
        let worst = 0;
        let codeMismatches = 0;
        let total = 0;
        for (let k = 0; k < LAYERS; k++) {
          for (const l of LAYER_LINEARS) {
            const m = linearModuleName(k, l);
            const [out, inF] = src.info(`${m}.weight`).shape as [number, number];
            // §1.9.6: int4 packs 8 per I32; one channel-wise group.
            assert.deepEqual(
              ["weight_packed", "scale_packed", "meta"].map((s) => {
                const i = raw.info(`${m}.${s}`);
                return [i.dtype, i.shape];
              }),
              [["I32", [inF / 32, (out * 16) / 8]], ["F16", [1, out]], ["I16", [
                inF / 32,
                2 * out,
              ]]],
              m,
            );
            for (const s of ["weight", "weight_scale", "weight_shape", "weight_zero_point"]) {
              assert.ok(!raw.has(`${m}.${s}`), `${m}.${s} should not be written`);
            }
            const d = decodeMarlin24(
              bytesToTyped("I32", await raw.readRaw(`${m}.weight_packed`)) as Int32Array,
              bytesToTyped("I16", await raw.readRaw(`${m}.meta`)) as Int16Array,
              bytesToTyped("F16", await raw.readRaw(`${m}.scale_packed`)) as Uint16Array,
              [out, inF],
              4,
              null,
            );
            assert.ok(is24Sparse(d.weight, inF), `${m}: decoded weight is not 2:4`);
            assert.ok(d.codes.every((c) => c >= -8 && c <= 7 && Number.isInteger(c)), m);
            const ref = await packed.readF32(`${m}.weight`);
            assert.ok(is24Sparse(ref, inF), `${m}: packed weight is not 2:4`);
            for (let r = 0; r < out; r++) {
              const s = d.scale[r];
              for (let j = 0; j < inF; j++) {
                const i = r * inF + j;
                total++;
                // Zeros stay exactly zero; the rest agree up to the fp16 scale
                // (and, rarely, a code that fp16 rounding moved by one step).
                if (ref[i] === 0) assert.equal(d.weight[i], 0, `${m}[${r},${j}] was pruned`);
                const diff = Math.abs(d.weight[i] - ref[i]);
                if (diff > 1e-3 * Math.abs(ref[i]) + 1e-7) {
                  codeMismatches++;
                  assert.ok(diff <= s * 1.001, `${m}[${r},${j}]: ${d.weight[i]} vs ${ref[i]}`);
                }
                worst = Math.max(worst, diff / s);
              }
            }
          }
        }
        assert.ok(codeMismatches <= total * 1e-3, `${codeMismatches} of ${total} codes differ`);
        console.log(`marlin-24 vs pack-quantized: ${codeMismatches} of ${total} codes differ`);
      } finally {
        raw.close();
        packed.close();
        src.close();
      }
    });
  },
});
