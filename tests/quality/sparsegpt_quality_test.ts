/**
 * SparseGPT 2:4 end to end on stories260K (calibrated on
 * tinystories_calib.txt, evaluated on tinystories_eval.txt): the written
 * checkpoint's pruned weights are exactly 2:4, its sparsity_config is
 * inferred (§1.2.7), its perplexity beats magnitude pruning at the same
 * sparsity; with FP8 W8A8 after it the weights are quantized first and
 * then sparse-24-bitmask compressed (§1.9.9); W4A16 after it needs
 * marlin-24, whose shape constraints stories260K's MLP violates.
 */

import assert from "node:assert/strict";
import { CompressedCheckpoint } from "../../src/compress/compressed_checkpoint.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { LAYER_LINEARS, linearModuleName } from "../../src/model/module_names.ts";
import { oneshot } from "../../src/oneshot.ts";
import { is24Sparse } from "../../src/pipelines/sparsity_config.ts";
import {
  CALIB,
  evaluationWindows,
  magnitudePruneNM,
  overlaid,
  sourcePerplexity,
  SPARSE_24,
  STORIES,
  weightOnlyPerplexity,
  withTempDir,
} from "./_quality.ts";

const FP8_DYNAMIC = `quantization_stage:
  quantization_modifiers:
    QuantizationModifier:
      ignore: ["lm_head"]
      scheme: FP8_DYNAMIC
      targets: ["Linear"]
`;

const W4A16_GPTQ = `quantization_stage:
  quantization_modifiers:
    GPTQModifier:
      ignore: ["lm_head"]
      config_groups:
        group_0:
          weights: {num_bits: 4, type: int, symmetric: true, strategy: channel}
          targets: ["Linear"]
`;

const calibration = {
  dataset: CALIB,
  numCalibrationSamples: 64,
  maxSeqLength: 256,
  onWarning: () => {},
};

function layerLinears(layers: number): string[] {
  return Array.from({ length: layers }, (_, k) => LAYER_LINEARS.map((l) => linearModuleName(k, l)))
    .flat();
}

Deno.test({
  name: "SparseGPT 2:4: exactly 2:4 in the checkpoint, sparsity_config inferred, beats magnitude",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      await oneshot({ model: STORIES, recipe: SPARSE_24, outputDir: `${dir}/sg`, ...calibration });
      const raw = await HfModel.open(`${dir}/sg`);
      const src = await HfModel.open(STORIES);
      const ckpt = await CompressedCheckpoint.open(`${dir}/sg`);
      try {
        const sc = (raw.config.raw.quantization_config as Record<string, Record<string, unknown>>)
          .sparsity_config;
        assert.equal(sc.format, "sparse-24-bitmask");
        assert.equal(sc.sparsity_structure, "2:4");
        assert.deepEqual(sc.targets, ["Linear"]);
        assert.deepEqual(sc.ignore, ["lm_head"]);
        const magnitude = new Map<string, Float32Array>();
        for (const m of layerLinears(src.config.numHiddenLayers)) {
          assert.equal(raw.info(`${m}.bitmask`).dtype, "U8");
          assert.ok(!raw.has(`${m}.weight`), `${m}.weight should be sparse-compressed`);
          const [, cols] = src.info(`${m}.weight`).shape;
          const w = await ckpt.readF32(`${m}.weight`);
          assert.ok(is24Sparse(w, cols), `${m} is not 2:4`);
          const zeros = w.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);
          assert.equal(zeros, w.length / 2, `${m}: exactly half the weights are zero`);
          magnitude.set(`${m}.weight`, magnitudePruneNM(await src.readF32(`${m}.weight`), 2, 4));
        }
        const windows = await evaluationWindows();
        const ppl = await weightOnlyPerplexity(`${dir}/sg`, windows);
        const mag = await sourcePerplexity(overlaid(src, magnitude), windows);
        console.log(
          `stories260K 2:4, 64×256 calibration (llvmpipe): SparseGPT ppl ${ppl.toFixed(4)}, ` +
            `magnitude ppl ${mag.toFixed(4)} (dense 7.7408)`,
        );
        assert.ok(ppl < mag, `SparseGPT ppl ${ppl} should beat magnitude pruning's ${mag}`);
      } finally {
        raw.close();
        src.close();
        ckpt.close();
      }
    });
  },
});

Deno.test({
  name: "SparseGPT 2:4 then FP8 W8A8: quantized first, then sparse-24-bitmask; zeros kept",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const r = await oneshot({
        model: STORIES,
        recipe: SPARSE_24 + FP8_DYNAMIC,
        outputDir: `${dir}/fp8`,
        ...calibration,
        numCalibrationSamples: 16,
      });
      assert.equal(r.pipeline, "independent");
      const raw = await HfModel.open(`${dir}/fp8`);
      const ckpt = await CompressedCheckpoint.open(`${dir}/fp8`);
      try {
        const qc = raw.config.raw.quantization_config as Record<string, Record<string, unknown>>;
        assert.equal(qc.format as unknown, "float-quantized");
        assert.equal(qc.sparsity_config.format, "sparse-24-bitmask");
        const m = "model.layers.1.mlp.down_proj";
        assert.equal(raw.info(`${m}.compressed`).dtype, "F8_E4M3");
        assert.deepEqual(raw.info(`${m}.compressed`).shape, [64, 86]);
        assert.deepEqual(raw.info(`${m}.shape`).shape, [2, 1]);
        assert.ok(raw.has(`${m}.weight_scale`) && !raw.has(`${m}.weight`));
        for (const n of layerLinears(raw.config.numHiddenLayers)) {
          const w = await ckpt.readF32(`${n}.weight`);
          const c = n.endsWith("down_proj") ? 172 : 64;
          assert.ok(is24Sparse(w, c), `${n} lost its 2:4 mask through FP8`);
        }
      } finally {
        raw.close();
        ckpt.close();
      }
    });
  },
});

Deno.test({
  name: "SparseGPT 2:4 then W4A16: marlin-24 refused on stories260K, naming the module",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      await assert.rejects(
        oneshot({
          model: STORIES,
          recipe: SPARSE_24 + W4A16_GPTQ,
          outputDir: `${dir}/marlin`,
          ...calibration,
          numCalibrationSamples: 4,
        }),
        /model\.layers\.0\.self_attn\.k_proj: 2:4 sparsity with int4 weight-only .*marlin-24.*groups·out = 32 is not divisible by 64/,
      );
      assert.ok(!(await Deno.lstat(`${dir}/marlin`).then(() => true, () => false)));
    });
  },
});
